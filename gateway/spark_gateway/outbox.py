"""The session's outgoing event stream: stamps ``seq``, encodes once, bounds memory, replays.

Every event a session sends goes through :meth:`Outbox.put`, on the event loop, and is
encoded once into one shared log, whatever the number of connections. Each connection
reads the log through its own :class:`Reader` (a position in it): the one that opened the
session (or last resumed it) through :attr:`Outbox.home`, joined ones through
:meth:`Outbox.join`. Producers that can outrun the sockets (result pages, printed output)
wait in :meth:`wait_room` until the **fastest** reader is less than ``high_water_bytes``
behind: that is the backpressure that keeps a slow client — or one that is away — from
growing the gateway's memory, and no slow connection slows the others down. An attached
reader more than ``max_lag_bytes`` behind the fastest one is cut (its connection closes
with 4002) and may join again from its last ``seq``.

Frames the fastest reader has passed stay in the log as a bounded replay buffer
(``replay_bytes``): a client that lost its connection resumes (:meth:`rewind`) or joins
with the last ``seq`` it saw and gets the later frames again. Frames pushed out of the
replay buffer leave a small record behind, so that a client coming back from before them
is told exactly what it lost instead of meeting a silent gap.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
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
    start: int  # bytes of every frame before this one, since the session opened


# What stays in a log slot whose frame left the replay buffer, until the list is compacted.
# Compaction (a list slice) happens once per 1024 frames, so without this a trimmed frame's
# data stayed referenced that long: a 10M-row result of 300 kB Arrow pages held ~300 MB.
_GONE = Frame(0, b"", Sent(0, "", None, None, 0, 0), 0)


class ReaderCut(Exception):  # noqa: N818 - a state, not an error of the gateway
    """The reader fell too far behind and was cut: its connection must close (4002)."""


class Reader:
    """One connection's position in the session's stream: the next ``seq`` it sends."""

    __slots__ = ("allowance", "attached", "bytes", "cut", "on_cut", "pos")

    def __init__(self, pos: int, at_bytes: int) -> None:
        self.pos = pos
        self.bytes = at_bytes  # stream offset of frame ``pos``: how far, in bytes, it has sent
        self.attached = False  # a connection reads through it now (only those are ever cut)
        self.cut = False
        self.allowance = 0  # how far behind the fastest reader it may fall before it is cut
        self.on_cut: Callable[[], None] | None = None  # tells its connection


class Outbox:
    """Encoded frames in ``seq`` order: those some reader has not sent yet, and the replay buffer."""

    def __init__(self, metrics: Metrics | None = None, high_water_bytes: int = 4 << 20,
                 replay_bytes: int = 8 << 20, lost_records: int = 20_000, max_lag_bytes: int | None = None) -> None:
        self.metrics = metrics or Metrics()
        self.high_water_bytes = high_water_bytes
        self.replay_bytes = replay_bytes
        # Half the replay buffer: a reader cut for it can join again and still get everything it missed.
        self.max_lag_bytes = max_lag_bytes if max_lag_bytes is not None else max(replay_bytes // 2, 1)
        self.seq = 0
        self._total = 0  # bytes of every frame put so far
        self._log: list[Frame] = []  # frames from _log[_head] on, oldest first, seqs consecutive
        self._head = 0
        self._lost: deque[Sent] = deque(maxlen=lost_records)  # records of frames replay let go
        self.home = Reader(1, 0)  # the connection that opened (or resumed) the session
        self._readers: list[Reader] = [self.home]
        self._pace = Reader(1, 0)  # how far the fastest reader has ever got
        self._readable = anyio.Event()
        self._drained = anyio.Event()
        self._flushed = anyio.Event()
        self.closed = False

    @property
    def pending_bytes(self) -> int:
        """Bytes of frames not even the fastest reader has sent yet."""
        return self._total - self._pace.bytes

    @property
    def readers(self) -> int:
        """Readers with a connection attached."""
        return sum(r.attached for r in self._readers)

    @property
    def replay_from(self) -> int:
        """The oldest ``seq`` still in the log (``seq + 1`` when it is empty)."""
        return self._log[self._head].seq if self._head < len(self._log) else self.seq + 1

    def put(self, event: Event, *, count: bool = True) -> int:
        """Queue one event; returns the ``seq`` it was given. ``count``: in the metrics (not an event told again)."""
        frame = encode_event(event, self.seq + 1)  # may raise: then no seq is used up
        self.seq += 1
        self._log.append(Frame(self.seq, frame, _record(event, self.seq), self._total))
        self._total += len(frame)
        self._readable.set()
        if count:
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
        """Wait until the fastest reader is less than the high-water mark behind."""
        while self.pending_bytes > self.high_water_bytes and not self.closed:
            self._drained = anyio.Event() if self._drained.is_set() else self._drained
            await self._drained.wait()

    async def wait_flushed(self) -> None:
        """Wait until every queued frame went to some reader's writer (or the outbox closed)."""
        while self._pace.pos <= self.seq and not self.closed:
            self._flushed = anyio.Event() if self._flushed.is_set() else self._flushed
            await self._flushed.wait()

    async def get(self, reader: Reader | None = None) -> str | bytes:
        """The next frame for ``reader`` (default: :attr:`home`) to write; its connection's writer is the only caller.

        Raises :class:`ReaderCut` once the reader was cut.
        """
        reader = reader or self.home
        while reader.pos > self.seq or reader.cut:
            if reader.cut:
                raise ReaderCut
            if self._readable.is_set():
                self._readable = anyio.Event()
            await self._readable.wait()
        if reader.pos < self.replay_from:  # the frame it needs left the log (it was not attached then)
            self._cut(reader)
            raise ReaderCut
        frame = self._log[self._head + reader.pos - self._log[self._head].seq]
        reader.pos += 1
        reader.bytes = frame.start + len(frame.data)
        if reader.pos > self._pace.pos:
            self._advance(reader)
        return frame.data

    def _advance(self, fastest: Reader) -> None:
        """``fastest`` moved the front: wake producers, trim the replay buffer, cut readers left behind."""
        pace = self._pace
        pace.pos, pace.bytes = fastest.pos, fastest.bytes
        if self.pending_bytes <= self.high_water_bytes:
            self._drained.set()
        if pace.pos > self.seq:
            self._flushed.set()
        self._trim()
        for reader in self._readers:
            if reader.attached and pace.bytes - reader.bytes > reader.allowance:
                self._cut(reader)

    def _trim(self) -> None:
        """Keep at most ``replay_bytes`` of frames the fastest reader has passed (at least one)."""
        log, pace = self._log, self._pace
        while self._head < len(log) - 1 and log[self._head + 1].seq < pace.pos \
                and pace.bytes - log[self._head].start > self.replay_bytes:
            old = log[self._head]
            log[self._head] = _GONE  # release its data now: the slot itself goes at the next compaction
            self._head += 1
            self._lost.append(old.record)
            for reader in self._readers:
                if reader.pos <= old.seq and reader.attached:
                    self._cut(reader)  # it would miss this frame: it joins again and is told
        if self._head > 1024 and self._head * 2 > len(log):
            del log[: self._head]
            self._head = 0

    def _cut(self, reader: Reader) -> None:
        reader.cut = True
        reader.attached = False
        if reader is not self.home:
            self._readers.remove(reader)
        self._readable.set()  # its writer, if it waits for a frame, raises ReaderCut
        if reader.on_cut is not None:
            reader.on_cut()

    def rewind(self, last_seq: int) -> tuple[int, Lost | None]:
        """The home client resumes having seen up to ``last_seq``: resend everything after it.

        Returns the ``seq`` of the next frame the client will get and what it cannot get back.
        Only call this while no connection's writer reads through :attr:`home`.
        """
        next_seq, lost = self._start(self.home, last_seq)
        self.home.cut = False
        return next_seq, lost

    def join(self, last_seq: int | None) -> tuple[Reader, int, Lost | None]:
        """A new reader: from ``last_seq`` (replay) or, with None, from the next event on."""
        reader = Reader(self.seq + 1, self._total)
        next_seq, lost = (self.seq + 1, None) if last_seq is None else self._start(reader, last_seq)
        self._readers.append(reader)
        return reader, next_seq, lost

    def attach(self, reader: Reader, on_cut: Callable[[], None] | None) -> None:
        """A connection reads through ``reader`` now; ``on_cut`` closes it if it falls behind."""
        reader.attached, reader.cut, reader.on_cut = True, False, on_cut
        # It may start behind (a replay): it may fall that far and max_lag_bytes further behind.
        reader.allowance = max(self._pace.bytes - reader.bytes, 0) + self.max_lag_bytes

    def detach(self, reader: Reader) -> None:
        """Its connection went: a joined reader is forgotten, the home one waits for a resume."""
        reader.attached, reader.on_cut = False, None
        if reader is not self.home and reader in self._readers:
            self._readers.remove(reader)

    def _start(self, reader: Reader, last_seq: int) -> tuple[int, Lost | None]:
        """Put ``reader`` just after ``last_seq``; what of the frames after it left the log."""
        if not 0 <= last_seq <= self.seq:
            raise ResumeError(f"last_seq {last_seq} is not in this session's stream (0..{self.seq})")
        first = self.replay_from
        next_seq = max(last_seq + 1, first)
        reader.pos = next_seq
        reader.bytes = self._log[self._head + next_seq - first].start if next_seq <= self.seq else self._total
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
