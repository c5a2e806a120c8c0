"""The session's worker thread: runs one job at a time, and can be interrupted.

The event loop hands a job over with :meth:`Worker.run` and awaits it without ever
blocking. An interrupt raises :class:`ExecutionInterrupted` inside the job's Python
code (so ``while True: pass`` stops too); it is only ever delivered while a job runs.
"""

from __future__ import annotations

import ctypes
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import anyio
import anyio.from_thread
import anyio.lowlevel

T = TypeVar("T")


class ExecutionInterrupted(KeyboardInterrupt):
    """Raised in the worker thread by an interrupt.

    A KeyboardInterrupt, so ``except Exception`` in user code cannot swallow it and
    pyspark, on seeing it during an operation, interrupts that operation on the server.
    """


class Worker:
    """One dedicated thread fed by a queue of jobs."""

    grace_seconds = 10.0

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._lock = threading.Lock()
        self._interruptible = False
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

    def interruptible(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` (on the worker thread) so that :meth:`interrupt` can stop it."""
        with self._lock:
            self._interruptible = True
        try:
            return fn()
        finally:
            with self._lock:
                self._interruptible = False
                self._set_async_exc(None)  # drop an interrupt that arrived too late

    def interrupt(self) -> bool:
        """Raise ExecutionInterrupted in the running job; False if none is running."""
        with self._lock:
            if not self._interruptible:
                return False
            self._set_async_exc(ExecutionInterrupted)
            return True

    def _set_async_exc(self, exc: type[BaseException] | None) -> None:
        ident = self._thread.ident
        if ident is not None:
            obj = ctypes.py_object(exc) if exc is not None else None
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), obj)

    def stop(self) -> None:
        """Let the thread end after its current job."""
        self._jobs.put(None)
