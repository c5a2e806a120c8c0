"""Session: one client's state on the event loop — its requests, its queue of executions, its events.

This is the loop side of a session. It answers each request, queues executions and has
them run one at a time, in FIFO order, on the session's worker thread, pages their
results to the client (:class:`~spark_gateway.cursor.ResultCursor`) and sends every event
through the one outbox. What runs on the worker thread is the
:class:`~spark_gateway.runner.Runner`'s. The two sides meet at two places only:
:meth:`Worker.run <spark_gateway.worker.Worker.run>` (loop to worker) and the runner's
calls of the few :class:`~spark_gateway.runner.LoopSide` methods below through a
:class:`~spark_gateway.worker.LoopBridge` (worker to loop). Spark is reached only through
the adapter given as ``spark`` (:mod:`spark_gateway.spark`, or a fake in fast tests).

An ``execute``, from the socket to Spark and back::

    Connection._read ─▶ Session.handle ─▶ Session._accept                  "accepted"
    Session._executor ─▶ Worker.run(Runner.run)                            "started"
        [worker thread] Runner._run_body ─▶ spark.run_sql / spark.run_python
                        Runner._show ─▶ spark.open_result ─▶ LoopBridge.call(Session.show)
    [loop] Session.show ─▶ ResultCursor.run ─▶ Outbox.put ─▶ Connection._write    "result", "rows"
    Session._after_code, Session._finish                                   "error", "finished"
"""

from __future__ import annotations

import itertools
import logging
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, assert_never

import anyio
import anyio.to_thread
from anyio.abc import TaskGroup

from spark_gateway_protocol.errors import ErrorCode, ProtocolError
from spark_gateway_protocol.lifecycle import State
from spark_gateway_protocol.messages import (
    LANGUAGES,
    MAX_LISTED_EXECUTIONS,
    STATE_ENDED_EXECUTIONS,
    Accepted,
    Catalog,
    CloseResult,
    Complete,
    Credit,
    Download,
    DownloadLink,
    Error,
    Event,
    Execute,
    ExecutionInfo,
    Executions,
    Inspect,
    Interrupt,
    ListExecutions,
    Lost,
    Ping,
    Pong,
    Progress,
    Request,
    SessionState,
    Started,
    Stderr,
    Stdout,
    StreamRows,
)

from . import spark as spark_adapter
from .catalog import Builtins
from .cursor import JOB_START_PATIENCE_SECONDS, ResultCursor
from .editor import Editor
from .errors import ExecutionInterrupted
from .execution import Execution
from .failures import error_event
from .history import History, describe, digest
from .links import LinkSigner, Target
from .outbox import Outbox
from .runner import MAX_VALUE_CHARS, Runner
from .worker import LoopBridge, Worker

log = logging.getLogger("spark_gateway.session")


# Results a session can still download (GET /download): the most recent ones; each keeps its
# DataFrame (a query plan, small unless a Python cell built it from local data).
MAX_DOWNLOADABLE_RESULTS = 100
# Seconds after which an interrupted execution's tag is interrupted again (see Session._reap):
# after it finished, and once more when the session closes. Spark jobs are slow to appear.
REAP_DELAYS = (0.3, 0.7, 1.5, 3.0)
CLOSE_REAP_DELAYS = (0.3, 1.0, 2.0)


