"""Conformance across Spark Connect servers 4.0 to 4.3: the real gateway (its one pyspark) against a
real server of each minor version, each from its own pip wheel (see tests/spark_versions.py).

One server and one gateway per version, started one at a time and shared by the subset below:
SQL paging, every type's mapping (test_type_mapping's own Spark cases, through the gateway), a
Python cell, progress, an interrupt that stops the job, typed errors, a resume, and Python UDFs
(client and server pyspark differ: they work, or fail with a typed error, never hang).
"""

from __future__ import annotations

import inspect
import itertools
import shutil
import subprocess
import sys
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread
import anyio.to_thread
import orjson
import pyspark
import pytest

from spark_gateway import spark as adapter
from spark_gateway.spark_server import EmbeddedSparkServer
from tests import spark_versions
from tests import test_type_mapping as type_cases
from tests.conftest import GatewayProcess, running_jobs
from tests.test_resume import Stream
from tests.wsclient import of_type, open_client, rows_of

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

LONG_JOB = "SELECT sum(id % 7) FROM range(0, 200000000000, 1, 4)"
# test_type_mapping's cases on a real server; the multi-batch one reads batches directly, not through a gateway.
TYPE_CASES = [fn for name, fn in inspect.getmembers(type_cases, inspect.isfunction)
              if name.startswith("test_spark_") and name != "test_spark_multi_batch_result"]


@pytest.fixture(scope="module", params=spark_versions.versions(), ids=lambda v: f"spark-{v}")
def server(request: pytest.FixtureRequest) -> Iterator[tuple[str, EmbeddedSparkServer]]:
    """A Spark Connect server of one version: the shared one for the gateway's own, else its own JVM."""
    version: str = request.param
    if version == pyspark.__version__:
        yield version, request.getfixturevalue("spark_server")
        return
    home, python = spark_versions.install(version)
    started = EmbeddedSparkServer(master="local[2]", driver_memory="1g", ui=True, home=home, python=python)
    started.start(timeout=240)
    try:
        yield version, started
    finally:
        started.stop()


@pytest.fixture(scope="module")
def gateway(server: tuple[str, EmbeddedSparkServer]) -> Iterator[GatewayProcess]:
    """The real gateway in front of that server."""
    process = GatewayProcess(server[1].url, ready_timeout=120)
    yield process
    process.stop()


@pytest.fixture(scope="module")
def direct(server: tuple[str, EmbeddedSparkServer]) -> Iterator[Any]:
    """A pyspark session straight to that server (for what the type cases ask of Spark itself)."""
    session = adapter.connect(server[1].url)
    yield session
    adapter.release_quietly(session)


async def no_running_jobs(server: EmbeddedSparkServer) -> None:
    """Spark itself reports no running job within 30 s (polled: Spark has no event to wait on)."""
    with anyio.fail_after(30):
        while await anyio.to_thread.run_sync(running_jobs, server):  # noqa: ASYNC110
            await anyio.sleep(0.2)


async def test_the_session_event_carries_the_servers_version(
        server: tuple[str, EmbeddedSparkServer], gateway: GatewayProcess) -> None:
    """`session.spark_version` is the server's version, not the gateway's pyspark."""
    async with open_client(gateway.ws_url) as client:
        assert client.session["spark_version"] == server[0]
    log = gateway.log_path.read_text()
    assert "outside the versions this gateway is tested with" not in log


async def test_sql_results_page_in_order(gateway: GatewayProcess) -> None:
    """25,000 rows arrive in credited pages of 1,000, in order, complete; wide rows too (chunked on 4.1+)."""
    async with open_client(gateway.ws_url) as client:
        events = await client.run("SELECT id, concat('row-', id) AS s FROM range(0, 25000, 1, 4)",
                                  id="big", page_size=1000)
        pages = of_type(events, "rows")
        assert len(pages) >= 25 and all(len(p["rows"]) <= 1000 for p in pages)
        assert [p["offset"] for p in pages] == [sum(len(q["rows"]) for q in pages[:i]) for i in range(len(pages))]
        assert rows_of(events) == [[i, f"row-{i}"] for i in range(25000)]
        assert events[-1]["results"] == [{"result": 0, "rows": 25000, "truncated": False}]
        # A batch of ~6 MB sent in 1 MiB chunks where the server chunks results (a session setting, 4.1+).
        await client.run("SET spark.connect.session.resultChunking.maxChunkSize=1048576", id="chunks")
        wide = await client.run("SELECT id, repeat('x', 2000) AS s FROM range(0, 3000, 1, 1)", id="wide",
                                page_size=1000)
        assert not of_type(wide, "error"), of_type(wide, "error")
        assert [(r[0], len(r[1])) for r in rows_of(wide)] == [(i, 2000) for i in range(3000)]


