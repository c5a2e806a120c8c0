"""The Python client (clients/python/spark_gateway_client) against the real gateway and real Spark.

Run with ``PYTHONPATH=clients/python`` until the package is installed with the project.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import socket
import threading
import time
from typing import Any

import orjson
import pyarrow as pa
import pytest
from websockets.asyncio.server import ServerConnection, serve

from spark_gateway.spark_server import free_port
from spark_gateway_client import (
    Column,
    GatewayConnectionError,
    Interrupted,
    Progress,
    PythonError,
    QueryError,
    ResultLost,
    SessionLost,
    connect,
    connect_sync,
)
from spark_gateway_protocol.arrow_json import batch_to_rows
from tests.conftest import GatewayProcess

LONG_JOB = "SELECT sum(id % 7) FROM range(0, 200000000000, 1, 4)"

# One column per Spark type pyspark's toArrow() can convert (all but the two interval kinds
# tested below), each with a NULL row and, for nested types, nested NULLs. (A SQL NULL variant is
# left out: pyspark 4.0.1's toArrow() itself fails on it, casting to a non-nullable struct.)
EVERY_TYPE = """
SELECT * FROM VALUES
  (CAST(NULL AS void), true, CAST(-128 AS tinyint), CAST(32767 AS smallint), -2147483648,
   9007199254740993L, CAST(1.1 AS float), 0.1D, CAST(12.3 AS decimal(10,3)), CAST(0 AS decimal(38,18)),
   'héllo ✓', CAST('ab' AS varchar(5)), CAST('ab' AS char(4)), X'00FF', DATE'2024-02-29',
   TIMESTAMP'2024-01-02 03:04:05.123456', TIMESTAMP_NTZ'2024-01-02 03:04:05',
   INTERVAL '1 2:3:4.5' DAY TO SECOND,
   array(1, NULL, 3), named_struct('a', 1, 'b', 'x'), map('a', 1, 'b', NULL), map(2, 'x', 1, 'y'),
   parse_json('{"b":1.50,"a":[1e20,null,true]}'),
   array(named_struct('x', map('k', array(DATE'0001-01-01'))))),
  (NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
   NULL, NULL, NULL, NULL, parse_json('2'), NULL),
  (NULL, false, CAST(127 AS tinyint), CAST(-32768 AS smallint), 0, -9223372036854775808L, CAST(-0.0 AS float),
   1e308D, CAST(-0.001 AS decimal(10,3)), CAST(-1 AS decimal(38,18)), '', CAST('' AS varchar(5)),
   CAST('' AS char(4)), X'', DATE'1582-10-04', TIMESTAMP'1970-01-01 00:00:00',
   TIMESTAMP_NTZ'9999-12-31 23:59:59.999999',
   -INTERVAL '0.000001' SECOND, array(), named_struct('a', NULL, 'b', NULL), map(), map(1, NULL),
   parse_json('null'), array())
AS t(nul, b, i8, i16, i32, i64, f32, f64, dec, dec38, s, vc, ch, bin, d, ts, ntz, dt, arr, st, sm, im, v,
     deep)
