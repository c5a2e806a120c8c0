#!/usr/bin/env python
"""Completion round trips over the websocket, against a catalog of 1,000 tables of 20 columns.

    .venv/bin/python bench/bench_completion.py [--tables 1000] [--columns 20] [--reps 200] [--remote sc://...]

Starts one Spark Connect server (EmbeddedSparkServer, local[2]; or uses ``--remote``), creates
the tables in its ``default`` database (metadata only: parquet tables with no rows), starts
one gateway subprocess, and measures the time from sending a ``complete`` request to
receiving its ``completions``, on one websocket session:

- cold: the very first request of a new session (its Spark session opens, the catalog is
  read), then the first column completion of a table not read yet, then the first relation
  completion after a DDL statement invalidated the session's catalog;
- warm: ``--reps`` requests alternating relation completions (``SELECT * FROM bench_t04``)
  and column completions of a few tables (``SELECT t. FROM bench_t0123 t``), all cached;
- busy: the same warm loop, plus column completions of tables never read before, while a
  long aggregation runs in the same session (its Spark job running on both cores).

Prints a markdown table (with the machine's load average, which is shared) to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
import websockets

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from spark_gateway import spark as adapter  # noqa: E402
from spark_gateway.spark_server import EmbeddedSparkServer, free_port  # noqa: E402

LONG_QUERY = "SELECT sum(id * 7 % 13) FROM range(0, 1000000000000, 1, 2)"


def create_tables(url: str, tables: int, columns: int) -> float:
    """``bench_tNNNN`` tables of ``columns`` columns each in ``default``; seconds it took."""
    session = adapter.connect(url)
    started = time.perf_counter()
    types = ("INT", "STRING", "DOUBLE", "DATE", "DECIMAL(10,2)")
    spec = ", ".join(f"c{j:02d}_{types[j % len(types)].split('(')[0].lower()} {types[j % len(types)]}"
                     for j in range(columns))

    def create(i: int) -> None:
        session.sql(f"CREATE TABLE IF NOT EXISTS bench_t{i:04d} ({spec}) USING parquet")

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(create, range(tables)))
    adapter.release(session)
    return time.perf_counter() - started


class Gateway:
    def __init__(self, remote: str) -> None:
        self.port = free_port()
        self.log = open(ROOT / "bench" / f".gateway-{self.port}.log", "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-m", "spark_gateway", "serve", "--port", str(self.port), "--remote", remote,
             "--log-level", "warning"], cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1).read()
                return
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    raise RuntimeError("the gateway did not start") from None
                time.sleep(0.1)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(20)
        self.log.close()
        Path(self.log.name).unlink(missing_ok=True)


class Session:
    """One websocket session; events handed to whoever waits for their id."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.ids = 0
        self.queues: dict[str, asyncio.Queue[dict[str, Any]]] = {}
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for frame in self.ws:
            event = orjson.loads(frame)
            queue = self.queues.get(event.get("id") or "")
            if queue is not None:
                queue.put_nowait(event)

    async def next(self, rid: str, *types: str) -> dict[str, Any]:
        """The next event of ``rid`` whose type is one of ``types``."""
        while (event := await asyncio.wait_for(self.queues[rid].get(), 120))["type"] not in types:
            pass
        return event

    async def ask(self, message: dict[str, Any], answer: str) -> tuple[float, dict[str, Any]]:
        self.ids += 1
        rid = message.setdefault("id", f"b{self.ids}")
        self.queues[rid] = asyncio.Queue()
        started = time.perf_counter()
        await self.ws.send(orjson.dumps(message).decode())
        event = await self.next(rid, answer, "error")
        elapsed = (time.perf_counter() - started) * 1000
        del self.queues[rid]
        if event["type"] != answer:
            raise RuntimeError(f"{message['type']} answered by {event}")
        return elapsed, event

    async def complete(self, code: str, cursor: int | None = None) -> tuple[float, dict[str, Any]]:
        return await self.ask({"type": "complete", "code": code, "cursor": len(code) if cursor is None else cursor},
                              "completions")

    async def start(self, code: str) -> str:
        self.ids += 1
        rid = f"x{self.ids}"
        self.queues[rid] = asyncio.Queue()
        await self.ws.send(orjson.dumps({"type": "execute", "id": rid, "code": code}).decode())
        return rid

    async def run(self, code: str) -> None:
        finished = await self.next(await self.start(code), "finished")
        assert finished["status"] == "ok", finished


def relation(i: int) -> str:
    return f"SELECT * FROM bench_t{i % 100:02d}"  # a prefix of ten tables' names


def column(i: int) -> tuple[str, int]:
    code = f"SELECT t. FROM bench_t{i:04d} t"
    return code, len("SELECT t.")


