"""The real gateway over a real websocket against a real Spark Connect server."""

from __future__ import annotations

import time

import anyio
import psutil
import pytest

from tests.conftest import GatewayProcess, running_jobs
from tests.wsclient import arrow_table, of_type, open_client, rows_of

pytestmark = pytest.mark.integration  # every test talks to the real gateway process

LONG_JOB = "SELECT sum(id % 7) FROM range(0, 200000000000, 1, 4)"


async def wait_no_running_jobs(server) -> None:
    with anyio.fail_after(20):
        while running_jobs(server):  # noqa: ASYNC110 - Spark's REST API, another process: nothing to wait on
            await anyio.sleep(0.2)


async def test_session_event_then_ping(gateway: GatewayProcess) -> None:
    """The first event describes the session; ping is answered by pong with the same data."""
    async with open_client(gateway.ws_url) as client:
        info = client.session
        assert info["seq"] == 1 and info["protocol"] == "spark-gateway.v1"
        assert info["spark_version"].startswith("4.")
        assert info["sample_tables"] == []  # this gateway runs without --sample-data
        await client.send({"type": "ping", "data": {"n": [1, 2]}})
        pong = await client.recv()
        assert pong == {"type": "pong", "seq": 2, "data": {"n": [1, 2]}}


async def test_pages_wait_for_credit(gateway: GatewayProcess) -> None:
    """Only the first page comes unasked; each stream-rows grant releases exactly that many rows."""
    async with open_client(gateway.ws_url) as client:
        await client.execute("SELECT id, concat('r', id) AS s FROM range(5000)", id="p", page_size=1000)
        events = await client.recv_until(lambda e: e["type"] == "rows")
        assert [e["type"] for e in events] == ["accepted", "started", "result", "rows"] or \
            [e["type"] for e in events if e["type"] != "progress"] == ["accepted", "started", "result", "rows"]
        assert events[-1]["offset"] == 0 and len(events[-1]["rows"]) == 1000 and not events[-1]["last"]
        with anyio.move_on_after(1.0):
            extra = await client.recv_until(lambda e: e["type"] == "rows")
            pytest.fail(f"rows sent without credit: {extra}")
        await client.send({"type": "stream-rows", "id": "p", "result": 0, "max_rows": 2500})
        got = await client.recv_until(lambda e: e["type"] == "rows" and e["offset"] + len(e["rows"]) >= 3500)
        pages = of_type(got, "rows")
        assert [(p["offset"], len(p["rows"])) for p in pages] == [(1000, 1000), (2000, 1000), (3000, 500)]
        await client.send({"type": "stream-rows", "id": "p", "result": 0, "max_rows": 10_000})
        rest = await client.recv_until(lambda e: e["type"] == "finished")
        all_rows = rows_of(client.events)
        assert all_rows[0] == [0, "r0"] and all_rows[-1] == [4999, "r4999"] and len(all_rows) == 5000
        assert of_type(rest, "rows")[-1]["last"] is True
        assert rest[-1]["status"] == "ok" and rest[-1]["results"] == [{"result": 0, "rows": 5000, "truncated": False}]


async def test_limit_is_applied_in_spark_and_reported(gateway: GatewayProcess) -> None:
    """A limit on an enormous table returns at once and says the result was truncated."""
    async with open_client(gateway.ws_url) as client:
        started = time.monotonic()
        events = await client.run("SELECT * FROM range(10000000000)", id="l", limit=5)
        assert time.monotonic() - started < 30
        assert rows_of(events) == [[0], [1], [2], [3], [4]]
        assert of_type(events, "rows")[-1]["truncated"] is True
        assert events[-1]["results"] == [{"result": 0, "rows": 5, "truncated": True}]
        exact = await client.run("SELECT * FROM range(5)", id="l2", limit=5)
        assert exact[-1]["results"] == [{"result": 0, "rows": 5, "truncated": False}]


async def test_commands_make_no_result_and_views_persist(gateway: GatewayProcess) -> None:
    """A DDL statement yields no result; the view it makes is there for the next statement."""
    async with open_client(gateway.ws_url) as client:
        events = await client.run("CREATE OR REPLACE TEMP VIEW v AS SELECT 42 AS answer", id="c1")
        assert not of_type(events, "result") and events[-1]["status"] == "ok"
        events = await client.run("SELECT * FROM v", id="c2")
        assert rows_of(events) == [[42]]


