"""The Spark adapter: the only module that imports pyspark.

Everything here blocks and runs in worker threads, never on the event loop. It opens
Spark Connect sessions with a short retry policy, runs SQL and Python, streams result
batches incrementally with client-chosen operation ids (so one result can be
interrupted and released on its own), and translates pyspark exceptions into the
protocol's error fields exactly once.

This module is the seam between the gateway and Spark: a session (:mod:`~spark_gateway.session`,
:mod:`~spark_gateway.runner`, :mod:`~spark_gateway.cursor`) takes it as a ``spark`` argument
and uses only the functions below, so a fake with the same functions can stand in for it
in fast tests. Blocking ones are called in worker threads only.

- Sessions: ``connect(url, session_id)``, ``prepare(session, progress_interval_ms)``,
  ``register_progress(session, callback)``, ``answers(session)``, ``is_stopped(session)``,
  ``release(session)``, ``release_quietly(session, server_side=)``.
- Running code: ``bind_thread(session | None)``, ``add_tag`` / ``remove_tag(session, tag)``,
  ``run_sql(session, text)``, ``run_python(namespace, code, filename)``, ``is_dataframe(value)``.
- Results: ``open_result(session, df, limit, on_progress)`` returns a :class:`ResultStream`
  (``operation_id``, ``columns``, ``job_started``, ``on_job_start``, ``finished``, ``source``,
  ``next_batch()``, ``next_chunk()``, ``drain()``, ``arrow_schema()``, ``close()``) or None.
- Downloads (any thread): ``open_download(session, df, limit)``, ``download_schema(stream)``.
- Stopping: ``interrupt_tag(session, tag)``, ``interrupt_operation(session, operation_id)``.
- Errors: ``is_cancellation(exc)``, ``is_unavailable(exc)``, ``spark_error_fields(exc)``.
- The catalog (editor requests, any thread): ``list_catalogs``, ``list_databases``, ``list_relations``,
  ``list_columns``, ``current_namespace``, ``list_functions``, ``describe_function``, ``sql_keywords``,
  ``dataframe_columns(df)``.

``callback`` / ``on_progress`` receive ``(stages, inflight_tasks, operation_id, done)``
on the thread that reads from Spark.
"""

from __future__ import annotations

import ast
import atexit
import linecache
import logging
import os
import re
import socket
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, cast

import grpc
import pyarrow as pa
from pyspark.errors import PySparkException
from pyspark.errors.exceptions.connect import SparkConnectException
from pyspark.sql.connect.client import DefaultChannelBuilder
from pyspark.sql.connect.client.retries import DefaultPolicy
from pyspark.sql.connect.dataframe import DataFrame
from pyspark.sql.connect.expressions import LiteralExpression
from pyspark.sql.connect.session import SparkSession
from pyspark.sql.connect.shell.progress import Progress as SparkProgress
from pyspark.sql.connect.shell.progress import StageInfo
from pyspark.sql.connect.shell.progress import from_proto as progress_from_proto
from pyspark.sql.connect.types import proto_schema_to_pyspark_data_type
from pyspark.sql.types import StructType

from spark_gateway_protocol.arrow_json import month_interval_type
from spark_gateway_protocol.errors import ErrorCode
from spark_gateway_protocol.messages import CatalogEntry, Column, QueryContext, StageProgress

from .spark_url import SparkUrl, is_loopback_host

ProgressCallback = Callable[[list[StageProgress], int, str | None, bool], None]

# /readyz waits this long at most for Spark's answer.
PING_TIMEOUT_SECONDS = 2.0
# A session about to be reused waits this long at most for a server that listens: one that
# just restarted takes seconds to answer its first call (1-6 s measured on a loaded 2-core machine).
SESSION_CHECK_TIMEOUT_SECONDS = 10.0
RESTARTED = "the Spark Connect server restarted"
# Spark's answer to a session the server does not have since it restarted (see is_session_gone).
_GONE_MARKERS = ("INVALID_HANDLE.SESSION_CHANGED", "incorrect server side session identifier")
# gRPC reconnects to a server that went away with a backoff growing to 2 minutes (measured: a
# session was refused for 7.5 s after a 15 s outage); a restarted server is used within ~1 s.
_CHANNEL_OPTIONS = [("grpc.initial_reconnect_backoff_ms", 250), ("grpc.max_reconnect_backoff_ms", 1000)]

# Conditions that mean "the server is gone or restarted", not "your query is wrong".
_UNAVAILABLE_CONDITIONS = {"RETRIES_EXCEEDED", "NO_ACTIVE_SESSION", "SESSION_CHANGED"}
_UNAVAILABLE_MARKERS = ("StatusCode.UNAVAILABLE", "SESSION_CHANGED", "NO_ACTIVE_SESSION",
                        "INVALID_HANDLE.SESSION_CLOSED", "Connection refused", "failed to connect")