"""


def same_values_as_pyspark(ours: pa.Table, theirs: pa.Table) -> None:
    """Ours equals pyspark's table: same names, types, nullability, field metadata and values.

    The only allowed difference is the time zone *name* on timestamp columns: the gateway sends
    Spark's own (the session zone), pyspark's toArrow() casts to "UTC"; the instants are the same.
    """
    assert ours.schema.names == theirs.schema.names
    for mine, other in zip(ours.schema, theirs.schema, strict=True):
        if pa.types.is_timestamp(mine.type) and mine.type.tz is not None:
            assert pa.types.is_timestamp(other.type) and other.type.unit == mine.type.unit and other.type.tz
        else:
            assert mine.equals(other, check_metadata=True), f"{mine} != {other}"
    assert ours.cast(theirs.schema).equals(theirs, check_metadata=True)


# ---------------------------------------------------------------- connection


async def test_session_info_ping_and_both_ways_to_connect(gateway: GatewayProcess) -> None:
    """connect() works as `async with` and `await`; session.info is the session event; ping round-trips."""
    async with connect(gateway.ws_url) as session:
        assert session.info.protocol == "spark-gateway.v1"
        assert session.info.spark_version.startswith("4.")
        assert "arrow" in session.info.formats and "json" in session.info.formats
        assert 0 < await session.ping({"n": 1}) < 5
    session = await connect(f"127.0.0.1:{gateway.port}")  # host:port form gets ws:// and /ws
    try:
        assert await session.sql("SELECT 1 AS one").rows() == [[1]]
    finally:
        await session.close()
    assert session.closed


async def test_connection_failure_raises_connection_error() -> None:
    """No server at the URL: GatewayConnectionError, which is also a builtin ConnectionError."""
    with pytest.raises(GatewayConnectionError) as caught:
        async with connect(f"ws://127.0.0.1:{free_port()}/ws", open_timeout=5):
            pass
    assert isinstance(caught.value, ConnectionError)


# ---------------------------------------------------------------- JSON mode


async def test_rows_and_batches_in_json_mode(gateway: GatewayProcess) -> None:
    """rows() returns every row; iteration yields page_size-row pages in order; schema and status are set."""
    async with connect(gateway.ws_url) as session:
        execution = session.sql("SELECT id, concat('r', id) AS s FROM range(25000)", page_size=3000)
        sizes, rows = [], []
        async for batch in execution:
            sizes.append(len(batch))
            rows.extend(batch)
        assert sizes == [3000] * 8 + [1000]
        assert rows == [[i, f"r{i}"] for i in range(25000)]
        assert execution.status == "ok" and execution.format == "json" and not execution.truncated
        assert execution.result_schema == [Column("id", "bigint", False), Column("s", "string", False)]
        assert await session.sql("SELECT 'a' AS x UNION ALL SELECT 'b'").rows() == [["a"], ["b"]]


async def test_json_mode_follows_the_documented_type_mapping(gateway: GatewayProcess) -> None:
    """JSON rows carry the forms of docs/type-mapping.md (exact integers and decimals, UTC timestamps...)."""
    sql = """SELECT 9007199254740993L AS big, CAST(12.3 AS decimal(10,3)) AS dec,
                    CAST('NaN' AS double) AS nan,
                    CAST(1.1 AS float) AS f32, X'00FF' AS bin, DATE'2024-02-29' AS d,
                    TIMESTAMP'2024-01-02 03:04:05.123456Z' AS ts, TIMESTAMP_NTZ'2024-01-02 03:04:05' AS ntz,
                    INTERVAL '25' HOUR AS dt, INTERVAL '1-2' YEAR TO MONTH AS ym,
                    array(1, NULL) AS arr, named_struct('a', 1, 'b', CAST(NULL AS string)) AS st,
                    map(2, 'x') AS im, CAST(NULL AS int) AS n, parse_json('{"a":1.50}') AS v"""
    async with connect(gateway.ws_url) as session:
        rows = await session.sql(sql).rows()
    assert rows == [[9007199254740993, "12.300", "NaN", 1.1, "AP8=", "2024-02-29",
                     "2024-01-02T03:04:05.123456Z", "2024-01-02T03:04:05.000000", "P1DT1H", "P1Y2M",
                     [1, None], {"a": 1, "b": None}, [[2, "x"]], None, '{"a":1.50}']]


async def test_limit_is_reported_as_truncated(gateway: GatewayProcess) -> None:
    """A limit keeps that many rows and says rows were left out, in both formats."""
    async with connect(gateway.ws_url) as session:
        json_run = session.sql("SELECT * FROM range(1000000000)", limit=5)
        assert await json_run.rows() == [[0], [1], [2], [3], [4]] and json_run.truncated
        arrow_run = session.sql("SELECT * FROM range(1000000000)", limit=7)
        table = await arrow_run.to_arrow()
        assert table.column("id").to_pylist() == list(range(7)) and arrow_run.truncated
        exact = session.sql("SELECT * FROM range(3)", limit=3)
        assert len(await exact.rows()) == 3 and not exact.truncated


# ---------------------------------------------------------------- Arrow mode


async def test_every_type_round_trips_identically_through_arrow_mode(gateway: GatewayProcess,
                                                                     spark: Any) -> None:
    """Arrow mode gives exactly pyspark's own toArrow() of the same query, for every type it converts."""
    async with connect(gateway.ws_url) as session:
        execution = session.sql(EVERY_TYPE)
        ours = await execution.to_arrow()
        assert execution.format == "arrow"
    theirs = spark.sql(EVERY_TYPE).toArrow()
    assert ours.num_rows == 3
    same_values_as_pyspark(ours, theirs)