async def test_python_prints_and_returns_a_dataframe(gateway: GatewayProcess) -> None:
    """print() streams as stdout before the trailing DataFrame's result; state persists."""
    async with open_client(gateway.ws_url) as client:
        await client.run("x = 20\nprint('hello')", id="py1", language="python")
        events = await client.run("print('x is', x)\nspark.range(x + 1).selectExpr('sum(id) AS s')",
                                  id="py2", language="python")
        kinds = [e["type"] for e in events if e["type"] not in ("progress",)]
        assert kinds[:4] == ["accepted", "started", "stdout", "result"]
        assert of_type(events, "stdout")[0]["text"] == "x is 20\n"
        assert rows_of(events) == [[210]]
        value = await client.run("{'answer': x * 2 + 2}", id="py3", language="python")
        assert of_type(value, "value") == [
            {"type": "value", "seq": value[2]["seq"], "id": "py3", "text": "{'answer': 42}", "python_type": "dict",
             "truncated": False, "length": 14}]


async def test_big_output_and_values_come_in_frames_any_client_accepts(gateway: GatewayProcess) -> None:
    """5 MB printed at once arrives whole, in events of at most 64 Ki characters; a 5 MB value is cut and says so.

    Also text no JSON can carry as is (lone surrogates, from bytes decoded with surrogateescape)
    is sent escaped instead of failing the cell.
    """
    async with open_client(gateway.ws_url) as client:
        events = await client.run("print('y' * 5_000_000, end='')\n'x' * 5_000_000", id="big", language="python",
                                  timeout=60)
        assert events[-1]["status"] == "ok"
        out = of_type(events, "stdout")
        assert "".join(e["text"] for e in out) == "y" * 5_000_000
        assert max(len(e["text"]) for e in out) == 65536
        value = of_type(events, "value")[0]
        limit = client.session["limits"]["max_value_chars"]
        assert value["truncated"] and value["length"] == 5_000_002 and value["text"] == ("'" + "x" * 5_000_001)[:limit]
        odd = await client.run("import os\nname = os.fsdecode(b'caf\\xe9')\nprint(name)\nname", id="odd",
                               language="python")
        assert odd[-1]["status"] == "ok"
        assert of_type(odd, "stdout")[0]["text"] == "caf\\udce9\n"
        assert of_type(odd, "value")[0]["text"] == "'caf\\udce9'"


async def test_observed_metrics_reach_the_cells_observation(gateway: GatewayProcess) -> None:
    """A streamed DataFrame's ``observe()`` results arrive in the cell's Observation object."""
    async with open_client(gateway.ws_url) as client:
        events = await client.run(
            "from pyspark.sql import Observation, functions as F\n"
            "obs = Observation('o')\n"
            "spark.range(0, 100, 1, 4).observe(obs, F.count(F.lit(1)).alias('n'), F.max('id').alias('top'))",
            id="obs1", language="python")
        assert len(rows_of(events)) == 100
        value = await client.run("obs.get", id="obs2", language="python")
        assert of_type(value, "value")[0]["text"] == "{'n': 100, 'top': 99}"


async def test_python_and_pandas_udfs_run_in_spark_python_workers(gateway: GatewayProcess) -> None:
    """UDFs run in Spark's Python workers, which need this environment's Python (pyarrow, pandas)."""
    async with open_client(gateway.ws_url) as client:
        events = await client.run(
            "import pandas as pd\nfrom pyspark.sql import functions as F\n"
            "@F.pandas_udf('long')\ndef plus_one(s: pd.Series) -> pd.Series:\n    return s + 1\n"
            "twice = F.udf(lambda v: v * 2, 'long')\n"
            "spark.range(3).select(plus_one('id').alias('p'), twice('id').alias('t'))",
            id="udf", language="python")
        assert not of_type(events, "error"), of_type(events, "error")
        assert rows_of(events) == [[1, 0], [2, 2], [3, 4]]


async def test_python_show_and_display(gateway: GatewayProcess) -> None:
    """df.show() output is captured; display() adds results numbered in order."""
    async with open_client(gateway.ws_url) as client:
        code = "spark.range(2).show()\ndisplay(spark.range(3))\ndisplay(spark.range(4))\nNone"
        events = await client.run(code, id="d", language="python")
        assert "| id|" in "".join(e["text"] for e in of_type(events, "stdout"))
        assert [r["result"] for r in of_type(events, "result")] == [0, 1]
        assert len(rows_of(events, 0)) == 3 and len(rows_of(events, 1)) == 4
        assert [r["rows"] for r in events[-1]["results"]] == [3, 4]


