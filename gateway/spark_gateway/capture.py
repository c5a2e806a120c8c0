"""Per-execution capture of ``sys.stdout`` / ``sys.stderr`` for code run in worker threads.

``sys.stdin`` is guarded too: code run for a client gets a clear error, never the
gateway's terminal.

The process-wide streams are replaced once by :class:`RoutingStream` proxies. A worker
thread points its thread-local route at the running execution's :class:`OutputSink`;
any other thread writes through to the real stream. The sink coalesces text so a
``print`` loop costs a list append, and blocks the printing thread when too much
text is waiting for the socket, so output is slowed down but never dropped.
"""

from __future__ import annotations

import getpass
import io
import sys
import threading
import time
from collections.abc import Callable
from typing import TextIO

from .errors import StdinUnavailable

_route = threading.local()


# Characters of printed output per stdout/stderr event (at most 4 bytes each in UTF-8, 6 escaped).
MAX_EVENT_CHARS = 64 * 1024


class OutputSink:
    """Text printed by one execution, waiting to be sent as stdout/stderr events.

    Only a plain ``threading.Lock``, held for a list append, and a polling wait for room:
    the printing thread may receive an asynchronous interrupt at any point, and a
    ``Condition`` interrupted halfway leaves its lock held for the event loop to hang on.
    """

    def __init__(self, wake: Callable[[], None], max_pending: int = 1 << 20,
                 check_stop: Callable[[], None] = lambda: None) -> None:
        self._wake = wake
        self._max_pending = max_pending
        self._check_stop = check_stop
        self._lock = threading.Lock()
        self._runs: list[tuple[str, list[str]]] = []  # (stream, its writes in order)
        self._pending = 0
        self._closed = False

    def write(self, stream: str, text: str) -> None:
        """Append text (from the printing thread); waits while the socket is behind."""
        if not text:
            return
        self._check_stop()  # an interrupted print loop stops here, at a safe point
        while self._pending >= self._max_pending and not self._closed:
            time.sleep(0.005)  # the socket is behind: slow the printer down, drop nothing
            self._check_stop()
        with self._lock:
            first = not self._runs
            if self._runs and self._runs[-1][0] == stream:
                self._runs[-1][1].append(text)  # joined once in take(): no copy per write
            else:
                self._runs.append((stream, [text]))
            self._pending += len(text)
        if first:
            self._wake()

    def take(self) -> list[tuple[str, str]]:
        """Everything written so far, as (stream, text) pieces of at most MAX_EVENT_CHARS; frees the writers.

        A long run is split so that no frame grows with what one print() wrote: clients
        with a frame size limit (websockets' default is 1 MiB) get all of it, in order.
        """
        with self._lock:
            runs, self._runs, self._pending = self._runs, [], 0
        pieces: list[tuple[str, str]] = []
        for stream, parts in runs:
            text = "".join(parts)
            pieces.extend((stream, text[i : i + MAX_EVENT_CHARS]) for i in range(0, len(text), MAX_EVENT_CHARS))
        return pieces

    def close(self) -> None:
        """Stop blocking writers (the session is going away)."""
        self._closed = True


class RoutingStream(io.TextIOBase):
    """A ``sys.stdout``/``sys.stderr`` stand-in that writes to the thread's sink."""

    def __init__(self, name: str, real: TextIO) -> None:
        self.name = name
        self.real = real

    def write(self, text: str) -> int:
        sink = _sink()
        if sink is None:
            return self.real.write(text)
        sink.write(self.name, text)
        return len(text)

    def flush(self) -> None:
        if _sink() is None:
            self.real.flush()

    def isatty(self) -> bool:
        return False

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    def fileno(self) -> int:
        return self.real.fileno()


class RoutingInput(io.TextIOBase):
    """A ``sys.stdin`` stand-in: code run for a client may not read the gateway's terminal.

    Without it, ``input()`` in a cell would block the session's worker on the terminal
    of whoever started the gateway (or get an ``EOFError`` that explains nothing).
    """

    def __init__(self, real: TextIO) -> None:
        self.real = real

    def _guard(self) -> None:
        if _sink() is not None:  # a worker thread running client code
            raise StdinUnavailable("input() and sys.stdin are not available: the code runs on the gateway, "
                                   "where nobody can type; put the value in the code instead")

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> str:
        self._guard()
        return self.real.read(-1 if size is None else size)

    def readline(self, size: int | None = -1) -> str:  # type: ignore[override]
        self._guard()
        return self.real.readline(-1 if size is None else size)

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        self._guard()
        return self.real.fileno()


def install() -> None:
    """Replace sys.stdout/stderr with routing proxies, sys.stdin with a guard (idempotent)."""
    if not isinstance(sys.stdout, RoutingStream):
        sys.stdout = RoutingStream("stdout", sys.stdout)
    if not isinstance(sys.stderr, RoutingStream):
        sys.stderr = RoutingStream("stderr", sys.stderr)
    if not isinstance(sys.stdin, RoutingInput) and sys.stdin is not None:
        sys.stdin = RoutingInput(sys.stdin)
    if not getattr(getpass.getpass, "guarded", False):
        getpass.getpass = _guarded_getpass(getpass.getpass)


def _guarded_getpass(real: Callable[..., str]) -> Callable[..., str]:
    """``getpass.getpass`` opens /dev/tty itself, past sys.stdin: the same guard for it."""

    def getpass_(prompt: str = "Password: ", stream: TextIO | None = None) -> str:
        if _sink() is not None:
            raise StdinUnavailable("getpass() is not available: the code runs on the gateway, where "
                                   "nobody can type; read secrets from the environment or a file instead")
        return real(prompt, stream)

    getpass_.guarded = True  # type: ignore[attr-defined]
    return getpass_


def _sink() -> OutputSink | None:
    """The sink of the execution this thread runs (None: not a worker running client code)."""
    return getattr(_route, "sink", None)


def route_to(sink: OutputSink | None) -> None:
    """Send this thread's stdout/stderr to ``sink`` (None: the real streams)."""
    _route.sink = sink