def quiet_client_logs() -> None:
    """pyspark logs every gRPC error at ERROR; the gateway reports errors itself."""
    if "SPARK_CONNECT_LOG_LEVEL" not in os.environ:
        for name in ("pyspark.sql.connect.logging", "SQLQueryContextLogger", "DataFrameQueryContextLogger"):
            logging.getLogger(name).setLevel(logging.CRITICAL)


class _SparkSession(SparkSession):
    """pyspark's Connect session, remembering whether ``stop()`` was called.

    pyspark also marks a session stopped when the server answers that it restarted
    (``INVALID_HANDLE.SESSION_CHANGED``); only this flag tells that apart from user code's
    ``spark.stop()``.
    """

    stop_called = False

    def stop(self) -> None:
        self.stop_called = True
        super().stop()


def connect(url: str, session_id: str | None = None, *, user_id: str | None = None) -> SparkSession:
    """A Spark Connect session (no RPC until first use): new, or the one with ``session_id``.

    Sessions are isolated from each other; two gateways that connect with the same
    ``session_id`` share one (its temp views, conf and cached plans). ``session_id`` and
    ``user_id`` join the URL's own ``;key=value`` parameters (see :mod:`spark_gateway.spark_url`).
    """
    parsed = SparkUrl.parse(url)
    # User code's builder.getOrCreate() must never start a JVM; the server's URL, nobody's session or user.
    os.environ.setdefault("SPARK_REMOTE", str(parsed.with_params(session_id=None, user_id=None)))
    # Makes `from pyspark.sql import functions as F` in user code resolve to Spark Connect.
    os.environ["SPARK_CONNECT_MODE_ENABLED"] = "1"
    given = {"session_id": session_id, "user_id": user_id}
    target = parsed.with_params(**{k: v for k, v in given.items() if v is not None})
    spark = _SparkSession(connection=LoopbackChannelBuilder(str(target), _CHANNEL_OPTIONS))
    SparkSession._set_default_and_active_session(spark)  # what the builder's create() does
    # The default policy retries for ~10 minutes against a dead server; fail in seconds.
    spark.client.set_retry_policies([DefaultPolicy(max_retries=3, initial_backoff=100, max_backoff=1000)])
    return spark


class LoopbackChannelBuilder(DefaultChannelBuilder):
    """pyspark's channel, except that a token to a loopback address without ``use_ssl`` is sent in
    plain text with gRPC's local credentials, as pyspark itself does for the name ``localhost``
    (``sc://127.0.0.1:P/;token=t`` would otherwise attempt TLS against a plain-text server)."""

    def toChannel(self) -> grpc.Channel:
        token = self.token
        if token is not None and not self.use_ssl and is_loopback_host(self.host):
            credentials = grpc.composite_channel_credentials(
                grpc.local_channel_credentials(), grpc.access_token_call_credentials(token))
            return self._secure_channel(self.endpoint, credentials)
        return super().toChannel()


def prepare(spark: SparkSession, progress_interval_ms: int) -> None:
    """Per-session settings: frequent progress, short error messages (the stack is fetched apart)."""
    spark.conf.set("spark.connect.progress.reportInterval", f"{progress_interval_ms}ms")
    spark.conf.set("spark.sql.connect.serverStacktrace.enabled", "false")


def release(spark: SparkSession) -> None:
    """Release the server-side session (its temp views, conf and cached results).

    Also lets the client object go: pyspark registers every client with ``atexit``, so a
    stopped session would otherwise stay in memory with its progress handlers and all
    they reference (the gateway session, its outbox and its Python namespace).
    """
    client = spark.client
    try:
        spark.stop()
    finally:
        spark.clearProgressHandlers()
        for hook in _EXIT_HOOKS:
            if (registered := getattr(client, hook, None)) is not None:
                atexit.unregister(registered)


# The method each pyspark registers with atexit per client: 4.0, 4.1, then 4.2 and later.
_EXIT_HOOKS = ("_cleanup_ml", "_cleanup_ml_cache", "_on_exit")


def server_version(spark: SparkSession) -> str:
    """The server's Spark version (pyspark caches it per session: use :func:`ping` to ask again)."""
    return str(spark.version)


def ping(spark: SparkSession, timeout: float = PING_TIMEOUT_SECONDS, *, patient: bool = False) -> str:
    """Ask the server its version now: one RPC, never cached, no retries, ``timeout`` seconds at most.

    Raises pyspark's exception when the server cannot answer, or answers that it no
    longer has this session (:func:`is_session_gone`). ``patient``: wait (within
    ``timeout``) for a connection that is being re-established, instead of failing at once.
    """
    client = spark.client
    request = client._analyze_plan_request_with_metadata()
    request.spark_version.SetInParent()
    try:
        response = client._stub.AnalyzePlan(request, metadata=client._builder.metadata(), timeout=timeout,
                                            wait_for_ready=patient)
        client._verify_response_integrity(response)  # a restarted server answers with another server session id
    except Exception as exc:  # noqa: BLE001 - a gRPC error becomes pyspark's exception for it
        client._handle_error(exc)
    return str(response.spark_version.version)


