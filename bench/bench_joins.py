#!/usr/bin/env python
"""Does a joined connection slow the session's owner down? Rows/s of one stream, three ways.

    .venv/bin/python bench/bench_joins.py [--rows 2000000] [--reps 3] [--url ws://127.0.0.1:8765/ws]

- ``alone``: the owner streams a result (credit for every row granted at once);
- ``reader``: the same while a joined connection reads (and parses) every event too; either
  one may run ahead: the one more than the lag limit behind is closed with 4002 and resumes;
- ``stalled``: the same while a joined connection never reads (it is closed with 4002 once it
  falls ``limits.max_connection_lag_bytes`` behind; the owner must keep its pace).

Without ``--url`` it starts a gateway subprocess (embedded Spark, local[2]) and stops it at the
end. The configurations are interleaved round-robin so load drift hits each alike; it prints
the median and best rows/s of each, and how the joined connections ended.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from spark_gateway_protocol import PROTOCOL_VERSION  # noqa: E402


async def _open(url: str, **options: Any) -> ClientConnection:
    return await connect(url, subprotocols=[PROTOCOL_VERSION], max_size=None, **options)


async def _read_until_finished(ws: ClientConnection, eid: str) -> str:
    """A joined reader: read until the execution's ``finished`` (it kept up) or the gateway closes it."""
    try:
        while True:
            event = orjson.loads(await ws.recv())  # the owner's work per frame, so neither outpaces the other
            if event["type"] == "finished" and event.get("id") == eid:
                return "kept up"
    except ConnectionClosed as exc:
        return f"closed {exc.rcvd.code if exc.rcvd else 'without a close frame'}"


async def measure(url: str, rows: int, mode: str, run: int) -> tuple[float, str]:
    """Rows/s of the owner's stream in ``mode``; how the joined connection ended (or '-')."""
    owner = await _open(url)
    session = orjson.loads(await owner.recv())
    eid = f"b{run}"
    joined: ClientConnection | None = None
    reader: asyncio.Task[str] | None = None
    if mode != "alone":
        # max_queue=1: a stalled client stops taking frames off the socket at once.
        joined = await _open(f"{url}?join={session['session_id']}", max_queue=1 if mode == "stalled" else 16)
        await joined.recv()  # session-state
        if mode == "reader":
            reader = asyncio.create_task(_read_until_finished(joined, eid))
    code = f"SELECT id, repeat('x', 60) AS pad FROM range({rows})"
    await owner.send(orjson.dumps({"type": "execute", "id": eid, "code": code, "page_size": 10_000}).decode())
    received, started, last_seq, owner_closes = 0, None, 0, 0
    while True:
        try:
            event = orjson.loads(await owner.recv())
        except ConnectionClosed as exc:
            # Behind the fastest connection by more than the lag limit, the owner is closed too
            # (4002); it resumes from its last seq, as the project's clients do, and nothing is lost.
            if not exc.rcvd or exc.rcvd.code != 4002:
                raise
            owner_closes += 1
            owner = await _open(f"{url}?resume={session['session_id']}&last_seq={last_seq}")
            await owner.recv()  # resumed
            continue
        last_seq = event.get("seq", last_seq)
        if event.get("id") != eid:
            continue
        if event["type"] == "result":  # credit for every row at once (a result takes credit once announced)
            await owner.send(orjson.dumps({"type": "stream-rows", "id": eid, "result": 0, "max_rows": rows}).decode())
        if event["type"] == "rows":
            started = started or time.perf_counter()
            received += len(event["rows"])
        if event["type"] == "finished":
            break
    elapsed = time.perf_counter() - (started or time.perf_counter())
    assert received == rows, (received, rows)
    ended = "-"
    if reader is not None:
        ended = await asyncio.wait_for(reader, 120)
    elif joined is not None:  # the stalled one reads now: what reached it, then its close (or the end)
        ended = await asyncio.wait_for(_read_until_finished(joined, eid), 120)
    if owner_closes:
        ended += f" (the owner was closed with 4002 and resumed {owner_closes}x)"
    if joined is not None:
        await joined.close()
    await owner.close()
    return rows / elapsed if elapsed > 0 else float("inf"), ended


def start_gateway(port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-m", "spark_gateway", "serve", "--port", str(port)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2).status == 200:
                return proc
        except OSError:
            time.sleep(0.5)
    proc.terminate()
    raise SystemExit("the gateway did not become ready")


async def main(args: argparse.Namespace) -> None:
    modes = ("alone", "reader", "stalled")
    rates: dict[str, list[float]] = {m: [] for m in modes}
    endings: dict[str, list[str]] = {m: [] for m in modes}
    await measure(args.url, min(args.rows, 100_000), "alone", 0)  # warm-up
    for rep in range(args.reps):
        for mode in modes:
            rate, ended = await measure(args.url, args.rows, mode, rep * 10 + modes.index(mode) + 1)
            rates[mode].append(rate)
            endings[mode].append(ended)
            print(f"  rep {rep + 1} {mode:8s} {rate:12,.0f} rows/s  joined: {ended}", flush=True)
    print(f"\n{args.rows:,} rows (id, 60-char string), page_size 10000, all credit at once:")
    print(f"{'mode':10s}{'median rows/s':>16s}{'best rows/s':>14s}{'vs alone':>10s}  joined connection")
    base = statistics.median(rates["alone"])
    for mode in modes:
        median = statistics.median(rates[mode])
        print(f"{mode:10s}{median:16,.0f}{max(rates[mode]):14,.0f}{median / base:10.2f}  "
              f"{', '.join(sorted(set(endings[mode])))}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--url", help="a running gateway's ws:// URL (default: start one)")
    args = parser.parse_args()
    proc = None
    if args.url is None:
        from spark_gateway.spark_server import free_port

        port = free_port()
        proc = start_gateway(port)
        args.url = f"ws://127.0.0.1:{port}/ws"
    try:
        asyncio.run(main(args))
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(30)
