"""One execution (``Execution``) and its results (``ResultStream``), fed by the session's reader task.

Rows are pulled, never pushed: a result's pages are buffered only up to a small credit
window (``window`` pages, granted with ``stream-rows`` as the caller consumes them), so a
slow consumer holds at most that many pages in memory whatever the size of the result.

An execution knows its session only as a :class:`~._link.SessionLink`: it is attached to
receive its events, sends its requests through it, and is detached when it ends.
"""

from __future__ import annotations

import asyncio
import logging
import time
import warnings
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Generator
from contextlib import aclosing
from typing import TYPE_CHECKING, Any, Literal, TypeVar, assert_never

from spark_gateway_protocol.errors import ErrorCode, ProtocolError
from spark_gateway_protocol.messages import (
    DEFAULT_PAGE_SIZE,
    Accepted,
    ArrowRows,
    CloseResult,
    Column,
    Error,
    Execute,
    Finished,
    Format,
    Interrupt,
    Language,
    Layout,
    Progress,
    Result,
    ResultClosed,
    Rows,
    Started,
    Status,
    Stderr,
    Stdout,
    StreamRows,
    Value,
)

from . import _wire
from ._link import SessionLink
from .batch import page_batch
from .errors import GatewayConnectionError, Interrupted, SparkGatewayError, error_from_event

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

log = logging.getLogger("spark_gateway_client")

EndReason = Literal["last", "closed", "interrupted", "error"]
Row = list[Any]
T = TypeVar("T")

# The events that answer an execution's requests (each carries its id); the session routes them.
ExecutionEvent = (
    Accepted | Started | Progress | Stdout | Stderr | Result | Rows | ArrowRows | ResultClosed | Value | Error
    | Finished
)

JSON_PAGE_SIZE = DEFAULT_PAGE_SIZE
# The page layout JSON mode asks for: one array per column parses several times faster than
# one per row, and RowBatch builds rows only for a caller that reads them.
JSON_LAYOUT: Layout = "columns"
ARROW_PAGE_SIZE = 10_000
DEFAULT_WINDOW = 4

# Errors answering our own stream-rows / close-result / interrupt that only mean "it had already ended".
_RACE_CODES = frozenset({ErrorCode.INVALID_STATE, ErrorCode.UNKNOWN_RESULT, ErrorCode.UNKNOWN_EXECUTION})
# Requests whose refusal concerns one result or one interrupt, not the execution's outcome.
_FOLLOW_UP_REQUESTS = frozenset({StreamRows.type, CloseResult.type, Interrupt.type})