# Minor versions of Spark Connect servers the gateway is tested against (tests/test_spark_versions.py).
TESTED_SERVERS = ("4.0", "4.1", "4.2", "4.3")


def untested_server(version: str) -> str | None:
    """A warning when a server of ``version`` is outside the tested range, else None."""
    if ".".join(version.split(".")[:2]) in TESTED_SERVERS:
        return None
    return (f"the Spark Connect server runs Spark {version}, outside the versions this gateway is tested "
            f"with ({TESTED_SERVERS[0]}.x to {TESTED_SERVERS[-1]}.x); see docs/deployment.md, Spark versions")


def run_sql(spark: SparkSession, code: str) -> DataFrame:
    """Run one SQL statement; commands run now, queries become a lazy DataFrame."""
    return cast(DataFrame, spark.sql(code))  # pyspark 4.3 annotates the classic/connect parent class


# ---------------------------------------------------------------- Python cells


def run_python(namespace: dict[str, Any], code: str, filename: str) -> Any:
    """Exec a cell; return the value of a trailing expression (notebook convention) or None."""
    tree = ast.parse(code, filename, "exec")
    # Tracebacks show the cell's own lines.
    linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
    last = tree.body[-1] if tree.body and isinstance(tree.body[-1], ast.Expr) else None
    if last is not None:
        tree.body.pop()
    exec(compile(tree, filename, "exec"), namespace)
    if last is None:
        return None
    return eval(compile(ast.Expression(last.value), filename, "eval"), namespace)


def is_dataframe(value: object) -> bool:
    return isinstance(value, DataFrame)


def answers(spark: SparkSession) -> bool:
    """Whether the server answers now and still knows this session (a restarted one does not)."""
    try:
        ping(spark)
    except Exception:  # noqa: BLE001 - unreachable, or another server: either way not this session's
        return False
    return True


def lost_cause(spark: SparkSession) -> str | None:
    """Why the server no longer has this session, asked now (one :func:`ping`); None while it has it.

    A server that does not answer (down, unreachable, too slow) says nothing about the
    session, which may well be there when it is back: None, and the execution that runs
    next reports the server unavailable. A server that just came back (it listens, but gRPC
    reconnects only after a backoff, and a fresh JVM answers slowly) is waited for, so that
    the execution after a restart runs in a new session.
    """
    for patient in (False, True):
        try:
            ping(spark, SESSION_CHECK_TIMEOUT_SECONDS, patient=patient)
            return None
        except Exception as exc:  # noqa: BLE001 - only "gone" matters here; the rest is reported by the execution
            if is_session_gone(exc):
                return RESTARTED
            if patient or not (is_unavailable(exc) and _listening(spark.client._builder)):
                return None
    return None


def _listening(channel: Any) -> bool:
    """Whether the server's port takes connections (a server that is down refuses them at once)."""
    host, port = channel.endpoint.rsplit(":", 1)
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=1.0):
            return True
    except OSError:
        return False


def stopped_by_user(spark: SparkSession) -> bool:
    """Whether the session is stopped because code called ``spark.stop()`` (else: the server lost it)."""
    return bool(getattr(spark, "stop_called", True))


def release_quietly(spark: SparkSession, *, server_side: bool = True) -> None:
    """Let go of a session the server lost: no error, and no client object left behind.

    ``server_side=False`` when the server does not answer: no release RPC (its retries would
    only delay the execution that found the server gone).
    """
    if not server_side:
        spark.release_session_on_close = False
    try:
        release(spark)
    except Exception:  # noqa: BLE001 - the server has nothing left to release
        pass


def is_stopped(spark: SparkSession) -> bool:
    """Whether ``spark.stop()`` was called on this session (by user code: the gateway never does)."""
    return bool(spark.is_stopped)


def bind_thread(spark: SparkSession | None) -> None:
    """Make ``spark`` this thread's active session, so getOrCreate() returns it and no other."""
    SparkSession._active_session.session = spark  # type: ignore[attr-defined]


def add_tag(spark: SparkSession, tag: str) -> None:
    spark.addTag(tag)  # thread-local: covers every operation this thread starts


def remove_tag(spark: SparkSession, tag: str) -> None:
    spark.removeTag(tag)


def interrupt_tag(spark: SparkSession, tag: str) -> list[str]:
    return list(spark.interruptTag(tag))


def interrupt_operation(spark: SparkSession, operation_id: str) -> list[str]:
    return list(spark.interruptOperation(operation_id))


def register_progress(spark: SparkSession, callback: ProgressCallback) -> Callable[..., None]:
    """Progress of operations the user's Python code starts (collect, show, ...)."""
    handler = _progress_handler(callback)
    spark.registerProgressHandler(handler)
    return handler


def _progress_handler(callback: ProgressCallback) -> Any:  # pyspark's ProgressHandler protocol
    def handler(stages: list[StageInfo] | None, inflight_tasks: int,
                operation_id: str | None, done: bool) -> None:
        callback([_stage(s) for s in stages or ()], inflight_tasks, operation_id, done)
    return handler


