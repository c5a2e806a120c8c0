"""ResultCursor: pages one result to the client as its credit allows.

A fetcher task pulls Arrow batches from Spark in a worker thread and converts them to
JSON-ready rows there; a bounded stream of one chunk between it and the pager is the
read-ahead bound. The pager sends ``rows`` pages of at most ``page_size`` rows, only
while the client has credit and the outbox has room. Every cursor ends with exactly
one final event: a ``rows`` page with ``last: true`` or a ``result-closed``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Literal

import anyio
import anyio.to_thread
from anyio.abc import ObjectReceiveStream, ObjectSendStream

from protocol.arrow_json import batch_to_rows
from protocol.messages import Result, ResultClosed, Rows

from . import spark
from .outbox import Outbox

EndReason = Literal["last", "closed", "interrupted", "error"]

OPERATION_SETTLE_SECONDS = 1.0


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
        limiter: anyio.CapacityLimiter,
        on_error: Callable[[ResultCursor, BaseException], None],
    ) -> None:
        self.execution_id = execution_id
        self.number = number
        self.stream = stream
        self._spark = session
        self._outbox = outbox
        self.page_size = page_size
        self.limit = limit
        self._limiter = limiter
        self._on_error = on_error
        self.credit = page_size  # the first page goes out at once
        self.sent = 0
        self.truncated = False
        self.end: EndReason | None = None
        self._credit_changed = anyio.Event()
        self._scope = anyio.CancelScope()

    def announce(self) -> None:
        """Send the ``result`` event that opens this stream."""
        self._outbox.put(
            Result(self.execution_id, self.number, self.stream.columns, "json", self.limit)
        )

    def grant(self, rows: int) -> None:
        """Client credit for ``rows`` more rows."""
        self.credit += rows
        self._credit_changed.set()

    async def run(self) -> None:
        """Stream until the last page, a close, or an error; always release on Spark."""
        reason: EndReason = "closed"
        try:
            with self._scope:
                send, receive = anyio.create_memory_object_stream[list[Any]](1)
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
                await anyio.to_thread.run_sync(self.stream.close, limiter=self._limiter)
            self._finish(self.end or reason)

    async def close(self, reason: Literal["closed", "interrupted"]) -> None:
        """Stop streaming now: ask Spark to stop the operation, then release it."""
        if self.end is not None or self._scope.cancel_called:
            return
        self.end = reason
        # Ask Spark to stop first: a fetch thread inside Spark then returns at once, and an
        # operation still being computed stops on the cluster, not just in the gateway.
        with anyio.CancelScope(shield=True):
            # Spark 4.0 loses an interrupt that lands while an operation is still submitting
            # its job: the job then runs on with nobody to stop it. Let a young one settle.
            await anyio.sleep(max(0.0, self.stream.opened_at + OPERATION_SETTLE_SECONDS - time.monotonic()))
            await anyio.to_thread.run_sync(
                _quietly, spark.interrupt_operation, self._spark, self.stream.operation_id
            )
        self._scope.cancel()

    def _finish(self, reason: EndReason) -> None:
        self.end = reason
        if reason != "last":
            self._outbox.put(ResultClosed(self.execution_id, self.number, self.sent, reason))

    async def _fetch(self, send: ObjectSendStream[list[Any]]) -> None:
        """Pull converted row chunks from Spark, one chunk ahead of the pager."""
        async with send:
            remaining = None if self.limit is None else self.limit + 1
            while remaining is None or remaining > 0:
                rows = await anyio.to_thread.run_sync(self._next_rows, limiter=self._limiter)
                if rows is None:
                    return
                if remaining is not None:
                    rows = rows[:remaining]
                    remaining -= len(rows)
                await send.send(rows)

    def _next_rows(self) -> list[Any] | None:
        """Worker thread: one Arrow batch from Spark, as JSON-ready rows."""
        batch = self.stream.next_batch()
        return None if batch is None else batch_to_rows(batch)

    async def _page(self, receive: ObjectReceiveStream[list[Any]]) -> None:
        """Send full pages as credit allows; the final page says ``last``."""
        rows: list[Any] = []
        pos = 0  # rows[pos:] are not sent yet (an index: slicing per page would copy)
        ended = False
        while True:
            want = self.page_size
            if self.limit is not None:  # near the limit, one row more tells whether rows were left out
                want = min(want, self.limit - self.sent + 1)
            # Fill a whole page across chunk boundaries; only the last page may be short.
            while len(rows) - pos < want and not ended:
                try:
                    chunk = await receive.receive()
                except anyio.EndOfStream:
                    ended = True
                    break
                rows, pos = rows[pos:] + chunk if pos < len(rows) else chunk, 0
            if self.limit is not None and self.sent + len(rows) - pos > self.limit:
                # Spark sent the one extra row: more rows exist than the limit allows.
                self.truncated, ended = True, True
                del rows[pos + self.limit - self.sent :]
            if ended and pos >= len(rows):
                await self._send_page([], last=True)  # the end marker needs no credit
                return
            while self.credit <= 0:
                self._credit_changed = anyio.Event()
                await self._credit_changed.wait()
            take = min(len(rows) - pos, self.credit, self.page_size)
            page = rows[pos : pos + take]
            pos += take
            last = ended and pos >= len(rows)
            await self._send_page(page, last=last)
            if last:
                return

    async def _send_page(self, page: list[Any], *, last: bool) -> None:
        await self._outbox.wait_room()
        truncated = last and self.truncated
        self._outbox.put(Rows(self.execution_id, self.number, self.sent, page, last, truncated))
        self.sent += len(page)
        self.credit -= len(page)


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
