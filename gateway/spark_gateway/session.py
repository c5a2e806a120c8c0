"""Session: one client's state — its Spark session, worker thread, executions and results.

The session answers each request (on the event loop), runs executions one at a time
in FIFO order on its worker thread, and turns what happens there into events. Code on
the worker reaches back to the loop only through :meth:`_call_loop`, so no blocking
Spark call ever runs on the loop and every event goes through the one outbox.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import re
import time
import traceback
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, assert_never

import anyio
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread
from anyio.abc import TaskGroup

from spark_gateway_protocol.errors import ErrorCode, ProtocolError
from spark_gateway_protocol.lifecycle import State
from spark_gateway_protocol.messages import (
    LANGUAGES,
    Accepted,
    CloseResult,
    Credit,
    Error,
    Execute,
    Interrupt,
    Ping,
    Pong,
    Progress,
    QueryContext,
    Request,
    StageProgress,
    Started,
    Stderr,
    Stdout,
    StreamRows,
    Value,
)

from . import capture, spark, sql_script
from .cursor import JOB_START_PATIENCE_SECONDS, ResultCursor
from .execution import Execution
from .outbox import Outbox
from .worker import ExecutionInterrupted, Worker

log = logging.getLogger("spark_gateway.session")


# A cell's trailing value is sent as its repr, cut here (and said so): a frame no client limit refuses.
MAX_VALUE_CHARS = 256 * 1024


def _value_event(execution_id: str, value: Any, max_chars: int) -> Value:
    text = repr(value)
    return Value(execution_id, text[:max_chars], type(value).__name__, truncated=len(text) > max_chars,
                 length=len(text))


@dataclass(frozen=True)
class SessionLimits:
    """Per-session limits, announced to the client in the ``session`` event."""

    max_message_bytes: int = 1 << 20
    max_queued: int = 100
    max_page_size: int = 100_000
    max_output_pending: int = 1 << 20
    max_value_chars: int = MAX_VALUE_CHARS
    max_page_bytes: int = 1 << 20
    progress_interval_ms: int = 250
    languages: tuple[str, ...] = LANGUAGES


class Session:
    """The gateway side of one client; outlives a dropped connection (see :mod:`spark_gateway.lifetime`)."""

    def __init__(
        self,
        *,
        spark_url: str,
        outbox: Outbox,
        limits: SessionLimits,
        fetch_limiter: anyio.CapacityLimiter,
        prepare_namespace: Callable[[Any], None] | None = None,
        spark_session_id: str | None = None,
    ) -> None:
        self.id = str(uuid.uuid4())
        # Attached to another gateway session's Spark session: that one owns (releases) it.
        self.owns_spark = spark_session_id is None
        self.spark_session_id = spark_session_id or str(uuid.uuid4())
        self.outbox = outbox
        self.limits = limits
        self._spark_url = spark_url
        self._fetch_limiter = fetch_limiter
        self._prepare_namespace = prepare_namespace
        self._worker = Worker(f"session-{self.id[:8]}")
        self._spark: Any = None  # created on the worker thread at the first execution
        self._namespace: dict[str, Any] = {}
        self._executions: dict[str, Execution] = {}
        self._finished_ids: set[str] = set()
        self._queue: deque[Execution] = deque()
        self._queue_changed = anyio.Event()
        self._running: Execution | None = None
        self._tags = itertools.count(1)
        self._tg: TaskGroup | None = None
        self._token: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._last_progress: dict[str, tuple[float, Any]] = {}
        self._stopped = anyio.Event()
        self._unreaped: set[str] = set()  # tags of interrupted executions still being reaped
        self._keep_namespace = False  # the next Spark session joins the Python namespace there is
        self._spark_lost_cause: str | None = None  # why the server lost the session, if the gateway knows
        self._closed = False
        # When the last execution finished (or the session opened); None while one is pending.
        self.idle_since: float | None = time.monotonic()

    # ------------------------------------------------------------ lifetime

    async def run(self) -> None:
        """Run executions until closed (the connection owns this task)."""
        self._token = anyio.lowlevel.current_token()
        self._loop = asyncio.get_running_loop()  # uvicorn runs the gateway on asyncio
        try:
            async with anyio.create_task_group() as tg:
                self._tg = tg
                await self._executor()
        finally:
            self._tg = None  # no task may be started in it any more
            self._stopped.set()

    async def close(self) -> None:
        """The session ends: stop its work on Spark and release its Spark session."""
        if self._closed:
            return
        self._closed = True
        with anyio.CancelScope(shield=True):
            interrupted = [e.tag for e in self._executions.values() if e.state is not State.QUEUED]
            interrupted += self._unreaped  # reaps cut short by the close
            await self._interrupt_all()
            self.outbox.close()
            # Let _stop_code stop the running code: it interrupts Spark only once the job
            # showed up. Interrupting at once would lose the interrupt when the job is still
            # being submitted (Spark 4.0), and the job would run on with nobody to stop it.
            with anyio.move_on_after(JOB_START_PATIENCE_SECONDS + 5):
                while self._running is not None:
                    await anyio.sleep(0.05)
            if interrupted:
                with anyio.move_on_after(5):
                    await self._reap(interrupted, delays=(0.3, 1.0, 2.0))
            if self._tg is not None:
                self._tg.cancel_scope.cancel()
                await self._stopped.wait()  # cursors have released their Spark operations
            if self._spark is not None and self.owns_spark:
                with anyio.move_on_after(10):
                    await anyio.to_thread.run_sync(_quietly, spark.release, self._spark)
            self._worker.stop()
            log.info("session closed", extra={"session": self.id})

    async def shutdown(self, reason: str) -> None:
        """The gateway is stopping: say so, interrupt everything, wait for the executions to end."""
        self.outbox.put(Error(ErrorCode.SHUTTING_DOWN, reason))
        await self._interrupt_all()
        while self._executions:
            await anyio.sleep(0.05)

    def counts(self) -> tuple[int, int]:
        """(queued, running or streaming) executions, for the metrics."""
        queued = len(self._queue)
        return queued, len(self._executions) - queued

    def credit(self) -> list[Credit]:
        """The results still streaming and how far each may go, for a resumed client."""
        return [Credit(execution.id, cursor.number, cursor.until)
                for execution in self._executions.values()
                for cursor in execution.cursors if cursor.end is None]

    # ------------------------------------------------------------ requests

    async def handle(self, request: Request) -> None:
        """Answer one client request; refusals raise ProtocolError."""
        match request:
            case Execute():
                self._accept(request)
            case Interrupt(id=None):
                await self._interrupt_all()
            case Interrupt(id=str(rid)):
                await self._interrupt(self._execution(rid, request.type))
            case StreamRows():
                self._cursor(request.id, request.result, request.type).grant(request.max_rows)
            case CloseResult():
                await self._cursor(request.id, request.result, request.type).close("closed")
            case Ping():
                self.outbox.put(Pong(request.data))
            case _:
                assert_never(request)

    def _accept(self, request: Execute) -> None:
        def refuse(code: ErrorCode, message: str) -> ProtocolError:
            return ProtocolError(code, message, request_id=request.id, request_type="execute")

        if request.id in self._executions or request.id in self._finished_ids:
            raise refuse(ErrorCode.DUPLICATE_ID, f"execution id {request.id!r} was already used in this session")
        if request.language not in self.limits.languages:
            raise refuse(ErrorCode.UNSUPPORTED, f"language {request.language!r} is disabled on this gateway")
        if request.page_size > self.limits.max_page_size:
            raise refuse(ErrorCode.LIMIT_EXCEEDED,
                         f"page_size {request.page_size} exceeds max_page_size {self.limits.max_page_size}")
        if len(self._queue) >= self.limits.max_queued:
            raise refuse(ErrorCode.LIMIT_EXCEEDED, f"{len(self._queue)} executions already queued (max_queued)")
        execution = Execution(request, tag=f"spark-gateway-{self.id}-{next(self._tags)}")
        self._executions[request.id] = execution
        self.idle_since = None
        position = len(self._queue) + (self._running is not None)
        self._queue.append(execution)
        self.outbox.put(Accepted(request.id, position))
        self._queue_changed.set()

    def _execution(self, rid: str, request_type: str) -> Execution:
        execution = self._executions.get(rid)
        if execution is not None:
            return execution
        if rid in self._finished_ids:
            raise ProtocolError(ErrorCode.INVALID_STATE, f"execution {rid!r} has already finished",
                                request_id=rid, request_type=request_type)
        raise ProtocolError(ErrorCode.UNKNOWN_EXECUTION, f"no execution {rid!r} in this session",
                            request_id=rid, request_type=request_type)

    def _cursor(self, rid: str, number: int, request_type: str) -> ResultCursor:
        execution = self._execution(rid, request_type)
        if number >= len(execution.cursors):
            raise ProtocolError(ErrorCode.UNKNOWN_RESULT, f"execution {rid!r} has no result {number}",
                                request_id=rid, request_type=request_type)
        cursor = execution.cursors[number]
        if cursor.end is not None:
            raise ProtocolError(ErrorCode.INVALID_STATE, f"result {number} of {rid!r} has ended ({cursor.end})",
                                request_id=rid, request_type=request_type)
        return cursor

    async def _interrupt_all(self) -> None:
        # Queued ones first: none of them may start while the running one is being stopped.
        everything = sorted(self._executions.values(), key=lambda e: e.state is not State.QUEUED)
        for execution in everything:
            await self._interrupt(execution)

    async def _interrupt(self, execution: Execution) -> None:
        if execution.finished:
            return
        execution.interrupt_requested = True
        if execution.state is State.QUEUED:
            self._queue.remove(execution)
            self._finish(execution)
            return
        if execution.state is State.RUNNING and self._tg is not None:
            self._tg.start_soon(self._stop_code, execution)
        for cursor in execution.open_cursors:
            await cursor.close("interrupted")

    async def _reap(self, tags: list[str], delays: tuple[float, ...] = (0.3, 0.7, 1.5, 3.0)) -> None:
        """Interrupt the tags again for a few seconds after the fact.

        Spark loses an interrupt that arrives while an operation is still being set up: its
        job then starts afterwards and would run with nobody listening. The job carries the
        execution's tag, so asking again catches it.
        """
        for delay in delays:
            await anyio.sleep(delay)
            if self._spark is not None:
                for tag in tags:
                    await anyio.to_thread.run_sync(_quietly, spark.interrupt_tag, self._spark, tag)
        self._unreaped.difference_update(tags)

    async def _stop_code(self, execution: Execution) -> None:
        """Stop running code: Spark operations by tag, Python by an async exception.

        Repeated until the code returns, because an operation whose request is still in
        flight when the tag is interrupted would otherwise escape. The Python interrupt is
        tried often: it only lands while the thread is in the cell's own frames.
        """
        while execution.state is State.RUNNING:
            # Spark 4.0 loses an interrupt that lands while an operation is still submitting its
            # job (the job then runs on, orphaned): wait until Spark has shown a job.
            age = time.monotonic() - (execution.started_at or time.monotonic())
            if self._spark is not None and (execution.job_seen or age >= JOB_START_PATIENCE_SECONDS):
                await anyio.to_thread.run_sync(_quietly, spark.interrupt_tag, self._spark, execution.tag)
            for _ in range(25):
                if execution.state is not State.RUNNING or self._worker.interrupt():
                    break
                await anyio.sleep(0.02)
            await anyio.sleep(0.5)

    # ------------------------------------------------------------ executions

    async def _executor(self) -> None:
        while True:
            while not self._queue:
                self._queue_changed = anyio.Event()
                await self._queue_changed.wait()
            execution = self._queue.popleft()
            execution.move("start")
            self._running = execution
            self.outbox.put(Started(execution.id))
            try:
                await self._worker.run(partial(self._run_code, execution))
                # Like a notebook, the next cell waits until this one has shown its results: a
                # long aggregation holds the queue, a huge SELECT frees it after its first page.
                await self._first_pages(execution)
            finally:
                self._running = None
            if execution.open_cursors:
                execution.move("code_done")
            else:
                self._finish(execution)

    def _finish(self, execution: Execution) -> None:
        """Send ``finished`` once the code is done and every result has ended."""
        if execution.finished or execution.open_cursors:
            return
        if execution.state is State.RUNNING and execution is self._running:
            return  # the executor finishes it when the code returns
        execution.move(execution.final_status())
        finished = execution.finished_event()
        self.outbox.put(finished)
        log.info("execution %s %s in %.1f ms", execution.id, finished.status, finished.elapsed_ms,
                 extra={"session": self.id, "execution": execution.id})
        if execution.state is State.INTERRUPTED and execution.started_at is not None and self._tg is not None:
            self._unreaped.add(execution.tag)
            self._tg.start_soon(self._reap, [execution.tag])
        del self._executions[execution.id]
        self._finished_ids.add(execution.id)
        self._last_progress.pop(execution.id, None)
        if not self._executions:
            self.idle_since = time.monotonic()

    # ------------------------------------------------------------ the worker thread

    def _run_code(self, execution: Execution) -> None:
        """Worker thread: run one execution's code; results and events go to the loop."""
        sink = capture.OutputSink(lambda: self._call_loop_soon(self._drain_later, execution),
                                  self.limits.max_output_pending, check_stop=self._worker.check_stop)
        execution.sink = sink
        capture.route_to(sink)
        failure: BaseException | None = None
        try:
            session = self._ensure_spark(execution)
            spark.bind_thread(session)
            spark.add_tag(session, execution.tag)
            try:
                self._run_body(execution, session)
            finally:
                spark.remove_tag(session, execution.tag)
                if spark.is_stopped(session):
                    self._forget_stopped_spark(execution, by_user=spark.stopped_by_user(session))
        except ExecutionInterrupted:
            execution.interrupt_requested = True
        except BaseException as exc:  # noqa: BLE001 - every failure becomes an error event
            failure = exc
        finally:
            spark.bind_thread(None)
            capture.route_to(None)
        self._call_loop(self._after_code, execution, failure)

    def spark_lost(self, cause: str) -> None:
        """The Spark Connect server lost every session (it was restarted): start over at the next use."""
        self._spark_lost_cause = cause

    def _forget_stopped_spark(self, execution: Execution, *, by_user: bool) -> None:
        """Worker thread: the cell stopped its Spark session (``spark.stop()``); say what that means.

        A stopped session is released on the server and cannot be used again: the next
        execution gets a new one, bound to ``spark`` in the same Python namespace. pyspark
        also stops a session when the server answers that it restarted (``by_user`` False).
        """
        if not by_user:
            self._start_over(execution, keep_namespace=False, server_side=False, message=(
                f"the Spark Connect server lost this session ({spark.RESTARTED}); the next execution gets a new "
                "Spark session: temp views, cached tables, SQL settings and Python variables of the old one are gone"))
            return
        self._start_over(execution, keep_namespace=True, server_side=True, message=(
            "this code stopped the session's Spark session (spark.stop()): its temp views, cached tables "
            "and SQL settings are gone, and DataFrames made from it no longer work; the next execution "
            "gets a new Spark session as `spark` (Python variables stay)"))

    def _start_over(self, execution: Execution, *, keep_namespace: bool, server_side: bool, message: str) -> None:
        """Worker thread: drop this session's Spark session; the next use makes a new one. Say so."""
        spark.release_quietly(self._spark, server_side=server_side)
        self._spark = None
        self._keep_namespace = keep_namespace
        self.spark_session_id = str(uuid.uuid4())
        self._call_loop(self._emit, execution, Error(ErrorCode.SPARK_SESSION_RESET, message, id=execution.id))

    def _ensure_spark(self, execution: Execution) -> Any:
        """Worker thread: this session's Spark session, created at first use or after a loss."""
        if self._spark is not None:
            # Asked before each reuse (one cheap RPC): a server restarted behind the gateway's back
            # lost the session, and the execution must run in a new one. A server that does not
            # answer keeps the session (it may come back with it); the execution reports it.
            cause, self._spark_lost_cause = self._spark_lost_cause, None
            cause = cause or spark.lost_cause(self._spark)
            if cause is not None:
                self._start_over(execution, keep_namespace=False, server_side=True, message=(
                    f"the Spark Connect server lost this session ({cause}); a new Spark session was "
                    "created: temp views, cached tables, SQL settings and Python variables of the old one are gone"))
        if self._spark is None:
            session = spark.connect(self._spark_url, self.spark_session_id)
            spark.prepare(session, self.limits.progress_interval_ms)
            spark.register_progress(session, self._python_progress)
            if self._keep_namespace:
                self._namespace["spark"] = session
            else:
                self._namespace = {"spark": session, "display": self._display, "__name__": "__main__"}
            if self._prepare_namespace is not None:
                self._prepare_namespace(session)
            self._spark = session
        return self._spark

    def _run_body(self, execution: Execution, session: Any) -> None:
        request = execution.request
        if request.language == "sql":
            self._run_script(execution, session)
            return
        # Only user code gets async-exception interrupts; Spark calls are stopped by tag.
        value = self._worker.interruptible(
            partial(spark.run_python, self._namespace, request.code, f"<cell {request.id}>"), _is_cell)
        if spark.is_dataframe(value):
            self._show(execution, value)
        elif value is not None:
            self._call_loop(self._emit, execution, _value_event(execution.id, value, self.limits.max_value_chars))

    def _run_script(self, execution: Execution, session: Any) -> None:
        """Worker thread: a cell's SQL statements in order, each result open before the next runs."""
        statements = sql_script.split(execution.request.code)
        for number, statement in enumerate(statements):
            if execution.interrupt_requested:
                raise ExecutionInterrupted
            execution.sql_offset = statement.offset
            self._show(execution, spark.run_sql(session, statement.text))
            if number + 1 < len(statements):
                # As between cells: what this statement shows comes before the next one runs.
                self._call_loop(self._first_pages, execution)
                if execution.failed:
                    return  # its result failed (and said so): the script stops there

    async def _first_pages(self, execution: Execution) -> None:
        """Until every result the execution opened so far has sent its first page (or ended)."""
        for cursor in list(execution.cursors):
            await cursor.first_page.wait()

    def _display(self, df: Any) -> None:
        """``display(df)`` in Python cells: stream ``df`` as another result of this cell."""
        execution = self._running
        if execution is None or not spark.is_dataframe(df):
            raise TypeError("display() takes a Spark DataFrame, inside a running cell")
        self._show(execution, df)

    def _show(self, execution: Execution, df: Any) -> None:
        """Worker thread: open ``df``'s result stream on Spark and hand it to a cursor."""
        stream = spark.open_result(self._spark, df, execution.request.limit,
                                   partial(self._result_progress, execution.id))
        if stream is not None:
            self._call_loop(self._start_cursor, execution, stream)

    # ------------------------------------------------------------ loop side of the worker

    def _call_loop(self, fn: Callable[..., Awaitable[None]], *args: Any) -> None:
        """From the worker: run ``fn`` on the event loop and wait for it."""
        anyio.from_thread.run(fn, *args, token=self._token)

    def _call_loop_soon(self, fn: Callable[..., None], *args: Any) -> None:
        """From any thread: have ``fn`` run on the event loop, without waiting for it.

        For progress reports and printed output: the thread reading results or running
        the user's code goes on at once. Same queue as :meth:`_call_loop`, so order holds.
        """
        if self._loop is None:
            return  # not running yet: nobody to tell
        try:
            self._loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:
            pass  # the loop is shutting down

    async def _emit(self, execution: Execution, event: Any) -> None:
        await self._drain(execution)  # what the code printed before comes first
        self.outbox.put(event)

    async def _start_cursor(self, execution: Execution, stream: spark.ResultStream) -> None:
        request = execution.request
        if execution.interrupt_requested or self.outbox.closed:
            # Interrupted (or the client left) while Spark was opening it: nobody will see it.
            await ResultCursor.abandon(stream, self._spark, self._fetch_limiter)
            return
        cursor = ResultCursor(
            execution_id=execution.id, number=len(execution.cursors), stream=stream,
            session=self._spark, outbox=self.outbox, page_size=request.page_size,
            limit=request.limit, format=request.format, limiter=self._fetch_limiter,
            on_error=self._cursor_failed, max_page_bytes=self.limits.max_page_bytes)
        execution.cursors.append(cursor)
        execution.result_sql_offsets.append(execution.sql_offset)
        await self._drain(execution)
        cursor.announce()
        assert self._tg is not None
        self._tg.start_soon(self._run_cursor, execution, cursor)

    async def _run_cursor(self, execution: Execution, cursor: ResultCursor) -> None:
        await cursor.run()
        self._finish(execution)

    def _cursor_failed(self, cursor: ResultCursor, exc: BaseException) -> None:
        execution = self._executions.get(cursor.execution_id)
        stopped_on_request = execution is not None and (execution.interrupt_requested or cursor.end is not None)
        if execution is None or (stopped_on_request and spark.is_cancellation(exc)):
            return  # the cancellation we asked for, not a failure
        execution.failed = True
        self.outbox.put(_error_event(execution.id, exc, result=cursor.number,
                                     sql_offset=execution.result_sql_offsets[cursor.number]))

    def _drain_later(self, execution: Execution) -> None:
        """Printed output arrived: send it after a short pause that batches small writes."""
        if self._tg is not None:
            self._tg.start_soon(self._drain_after, 0.02, execution)

    async def _drain_after(self, delay: float, execution: Execution) -> None:
        await anyio.sleep(delay)
        await self._drain(execution)

    async def _drain(self, execution: Execution) -> None:
        """Send what the execution printed so far, in order, as stdout/stderr events."""
        if execution.sink is None:
            return
        for stream, text in execution.sink.take():
            cls = Stdout if stream == "stdout" else Stderr
            self.outbox.put(cls(execution.id, text))
            await self.outbox.wait_room()

    async def _after_code(self, execution: Execution, failure: BaseException | None) -> None:
        """The code returned: flush its output first, then report how it ended."""
        await self._drain(execution)
        if failure is None:
            return
        interrupted = spark.is_cancellation(failure) or isinstance(failure, ExecutionInterrupted)
        if execution.interrupt_requested and interrupted:
            return
        execution.failed = True
        sql = execution.request.code if execution.request.language == "sql" else None
        self.outbox.put(_error_event(execution.id, failure, sql=sql, sql_offset=execution.sql_offset))

    # ------------------------------------------------------------ progress

    def _python_progress(self, stages: list[StageProgress], inflight: int,
                         operation_id: str | None, done: bool) -> None:
        execution = self._running
        if execution is not None:
            self._result_progress(execution.id, stages, inflight, operation_id, done)

    def _result_progress(self, execution_id: str, stages: list[StageProgress], inflight: int,
                         operation_id: str | None, done: bool) -> None:
        """Any thread: throttle and de-duplicate Spark's progress reports, then emit."""
        execution = self._executions.get(execution_id)
        if execution is not None and stages:
            execution.job_seen = True
        now = time.monotonic()
        key = (tuple(stages), inflight, done)
        last = self._last_progress.get(execution_id)
        too_soon = not done and last is not None and now - last[0] < self.limits.progress_interval_ms / 1000
        if last is not None and (last[1] == key or too_soon):
            return
        if not stages:
            return
        self._last_progress[execution_id] = (now, key)
        event = Progress(
            execution_id, stages,
            tasks_done=sum(s.tasks_done for s in stages),
            tasks_total=sum(s.tasks_total for s in stages),
            inflight_tasks=inflight, bytes_read=sum(s.bytes_read for s in stages),
            operation_id=operation_id or None)
        self._call_loop_soon(self._put_if_running, execution_id, event)

    def _put_if_running(self, execution_id: str, event: Progress) -> None:
        if execution_id in self._executions:
            self.outbox.put(event)