async def test_get_or_create_returns_the_clients_own_session(gateway: GatewayProcess) -> None:
    """SparkSession.builder.getOrCreate() in a cell returns that client's session, never another's."""
    async with open_client(gateway.ws_url) as a, open_client(gateway.ws_url) as b:
        code = ("from pyspark.sql import SparkSession\n"
                "SparkSession.builder.getOrCreate() is spark")
        for client in (a, b):
            events = await client.run(code, id="g", language="python")
            assert of_type(events, "value")[0]["text"] == "True"


async def test_spark_stop_in_a_cell_gets_the_next_execution_a_new_session(gateway: GatewayProcess) -> None:
    """spark.stop() is a notice in its cell; the next SQL and Python run on a new Spark session."""
    async with open_client(gateway.ws_url) as client:
        stopped = await client.run("kept = 41\nspark.sql('SELECT 1').createOrReplaceTempView('gone')\nspark.stop()",
                                   id="s", language="python")
        assert stopped[-1]["status"] == "ok"
        assert of_type(stopped, "error")[0]["code"] == "spark_session_reset"
        assert "spark.stop()" in of_type(stopped, "error")[0]["message"]
        sql = await client.run("SELECT 2 AS two", id="q")
        assert sql[-1]["status"] == "ok" and rows_of(sql) == [[2]]
        python = await client.run("kept + spark.range(1).count()", id="p", language="python")
        assert of_type(python, "value")[0]["text"] == "42"
        view = await client.run("SELECT * FROM gone", id="v")
        assert of_type(view, "error")[0]["error_class"] == "TABLE_OR_VIEW_NOT_FOUND"


async def test_sessions_are_isolated(gateway: GatewayProcess) -> None:
    """Temp views, SQL conf and Python variables of one client are invisible to another."""
    async with open_client(gateway.ws_url) as a, open_client(gateway.ws_url) as b:
        await a.run("CREATE TEMP VIEW mine AS SELECT 1 AS x", id="1")
        await a.run("SET spark.sql.shuffle.partitions=7", id="2")
        await a.run("secret = 1", id="3", language="python")
        missing = await b.run("SELECT * FROM mine", id="1")
        assert of_type(missing, "error")[0]["error_class"] == "TABLE_OR_VIEW_NOT_FOUND"
        conf = await b.run("SET spark.sql.shuffle.partitions", id="2")
        assert rows_of(conf)[0][1] != "7"
        name = await b.run("secret", id="3", language="python")
        assert of_type(name, "error")[0]["exception"] == "NameError"


async def test_concurrent_output_is_not_mixed(gateway: GatewayProcess) -> None:
    """Two sessions printing at the same time each get only their own lines."""
    code = "import time\nfor i in range(50):\n    print('{me}', i)\n    time.sleep(0.005)"
    async with open_client(gateway.ws_url) as a, open_client(gateway.ws_url) as b:
        async with anyio.create_task_group() as tg:
            results: dict[str, list] = {}

            async def run(client, me: str) -> None:
                results[me] = await client.run(code.replace("{me}", me), id="out", language="python")

            tg.start_soon(run, a, "AAA")
            tg.start_soon(run, b, "BBB")
        for me, other in (("AAA", "BBB"), ("BBB", "AAA")):
            text = "".join(e["text"] for e in of_type(results[me], "stdout"))
            assert text == "".join(f"{me} {i}\n" for i in range(50)) and other not in text


async def test_spark_errors_are_typed_with_context(gateway: GatewayProcess) -> None:
    """Parse, analysis and runtime errors carry Spark's class, SQL state and the failing fragment."""
    async with open_client(gateway.ws_url) as client:
        parse = of_type(await client.run("SELEC 1", id="e1"), "error")[0]
        assert (parse["code"], parse["error_class"], parse["sql_state"]) == (
            "spark_error", "PARSE_SYNTAX_ERROR", "42601")
        assert parse["context"] == [{"fragment": "SELEC", "start": 0, "stop": 4}]
        missing = of_type(await client.run("SELECT * FROM no_such_table", id="e2"), "error")[0]
        assert missing["error_class"] == "TABLE_OR_VIEW_NOT_FOUND" and missing["sql_state"] == "42P01"
        assert missing["context"] == [{"fragment": "no_such_table", "start": 14, "stop": 26}]
        assert "JVM stacktrace" not in missing["message"]
        events = await client.run("SELECT 1/0 AS boom", id="e3")
        runtime = of_type(events, "error")[0]
        assert runtime["error_class"] == "DIVIDE_BY_ZERO" and runtime["sql_state"] == "22012"
        assert runtime["context"][0]["fragment"] == "1/0"
        assert events[-1]["status"] == "error"


