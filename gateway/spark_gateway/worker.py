"""The session's worker thread, and the two ways across between it and the event loop.

The event loop hands a job over with :meth:`Worker.run` and awaits it without ever
blocking. An interrupt raises :class:`ExecutionInterrupted` inside the job's Python
code (so ``while True: pass`` stops too); it is only ever delivered while a job runs.
Code on a worker thread (or a thread reading a result) reaches back to the loop only
through a :class:`LoopBridge`.
"""

from __future__ import annotations

import asyncio
import ctypes
import queue
import sys
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import anyio
import anyio.from_thread
import anyio.lowlevel

from .errors import ExecutionInterrupted

__all__ = ["ExecutionInterrupted", "LoopBridge", "Worker"]

T = TypeVar("T")


class LoopBridge:
    """The way back from other threads to the event loop: bound on the loop, used from threads.

    :meth:`call` runs a coroutine function on the loop and waits for it (an event that must
    be out before the thread goes on); :meth:`call_soon` queues a plain function there and
    returns at once (progress, printed output: the thread goes on). Both go through the
    loop's one queue of callbacks, so what a thread sends arrives in the order it was sent.
    """

    def __init__(self) -> None:
        self._token: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def here(cls) -> LoopBridge:
        """A bridge to the running loop (call on the loop)."""
        bridge = cls()
        bridge.bind()
        return bridge

    def bind(self) -> None:
        """On the loop: this is the loop to come back to (uvicorn runs the gateway on asyncio)."""
        self._token = anyio.lowlevel.current_token()
        self._loop = asyncio.get_running_loop()

    def call(self, fn: Callable[..., Coroutine[Any, Any, T]], *args: Any) -> T:
        """From a thread: run ``fn(*args)`` on the loop and wait for its result."""
        if self._token is None:
            raise RuntimeError("LoopBridge.call before bind(): no loop to call")
        return anyio.from_thread.run(fn, *args, token=self._token)

    def call_soon(self, fn: Callable[..., None], *args: Any) -> None:
        """From any thread: have ``fn(*args)`` run on the loop, without waiting for it."""
        if self._loop is None:
            return  # not bound yet: nobody to tell
        try:
            self._loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:
            pass  # the loop is shutting down


class Worker:
    """One dedicated thread fed by a queue of jobs."""

    grace_seconds = 10.0

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._lock = threading.Lock()
        self._interruptible = False
        self._raised = False  # an interrupt was raised in the running job and has not surfaced yet
        self._is_user_code: Callable[[str], bool] = lambda filename: False
        self.stop_requested = False  # an interrupt was asked for the running job
        self._thread.start()

    def _main(self) -> None:
        while (job := self._jobs.get()) is not None:
            job()

    async def run(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the worker thread and wait for it (never abandons the thread)."""
        token = anyio.lowlevel.current_token()
        done = anyio.Event()
        box: dict[str, Any] = {}

        def job() -> None:
            try:
                box["value"] = fn()
            except BaseException as exc:  # noqa: BLE001 - handed back to the awaiting task
                box["error"] = exc
            finally:
                try:
                    anyio.from_thread.run_sync(done.set, token=token)
                except RuntimeError:
                    pass  # the event loop is gone: nobody is waiting any more

        self._jobs.put(job)
        try:
            await done.wait()
        except anyio.get_cancelled_exc_class():
            # A thread cannot be abandoned: stop its code, then give it a bounded time to end.
            self.interrupt()
            with anyio.move_on_after(self.grace_seconds, shield=True):
                await done.wait()
            raise
        if "error" in box:
            raise box["error"]
        return box["value"]  # type: ignore[no-any-return]

    def interruptible(self, fn: Callable[[], T], is_user_code: Callable[[str], bool]) -> T:
        """Run ``fn`` (on the worker thread) so that :meth:`interrupt` can stop it.

        ``is_user_code(filename)`` tells the user's own frames, the only place where an
        interrupt is raised asynchronously (see :meth:`interrupt`).
        """
        with self._lock:
            self.stop_requested = False
            self._is_user_code = is_user_code
            self._interruptible = True
        try:
            return fn()
        except ExecutionInterrupted:
            self._raised = False  # it surfaced: nothing is pending
            raise
        finally:
            with self._lock:
                self._interruptible = False
                if self._raised:  # drop an interrupt that arrived too late
                    # Only then: on CPython 3.11 clearing leaves the interpreter's async-exception
                    # signal set, which slows every call and loops forever under a tracer (coverage).
                    self._set_async_exc(None)
                    self._raised = False

    def interrupt(self) -> bool:
        """Stop the running job's Python code; True once ExecutionInterrupted was raised in it.

        Sets :attr:`stop_requested`, which gateway code on the worker (printing, for one)
        checks to raise the interrupt itself at a safe point. The asynchronous exception
        is raised only while the thread runs the user's own code: landing inside a
        library or gateway function, it could leave a lock held (a ``Condition``, a
        future's lock) that the event loop then waits on forever.
        """
        with self._lock:
            if not self._interruptible:
                return False
            self.stop_requested = True
            frame = sys._current_frames().get(self._thread.ident or -1)
            if frame is None or not self._is_user_code(frame.f_code.co_filename):
                return False
            self._set_async_exc(ExecutionInterrupted)
            self._raised = True
            return True

    def check_stop(self) -> None:
        """On the worker thread, at a safe point: raise the interrupt asked for, if any."""
        if self.stop_requested and self._interruptible and threading.current_thread() is self._thread:
            raise ExecutionInterrupted

    def _set_async_exc(self, exc: type[BaseException] | None) -> None:
        ident = self._thread.ident
        if ident is not None:
            obj = ctypes.py_object(exc) if exc is not None else None
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), obj)

    def stop(self) -> None:
        """Let the thread end after its current job."""
        self._jobs.put(None)