async def test_every_type_maps_as_on_the_reference_server(
        gateway: GatewayProcess, direct: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """test_type_mapping's Spark cases give the same JSON through the gateway on this server version."""
    async with open_client(gateway.ws_url) as client:
        numbers = itertools.count()

        def through_gateway(_spark: Any, sql: str) -> str:
            events = anyio.from_thread.run(partial(client.run, sql, id=f"t{next(numbers)}"))
            assert not of_type(events, "error"), of_type(events, "error")
            return orjson.dumps(rows_of(events)).decode()

        monkeypatch.setattr(type_cases, "spark_json", through_gateway)
        failed = []
        for case in TYPE_CASES:
            try:
                await anyio.to_thread.run_sync(case, direct)
            except AssertionError as exc:
                failed.append(f"{case.__name__}: {str(exc)[:300]}")
        assert not failed, "\n".join(failed)


async def test_a_python_cell_prints_returns_and_shows_a_dataframe(gateway: GatewayProcess) -> None:
    """print() output, the value of the last expression, and a DataFrame as a result."""
    async with open_client(gateway.ws_url) as client:
        events = await client.run("print('hello')\nx = 20 + 1\nx * 2", id="v", language="python")
        assert "".join(e["text"] for e in of_type(events, "stdout")) == "hello\n"
        assert of_type(events, "value")[0]["text"] == "42"
        frame = await client.run("spark.range(5).selectExpr('id * 3 AS t')", id="df", language="python")
        assert rows_of(frame) == [[0], [3], [6], [9], [12]]


async def test_progress_then_an_interrupt_that_stops_the_job(
        server: tuple[str, EmbeddedSparkServer], gateway: GatewayProcess) -> None:
    """A long job reports stage progress; an interrupt ends it within seconds and on Spark itself."""
    async with open_client(gateway.ws_url) as client:
        await client.execute(LONG_JOB, id="long")
        try:
            progress = (await client.recv_until(lambda e: e["type"] == "progress" and e["id"] == "long",
                                                timeout=90))[-1]
            assert progress["stages"] and progress["stages"][0]["tasks_total"] == 4, progress
            assert await anyio.to_thread.run_sync(running_jobs, server[1]), "the job should run on Spark"
        finally:  # also when an assertion failed: a job left running would slow every later test
            await client.send({"type": "interrupt", "id": "long"})
        with anyio.fail_after(15):
            done = await client.wait_for(lambda e: e["type"] == "finished" and e["id"] == "long")
        assert done["status"] == "interrupted"
        await no_running_jobs(server[1])
        after = await client.run("SELECT 'after' AS x", id="after")
        assert rows_of(after) == [["after"]]


async def test_errors_are_typed_with_spark_class_and_state(gateway: GatewayProcess) -> None:
    """Parse, analysis and runtime errors carry the same class, SQL state and fragment on every version."""
    async with open_client(gateway.ws_url) as client:
        parse = of_type(await client.run("SELEC 1", id="e1"), "error")[0]
        assert (parse["code"], parse["error_class"], parse["sql_state"]) == (
            "spark_error", "PARSE_SYNTAX_ERROR", "42601")
        missing = of_type(await client.run("SELECT * FROM no_such_table", id="e2"), "error")[0]
        assert (missing["error_class"], missing["sql_state"]) == ("TABLE_OR_VIEW_NOT_FOUND", "42P01")
        assert missing["context"] == [{"fragment": "no_such_table", "start": 14, "stop": 26}]
        runtime = of_type(await client.run("SELECT 1/0 AS boom", id="e3"), "error")[0]
        assert (runtime["error_class"], runtime["sql_state"]) == ("DIVIDE_BY_ZERO", "22012")
        python = of_type(await client.run("spark.sql('SELECT * FROM nowhere').collect()", id="e4",
                                          language="python"), "error")[0]
        assert (python["code"], python["error_class"]) == ("spark_error", "TABLE_OR_VIEW_NOT_FOUND")


async def test_a_dropped_connection_resumes_mid_result(gateway: GatewayProcess) -> None:
    """Drop the socket mid-result, resume with last_seq: every row arrives once, in order."""
    stream = Stream(gateway.ws_url)
    await stream.open()
    await stream.send({"type": "execute", "id": "big", "code": "SELECT id FROM range(0, 20000, 1, 2)",
                       "page_size": 500})
    while stream.events[-1]["type"] != "rows":
        await stream.recv(timeout=90)
    stream.abort()
    first = await stream.resume()
    assert first["type"] == "resumed" and first["lost"] is None
    await stream.send({"type": "stream-rows", "id": "big", "result": 0, "max_rows": 1500})
    finished = await stream.read_to_finished("big", 1500)
    assert [r[0] for r in rows_of(stream.events)] == list(range(20000)) and finished["status"] == "ok"
    assert stream.ws is not None
    await stream.ws.close()


async def test_python_udfs_give_right_rows_or_a_typed_error(gateway: GatewayProcess) -> None:
    """Python and pandas UDFs (pickled by the gateway's pyspark, run by the server's): exact rows, or a
    typed error; never a hang, never a wrong value."""
    code = ("import pandas as pd\nfrom pyspark.sql import functions as F\n"
            "@F.pandas_udf('long')\ndef plus_one(s: pd.Series) -> pd.Series:\n    return s + 1\n"
            "twice = F.udf(lambda v: v * 2, 'long')\n"
            "spark.range(3).select(plus_one('id').alias('p'), twice('id').alias('t'))")
    async with open_client(gateway.ws_url) as client:
        events = await client.run(code, id="udf", language="python", timeout=180)
    errors = of_type(events, "error")
    if errors:
        assert errors[0]["code"] in ("spark_error", "python_error"), errors
        pytest.xfail(f"Python UDFs across versions: {errors[0].get('error_class')}: {errors[0]['message'][:200]}")
    assert rows_of(events) == [[1, 0], [2, 2], [3, 4]]


def other_python() -> str | None:
    """A Python interpreter of another minor version than this one that runs (pyenv shims may not)."""
    found = [shutil.which(f"python3.{minor}") for minor in (12, 13, 10) if minor != sys.version_info.minor]
    found += sorted(str(p) for p in Path.home().glob(".pyenv/versions/3.*/bin/python3"))
    for candidate in filter(None, found):
        try:
            done = subprocess.run([candidate, "-c", "import sys; print(sys.version_info[1], sys.executable)"],
                                  capture_output=True, text=True, timeout=30)
        except OSError:
            continue
        minor, _, executable = done.stdout.strip().partition(" ")
        if done.returncode == 0 and minor.isdigit() and int(minor) != sys.version_info.minor and int(minor) >= 9:
            return executable
    return None


async def test_a_python_minor_version_mismatch_is_a_typed_error() -> None:
    """A server whose UDF Python is another minor version fails a UDF with PYTHON_VERSION_MISMATCH, at once."""
    python = other_python()
    if python is None:
        pytest.skip("needs a python3.X of another minor version on the PATH")
    server = EmbeddedSparkServer(master="local[1]", driver_memory="512m", ui=False, python=python)
    await anyio.to_thread.run_sync(partial(server.start, timeout=240))
    gateway = GatewayProcess(server.url, ready_timeout=120)
    try:
        async with open_client(gateway.ws_url) as client:
            plain = await client.run("SELECT 1 AS ok", id="sql")
            assert rows_of(plain) == [[1]]
            events = await client.run("from pyspark.sql import functions as F\n"
                                      "spark.range(3).select(F.udf(lambda v: v + 1, 'long')('id'))",
                                      id="udf", language="python", timeout=120)
        error = of_type(events, "error")[0]
        assert (error["code"], error["error_class"]) == ("spark_error", "PYTHON_VERSION_MISMATCH"), error
        assert events[-1]["status"] == "error"
    finally:
        gateway.stop()
        await anyio.to_thread.run_sync(server.stop)