class ResultStream:
    """One result of an execution: its columns, then its rows, read at the caller's pace.

    ``async for batch in stream`` yields row batches (``format="json"``: a ``RowBatch``, a
    sequence of rows as lists, values as in docs/type-mapping.md, whose ``columns`` are at
    hand too) or ``pyarrow.RecordBatch`` (``format="arrow"``, Spark's own Arrow values).
    Breaking out of the loop closes the result on the gateway and Spark.
    """

    def __init__(self, execution: Execution, number: int, columns: list[Column], format: str,
                 limit: int | None) -> None:
        self.execution = execution
        self.number = number
        self.columns = columns
        self.format = format
        self.limit = limit
        self.truncated = False  # True when the last page said rows were left out (limit)
        self.rows_received = 0
        self.end_reason: EndReason | None = None
        self.error: SparkGatewayError | None = None
        self._pages: deque[tuple[int, Any]] = deque()
        self._changed = asyncio.Event()
        self._closing = False
        self._reading = False
        self._decoder = _wire.ArrowDecoder() if format == "arrow" else None

    def __repr__(self) -> str:
        cols = ", ".join(f"{c.name} {c.type}" for c in self.columns)
        return f"<ResultStream {self.execution.id}#{self.number} ({cols}) {self.end_reason or 'open'}>"

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def ended(self) -> bool:
        return self.end_reason is not None

    @property
    def closing(self) -> bool:
        """:meth:`close` was called before the result ended: the gateway is releasing it."""
        return self._closing

    @property
    def arrow_schema(self) -> pa.Schema | None:
        """The Arrow schema Spark sent (Arrow format, once the first frame was read)."""
        return None if self._decoder is None else self._decoder.schema

    # ------------------------------------------------------------ fed by the reader task

    def _on_page(self, count: int, data: Any, last: bool, truncated: bool) -> None:
        self.rows_received += count
        if not self._closing:
            self._pages.append((count, data))
        if last:
            self.truncated = truncated
            self.end_reason = "last"
        self._changed.set()

    def _on_closed(self, reason: EndReason) -> None:
        if self.end_reason is None:
            self.end_reason = reason
        if reason == "error" and self.error is None:
            self.error = SparkGatewayError(f"result {self.number} of {self.execution.id!r} failed")
        self._changed.set()

    def _fail(self, error: SparkGatewayError) -> None:
        if self.end_reason is None:
            self.end_reason = "error"
            self.error = error
        self._changed.set()

    # ------------------------------------------------------------ consumer side

    async def _take(self) -> AsyncGenerator[tuple[int, Any], None]:
        """Pages in order, granting credit for each as it is taken; raises how the result failed."""
        self._reading = True
        try:
            while True:
                if self._pages:
                    count, data = self._pages.popleft()
                    if count and self.end_reason is None and not self._closing:
                        self.execution._grant(self.number, count)
                    yield count, data
                    continue
                if self.end_reason is not None or (self._closing and self.execution.done):
                    break
                self._changed.clear()
                await self._changed.wait()
            self._raise_for_end()
        finally:
            self._reading = False
            if self.end_reason is None:
                self.close()  # the consumer stopped early: release the result on Spark

    def _raise_for_end(self) -> None:
        if self.end_reason == "error":
            raise self.error or SparkGatewayError(f"result {self.number} failed")
        if self.end_reason == "interrupted":
            raise Interrupted(f"execution {self.execution.id!r} was interrupted",
                              execution_id=self.execution.id, result=self.number)

    async def batches(self) -> AsyncGenerator[Any, None]:
        """Row batches: ``RowBatch`` (JSON) or ``pyarrow.RecordBatch`` (Arrow); empty ones skipped."""
        async with aclosing(self._take()) as pages:
            async for _count, data in pages:
                if self._decoder is None:
                    if data:
                        yield data
                else:
                    for batch in self._decoder.decode(data):
                        if batch.num_rows:
                            yield batch

    def __aiter__(self) -> AsyncIterator[Any]:
        return self.batches()

    async def ipc_chunks(self) -> AsyncGenerator[bytes, None]:
        """Arrow format only: the raw IPC bytes of each frame; concatenated they are one IPC stream.

        Append them to a file as they come to get a ``.arrows`` stream file (readable with
        ``pyarrow.ipc.open_stream``), without decoding anything.
        """
        if self._decoder is None:
            raise ValueError("ipc_chunks() needs an execution started with format='arrow'")
        async with aclosing(self._take()) as pages:
            async for _count, data in pages:
                yield bytes(data)

    async def rows(self) -> list[Row]:
        """Every row as a list (Arrow format: Python values from pyarrow)."""
        out: list[Row] = []
        async with aclosing(self.batches()) as batches:
            async for batch in batches:
                out.extend(batch if self._decoder is None else arrow_rows(batch))
        return out

    async def to_arrow(self) -> pa.Table:
        """The whole result as a ``pyarrow.Table`` (Arrow format only)."""
        import pyarrow as pa

        if self._decoder is None:
            raise ValueError("to_arrow() needs an execution started with format='arrow'")
        async with aclosing(self.batches()) as it:
            batches = [batch async for batch in it]
        if self._decoder.schema is None:
            raise SparkGatewayError(
                f"result {self.number} of {self.execution.id!r} ended without an Arrow schema")
        return pa.Table.from_batches(batches, schema=self._decoder.schema)

    async def to_pandas(self, **kwargs: Any) -> pd.DataFrame:
        """``(await self.to_arrow()).to_pandas(**kwargs)``."""
        return (await self.to_arrow()).to_pandas(**kwargs)

    def close(self) -> None:
        """Stop reading: buffered pages are dropped and the result is released on Spark."""
        if self.end_reason is None and not self._closing:
            self._closing = True
            self._pages.clear()
            self.execution._send_close(self.number)
        self._changed.set()


