"""The real gateway against a real Spark standalone cluster (spark_gateway.cluster): master, two workers
and a Spark Connect server, each its own JVM on 127.0.0.1, started from the pip wheel.

One cluster for the module: 25-40 s to start on 2 cores, 10-20 s more for the first (cold) query.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio
import anyio.to_thread
import psutil
import pytest

from spark_gateway.cluster import LocalCluster, is_running, pid_alive
from tests.conftest import GatewayProcess
from tests.wsclient import of_type, open_client, rows_of

pytestmark = [pytest.mark.integration, pytest.mark.cluster, pytest.mark.timeout(180)]

PIDS = "SELECT DISTINCT java_method('java.lang.ProcessHandle', 'current') AS pid FROM range(0, 64, 1, 8)"
LONG_JOB = "SELECT sum((id % 1000) * (id % 7)) FROM range(0, 200000000000, 1, 4)"
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A master, two 1-core workers and a Connect server; both executors registered."""
    cluster = LocalCluster(state_dir=tmp_path_factory.mktemp("spark-cluster"))
    started = time.monotonic()
    cluster.start(timeout=150)
    print(f"\ncluster up in {time.monotonic() - started:.1f}s at {cluster.connect_url}", file=sys.stderr)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def cluster_gateway(cluster: LocalCluster) -> Iterator[GatewayProcess]:
    process = GatewayProcess(cluster.connect_url)
    yield process
    process.stop()


def active_tasks(cluster: LocalCluster) -> int:
    """Tasks running on the executors now, as the driver reports them."""
    return sum(int(e.get("activeTasks", 0)) for e in cluster.executors())


async def until(predicate: Callable[[], bool]) -> None:
    """Poll a blocking ``predicate`` (an HTTP call) in a worker thread until it holds."""
    while True:
        if await anyio.to_thread.run_sync(predicate):
            return
        await anyio.sleep(0.2)


def cluster_cli(command: str, cluster: LocalCluster) -> subprocess.CompletedProcess[str]:
    """``python -m spark_gateway.cluster <command>`` on the fixture's state dir, as a user would run it."""
    argv = [sys.executable, "-m", "spark_gateway.cluster", command, "--state-dir", str(cluster.state_dir)]
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=90)


def test_up_registers_two_executors_in_worker_processes(cluster: LocalCluster) -> None:
    """`up` returns once two executors run, each a child JVM of its own worker; `status` shows it all."""
    assert len(cluster.executor_ids()) == 2
    pids = cluster.executor_pids()
    workers = {cluster.pid_of("worker-1"), cluster.pid_of("worker-2")}
    assert len(pids) == 2 and {psutil.Process(pid).ppid() for pid in pids} == workers
    assert all(is_running(c) for c in cluster.components)
    status = cluster_cli("status", cluster)
    assert status.returncode == 0, status.stdout + status.stderr
    assert status.stdout.count(" running ") == 4 and "alive workers: 2" in status.stdout
    assert f"sc://127.0.0.1:{cluster.connect_port}" in status.stdout


@pytest.mark.integration
def test_the_connect_server_requires_the_token_kept_in_a_private_file(cluster: LocalCluster) -> None:
    """Its token is in a 0600 file; `status` says where and never shows it; `url` prints the whole URL."""
    from tests.test_spark_auth import direct_sql

    assert cluster.token and cluster.connect_url.endswith(f"/;token={cluster.token}")
    assert cluster.token_path.stat().st_mode & 0o777 == 0o600
    assert cluster.token_path.read_text().strip() == cluster.token
    status = cluster_cli("status", cluster)
    assert cluster.token not in status.stdout + status.stderr
    assert str(cluster.token_path) in status.stdout and "cluster url" in status.stdout
    assert cluster.token not in cluster.state_path.read_text()
    url = cluster_cli("url", cluster)
    assert url.returncode == 0 and url.stdout.strip() == cluster.connect_url
    with pytest.raises(Exception, match="UNAUTHENTICATED"):
        direct_sql(f"sc://localhost:{cluster.connect_port}")


async def test_queries_run_on_the_workers_executors(
        cluster: LocalCluster, cluster_gateway: GatewayProcess) -> None:
    """Tasks of a query over 8 partitions ran in exactly the two executor JVMs, not in the driver."""
    async with open_client(cluster_gateway.ws_url) as client:
        events = await client.run(PIDS, id="pids")
    assert events[-1]["type"] == "finished" and events[-1]["status"] == "ok", events
    pids = {int(row[0]) for row in rows_of(events)}
    assert pids == cluster.executor_pids()
    assert cluster.pid_of("connect") not in pids