async def test_python_errors_have_traceback(gateway: GatewayProcess) -> None:
    """A Python exception reports its type and a traceback from the cell's own lines."""
    async with open_client(gateway.ws_url) as client:
        error = of_type(await client.run("a = 1\nb = a / 0", id="t", language="python"), "error")[0]
        assert error["code"] == "python_error" and error["exception"] == "ZeroDivisionError"
        assert 'File "<cell t>", line 2' in error["traceback"] and "b = a / 0" in error["traceback"]
        syntax = of_type(await client.run("def (:", id="s", language="python"), "error")[0]
        assert syntax["exception"] == "SyntaxError"


async def test_input_in_a_cell_is_a_clear_error_not_the_gateways_terminal(gateway: GatewayProcess) -> None:
    """input() and sys.stdin in client code fail at once with a typed error pointing at the
    cell's line (never a read of the gateway's own terminal); the session goes on."""
    async with open_client(gateway.ws_url) as client:
        events = await client.run("name = input('name? ')", id="in", language="python")
        assert "".join(e["text"] for e in of_type(events, "stdout")) == "name? "
        error = of_type(events, "error")[0]
        assert error["code"] == "python_error" and error["exception"] == "StdinUnavailable"
        assert "nobody can type" in error["message"]
        assert error["traceback"].splitlines()[1:3] == ['  File "<cell in>", line 1, in <module>',
                                                        "    name = input('name? ')"]
        assert "capture.py" not in error["traceback"]
        error = of_type(await client.run("import sys\nsys.stdin.read()", id="rd", language="python"), "error")[0]
        assert error["exception"] == "StdinUnavailable"
        error = of_type(await client.run("import getpass\ngetpass.getpass()", id="pw", language="python"),
                        "error")[0]
        assert error["exception"] == "StdinUnavailable" and "getpass()" in error["message"]
        value = of_type(await client.run("'still here'", id="ok", language="python"), "value")[0]
        assert value["text"] == "'still here'"


async def test_pages_of_wide_rows_fit_a_1_mib_frame_limit(gateway: GatewayProcess) -> None:
    """A client whose websocket library caps frames at 1 MiB (websockets' default) reads
    1,000-row pages of 2 KB rows: pages end early to stay under max_page_bytes, every row
    comes once, in order; a row bigger than the limit comes alone in its page."""
    async with open_client(gateway.ws_url, max_size=1 << 20) as client:
        assert client.session["limits"]["max_page_bytes"] == 1 << 20
        events = await client.run("SELECT id, repeat('x', 2000) AS payload FROM range(5000)", id="wide")
        assert events[-1]["status"] == "ok"
        assert [row[0] for row in rows_of(events)] == list(range(5000))
        assert 400 < max(len(page["rows"]) for page in of_type(events, "rows")) < 1000
    async with open_client(gateway.ws_url) as client:
        events = await client.run("SELECT id, repeat('y', IF(id = 2, 3000000, 10)) AS p FROM range(5)",
                                  id="big", page_size=10)
        pages = [[row[0] for row in page["rows"]] for page in of_type(events, "rows") if page["rows"]]
        assert pages == [[0, 1], [2], [3, 4]]
        assert len(rows_of(events)[2][1]) == 3_000_000


async def test_interrupt_stops_the_spark_job_and_queue_continues(
        gateway: GatewayProcess, spark_server) -> None:
    """Interrupt ends a long job on Spark itself; the execution queued behind it still runs."""
    async with open_client(gateway.ws_url) as client:
        await client.execute(LONG_JOB, id="long")
        await client.execute("SELECT 'after' AS x", id="next")
        accepted = await client.recv_until(lambda e: e["type"] == "accepted" and e["id"] == "next")
        assert accepted[-1]["queue_position"] == 1
        await client.recv_until(lambda e: e["type"] == "progress" and e["id"] == "long")
        assert running_jobs(spark_server), "the long job should be running on Spark"
        sent = time.monotonic()
        await client.send({"type": "interrupt", "id": "long"})
        done = await client.recv_until(lambda e: e["type"] == "finished" and e["id"] == "long")
        assert done[-1]["status"] == "interrupted" and time.monotonic() - sent < 10
        assert not [e for e in done if e["type"] == "error" and e["id"] == "long"]
        nxt = await client.wait_for(lambda e: e["type"] == "finished" and e["id"] == "next")
        assert nxt["status"] == "ok"
        rows = [r for e in client.events if e.get("id") == "next" and e["type"] == "rows" for r in e["rows"]]
        assert rows == [["after"]]
        await wait_no_running_jobs(spark_server)