def _is_cell(filename: str) -> bool:
    """Frames of the user's own code (compiled as ``<cell ID>``)."""
    return filename.startswith("<cell ")


def _quietly(fn: Callable[..., Any], *args: Any) -> None:
    """Best-effort cleanup call: the server may already be gone."""
    try:
        fn(*args)
    except Exception:  # noqa: BLE001, S110 - cleanup must not raise over the real outcome
        pass


def _error_event(execution_id: str, exc: BaseException, result: int | None = None,
                 sql: str | None = None, sql_offset: int = 0) -> Error:
    """Translate an execution failure into the protocol's error event (once, here).

    ``sql_offset``: where in the cell's SQL the failing statement's text began (a script's
    statements are sent apart; see gateway/sql_script.py).
    """
    fields = spark.spark_error_fields(exc)
    if fields is not None:
        if sql_offset:
            fields["message"] = sql_script.tidy_message(fields["message"])
            fields["context"] = [QueryContext(c.fragment, c.start + sql_offset, c.stop + sql_offset)
                                 for c in fields.get("context") or []]
        if sql is not None and not fields.get("context"):  # Spark's (line, pos) is in the SQL text
            fields["context"] = _parse_position(fields["message"], sql)
        return Error(id=execution_id, result=result, **fields)
    if isinstance(exc, SyntaxError):
        return Error(ErrorCode.PYTHON_ERROR, f"{type(exc).__name__}: {exc}", id=execution_id,
                     exception=type(exc).__name__,
                     traceback="".join(traceback.format_exception_only(exc)))
    return Error(ErrorCode.PYTHON_ERROR, f"{type(exc).__name__}: {exc}", id=execution_id,
                 result=result, exception=type(exc).__name__, traceback=_user_traceback(exc))


