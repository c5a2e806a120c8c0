"""Runner: the worker side of a session — runs an execution's code on the session's worker thread.

Everything here runs on the worker thread, except the progress callbacks, which run on
whichever thread is reading from Spark. It owns the session's Spark session (created at
the first execution, made anew after a loss) and the cell's Python namespace. It reaches
Spark only through the adapter it was given (:mod:`spark_gateway.spark`, or a fake with the
same functions) and the event loop only through a :class:`~spark_gateway.worker.LoopBridge`,
calling the few methods of :class:`LoopSide`. It never touches the outbox, and of an
execution it writes only the fields :mod:`spark_gateway.execution` marks as the worker's.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from functools import partial
from typing import Any, Protocol

from spark_gateway_protocol import sql_script
from spark_gateway_protocol.errors import ErrorCode
from spark_gateway_protocol.messages import Error, Event, Progress, StageProgress, Value

from . import capture
from .errors import ExecutionInterrupted
from .execution import Execution
from .worker import LoopBridge, Worker


class LoopSide(Protocol):
    """What the runner asks of the session's loop side (:class:`spark_gateway.session.Session`).

    The coroutines are called with :meth:`LoopBridge.call` (the worker waits for them), the
    plain functions with :meth:`LoopBridge.call_soon` (it does not).
    """

    async def emit(self, execution: Execution, event: Event) -> None:
        """Send ``event`` for the execution, after what its code printed before it."""

    async def show(self, execution: Execution, stream: Any) -> None:
        """A result is open on Spark (a ``spark.ResultStream``): announce it and page it to the client."""

    async def first_pages(self, execution: Execution) -> None:
        """Until every result the execution opened so far has sent its first page (or ended)."""

    def output_waiting(self, execution: Execution) -> None:
        """The code printed something: send it soon."""

    def progress(self, execution: Execution, event: Progress) -> None:
        """Send a progress event, unless the execution has finished meanwhile."""


class Runner:
    """Runs one execution at a time on the worker thread, for one gateway session."""

    def __init__(
        self,
        *,
        spark: Any,
        spark_url: str,
        spark_session_id: str,
        worker: Worker,
        bridge: LoopBridge,
        loop_side: LoopSide,
        max_output_pending: int,
        max_value_chars: int,
        progress_interval_ms: int,
        prepare_namespace: Callable[[Any], None] | None = None,
    ) -> None:
        self._spark = spark  # the adapter: spark_gateway.spark or a fake
        self._spark_url = spark_url
        self.spark_session_id = spark_session_id  # changes when the Spark session is made anew
        self.spark_session: Any = None  # the pyspark SparkSession, created on the worker at first use
        self._worker = worker
        self._bridge = bridge
        self._loop = loop_side
        self._max_output_pending = max_output_pending
        self._max_value_chars = max_value_chars
        self._progress_interval_ms = progress_interval_ms
        self._prepare_namespace = prepare_namespace
        self._namespace: dict[str, Any] = {}
        self._keep_namespace = False  # the next Spark session joins the Python namespace there is
        self._execution: Execution | None = None  # the one running now
        # Set from the loop, read here before the next use of Spark.
        self._lost_cause: str | None = None  # why the server lost the session, if the gateway knows

    # ------------------------------------------------------------ from the loop

    def spark_lost(self, cause: str) -> None:
        """The Spark Connect server lost every session: start over at the next use."""
        self._lost_cause = cause

    # ------------------------------------------------------------ the worker thread

    def run(self, execution: Execution) -> BaseException | None:
        """Run one execution's code; return how it failed (None: it did not).

        :class:`ExecutionInterrupted` comes back like any failure: whether it counts as
        one is for the loop side to say (it knows whether an interrupt was asked for).
        """
        self._execution = execution
        execution.sink = capture.OutputSink(partial(self._bridge.call_soon, self._loop.output_waiting, execution),
                                            self._max_output_pending, check_stop=self._worker.check_stop)
        capture.route_to(execution.sink)
        spark = self._spark
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
        except BaseException as exc:  # noqa: BLE001 - every failure becomes an error event (or an interrupt)
            return exc
        finally:
            spark.bind_thread(None)
            capture.route_to(None)
            self._execution = None
        return None

    def _run_body(self, execution: Execution, session: Any) -> None:
        request = execution.request
        if request.language == "sql":
            self._run_script(execution, session)
            return
        # Only user code gets async-exception interrupts; Spark calls are stopped by tag.
        value = self._worker.interruptible(
            partial(self._spark.run_python, self._namespace, request.code, f"<cell {request.id}>"), _is_cell)
        if self._spark.is_dataframe(value):
            self._show(execution, value)
        elif value is not None:
            self._bridge.call(self._loop.emit, execution, _value_event(execution.id, value, self._max_value_chars))

    def _run_script(self, execution: Execution, session: Any) -> None:
        """A cell's SQL statements in order, each result open before the next runs."""
        statements = sql_script.split(execution.request.code)
        for number, statement in enumerate(statements):
            if execution.interrupt_requested:
                raise ExecutionInterrupted
            execution.sql_offset = statement.offset
            self._show(execution, self._spark.run_sql(session, statement.text))
            if number + 1 < len(statements):
                # As between cells: what this statement shows comes before the next one runs.
                self._bridge.call(self._loop.first_pages, execution)
                if execution.failed:
                    return  # its result failed (and said so): the script stops there

    def _display(self, df: Any) -> None:
        """``display(df)`` in Python cells: stream ``df`` as another result of this cell."""
        execution = self._execution
        if execution is None or not self._spark.is_dataframe(df):
            raise TypeError("display() takes a Spark DataFrame, inside a running cell")
        self._show(execution, df)

    def _show(self, execution: Execution, df: Any) -> None:
        """Open ``df``'s result stream on Spark and hand it to the loop, which pages it."""
        stream = self._spark.open_result(self.spark_session, df, execution.request.limit,
                                         partial(self._result_progress, execution))
        if stream is not None:
            self._bridge.call(self._loop.show, execution, stream)

    # ------------------------------------------------------------ the Spark session

    @property
    def namespace(self) -> dict[str, Any]:
        """The cell variables; editor threads read copies of it (they never run code in it)."""
        return self._namespace

    def open_spark(self) -> Any:
        """Worker thread: the Spark session, opened now when an editor asks before any execution has."""
        if self.spark_session is None:
            return self._ensure_spark(None)  # type: ignore[arg-type]  # used only once a session exists
        return self.spark_session

    def _ensure_spark(self, execution: Execution) -> Any:
        """This session's Spark session, created at first use or after a loss."""
        spark = self._spark
        if self.spark_session is not None:
            # Asked before each reuse (one cheap RPC): a server restarted behind the gateway's back
            # lost the session, and the execution must run in a new one. A server that does not
            # answer keeps the session (it may come back with it); the execution reports it.
            cause, self._lost_cause = self._lost_cause, None
            cause = cause or spark.lost_cause(self.spark_session)
            if cause is not None:
                self._start_over(execution, keep_namespace=False, server_side=True, message=(
                    f"the Spark Connect server lost this session ({cause}); a new Spark session was "
                    "created: temp views, cached tables, SQL settings and Python variables of the old one are gone"))
        if self.spark_session is None:
            session = spark.connect(self._spark_url, self.spark_session_id)
            spark.prepare(session, self._progress_interval_ms)
            spark.register_progress(session, self._python_progress)
            if self._keep_namespace:
                self._namespace["spark"] = session
            else:
                self._namespace = {"spark": session, "display": self._display, "__name__": "__main__"}
            if self._prepare_namespace is not None:
                self._prepare_namespace(session)
            self.spark_session = session
        return self.spark_session

    def _forget_stopped_spark(self, execution: Execution, *, by_user: bool) -> None:
        """The cell stopped its Spark session (``spark.stop()``); say what that means.

        A stopped session is released on the server and cannot be used again: the next
        execution gets a new one, bound to ``spark`` in the same Python namespace. pyspark
        also stops a session when the server answers that it restarted (``by_user`` False).
        """
        if not by_user:
            self._start_over(execution, keep_namespace=False, server_side=False, message=(
                f"the Spark Connect server lost this session ({self._spark.RESTARTED}); the next execution gets "
                "a new Spark session: temp views, cached tables, SQL settings and Python variables of the old "
                "one are gone"))
            return
        self._start_over(execution, keep_namespace=True, server_side=True, message=(
            "this code stopped the session's Spark session (spark.stop()): its temp views, cached tables "
            "and SQL settings are gone, and DataFrames made from it no longer work; the next execution "
            "gets a new Spark session as `spark` (Python variables stay)"))

    def _start_over(self, execution: Execution, *, keep_namespace: bool, server_side: bool, message: str) -> None:
        """Drop this session's Spark session; the next use makes a new one. Say so."""
        self._spark.release_quietly(self.spark_session, server_side=server_side)
        self.spark_session = None
        self._keep_namespace = keep_namespace
        self.spark_session_id = str(uuid.uuid4())
        self._bridge.call(self._loop.emit, execution, Error(ErrorCode.SPARK_SESSION_RESET, message, id=execution.id))

    # ------------------------------------------------------------ progress (any thread)

    def _python_progress(self, stages: list[StageProgress], inflight: int,
                         operation_id: str | None, done: bool) -> None:
        """Operations the cell's Python code starts (collect, show, ...)."""
        execution = self._execution
        if execution is not None:
            self._result_progress(execution, stages, inflight, operation_id, done)

    def _result_progress(self, execution: Execution, stages: list[StageProgress], inflight: int,
                         operation_id: str | None, done: bool) -> None:
        """Throttle and de-duplicate Spark's progress reports, then send them by the loop."""
        if not stages:
            return
        execution.job_seen = True
        now = time.monotonic()
        key = (tuple(stages), inflight, done)
        last = execution.last_progress
        too_soon = not done and last is not None and now - last[0] < self._progress_interval_ms / 1000
        if last is not None and (last[1] == key or too_soon):
            return
        execution.last_progress = (now, key)
        event = Progress(
            execution.id, stages,
            tasks_done=sum(s.tasks_done for s in stages),
            tasks_total=sum(s.tasks_total for s in stages),
            inflight_tasks=inflight, bytes_read=sum(s.bytes_read for s in stages),
            operation_id=operation_id or None)
        self._bridge.call_soon(self._loop.progress, execution, event)


# A cell's trailing value is sent as its repr, cut here (and said so): a frame no client limit refuses.
MAX_VALUE_CHARS = 256 * 1024


def _value_event(execution_id: str, value: Any, max_chars: int) -> Value:
    text = repr(value)
    return Value(execution_id, text[:max_chars], type(value).__name__, truncated=len(text) > max_chars,
                 length=len(text))


def _is_cell(filename: str) -> bool:
    """Frames of the user's own code (compiled as ``<cell ID>``)."""
    return filename.startswith("<cell ")
