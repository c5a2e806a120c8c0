#!/usr/bin/env python
"""Gateway vs pyspark's own Spark Connect client, side by side, in one run.

    .venv/bin/python bench/bench_gateway.py [--rows 1000000,10000000] [--reps 3] [--quick]
                                            [--profile DIR]

One Spark Connect server (EmbeddedSparkServer, local[2]) and one gateway subprocess
(``python -m gateway serve --remote sc://...``) serve every measurement. Each
measurement runs in a fresh client subprocess of this script (``--role ...``), so
client CPU and peak RSS are per measurement, and the orchestrator (this process)
polls the gateway's RSS every 50 ms and reads the CPU time of the gateway and of the
Spark JVM around every run. Repeated configurations are interleaved round-robin so
load drift on a shared machine hits every path alike; the table shows median and
best (min time / max rate) of the repeats.

See bench/README.md for what each row means and the targets.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SUBPROTOCOL = "spark-gateway.v1"
CREDIT_WINDOW = 100_000  # rows of outstanding credit the fast client keeps granted


def query(n: int) -> str:
    return (f"SELECT id, id * 1.5 AS x, concat('row-', CAST(id AS STRING)) AS s "
            f"FROM range(0, {n}, 1, {partitions(n)})")


def partitions(n: int) -> int:
    return max(1, n // 200_000)


# ====================================================================== client roles
# Each role runs in its own subprocess and prints one JSON line (its result) last.


def _rss_now() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def _maxrss() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


async def _ws_connect(url: str, compression: str | None):  # type: ignore[no-untyped-def]
    from websockets.asyncio.client import connect

    return await connect(url, subprotocols=[SUBPROTOCOL], max_size=None, compression=compression)


async def _ws_run_small(ws: Any, eid: str, code: str) -> float:
    """Execute ``code`` and read until finished (small results: one page); seconds taken."""
    import orjson

    t0 = time.perf_counter()
    await ws.send(orjson.dumps({"type": "execute", "id": eid, "code": code}).decode())
    while True:
        ev = orjson.loads(await ws.recv(decode=False))
        if ev["type"] == "error":
            raise RuntimeError(f"gateway error: {ev}")
        if ev["type"] == "rows" and not ev["last"]:
            await ws.send(orjson.dumps({"type": "stream-rows", "id": eid, "result": ev["result"],
                                        "max_rows": 1_000_000}).decode())
        if ev["type"] == "finished":
            if ev["status"] != "ok":
                raise RuntimeError(f"execution {eid} ended {ev}")
            return time.perf_counter() - t0


async def role_ws_stream(p: dict[str, Any]) -> dict[str, Any]:
    """Fast client: execute, keep CREDIT_WINDOW rows of credit outstanding, count rows."""
    import orjson

    ws = await _ws_connect(p["url"], p["compression"])
    try:
        ws_ext = ws.response.headers.get("Sec-WebSocket-Extensions") or ""
        orjson.loads(await ws.recv(decode=False))  # session
        await _ws_run_small(ws, "warm", "SELECT 1")  # creates the session's Spark session
        page_size, window = p["page_size"], p["window"]
        cpu0, t0 = time.process_time(), time.perf_counter()
        await ws.send(orjson.dumps({"type": "execute", "id": "q", "code": p["query"],
                                    "page_size": page_size}).decode())
        rows = nbytes = frames = 0
        first = None
        outstanding = page_size  # the first page needs no credit

        async def grant() -> None:
            nonlocal outstanding
            await ws.send(orjson.dumps({"type": "stream-rows", "id": "q", "result": 0,
                                        "max_rows": window - outstanding}).decode())
            outstanding = window

        while True:
            frame = await ws.recv(decode=False)
            nbytes += len(frame)
            frames += 1
            ev = orjson.loads(frame)
            kind = ev["type"]
            if kind == "rows":
                n = len(ev["rows"])
                if first is None:
                    first = time.perf_counter() - t0
                rows += n
                outstanding -= n
                if not ev["last"] and outstanding < window // 2:
                    await grant()
            elif kind == "result":
                await grant()
            elif kind == "error":
                raise RuntimeError(f"gateway error: {ev}")
            elif kind == "finished":
                if ev["status"] != "ok":
                    raise RuntimeError(f"finished with {ev}")
                break
        elapsed = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
    finally:
        await ws.close()
    return {"rows": rows, "bytes": nbytes, "frames": frames, "seconds": elapsed, "first": first,
            "client_cpu": cpu, "client_maxrss": _maxrss(), "extensions": ws_ext}


async def role_ws_slow(p: dict[str, Any]) -> dict[str, Any]:
    """Slow client: 10k rows of credit every 100 ms for ``seconds``, then close-result."""
    import orjson

    ws = await _ws_connect(p["url"], p["compression"])
    got = {"rows": 0, "events": []}
    try:
        orjson.loads(await ws.recv(decode=False))
        await _ws_run_small(ws, "warm", "SELECT 1")
        t0 = time.perf_counter()
        await ws.send(orjson.dumps({"type": "execute", "id": "slow", "code": p["query"],
                                    "page_size": p["grant"]}).decode())
        done = asyncio.Event()

        async def reader() -> None:
            while True:
                ev = orjson.loads(await ws.recv(decode=False))
                if ev["type"] == "rows":
                    got["rows"] += len(ev["rows"])
                elif ev["type"] in ("result-closed", "error", "finished"):
                    got["events"].append({k: ev.get(k) for k in ("type", "reason", "status", "code", "rows")})
                    if ev["type"] == "finished":
                        done.set()
                        return

        task = asyncio.create_task(reader())
        while time.perf_counter() - t0 < p["seconds"] and not done.is_set():
            await asyncio.sleep(p["interval"])
            await ws.send(orjson.dumps({"type": "stream-rows", "id": "slow", "result": 0,
                                        "max_rows": p["grant"]}).decode())
        t_close = time.perf_counter()
        if not done.is_set():
            await ws.send(orjson.dumps({"type": "close-result", "id": "slow", "result": 0}).decode())
        await asyncio.wait_for(done.wait(), 60)
        close_s = time.perf_counter() - t_close
        await task
        elapsed = time.perf_counter() - t0
    finally:
        await ws.close()
    return {"rows": got["rows"], "seconds": elapsed, "close_seconds": close_s, "events": got["events"]}


async def role_ws_select1(p: dict[str, Any]) -> dict[str, Any]:
    ws = await _ws_connect(p["url"], p["compression"])
    try:
        await ws.recv(decode=False)
        cold = await _ws_run_small(ws, "c0", "SELECT 1")  # includes creating the Spark session
        times = [await _ws_run_small(ws, f"e{i}", "SELECT 1") for i in range(p["warmup"] + p["n"])]
    finally:
        await ws.close()
    return {"cold": cold, "times": times[p["warmup"]:]}


def _direct_session(url: str):  # type: ignore[no-untyped-def]
    from pyspark.sql.connect.session import SparkSession

    spark = SparkSession.builder.remote(url).create()
    spark.sql("SELECT 1").collect()  # channel and session are up before anything is timed
    return spark


def role_direct_iter(p: dict[str, Any]) -> dict[str, Any]:
    """pyspark's incremental Arrow fetch (what the gateway uses), counting rows."""
    import pyarrow as pa

    spark = _direct_session(p["url"])
    base = _rss_now()
    client = spark.client
    cpu0, t0 = time.process_time(), time.perf_counter()
    df = spark.sql(p["query"])
    req = client._execute_plan_request_with_metadata()
    req.plan.CopyFrom(df._plan.to_proto(client))
    rows = nbytes = 0
    first = None
    for item in client._execute_and_fetch_as_iterator(req, {}):
        if isinstance(item, pa.RecordBatch):
            if first is None:
                first = time.perf_counter() - t0
            rows += item.num_rows
            nbytes += item.nbytes
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    spark.stop()
    return {"rows": rows, "bytes": nbytes, "seconds": elapsed, "first": first, "client_cpu": cpu,
            "client_base_rss": base, "client_maxrss": _maxrss()}