@dataclass(frozen=True)
class ResultSource:
    """What a result was: its DataFrame and the execution's limit, to run it again for a download."""

    df: Any
    limit: int | None


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
    max_connections: int = 8  # connections attached to one session at once (the first one and joined ones)
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
        spark: Any = spark_adapter,
        builtins: Builtins | None = None,
        links: LinkSigner | None = None,
    ) -> None:
        """``spark``: the Spark adapter, :mod:`spark_gateway.spark` or a fake with the same functions;
        ``builtins``: Spark's functions and keywords, read once per gateway and shared by its sessions."""
        self.id = str(uuid.uuid4())
        # Attached to another gateway session's Spark session: that one owns (releases) it.
        self.owns_spark = spark_session_id is None
        self.outbox = outbox
        self.limits = limits
        self._spark = spark
        self._fetch_limiter = fetch_limiter
        self._worker = Worker(f"session-{self.id[:8]}")
        self._bridge = LoopBridge()  # bound to the loop in run()
        self._runner = Runner(
            spark=spark, spark_url=spark_url, spark_session_id=spark_session_id or str(uuid.uuid4()),
            worker=self._worker, bridge=self._bridge, loop_side=self,
            max_output_pending=limits.max_output_pending, max_value_chars=limits.max_value_chars,
            progress_interval_ms=limits.progress_interval_ms, prepare_namespace=prepare_namespace)
        self._executions: dict[str, Execution] = {}
        self._links = links
        self._sources: OrderedDict[tuple[str, int], ResultSource] = OrderedDict()  # downloadable results
        self._finished_ids: set[str] = set()  # never reusable, even once History forgot them
        self._history = History()  # the ended executions it remembers (list-executions, retries)
        self._queue: deque[Execution] = deque()
        self._queue_changed = anyio.Event()
        self._running: Execution | None = None
        self._tags = itertools.count(1)
        self._tg: TaskGroup | None = None
        self._stopped = anyio.Event()
        self._idle = anyio.Event()  # set while no execution is queued, running or streaming
        self._idle.set()
        self._unreaped: set[str] = set()  # tags of interrupted executions still being reaped
        self._closed = False
        self._editor = Editor(spark=spark, spark_url=spark_url, builtins=builtins or Builtins(spark), outbox=outbox,
                              languages=limits.languages, spark_session=self._editor_spark,
                              namespace=lambda: self._runner.namespace)
        self._opening_spark = False  # the worker was asked to open the Spark session for an editor
        self._spark_failure: Exception | None = None  # why it could not
        # When the last execution finished (or the session opened); None while one is pending.
        self.idle_since: float | None = time.monotonic()

    @property
    def spark_session(self) -> Any:
        """This session's Spark session, None before the first execution opened it (or after it was lost)."""
        return self._runner.spark_session

    def result_source(self, execution_id: str, number: int) -> ResultSource:
        """The query of one result, to download it whole; ProtocolError when there is none."""
        source = self._sources.get((execution_id, number))
        if source is not None:
            return source
        if execution_id not in self._executions and execution_id not in self._finished_ids:
            raise ProtocolError(ErrorCode.UNKNOWN_EXECUTION, f"no execution {execution_id!r} in this session",
                                request_id=execution_id, request_type="download")
        raise ProtocolError(ErrorCode.UNKNOWN_RESULT,
                            f"execution {execution_id!r} has no result {number} to download (the session keeps "
                            f"the last {MAX_DOWNLOADABLE_RESULTS} results)",
                            request_id=execution_id, request_type="download")

    @property
    def spark_session_id(self) -> str:
        """The id of this session's Spark session (a new one once the old one was lost or stopped)."""
        return self._runner.spark_session_id

    # ------------------------------------------------------------ lifetime

    async def run(self) -> None:
        """Run executions until closed (the connection owns this task)."""
        self._bridge.bind()
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
            # Code that runs is interrupted and reaped; results of code that is done are only
            # closed (each cursor makes sure its own operation stops: see ResultCursor._release).
            running = [e.tag for e in self._executions.values() if e.state is State.RUNNING]
            running += self._unreaped  # reaps cut short by the close
            await self._end_everything()
            self.outbox.close()
            # Let _stop_code stop the running code: it interrupts Spark only once the job
            # showed up. Interrupting at once would lose the interrupt when the job is still
            # being submitted (Spark 4.0), and the job would run on with nobody to stop it.
            # Closed results release their operations meanwhile; then every execution is finished.
            if self._executions:
                with anyio.move_on_after(JOB_START_PATIENCE_SECONDS + 5):
                    await self.wait_idle()
            if running:
                with anyio.move_on_after(5):
                    await self._reap(running, CLOSE_REAP_DELAYS)
            if self._tg is not None:
                self._tg.cancel_scope.cancel()
                await self._stopped.wait()  # cursors have released their Spark operations
            spark_session = self._runner.spark_session
            if spark_session is not None and self.owns_spark:
                with anyio.move_on_after(10):
                    await anyio.to_thread.run_sync(_quietly, self._spark.release, spark_session)
            self._worker.stop()
            log.info("session closed", extra={"session": self.id})

    async def shutdown(self, reason: str) -> None:
        """The gateway is stopping: say so, interrupt everything, wait for the executions to end."""
        self.outbox.put(Error(ErrorCode.SHUTTING_DOWN, reason))
        await self._interrupt_all()
        await self.wait_idle()

    async def wait_idle(self) -> None:
        """Until no execution is queued, running or streaming results."""
        await self._idle.wait()

    def spark_lost(self, cause: str) -> None:
        """The Spark Connect server lost every session (it was restarted): start over at the next use."""
        self._runner.spark_lost(cause)

    def counts(self) -> tuple[int, int]:
        """(queued, running or streaming) executions, for the metrics."""
        queued = len(self._queue)
        return queued, len(self._executions) - queued

    def executions(self, ended: int) -> tuple[list[ExecutionInfo], bool]:
        """Executions newest first: every live one, then at most ``ended`` ended ones; and whether more exist."""
        live = [describe(e) for e in reversed(self._executions.values())]
        remembered = self._history.newest_first()
        return live + remembered[:ended], len(remembered) > ended

    def state(self, *, last_seq: int | None, next_seq: int, lost: Lost | None, connections: int) -> SessionState:
        """The ``session-state`` snapshot a joined connection starts with (built on the loop, in one go)."""
        executions, truncated = self.executions(STATE_ENDED_EXECUTIONS)
        return SessionState(self.id, self.spark_session_id, last_seq, next_seq, self.outbox.replay_from,
                            connections, executions, truncated, lost, self.credit())

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
            case Interrupt():
                if request.id is None:
                    await self._interrupt_all()
                else:
                    await self._interrupt(self._execution(request.id, request.type))
            case StreamRows():
                self._cursor(request.id, request.result, request.type).grant(request.max_rows)
            case CloseResult():
                await self._cursor(request.id, request.result, request.type).close("closed", "by the client")
            case Ping():
                self.outbox.put(Pong(request.data))
            case Download():
                self.result_source(request.id, request.result)  # refuses an unknown one
                if self._links is None:
                    raise ProtocolError(ErrorCode.UNSUPPORTED, "downloads are not served here",
                                        request_id=request.id, request_type=request.type)
                url = self._links.url(Target(self.id, request.id, request.result, request.format))
                self.outbox.put(DownloadLink(request.id, request.result, request.format, url, self._links.seconds))
            case ListExecutions():
                executions, truncated = self.executions(max(0, MAX_LISTED_EXECUTIONS - len(self._executions)))
                self.outbox.put(Executions(request.id, executions[:MAX_LISTED_EXECUTIONS],
                                           truncated or len(executions) > MAX_LISTED_EXECUTIONS))
            case Complete() | Inspect() | Catalog():
                if self._tg is None:
                    raise ProtocolError(ErrorCode.INVALID_STATE, "the session is closing",
                                        request_id=request.id, request_type=request.type)
                self._editor.handle(request, self._tg)
            case _:
                assert_never(request)

    def _accept(self, request: Execute) -> None:
        def refuse(code: ErrorCode, message: str) -> ProtocolError:
            return ProtocolError(code, message, request_id=request.id, request_type="execute")

        if request.id in self._executions or request.id in self._finished_ids:
            if self._attach(request):
                return
            raise refuse(ErrorCode.DUPLICATE_ID, self._reuse_problem(request))
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
        if self._idle.is_set():
            self._idle = anyio.Event()
        position = len(self._queue) + (self._running is not None)
        self._queue.append(execution)
        execution.first_seq = self.outbox.put(Accepted(request.id, position))
        self._queue_changed.set()

    def _attach(self, request: Execute) -> bool:
        """A retried ``execute`` (same id, language and code): answer it without running anything again.

        Live: ``accepted`` (attached) and its events go on as they come. Ended and
        remembered: ``accepted`` (attached), its stored ``error`` and ``finished``, again.
        """
        live = self._executions.get(request.id)
        if live is not None:
            if digest(live.request) != digest(request):
                return False
            position = 0
            if live.state is State.QUEUED:
                position = self._queue.index(live) + (self._running is not None)
            self.outbox.put(Accepted(request.id, position, attached=True))
            return True
        ended = self._history.get(request.id)
        if ended is None or ended.digest != digest(request):
            return False
        self.outbox.put(Accepted(request.id, 0, attached=True))
        if ended.error is not None:
            self.outbox.put(ended.error, count=False)
        self.outbox.put(ended.finished, count=False)  # counted once, when it ended
        return True

    def _reuse_problem(self, request: Execute) -> str:
        if request.id in self._executions or self._history.get(request.id) is not None:
            return (f"execution id {request.id!r} was already used in this session for other code "
                    "(a retry must repeat the same language and code)")
        return (f"execution id {request.id!r} was already used in this session, by an execution that ended "
                f"too long ago to be remembered (the last {self._history.max_count} are); it is not run again")

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

    # ------------------------------------------------------------ stopping

    async def _interrupt_all(self) -> None:
        # Queued ones first: none of them may start while the running one is being stopped.
        for execution in self._queued_first():
            await self._interrupt(execution)

    async def _end_everything(self) -> None:
        """The session ends: interrupt what is queued or running, close the results of code that is done.

        An execution whose code is done, with rows left that the client did not read, was not
        interrupted: it ends as it ran (ok, or error), its results closed.
        """
        for execution in self._queued_first():
            if execution.state is State.DRAINING:
                for cursor in execution.open_cursors:
                    await cursor.close("closed", "as the session ended")
            else:
                await self._interrupt(execution)

    def _queued_first(self) -> list[Execution]:
        return sorted(self._executions.values(), key=lambda e: e.state is not State.QUEUED)

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
            spark_session = self._runner.spark_session
            if spark_session is not None and (execution.job_seen or age >= JOB_START_PATIENCE_SECONDS):
                await anyio.to_thread.run_sync(_quietly, self._spark.interrupt_tag, spark_session, execution.tag)
            for _ in range(25):
                # The awaits above and below let the executor move on: once this code has
                # returned, the worker may be running the next execution, which must not be hit.
                if execution.state is not State.RUNNING or self._running is not execution:
                    return
                if self._worker.interrupt():
                    break
                with anyio.move_on_after(0.02):
                    await execution.code_ended.wait()
                if execution.state is not State.RUNNING:
                    return
            with anyio.move_on_after(0.5):
                await execution.code_ended.wait()

    async def _reap(self, tags: list[str], delays: tuple[float, ...] | None = None) -> None:
        """Interrupt the tags again for a few seconds after the fact.

        Spark loses an interrupt that arrives while an operation is still being set up: its
        job then starts afterwards and would run with nobody listening. The job carries the
        execution's tag, so asking again catches it.
        """
        for delay in delays or REAP_DELAYS:
            await anyio.sleep(delay)
            spark_session = self._runner.spark_session
            if spark_session is not None:
                for tag in tags:
                    await anyio.to_thread.run_sync(_quietly, self._spark.interrupt_tag, spark_session, tag)
        self._unreaped.difference_update(tags)

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
                failure = await self._worker.run(partial(self._runner.run, execution))
                self._editor.after_code(execution.request)
                await self._after_code(execution, failure)
                # Like a notebook, the next cell waits until this one has shown its results: a
                # long aggregation holds the queue, a huge SELECT frees it after its first page.
                await self.first_pages(execution)
            finally:
                self._running = None
                execution.code_ended.set()
            if execution.open_cursors:
                execution.move("code_done")
            else:
                self._finish(execution)

    async def _after_code(self, execution: Execution, failure: BaseException | None) -> None:
        """The code returned: flush its output first, then report how it ended."""
        await self._drain(execution)
        if isinstance(failure, ExecutionInterrupted):
            execution.interrupt_requested = True  # only an interrupt raises it
            return
        if failure is None or (execution.interrupt_requested and self._spark.is_cancellation(failure)):
            return
        execution.failed = True
        sql = execution.request.code if execution.request.language == "sql" else None
        self._report(execution, error_event(self._spark, execution.id, failure, sql=sql,
                                            sql_offset=execution.sql_offset))

    def _report(self, execution: Execution, error: Error) -> None:
        """Send an execution's ``error``; the first one is what a retry of it is told again."""
        if execution.error is None:
            execution.error = error
        self.outbox.put(error)

    def _finish(self, execution: Execution) -> None:
        """Send ``finished`` once the code is done and every result has ended."""
        if execution.finished or execution.open_cursors:
            return
        if execution.state is State.RUNNING and execution is self._running:
            return  # the executor finishes it when the code returns
        streamed = execution.state is State.DRAINING
        execution.move(execution.final_status())
        finished = execution.finished_event()
        self.outbox.put(finished)
        extra = {"session": self.id, "execution": execution.id}
        if streamed:
            log.info("execution %s %s in %.1f ms: %.1f ms running, then streaming its results", execution.id,
                     finished.status, finished.elapsed_ms, execution.code_ms, extra=extra)
        else:
            log.info("execution %s %s in %.1f ms", execution.id, finished.status, finished.elapsed_ms, extra=extra)
        if execution.state is State.INTERRUPTED and execution.started_at is not None and self._tg is not None:
            self._unreaped.add(execution.tag)
            self._tg.start_soon(self._reap, [execution.tag])
        del self._executions[execution.id]
        self._finished_ids.add(execution.id)
        self._history.add(execution, finished)
        if not self._executions:
            self.idle_since = time.monotonic()
            self._idle.set()

    async def _editor_spark(self) -> Any:
        """The Spark session for an editor request: opened on the worker if no execution has opened it.

        Queued on the worker, the opening waits for an execution that runs: that one opens it.
        """
        if self._runner.spark_session is None and not self._opening_spark and self._tg is not None:
            self._opening_spark = True
            self._tg.start_soon(self._open_spark)
        while (session := self._runner.spark_session) is None:
            if not self._opening_spark:
                raise self._spark_failure or RuntimeError("the Spark session could not be opened")
            await anyio.sleep(0.02)
        return session

    async def _open_spark(self) -> None:
        try:
            await self._worker.run(self._runner.open_spark)
            self._spark_failure = None
        except Exception as exc:  # noqa: BLE001 - told to the editor requests that wait for it
            self._spark_failure = exc
        finally:
            self._opening_spark = False

    # ------------------------------------------------------------ called by the runner (LoopSide)

    async def emit(self, execution: Execution, event: Event) -> None:
        """Send ``event`` for the execution, after what its code printed before it."""
        await self._drain(execution)
        self.outbox.put(event)

    async def show(self, execution: Execution, stream: spark_adapter.ResultStream) -> None:
        """A result is open on Spark: announce it, then page it in a task of its own."""
        request = execution.request
        spark_session = self._runner.spark_session
        if execution.interrupt_requested or self.outbox.closed:
            # Interrupted (or the client left) while Spark was opening it: nobody will see it.
            await ResultCursor.abandon(stream, spark_session, self._fetch_limiter, spark=self._spark)
            return
        cursor = ResultCursor(
            execution_id=execution.id, number=len(execution.cursors), stream=stream,
            session=spark_session, outbox=self.outbox, page_size=request.page_size,
            limit=request.limit, format=request.format, limiter=self._fetch_limiter,
            on_error=self._cursor_failed, max_page_bytes=self.limits.max_page_bytes, spark=self._spark,
            layout=request.layout)
        execution.cursors.append(cursor)
        execution.result_sql_offsets.append(execution.sql_offset)
        self._keep_source(execution, cursor.number, stream)
        await self._drain(execution)
        cursor.announce()
        assert self._tg is not None
        self._tg.start_soon(self._run_cursor, execution, cursor)

    def _keep_source(self, execution: Execution, number: int, stream: Any) -> None:
        """Remember what the result was, so that it can be downloaded whole (the newest ones only)."""
        df = getattr(stream, "source", None)
        if df is None:
            return
        self._sources[execution.id, number] = ResultSource(df, execution.request.limit)
        while len(self._sources) > MAX_DOWNLOADABLE_RESULTS:
            self._sources.popitem(last=False)

    async def first_pages(self, execution: Execution) -> None:
        """Until every result the execution opened so far has sent its first page (or ended)."""
        for cursor in list(execution.cursors):
            await cursor.first_page.wait()

    def output_waiting(self, execution: Execution) -> None:
        """Printed output arrived: send it after a short pause that batches small writes."""
        if self._tg is not None:
            self._tg.start_soon(self._drain_after, 0.02, execution)

    def progress(self, execution: Execution, event: Progress) -> None:
        """A progress event, unless the execution has finished meanwhile."""
        if not execution.finished:
            self.outbox.put(event)

    # ------------------------------------------------------------ results and output

    async def _run_cursor(self, execution: Execution, cursor: ResultCursor) -> None:
        try:
            await cursor.run()
        finally:
            self._finish(execution)  # also when the session's tasks are cancelled: it ends, and says so

    def _cursor_failed(self, cursor: ResultCursor, exc: BaseException) -> None:
        execution = self._executions.get(cursor.execution_id)
        stopped_on_request = execution is not None and (execution.interrupt_requested or cursor.end is not None)
        if execution is None or (stopped_on_request and self._spark.is_cancellation(exc)):
            return  # the cancellation we asked for, not a failure
        execution.failed = True
        self._report(execution, error_event(self._spark, execution.id, exc, result=cursor.number,
                                            sql_offset=execution.result_sql_offsets[cursor.number]))

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


def _quietly(fn: Callable[..., Any], *args: Any) -> None:
    """Best-effort cleanup call: the server may already be gone."""
    try:
        fn(*args)
    except Exception:  # noqa: BLE001, S110 - cleanup must not raise over the real outcome
        pass
