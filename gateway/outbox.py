"""The session's outgoing event queue: stamps ``seq``, encodes once, bounds buffered bytes.

Every event a session sends goes through :meth:`Outbox.put`, on the event loop. The
connection's single writer drains it. Producers that can outrun the socket (result
pages, printed output) wait in :meth:`Outbox.wait_room`, which is the backpressure
that keeps a slow client from growing the gateway's memory.
"""

from __future__ import annotations

from collections import deque

import anyio

from protocol import encode_event
from protocol.messages import ArrowRows, Error, Event, Finished, Rows

from .metrics import Metrics


class Outbox:
    """Encoded frames waiting for the socket, in ``seq`` order."""

    def __init__(self, metrics: Metrics | None = None, high_water_bytes: int = 4 << 20) -> None:
        self.metrics = metrics or Metrics()
        self.high_water_bytes = high_water_bytes
        self.seq = 0
        self.pending_bytes = 0
        self._frames: deque[str | bytes] = deque()
        self._readable = anyio.Event()
        self._drained = anyio.Event()
        self.closed = False

    def put(self, event: Event) -> int:
        """Queue one event; returns the ``seq`` it was given."""
        frame = encode_event(event, self.seq + 1)  # may raise: then no seq is used up
        self.seq += 1
        self._frames.append(frame)
        self.pending_bytes += len(frame)
        self._readable.set()
        self._count(event, len(frame))
        return self.seq

    def _count(self, event: Event, size: int) -> None:
        """Every event passes here once: the natural place to count what the gateway sends."""
        metrics = self.metrics
        metrics.bytes_sent += size
        if type(event) is Rows:
            metrics.rows_streamed += len(event.rows)
        elif type(event) is ArrowRows:
            metrics.rows_streamed += event.count
        elif type(event) is Finished:
            metrics.execution_finished(event.status, event.elapsed_ms / 1000)
        elif type(event) is Error:
            metrics.error(event.code)

    async def wait_room(self) -> None:
        """Wait until the buffered frames are below the high-water mark."""
        while self.pending_bytes > self.high_water_bytes and not self.closed:
            self._drained = anyio.Event() if self._drained.is_set() else self._drained
            await self._drained.wait()

    async def get(self) -> str | bytes:
        """Next frame to write (the writer task's only input)."""
        while not self._frames:
            if self._readable.is_set():
                self._readable = anyio.Event()
            await self._readable.wait()
        frame = self._frames.popleft()
        self.pending_bytes -= len(frame)
        if self.pending_bytes <= self.high_water_bytes:
            self._drained.set()
        return frame

    def close(self) -> None:
        """Release every producer waiting for room; nothing more will be written."""
        self.closed = True
        self._drained.set()