def role_direct_arrow(p: dict[str, Any]) -> dict[str, Any]:
    """``df.toArrow()``: the whole result as one table."""
    spark = _direct_session(p["url"])
    base = _rss_now()
    cpu0, t0 = time.process_time(), time.perf_counter()
    table = spark.sql(p["query"]).toArrow()
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    rows, nbytes = table.num_rows, table.nbytes
    del table
    spark.stop()
    return {"rows": rows, "bytes": nbytes, "seconds": elapsed, "first": elapsed, "client_cpu": cpu,
            "client_base_rss": base, "client_maxrss": _maxrss()}


def role_direct_select1(p: dict[str, Any]) -> dict[str, Any]:
    spark = _direct_session(p["url"])
    out: dict[str, list[float]] = {"collect": [], "toArrow": []}
    for i in range(p["warmup"] + p["n"]):
        for kind in ("collect", "toArrow"):  # interleaved: same conditions for both
            t0 = time.perf_counter()
            df = spark.sql("SELECT 1")
            df.collect() if kind == "collect" else df.toArrow()
            if i >= p["warmup"]:
                out[kind].append(time.perf_counter() - t0)
    spark.stop()
    return out


ROLES = {
    "ws-stream": role_ws_stream, "ws-slow": role_ws_slow, "ws-select1": role_ws_select1,
    "direct-iter": role_direct_iter, "direct-arrow": role_direct_arrow,
    "direct-select1": role_direct_select1,
}