async def test_special_floats_round_trip_through_arrow_mode(gateway: GatewayProcess, spark: Any) -> None:
    """NaN, infinities and -0.0 arrive bit for bit (compared apart: NaN is never equal to itself)."""
    sql = ("SELECT CAST(v AS double) AS d, CAST(v AS float) AS f "
           "FROM VALUES ('NaN'), ('Infinity'), ('-Infinity'), ('-0.0') AS t(v)")
    async with connect(gateway.ws_url) as session:
        ours = await session.sql(sql).to_arrow()
    theirs = spark.sql(sql).toArrow()
    assert ours.schema.equals(theirs.schema)
    for name in ("d", "f"):
        a, b = ours.column(name).to_pylist(), theirs.column(name).to_pylist()
        assert math.isnan(a[0]) and math.isnan(b[0]) and a[1:] == b[1:]
        assert [math.copysign(1, x) for x in a[1:]] == [math.copysign(1, x) for x in b[1:]]


async def test_arrow_pages_across_spark_batches_match_to_arrow(gateway: GatewayProcess, spark: Any) -> None:
    """Many pages (page_size not aligned to Spark's batches) equal toArrow(); batches are RecordBatches."""
    sql = ("SELECT id, id * 0.5D AS half, concat('s', id) AS s, CAST(id AS decimal(20,2)) AS dec "
           "FROM range(0, 50000, 1, 3)")
    async with connect(gateway.ws_url) as session:
        execution = session.sql(sql, format="arrow", page_size=7000)
        batches = [batch async for batch in execution]
        assert all(isinstance(b, pa.RecordBatch) for b in batches)
        assert sum(b.num_rows for b in batches) == 50000
        stream = execution.result_streams[0]
        ours = pa.Table.from_batches(batches, schema=stream.arrow_schema)
    theirs = spark.sql(sql).toArrow()
    same_values_as_pyspark(ours, theirs)


async def test_intervals_pyspark_cannot_convert_arrive_in_arrow_mode(gateway: GatewayProcess) -> None:
    """Year-month and calendar intervals (refused by pyspark's toArrow) arrive as Spark's Arrow values."""
    sql = ("SELECT v, make_interval(1, 2, 3, 4, 5, 6, 7.5) AS c FROM VALUES "
           "(INTERVAL '1-2' YEAR TO MONTH), (INTERVAL '-3' MONTH), (NULL) AS t(v)")
    async with connect(gateway.ws_url) as session:
        table = await session.sql(sql).to_arrow()
        json_rows = await session.sql(sql).rows()
    assert str(table.schema.field("v").type) == "month_interval"
    assert table.schema.field("c").type == pa.month_day_nano_interval()
    assert table.column("c").to_pylist()[0] == pa.MonthDayNano([14, 25, 18367500000000])
    calendar = "P1Y2M25DT5H6M7.5S"
    assert json_rows == [["P1Y2M", calendar], ["-P3M", calendar], [None, calendar]]


async def test_json_mode_is_the_mapping_of_arrow_mode(gateway: GatewayProcess) -> None:
    """For every type, JSON mode's rows are exactly the documented mapping applied to Arrow mode's batches."""
    async with connect(gateway.ws_url) as session:
        arrow = await session.sql(EVERY_TYPE).to_arrow()
        json_rows = await session.sql(EVERY_TYPE).rows()
    mapped = [row for batch in arrow.to_batches() for row in batch_to_rows(batch)]
    assert orjson.loads(orjson.dumps(mapped)) == json_rows


async def test_to_pandas(gateway: GatewayProcess) -> None:
    """to_pandas() gives a DataFrame with the result's columns and values."""
    async with connect(gateway.ws_url) as session:
        frame = await session.sql("SELECT id, concat('r', id) AS s, id / 2 AS half FROM range(4)").to_pandas()
    assert list(frame.columns) == ["id", "s", "half"]
    assert frame["id"].tolist() == [0, 1, 2, 3] and frame["s"].tolist() == ["r0", "r1", "r2", "r3"]
    assert frame["half"].tolist() == [0.0, 0.5, 1.0, 1.5]


