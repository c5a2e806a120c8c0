#!/usr/bin/env python
"""Where the embedded Spark driver's memory goes when many large results stream at once.

    .venv/bin/python bench/bench_driver_memory.py [--clients 10] [--rows 10000000]
        [--partitions N] [--format json|arrow] [-- GATEWAY FLAGS...]
    .venv/bin/python bench/bench_driver_memory.py --small-queries [--reps 10]

Starts ``spark-gateway serve`` with its embedded Spark Connect server (the gateway's own
defaults, plus the flags after ``--``), then runs ``--clients`` websocket clients at once,
each executing ``SELECT id, repeat('x', 50) AS s FROM range(ROWS)`` (or ``range(0, ROWS,
1, N)``) and reading every row as fast as the gateway sends it. It prints one markdown
row: whether the JVM survived (restarts of the embedded server), each client's outcome,
the driver's peak heap after a collection (from the JVM's own GC log) and its peak RSS.

Heavy: ten 620 MB results. On a shared machine, run it rarely.

``--small-queries`` measures the price of the embedded default of 32 partitions for scans
without a count: a few queries, interleaved, on one embedded server, in a session with the
default and in one set back to one partition per core (2 here).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import psutil
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from spark_gateway.spark_server import free_port  # noqa: E402

CREDIT = 100_000  # rows of credit each client keeps granted


async def client(url: str, sql: str, fmt: str, number: int) -> dict[str, Any]:
    """One client: execute, read every row (counting, not keeping them), report how it ended."""
    started = time.monotonic()
    rows, codes, status = 0, [], "no finished"
    async with connect(url, subprotocols=[Subprotocol("spark-gateway.v1")], max_size=None, compression=None) as ws:
        await ws.recv()  # session
        await ws.send(orjson.dumps({"type": "execute", "id": "q", "code": sql, "language": "sql",
                                    "format": fmt, "page_size": 10_000}).decode())
        granted = 10_000
        while True:
            frame = await asyncio.wait_for(ws.recv(), 900)
            if isinstance(frame, bytes):
                header_len = int.from_bytes(frame[:4], "big")
                event = orjson.loads(frame[4 : 4 + header_len])
                count = event["count"]
            else:
                event = orjson.loads(frame)
                count = len(event.get("rows") or ()) if event["type"] == "rows" else 0
            if event["type"] == "error":
                codes.append(event["code"])
            if event["type"] in ("rows", "arrow-rows"):
                rows += count
                if not event["last"] and rows + CREDIT // 2 > granted:
                    await ws.send(orjson.dumps({"type": "stream-rows", "id": "q", "result": 0,
                                                "max_rows": CREDIT}).decode())
                    granted += CREDIT
            if event["type"] == "finished":
                status = event["status"]
                break
    return {"client": number, "status": status, "rows": rows, "errors": codes,
            "seconds": round(time.monotonic() - started, 1)}


def spark_jvm(gateway: psutil.Process) -> psutil.Process | None:
    for child in gateway.children(recursive=True):
        try:
            if "SparkConnectServer" in " ".join(child.cmdline()):
                return child
        except psutil.Error:
            continue
    return None


class RssWatch(threading.Thread):
    """The peak RSS of the Spark JVM (whichever is current: it may be restarted)."""

    def __init__(self, gateway: psutil.Process) -> None:
        super().__init__(daemon=True)
        self.gateway = gateway
        self.peak = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.2):
            jvm = spark_jvm(self.gateway)
            try:
                if jvm is not None:
                    self.peak = max(self.peak, jvm.memory_info().rss)
            except psutil.Error:
                pass


AFTER_GC = re.compile(r"(\d+)M->(\d+)M\((\d+)M\)")


def heap_after_gc(log_dir: Path) -> tuple[int, int]:
    """(peak heap after a collection, heap size) in MiB over every JVM log in ``log_dir``."""
    peak = size = 0
    for path in log_dir.glob("gc-*.log"):
        for line in path.read_text(errors="replace").splitlines():
            found = AFTER_GC.search(line)
            if found:
                peak, size = max(peak, int(found.group(2))), max(size, int(found.group(3)))
    return peak, size


def restarts(http: str) -> int:
    text = urllib.request.urlopen(http + "/metrics", timeout=30).read().decode()
    found = re.search(r"^spark_gateway_spark_restarts_total (\S+)$", text, re.M)
    return int(float(found.group(1))) if found else -1


SMALL_QUERIES = ("SELECT id FROM range(10)", "SELECT sum(id) FROM range(100000000)",
                 "SELECT id, repeat('x', 50) AS s FROM range(1000000)")


def small_queries(reps: int) -> None:
    """Median (best) ms of a few queries with one partition per core and with the default."""
    import statistics

    from spark_gateway import spark
    from spark_gateway.spark_server import EmbeddedSparkServer

    spark.quiet_client_logs()
    server = EmbeddedSparkServer(master="local[2]", ui=False)
    server.start()
    try:
        per_core = spark.connect(server.url)
        per_core.conf.set("spark.sql.leafNodeDefaultParallelism", "2")
        sessions = {"2 (one per core)": per_core, "32 (default)": spark.connect(server.url)}
        print("| query | " + " | ".join(f"{name} partitions: median (best) ms" for name in sessions) + " |")
        for sql in SMALL_QUERIES:
            times: dict[str, list[float]] = {name: [] for name in sessions}
            for session in sessions.values():
                session.sql(sql).toArrow()  # warm
            for _ in range(reps):
                for name, session in sessions.items():
                    began = time.monotonic()
                    session.sql(sql).toArrow()
                    times[name].append((time.monotonic() - began) * 1000)
            cells = [f"{statistics.median(t):.0f} ({min(t):.0f})" for t in times.values()]
            print(f"| `{sql}` | " + " | ".join(cells) + f" |  load {os.getloadavg()[0]:.1f}")
    finally:
        server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small-queries", action="store_true", help="the price of more partitions, instead")
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--partitions", type=int, default=None, help="default: Spark's (range without a count)")
    parser.add_argument("--format", default="json", choices=("json", "arrow"))
    parser.add_argument("gateway_args", nargs="*", help="flags for spark-gateway serve (after --)")
    args = parser.parse_args()
    if args.small_queries:
        small_queries(args.reps)
        return 0
    count = "" if args.partitions is None else f", 1, {args.partitions}"
    start = "" if args.partitions is None else "0, "
    sql = f"SELECT id, repeat('x', 50) AS s FROM range({start}{args.rows}{count})"

    log_dir = Path(tempfile.mkdtemp(prefix="driver-memory-"))
    port = free_port()
    env = {**os.environ, "JDK_JAVA_OPTIONS": f"-Xlog:gc:file={log_dir}/gc-%p.log"}
    env.pop("SPARK_REMOTE", None)
    log = open(log_dir / "gateway.log", "wb")
    gateway = subprocess.Popen([sys.executable, "-m", "spark_gateway", "serve", "--port", str(port),
                                *args.gateway_args], stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    http = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                urllib.request.urlopen(http + "/readyz", timeout=10).read()
                break
            except OSError:
                if time.monotonic() > deadline or gateway.poll() is not None:
                    raise SystemExit(f"gateway not ready; log {log_dir / 'gateway.log'}") from None
                time.sleep(0.5)
        watch = RssWatch(psutil.Process(gateway.pid))
        watch.start()
        started = time.monotonic()

        async def everyone() -> list[dict[str, Any]]:
            url = f"ws://127.0.0.1:{port}/ws"
            return await asyncio.gather(*(client(url, sql, args.format, n) for n in range(args.clients)))

        outcomes = asyncio.run(everyone())
        elapsed = time.monotonic() - started
        watch.stop.set()
        peak, size = heap_after_gc(log_dir)
        statuses = collections.Counter(o["status"] for o in outcomes)
        errors = collections.Counter(code for o in outcomes for code in o["errors"])
        print(f"| {' '.join(args.gateway_args) or 'defaults'} | {args.clients} × `{sql}` ({args.format}) "
              f"| {restarts(http)} | {dict(statuses)} {dict(errors) or ''} | {peak} MiB of {size} MiB "
              f"| {watch.peak >> 20} MiB | {elapsed:.0f} s |")
        print(f"per client: {outcomes}\nlogs: {log_dir}", file=sys.stderr)
    finally:
        gateway.terminate()
        try:
            gateway.wait(60)
        except subprocess.TimeoutExpired:
            gateway.kill()
        log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
