"""The Spark Connect server dies under the gateway, then comes back."""

from __future__ import annotations

import os
import re
import signal
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import anyio
import pytest

from spark_gateway.spark_server import EmbeddedSparkServer, SparkServerError, free_port
from tests.conftest import GatewayProcess
from tests.wsclient import of_type, open_client, rows_of

pytestmark = pytest.mark.integration

LONG_JOB = "SELECT sum(id % 7) FROM range(0, 200000000000, 1, 4)"


def readyz(gateway: GatewayProcess) -> int:
    """The HTTP status of ``GET /readyz``."""
    try:
        with urllib.request.urlopen(gateway.http_url + "/readyz", timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def ready(gateway: GatewayProcess) -> bool:
    return readyz(gateway) == 200


def kill(server: EmbeddedSparkServer) -> None:
    """``kill -9`` the Spark Connect server: no shutdown hook, sessions lost."""
    assert server.process is not None
    os.killpg(server.process.pid, signal.SIGKILL)
    server.process.wait(30)
    server.process = None


@pytest.fixture(scope="module")
def remote_spark() -> Iterator[tuple[EmbeddedSparkServer, GatewayProcess]]:
    """A Spark Connect server of the test's own (to kill and restart on its port), and a gateway using it."""
    server = EmbeddedSparkServer(master="local[2]", port=free_port(), ui=False)
    server.start()
    gateway = GatewayProcess(server.url)
    yield server, gateway
    gateway.stop()
    server.stop()


def test_readyz_asks_spark_every_time(remote_spark: tuple[EmbeddedSparkServer, GatewayProcess]) -> None:
    """After a 200, /readyz answers 503 within seconds of Spark dying, and 200 again once it is back."""
    server, gateway = remote_spark
    assert readyz(gateway) == 200
    kill(server)
    deadline = time.monotonic() + 10
    while readyz(gateway) != 503:
        assert time.monotonic() < deadline, "/readyz still says ready 10 s after the Spark server died"
        time.sleep(0.2)
    time.sleep(1)
    assert readyz(gateway) == 503, "not ready while Spark is down, on every poll"
    server.start()  # the same port
    deadline = time.monotonic() + 30
    while readyz(gateway) != 200:
        assert time.monotonic() < deadline, "/readyz not ready 30 s after the Spark server listened again"
        time.sleep(0.2)


async def test_first_execution_after_a_remote_restart_runs_in_a_new_session(
        remote_spark: tuple[EmbeddedSparkServer, GatewayProcess]) -> None:
    """After the remote server restarts, a session's next execution says why its Spark session was reset, then runs."""
    server, gateway = remote_spark
    async with open_client(gateway.ws_url) as client:
        await client.run("CREATE OR REPLACE TEMP VIEW v AS SELECT 1 AS x", id="view")
        kill(server)
        server.start()
        after = await client.run("SELECT id FROM range(10)", id="after", timeout=120)
        notices = of_type(after, "error")
        assert [n["code"] for n in notices] == ["spark_session_reset"], after
        assert "restarted" in notices[0]["message"] and "spark.stop()" not in notices[0]["message"], notices
        assert rows_of(after) == [[i] for i in range(10)] and after[-1]["status"] == "ok", after
        gone = await client.run("SELECT * FROM v", id="gone")
        assert of_type(gone, "error")[0]["error_class"] == "TABLE_OR_VIEW_NOT_FOUND"
        again = await client.run("SELECT 2 AS two", id="again")
        assert rows_of(again) == [[2]] and not of_type(again, "error"), "one reset, not one per execution"


def spark_restarts(gateway: GatewayProcess) -> int:
    with urllib.request.urlopen(gateway.http_url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    return int(float(re.search(r"^spark_gateway_spark_restarts_total (\S+)$", text, re.M).group(1)))  # type: ignore[union-attr]


async def test_server_killed_mid_query_then_restarted() -> None:
    """kill -9 of Spark: a typed error in seconds for everyone, /readyz false; after a restart, work resumes."""
    port = free_port()
    server = EmbeddedSparkServer(master="local[2]", port=port, ui=False)
    server.start()
    gateway = GatewayProcess(server.url)
    try:
        async with open_client(gateway.ws_url) as victim, open_client(gateway.ws_url) as bystander:
            await victim.run("CREATE TEMP VIEW before AS SELECT 1 AS x", id="v")
            await victim.execute(LONG_JOB, id="long")
            await victim.recv_until(lambda e: e["type"] == "progress")
            assert server.process is not None
            os.killpg(server.process.pid, signal.SIGKILL)
            killed = time.monotonic()
            server.process.wait(30)
            done = await victim.recv_until(lambda e: e["type"] == "finished" and e["id"] == "long", timeout=60)
            error = of_type(done, "error")[0]
            assert error["code"] == "spark_unavailable" and done[-1]["status"] == "error"
            assert time.monotonic() - killed < 30, "the failure must surface within seconds"
            other = await bystander.run("SELECT 1", id="b1", timeout=60)
            assert of_type(other, "error")[0]["code"] == "spark_unavailable"
            assert not ready(gateway)

            server.process = None
            server.start()  # same port
            with anyio.fail_after(60):
                while not ready(gateway):  # noqa: ASYNC110 - polls another process's HTTP route
                    await anyio.sleep(0.5)
            again = await victim.run("SELECT 42 AS answer", id="after", timeout=60)
            assert rows_of(again) == [[42]] and again[-1]["status"] == "ok"
            assert of_type(again, "error")[0]["code"] == "spark_session_reset"
            gone = await victim.run("SELECT * FROM before", id="gone", timeout=60)
            assert of_type(gone, "error")[0]["error_class"] == "TABLE_OR_VIEW_NOT_FOUND"
            assert rows_of(await bystander.run("SELECT 2", id="b2", timeout=60)) == [[2]]
    finally:
        gateway.stop()
        server.stop()


@pytest.mark.timeout(300)  # three JVM starts' worth: the first, the out-of-memory query, the restart
async def test_embedded_spark_that_runs_out_of_memory_is_restarted() -> None:
    """A result too big for the driver ends the embedded JVM: it is restarted, sessions are told why."""
    gateway = GatewayProcess(None, "--driver-memory", "640m")
    try:
        async with open_client(gateway.ws_url) as client:
            await client.run("CREATE TEMP VIEW before AS SELECT 1 AS x", id="v", timeout=120)
            # One partition of 3e9 rows: Spark Connect holds a partition's Arrow batches at once.
            huge = await client.run("SELECT * FROM range(0, 3000000000, 1, 1)", id="huge", timeout=180)
            assert huge[-1]["status"] == "error"
            with anyio.fail_after(120):  # the old JVM may still answer for a moment while it exits
                while not (spark_restarts(gateway) and ready(gateway)):  # noqa: ASYNC110 - polls another process
                    await anyio.sleep(0.5)
            again = await client.run("SELECT 42 AS answer", id="after", timeout=60)
            assert rows_of(again) == [[42]] and again[-1]["status"] == "ok", again
            notices = of_type(again, "error")
            assert [n["code"] for n in notices] == ["spark_session_reset"], (huge, again)
            assert "OutOfMemoryError" in notices[0]["message"] and "restarted" in notices[0]["message"]
            gone = await client.run("SELECT * FROM before", id="gone", timeout=60)
            assert of_type(gone, "error")[0]["error_class"] == "TABLE_OR_VIEW_NOT_FOUND"
        assert spark_restarts(gateway) == 1
    finally:
        gateway.stop()


def test_server_stopped_while_starting_leaves_no_jvm() -> None:
    """stop() during start() (the gateway stopping while it restarts Spark): start fails, no JVM is left."""
    server = EmbeddedSparkServer(master="local[1]", ui=False)
    failures: list[BaseException] = []

    def start() -> None:
        try:
            server.start()
        except BaseException as exc:  # noqa: BLE001 - what start raised is the point
            failures.append(exc)

    starting = threading.Thread(target=start)
    starting.start()
    deadline = time.monotonic() + 30
    while server.process is None:
        assert time.monotonic() < deadline, "the JVM was not launched"
        time.sleep(0.01)
    jvm = server.process
    server.stop()
    starting.join(60)
    assert [type(f) for f in failures] == [SparkServerError], failures
    assert jvm.poll() is not None and server.process is None