def _stage(s: StageInfo) -> StageProgress:
    return StageProgress(s.stage_id, s.num_completed_tasks, s.num_tasks, s.num_bytes_read, s.done)


# ---------------------------------------------------------------- result streams


_IPC_CONTINUATION = b"\xff\xff\xff\xff"
IPC_EOS = _IPC_CONTINUATION + b"\x00\x00\x00\x00"  # an Arrow IPC stream's end marker


class ArrowResponse:
    """One ExecutePlan response's rows as Spark sent them: an Arrow IPC stream.

    Spark writes each response as a schema message, the record batch message(s) and an
    end-of-stream marker. Arrow pages forward the record batch messages as they are
    (``body``), with no decoding and no re-serialising; JSON pages and pages that cut a
    response in two decode it (``batches``).
    """

    __slots__ = ("_body_start", "_whole", "data", "rows")

    def __init__(self, data: bytes, rows: int) -> None:
        self.data = data
        self.rows = rows
        self._whole: pa.RecordBatch | None = None  # decoded once, for pages that cut it
        self._body_start: int | None = None
        if data[:4] == _IPC_CONTINUATION and data[-8:] == IPC_EOS and len(data) >= 16:
            self._body_start = 8 + int.from_bytes(data[4:8], "little")  # the schema message's end

    def __len__(self) -> int:
        return self.rows

    @property
    def forwardable(self) -> bool:
        """The layout is the usual one, so ``schema_message`` and ``body`` can be sent as they are."""
        return self._body_start is not None

    @property
    def schema_message(self) -> memoryview:
        return memoryview(self.data)[: self._body_start]

    @property
    def body(self) -> memoryview:
        """The record batch messages, without the schema before them and the end marker after."""
        return memoryview(self.data)[self._body_start : -8]

    def batches(self) -> list[pa.RecordBatch]:
        """Decoded, and checked against the row count Spark announced, as pyspark does."""
        with pa.ipc.open_stream(self.data) as reader:
            batches = list(reader)
        count = sum(batch.num_rows for batch in batches)
        if count != self.rows:
            raise SparkConnectException(f"Arrow batch has {count} rows, Spark announced {self.rows}")
        return batches

    def slice(self, offset: int, length: int) -> pa.RecordBatch:
        """Rows ``offset`` to ``offset + length`` (decodes, once: only for pages that cut this response)."""
        if self._whole is None:
            batches = self.batches()
            self._whole = batches[0] if len(batches) == 1 else pa.concat_batches(batches)
        return self._whole.slice(offset, length)


@dataclass
class ResultStream:
    """One result's Arrow responses, pulled one at a time from Spark."""

    operation_id: str
    columns: list[Column]
    _responses: Iterator[Any]
    _early: list[ArrowResponse] = field(default_factory=list)  # rows that came before the schema
    _decoded: deque[pa.RecordBatch] = field(default_factory=deque)
    opened_at: float = field(default_factory=time.monotonic)
    # Spark reported a stage, or sent rows: its job exists, so an interrupt now reaches it.
    job_started: bool = False
    on_job_start: Callable[[], None] | None = None  # called once, on the reading thread, as job_started turns true
    finished: bool = False  # every batch was read
    spark_schema: StructType = field(default_factory=StructType)
    source: DataFrame | None = None  # what was opened (before any limit): a download runs it again
    _call: Any = None  # the gRPC call, once open

    def cancel(self) -> None:
        """Cancel the stream from any thread (a reader blocked in ``next_batch`` then raises)."""
        if self._call is not None:
            self._call.cancel()  # grpc: thread-safe, unlike closing the generator in use

    def next_batch(self) -> pa.RecordBatch | None:
        """The next decoded batch, or None at the end (blocking: call from a worker thread)."""
        return self._next_rows(forward=False)  # type: ignore[return-value]

    def next_chunk(self) -> ArrowResponse | pa.RecordBatch | None:
        """The next rows for an Arrow page: Spark's response as it came where it can be
        forwarded, else decoded batches; None at the end (blocking)."""
        return self._next_rows(forward=True)

    def _next_rows(self, forward: bool) -> ArrowResponse | pa.RecordBatch | None:
        while not self._decoded:
            response = self._next_response()
            if response is None:
                return None
            if forward and response.forwardable:
                return response
            self._decoded.extend(response.batches())
        return self._decoded.popleft()

    def _next_response(self) -> ArrowResponse | None:
        if self._early:
            self.job_starts()
            return self._early.pop(0)
        for item in self._responses:
            if isinstance(item, ArrowResponse):
                self.job_starts()
                return item
        self.finished = True
        return None

    def job_starts(self) -> None:
        """Spark showed the job (a stage, or rows): note it, and tell ``on_job_start`` once."""
        if not self.job_started:
            self.job_started = True
            if self.on_job_start is not None:
                self.on_job_start()

    def drain(self) -> None:
        """Read and drop what is left (blocking); a failure just ends it (we are leaving)."""
        try:
            while self._next_response() is not None:
                pass
        except Exception:  # noqa: BLE001 - interrupted, or the server is gone: either way it is over
            self.finished = True

    def arrow_schema(self) -> pa.Schema:
        """The Arrow schema of a result that sent no batch at all (Spark's own mapping)."""
        return arrow_schema_of(self.spark_schema)

    def close(self) -> None:
        """Cancel the stream if it is still open (Spark then interrupts and releases the operation)."""
        close = getattr(self._responses, "close", None)
        if close is not None:
            close()


