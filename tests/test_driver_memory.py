"""The embedded Spark server's defaults keep a large result from ending its JVM.

Spark Connect holds each partition's Arrow batches in the driver, several times over while
the task result is serialised and fetched; a scan that names no partition count gets one
partition per core by default, which made a 620 MB result end a 2g driver.
"""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Iterator

import anyio
import orjson
import pytest

from spark_gateway.spark_server import EmbeddedSparkServer, leaf_parallelism
from tests.conftest import GatewayProcess
from tests.wsclient import decode_frame, open_client

PARTITIONS = "SELECT count(*) FROM (SELECT DISTINCT p FROM (SELECT spark_partition_id() AS p FROM range(1000)))"


def test_leaf_parallelism_is_four_per_local_core_and_at_least_32() -> None:
    """Scans without a partition count get 4 partitions per core of local[N] (at least 32)."""
    assert [leaf_parallelism(m) for m in ("local", "local[2]", "local[16]", "local[16,3]", "spark://h:7077")] \
        == [32, 32, 64, 64, 32]
    assert "spark.sql.leafNodeDefaultParallelism=32" in EmbeddedSparkServer(master="local[2]").command()


@pytest.mark.integration
def test_embedded_server_splits_scans_without_a_count(spark) -> None:  # type: ignore[no-untyped-def]
    """range(n) on the embedded server runs in 32 partitions, not one per core; an explicit count wins."""
    assert spark.sql(PARTITIONS).collect()[0][0] == 32
    explicit = PARTITIONS.replace("range(1000)", "range(0, 1000, 1, 3)")
    assert spark.sql(explicit).collect()[0][0] == 3


@pytest.fixture(scope="module")
def embedded() -> Iterator[GatewayProcess]:
    """A gateway that runs its own embedded Spark server with the default settings (2g driver)."""
    process = GatewayProcess(None)
    yield process
    process.stop()


def spark_restarts(gateway: GatewayProcess) -> int:
    with urllib.request.urlopen(gateway.http_url + "/metrics", timeout=30) as response:
        text = response.read().decode()
    return int(float(re.search(r"^spark_gateway_spark_restarts_total (\S+)$", text, re.M).group(1)))  # type: ignore[union-attr]


@pytest.mark.integration
@pytest.mark.timeout(600)
async def test_620_mb_result_streams_on_the_default_embedded_server(embedded: GatewayProcess) -> None:
    """10M rows of (id, 50 chars) from range() without a count stream whole; the 2g driver survives."""
    rows = 0
    async with open_client(embedded.ws_url) as client:
        await client.execute("SELECT id, repeat('x', 50) AS s FROM range(10000000)", id="big",
                             format="arrow", page_size=100_000)
        with anyio.fail_after(540):
            while True:  # counted, not kept: 620 MB of Arrow
                event = decode_frame(await client.ws.recv())
                assert event["type"] != "error", event
                if event["type"] == "arrow-rows":
                    rows += event["count"]
                    if not event["last"]:
                        await client.ws.send(orjson.dumps({"type": "stream-rows", "id": "big", "result": 0,
                                                           "max_rows": event["count"]}).decode())
                if event["type"] == "finished":
                    break
        assert event["status"] == "ok" and rows == 10_000_000, (event, rows)
    assert spark_restarts(embedded) == 0