_POSITION = re.compile(r"\(line (\d+), pos (\d+)\)")
_TOKEN = re.compile(r"\S+")


def _parse_position(message: str, code: str) -> list[QueryContext]:
    """Spark's parse errors give (line, pos) in the text only; turn it into a code fragment."""
    found = _POSITION.search(message)
    if found is None:
        return []
    line, pos = int(found.group(1)), int(found.group(2))
    lines = code.split("\n")
    if not 1 <= line <= len(lines) or pos > len(lines[line - 1]):
        return []
    start = sum(len(text) + 1 for text in lines[: line - 1]) + pos
    token = _TOKEN.match(code, start)
    stop = token.end() - 1 if token else start
    return [QueryContext(code[start : stop + 1], start, stop)]


_GATEWAY_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _user_traceback(exc: BaseException) -> str:
    """The traceback from the cell's own frames on, without the gateway's frames at either
    end (the exec machinery before, a guard such as sys.stdin's after): noise to the user."""
    tb = exc.__traceback__
    while tb is not None and not tb.tb_frame.f_code.co_filename.startswith("<cell "):
        tb = tb.tb_next
    report = traceback.TracebackException(type(exc), exc, tb or exc.__traceback__)
    while len(report.stack) > 1 and report.stack[-1].filename.startswith(_GATEWAY_DIR):
        report.stack.pop()
    return "".join(report.format())
