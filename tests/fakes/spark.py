"""A fake Spark behind the ``spark_gateway.spark`` seam: scripted queries, no JVM, no network.

:class:`FakeSpark` is shaped like the module ``spark_gateway/spark.py``. It implements the
functions that talk to a Spark Connect server (``SEAM``); every other name — ``run_python``,
the error translation, ``ArrowResponse``, ``ResultStream`` — is the real module's, reached
through ``__getattr__``. So the gateway's own code runs on real pyspark exception classes and
on Arrow IPC bytes laid out as Spark sends them; only the server is scripted::

    fake.script("SELECT * FROM t", Job(table, batch_rows=100))   # rows, 100 per Arrow response
    fake.script("CREATE TEMP VIEW v AS SELECT 1", Job())          # a command: no result
    fake.script("SELECT nope", Job(error=analysis_error()))       # fails when submitted
    fake.script("SELECT x", Job(table, error=..., error_after=1))  # fails after one response
    fake.script("SELECT forever", LONG_JOB)                       # runs until interrupted

A job reports a stage of progress as soon as it is read (Spark's progress is how the gateway
learns that a job exists and can be interrupted), stops on interruptTag / interruptOperation
with the exception Spark raises then (``OPERATION_CANCELED``), and is kept in
:attr:`FakeSpark.operations` with how it ended, so tests can check that nothing runs on.

In Python cells ``spark`` is a :class:`FakeSession`: ``spark.sql(text)`` gives a
:class:`FakeDataFrame` of the scripted job, ``collect()`` runs it in the calling thread (as
pyspark does, with progress to the registered handlers), ``spark.stop()`` stops it.

Inject it with :meth:`FakeSpark.install` (the ``fake_spark`` fixture in tests/conftest.py).
"""

from __future__ import annotations

import threading
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
import pyarrow as pa
import pytest
from pyspark.errors.exceptions.connect import (
    AnalysisException,
    SparkConnectGrpcException,
    SQLQueryContext,
    UnknownException,
)
from pyspark.sql.connect.proto import FetchErrorDetailsResponse
from pyspark.sql.pandas.types import from_arrow_schema

from spark_gateway import spark as real
from spark_gateway_protocol.messages import Column, StageProgress

# The functions of spark_gateway.spark that reach a Spark Connect server: the fake's own.
SEAM = ("connect", "prepare", "release", "release_quietly", "server_version", "answers", "ping", "lost_cause",
        "stopped_by_user", "run_sql",
        "is_dataframe", "is_stopped", "bind_thread", "add_tag", "remove_tag", "interrupt_tag",
        "interrupt_operation", "register_progress", "open_result")

ProgressCallback = Callable[[list[StageProgress], int, str | None, bool], None]


# ------------------------------------------------------------------ what Spark raises


def cancelled_error() -> UnknownException:
    """What the client of an interrupted operation gets (measured: shared/SPARK_CONNECT_NOTES.md)."""
    return UnknownException(message="[OPERATION_CANCELED] Operation has been canceled. SQLSTATE: HY008",
                            errorClass="OPERATION_CANCELED", sql_state="HY008")


def analysis_error(name: str = "no_such_table", start: int | None = None) -> AnalysisException:
    """``SELECT * FROM no_such_table``'s error; ``start``: where ``name`` is in the SQL (a query context)."""
    contexts: list[Any] = []  # pyspark's QueryContext, as Spark Connect's client builds them
    if start is not None:
        proto = FetchErrorDetailsResponse.QueryContext(fragment=name, start_index=start,
                                                       stop_index=start + len(name) - 1)
        contexts.append(SQLQueryContext(proto))
    return AnalysisException(
        message=f"[TABLE_OR_VIEW_NOT_FOUND] The table or view `{name}` cannot be found. SQLSTATE: 42P01",
        errorClass="TABLE_OR_VIEW_NOT_FOUND", messageParameters={"relationName": f"`{name}`"},
        sql_state="42P01", contexts=contexts)