def open_result(spark: SparkSession, df: DataFrame, limit: int | None,
                on_progress: ProgressCallback | None) -> ResultStream | None:
    """Start streaming ``df``; None when it has no columns (a command such as CREATE VIEW).

    With a limit, one extra row is asked of Spark so the gateway can tell the client
    that rows were left out instead of cutting silently.
    """
    source = df
    if limit is not None:
        df = cast(DataFrame, df.limit(limit + 1))
    stream = _open_stream(spark, df, on_progress)
    if stream is not None:
        stream.source = source
    return stream


def open_download(spark: SparkSession, df: DataFrame, limit: int | None) -> ResultStream | None:
    """Run ``df`` again for a whole-result download: exactly its rows (``limit`` at most), on its own
    operation, so the notebook's own stream of the same result goes on untouched."""
    if limit is not None:
        df = cast(DataFrame, df.limit(limit))
    return _open_stream(spark, df, None)


def download_schema(stream: ResultStream) -> pa.Schema:
    """The Arrow schema pyspark's own ``DataFrame.toArrow()`` gives this result (downloads are cast to it)."""
    return arrow_schema_of(stream.spark_schema, timezone="UTC")


def arrow_schema_of(spark_schema: Any, timezone: str | None = None) -> pa.Schema:
    """pyspark's Arrow schema of a Spark schema, with the two interval types it refuses
    ("... is not supported in conversion to Arrow") as Spark itself sends them:
    ``month_interval`` for a year-month interval, ``month_day_nano_interval`` for a
    calendar interval (``make_interval``). Without them, exactly ``to_arrow_schema``'s."""
    from pyspark.sql.pandas.types import to_arrow_schema

    if not any(_has_unmapped_interval(f.dataType) for f in spark_schema):
        return to_arrow_schema(spark_schema, error_on_duplicated_field_names_in_struct=True, timezone=timezone)
    return pa.schema([pa.field(f.name, _arrow_type(f.dataType, timezone), f.nullable) for f in spark_schema])


def _has_unmapped_interval(data_type: Any) -> bool:
    from pyspark.sql.types import ArrayType, CalendarIntervalType, MapType, StructType, YearMonthIntervalType

    if isinstance(data_type, (YearMonthIntervalType, CalendarIntervalType)):
        return True
    if isinstance(data_type, ArrayType):
        return _has_unmapped_interval(data_type.elementType)
    if isinstance(data_type, MapType):
        return _has_unmapped_interval(data_type.keyType) or _has_unmapped_interval(data_type.valueType)
    if isinstance(data_type, StructType):
        return any(_has_unmapped_interval(f.dataType) for f in data_type)
    return False


def _arrow_type(data_type: Any, timezone: str | None) -> pa.DataType:
    """``to_arrow_type`` but for the intervals it refuses (nested ones too), named as pyspark names."""
    from pyspark.sql.pandas.types import to_arrow_type
    from pyspark.sql.types import ArrayType, CalendarIntervalType, MapType, StructType, YearMonthIntervalType

    if isinstance(data_type, YearMonthIntervalType):
        return month_interval_type()
    if isinstance(data_type, CalendarIntervalType):
        return pa.month_day_nano_interval()
    if not _has_unmapped_interval(data_type):
        return to_arrow_type(data_type, error_on_duplicated_field_names_in_struct=True, timezone=timezone)
    if isinstance(data_type, ArrayType):
        return pa.list_(pa.field("element", _arrow_type(data_type.elementType, timezone), data_type.containsNull))
    if isinstance(data_type, MapType):
        return pa.map_(pa.field("key", _arrow_type(data_type.keyType, timezone), False),
                       pa.field("value", _arrow_type(data_type.valueType, timezone), data_type.valueContainsNull))
    assert isinstance(data_type, StructType)
    return pa.struct([pa.field(f.name, _arrow_type(f.dataType, timezone), f.nullable) for f in data_type])