async def test_json_and_arrow_executions_interleave_on_one_session(gateway: GatewayProcess) -> None:
    """A JSON and an Arrow execution stream at the same time on one socket; each gets its own rows."""
    async with connect(gateway.ws_url) as session:
        json_run = session.sql("SELECT id, concat('j', id) AS s FROM range(20000)", page_size=1000)
        arrow_run = session.sql("SELECT id * 2 AS twice FROM range(30000)", page_size=1500, format="arrow")
        json_batches, arrow_batches = json_run.batches(), arrow_run.batches()
        json_rows: list[Any] = []
        arrow_ids: list[int] = []
        # Alternate strictly: both results are open and streaming at once on the one socket.
        for _ in range(10):
            json_rows.extend(await anext(json_batches))
            arrow_ids.extend((await anext(arrow_batches)).column("twice").to_pylist())
        assert not json_run.done and not arrow_run.done
        json_rows.extend([row async for batch in json_batches for row in batch])
        arrow_ids.extend([x async for batch in arrow_batches for x in batch.column("twice").to_pylist()])
        assert json_rows == [[i, f"j{i}"] for i in range(20000)]
        assert arrow_ids == [2 * i for i in range(30000)]
        both = await asyncio.gather(session.sql("SELECT id FROM range(5000)").rows(),
                                    session.sql("SELECT id FROM range(6000)").to_arrow())
        assert len(both[0]) == 5000 and both[1].num_rows == 6000
        assert json_run.status == arrow_run.status == "ok"


# ---------------------------------------------------------------- errors, output, interrupt


async def test_spark_errors_carry_error_class_sql_state_and_context(gateway: GatewayProcess) -> None:
    """A Spark error raises QueryError with error_class, sql_state and the fragment; the session goes on."""
    async with connect(gateway.ws_url) as session:
        with pytest.raises(QueryError) as caught:
            await session.sql("SELECT * FROM no_such_table").rows()
        error = caught.value
        assert error.error_class == "TABLE_OR_VIEW_NOT_FOUND" and error.sql_state == "42P01"
        assert [(c.fragment, c.start, c.stop) for c in error.context] == [("no_such_table", 14, 26)]
        assert error.code == "spark_error" and error.execution_id
        with pytest.raises(QueryError) as caught:
            await session.sql("SELECT 1/0 AS x", format="arrow").to_arrow()  # fails while rows stream
        assert caught.value.error_class == "DIVIDE_BY_ZERO"
        assert await session.sql("SELECT 2 AS two").rows() == [[2]]


async def test_python_errors_carry_exception_and_traceback(gateway: GatewayProcess) -> None:
    """Python code that raises gives PythonError with the exception type and the cell's traceback."""
    async with connect(gateway.ws_url) as session:
        with pytest.raises(PythonError) as caught:
            await session.python("def f():\n    return 1 / 0\nf()")
        assert caught.value.exception == "ZeroDivisionError"
        assert "<cell" in (caught.value.traceback or "") and "return 1 / 0" in str(caught.value)


async def test_stdout_is_delivered_as_it_comes(gateway: GatewayProcess) -> None:
    """on_stdout sees the first print before the code ends; .stdout/.stderr collect it all; values too."""
    seen: list[tuple[float, str]] = []
    errors: list[str] = []
    code = ("import sys, time\nprint('first', flush=True)\ntime.sleep(1.5)\nprint('second')\n"
            "print('oops', file=sys.stderr)\n{'answer': 42}")
    async with connect(gateway.ws_url) as session:
        execution = session.python(code, on_stdout=lambda text: seen.append((time.monotonic(), text)),
                                   on_stderr=errors.append)
        await execution
        finished_at = time.monotonic()
    assert seen[0][1] == "first\n" and finished_at - seen[0][0] > 1.0
    assert execution.stdout == "first\nsecond\n" and "".join(errors) == execution.stderr == "oops\n"
    assert execution.value == "{'answer': 42}" and execution.status == "ok"


