"""ResultCursor: pages one result to the client as its credit allows.

A fetcher task pulls Arrow batches from Spark in a worker thread (converting them to
JSON text there, in JSON format: ``json_pages.batch_to_json``, so the event loop only
joins and frames bytes); a bounded stream of one chunk between it and
the pager is the read-ahead bound. The pager sends pages of at most ``page_size`` rows
(``rows`` events, or binary ``arrow-rows`` frames), only while the client has credit and
the outbox has room. Every cursor ends with exactly one final event: a last page, or a
``result-closed`` (logged with the rows sent and the rows left).

A cursor is loop-side: it reaches Spark only through the adapter it was given
(:mod:`spark_gateway.spark`, or a fake), and only in worker threads.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from functools import partial
from typing import Any, Literal, TypeAlias, cast

import anyio
import anyio.to_thread
import pyarrow as pa
from anyio.abc import ObjectReceiveStream, ObjectSendStream

from spark_gateway_protocol.messages import ArrowRows, Result, ResultClosed, Rows

from . import spark
from .json_pages import JsonColumns, JsonText, batch_to_json, columns_value, rows_value
from .outbox import Outbox
from .worker import LoopBridge

log = logging.getLogger("spark_gateway.cursor")

EndReason = Literal["last", "closed", "interrupted", "error"]

JOB_START_PATIENCE_SECONDS = 30.0
# A rows event's bytes around its rows (type, seq, id, result, offset, count, last, truncated).
PAGE_ENVELOPE_BYTES = 256

# A chunk is what one Spark batch becomes: its rows or its columns as JSON text, or, for
# Arrow pages, Spark's IPC bytes as they came (a decoded batch once a page has cut them).
Chunk: TypeAlias = "JsonText | JsonColumns | spark.ArrowResponse | pa.RecordBatch"
JSON_CHUNKS = (JsonText, JsonColumns)


def _cut(chunk: Chunk, start: int, stop: int) -> Chunk:
    """Rows start..stop of a chunk (zero-copy, except that cutting Spark's bytes decodes them)."""
    if start == 0 and stop == len(chunk):
        return chunk
    if isinstance(chunk, JSON_CHUNKS):
        return chunk.slice(start, stop)
    return chunk.slice(start, stop - start)


class RowQueue:
    """Rows received from Spark and not sent yet, as whole chunks plus a head offset."""

    def __init__(self) -> None:
        self._chunks: deque[Chunk] = deque()
        self._head = 0  # rows of the first chunk already taken (an index: no copying)
        self.size = 0

    def append(self, chunk: Chunk) -> None:
        if len(chunk):
            self._chunks.append(chunk)
            self.size += len(chunk)

    def take(self, count: int) -> list[Chunk]:
        """The next ``count`` rows, as pieces of chunks."""
        pieces: list[Chunk] = []
        self.size -= count
        while count:
            chunk = self._chunks[0]
            end = min(len(chunk), self._head + count)
            pieces.append(_cut(chunk, self._head, end))
            count -= end - self._head
            if end == len(chunk):
                self._chunks.popleft()
                self._head = 0
            else:
                self._head = end
        return pieces

    def within_bytes(self, count: int, nbytes: int) -> int:
        """How many of the next ``count`` rows fit in ``nbytes`` of JSON text (at least one).

        Only JSON text is measured; Arrow chunks are taken whole as counted.
        """
        fit = 0
        room = nbytes
        for i, chunk in enumerate(self._chunks):
            start = self._head if i == 0 else 0
            want = min(len(chunk) - start, count - fit)
            if not isinstance(chunk, JSON_CHUNKS):
                fit += want
            else:
                rows = chunk.slice(start, start + want)
                n = rows.rows_within(room)
                fit += n
                if n < want:
                    break
                room -= rows.size()
            if fit >= count:
                break
        return max(1, min(fit, count))

    def keep(self, count: int) -> None:
        """Drop every row after the first ``count`` (a limit was reached)."""
        kept: deque[Chunk] = deque()
        left = count
        for i, chunk in enumerate(self._chunks):
            start = self._head if i == 0 else 0
            n = min(len(chunk) - start, left)
            if n:
                kept.append(_cut(chunk, start, start + n))
            left -= n
        self._chunks, self._head, self.size = kept, 0, count


class ResultCursor:
    """The gateway side of one open result."""

    def __init__(
        self,
        *,
        execution_id: str,
        number: int,
        stream: spark.ResultStream,
        session: Any,  # pyspark SparkSession, only handed back to the adapter
        outbox: Outbox,
        page_size: int,
        limit: int | None,
        format: str,
        limiter: anyio.CapacityLimiter,
        on_error: Callable[[ResultCursor, BaseException], None],
        max_page_bytes: int = 1 << 20,
        spark: Any = spark,  # the adapter (spark_gateway.spark, or a fake with the same functions)
        layout: Literal["rows", "columns"] = "rows",
    ) -> None:
        self.execution_id = execution_id
        self.number = number
        self.stream = stream
        self._adapter = spark
        self._spark = session
        self._outbox = outbox
        self.page_size = page_size
        self.limit = limit
        self.format = format
        self.layout = layout  # of JSON pages
        self._arrow_schema_sent = False
        self._in_fetch = False  # a worker thread is inside Spark for this result
        self._limiter = limiter
        self._on_error = on_error
        # The rows' JSON text per page, leaving room for the event around it (its id escaped)
        # and, in the columns layout, for each column's brackets and comma.
        brackets = 3 * len(stream.columns) if layout == "columns" else 0
        self._max_page_bytes = max(1, max_page_bytes - PAGE_ENVELOPE_BYTES - 6 * len(execution_id) - brackets)
        self.credit = page_size  # the first page goes out at once
        self.sent = 0
        self.received = 0  # rows read from Spark (within the limit)
        self.read_all = False  # Spark has no more rows for this result (or the limit was reached)
        self.truncated = False
        self.end: EndReason | None = None  # set as soon as the end is decided (requests refused)
        self.cause = ""  # why it was closed, for the log ("by the client", ...)
        self.done = False  # the final event was sent
        self.first_page = anyio.Event()  # the first page (or the end) is out
        self._credit_changed = anyio.Event()
        self._fetch_changed = anyio.Event()  # a read from Spark returned, or Spark showed the job
        self._scope = anyio.CancelScope()
        # Told from the reading thread: ends the wait in _stop_operation without polling.
        self._bridge = LoopBridge.here()
        stream.on_job_start = partial(self._bridge.call_soon, self._fetch_changed_now)

    def announce(self) -> None:
        """Send the ``result`` event that opens this stream."""
        self._outbox.put(
            Result(self.execution_id, self.number, self.stream.columns, self.format, self.limit)
        )

    @property
    def until(self) -> int:
        """The row offset this result may stream up to: its first page plus all credit granted."""
        return self.sent + self.credit

    def grant(self, rows: int) -> None:
        """Client credit for ``rows`` more rows."""
        self.credit += rows
        self._credit_changed.set()

    async def run(self) -> None:
        """Stream until the last page, a close, or an error; always release on Spark."""
        reason: EndReason = "closed"
        try:
            with self._scope:
                send, receive = anyio.create_memory_object_stream[Chunk](1)
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._fetch, send)
                    await self._page(receive)
                    tg.cancel_scope.cancel()  # a truncated result leaves the fetcher waiting
                reason = "last"
        except Exception as exc:  # noqa: BLE001 - a failed stream ends this result only
            reason = "error"
            self._on_error(self, _first_leaf(exc))
        finally:
            with anyio.CancelScope(shield=True):
                await self._release()
            self._finish(self.end or reason)

    async def close(self, reason: Literal["closed", "interrupted"], cause: str = "") -> None:
        """Stop streaming now; ``run`` then makes sure Spark stops and releases the operation.

        ``cause``: why, for the log ("by the client", "as the session ended", ...).
        """
        if self.end is not None or self._scope.cancel_called:
            return
        self.end = reason
        self.cause = cause
        if self._in_fetch:
            # A fetch thread is inside Spark and cannot be cancelled: make Spark return it.
            with anyio.CancelScope(shield=True):
                await self._stop_operation()
        self._scope.cancel()

    @classmethod
    async def abandon(cls, stream: spark.ResultStream, session: Any, limiter: anyio.CapacityLimiter,
                      spark: Any = spark) -> None:
        """Stop and release a result that was opened but will never be shown."""
        cursor = cls(execution_id="", number=-1, stream=stream, session=session, outbox=Outbox(),
                     page_size=1, limit=None, format="json", limiter=limiter, on_error=lambda c, e: None,
                     spark=spark)
        cursor.end = "interrupted"
        with anyio.CancelScope(shield=True):
            await cursor._release()

    async def _release(self) -> None:
        """Leave nothing running on Spark: stop an unfinished operation, then release it."""
        if not self.stream.finished:
            async with anyio.create_task_group() as tg:
                # Someone must read for Spark's progress reports (and so the job) to show up.
                # Marked now: the drain task starts only at the next checkpoint, and the stop
                # below must know a thread is (about to be) inside Spark for this result.
                self._in_fetch = True
                tg.start_soon(self._drain)
                await self._stop_operation()
        if self.stream.finished:
            self.stream.close()  # read to the end: Spark released it already, nothing blocks
        else:
            await anyio.to_thread.run_sync(self.stream.close, limiter=self._limiter)

    async def _drain(self) -> None:
        self._in_fetch = True
        try:
            await anyio.to_thread.run_sync(self.stream.drain, limiter=self._limiter)
        finally:
            self._fetch_returned()

    async def _stop_operation(self) -> None:
        """Interrupt the operation once Spark has shown its job.

        Spark 4.0 loses an interrupt that lands while an operation is still submitting its
        job: the job then runs on, orphaned, with nobody to stop it. So while a thread reads
        the stream, wait until Spark reports a stage or sends rows (or long enough that the
        operation cannot still be starting), then interrupt.
        """
        with anyio.move_on_after(JOB_START_PATIENCE_SECONDS):
            while self._in_fetch and not self.stream.job_started:
                self._fetch_changed = anyio.Event()
                await self._fetch_changed.wait()
        if self._in_fetch:
            log.info("interrupting Spark operation %s (job seen: %s)", self.stream.operation_id,
                     self.stream.job_started, extra={"execution": self.execution_id})
            await anyio.to_thread.run_sync(
                _quietly, self._adapter.interrupt_operation, self._spark, self.stream.operation_id
            )

    def _fetch_returned(self) -> None:
        self._in_fetch = False
        self._fetch_changed_now()

    def _fetch_changed_now(self) -> None:
        self._fetch_changed.set()

    def _finish(self, reason: EndReason) -> None:
        self.end = reason
        if reason != "last":
            self._outbox.put(ResultClosed(self.execution_id, self.number, self.sent, reason))
            if self.execution_id:  # not a result abandoned before anyone saw it
                log.info("result %d of execution %s %s: %d rows sent%s", self.number, self.execution_id,
                         _ENDED[reason] + (f" {self.cause}" if self.cause else ""), self.sent,
                         "" if reason == "error" else f", {self.rows_left()}", extra={"execution": self.execution_id})
        self.done = True  # its final event is out: the execution may finish now
        self.first_page.set()

    def rows_left(self) -> str:
        """The rows of this result that were not sent, as far as the gateway knows them."""
        left = self.received - self.sent
        if self.read_all:
            return f"{left} left"
        if left:
            return f"at least {left} left (not all read from Spark)"
        return "the rest not read from Spark"

    async def _fetch(self, send: ObjectSendStream[Chunk]) -> None:
        """Pull chunks from Spark, one page of rows ahead of the pager."""
        remaining = None if self.limit is None else self.limit + 1
        ended = False
        while not ended and (remaining is None or remaining > 0):
            self._in_fetch = True
            try:
                chunks, ended = await anyio.to_thread.run_sync(self._next_chunks, limiter=self._limiter)
            finally:
                self._fetch_returned()
            for chunk in chunks:
                if remaining is not None:
                    if remaining <= 0:
                        break
                    chunk = _cut(chunk, 0, min(remaining, len(chunk)))
                    remaining -= len(chunk)
                self.received += len(chunk)
                await send.send(chunk)
        # The limit's extra row only tells that rows were left out: it is not one of the result's.
        self.read_all = True
        if self.limit is not None:
            self.received = min(self.received, self.limit)
        # Closed only on a clean end: after a failure the pager must not see "end of result".
        await send.aclose()

    def _next_chunks(self) -> tuple[list[Chunk], bool]:
        """Worker thread: the next batches from Spark, as chunks, and whether the result ended.

        Reads on while it has less than a page: the pager would wait for those rows anyway,
        and a small result (and the end of any result) then costs one thread round trip
        instead of one per batch plus one for the end.
        """
        chunks: list[Chunk] = []
        rows = 0
        arrow = self.format == "arrow"
        while rows < self.page_size:
            chunk: Chunk | None
            if arrow:
                chunk = self.stream.next_chunk()
            else:
                batch = self.stream.next_batch()
                chunk = None if batch is None else batch_to_json(batch, self.layout)
            if chunk is None:
                return chunks, True
            chunks.append(chunk)
            rows += len(chunk)
        return chunks, False

    async def _page(self, receive: ObjectReceiveStream[Chunk]) -> None:
        """Send full pages as credit allows; the final page says ``last``."""
        pending = RowQueue()
        ended = False
        while True:
            want = self.page_size
            if self.limit is not None:  # near the limit, one row more tells whether rows were left out
                want = min(want, self.limit - self.sent + 1)
            # Fill a whole page across chunk boundaries; only the last page may be short.
            while pending.size < want and not ended:
                try:
                    pending.append(await receive.receive())
                except anyio.EndOfStream:
                    ended = True
            if self.limit is not None and self.sent + pending.size > self.limit:
                # Spark sent the one extra row: more rows exist than the limit allows.
                self.truncated, ended = True, True
                pending.keep(self.limit - self.sent)
            if ended and not pending.size:
                await self._send_page([], 0, last=True)  # the end marker needs no credit
                return
            while self.credit <= 0:
                self._credit_changed = anyio.Event()
                await self._credit_changed.wait()
            count = min(pending.size, self.credit, self.page_size)
            if self.format == "json":  # frames stay under the page byte limit (a big row goes alone)
                count = pending.within_bytes(count, self._max_page_bytes)
            last = ended and pending.size == count
            await self._send_page(pending.take(count), count, last=last)
            if last:
                return

    async def _send_page(self, pieces: list[Chunk], count: int, *, last: bool) -> None:
        await self._outbox.wait_room()
        truncated = last and self.truncated
        if self.format == "arrow":
            event: Rows | ArrowRows = ArrowRows(self.execution_id, self.number, self.sent, count, last,
                                                truncated, self._arrow_payload(pieces, last))
        elif self.layout == "columns":
            # JSON text made in the fetch thread; encoding the event copies it once.
            columns = columns_value(cast("list[JsonColumns]", pieces), len(self.stream.columns))
            event = Rows(self.execution_id, self.number, self.sent, None, last, truncated, columns, count)
        else:
            rows = rows_value(cast("list[JsonText]", pieces))  # a JSON result's chunks are all JsonText
            event = Rows(self.execution_id, self.number, self.sent, rows, last, truncated)
        self._outbox.put(event)
        self.sent += count
        self.credit -= count
        self.first_page.set()

    def _arrow_payload(self, pieces: list[Any], last: bool) -> bytes:
        """IPC messages of one page; the result's frames concatenated form one IPC stream.

        Spark's own messages are forwarded as they came; only pieces a page has cut are
        serialised again. Everything is joined with one copy.
        """
        parts: list[Any] = []
        if not self._arrow_schema_sent:
            first = pieces[0] if pieces else None
            if isinstance(first, spark.ArrowResponse):
                parts.append(first.schema_message)
            else:
                parts.append((first.schema if first is not None else self.stream.arrow_schema()).serialize())
            self._arrow_schema_sent = True
        for piece in pieces:
            parts.append(piece.body if isinstance(piece, spark.ArrowResponse) else piece.serialize())
        if last:
            parts.append(spark.IPC_EOS)
        return b"".join(parts)


_ENDED: dict[EndReason, str] = {"last": "ended", "closed": "closed", "interrupted": "interrupted",
                                "error": "ended by an error"}


def _first_leaf(exc: BaseException) -> BaseException:
    """The underlying error of a task group's ExceptionGroup."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _quietly(fn: Callable[..., Any], *args: Any) -> None:
    """Best-effort call to Spark during cleanup: the operation may have ended already."""
    try:
        fn(*args)
    except Exception:  # noqa: BLE001 - cleanup must not mask how the stream ended
        pass