def _open_stream(spark: SparkSession, df: DataFrame, on_progress: ProgressCallback | None) -> ResultStream | None:
    client = spark.client
    request = client._execute_plan_request_with_metadata()
    request.plan.CopyFrom(df._plan.to_proto(client))
    request.operation_id = str(uuid.uuid4())
    stream = ResultStream(request.operation_id, [], iter(()))

    def watch(stages: list[StageProgress], inflight: int, operation_id: str | None, done: bool) -> None:
        if stages:
            stream.job_starts()
        if on_progress is not None:
            on_progress(stages, inflight, operation_id, done)

    progress = SparkProgress(handlers=[_progress_handler(watch)], operation_id=request.operation_id)
    stream._responses = _execute_plan(client, request, df._plan.observations, progress,
                                      lambda call: setattr(stream, "_call", call))
    schema = _read_schema(stream)
    if schema is None or not schema.fields:
        stream.close()
        return None
    stream.spark_schema = schema
    stream.columns = [Column(f.name, f.dataType.simpleString(), f.nullable) for f in schema.fields]
    return stream


def _execute_plan(client: Any, request: Any, observations: dict[str, Any], progress: SparkProgress,
                  on_call: Callable[[Any], None] | None = None) -> Iterator[StructType | ArrowResponse]:
    """One ExecutePlan stream, without pyspark's reattachable execution; cancelled on close.

    pyspark's default sends a ReleaseExecute RPC after every response: half of the
    client's CPU per row, and more work for the driver (measured in bench/README.md).
    A result stream needs none of it: the gateway reads it to the end or closes it, and
    a non-reattachable operation is released by the server when its stream ends or is
    cancelled. Only opening the stream is retried: pyspark's non-reattachable path
    retries a stream that broke mid-way from the start, which would repeat rows.
    """
    metadata = client._builder.metadata()
    try:
        for attempt in client._retrying():
            with attempt:
                call = client._stub.ExecutePlan(request, metadata=metadata)
                if on_call is not None:
                    on_call(call)
                first = next(call, None)
    except Exception as exc:  # noqa: BLE001 - pyspark's exception for it, after pyspark's retries
        client._handle_error(exc)
    rows = 0
    chunks = _Chunks()
    try:
        response = first
        while response is not None:
            client._verify_response_integrity(response)
            if response.HasField("schema"):
                schema = proto_schema_to_pyspark_data_type(response.schema)
                if isinstance(schema, StructType):
                    yield schema
            if response.HasField("execution_progress"):
                progress.update_ticks(*progress_from_proto(response.execution_progress),
                                      operation_id=response.operation_id)
            if response.observed_metrics:
                _observe(response, observations)
            if response.HasField("arrow_batch"):
                batch = chunks.add(response.arrow_batch, rows)
                if batch is not None:
                    rows += batch.rows
                    yield batch
            response = next(call, None)
        chunks.check_complete()
    except Exception as exc:  # noqa: BLE001 - a gRPC error becomes pyspark's exception for it
        client._handle_error(exc)
    finally:
        call.cancel()  # no-op once the stream ended; otherwise the server interrupts the operation


class _Chunks:
    """Reassembles Arrow batches that Spark sent in several responses.

    pyspark 4.1 and later allow "result chunking" in every request: a server that supports
    it (4.1+) splits a batch larger than ``spark.connect.session.resultChunking.maxChunkSize``
    into chunks, each a slice of one IPC stream. An unchunked batch passes through as it came.
    """

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._expected = 0

    def add(self, chunk: Any, rows_so_far: int) -> ArrowResponse | None:
        """The whole batch once its last chunk arrived, else None (the batch is still incomplete)."""
        index = getattr(chunk, "chunk_index", 0)
        if index != len(self._parts):
            raise SparkConnectException(f"Arrow batch chunk {index} came, expected chunk {len(self._parts)}")
        if index == 0 and chunk.HasField("start_offset") and chunk.start_offset != rows_so_far:
            raise SparkConnectException(f"Arrow batch starts at row {chunk.start_offset}, expected {rows_so_far}")
        total = getattr(chunk, "num_chunks_in_batch", 0)
        if total <= 1:
            return ArrowResponse(chunk.data, chunk.row_count)
        self._parts.append(chunk.data)
        self._expected = total
        if len(self._parts) < total:
            return None
        data, self._parts = b"".join(self._parts), []
        return ArrowResponse(data, chunk.row_count)

    def check_complete(self) -> None:
        if self._parts:
            raise SparkConnectException(f"the result ended inside an Arrow batch ({len(self._parts)} of "
                                        f"{self._expected} chunks)")


def _observe(response: Any, observations: dict[str, Any]) -> None:
    """``df.observe(...)`` results reach their Observation objects, as with pyspark's own fetch."""
    for observed in response.observed_metrics:
        observation = observations.get(observed.name)
        if observation is None or observation._result is None:
            continue
        if "root_error_idx" in type(observed).DESCRIPTOR.fields_by_name and observed.HasField("root_error_idx"):
            _observation_failed(observation, observed)  # Spark 4.3 reports a failed observation
            continue
        observation._result.update({key: LiteralExpression._to_value(metric)
                                    for key, metric in zip(observed.keys, observed.values, strict=False)})