async def test_a_spark_session_reset_is_a_logged_notice(gateway: GatewayProcess,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    """spark.stop() in a cell: the execution is ok, its notice is in errors and in the log; work goes on."""
    async with connect(gateway.ws_url) as session:
        stopped = session.python("spark.stop()")
        await stopped
        assert stopped.status == "ok" and [e.code for e in stopped.errors] == ["spark_session_reset"]
        assert any("spark.stop()" in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)
        assert await session.sql("SELECT 1 AS one").rows() == [[1]]


async def test_interrupt_from_the_client(gateway: GatewayProcess) -> None:
    """interrupt() stops a running Spark job (progress seen first): Interrupted soon; the session goes on."""
    progress: list[Progress] = []
    async with connect(gateway.ws_url) as session:
        execution = session.sql(LONG_JOB, on_progress=progress.append).start()
        async with asyncio.timeout(60):
            while not progress:  # noqa: ASYNC110 - the callback is the thing under test
                await asyncio.sleep(0.05)
        assert progress[0].tasks_total > 0 and execution.progress is progress[-1]
        sent = time.monotonic()
        execution.interrupt()
        with pytest.raises(Interrupted):
            async with asyncio.timeout(30):
                await execution.rows()
        assert execution.status == "interrupted" and time.monotonic() - sent < 15
        # An execution interrupted while its rows stream (Arrow mode) raises from the iteration.
        streaming = session.sql("SELECT id FROM range(1000000)", format="arrow", page_size=1000)
        with pytest.raises(Interrupted):
            async with asyncio.timeout(30):
                async for _batch in streaming:
                    streaming.interrupt()
        assert await session.sql("SELECT 3 AS three").rows() == [[3]]


async def test_breaking_out_closes_the_result(gateway: GatewayProcess) -> None:
    """Leaving a loop early closes the result; the execution still finishes ok and the session goes on."""
    async with connect(gateway.ws_url) as session:
        execution = session.sql("SELECT id FROM range(10000000)", page_size=100)
        async with contextlib.aclosing(execution.batches()) as batches:
            async for batch in batches:
                assert batch[0] == [0]
                break
        async with asyncio.timeout(30):
            await execution
        assert execution.status == "ok" and execution.result_streams[0].end_reason == "closed"
        assert execution.result_streams[0].rows_received < 1000  # the credit window bounded what came


async def test_several_results_and_commands(gateway: GatewayProcess) -> None:
    """display() results come in order via results(); DDL has no result (empty table, no schema)."""
    async with connect(gateway.ws_url) as session:
        execution = session.python("display(spark.range(3))\ndisplay(spark.range(4))\nspark.range(5)")
        counts = [len(await stream.rows()) async for stream in execution.results()]
        assert counts == [3, 4, 5]
        ddl = await session.sql("CREATE OR REPLACE TEMP VIEW client_v AS SELECT 42 AS answer")
        assert ddl.status == "ok" and ddl.result_schema is None
        assert (await session.sql("DROP VIEW IF EXISTS nothing_here").to_arrow()).num_columns == 0
        assert await session.sql("SELECT * FROM client_v").rows() == [[42]]


async def test_reading_one_result_closes_the_others_without_failing(gateway: GatewayProcess) -> None:
    """rows(result=1) closes results 0 and 2 unread (close-result); the execution still finishes ok."""
    async with connect(gateway.ws_url) as session:
        execution = session.python("display(spark.range(5000))\ndisplay(spark.range(4))\nspark.range(5000)",
                                   page_size=100)
        assert await execution.rows(result=1) == [[0], [1], [2], [3]]
        assert execution.status == "ok"
        assert [s.end_reason for s in execution.result_streams] == ["closed", "last", "closed"]


def test_sync_wrapper(gateway: GatewayProcess) -> None:
    """connect_sync gives the same API without await: rows, Arrow, iteration, output and errors."""
    with connect_sync(gateway.ws_url) as s:
        assert s.sql("SELECT 1 AS one").rows() == [[1]]
        assert s.sql("SELECT id FROM range(10)").to_arrow().column("id").to_pylist() == list(range(10))
        assert sum(len(batch) for batch in s.sql("SELECT id FROM range(2500)", page_size=1000)) == 2500
        run = s.python("print('hello from spark')\n6 * 7").wait()
        assert run.stdout == "hello from spark\n" and run.value == "42"
        with pytest.raises(QueryError):
            s.sql("SELECT nope FROM range(1)").rows()
        assert s.sql("SELECT 2 AS two").to_pandas()["two"].tolist() == [2]


def test_sync_outcome_of_an_unstarted_execution_runs_it(gateway: GatewayProcess) -> None:
    """In blocking code, reading value/stdout/stderr of an execution never started runs it
    to its end (it used to answer None and never run); value raises how it failed."""
    with connect_sync(gateway.ws_url) as s:
        assert s.python("print('hi')\n41 + 1").value == "42"
        assert s.python("counter = 1").stdout == ""
        assert s.python("counter + 1").value == "2"  # the previous one did run
        failed = s.python("print('before')\n1 / 0")
        assert failed.status is None  # a peek runs nothing
        assert failed.stdout == "before\n" and failed.status == "error"
        with pytest.raises(PythonError):
            s.python("1 / 0").value  # noqa: B018 - the property runs it
        reading = s.sql("SELECT id FROM range(30000)", page_size=1000)
        statuses = [reading.status for _ in reading]  # started: it answers at once, never waits
        assert len(statuses) == 30 and statuses[0] is None and reading.status == "ok"


async def test_losing_the_gateway_fails_running_executions(spark_remote: str) -> None:
    """When the gateway dies mid-stream, resuming fails within resume_timeout: SessionLost, never a hang."""
    process = GatewayProcess(spark_remote)
    try:
        async with connect(process.ws_url, resume_timeout=3) as session:
            # Python that waits, not a Spark job: a job would run on, orphaned, on the shared Spark.
            execution = session.python("import time\ntime.sleep(60)").start()
            await asyncio.sleep(0.5)
            process.process.kill()
            started = time.monotonic()
            with pytest.raises(SessionLost) as caught:
                async with asyncio.timeout(30):
                    await execution
            assert isinstance(caught.value, GatewayConnectionError)
            assert "could not be resumed within 3 s" in caught.value.message
            assert time.monotonic() - started < 15
            assert session.closed and session.state == "closed"
    finally:
        process.stop()


# ---------------------------------------------------------------- resume after a dropped connection


class TcpProxy:
    """A TCP forwarder to the gateway that the tests can break like a network would.

    ``cut()`` drops every connection (no websocket close frame: the gateway keeps the
    session); while ``refusing``, new connections are closed at once (the network is
    still down); while ``blackhole``, what the gateway sends is read and thrown away (it
    believes it was delivered: only its replay buffer can bring it back).
    """

    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.refusing = False
        self.blackhole = False
        self.discarded = 0  # bytes thrown away while blackhole was on
        self.connections = 0
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, name="proxy-accept", daemon=True).start()

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            if self.refusing:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=10)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets |= {client, upstream}
                self.connections += 1
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, downstream: bool) -> None:
        try:
            while data := src.recv(1 << 16):
                if downstream and self.blackhole:
                    self.discarded += len(data)
                    continue
                dst.sendall(data)
            dst.shutdown(socket.SHUT_WR)  # a clean end on one side goes through as such
        except OSError:
            self._close(src, dst)

    def _close(self, *socks: socket.socket) -> None:
        for sock in socks:
            with self._lock:
                self._sockets.discard(sock)
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes the pump blocked in recv()
            sock.close()

    def cut(self) -> None:
        """The network drops: every open connection ends without a close frame."""
        with self._lock:
            socks = list(self._sockets)
        self._close(*socks)

    def close(self) -> None:
        self.listener.close()
        self.cut()