def unavailable_error() -> SparkConnectGrpcException:
    """What pyspark (4.1 and later) raises once its retries against a server that does not answer
    are spent: the last gRPC error itself."""
    return SparkConnectGrpcException(
        message="<_MultiThreadedRendezvous of RPC that terminated with: status = StatusCode.UNAVAILABLE "
                'details = "failed to connect to all addresses">', grpc_status_code=grpc.StatusCode.UNAVAILABLE)


# ------------------------------------------------------------------ scripts


@dataclass(frozen=True)
class Job:
    """What the fake Spark does for one statement: its rows, how they come, how it ends."""

    table: pa.Table | None = None  # None: a command (no result)
    batch_rows: int = 1024  # rows per Arrow response
    error: BaseException | None = None
    error_after: int | None = None  # None: the error is raised when submitted; n: after n responses
    until_interrupted: bool = False  # after its rows, the job runs on until it is interrupted
    gate: threading.Event | None = None  # set: the job waits for it before its first row (a slow job)
    tasks: int = 4  # tasks of its one stage, in progress reports


LONG_JOB = Job(pa.table({"total": pa.array([], pa.int64())}), until_interrupted=True)


def table(**columns: list[Any]) -> pa.Table:
    """``table(id=[1, 2], name=["a", "b"])``: a small Arrow table (types inferred by pyarrow)."""
    return pa.table(columns)


# ------------------------------------------------------------------ the server's view


@dataclass(eq=False)
class Operation:
    """One operation as the fake server sees it, and how it ended."""

    id: str
    sql: str
    session: FakeSession
    tags: frozenset[str]
    state: str = "running"  # running | finished | failed | cancelled (interrupted) | closed (stream cancelled)
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def running(self) -> bool:
        return self.state == "running"

    def interrupt(self) -> bool:
        """Spark's interrupt: True when the operation was still running."""
        with self._lock:
            if self.state != "running":
                return False
            self._stop.set()
            return True

    def end(self, state: str) -> None:
        with self._lock:
            if self.state == "running":
                self.state = state

    def check(self) -> None:
        """In the thread reading the operation: raise Spark's cancellation once it was interrupted."""
        if self._stop.is_set():
            self.end("cancelled")
            raise cancelled_error()

    def run_until(self, gate: threading.Event | None) -> None:
        """Work until ``gate`` opens (None: until interrupted); an interrupt ends the wait with Spark's error."""
        while not self._stop.wait(0.01):
            if not self.running or (gate is not None and gate.is_set()):
                return  # done; or its stream was cancelled (the client let go of it)
        self.check()


class _Responses:
    """One ExecutePlan stream: Arrow responses as Spark sends them, then its end or an error."""

    def __init__(self, op: Operation, job: Job, rows: pa.Table, on_progress: ProgressCallback) -> None:
        self._op = op
        self._job = job
        self._pending = deque(arrow_responses(rows, job.batch_rows))
        self._sent = 0
        self._on_progress = on_progress
        self._reported = False

    def __iter__(self) -> _Responses:
        return self

    def __next__(self) -> real.ArrowResponse:
        op, job = self._op, self._job
        if not op.running:
            raise StopIteration
        if not self._reported:
            self._reported = True
            self._on_progress([StageProgress(0, 0, job.tasks, 0, False)], job.tasks, op.id, False)
            if job.gate is not None:
                op.run_until(job.gate)
        op.check()
        if job.error is not None and job.error_after == self._sent:
            op.end("failed")
            raise job.error
        if self._pending:
            self._sent += 1
            return self._pending.popleft()
        if job.until_interrupted:
            op.run_until(None)
            raise StopIteration
        self._on_progress([StageProgress(0, job.tasks, job.tasks, 0, True)], 0, op.id, True)
        op.end("finished")
        raise StopIteration

    def close(self) -> None:
        """The client cancelled the stream: Spark interrupts and releases the operation."""
        self._op.end("closed")