async def test_interrupt_stops_python_loops_and_spark_jobs_from_python(
        gateway: GatewayProcess, spark_server) -> None:
    """Pure-Python loops and Spark actions started from Python both stop on interrupt."""
    async with open_client(gateway.ws_url) as client:
        for code in ("while True:\n    pass", f"spark.sql('{LONG_JOB}').collect()"):
            await client.execute(code, id=code[:5], language="python")
            await client.recv_until(lambda e: e["type"] == "started")
            await anyio.sleep(1.0)
            await client.send({"type": "interrupt", "id": code[:5]})
            done = await client.recv_until(lambda e: e["type"] == "finished", timeout=20)
            assert done[-1]["status"] == "interrupted"
            await wait_no_running_jobs(spark_server)
        again = await client.run("1 + 1", id="after", language="python")
        assert of_type(again, "value")[0]["text"] == "2"


async def test_interrupt_everything(gateway: GatewayProcess, spark_server) -> None:
    """An interrupt without id stops the running execution and every queued one."""
    async with open_client(gateway.ws_url) as client:
        for n in range(3):
            await client.execute(LONG_JOB, id=f"j{n}")
        await client.recv_until(lambda e: e["type"] == "started")
        await client.send({"type": "interrupt"})
        statuses = {}
        while len(statuses) < 3:
            event = await client.recv()
            if event["type"] == "finished":
                statuses[event["id"]] = event["status"]
        assert statuses == {"j0": "interrupted", "j1": "interrupted", "j2": "interrupted"}
        assert [e["id"] for e in of_type(client.events, "started")] == ["j0"]
        await wait_no_running_jobs(spark_server)


async def test_close_result_releases_it(gateway: GatewayProcess, spark_server) -> None:
    """close-result ends a half-read result with result-closed, then the execution finishes."""
    async with open_client(gateway.ws_url) as client:
        await client.execute("SELECT id FROM range(0, 50000000, 1, 50)", id="big", page_size=100)
        await client.recv_until(lambda e: e["type"] == "rows")
        await client.send({"type": "close-result", "id": "big", "result": 0})
        events = await client.recv_until(lambda e: e["type"] == "finished")
        closed = of_type(events, "result-closed")
        assert closed == [{"type": "result-closed", "seq": closed[0]["seq"], "id": "big", "result": 0,
                           "rows": 100, "reason": "closed"}]
        assert events[-1]["status"] == "ok" and events[-1]["results"][0]["rows"] == 100
        await wait_no_running_jobs(spark_server)


async def test_bad_input_is_answered_and_harmless(gateway: GatewayProcess) -> None:
    """Malformed, unknown and out-of-order messages get typed errors; the session keeps working."""
    async with open_client(gateway.ws_url) as client, open_client(gateway.ws_url) as neighbour:
        await neighbour.execute("SELECT id FROM range(3000)", id="n", page_size=1000)
        cases = [
            ("not json", "bad_message"),
            (b"\x00\x01binary", "bad_message"),
            ('{"type": "execute"}', "bad_message"),
            ('{"type": "teleport", "id": "z"}', "unknown_type"),
            ('{"type": "stream-rows", "id": "ghost", "result": 0, "max_rows": 5}', "unknown_execution"),
            ('{"type": "interrupt", "id": "ghost"}', "unknown_execution"),
            ('{"type": "execute", "id": "x", "code": "' + "x" * (1 << 20) + '"}', "message_too_large"),
            ('{"type": "execute", "id": "x", "code": "SELECT 1", "format": "csv"}', "bad_message"),
        ]
        for frame, code in cases:
            await client.send(frame)
            error = await client.recv()
            assert error["type"] == "error" and error["code"] == code, (frame[:40], error)
        await client.run("SELECT 1", id="ok")
        for frame, code in [
            ('{"type": "execute", "id": "ok", "code": "SELECT 2"}', "duplicate_id"),
            ('{"type": "stream-rows", "id": "ok", "result": 3, "max_rows": 5}', "invalid_state"),
        ]:
            await client.send(frame)
            error = (await client.recv_until(lambda e: e["type"] == "error"))[-1]
            assert error["code"] == code and error["id"] == "ok"
        await client.execute("SELECT id FROM range(10)", id="two")
        await client.recv_until(lambda e: e["type"] == "finished" and e["id"] == "two")
        await client.send('{"type": "stream-rows", "id": "never", "result": 0, "max_rows": 1}')
        assert (await client.recv())["code"] == "unknown_execution"
        await neighbour.send({"type": "stream-rows", "id": "n", "result": 0, "max_rows": 5000})
        done = await neighbour.recv_until(lambda e: e["type"] == "finished")
        assert done[-1]["status"] == "ok" and len(rows_of(neighbour.events)) == 3000