def drop(session: Any) -> bool:
    """Abort the session's socket (no close frame), as a network failure would; False while resuming."""
    if session.state != "open" or session._ws.transport.is_closing():
        return False  # resuming, or dropped already and not noticed yet
    session._ws.transport.abort()
    return True


async def test_dropped_connections_resume_without_losing_or_repeating_a_row(gateway: GatewayProcess) -> None:
    """Aborted many times mid-stream, JSON and Arrow results arrive whole: every row once, in order."""
    n = 200_000
    sql = f"SELECT id, concat('r', id) AS s FROM range(0, {n}, 1, 3)"
    rng = random.Random(11)
    async with connect(gateway.ws_url) as session:
        session_id = session.info.session_id
        await session.python("marker = 41")
        drops = 0

        async def chaos() -> None:  # drops at random moments too, not only between batches
            nonlocal drops
            for _ in range(4):
                await asyncio.sleep(rng.uniform(0.05, 0.3))
                drops += drop(session)

        for fmt, page_size in (("json", 2000), ("arrow", 5000)):
            execution = session.sql(sql, format=fmt, page_size=page_size)
            ids: list[int] = []
            strings: list[str] = []
            thresholds = [n * k // 7 for k in range(1, 7)]
            noise = asyncio.create_task(chaos())
            async for batch in execution:
                if fmt == "json":
                    ids.extend(row[0] for row in batch)
                    strings.extend(row[1] for row in batch)
                else:
                    ids.extend(batch.column("id").to_pylist())
                    strings.extend(batch.column("s").to_pylist())
                while thresholds and len(ids) >= thresholds[0]:
                    thresholds.pop(0)
                    drops += drop(session)
            await noise
            assert ids == list(range(n)), f"{fmt}: {len(ids)} rows, first wrong at " \
                f"{next((i for i, x in enumerate(ids) if x != i), None)}"
            assert strings[0] == "r0" and strings[-1] == f"r{n - 1}"
            assert execution.status == "ok" and not execution.errors
        assert drops >= 10
        # Nothing here was a new session: same id, same Python variables.
        assert (await session.python("marker + 1")).value == "42"
        assert session.info.session_id == session_id
        assert session.resumes == drops and session.state == "open"


async def test_work_queued_while_disconnected_is_sent_on_resume(gateway: GatewayProcess) -> None:
    """Executions started, rows asked for and pings sent while the socket is down all go through after it."""
    proxy = TcpProxy(gateway.port)
    try:
        async with connect(proxy.ws_url) as session:
            first = session.sql("SELECT id FROM range(5000)", page_size=500, window=1)
            stream = await first.result(0)
            assert stream is not None
            batches = stream.batches()
            assert len(await anext(batches)) == 500
            proxy.refusing = True
            proxy.cut()
            async with asyncio.timeout(10):
                while session.state != "resuming":  # noqa: ASYNC110 - the state is what is tested
                    await asyncio.sleep(0.01)
            second = session.sql("SELECT 2 AS two").start()  # sent while away
            ping = asyncio.ensure_future(session.ping())
            rest = asyncio.ensure_future(_collect(batches))  # credit asked for while away
            await asyncio.sleep(0.5)
            proxy.refusing = False
            async with asyncio.timeout(30):
                assert await second.rows() == [[2]]
                assert [row[0] for row in await rest] == list(range(500, 5000))
                assert await ping > 0
            assert session.resumes == 1
    finally:
        proxy.close()


async def _collect(batches: Any) -> list[Any]:
    return [row async for batch in batches for row in batch]


async def test_resume_can_be_turned_off(gateway: GatewayProcess) -> None:
    """With resume=False a dropped connection fails the session at once, as before."""
    async with connect(gateway.ws_url, resume=False) as session:
        execution = session.python("import time\ntime.sleep(5)").start()
        await asyncio.sleep(0.3)
        assert drop(session)
        with pytest.raises(GatewayConnectionError, match="connection to the gateway lost") as caught:
            async with asyncio.timeout(10):
                await execution
        assert not isinstance(caught.value, SessionLost) and session.closed


async def test_a_refused_resume_raises_session_lost(spark_remote: str) -> None:
    """Away longer than the gateway's grace: the resume is refused and pending work raises SessionLost."""
    gateway = GatewayProcess(spark_remote, "--resume-grace", "1")
    proxy = TcpProxy(gateway.port)
    try:
        async with connect(proxy.ws_url) as session:
            assert session.resume_grace == 1
            execution = session.sql("SELECT id FROM range(100000)", page_size=100).start()
            await execution.result(0)  # open, waiting for credit
            proxy.refusing = True
            proxy.cut()
            await asyncio.sleep(3)  # the network is down longer than the grace period
            proxy.refusing = False
            with pytest.raises(SessionLost) as caught:
                async with asyncio.timeout(30):
                    await execution.rows()
            error = caught.value
            assert error.code == "resume_failed" and error.session_id == session.info.session_id
            assert "resume" in error.message and isinstance(error, GatewayConnectionError)
            assert session.closed
            with pytest.raises(SessionLost):
                await session.sql("SELECT 1").rows()
        async with connect(proxy.ws_url) as fresh:  # a new session works
            assert await fresh.sql("SELECT 1 AS one").rows() == [[1]]
    finally:
        proxy.close()
        gateway.stop()


async def test_events_beyond_the_replay_buffer_raise_result_lost(spark_remote: str) -> None:
    """Frames the gateway wrote that never arrived, and no longer in its replay buffer: ResultLost, exactly."""
    gateway = GatewayProcess(spark_remote, "--replay-buffer-bytes", "200000")
    proxy = TcpProxy(gateway.port)
    try:
        async with connect(proxy.ws_url) as session:
            assert await session.sql("SELECT 1 AS one").rows() == [[1]]
            proxy.blackhole = True  # from now on the gateway's frames vanish on the way
            code = ("print('x' * 100)\n"
                    "for i in range(8):\n    display(spark.range(1000).selectExpr('id', \"repeat('x', 100) AS pad\"))")
            execution = session.python(code, page_size=1000).start()
            async with asyncio.timeout(60):  # until the gateway has written it all (~900 kB)
                while True:
                    before = proxy.discarded
                    await asyncio.sleep(1)
                    if before > 800_000 and proxy.discarded == before:
                        break
            proxy.blackhole = False
            proxy.cut()
            with pytest.raises(ResultLost) as caught:
                async with asyncio.timeout(30):
                    await execution
            error = caught.value
            assert error.execution_id == execution.id and error.from_seq > 0 and error.to_seq >= error.from_seq
            assert error.messages["stdout"] == 1 and error.messages["rows"] >= len(error.results) >= 1
            assert f"events {error.from_seq}..{error.to_seq}" in error.message
            for lost in error.results:  # the displayed results' first (only) pages
                assert 0 <= lost.result < 8 and (lost.from_offset, lost.to_offset) == (0, 1000)
                assert f"result {lost.result} rows [0, 1000)" in error.message
            assert error.result == error.results[0].result
            assert execution.status == "error"
            # The session itself goes on.
            assert await session.sql("SELECT 2 AS two").rows() == [[2]]
            assert session.resumes == 1
    finally:
        proxy.close()
        gateway.stop()


# ---------------------------------------------------------------- against a scripted server


class ScriptedServer:
    """A websocket server that plays a fixed list of frames (for what a healthy gateway never does)."""

    def __init__(self, frames: list[dict[str, Any]]) -> None:
        self.frames = frames
        self.headers: dict[str, str] = {}
        self.received: list[str] = []
        self.port = free_port()

    async def handler(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        self.headers = dict(ws.request.headers)
        await ws.send(orjson.dumps({
            "type": "session", "seq": 1, "session_id": "s", "spark_session_id": "x",
            "protocol": "spark-gateway.v1", "gateway_version": "0", "spark_version": "4",
            "languages": ["sql"], "formats": ["json"], "limits": {},
        }).decode())
        async for message in ws:
            self.received.append(str(message))
            for frame in self.frames:
                await ws.send(orjson.dumps(frame).decode())


async def test_token_is_sent_as_bearer_header_and_seq_gaps_end_the_session() -> None:
    """The token goes out as `Authorization: Bearer`; an event with a seq gap fails the execution loudly."""
    server = ScriptedServer([{"type": "accepted", "seq": 2, "id": "c1", "queue_position": 0},
                             {"type": "started", "seq": 4, "id": "c1"}])
    async with serve(server.handler, "127.0.0.1", server.port, subprotocols=["spark-gateway.v1"]):  # type: ignore[list-item]
        async with connect(f"ws://127.0.0.1:{server.port}/ws", token="s3cret") as session:
            assert session.info.session_id == "s"
            with pytest.raises(GatewayConnectionError, match="seq 4, expected 3"):
                async with asyncio.timeout(10):
                    await session.sql("SELECT 1").rows()
    assert server.headers["authorization"] == "Bearer s3cret"
    assert orjson.loads(server.received[0])["type"] == "execute"