def arrow_responses(rows: pa.Table, batch_rows: int) -> list[real.ArrowResponse]:
    """``rows`` as Spark sends them: one IPC stream (schema, a batch, end marker) per response."""
    out = []
    for batch in rows.to_batches(max_chunksize=batch_rows):
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, rows.schema) as writer:
            writer.write_batch(batch)
        out.append(real.ArrowResponse(sink.getvalue().to_pybytes(), batch.num_rows))
    return out


# ------------------------------------------------------------------ the client's objects


class FakeSession:
    """What the gateway holds where it would hold a pyspark ``SparkSession``."""

    def __init__(self, fake: FakeSpark, url: str, session_id: str | None) -> None:
        self.fake = fake
        self.url = url
        self.session_id = session_id or str(uuid.uuid4())
        self.conf: dict[str, str] = {}
        self.progress_handlers: list[ProgressCallback] = []
        self.stopped = False  # spark.stop(): by user code, or the gateway's release
        self.released = False  # the gateway let go of it
        self._local = threading.local()  # pyspark's tags are per thread

    @property
    def tags(self) -> set[str]:
        if not hasattr(self._local, "tags"):
            self._local.tags = set()
        return self._local.tags  # type: ignore[no-any-return]

    @property
    def version(self) -> str:
        return self.fake.version

    def sql(self, text: str) -> FakeDataFrame:
        return self.fake.run_sql(self, text)

    def stop(self) -> None:
        self.stopped = True


@dataclass(eq=False)
class FakeDataFrame:
    """A scripted statement's DataFrame; ``collect()`` runs it in the calling thread."""

    session: FakeSession
    sql: str
    job: Job

    def collect(self) -> list[tuple[Any, ...]]:
        return self.session.fake.collect(self)