def run_role(name: str, params: dict[str, Any]) -> None:
    fn = ROLES[name]
    result = asyncio.run(fn(params)) if asyncio.iscoroutinefunction(fn) else fn(params)
    sys.stdout.write("\n" + json.dumps(result) + "\n")
    sys.stdout.flush()


# ====================================================================== orchestrator


class Sampler:
    """Polls a process's RSS every ``interval`` seconds in a thread."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        import psutil

        self.proc = psutil.Process(pid)
        self.interval = interval
        self.peak = self.base = self.proc.memory_info().rss
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Sampler:
        self._t0 = time.perf_counter()
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            rss = self.proc.memory_info().rss
            self.samples.append((time.perf_counter() - self._t0, rss))
            self.peak = max(self.peak, rss)
            self._stop.wait(self.interval)

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.after = self.proc.memory_info().rss


def cpu_seconds(procs: list[Any]) -> float:
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except Exception:  # noqa: BLE001 - a process that ended counts nothing more
            pass
    return total


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.server: Any = None
        self.gateway: subprocess.Popen[bytes] | None = None
        self.results: list[dict[str, Any]] = []
        self.loads: list[tuple[float, float, float]] = []
        self.workdir = Path(tempfile.mkdtemp(prefix="bench-gateway-"))

    # ---------------------------------------------------------------- processes

    def start(self) -> None:
        import psutil

        from gateway.spark_server import EmbeddedSparkServer, free_port

        self.note_load()
        t0 = time.perf_counter()
        self.server = EmbeddedSparkServer(master="local[2]", driver_memory="4g", max_result_size="3g", ui=False)
        self.url = self.server.start()
        log(f"Spark Connect server {self.url} up in {time.perf_counter() - t0:.1f}s (log {self.server.log_path})")
        jvm = psutil.Process(self.server.process.pid)
        self.jvm_procs = [jvm, *jvm.children(recursive=True)]
        port = free_port()
        self.gateway_log = self.workdir / "gateway.log"
        self._glog = open(self.gateway_log, "wb")
        self.gateway = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", "--port", str(port), "--remote", self.url,
             "--log-level", "warning"],
            cwd=ROOT, stdout=self._glog, stderr=subprocess.STDOUT, env={**os.environ})
        self.ws_url = f"ws://127.0.0.1:{port}/ws"
        deadline = time.monotonic() + 90
        while True:
            if self.gateway.poll() is not None:
                raise RuntimeError(f"gateway exited: {self.gateway_log.read_text()}")
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("gateway did not become ready") from None
                time.sleep(0.1)
        self.gw_proc = psutil.Process(self.gateway.pid)
        log(f"gateway pid {self.gateway.pid} at {self.ws_url} (log {self.gateway_log})")

    def stop(self) -> None:
        if self.gateway is not None:
            self.gateway.terminate()
            try:
                self.gateway.wait(15)
            except subprocess.TimeoutExpired:
                self.gateway.kill()
                self.gateway.wait()
            self._glog.close()
        if self.server is not None:
            self.server.stop()

    def note_load(self) -> None:
        self.loads.append(os.getloadavg())

    # ---------------------------------------------------------------- one measurement

    def role(self, name: str, params: dict[str, Any], *, sample_gateway: bool = False,
             profile: Path | None = None) -> dict[str, Any]:
        params = {"url": self.ws_url if name.startswith("ws") else self.url, **params}
        cmd = [sys.executable, __file__, "--role", name, "--params", json.dumps(params)]
        spy = None
        if profile is not None:
            spy = subprocess.Popen(
                [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(self.gateway.pid),
                 "--rate", "200", "--format", "raw", "--threads", "--output", str(profile)],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            time.sleep(1.0)
        self.note_load()
        gw_cpu0, jvm_cpu0 = cpu_seconds([self.gw_proc]), cpu_seconds(self.jvm_procs)
        sampler = Sampler(self.gateway.pid) if sample_gateway else None
        if sampler:
            sampler.__enter__()
        try:
            proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
        finally:
            if sampler:
                sampler.__exit__(None)
            if spy is not None:
                spy.send_signal(2)  # SIGINT: py-spy writes its output and exits
                try:
                    spy.wait(30)
                except subprocess.TimeoutExpired:
                    spy.kill()
        if proc.returncode != 0:
            raise RuntimeError(f"role {name} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        out["gateway_cpu"] = cpu_seconds([self.gw_proc]) - gw_cpu0
        out["jvm_cpu"] = cpu_seconds(self.jvm_procs) - jvm_cpu0
        if sampler:
            out["gw_base"], out["gw_peak"], out["gw_after"] = sampler.base, sampler.peak, sampler.after
            out["gw_samples"] = len(sampler.samples)
            out["gw_series"] = sampler.samples[:: max(1, len(sampler.samples) // 400)]
        return out

    # ---------------------------------------------------------------- the run

    def run(self) -> str:
        a = self.args
        rows = [int(r) for r in a.rows.split(",")]
        t_start = time.perf_counter()
        self.start()
        # Warm both paths (JVM JIT, gateway imports, pyarrow) with a small copy of the query.
        warm_n = min(1_000_000, min(rows))
        self.role("direct-iter", {"query": query(warm_n)})
        self.role("ws-stream", {"query": query(warm_n), "page_size": 10_000, "window": CREDIT_WINDOW,
                                "compression": "deflate"})
        log(f"warm-up done at {time.perf_counter() - t_start:.0f}s")

        # 5. Slow reader first, while the gateway's heap is not yet inflated by the fast streams.
        slow_n = max(rows)
        slow = self.role("ws-slow", {"query": query(slow_n), "grant": 10_000, "interval": 0.1,
                                     "seconds": a.slow_seconds, "compression": "deflate"},
                         sample_gateway=True)
        slow["n"] = slow_n
        self.slow = slow
        log(f"slow reader: {slow['rows']} rows in {slow['seconds']:.1f}s, gateway RSS "
            f"{mib(slow['gw_base'])} -> peak {mib(slow['gw_peak'])} MiB")

        # 1-4. Throughput, interleaved round-robin.
        configs: list[tuple[str, str, dict[str, Any]]] = [
            ("gw", "ws-stream", {"page_size": 10_000, "compression": "deflate"}),
            ("gw-nodeflate", "ws-stream", {"page_size": 10_000, "compression": None}),
            ("gw-p1000", "ws-stream", {"page_size": 1_000, "compression": "deflate"}),
            ("direct-iter", "direct-iter", {}),
            ("direct-arrow", "direct-arrow", {}),
        ]
        for rep in range(a.reps):
            for n in rows:
                for key, role, extra in configs:
                    if key == "gw-p1000" and a.quick and n > 1_000_000:
                        continue
                    params = {"query": query(n), **extra}
                    if role == "ws-stream":
                        params["window"] = CREDIT_WINDOW
                    r = self.role(role, params, sample_gateway=role.startswith("ws"))
                    r.update(key=key, n=n, rep=rep)
                    if r["rows"] != n:
                        raise RuntimeError(f"{key} N={n}: got {r['rows']} rows")
                    self.results.append(r)
                    log(f"rep {rep} N={n:>9} {key:<13} {r['seconds']:6.2f}s {n / r['seconds'] / 1e6:5.2f} Mrows/s"
                        f" first {r['first']:.3f}s client cpu {r['client_cpu']:.1f}s gw cpu {r['gateway_cpu']:.1f}s"
                        f" jvm cpu {r['jvm_cpu']:.1f}s load {self.loads[-1][0]:.1f}")

        # 6. SELECT 1 round trips.
        n1 = 50 if a.quick else a.select1
        self.sel_gw = self.role("ws-select1", {"n": n1, "warmup": 20, "compression": "deflate"})
        self.sel_direct = self.role("direct-select1", {"n": n1, "warmup": 20})
        log("SELECT 1 done")

        if a.profile:
            self.profile(Path(a.profile), max(rows))
        self.note_load()
        self.total_seconds = time.perf_counter() - t_start
        return self.report()

    def profile(self, outdir: Path, n: int) -> None:
        """One extra fast stream per gateway config under py-spy; summaries next to the raw stacks."""
        outdir.mkdir(parents=True, exist_ok=True)
        for key, extra in (("gw", {"page_size": 10_000, "compression": "deflate"}),
                           ("gw-nodeflate", {"page_size": 10_000, "compression": None})):
            raw = outdir / f"profile-{key}-{n}.txt"
            r = self.role("ws-stream", {"query": query(n), "window": CREDIT_WINDOW, **extra}, profile=raw)
            log(f"profiled {key} N={n}: {r['seconds']:.2f}s (under py-spy) -> {raw}")
            if raw.exists():
                (outdir / f"profile-{key}-{n}-summary.md").write_text(summarize_profile(raw))

    # ---------------------------------------------------------------- report

    def report(self) -> str:
        rows = sorted({r["n"] for r in self.results})
        lines: list[str] = []
        load = [f"{x:.2f}" for x in self.loads[0]]
        loads1 = [l[0] for l in self.loads]
        lines += [
            f"Run {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} on {platform.node()}: "
            f"{os.cpu_count()} cores, load average at start {' / '.join(load)} (1/5/15 min), 1-min load during "
            f"runs min {min(loads1):.1f} median {statistics.median(loads1):.1f} max {max(loads1):.1f}; "
            f"{versions()}; {self.args.reps} repetition(s), interleaved; total {self.total_seconds:.0f}s.",
            "",
            f"Query: `{query(10_000_000)}` (P = N / 200000, same everywhere). "
            "Cells: median (best) over repetitions. Gateway client: websockets asyncio client, "
            f"orjson parse of every frame, {CREDIT_WINDOW // 1000}k rows of credit kept outstanding. "
            "`deflate` = the websockets client's default (permessage-deflate negotiated with uvicorn), "
            "`no deflate` = `compression=None`.",
            "",
            "| measurement | N | time s | rows/s | MB/s | first page/batch s | client CPU s | gateway CPU s | Spark JVM CPU s | client peak RSS MiB | gateway RSS growth MiB |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        names = {
            "gw": "gateway JSON, page 10000, deflate",
            "gw-nodeflate": "gateway JSON, page 10000, no deflate",
            "gw-p1000": "gateway JSON, page 1000, deflate",
            "direct-iter": "direct `_execute_and_fetch_as_iterator` (Arrow)",
            "direct-arrow": "direct `toArrow()`",
        }
        stats: dict[tuple[str, int], dict[str, Any]] = {}
        for n in rows:
            for key, label in names.items():
                rs = [r for r in self.results if r["key"] == key and r["n"] == n]
                if not rs:
                    continue
                secs = [r["seconds"] for r in rs]
                st = stats[(key, n)] = {
                    "med": statistics.median(secs), "min": min(secs),
                    "first_med": statistics.median(r["first"] for r in rs), "first_min": min(r["first"] for r in rs),
                }
                mb = statistics.median(r["bytes"] for r in rs) / 1e6
                rss = (f"{mib(statistics.median(r['client_maxrss'] for r in rs))}"
                       + (f" (base {mib(statistics.median(r['client_base_rss'] for r in rs))})" if "client_base_rss" in rs[0] else ""))
                growth = (f"{mib(statistics.median(r['gw_peak'] - r['gw_base'] for r in rs))} "
                          f"(max {mib(max(r['gw_peak'] - r['gw_base'] for r in rs))})" if "gw_peak" in rs[0] else "–")
                lines.append(
                    f"| {label} | {n / 1e6:g}M | {st['med']:.2f} ({st['min']:.2f}) | {fmt_rate(n / st['med'])} ({fmt_rate(n / st['min'])})"
                    f" | {mb / st['med']:.0f} ({mb / st['min']:.0f}) | {st['first_med']:.3f} ({st['first_min']:.3f})"
                    f" | {statistics.median(r['client_cpu'] for r in rs):.2f} | "
                    + (f"{statistics.median(r['gateway_cpu'] for r in rs):.2f}" if key.startswith("gw") else "–")
                    + f" | {statistics.median(r['jvm_cpu'] for r in rs):.2f} | {rss} | {growth} |")
        lines += ["", "MB/s: JSON frame bytes as received (after inflate) for the gateway, Arrow buffer bytes for direct.", ""]

        # Ratios vs targets.
        lines += ["| ratio (rows/s) | N | median | best/best | target | met |", "|---|---|---|---|---|---|"]
        for n in rows:
            for gw in ("gw", "gw-nodeflate", "gw-p1000"):
                for direct in ("direct-iter", "direct-arrow"):
                    if (gw, n) not in stats or (direct, n) not in stats:
                        continue
                    med = stats[(direct, n)]["med"] / stats[(gw, n)]["med"]
                    best = stats[(direct, n)]["min"] / stats[(gw, n)]["min"]
                    lines.append(f"| {names[gw]} / {names[direct]} | {n / 1e6:g}M | {med:.2f}× | {best:.2f}× | ≥ 0.7× | "
                                 f"{'yes' if med >= 0.7 else 'no'} |")
        lines.append("")

        n_big = max(rows)
        if ("gw", n_big) in stats:
            lines += [
                f"| time to first page, N = {n_big / 1e6:g}M | median s | best s |", "|---|---|---|",
                f"| gateway: execute sent → first `rows` (session already warm) | {stats[('gw', n_big)]['first_med']:.3f} | {stats[('gw', n_big)]['first_min']:.3f} |",
                f"| direct: request → first Arrow batch | {stats[('direct-iter', n_big)]['first_med']:.3f} | {stats[('direct-iter', n_big)]['first_min']:.3f} |",
                f"| direct `toArrow()`: whole result | {stats[('direct-arrow', n_big)]['first_med']:.3f} | {stats[('direct-arrow', n_big)]['first_min']:.3f} |",
                "",
            ]

        s = self.slow
        growth = s["gw_peak"] - s["gw_base"]
        fast_growth = [r["gw_peak"] - r["gw_base"] for r in self.results if r["key"].startswith("gw") and r["n"] == n_big]
        lines += [
            "| gateway RSS | MiB | target | met |", "|---|---|---|---|",
            f"| slow reader (10k rows credit / 100 ms, {s['seconds']:.0f}s, {s['rows']:,} of {s['n']:,} rows, then close-result): baseline | {mib(s['gw_base'])} | | |",
            f"| slow reader: peak | {mib(s['gw_peak'])} | | |",
            f"| slow reader: growth | {mib(growth)} | ≤ 150 | {'yes' if growth <= 150 * 2**20 else 'no'} |",
            f"| slow reader: after close-result | {mib(s['gw_after'])} | | |",
            f"| fast {n_big / 1e6:g}M streams: peak growth, median (max) over {len(fast_growth)} runs | "
            f"{mib(statistics.median(fast_growth)) if fast_growth else '–'} ({mib(max(fast_growth)) if fast_growth else '–'}) | ≤ 150 | "
            f"{'yes' if fast_growth and max(fast_growth) <= 150 * 2**20 else 'no'} |",
            "",
            f"Slow reader: close-result → finished took {s['close_seconds'] * 1000:.0f} ms; events: "
            + ", ".join(f"{e['type']}({e.get('reason') or e.get('status')})" for e in s["events"]) + ".",
            "",
        ]

        g, d = self.sel_gw["times"], self.sel_direct
        p = lambda xs, q: percentile(xs, q) * 1000  # noqa: E731
        over = p(g, 50) - p(d["collect"], 50)
        lines += [
            f"| `SELECT 1` round trip ({len(g)} sequential, after 20 warm-up) | p50 ms | p99 ms | mean ms |", "|---|---|---|---|",
            f"| gateway: execute → finished | {p(g, 50):.2f} | {p(g, 99):.2f} | {statistics.mean(g) * 1000:.2f} |",
            f"| direct `spark.sql('SELECT 1').collect()` | {p(d['collect'], 50):.2f} | {p(d['collect'], 99):.2f} | {statistics.mean(d['collect']) * 1000:.2f} |",
            f"| direct `spark.sql('SELECT 1').toArrow()` | {p(d['toArrow'], 50):.2f} | {p(d['toArrow'], 99):.2f} | {statistics.mean(d['toArrow']) * 1000:.2f} |",
            f"| overhead gateway − collect (target ≤ 3 ms p50) | {over:.2f} | {p(g, 99) - p(d['collect'], 99):.2f} | {'met' if over <= 3 else 'NOT met'} |",
            "",
            f"First execute on a new connection (creates the session's Spark session): {self.sel_gw['cold'] * 1000:.0f} ms.",
        ]
        return "\n".join(lines) + "\n"


# ====================================================================== helpers


def summarize_profile(raw: Path, top: int = 25) -> str:
    """Self and inclusive sample shares from py-spy's raw (collapsed) stacks."""
    from collections import Counter

    self_c: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        c = int(count)
        frames = stack.split(";")
        total += c
        threads[frames[0]] += c
        self_c[frames[-1]] += c
        for f in set(frames[1:]):
            incl[f] += c
    out = [f"# {raw.name}: {total} samples (all threads, idle included)", "", "## threads", ""]
    out += [f"- {c / total:6.1%} {t}" for t, c in threads.most_common(10)]
    out += ["", "## self (leaf frame)", ""]
    out += [f"- {c / total:6.1%} {f}" for f, c in self_c.most_common(top)]
    out += ["", "## inclusive", ""]
    out += [f"- {c / total:6.1%} {f}" for f, c in incl.most_common(top * 2)]
    return "\n".join(out) + "\n"