class Execution:
    """One ``execute`` request and everything the gateway says about it.

    Nothing is sent until the execution is first used (iterated, awaited, ``rows()``,
    ``to_arrow()``, ``start()``), so the way it is consumed can pick the row format:
    ``to_arrow()``/``to_pandas()`` ask for Arrow frames, iteration and ``rows()`` for JSON
    unless ``format`` was given to ``execute``.
    """

    def __init__(self, session: SessionLink[Execution], id: str, code: str, *, language: Language = "sql",
                 page_size: int | None = None, limit: int | None = None, format: Format | None = None,
                 window: int = DEFAULT_WINDOW, on_stdout: Callable[[str], Any] | None = None,
                 on_stderr: Callable[[str], Any] | None = None,
                 on_progress: Callable[[Progress], Any] | None = None, keep_output: bool = True) -> None:
        if window < 1:
            raise ValueError("window must be at least 1 page")
        self.session = session
        self.id = id
        self.code = code
        self.language: Language = language
        self.limit = limit
        self.window = window
        self.on_stdout = on_stdout
        self.on_stderr = on_stderr
        self.on_progress = on_progress
        self.keep_output = keep_output
        self._page_size = page_size
        self._format = format
        self.request: Execute | None = None
        self.status: Status | None = None
        self.summary: Finished | None = None
        self.errors: list[SparkGatewayError] = []
        self.values: list[Value] = []
        self.progress: Progress | None = None
        self.queue_position: int | None = None
        self.started_at: float | None = None
        self._results: list[ResultStream] = []
        self._out: list[str] = []
        self._err: list[str] = []
        self._done = asyncio.Event()
        self._changed = asyncio.Event()
        self._keep: set[int] | None = None  # when set, results opened with other numbers are closed
        self._iterating_all = False

    def __repr__(self) -> str:
        state = self.status or ("running" if self.request else "not started")
        return f"<Execution {self.id} {self.language} {state}>"

    def __del__(self) -> None:
        if getattr(self, "request", True) is None and getattr(self, "status", None) is None:
            warnings.warn(f"execution {self.id!r} was never started: await it, iterate it, or call start()",
                          RuntimeWarning, stacklevel=1)

    # ------------------------------------------------------------ state

    @property
    def format(self) -> Format | None:
        """The row format, once started (``None`` before)."""
        return None if self.request is None else self.request.format

    @property
    def page_size(self) -> int | None:
        return None if self.request is None else self.request.page_size

    @property
    def done(self) -> bool:
        """The execution has finished (``finished`` received, refused, or the connection was lost)."""
        return self._done.is_set()

    @property
    def stdout(self) -> str:
        """Everything the code printed to stdout so far."""
        return "".join(self._out)

    @property
    def stderr(self) -> str:
        return "".join(self._err)

    @property
    def value(self) -> str | None:
        """The repr of the Python cell's trailing value (not a DataFrame), if any."""
        return self.values[-1].text if self.values else None

    @property
    def result_streams(self) -> list[ResultStream]:
        """The results opened so far."""
        return list(self._results)

    @property
    def result_schema(self) -> list[Column] | None:
        """The columns of the first result, once it has opened."""
        return self._results[0].columns if self._results else None

    @property
    def truncated(self) -> bool:
        """Whether ``limit`` left rows out of any result."""
        if self.summary is not None:
            return any(r.truncated for r in self.summary.results)
        return any(r.truncated for r in self._results)

    @property
    def elapsed_ms(self) -> float | None:
        return None if self.summary is None else self.summary.elapsed_ms

    # ------------------------------------------------------------ control

    def start(self, format: Format | None = None) -> Execution:
        """Send the request now (a no-op once sent). ``format`` applies when none was chosen."""
        if self.request is not None or self.done:
            return self
        fmt: Format = self._format or format or "json"
        page_size = self._page_size or (ARROW_PAGE_SIZE if fmt == "arrow" else JSON_PAGE_SIZE)
        try:
            self.request = Execute(self.id, self.code, self.language, page_size, self.limit, fmt,
                                   JSON_LAYOUT if fmt == "json" else "rows")
        except ProtocolError as exc:
            self.status = "error"
            self._done.set()
            raise ValueError(exc.message) from None
        self.session.attach(self)
        return self

    def interrupt(self) -> None:
        """Ask the gateway to stop this execution; consuming it then raises ``Interrupted``."""
        if self.done:
            return
        if self.request is None:
            self._finish_local("interrupted")
            return
        self.session.send(Interrupt(self.id))

    async def wait(self, check: bool = True) -> Execution:
        """Run to the end and return the execution; results nobody is reading are closed.

        Raises ``QueryError``/``PythonError`` if the code failed, ``Interrupted`` if it was
        interrupted, ``GatewayConnectionError`` if the connection was lost (with
        ``check=False``: returns anyway; see ``status`` and ``errors``).
        """
        self.start()
        if not self._iterating_all:
            self._keep = {r.number for r in self._results if r._reading} | (self._keep or set())
            for stream in self._results:
                if stream.number not in self._keep and not stream._reading:
                    stream.close()
        await self._done.wait()
        if check:
            self._raise_for_status()
        return self

    def __await__(self) -> Generator[Any, None, Execution]:
        return self.wait().__await__()

    async def result(self, number: int = 0) -> ResultStream | None:
        """Result ``number`` once it opens; ``None`` if the execution ended without it."""
        self.start()
        while number >= len(self._results):
            if self.done:
                self._raise_for_status()
                return None
            self._changed.clear()
            await self._changed.wait()
        return self._results[number]

    async def results(self) -> AsyncGenerator[ResultStream, None]:
        """Each result in order as it opens; raises at the end if the execution failed."""
        self.start()
        n = 0
        while True:
            if n < len(self._results):
                yield self._results[n]
                n += 1
                continue
            if self.done:
                break
            self._changed.clear()
            await self._changed.wait()
        self._raise_for_status()

    async def batches(self) -> AsyncGenerator[Any, None]:
        """The batches of every result in turn (see ``ResultStream.batches``)."""
        self._iterating_all = True
        async with aclosing(self.results()) as results:
            async for stream in results:
                async with aclosing(stream.batches()) as batches:
                    async for batch in batches:
                        yield batch

    def __aiter__(self) -> AsyncIterator[Any]:
        return self.batches()

    async def rows(self, result: int = 0) -> list[Row]:
        """All rows of one result (default: the first); other results are closed unread."""
        stream = await self._only(result, "json")
        rows = [] if stream is None else await self._settled(stream.rows())
        await self.wait()
        return rows

    async def to_arrow(self, result: int = 0) -> pa.Table:
        """One result (default: the first) as a ``pyarrow.Table``, fetched in Arrow format.

        An execution without that result (e.g. DDL) gives an empty table with no columns.
        """
        import pyarrow as pa

        stream = await self._only(result, "arrow")
        table = pa.table({}) if stream is None else await self._settled(stream.to_arrow())
        await self.wait()
        return table

    async def to_pandas(self, result: int = 0, **kwargs: Any) -> pd.DataFrame:
        """``(await execution.to_arrow(result)).to_pandas(**kwargs)``."""
        return (await self.to_arrow(result)).to_pandas(**kwargs)

    async def _only(self, number: int, format: Format) -> ResultStream | None:
        self.start(format)
        if format == "arrow" and self.format != "arrow":
            raise ValueError(f"execution {self.id!r} was started in JSON format; pass format='arrow' to "
                             "execute(), or call to_arrow() before anything else uses it")
        if not self._iterating_all:
            self._keep = (self._keep or set()) | {number}
            for stream in self._results:
                if stream.number not in self._keep and not stream._reading:
                    stream.close()
        return await self.result(number)

    async def _settled(self, collect: Awaitable[T]) -> T:
        """``collect``'s value; if it fails, the execution's own outcome once it has finished."""
        try:
            return await collect
        except SparkGatewayError:
            await self._done.wait()  # the result ended badly: `finished` follows
            self._raise_for_status()
            raise

    def _raise_for_status(self) -> None:
        if self.status == "ok" or self.status is None:
            return
        if self.errors:
            raise self.errors[0]
        if self.status == "interrupted":
            raise Interrupted(f"execution {self.id!r} was interrupted", execution_id=self.id)
        raise SparkGatewayError(f"execution {self.id!r} failed", execution_id=self.id)

    # ------------------------------------------------------------ requests

    def _grant(self, number: int, rows: int) -> None:
        self.session.send(StreamRows(self.id, number, rows))

    def _send_close(self, number: int) -> None:
        if not self.done:
            self.session.send(CloseResult(self.id, number))

    # ------------------------------------------------------------ events (from the session's reader task)

    def receive(self, event: ExecutionEvent) -> None:
        """One event the gateway sent about this execution (the session routes them here by id)."""
        match event:
            case Rows():
                count, rows = page_batch(event)
                self._stream(event.result)._on_page(count, rows, event.last, event.truncated)
            case ArrowRows():
                self._stream(event.result)._on_page(event.count, event.payload, event.last, event.truncated)
            case Progress():
                self.progress = event
                self._call(self.on_progress, event)
            case Stdout(text=text):
                if self.keep_output:
                    self._out.append(text)
                self._call(self.on_stdout, text)
            case Stderr(text=text):
                if self.keep_output:
                    self._err.append(text)
                self._call(self.on_stderr, text)
            case Result():
                self._open_result(event)
            case ResultClosed():
                self._stream(event.result)._on_closed(event.reason)
            case Value():
                if event.truncated:  # said once, where the caller will see it; the text is the repr's beginning
                    log.warning("execution %s: its value is shown cut, the first %s of %s characters of its repr "
                                "(the gateway's max_value_chars)", self.id, f"{len(event.text):,}",
                                f"{event.length:,}")
                self.values.append(event)
            case Accepted():
                self.queue_position = event.queue_position
            case Started():
                self.started_at = time.monotonic()
            case Error():
                self._on_error(event)
            case Finished():
                self.summary = event
                self._finish_local(event.status)
            case _:
                assert_never(event)

    def fail(self, error: SparkGatewayError) -> None:
        """End the execution here with ``error``: its session failed, or its events were lost for good."""
        self._finish_local("error", error)

    def _stream(self, number: int) -> ResultStream:
        return self._results[number]

    def _open_result(self, event: Result) -> None:
        assert self.request is not None
        number = event.result
        if number != len(self._results):
            raise GatewayConnectionError(
                f"protocol violation: result {number} opened, expected {len(self._results)}")
        stream = ResultStream(self, number, event.schema, event.format, event.limit)
        self._results.append(stream)
        if self._keep is not None and number not in self._keep:
            stream.close()
        elif self.window > 1:  # the first page comes unasked; keep `window` pages on their way
            self._grant(number, (self.window - 1) * self.request.page_size)
        self._changed.set()

    def _on_error(self, event: Error) -> None:
        if event.request in _FOLLOW_UP_REQUESTS:
            if event.code not in _RACE_CODES:
                log.warning("gateway refused %s for %s: %s", event.request, self.id, event.message)
            return
        error = error_from_event(event)
        if error.code == ErrorCode.SPARK_SESSION_RESET:  # a notice: the execution goes on, in a new Spark session
            log.warning("execution %s: %s", self.id, error.message)
        self.errors.append(error)
        number = event.result
        if isinstance(number, int) and number < len(self._results):
            self._results[number].error = error
        if event.request == Execute.type:  # refused: no `finished` follows
            self._finish_local("error")

    def _finish_local(self, status: Status, error: SparkGatewayError | None = None) -> None:
        if self.done:
            return
        if error is not None:
            self.errors.append(error)
        self.status = status
        for stream in self._results:
            if not stream.ended:
                if status == "interrupted" and error is None:
                    stream._on_closed("interrupted")
                else:
                    stream._fail(error or SparkGatewayError(f"execution {self.id!r} ended before its result"))
        self._done.set()
        self._changed.set()
        self.session.detach(self.id)

    def _call(self, callback: Callable[[Any], Any] | None, arg: Any) -> None:
        if callback is None:
            return
        try:
            callback(arg)
        except Exception:  # noqa: BLE001 - a callback bug must not stop the session's reader
            log.exception("callback %r raised for execution %s", callback, self.id)


def arrow_rows(batch: pa.RecordBatch) -> list[Row]:
    """Rows of a record batch as lists of Python values (works with duplicate column names)."""
    columns = [column.to_pylist() for column in batch.columns]
    if not columns:
        return [[] for _ in range(batch.num_rows)]
    return [list(row) for row in zip(*columns, strict=True)]