async def test_disconnect_interrupts_and_releases(gateway: GatewayProcess, spark_server) -> None:
    """A client that vanishes mid-job leaves nothing running on Spark."""
    async with open_client(gateway.ws_url) as client:
        await client.execute(LONG_JOB, id="gone")
        await client.recv_until(lambda e: e["type"] == "progress")
    await wait_no_running_jobs(spark_server)
    async with open_client(gateway.ws_url) as client:
        assert rows_of(await client.run("SELECT 1", id="alive")) == [[1]]


async def test_slow_reader_keeps_gateway_memory_bounded(gateway: GatewayProcess) -> None:
    """A big result read slowly costs the gateway a bounded read-ahead, not the whole result."""
    process = psutil.Process(gateway.process.pid)
    query = "SELECT id, repeat('x', 200) AS pad FROM range(0, 3000000, 1, 30)"  # ~600 MB as rows
    async with open_client(gateway.ws_url) as client:
        await client.run("SELECT 1", id="warm")
        baseline = process.memory_info().rss
        await client.execute(query, id="slow", page_size=1000)
        await client.recv_until(lambda e: e["type"] == "rows")
        peak = 0
        for _ in range(20):  # one page at a time, slowly
            await client.send({"type": "stream-rows", "id": "slow", "result": 0, "max_rows": 1000})
            await client.recv_until(lambda e: e["type"] == "rows")
            peak = max(peak, process.memory_info().rss)
            await anyio.sleep(0.1)
        assert peak - baseline < 200 * 2**20, f"gateway grew by {(peak - baseline) >> 20} MiB"
        await client.send({"type": "close-result", "id": "slow", "result": 0})
        await client.recv_until(lambda e: e["type"] == "finished")


async def test_unreachable_spark_fails_fast_with_a_typed_error() -> None:
    """With no Spark server at the address, an execution fails in seconds with spark_unavailable."""
    from spark_gateway.spark_server import free_port

    dead = GatewayProcess(f"sc://127.0.0.1:{free_port()}")
    try:
        async with open_client(dead.ws_url) as client:
            started = time.monotonic()
            events = await client.run("SELECT 1", id="x", timeout=60)
            error = of_type(events, "error")[0]
            assert error["code"] == "spark_unavailable" and time.monotonic() - started < 30
            assert events[-1]["status"] == "error"
    finally:
        dead.stop()


ARROW_QUERY = """
SELECT id, CAST(id AS INT) AS i, id * 1.5 AS d, CAST(id AS DOUBLE) / 3 AS x,
       concat('row-', CAST(id AS STRING)) AS s, IF(id % 3 = 0, NULL, id) AS maybe,
       TIMESTAMP '2024-01-02 03:04:05' + make_interval(0, 0, 0, 0, 0, 0, id) AS ts,
       DATE '2024-01-01' + CAST(id AS INT) AS dt, array(id, id + 1) AS arr,
       named_struct('k', CAST(id AS STRING)) AS st, map('k', id) AS m, CAST(CAST(id AS STRING) AS BINARY) AS b
FROM range(0, 25000, 1, 3)
"""


async def test_arrow_mode_matches_pyspark(gateway: GatewayProcess, spark) -> None:
    """Binary Arrow frames carry exactly the table pyspark's own toArrow() returns, on credit."""
    expected = spark.sql(ARROW_QUERY).toArrow()
    async with open_client(gateway.ws_url) as client:
        await client.execute(ARROW_QUERY, id="a", format="arrow", page_size=4000)
        first = await client.recv_until(lambda e: e["type"] == "arrow-rows")
        assert of_type(first, "result")[0]["format"] == "arrow"
        assert (first[-1]["offset"], first[-1]["count"], first[-1]["last"]) == (0, 4000, False)
        with anyio.move_on_after(1.0):
            await client.recv_until(lambda e: e["type"] == "arrow-rows")
            pytest.fail("arrow pages were sent without credit")
        await client.send({"type": "stream-rows", "id": "a", "result": 0, "max_rows": 30000})
        done = await client.recv_until(lambda e: e["type"] == "finished")
        pages = of_type(client.events, "arrow-rows")
        offsets = list(range(0, 25000, 4000)) + ([25000] if pages[-1]["count"] == 0 else [])
        assert [p["offset"] for p in pages] == offsets
        assert pages[-1]["last"] and done[-1]["results"] == [{"result": 0, "rows": 25000, "truncated": False}]
        got = arrow_table(client.events)
        # Spark labels timestamps with the session zone (Etc/UTC here); pyspark relabels them
        # "UTC". Same instants: only the label may differ.
        assert got.schema.field("ts").type.tz in ("Etc/UTC", "UTC")
        assert got.schema.names == expected.schema.names and got.cast(expected.schema).equals(expected)