class FakeSpark:
    """A scripted Spark Connect server and its client, in one object shaped like ``spark_gateway.spark``."""

    version = "4.0.1"

    def __init__(self) -> None:
        self.jobs: dict[str, Job] = {}
        self.sessions: list[FakeSession] = []
        self.operations: list[Operation] = []
        self.reachable = True  # False: every call fails as against a server that is down
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        """The adapter's pure parts (run_python, error translation, ArrowResponse, ...) are the real ones."""
        return getattr(real, name)

    def install(self, monkeypatch: pytest.MonkeyPatch) -> FakeSpark:
        """Put this fake behind the seam: the gateway's modules call ``spark.<function>`` at call time."""
        real.quiet_client_logs()
        for name in SEAM:
            monkeypatch.setattr(real, name, getattr(self, name))
        return self

    def script(self, sql: str, job: Job) -> None:
        """What the statement ``sql`` (blanks around it ignored) does from now on."""
        self.jobs[sql.strip()] = job

    def running(self) -> list[Operation]:
        """Operations that still run on the fake server (a correct gateway leaves none behind)."""
        with self._lock:
            return [op for op in self.operations if op.running]

    def stop(self) -> None:
        """The server goes away: every operation still running ends (no test thread waits forever)."""
        for op in self.running():
            op.interrupt()

    def _job(self, sql: str) -> Job:
        job = self.jobs.get(sql.strip())
        if job is None:
            raise LookupError(f"the fake Spark has no script for {sql.strip()!r}")
        return job

    def _start(self, session: FakeSession, sql: str) -> Operation:
        self._check_reachable()
        op = Operation(str(uuid.uuid4()), sql.strip(), session, frozenset(session.tags))
        with self._lock:
            self.operations.append(op)
        return op

    def _check_reachable(self) -> None:
        if not self.reachable:
            raise unavailable_error()

    # -------------------------------------------------------------- the seam

    def connect(self, url: str, session_id: str | None = None, *, user_id: str | None = None) -> FakeSession:
        session = FakeSession(self, url, session_id)  # no RPC until first use, as with pyspark
        with self._lock:
            self.sessions.append(session)
        return session

    def prepare(self, session: FakeSession, progress_interval_ms: int) -> None:
        self._check_reachable()
        session.conf["spark.connect.progress.reportInterval"] = f"{progress_interval_ms}ms"

    def release(self, session: FakeSession) -> None:
        session.stopped = session.released = True
        session.progress_handlers.clear()

    def release_quietly(self, session: FakeSession, *, server_side: bool = True) -> None:
        self.release(session)

    def server_version(self, session: FakeSession) -> str:
        self._check_reachable()
        return self.version

    def answers(self, session: FakeSession) -> bool:
        return self.reachable

    def ping(self, session: FakeSession, timeout: float = 0.0, *, patient: bool = False) -> str:
        """One RPC that is never cached: the server's version, or the error of a server that is down."""
        self._check_reachable()
        return self.version

    def lost_cause(self, session: FakeSession) -> str | None:
        """The fake server never restarts behind the gateway's back: a session it has is kept."""
        return None

    def stopped_by_user(self, session: FakeSession) -> bool:
        return session.stopped

    def run_sql(self, session: FakeSession, code: str) -> FakeDataFrame:
        job = self._job(code)
        if job.error is not None and job.error_after is None:
            self._start(session, code).end("failed")
            raise job.error
        if job.table is None:
            self._start(session, code).end("finished")  # a command runs when submitted
        return FakeDataFrame(session, code, job)

    def is_dataframe(self, value: object) -> bool:
        return isinstance(value, FakeDataFrame)

    def is_stopped(self, session: FakeSession) -> bool:
        return session.stopped

    def bind_thread(self, session: FakeSession | None) -> None:
        pass  # pyspark's getOrCreate() per thread: nothing to fake

    def add_tag(self, session: FakeSession, tag: str) -> None:
        session.tags.add(tag)

    def remove_tag(self, session: FakeSession, tag: str) -> None:
        session.tags.discard(tag)

    def interrupt_tag(self, session: FakeSession, tag: str) -> list[str]:
        with self._lock:
            ops = [op for op in self.operations if op.session is session and tag in op.tags]
        return [op.id for op in ops if op.interrupt()]

    def interrupt_operation(self, session: FakeSession, operation_id: str) -> list[str]:
        with self._lock:
            ops = [op for op in self.operations if op.session is session and op.id == operation_id]
        return [op.id for op in ops if op.interrupt()]

    def register_progress(self, session: FakeSession, callback: ProgressCallback) -> ProgressCallback:
        session.progress_handlers.append(callback)
        return callback

    def open_result(self, session: FakeSession, df: FakeDataFrame, limit: int | None,
                    on_progress: ProgressCallback | None) -> real.ResultStream | None:
        """Start streaming ``df`` (a real ResultStream over the scripted responses); None for a command."""
        job = df.job
        if job.table is None:
            return None
        op = self._start(session, df.sql)
        rows = job.table if limit is None else job.table.slice(0, limit + 1)  # one extra row, as the gateway asks
        stream: real.ResultStream | None = None

        def watch(stages: list[StageProgress], inflight: int, operation_id: str | None, done: bool) -> None:
            assert stream is not None
            stream.job_started = stream.job_started or bool(stages)
            if on_progress is not None:
                on_progress(stages, inflight, operation_id, done)

        schema = from_arrow_schema(job.table.schema)
        columns = [Column(f.name, f.dataType.simpleString(), f.nullable) for f in schema.fields]
        stream = real.ResultStream(op.id, columns, _Responses(op, job, rows, watch), spark_schema=schema)
        return stream

    # -------------------------------------------------------------- Python cells

    def collect(self, df: FakeDataFrame) -> list[tuple[Any, ...]]:
        """``df.collect()``: run the job in this thread, reporting progress to the session's handlers."""
        job, session = df.job, df.session
        op = self._start(session, df.sql)

        def report(done: bool) -> None:
            for handler in list(session.progress_handlers):
                handler([StageProgress(0, job.tasks if done else 0, job.tasks, 0, done)], 0, op.id, done)

        report(False)
        if job.gate is not None:
            op.run_until(job.gate)
        if job.error is not None:
            op.end("failed")
            raise job.error
        if job.until_interrupted:
            op.run_until(None)
        report(True)
        op.end("finished")
        rows = job.table.to_pylist() if job.table is not None else []
        return [tuple(row.values()) for row in rows]
