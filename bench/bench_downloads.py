#!/usr/bin/env python
"""Whole-result downloads: the gateway's GET /download against pyspark's own toArrow() + write.

    .venv/bin/python bench/bench_downloads.py [--rows 10000000] [--formats parquet,arrow,csv]

Starts one embedded Spark Connect server and a ``spark-gateway serve`` in front of it. For each
format, a client runs ``SELECT id, id * 0.5 AS half, concat('row-', id) AS s FROM range(ROWS)``
through the gateway (first page only) and downloads the whole result as a file (a signed link,
the bytes streamed to disk), while the gateway process's RSS is sampled every 20 ms. Then, in a
fresh process, pyspark's Spark Connect client does what a user would do without the gateway:
``spark.sql(q).toArrow()`` and writes the file (Parquet: ``pq.write_table``; Arrow:
``pa.ipc``; CSV: ``pyarrow.csv.write_csv``), its RSS sampled the same way. Prints one markdown
table: time and peak RSS growth over the process's idle RSS, side by side, and their ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from spark_gateway.spark_server import EmbeddedSparkServer, free_port  # noqa: E402

QUERY = "SELECT id, id * 0.5 AS half, concat('row-', id) AS s FROM range({rows})"
MIB = 1 << 20


class Peak(threading.Thread):
    """The highest RSS of a process (and its children) while running."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.process = psutil.Process(pid)
        self.peak = 0
        self.stopped = threading.Event()

    def rss(self) -> int:
        try:
            return self.process.memory_info().rss
        except psutil.Error:
            return 0

    def run(self) -> None:
        while not self.stopped.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(0.02)

    def stop(self) -> int:
        self.stopped.set()
        self.join()
        return self.peak


async def through_gateway(ws_url: str, query: str, fmt: str, path: Path, gateway_pid: int) -> tuple[float, int, int]:
    """(seconds, peak RSS growth, file bytes) of one download through the gateway."""
    from spark_gateway_client import connect

    async with connect(ws_url) as session:
        execution = session.sql(query, page_size=100)
        async for stream in execution.results():
            stream.close()
        await execution.wait()
        watch = Peak(gateway_pid)
        idle = watch.rss()
        watch.start()
        started = time.monotonic()
        await session.download(execution, 0, path, format=fmt)
        seconds = time.monotonic() - started
        peak = watch.stop()
    return seconds, peak - idle, os.path.getsize(path)  # noqa: ASYNC240 - after the download, once


PYSPARK_CHILD = r"""
import sys, time, psutil, threading
sys.path.insert(0, sys.argv[4])
from spark_gateway import spark as adapter
import pyarrow as pa, pyarrow.parquet as pq, pyarrow.csv as pc
url, fmt, path, _, query = sys.argv[1:6]
session = adapter.connect(url)
session.sql("SELECT 1").collect()
me = psutil.Process()
idle = me.memory_info().rss
peak = [idle]
done = threading.Event()
def watch():
    while not done.is_set():
        peak[0] = max(peak[0], me.memory_info().rss); time.sleep(0.02)
threading.Thread(target=watch, daemon=True).start()
started = time.monotonic()
table = session.sql(query).toArrow()
if fmt == "parquet":
    pq.write_table(table, path, compression="zstd", row_group_size=1_000_000)
elif fmt == "arrow":
    with pa.ipc.new_stream(path, table.schema) as w: w.write_table(table)
else:
    pc.write_csv(table, path)
seconds = time.monotonic() - started
done.set()
print(seconds, peak[0] - idle, table.num_rows)
"""


def through_pyspark(url: str, query: str, fmt: str, path: Path) -> tuple[float, int]:
    out = subprocess.run([sys.executable, "-c", PYSPARK_CHILD, url, fmt, str(path), str(ROOT), query],
                         capture_output=True, text=True, check=True, cwd=ROOT)
    seconds, growth, _ = out.stdout.split()
    return float(seconds), int(growth)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--formats", default="parquet,arrow,csv")
    args = parser.parse_args()
    query = QUERY.format(rows=args.rows)
    server = EmbeddedSparkServer(master="local[2]", driver_memory="3g", max_result_size="2g")
    url = server.start()
    port = free_port()
    env = {**os.environ, "SPARK_GATEWAY_REMOTE": url}
    tmp = Path(tempfile.mkdtemp(prefix="bench-downloads-"))
    log = open(tmp / "gateway.log", "wb")  # noqa: SIM115 - closed below
    gateway = subprocess.Popen([sys.executable, "-m", "spark_gateway", "serve", "--port", str(port)],
                               stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).read()
                break
            except OSError:
                time.sleep(0.2)
        rows = ["| format | rows | gateway time | gateway RSS growth | pyspark toArrow+write time | "
                "pyspark RSS growth | time ratio | memory ratio | file |",
                "|---|---|---|---|---|---|---|---|---|"]
        for fmt in args.formats.split(","):
            path = tmp / f"via-gateway.{fmt}"
            g_s, g_rss, size = asyncio.run(through_gateway(f"ws://127.0.0.1:{port}/ws", query, fmt, path,
                                                           gateway.pid))
            path.unlink()
            p_path = tmp / f"via-pyspark.{fmt}"
            p_s, p_rss = through_pyspark(url, query, fmt, p_path)
            p_path.unlink()
            rows.append(f"| {fmt} | {args.rows:,} | {g_s:.1f} s | {g_rss / MIB:.0f} MiB | {p_s:.1f} s | "
                        f"{p_rss / MIB:.0f} MiB | {g_s / p_s:.2f} | {g_rss / max(p_rss, 1):.2f} | "
                        f"{size / MIB:.0f} MiB |")
            print(rows[-1], flush=True)
        print("\n".join(rows))
    finally:
        gateway.terminate()
        gateway.wait(15)
        log.close()
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