async def test_json_and_arrow_interleave(gateway: GatewayProcess) -> None:
    """JSON and Arrow executions run on one connection, each result in its own format."""
    async with open_client(gateway.ws_url) as client:
        await client.execute("SELECT id FROM range(3000)", id="j", page_size=1000)
        await client.execute("SELECT id FROM range(3000)", id="a", page_size=1000, format="arrow", limit=2500)
        await client.execute("SELECT id FROM range(0)", id="e", format="arrow")
        finished = {}
        while len(finished) < 3:
            event = await client.recv()
            if event["type"] in ("rows", "arrow-rows") and not event["last"]:
                await client.send({"type": "stream-rows", "id": event["id"], "result": 0, "max_rows": 1000})
            if event["type"] == "finished":
                finished[event["id"]] = event
        assert [r[0] for r in rows_of(client.events)] == list(range(3000))
        table = arrow_table([e for e in client.events if e.get("id") == "a"])
        assert table.column("id").to_pylist() == list(range(2500))
        assert finished["a"]["results"] == [{"result": 0, "rows": 2500, "truncated": True}]
        empty = arrow_table([e for e in client.events if e.get("id") == "e"])
        assert empty.num_rows == 0 and empty.schema.names == ["id"]


async def test_a_failing_result_ends_once_with_its_error(gateway: GatewayProcess) -> None:
    """A result whose job fails mid-stream ends with error then result-closed, never with a last page."""
    async with open_client(gateway.ws_url) as client:
        events = await client.run("SELECT id, 1 DIV (id - 15000) AS boom FROM range(0, 20000, 1, 2)", id="f")
        mine = [e for e in events if e.get("result") == 0 and e["type"] in ("rows", "error", "result-closed")]
        assert not [e for e in mine if e["type"] == "rows" and e["last"]]
        assert [e["type"] for e in mine if e["type"] != "rows"] == ["error", "result-closed"]
        error = of_type(events, "error")[0]
        assert error["error_class"] == "DIVIDE_BY_ZERO" and error["result"] == 0
        assert of_type(events, "result-closed")[0]["reason"] == "error"
        assert events[-1]["status"] == "error"


async def test_python_cells_use_connect_functions_and_stay_quiet(gateway: GatewayProcess) -> None:
    """pyspark.sql.functions works in cells, and a Spark error prints no log noise to the cell."""
    async with open_client(gateway.ws_url) as client:
        code = "from pyspark.sql import functions as F\nspark.range(3).select((F.col('id') * 2).alias('twice'))"
        events = await client.run(code, id="f", language="python")
        assert rows_of(events) == [[0], [2], [4]]
        failed = await client.run("spark.sql('SELECT * FROM nowhere').collect()", id="g", language="python")
        assert of_type(failed, "error")[0]["error_class"] == "TABLE_OR_VIEW_NOT_FOUND"
        assert of_type(failed, "error")[0]["context"][0]["fragment"] == "nowhere"
        assert not of_type(failed, "stderr")


async def test_sql_script_runs_its_statements_in_order(gateway: GatewayProcess) -> None:
    """A SQL cell of several statements: each runs in turn, each query is its own result;
    semicolons inside literals, identifiers and comments do not split."""
    script = ("CREATE OR REPLACE TEMP VIEW script_v AS SELECT id, 'a;b' AS s FROM range(3);\n"
              "-- a comment; with a semicolon\n"
              "SELECT s, `id` FROM script_v WHERE id < 2 /* ; */;\n"
              "SELECT 'it\\'s;' AS q, r'x;\\' AS raw;\n")
    async with open_client(gateway.ws_url) as client:
        events = await client.run(script, id="script")
        assert events[-1]["status"] == "ok", of_type(events, "error")
        assert [e["result"] for e in of_type(events, "result")] == [0, 1]
        assert rows_of(events, 0) == [["a;b", 0], ["a;b", 1]]
        assert rows_of(events, 1) == [["it's;", "x;\\"]]