def _observation_failed(observation: Any, observed: Any) -> None:
    """Observation.get raises the error, as with pyspark's own fetch (4.3)."""
    from pyspark.sql.connect.client.core import convert_observation_errors  # type: ignore[attr-defined]

    observation._set_error(convert_observation_errors(observed.root_error_idx, list(observed.errors)))


def _read_schema(stream: ResultStream) -> StructType | None:
    """Spark sends the schema first; rows seen before it are kept for the reader."""
    for item in stream._responses:
        if isinstance(item, StructType):
            return item
        if isinstance(item, ArrowResponse):
            stream._early.append(item)
            return None
    return None


# ---------------------------------------------------------------- errors


def is_session_gone(exc: BaseException) -> bool:
    """The server answered that this session is not there: it restarted since the session began.

    pyspark 4.0 raises ``NO_ACTIVE_SESSION`` for it (it closes the client on Spark's
    ``INVALID_HANDLE.SESSION_CHANGED``, then fails fetching the details); Spark's answer is
    in the exception's context. Also the client's own check that answers come from the
    server session it started on.
    """
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        text = str(exc)
        if any(marker in text for marker in _GONE_MARKERS):
            return True
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return False


def is_cancellation(exc: BaseException) -> bool:
    """Spark's answer to interruptTag/interruptOperation."""
    return isinstance(exc, PySparkException) and exc.getCondition() == "OPERATION_CANCELED"


def is_refused(exc: BaseException) -> bool:
    """The server refused the gateway's credentials (a missing or wrong ``token``): no retry helps."""
    text = str(exc)
    return isinstance(exc, PySparkException) and any(f"StatusCode.{code}" in text for code in _REFUSED_STATUSES)


_REFUSED_STATUSES = ("UNAUTHENTICATED", "PERMISSION_DENIED")
_GRPC_DETAILS = re.compile(r'status = StatusCode\.(\w+)\s+details = "([^"]*)"')


def failure_text(exc: BaseException) -> str:
    """One line on why a call failed (pyspark shows a bare gRPC error as the repr of its call object)."""
    found = _GRPC_DETAILS.search(str(exc))
    if found is not None:
        return f"{found[1]}: {found[2]}"
    return _message(exc) if isinstance(exc, PySparkException) else str(exc)


def connection_hint(url: str) -> str:
    """What to check when ``url`` does not connect, from what it asks of the channel ('' if nothing)."""
    parsed = SparkUrl.parse(url)
    if parsed.use_ssl or (parsed.token is not None and not parsed.local_token):
        return (" (this URL makes the client use TLS, as a token to a host that is not loopback does: "
                "the server must speak TLS, with a certificate this machine trusts)")
    return ""


def is_unavailable(exc: BaseException) -> bool:
    """The server is gone, restarted or unreachable. pyspark 4.0 raises RetriesExceeded after its
    retries; 4.1 and later raise the last gRPC error itself (UNAVAILABLE)."""
    if isinstance(exc, PySparkException) and exc.getCondition() in _UNAVAILABLE_CONDITIONS:
        return True
    text = str(exc)
    return isinstance(exc, PySparkException) and any(m in text for m in _UNAVAILABLE_MARKERS)


_STACK_SUFFIX = re.compile(r"\n\nJVM stacktrace:.*", re.S)


def spark_error_fields(exc: BaseException) -> dict[str, Any] | None:
    """Protocol error fields for a pyspark exception; None when it is not one."""
    if not isinstance(exc, PySparkException):
        return None
    if is_session_gone(exc):
        return {"code": ErrorCode.SPARK_UNAVAILABLE,
                "message": f"{RESTARTED} while this ran, and lost this session; run it again: "
                           "it gets a new Spark session",
                "error_class": exc.getCondition(), "exception": type(exc).__name__}
    if is_refused(exc):
        return {"code": ErrorCode.SPARK_UNAVAILABLE,
                "message": f"the Spark Connect server refused the gateway ({failure_text(exc)}): "
                           "the gateway's sc:// URL needs the server's token",
                "error_class": failure_text(exc).partition(":")[0], "exception": type(exc).__name__}
    if is_unavailable(exc):
        return {"code": ErrorCode.SPARK_UNAVAILABLE,
                "message": f"Spark Connect server unavailable: {_message(exc)}",
                "error_class": exc.getCondition(), "exception": type(exc).__name__}
    return {
        "code": ErrorCode.SPARK_ERROR,
        "message": _message(exc),
        "error_class": exc.getCondition() or _worker_condition(exc),
        "sql_state": exc.getSqlState(),
        "context": _contexts(exc),
        "exception": type(exc).__name__,
    }


_CONDITION = re.compile(r"\[([A-Z][A-Z0-9_]*(?:\.[A-Z0-9_]+)*)\]")


def _worker_condition(exc: PySparkException) -> str | None:
    """The error class a Python worker raised, which Spark passes on only inside the message of a
    PythonException without a condition (e.g. PYTHON_VERSION_MISMATCH: the server's Python for UDFs
    is another minor version than the gateway's)."""
    if type(exc).__name__ != "PythonException":
        return None
    found = [name for name in _CONDITION.findall(_message(exc)) if name != "PYTHON_EXCEPTION"]
    return found[-1] if found else None