def percentile(xs: list[float], q: float) -> float:
    s = sorted(xs)
    k = (len(s) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def mib(b: float) -> str:
    return f"{b / 2**20:.0f}"


def fmt_rate(r: float) -> str:
    return f"{r / 1e6:.2f}M"


def versions() -> str:
    import orjson
    import pyarrow
    import pyspark
    import uvicorn
    import websockets

    java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr.splitlines()[0]
    return (f"Python {platform.python_version()}, pyspark {pyspark.__version__}, pyarrow {pyarrow.__version__}, "
            f"websockets {websockets.__version__}, uvicorn {uvicorn.__version__}, orjson {orjson.__version__}, {java}")


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", default="1000000,10000000", help="comma-separated result sizes")
    ap.add_argument("--reps", type=int, default=3, help="repetitions of each throughput run (interleaved)")
    ap.add_argument("--quick", action="store_true", help="1 repetition, short slow-reader and SELECT 1 runs")
    ap.add_argument("--slow-seconds", type=float, default=15.0)
    ap.add_argument("--select1", type=int, default=200, help="measured SELECT 1 round trips")
    ap.add_argument("--profile", metavar="DIR", help="also record the gateway with py-spy during one 10M stream per config")
    ap.add_argument("--out", default=str(BENCH / "results-latest.md"))
    ap.add_argument("--role", help=argparse.SUPPRESS)
    ap.add_argument("--params", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.role:
        run_role(args.role, json.loads(args.params))
        return 0
    if args.quick:
        args.reps, args.slow_seconds = 1, min(args.slow_seconds, 5.0)
    bench = Bench(args)
    try:
        table = bench.run()
    finally:
        bench.stop()
    print(table)
    Path(args.out).write_text("# bench_gateway.py results\n\n" + table)
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