async def test_sql_script_stops_at_the_failing_statement_and_points_into_the_cell(gateway: GatewayProcess) -> None:
    """The error of the second statement has the cell's own line and offsets; the third never runs."""
    script = "SELECT 1 AS one;\n\nSELECT x FROM no_such_table;\nSELECT 3"
    async with open_client(gateway.ws_url) as client:
        events = await client.run(script, id="bad")
        assert rows_of(events, 0) == [[1]] and len(of_type(events, "result")) == 1
        error = of_type(events, "error")[0]
        start = script.index("no_such_table")
        assert error["context"] == [{"fragment": "no_such_table", "start": start, "stop": start + 12}]
        assert "line 3 pos 14" in error["message"]
        parse = of_type(await client.run("SELECT 1;\n  SELEC 2", id="parse"), "error")[0]
        assert parse["context"] == [{"fragment": "SELEC", "start": 12, "stop": 16}]
        assert "(line 2, pos 2)" in parse["message"] and "== SQL ==\n  SELEC 2" in parse["message"]
        assert events[-1]["status"] == "error"


async def test_interrupting_a_sql_script_skips_its_remaining_statements(
        gateway: GatewayProcess, spark_server) -> None:
    async with open_client(gateway.ws_url) as client:
        await client.execute(f"SELECT 1 AS first;\n{LONG_JOB};\nSELECT 'never' AS third", id="s")
        await client.recv_until(lambda e: e["type"] == "progress" and e["id"] == "s")
        await client.send({"type": "interrupt", "id": "s"})
        done = await client.wait_for(lambda e: e["type"] == "finished" and e["id"] == "s")
        assert done["status"] == "interrupted"
        assert "never" not in str([e for e in client.events if e.get("id") == "s"])
        await wait_no_running_jobs(spark_server)


async def test_sql_script_stops_when_a_result_fails_while_streaming(gateway: GatewayProcess) -> None:
    """A runtime error in a statement's rows ends the script there, its context in the cell."""
    script = "SELECT 1 AS one;\nSELECT 1/0 AS boom;\nSELECT 'never' AS third"
    async with open_client(gateway.ws_url) as client:
        events = await client.run(script, id="rt")
        error = of_type(events, "error")[0]
        assert error["error_class"] == "DIVIDE_BY_ZERO" and error["result"] == 1
        start = script.index("1/0")
        assert error["context"][0] == {"fragment": "1/0", "start": start, "stop": start + 2}
        assert "never" not in str(events) and events[-1]["status"] == "error"


def executions_by_status(gateway: GatewayProcess) -> dict[str, float]:
    """``spark_gateway_executions_total`` from /metrics, by status."""
    import re
    import urllib.request

    with urllib.request.urlopen(gateway.http_url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    return {m[1]: float(m[2]) for m in re.finditer(r'^spark_gateway_executions_total\{status="(\w+)"\} (\S+)$',
                                                    text, re.M)}


async def log_lines_about(gateway: GatewayProcess, execution_id: str, until: str) -> list[str]:
    """The gateway's log lines naming ``execution_id``, once one of them contains ``until``."""
    for _ in range(300):  # another process's file: nothing to wait on but its content
        lines = [line for line in gateway.log_path.read_text().splitlines() if execution_id in line]
        if any(until in line for line in lines):
            return lines
        await anyio.sleep(0.1)
    raise AssertionError(f"no log line with {until!r} about {execution_id}: {lines}")


async def test_leaving_with_unread_rows_closes_the_result_and_is_no_interrupt(gateway: GatewayProcess) -> None:
    """A client leaving with only unread rows: the log says result closed (rows sent, left); not an interrupt."""
    before = executions_by_status(gateway)
    async with open_client(gateway.ws_url) as client:
        await client.execute("SELECT id FROM range(0, 100000, 1, 2)", id="left-unread-7f3a", page_size=100)
        await client.recv_until(lambda e: e["type"] == "rows")  # its code is done; 99900 rows wait for credit
    lines = await log_lines_about(gateway, "left-unread-7f3a", until="execution left-unread-7f3a ")
    assert not [line for line in lines if "interrupted" in line], lines
    assert any("result 0 of execution left-unread-7f3a closed as the session ended: 100 rows sent, " in line
               and " left" in line for line in lines), lines
    assert any("execution left-unread-7f3a ok in " in line for line in lines), lines
    after = executions_by_status(gateway)
    assert after.get("interrupted", 0) == before.get("interrupted", 0)
    assert after.get("ok", 0) == before.get("ok", 0) + 1
