"""The session's outgoing event stream: stamps ``seq``, encodes once, bounds memory, replays.

Every event a session sends goes through :meth:`Outbox.put`, on the event loop. The
writer of whichever connection serves the session now drains it with :meth:`get`.
Producers that can outrun the socket (result pages, printed output) wait in
:meth:`wait_room`, which is the backpressure that keeps a slow client — or one that is
away — from growing the gateway's memory.

Frames already written stay in a bounded replay buffer: a client that lost its connection
resumes with the last ``seq`` it saw, :meth:`rewind` puts the later frames back in front
of the unsent ones, and the next connection's writer sends them again. Frames pushed out
of the replay buffer leave a small record behind, so that a client resuming from before
them is told exactly what it lost instead of meeting a silent gap.
"""

from __future__ import annotations

from collections import deque
from typing import NamedTuple

import anyio

from spark_gateway_protocol import encode_event
from spark_gateway_protocol.messages import ArrowRows, Error, Event, Finished, Lost, LostExecution, LostResult, Rows

from .errors import ResumeError
from .metrics import Metrics


class Sent(NamedTuple):
    """What is left of a frame that left the replay buffer: enough to describe its loss."""

    seq: int
    type: str
    id: str | None
    result: int | None
    offset: int  # rows events: first row's offset
    rows: int  # rows events: rows in the page


class Frame(NamedTuple):
    seq: int
    data: str | bytes
    record: Sent


class Outbox:
    """Encoded frames: the unsent ones in ``seq`` order, and the last sent ones for replay."""

    def __init__(self, metrics: Metrics | None = None, high_water_bytes: int = 4 << 20,
                 replay_bytes: int = 8 << 20, lost_records: int = 20_000) -> None:
        self.metrics = metrics or Metrics()
        self.high_water_bytes = high_water_bytes
        self.replay_bytes = replay_bytes
        self.seq = 0
        self.pending_bytes = 0  # unsent
        self._unsent: deque[Frame] = deque()
        self._sent: deque[Frame] = deque()  # the replay buffer, oldest first
        self._sent_bytes = 0
        self._lost: deque[Sent] = deque(maxlen=lost_records)  # records of frames replay let go
        self._readable = anyio.Event()
        self._drained = anyio.Event()
        self._flushed = anyio.Event()
        self.closed = False

    def put(self, event: Event) -> int:
        """Queue one event; returns the ``seq`` it was given."""
        frame = encode_event(event, self.seq + 1)  # may raise: then no seq is used up
        self.seq += 1
        self._unsent.append(Frame(self.seq, frame, _record(event, self.seq)))
        self.pending_bytes += len(frame)
        self._readable.set()
        self._count(event, len(frame))
        return self.seq

    def _count(self, event: Event, size: int) -> None:
        """Every event passes here once: the natural place to count what the gateway sends."""
        metrics = self.metrics
        metrics.bytes_sent += size
        if type(event) is Rows:
            metrics.rows_streamed += event.num_rows
        elif type(event) is ArrowRows:
            metrics.rows_streamed += event.count
        elif type(event) is Finished:
            metrics.execution_finished(event.status, event.elapsed_ms / 1000)
        elif type(event) is Error:
            metrics.error(event.code)

    async def wait_room(self) -> None:
        """Wait until the unsent frames are below the high-water mark."""
        while self.pending_bytes > self.high_water_bytes and not self.closed:
            self._drained = anyio.Event() if self._drained.is_set() else self._drained
            await self._drained.wait()

    async def wait_flushed(self) -> None:
        """Wait until every queued frame went to the writer (or the outbox closed)."""
        while self._unsent and not self.closed:
            self._flushed = anyio.Event() if self._flushed.is_set() else self._flushed
            await self._flushed.wait()

    async def get(self) -> str | bytes:
        """Next frame to write (the serving connection's writer is the only caller)."""
        while not self._unsent:
            if self._readable.is_set():
                self._readable = anyio.Event()
            await self._readable.wait()
        frame = self._unsent.popleft()
        self.pending_bytes -= len(frame.data)
        if self.pending_bytes <= self.high_water_bytes:
            self._drained.set()
        if not self._unsent:
            self._flushed.set()
        self._keep(frame)
        return frame.data

    def _keep(self, frame: Frame) -> None:
        """Written (perhaps lost on the way): keep it for a resume, within the replay budget."""
        self._sent.append(frame)
        self._sent_bytes += len(frame.data)
        while self._sent_bytes > self.replay_bytes and len(self._sent) > 1:
            old = self._sent.popleft()
            self._sent_bytes -= len(old.data)
            self._lost.append(old.record)

    def rewind(self, last_seq: int) -> tuple[int, Lost | None]:
        """A client resumes having seen up to ``last_seq``: resend everything after it.

        Returns the ``seq`` of the next frame the client will get and what it cannot get back.
        Only call this while no connection's writer is running.
        """
        if not 0 <= last_seq <= self.seq:
            raise ResumeError(f"last_seq {last_seq} is not in this session's stream (0..{self.seq})")
        replay: list[Frame] = []
        while self._sent and self._sent[-1].seq > last_seq:
            replay.append(self._sent.pop())
        for frame in replay:  # newest first, so each goes in front of the previous
            self._sent_bytes -= len(frame.data)
            self._unsent.appendleft(frame)
            self.pending_bytes += len(frame.data)
        if self._unsent:
            self._readable.set()
        next_seq = self._unsent[0].seq if self._unsent else self.seq + 1
        if next_seq == last_seq + 1:
            return next_seq, None
        oldest_record = self._lost[0].seq if self._lost else next_seq
        if oldest_record > last_seq + 1:
            raise ResumeError(f"events {last_seq + 1}..{oldest_record - 1} are too old to describe; "
                              "start a new session")
        return next_seq, _describe(last_seq + 1, next_seq - 1, [r for r in self._lost if r.seq > last_seq])

    def close(self) -> None:
        """Release every producer waiting for room; nothing more will be written."""
        self.closed = True
        self._drained.set()
        self._flushed.set()


def _record(event: Event, seq: int) -> Sent:
    if type(event) is Rows:
        return Sent(seq, "rows", event.id, event.result, event.offset, event.num_rows)
    if type(event) is ArrowRows:
        return Sent(seq, "arrow-rows", event.id, event.result, event.offset, event.count)
    return Sent(seq, event.type, getattr(event, "id", None), getattr(event, "result", None), 0, 0)


def _describe(from_seq: int, to_seq: int, records: list[Sent]) -> Lost:
    """Group the lost frames by execution: counts per event type, row ranges per result."""
    executions: dict[str | None, tuple[dict[str, int], dict[int, list[int]]]] = {}
    for r in records:
        messages, results = executions.setdefault(r.id, ({}, {}))
        messages[r.type] = messages.get(r.type, 0) + 1
        if r.type in ("rows", "arrow-rows") and r.result is not None:
            span = results.setdefault(r.result, [r.offset, r.offset + r.rows])
            span[0] = min(span[0], r.offset)
            span[1] = max(span[1], r.offset + r.rows)
    return Lost(from_seq, to_seq, [
        LostExecution(eid, messages, [LostResult(n, lo, hi) for n, (lo, hi) in sorted(results.items())])
        for eid, (messages, results) in executions.items()])