async def test_pandas_udfs_run_in_the_executors_python_workers(
        cluster: LocalCluster, cluster_gateway: GatewayProcess) -> None:
    """A pandas UDF runs in Python workers that the two executors started, with this Python."""
    # Each partition sleeps a little so that both 1-core executors must take tasks: without it one
    # executor could finish all 8 quick tasks before the other's first one was offered (seen in CI).
    code = ("import os, sys, time\n"
            "schema = 'worker long, parent long, python string'\n"
            "spark.range(0, 64, 1, 8).mapInPandas(lambda frames: (time.sleep(0.5) or "
            "f.head(1).assign(worker=os.getpid(), parent=os.getppid(), python=sys.executable)"
            "[['worker', 'parent', 'python']] for f in frames), schema).distinct()")
    async with open_client(cluster_gateway.ws_url) as client:
        events = await client.run(code, id="udf", language="python")
    assert events[-1]["type"] == "finished" and events[-1]["status"] == "ok", events
    rows = rows_of(events)
    # Python workers are forked from a pyspark daemon that the executor started: find the executor.
    executors = cluster.executor_pids()
    owners = {next(p.pid for p in [psutil.Process(parent), *psutil.Process(parent).parents()] if p.pid in executors)
              for _, parent, _ in rows}
    assert owners == executors
    assert {python for _, _, python in rows} == {sys.executable}


async def test_interrupt_stops_the_tasks_on_the_executors(
        cluster: LocalCluster, cluster_gateway: GatewayProcess) -> None:
    """Interrupt ends a long job whose tasks run on both executors; they go idle, the session goes on."""
    async with open_client(cluster_gateway.ws_url) as client:
        await client.execute(LONG_JOB, id="long")
        await client.recv_until(lambda e: e["type"] == "started" and e["id"] == "long")
        with anyio.fail_after(30):
            await until(lambda: active_tasks(cluster) >= 2)
        sent = time.monotonic()
        await client.send({"type": "interrupt", "id": "long"})
        done = await client.recv_until(lambda e: e["type"] == "finished" and e["id"] == "long")
        assert done[-1]["status"] == "interrupted" and time.monotonic() - sent < 10
        with anyio.fail_after(20):
            await until(lambda: active_tasks(cluster) == 0)
        after = await client.run("SELECT 'after' AS x", id="after")
        assert rows_of(after) == [["after"]] and after[-1]["status"] == "ok"


async def test_twenty_thousand_rows_stream_in_pages(cluster_gateway: GatewayProcess) -> None:
    """20,000 rows computed on the executors arrive complete and in order, one credited page at a time."""
    async with open_client(cluster_gateway.ws_url) as client:
        events = await client.run("SELECT id, concat('row-', id) AS s FROM range(0, 20000, 1, 8)",
                                  id="big", page_size=1000)
    pages = of_type(events, "rows")
    assert len(pages) >= 20 and all(len(p["rows"]) <= 1000 for p in pages)
    assert pages[-1]["last"] and not any(p["last"] for p in pages[:-1])
    assert [p["offset"] for p in pages] == [sum(len(q["rows"]) for q in pages[:i]) for i in range(len(pages))]
    assert rows_of(events) == [[i, f"row-{i}"] for i in range(20000)]
    assert events[-1]["status"] == "ok"
    assert events[-1]["results"] == [{"result": 0, "rows": 20000, "truncated": False}]


def test_down_stops_every_process_by_pid(cluster: LocalCluster) -> None:
    """`down` stops the Connect server, executors, workers and master by their recorded pids."""
    executors = cluster.executor_pids()
    components = list(cluster.components)
    down = cluster_cli("down", cluster)
    assert down.returncode == 0, down.stderr
    assert "stopped connect, worker-1, worker-2, master" in down.stderr
    assert not [c.name for c in components if is_running(c)]
    assert not [pid for pid in executors if pid_alive(pid)]
    assert not cluster.state_path.exists() and not cluster.token_path.exists()
    status = cluster_cli("status", cluster)
    assert status.returncode == 1 and "no cluster" in status.stdout