async def warm_loop(session: Session, reps: int, tables: list[int]) -> list[float]:
    times = []
    for rep in range(reps):
        if rep % 2:
            elapsed, answer = await session.complete(relation(rep))
            assert answer["items"], answer
        else:
            elapsed, answer = await session.complete(*column(tables[rep % len(tables)]))
            assert len(answer["items"]) >= 20, answer
        times.append(elapsed)
    return times


def summary(times: list[float]) -> str:
    ordered = sorted(times)
    p95 = ordered[max(0, round(0.95 * len(ordered)) - 1)]
    return f"{statistics.median(ordered):.1f} | {p95:.1f} | {ordered[-1]:.1f} | {len(ordered)}"


async def measure(url: str, reps: int, tables: int) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    async with websockets.connect(url, subprotocols=["spark-gateway.v1"], max_size=None) as ws:  # type: ignore[list-item]
        assert orjson.loads(await ws.recv())["type"] == "session"
        session = Session(ws)
        first, answer = await session.complete("SELECT * FROM bench_t000")
        assert answer["items"], answer
        rows.append(("cold: first request of a new session (its Spark session opens, 1,000 tables listed)",
                     f"{first:.1f} | | | 1"))
        cold_column, answer = await session.complete(*column(tables - 1))
        rows.append(("cold: first column completion of a table (its columns read)", f"{cold_column:.1f} | | | 1"))
        await session.run("CREATE OR REPLACE TEMP VIEW bench_after AS SELECT 1 AS one")
        after_ddl, answer = await session.complete("SELECT * FROM bench_af")
        assert [i["label"] for i in answer["items"]][:1] == ["bench_after"], answer
        rows.append(("cold: first request after a DDL statement (catalog read again)", f"{after_ddl:.1f} | | | 1"))
        warm_tables = list(range(0, tables, max(1, tables // 8)))[:8]
        await warm_loop(session, 2 * len(warm_tables), warm_tables)  # read them once
        rows.append(("warm: relation and column completions, cached", summary(await warm_loop(session, reps,
                                                                                                 warm_tables))))
        async with websockets.connect(url, subprotocols=["spark-gateway.v1"]) as ws2:  # type: ignore[list-item]
            assert orjson.loads(await ws2.recv())["type"] == "session"
            other = Session(ws2)
            second, answer = await other.complete("SELECT * FROM bench_t000")
            assert answer["items"], answer
            rows.insert(1, ("cold: first request of another new session (Spark's functions already read)",
                            f"{second:.1f} | | | 1"))
            other.reader.cancel()
        long_id = await session.start(LONG_QUERY)
        await session.next(long_id, "progress")  # its job is running
        busy = await warm_loop(session, reps, warm_tables)
        rows.append(("busy: the same, while a long query runs in the session", summary(busy)))
        fresh = []
        for i in range(1, 21):
            elapsed, answer = await session.complete(*column(tables // 2 + i))
            assert len(answer["items"]) >= 20
            fresh.append(elapsed)
        rows.append(("busy: column completions of tables not read yet, while the query runs", summary(fresh)))
        await ws.send(orjson.dumps({"type": "interrupt", "id": long_id}).decode())
        finished = await session.next(long_id, "finished")
        assert finished["status"] == "interrupted", finished  # it ran all along
        session.reader.cancel()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tables", type=int, default=1000)
    parser.add_argument("--columns", type=int, default=20)
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--remote", help="a running Spark Connect server (default: start one)")
    args = parser.parse_args()
    server = None
    remote = args.remote
    if remote is None:
        server = EmbeddedSparkServer(master="local[2]", driver_memory="2g", ui=False)
        remote = server.start()
    gateway = None
    try:
        print(f"creating {args.tables} tables of {args.columns} columns...", file=sys.stderr)
        created = create_tables(remote, args.tables, args.columns)
        print(f"  {created:.1f} s", file=sys.stderr)
        gateway = Gateway(remote)
        load_before = os.getloadavg()
        rows = asyncio.run(measure(f"ws://127.0.0.1:{gateway.port}/ws", args.reps, args.tables))
        load_after = os.getloadavg()
    finally:
        if gateway is not None:
            gateway.stop()
        if server is not None:
            server.stop()
    print(f"{args.tables} tables x {args.columns} columns; load average (1, 5, 15 min) before "
          f"{load_before[0]:.1f}, {load_before[1]:.1f}, {load_before[2]:.1f}; after "
          f"{load_after[0]:.1f}, {load_after[1]:.1f}, {load_after[2]:.1f}; {os.cpu_count()} cores\n")
    print("| request | median ms | p95 ms | max ms | n |")
    print("|---|---:|---:|---:|---:|")
    for name, figures in rows:
        print(f"| {name} | {figures} |")


if __name__ == "__main__":
    main()
