"""The Spark Connect server dies under the gateway, then comes back."""

from __future__ import annotations

import json
import os
import re
import signal
import time
import urllib.error
import urllib.request

import anyio
import pytest

from spark_gateway.spark_server import EmbeddedSparkServer, free_port
from tests.conftest import GatewayProcess
from tests.wsclient import of_type, open_client, rows_of

pytestmark = pytest.mark.integration  # starts its own Spark servers and gateways

LONG_JOB = "SELECT sum(id % 7) FROM range(0, 200000000000, 1, 4)"


def ready(gateway: GatewayProcess) -> bool:
    try:
        with urllib.request.urlopen(gateway.http_url + "/readyz", timeout=30) as response:
            return bool(json.load(response)["ready"])
    except urllib.error.HTTPError:
        return False


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
                while not ready(gateway):
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
                while not (spark_restarts(gateway) and ready(gateway)):
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