def _message(exc: PySparkException) -> str:
    text = getattr(exc, "_message", None) or str(exc)
    return _STACK_SUFFIX.sub("", str(text)).strip()


def _contexts(exc: PySparkException) -> list[QueryContext]:
    out: list[QueryContext] = []
    try:
        contexts = exc.getQueryContext()
    except Exception:  # noqa: BLE001 - context is a nicety; never mask the real error
        return out
    for ctx in contexts or ():
        try:
            fragment, start, stop = ctx.fragment(), ctx.startIndex(), ctx.stopIndex()
        except Exception:  # noqa: BLE001 - DataFrame contexts have no SQL positions
            continue
        if fragment and start >= 0:
            out.append(QueryContext(fragment, start, stop))
    return out


# ---------------------------------------------------------------- the catalog, for editors
# Metadata reads for complete / inspect / catalog requests. They run in editor threads, beside
# the session's worker (one Spark Connect session is safe to use from several threads), and
# start no job: catalog RPCs, SHOW / DESCRIBE commands and AnalyzePlan only.


def quote(name: str) -> str:
    """``name`` as one SQL identifier, whatever it holds."""
    return "`" + name.replace("`", "``") + "`"


def list_catalogs(spark: SparkSession) -> list[CatalogEntry]:
    return [CatalogEntry(c.name, "catalog", None, c.description or None) for c in spark.catalog.listCatalogs()]


def list_databases(spark: SparkSession, catalog: str) -> list[CatalogEntry]:
    rows = spark.sql(f"SHOW NAMESPACES IN {quote(catalog)}").collect()
    return [CatalogEntry(row[0], "database") for row in rows]


def list_relations(spark: SparkSession, catalog: str, database: str) -> list[CatalogEntry]:
    """Tables and views of a database, and the session's temporary views (Spark lists them with every database).

    ``SHOW TABLES`` and ``SHOW VIEWS``, not ``catalog.listTables``: that one reads every table's
    metadata, 7-18 s for 1,000 tables where these take 0.2 s. ``type`` is TABLE, VIEW or TEMPORARY.
    """
    where = f"{quote(catalog)}.{quote(database)}"
    try:
        views = {row[1] for row in spark.sql(f"SHOW VIEWS IN {where}").collect()}
    except PySparkException:  # a catalog without views
        views = set()
    out: list[CatalogEntry] = []
    for row in spark.sql(f"SHOW TABLES IN {where}").collect():
        name, temporary = row[1], bool(row.asDict().get("isTemporary"))
        kind = "table" if not temporary and name not in views else "view"
        out.append(CatalogEntry(name, kind, "TEMPORARY" if temporary else "VIEW" if name in views else "TABLE"))
    return out


def list_columns(spark: SparkSession, name: list[str]) -> list[CatalogEntry]:
    """The columns of the relation ``name`` (its parts), resolved as a query would resolve it."""
    columns = spark.catalog.listColumns(".".join(quote(part) for part in name))
    return [CatalogEntry(c.name, "column", c.dataType, c.description or None) for c in columns]


def current_namespace(spark: SparkSession) -> tuple[str, str]:
    """The session's current catalog and database (``USE`` changes them)."""
    return spark.catalog.currentCatalog(), spark.catalog.currentDatabase()


def list_functions(spark: SparkSession, *, builtin: bool) -> list[tuple[str, str | None]]:
    """``(name, usage)`` of Spark's built-in functions, or the names of the session's own ones."""
    if not builtin:
        return [(row[0], None) for row in spark.sql("SHOW USER FUNCTIONS").collect()]
    system = {row[0] for row in spark.sql("SHOW SYSTEM FUNCTIONS").collect()}
    return [(f.name, f.description) for f in spark.catalog.listFunctions() if f.name in system]


def describe_function(spark: SparkSession, name: str) -> str:
    """Spark's own text about a function: its usage, then examples (``DESCRIBE FUNCTION EXTENDED``)."""
    lines = [row[0] for row in spark.sql(f"DESCRIBE FUNCTION EXTENDED {quote(name)}").collect()]
    text = "\n".join(line.removeprefix("Usage: ") for line in lines if not line.startswith(("Function:", "Class:")))
    return text.replace("Extended Usage:\n", "\n").strip()


def sql_keywords(spark: SparkSession) -> list[str]:
    """Spark SQL's keywords, from Spark itself."""
    return [row[0] for row in spark.sql("SELECT keyword FROM sql_keywords()").collect()]


def dataframe_columns(df: DataFrame) -> list[CatalogEntry]:
    """A DataFrame's columns, from its schema: an AnalyzePlan RPC the first time (pyspark keeps it), never a job."""
    return [CatalogEntry(f.name, "column", f.dataType.simpleString()) for f in df.schema.fields]
