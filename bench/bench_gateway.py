#!/usr/bin/env python
"""Gateway vs pyspark's own Spark Connect client, side by side, in one run.

    .venv/bin/python bench/bench_gateway.py [--rows 1000000,10000000] [--reps 3] [--quick]
                                            [--profile DIR]

One Spark Connect server (EmbeddedSparkServer, local[2]) and one gateway subprocess
(``python -m spark_gateway serve --remote sc://...``) serve every measurement. Each
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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SUBPROTOCOL = "spark-gateway.v1"
CREDIT_WINDOW = 100_000  # rows of outstanding credit the fast client keeps granted
RECV_TIMEOUT = 60.0  # a client that hears nothing this long reports a stall instead of hanging
ROLE_TIMEOUT = 300.0


# The x column: a double, as issue 2 specifies (bigint, double, string); `--x decimal`
# gives the decimal(23,1) of `id * 1.5` (what the runs before 2026-11-26 06:00 measured).
X_COLUMNS = {"double": "id * 1.5D", "decimal": "id * 1.5"}
X_COLUMN = X_COLUMNS["double"]


def query(n: int) -> str:
    return (f"SELECT id, {X_COLUMN} AS x, concat('row-', CAST(id AS STRING)) AS s "
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
    """A websockets asyncio client; ``ws.wire_bytes`` counts the bytes read from the socket."""
    from websockets.asyncio.client import connect

    ws = await connect(url, subprotocols=[SUBPROTOCOL], max_size=None, compression=compression)
    ws.wire_bytes = 0
    received = ws.data_received

    def counting(data: bytes) -> None:  # the transport calls the protocol's data_received
        ws.wire_bytes += len(data)
        received(data)

    ws.data_received = counting
    return ws


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

    if p.get("gc"):
        import gc

        gc.set_threshold(*p["gc"])  # as the gateway does (gateway/cli.py)
    ws = await _ws_connect(p["url"], p["compression"])
    try:
        ws_ext = ws.response.headers.get("Sec-WebSocket-Extensions") or ""
        orjson.loads(await ws.recv(decode=False))  # session
        await _ws_run_small(ws, "warm", "SELECT 1")  # creates the session's Spark session
        page_size, window = p["page_size"], p["window"]
        # pyarrow is imported before the clock starts, as in the direct roles.
        arrow = ArrowCounter() if p.get("format") == "arrow" else None
        wire0 = ws.wire_bytes
        cpu0, t0 = time.process_time(), time.perf_counter()
        request = {"type": "execute", "id": "q", "code": p["query"], "page_size": page_size,
                   "format": p.get("format", "json")}
        if p.get("layout"):
            request["layout"] = p["layout"]
        await ws.send(orjson.dumps(request).decode())
        rows = nbytes = frames = 0
        first = None
        outstanding = page_size  # the first page needs no credit

        async def grant() -> None:
            nonlocal outstanding
            await ws.send(orjson.dumps({"type": "stream-rows", "id": "q", "result": 0,
                                        "max_rows": window - outstanding}).decode())
            outstanding = window

        text_only = p.get("parse") == "header"
        total = None
        ev: dict[str, Any] = {}
        while True:
            try:
                frame = await asyncio.wait_for(ws.recv(decode=False), RECV_TIMEOUT)
            except TimeoutError:
                raise RuntimeError(f"no frame for {RECV_TIMEOUT}s: rows={rows} frames={frames} "
                                   f"outstanding={outstanding} last event={ev}") from None
            nbytes += len(frame)
            frames += 1
            if arrow is not None and frame[:1] != b"{":
                ev = arrow.feed(frame)  # binary arrow-rows frame: header + IPC messages
            elif text_only and frame.startswith(b'{"type":"rows"'):
                ev = _rows_header(frame, page_size)  # forwards the text: reads only the page's header
            else:
                ev = orjson.loads(frame)
            kind = ev["type"]
            if kind in ("rows", "arrow-rows"):
                n = ev["count"] if "count" in ev else len(ev["rows"])  # arrow-rows or a column page
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
                total = ev["results"][0]["rows"] if ev.get("results") else None
                break
        elapsed = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
    finally:
        await ws.close()
    if arrow is not None and arrow.rows != rows:
        raise RuntimeError(f"arrow frames decoded {arrow.rows} rows, headers said {rows}")
    if text_only and total != rows:
        raise RuntimeError(f"pages counted {rows} rows, finished said {total}")
    return {"rows": rows, "bytes": nbytes, "frames": frames, "seconds": elapsed, "first": first,
            "client_cpu": cpu, "client_maxrss": _maxrss(), "extensions": ws_ext, "wire_bytes": ws.wire_bytes - wire0}


def _rows_header(frame: bytes, page_size: int) -> dict[str, Any]:
    """A ``rows`` page as a client that forwards the JSON text sees it (no parse of the rows).

    A column page says its ``count``. Of a row page, every page but the last holds
    ``page_size`` rows (the credit window is a multiple of it); the last one's count is what
    is left, checked against ``finished`` by the caller.
    """
    start = frame.index(b'"offset":') + 9
    offset = int(frame[start : frame.index(b",", start)])
    last = b'"last":true' in frame[-40:]
    at = frame.find(b'"count":', start, start + 40)
    if at >= 0:
        count = int(frame[at + 8 : frame.index(b",", at)])
    elif not last:
        count = page_size
    elif b'"rows":[]' in frame:
        count = 0
    else:
        count = frame.count(b"],[") + 1  # the bench's rows hold no "],[" of their own
    return {"type": "rows", "offset": offset, "rows": range(count), "last": last}


class ArrowCounter:
    """Decodes binary ``arrow-rows`` frames (docs/protocol.md, Arrow frames) into RecordBatches."""

    def __init__(self) -> None:
        import pyarrow as pa

        self.pa = pa
        self.schema = None
        self.rows = 0

    def feed(self, frame: bytes) -> dict[str, Any]:
        import orjson

        pa = self.pa
        n = int.from_bytes(frame[:4], "big")
        header = orjson.loads(frame[4 : 4 + n])
        reader = pa.BufferReader(pa.py_buffer(frame)[4 + n :])
        while True:
            try:
                message = pa.ipc.read_message(reader)
            except EOFError:
                break
            if message.type == "schema":
                self.schema = pa.ipc.read_schema(message)
            else:
                self.rows += pa.ipc.read_record_batch(message, self.schema).num_rows
        return header


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
        done, opened = asyncio.Event(), asyncio.Event()

        async def reader() -> None:
            while True:
                ev = orjson.loads(await ws.recv(decode=False))
                if ev["type"] == "result":
                    opened.set()  # credit before the result exists would be refused (unknown_result)
                elif ev["type"] == "rows":
                    got["rows"] += len(ev["rows"])
                elif ev["type"] in ("result-closed", "error", "finished"):
                    got["events"].append({k: ev.get(k) for k in ("type", "reason", "status", "code", "message", "rows")})
                    if ev["type"] == "finished":
                        done.set()
                        return

        task = asyncio.create_task(reader())
        await asyncio.wait_for(opened.wait(), 60)
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


async def role_select1(p: dict[str, Any]) -> dict[str, Any]:
    """``SELECT 1`` round trips, gateway and direct interleaved in one process (same load).

    Each round: the gateway (execute → finished, with the arrival time of every event),
    then direct ``collect()``, then direct ``toArrow()`` on one warm pyspark session.
    """
    import orjson

    spark = _direct_session(p["sc_url"])
    # The gateway's own Spark call pattern, without the gateway: a session with the settings
    # the gateway applies, spark.sql, then ExecutePlan with an operation id and a progress
    # handler, read through the incremental iterator. Isolates the gateway process's overhead.
    like = _direct_session(p["sc_url"])
    like.conf.set("spark.connect.progress.reportInterval", "250ms")
    like.conf.set("spark.sql.connect.serverStacktrace.enabled", "false")
    ws = await _ws_connect(p["url"], p["compression"])
    out: dict[str, Any] = {"gateway": [], "collect": [], "toArrow": [], "gateway-like": [], "phases": {}}
    try:
        await ws.recv(decode=False)
        out["cold"] = await _ws_run_small(ws, "c0", "SELECT 1")  # creates the Spark session
        for i in range(p["warmup"] + p["n"]):
            t0 = time.perf_counter()
            await ws.send(orjson.dumps({"type": "execute", "id": f"e{i}", "code": "SELECT 1"}).decode())
            seen: dict[str, float] = {}
            while True:
                ev = orjson.loads(await ws.recv(decode=False))
                seen.setdefault(ev["type"], time.perf_counter() - t0)
                if ev["type"] == "error":
                    raise RuntimeError(f"gateway error: {ev}")
                if ev["type"] == "finished":
                    break
            t_gw = time.perf_counter() - t0
            t0 = time.perf_counter()
            spark.sql("SELECT 1").collect()
            t_collect = time.perf_counter() - t0
            t0 = time.perf_counter()
            spark.sql("SELECT 1").toArrow()
            t_arrow = time.perf_counter() - t0
            t0 = time.perf_counter()
            _gateway_like_fetch(like, "SELECT 1")
            t_like = time.perf_counter() - t0
            if i >= p["warmup"]:
                out["gateway"].append(t_gw)
                out["collect"].append(t_collect)
                out["toArrow"].append(t_arrow)
                out["gateway-like"].append(t_like)
                for kind, t in seen.items():
                    out["phases"].setdefault(kind, []).append(t)
    finally:
        await ws.close()
        spark.stop()
        like.stop()
    return out


def _gateway_like_fetch(spark: Any, code: str) -> int:
    """What the gateway does with Spark for one SQL result, in this process."""
    import uuid

    import pyarrow as pa
    from pyspark.sql.connect.shell.progress import Progress

    df = spark.sql(code)
    client = spark.client
    req = client._execute_plan_request_with_metadata()
    req.plan.CopyFrom(df._plan.to_proto(client))
    req.operation_id = str(uuid.uuid4())
    progress = Progress(handlers=[lambda **kw: None], operation_id=req.operation_id)
    rows = 0
    client.disable_reattachable_execute()  # as the gateway's result streams (gateway/spark.py)
    try:
        for item in client._execute_and_fetch_as_iterator(req, df._plan.observations, progress):
            if isinstance(item, pa.RecordBatch):
                rows += item.num_rows
    finally:
        client.enable_reattachable_execute()
    return rows


def _direct_session(url: str):  # type: ignore[no-untyped-def]
    from spark_gateway import spark as adapter

    # The gateway's own connect: the server's URL has a token (sc://127.0.0.1:P/;token=...), which
    # pyspark's builder alone would send over TLS (docs/deployment.md, "TLS or not").
    spark = adapter.connect(url)
    spark.sql("SELECT 1").collect()  # channel and session are up before anything is timed
    return spark


def role_direct_iter(p: dict[str, Any]) -> dict[str, Any]:
    """pyspark's incremental Arrow fetch (what the gateway uses), counting rows."""
    import pyarrow as pa

    spark = _direct_session(p["url"])
    base = _rss_now()
    client = spark.client
    if not p.get("reattach", True):
        client.disable_reattachable_execute()
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


# ---------------------------------------------------------------- the project's Python client


def _count_wire(ws: Any) -> None:
    """Count the bytes a websockets client connection reads from its socket (``ws.wire_bytes``)."""
    ws.wire_bytes = 0
    received = ws.data_received

    def counting(data: bytes) -> None:
        ws.wire_bytes += len(data)
        received(data)

    ws.data_received = counting


async def role_client_stream(p: dict[str, Any]) -> dict[str, Any]:
    """clients/python (spark_gateway_client): one result, Arrow or JSON, in this process.

    ``mode`` "iter": ``async for batch in session.execute(q, format=...)`` counting rows
    (pyarrow RecordBatches in Arrow format, ``RowBatch``es in JSON, with ``len()``); "rows":
    the same, reading every row of every batch (JSON: rows built from the columns);
    "to_arrow": ``await session.execute(q, format="arrow").to_arrow()``, the whole result as
    a Table. ``layout``: the JSON page layout the client asks for (default: its own).
    """
    from spark_gateway_client import connect
    from spark_gateway_client import execution as client_execution

    if p.get("layout"):
        client_execution.JSON_LAYOUT = p["layout"]

    async with connect(p["url"], open_timeout=30) as session:
        _count_wire(session._ws)
        await session.sql("SELECT 1").rows()  # creates the session's Spark session
        arrow = p["format"] == "arrow"
        if arrow:
            import pyarrow  # noqa: F401 - imported before the clock starts, as in the direct roles
        base = _rss_now()
        wire0 = session._ws.wire_bytes
        cpu0, t0 = time.process_time(), time.perf_counter()
        execution = session.execute(p["query"], format=p["format"], page_size=p.get("page_size"))
        rows = nbytes = 0
        first = None
        if p["mode"] == "to_arrow":
            table = await execution.to_arrow()
            first = time.perf_counter() - t0
            rows, nbytes = table.num_rows, table.nbytes
            del table
        else:
            each_row = p["mode"] == "rows"
            async for batch in execution:
                if first is None:
                    first = time.perf_counter() - t0
                if each_row:
                    for _row in batch:
                        rows += 1
                else:
                    rows += batch.num_rows if arrow else len(batch)
                if arrow:
                    nbytes += batch.nbytes
            await execution
        elapsed = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
        wire = session._ws.wire_bytes - wire0
    return {"rows": rows, "bytes": nbytes or wire, "wire_bytes": wire, "seconds": elapsed, "first": first,
            "client_cpu": cpu, "client_base_rss": base, "client_maxrss": _maxrss()}


def role_client_cli(p: dict[str, Any]) -> dict[str, Any]:
    """The client's command line writing the result to a file, as a user would run it:

    ``python -m spark_gateway_client --url URL --no-progress --format F -o FILE "SQL"``
    (the same program as ``spark-gateway query``), in a child process of this one; its
    peak RSS and CPU come from ``getrusage(RUSAGE_CHILDREN)``. Checks the file's row count.
    """
    import resource

    out = Path(p["dir"]) / f"bench-cli-{os.getpid()}.{p['format']}"
    cmd = [sys.executable, "-m", "spark_gateway_client", "--url", p["url"], "--no-progress",
           "--format", p["format"], "-o", str(out), p["query"]]
    try:
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=ROLE_TIMEOUT)
        elapsed = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"CLI exited {proc.returncode}: {proc.stderr[-2000:]}")
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        size = out.stat().st_size
        rows = _file_rows(out, p["format"])
    finally:
        out.unlink(missing_ok=True)
    return {"rows": rows, "bytes": size, "file_bytes": size, "seconds": elapsed, "first": elapsed,
            "client_cpu": usage.ru_utime + usage.ru_stime, "client_maxrss": usage.ru_maxrss * 1024}


def _file_rows(path: Path, fmt: str) -> int:
    """Rows in a file the CLI wrote (read batch by batch / block by block: constant memory)."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return int(pq.ParquetFile(path).metadata.num_rows)
    if fmt == "arrow":
        import pyarrow as pa

        with pa.OSFile(str(path)) as f:
            return sum(batch.num_rows for batch in pa.ipc.open_stream(f))
    lines = 0
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            lines += block.count(b"\n")
    return lines - 1  # the header


# ---------------------------------------------------------------- the web notebook's grid

# In the page: run cell ``index`` and, once its table shows the first page, ask for every
# remaining row at once (as "Load more" does, with a bigger count); resolve with the ms from
# the run to a painted frame of the grid whose footer counts all ``rows`` loaded, and the ms
# the page spent handling gateway frames meanwhile (parse, store, render: the client's own
# share). Works with the current table (``size``) and with older ones (``rows.length``).
_GRID_SCRIPT = """async ({ index, rows }) => {
  const client = sparkGateway.client;
  if (!client.__timed) {
    const handle = client._onFrame.bind(client);
    client.__timed = true;
    client._onFrame = (text) => { const s = performance.now(); handle(text); client.__ms += performance.now() - s; };
  }
  client.__ms = 0;
  const cell = sparkGateway.notebook.cells[index];
  const t0 = performance.now();
  cell.execute();
  return await new Promise((resolve, reject) => {
    let granted = false;
    const tick = () => {
      const table = cell.run && cell.run.tables.get(0);
      const size = table ? (table.size ?? table.rows.length) : 0;
      if (table && size && !granted) {
        granted = true;
        table.host.pageSize = rows;
        table.loadMore();
      }
      if (table && table.end && table.end !== "last") { reject(new Error(`result ended: ${table.end}`)); return; }
      if (table && table.end === "last" && size >= rows) {
        requestAnimationFrame(() => resolve({ ms: performance.now() - t0, size, frames_ms: client.__ms,
                                              counter: table.counter.textContent }));
        return;
      }
      requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  });
}"""


def role_browser_grid(p: dict[str, Any]) -> dict[str, Any]:
    """The web notebook in Debian's chromium (Playwright, ``executable_path``): execute → the grid
    showing ``rows`` loaded rows of the query, in 1000-row pages (the notebook's page size).

    ``variant`` "columns": the notebook as it is; "rows": the same notebook asking for the rows
    layout (run.js rewritten on the way); "rows@REV": every js/ module as git revision REV had it.
    """
    from playwright.sync_api import sync_playwright

    variant = p["variant"]
    old_js = variant.split("@", 1)[1] if "@" in variant else None

    def serve(route: Any) -> None:
        name = route.request.url.rsplit("/js/", 1)[1].split("?")[0]
        if old_js is not None:
            body = subprocess.run(["git", "show", f"{old_js}:clients/web/js/{name}"], cwd=ROOT, check=True,
                                  capture_output=True).stdout
            route.fulfill(body=body, content_type="text/javascript")
        elif name == "run.js" and variant == "rows":
            text = route.fetch().text().replace("layout: Layout.COLUMNS", "layout: Layout.ROWS")
            route.fulfill(body=text, content_type="text/javascript")
        else:
            route.continue_()

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium",
                                     args=["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.route("**/js/*.js", serve)
            page.goto(p["http_url"] + "/")
            page.wait_for_selector('#connection[data-state="connected"]', timeout=60_000)
            timings = []
            for code, rows in (("SELECT 1", 1), (p["query"], p["rows"])):  # SELECT 1: the session's Spark session
                count = page.locator(".cell").count()
                page.click("#add-sql")
                page.locator(".cell").nth(count).locator("textarea").fill(code)
                timings.append(page.evaluate(_GRID_SCRIPT, {"index": count, "rows": rows}))
        finally:
            browser.close()
    result = timings[-1]
    return {"rows": result["size"], "seconds": result["ms"] / 1000, "frames_ms": result["frames_ms"], "first": None,
            "client_cpu": 0.0, "client_maxrss": 0, "bytes": 0, "counter": result["counter"]}


ROLES = {
    "ws-stream": role_ws_stream, "ws-slow": role_ws_slow, "ws-select1": role_select1,
    "direct-iter": role_direct_iter, "direct-arrow": role_direct_arrow,
    "client-stream": role_client_stream, "client-cli": role_client_cli, "browser-grid": role_browser_grid,
}


def run_role(name: str, params: dict[str, Any]) -> None:
    fn = ROLES[name]
    result = asyncio.run(fn(params)) if asyncio.iscoroutinefunction(fn) else fn(params)
    sys.stdout.write("\n" + json.dumps(result) + "\n")
    sys.stdout.flush()


# ====================================================================== orchestrator

# key: (label, role, parameters, largest N, repetitions when N > 1M)
CONFIGS: dict[str, tuple[str, str, dict[str, Any], int, int]] = {
    "gw": ("gateway JSON, page 10000", "ws-stream",
           {"page_size": 10_000, "compression": None}, 10**12, 99),
    "gw-gc": ("gateway JSON, page 10000, client with the gateway's GC thresholds", "ws-stream",
              {"page_size": 10_000, "compression": None, "gc": [100_000, 50, 100]}, 10**12, 99),
    "gw-text": ("gateway JSON, page 10000, client forwards the text (parses page headers only)", "ws-stream",
                {"page_size": 10_000, "compression": None, "parse": "header"}, 10**12, 99),
    "gw-cols": ("gateway JSON, columns layout, page 10000", "ws-stream",
                {"page_size": 10_000, "compression": None, "layout": "columns"}, 10**12, 99),
    "gw-cols-gc": ("gateway JSON, columns layout, page 10000, client with the gateway's GC thresholds", "ws-stream",
                   {"page_size": 10_000, "compression": None, "layout": "columns", "gc": [100_000, 50, 100]},
                   10**12, 99),
    "gw-cols-text": ("gateway JSON, columns layout, page 10000, client forwards the text", "ws-stream",
                     {"page_size": 10_000, "compression": None, "layout": "columns", "parse": "header"}, 10**12, 99),
    "gw-p1000": ("gateway JSON, page 1000", "ws-stream",
                 {"page_size": 1_000, "compression": None}, 10**12, 1),
    "gw-deflate": ("gateway JSON, page 10000, permessage-deflate", "ws-stream",
                   {"page_size": 10_000, "compression": "deflate"}, 10**12, 99),
    "gw-arrow": ("gateway Arrow frames, page 10000", "ws-stream",
                 {"page_size": 10_000, "compression": None, "format": "arrow"}, 10**12, 99),
    "gw-arrow-deflate": ("gateway Arrow frames, page 10000, permessage-deflate", "ws-stream",
                         {"page_size": 10_000, "compression": "deflate", "format": "arrow"}, 1_000_000, 99),
    "client-arrow": ("Python client, Arrow, `async for batch in execution`", "client-stream",
                     {"format": "arrow", "mode": "iter"}, 10**12, 99),
    "client-arrow-table": ("Python client, Arrow, `await execution.to_arrow()`", "client-stream",
                           {"format": "arrow", "mode": "to_arrow"}, 10**12, 99),
    "client-json": ("Python client, JSON (columns layout), page 10000, `async for batch in execution`", "client-stream",
                    {"format": "json", "mode": "iter", "page_size": 10_000}, 10**12, 99),
    "client-json-each-row": ("Python client, JSON (columns layout), page 10000, every row read (`for row in batch`)",
                             "client-stream", {"format": "json", "mode": "rows", "page_size": 10_000}, 10**12, 99),
    "client-json-row-layout": ("Python client, JSON in the rows layout (as before), page 10000, `async for batch`",
                               "client-stream", {"format": "json", "mode": "iter", "page_size": 10_000,
                                                 "layout": "rows"}, 10**12, 99),
    "direct-iter": ("direct `_execute_and_fetch_as_iterator` (Arrow)", "direct-iter", {}, 10**12, 99),
    # What the gateway's result streams do (gateway/spark.py: no ReleaseExecute per response).
    "direct-iter-plain": ("direct `_execute_and_fetch_as_iterator`, reattachable execution off", "direct-iter",
                          {"reattach": False}, 10**12, 99),
    "direct-arrow": ("direct `toArrow()`", "direct-arrow", {}, 10**12, 99),
}
# Throughput target per row of the ratio table (gateway or client rows/s ÷ direct rows/s).
TARGETS = {"gw-arrow": 0.9, "client-arrow": 0.9, "client-arrow-table": 0.9, "gw-cols": 0.8, "client-json": 0.8}
# Gateway CPU of a JSON configuration ÷ that of the Arrow frames (gw-arrow), same N: target per key.
CPU_TARGETS = {"gw-cols": 1.5, "client-json": 1.5}
DEFAULT_TARGET = 0.7
# The client's command line writing a file (peak RSS must not grow with N): format, repetitions at N > 1M.
CLI_FORMATS = {"parquet": 99, "arrow": 99, "csv": 1}
# Rows the web notebook's grid loads in the browser measurement.
BROWSER_ROWS = 100_000


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
        self.failures: list[str] = []
        self.browser: list[dict[str, Any]] = []
        self.loads: list[tuple[float, float, float]] = []
        self.workdir = Path(tempfile.mkdtemp(prefix="bench-gateway-"))

    # ---------------------------------------------------------------- processes

    def start(self) -> None:
        import psutil

        from spark_gateway.spark_server import EmbeddedSparkServer, free_port

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
        help_text = subprocess.run([sys.executable, "-m", "spark_gateway", "serve", "--help"], cwd=ROOT,
                                   capture_output=True, text=True).stdout
        # permessage-deflate is opt-in on the gateway: allow it so the deflate rows can negotiate it;
        # clients that do not offer it (every other row) get exactly the default, uncompressed path.
        self.gateway_flags = ["--ws-compression"] if "--ws-compression" in help_text else []
        self.gateway = subprocess.Popen(
            [sys.executable, "-m", "spark_gateway", "serve", "--port", str(port), "--remote", self.url,
             "--log-level", "warning", *self.gateway_flags],
            cwd=ROOT, stdout=self._glog, stderr=subprocess.STDOUT, env={**os.environ})
        self.ws_url = f"ws://127.0.0.1:{port}/ws"
        self.http_url = f"http://127.0.0.1:{port}"
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

    def role(self, name: str, params: dict[str, Any], *, sample_gateway: bool | str = False,
             profile: Path | None = None, profile_gil: bool = False) -> dict[str, Any]:
        params = {"url": self.ws_url if name.startswith(("ws", "client")) else self.url, **params}
        cmd = [sys.executable, __file__, "--role", name, "--params", json.dumps(params)]
        spy = None
        if profile is not None:
            spy = subprocess.Popen(
                [str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(self.gateway.pid),
                 "--rate", "200", "--format", "raw", "--threads", "--output", str(profile),
                 *(["--gil"] if profile_gil else [])],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            time.sleep(1.0)
        self.note_load()
        gw_cpu0, jvm_cpu0 = cpu_seconds([self.gw_proc]), cpu_seconds(self.jvm_procs)
        sampler = Sampler(self.gateway.pid) if sample_gateway else None
        jvm_sampler = Sampler(self.jvm_procs[0].pid, 0.2) if sample_gateway == "with-jvm" else None
        for smp in (sampler, jvm_sampler):
            if smp:
                smp.__enter__()
        try:
            try:
                proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=ROLE_TIMEOUT)
            except subprocess.TimeoutExpired as exc:
                raise RuntimeError(f"role {name} timed out after {ROLE_TIMEOUT:.0f}s; gateway stacks: "
                                   f"{self.dump_gateway(name)}\n{exc.stderr!r}") from None
        finally:
            for smp in (sampler, jvm_sampler):
                if smp:
                    smp.__exit__(None)
            if spy is not None:
                spy.send_signal(2)  # SIGINT: py-spy writes its output and exits
                try:
                    spy.wait(30)
                except subprocess.TimeoutExpired:
                    spy.kill()
        if proc.returncode != 0:
            raise RuntimeError(f"role {name} failed ({proc.returncode}); gateway stacks: "
                               f"{self.dump_gateway(name)}\n{proc.stderr[-3000:]}")
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        out["gateway_cpu"] = cpu_seconds([self.gw_proc]) - gw_cpu0
        out["jvm_cpu"] = cpu_seconds(self.jvm_procs) - jvm_cpu0
        if sampler:
            out["gw_base"], out["gw_peak"], out["gw_after"] = sampler.base, sampler.peak, sampler.after
            out["gw_samples"] = len(sampler.samples)
            out["gw_series"] = sampler.samples[:: max(1, len(sampler.samples) // 400)]
        if jvm_sampler:
            out["jvm_base"], out["jvm_peak"] = jvm_sampler.base, jvm_sampler.peak
        return out

    def dump_gateway(self, tag: str) -> Path:
        """py-spy dump of every gateway thread (for a stalled or failed run)."""
        path = self.workdir / f"gateway-stacks-{tag}-{time.strftime('%H%M%S')}.txt"
        spy = subprocess.run([str(Path(sys.executable).parent / "py-spy"), "dump", "--pid", str(self.gateway.pid)],
                             capture_output=True, text=True, timeout=60)
        path.write_text(spy.stdout + spy.stderr)
        return path

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
                                "compression": None})
        log(f"warm-up done at {time.perf_counter() - t_start:.0f}s")

        # 5. Slow reader first, while the gateway's heap is not yet inflated by the fast streams.
        self.slow = None
        if not a.no_slow:
            slow_n = max(rows)
            slow = self.role("ws-slow", {"query": query(slow_n), "grant": 10_000, "interval": 0.1,
                                         "seconds": a.slow_seconds, "compression": None},
                             sample_gateway="with-jvm")
            slow["n"] = slow_n
            self.slow = slow
            log(f"slow reader: {slow['rows']} rows in {slow['seconds']:.1f}s, gateway RSS "
                f"{mib(slow['gw_base'])} -> peak {mib(slow['gw_peak'])} MiB")

        # 1-4. Throughput, interleaved round-robin; then the client's command line writing files.
        only = set(a.only.split(",")) if a.only else None
        for rep in range(a.reps):
            for n in rows:
                for key, (_label, role, extra, max_n, big_reps) in CONFIGS.items():
                    if n > max_n or (n > 1_000_000 and rep >= big_reps) or (only and key not in only):
                        continue  # slow variants: fewer runs at large N keep the bench under ~10 min
                    params = {"query": query(n), **extra}
                    if role == "ws-stream":
                        params["window"] = CREDIT_WINDOW
                    self.measure(key, role, params, n, rep)
                for fmt, big_reps in CLI_FORMATS.items():
                    key = f"cli-{fmt}"
                    if a.no_cli or (n > 1_000_000 and rep >= big_reps) or (only and key not in only):
                        continue
                    self.measure(key, "client-cli", {"query": query(n), "format": fmt, "dir": str(self.workdir)},
                                 n, rep)

        # The web notebook's grid, both page layouts interleaved.
        if not a.no_browser:
            self.measure_browser()

        # 6. SELECT 1 round trips.
        self.sel = None
        if not a.no_select1:
            n1 = 50 if a.quick else a.select1
            self.sel = self.role("ws-select1", {"n": n1, "warmup": 20, "compression": None, "sc_url": self.url})
            log("SELECT 1 done")

        if a.profile:
            self.profile(Path(a.profile), max(rows))
        self.note_load()
        self.total_seconds = time.perf_counter() - t_start
        return self.report()

    def measure(self, key: str, role: str, params: dict[str, Any], n: int, rep: int) -> None:
        """One throughput run; a failure or stall is a finding: it is reported and the bench goes on."""
        try:
            r = self.role(role, params, sample_gateway=role.startswith(("ws", "client")))
            if r["rows"] != n:
                raise RuntimeError(f"got {r['rows']} rows")
        except RuntimeError as exc:
            log(f"rep {rep} N={n} {key} FAILED: {exc}")
            self.failures.append(f"{key} N={n} rep {rep}: {str(exc).splitlines()[0]}")
            return
        r.update(key=key, n=n, rep=rep, load=self.loads[-1][0])
        self.results.append(r)
        log(f"rep {rep} N={n:>9} {key:<18} {r['seconds']:6.2f}s {n / r['seconds'] / 1e6:5.2f} Mrows/s"
            f" first {r['first']:.3f}s client cpu {r['client_cpu']:.1f}s gw cpu {r['gateway_cpu']:.1f}s"
            f" jvm cpu {r['jvm_cpu']:.1f}s client rss {mib(r['client_maxrss'])} MiB load {self.loads[-1][0]:.1f}")

    def measure_browser(self) -> None:
        """Execute → the notebook's grid showing every row, per page layout (BROWSER_ROWS rows)."""
        variants = ["columns", "rows"] + ([f"rows@{self.args.web_baseline}"] if self.args.web_baseline else [])
        for rep in range(self.args.reps):
            for variant in variants:
                try:
                    r = self.role("browser-grid", {"http_url": self.http_url, "query": query(BROWSER_ROWS),
                                                   "rows": BROWSER_ROWS, "variant": variant})
                    if r["rows"] != BROWSER_ROWS:
                        raise RuntimeError(f"the grid holds {r['rows']} rows ({r['counter']})")
                except RuntimeError as exc:
                    log(f"rep {rep} browser {variant} FAILED: {exc}")
                    self.failures.append(f"browser {variant} rep {rep}: {str(exc).splitlines()[0]}")
                    continue
                r.update(variant=variant, rep=rep, load=self.loads[-1][0])
                self.browser.append(r)
                log(f"rep {rep} browser {variant:<12} {r['seconds']:6.2f}s frames {r['frames_ms']:.0f} ms "
                    f"gw cpu {r['gateway_cpu']:.2f}s "
                    f"({r['counter']}) load {self.loads[-1][0]:.1f}")

    def profile(self, outdir: Path, n: int) -> None:
        """Extra fast streams under py-spy; raw collapsed stacks and a summary per run.

        ``gil``: only samples of the thread holding the GIL (what serialises the gateway);
        ``cpu``: every thread that is not idle (shows work done outside the GIL, e.g. zlib).
        """
        outdir.mkdir(parents=True, exist_ok=True)
        for spec in self.args.profile_runs.split(","):
            key, mode = spec.split(":")
            raw = outdir / f"profile-{key}-{mode}-{n}.txt"
            extra = CONFIGS[key][2]
            r = self.role("ws-stream", {"query": query(n), "window": CREDIT_WINDOW, **extra},
                          profile=raw, profile_gil=mode == "gil")
            log(f"profiled {key} ({mode}) N={n}: {r['seconds']:.2f}s under py-spy, gateway cpu "
                f"{r['gateway_cpu']:.1f}s -> {raw}")
            if raw.exists():
                head = (f"{CONFIGS[key][0]}, N={n}, py-spy {mode} mode at 200 Hz; run took {r['seconds']:.2f}s "
                        f"(slowed by sampling), gateway CPU {r['gateway_cpu']:.1f}s\n\n")
                (outdir / f"profile-{key}-{mode}-{n}-summary.md").write_text(head + summarize_profile(raw))

    # ---------------------------------------------------------------- report

    def report(self) -> str:
        rows = sorted({r["n"] for r in self.results})
        lines: list[str] = []
        load = [f"{x:.2f}" for x in self.loads[0]]
        loads1 = [x[0] for x in self.loads]
        lines += [
            f"Run {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} on {platform.node()}: "
            f"{os.cpu_count()} cores, load average at start {' / '.join(load)} (1/5/15 min), 1-min load during "
            f"runs min {min(loads1):.1f} median {statistics.median(loads1):.1f} max {max(loads1):.1f}; "
            f"{versions()}; {self.args.reps} repetition(s), interleaved; total {self.total_seconds:.0f}s.",
            "",
            f"Query: `{query(10_000_000)}` (P = N / 200000, same everywhere). "
            "Cells: median (best) over repetitions. Gateway client: websockets asyncio client, "
            f"orjson parse of every frame, {CREDIT_WINDOW // 1000}k rows of credit kept outstanding. "
            "Rows without `permessage-deflate`: the client connects with `compression=None` (what every client gets "
            "from a gateway with default settings). `permessage-deflate` rows: the websockets client's default offer, "
            f"accepted because the gateway runs with {' '.join(self.gateway_flags) or 'its defaults'}.",
            "",
            "| measurement | N | runs | time s | rows/s | MB/s | wire MB | first page s | client CPU s | gateway CPU s | JVM CPU s | client peak RSS MiB | gateway RSS growth MiB | load |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        names = {key: cfg[0] for key, cfg in CONFIGS.items()}
        stats: dict[tuple[str, int], dict[str, Any]] = {}
        med = statistics.median
        for n in rows:
            for key, label in names.items():
                rs = [r for r in self.results if r["key"] == key and r["n"] == n]
                if not rs:
                    continue
                secs = [r["seconds"] for r in rs]
                st = stats[(key, n)] = {
                    "med": med(secs), "min": min(secs),
                    "first_med": med(r["first"] for r in rs), "first_min": min(r["first"] for r in rs),
                }
                mb = med(r["bytes"] for r in rs) / 1e6
                wire = f"{med(r['wire_bytes'] for r in rs) / 1e6:.0f}" if "wire_bytes" in rs[0] else "–"
                rss = (f"{mib(med(r['client_maxrss'] for r in rs))}"
                       + (f" (base {mib(med(r['client_base_rss'] for r in rs))})" if "client_base_rss" in rs[0] else ""))
                growth = (f"{mib(med(r['gw_peak'] - r['gw_base'] for r in rs))} "
                          f"(max {mib(max(r['gw_peak'] - r['gw_base'] for r in rs))})" if "gw_peak" in rs[0] else "–")
                if extra_deflate(key) and not all("permessage-deflate" in r.get("extensions", "") for r in rs):
                    label += " (**not negotiated**)"
                lines.append(
                    f"| {label} | {n / 1e6:g}M | {len(rs)} | {st['med']:.2f} ({st['min']:.2f}) | {fmt_rate(n / st['med'])} ({fmt_rate(n / st['min'])})"
                    f" | {mb / st['med']:.0f} | {wire} | {st['first_med']:.3f} ({st['first_min']:.3f})"
                    f" | {med(r['client_cpu'] for r in rs):.2f} | "
                    + (f"{med(r['gateway_cpu'] for r in rs):.2f}" if not key.startswith("direct") else "–")
                    + f" | {med(r['jvm_cpu'] for r in rs):.2f} | {rss} | {growth} | {med(r['load'] for r in rs):.1f} |")
        lines += ["", "time, rows/s, first page: median (best). MB/s: payload bytes per second, i.e. frame bytes after inflate "
                  "for the gateway (JSON text or Arrow IPC), Arrow buffer bytes for direct. wire MB: bytes the client read "
                  "from its socket (compressed when deflate). CPU: seconds used during the run by each process "
                  "(gateway and JVM read by psutil). load: 1-min load average when the runs started.", ""]
        if self.failures:
            lines += ["**Failed / stalled runs (not in the medians):** " + "; ".join(self.failures), ""]

        # Ratios vs targets.
        lines += ["| rows/s ratio: gateway path ÷ direct | N | ÷ incremental, median (best÷best) | ÷ `toArrow()`, median (best÷best) "
                  "| target | met | ÷ incremental with reattachable execution off (not judged) |",
                  "|---|---|---|---|---|---|---|"]
        for n in rows:
            for gw in [k for k in CONFIGS if k.startswith(("gw", "client"))]:
                if (gw, n) not in stats:
                    continue
                target = TARGETS.get(gw, DEFAULT_TARGET)
                cells, ok = [], []
                for direct in ("direct-iter", "direct-arrow"):
                    if (direct, n) not in stats:
                        cells.append("–")
                        continue
                    ratio = stats[(direct, n)]["med"] / stats[(gw, n)]["med"]
                    best = stats[(direct, n)]["min"] / stats[(gw, n)]["min"]
                    cells.append(f"{ratio:.2f}× ({best:.2f}×)")
                    ok.append(ratio >= target)
                verdict = "met" if ok and all(ok) else ("**not met**" if ok and not any(ok) else "partly")
                plain = "–"
                if ("direct-iter-plain", n) in stats:
                    plain = (f"{stats[('direct-iter-plain', n)]['med'] / stats[(gw, n)]['med']:.2f}× "
                             f"({stats[('direct-iter-plain', n)]['min'] / stats[(gw, n)]['min']:.2f}×)")
                lines.append(f"| {names[gw]} | {n / 1e6:g}M | {cells[0]} | {cells[1]} | ≥ {target:g}× | {verdict} | {plain} |")
        lines.append("")
        lines += self.cpu_report(rows, stats)
        lines += self.browser_report()
        lines += self.cli_report(rows)
        if not rows:  # only the notebook was measured
            return "\n".join(lines) + "\n"

        n_big = max(rows)
        lines += [f"| time to first page, N = {n_big / 1e6:g}M (execute/request → first rows) | median s | best s |",
                  "|---|---|---|"]
        for key in CONFIGS:
            if (key, n_big) in stats:
                st = stats[(key, n_big)]
                what = ("whole result (first row = last row)" if key in ("direct-arrow", "client-arrow-table") else
                        "first Arrow batch" if key.startswith("direct-iter") else
                        "first batch out of the client (session already warm)" if key.startswith("client") else
                        "first `rows` page (session already warm)")
                lines.append(f"| {names[key]}: {what} | {st['first_med']:.3f} | {st['first_min']:.3f} |")
        lines.append("")

        s = self.slow or {}
        fast_growth = [r["gw_peak"] - r["gw_base"] for r in self.results if "gw_peak" in r and r["n"] == n_big]
        lines += ["| gateway RSS | MiB | target | met |", "|---|---|---|---|"]
        if not s:
            lines += [
                f"| fast {n_big / 1e6:g}M streams: peak growth, median (max) over {len(fast_growth)} runs | "
                f"{mib(statistics.median(fast_growth)) if fast_growth else '–'} ({mib(max(fast_growth)) if fast_growth else '–'}) | ≤ 150 | "
                f"{'yes' if fast_growth and max(fast_growth) <= 150 * 2**20 else 'no'} |", ""]
        growth = s.get("gw_peak", 0) - s.get("gw_base", 0)
        lines += [] if not s else [
            f"| slow reader (10k rows credit / 100 ms, {s['seconds']:.0f}s, {s['rows']:,} of {s['n']:,} rows, then close-result): baseline | {mib(s['gw_base'])} | | |",
            f"| slow reader: peak | {mib(s['gw_peak'])} | | |",
            f"| slow reader: growth | {mib(growth)} | ≤ 150 | {'yes' if growth <= 150 * 2**20 else 'no'} |",
            f"| slow reader: after close-result | {mib(s['gw_after'])} | | |",
            f"| fast {n_big / 1e6:g}M streams: peak growth, median (max) over {len(fast_growth)} runs | "
            f"{mib(statistics.median(fast_growth)) if fast_growth else '–'} ({mib(max(fast_growth)) if fast_growth else '–'}) | ≤ 150 | "
            f"{'yes' if fast_growth and max(fast_growth) <= 150 * 2**20 else 'no'} |",
            "",
            f"Slow reader: close-result → finished took {s['close_seconds'] * 1000:.0f} ms; events: "
            + ", ".join(f"{e['type']}({e.get('reason') or e.get('status') or e.get('code')})" for e in s["events"])
            + f". For context, the Spark JVM's RSS went {mib(s['jvm_base'])} → {mib(s['jvm_peak'])} MiB meanwhile "
            "(Spark Connect buffers a slowly read result in the driver; the gateway's own memory stays flat).",
            "",
        ]

        sel = self.sel
        if sel is None:
            return "\n".join(lines) + "\n"
        g = sel["gateway"]
        p = lambda xs, q: percentile(xs, q) * 1000  # noqa: E731
        over = p(g, 50) - p(sel["collect"], 50)
        paired = [a - b for a, b in zip(g, sel["collect"], strict=True)]
        lines += [
            f"| `SELECT 1` round trip ({len(g)} rounds after 20 warm-up; gateway, collect, toArrow interleaved) | p50 ms | p99 ms | mean ms |",
            "|---|---|---|---|",
            f"| gateway: execute → finished | {p(g, 50):.2f} | {p(g, 99):.2f} | {statistics.mean(g) * 1000:.2f} |",
            f"| direct `spark.sql('SELECT 1').collect()` | {p(sel['collect'], 50):.2f} | {p(sel['collect'], 99):.2f} | {statistics.mean(sel['collect']) * 1000:.2f} |",
            f"| direct `spark.sql('SELECT 1').toArrow()` | {p(sel['toArrow'], 50):.2f} | {p(sel['toArrow'], 99):.2f} | {statistics.mean(sel['toArrow']) * 1000:.2f} |",
            f"| direct, the gateway's Spark call pattern (its session settings, ExecutePlan with operation id + progress handler, incremental iterator) | {p(sel['gateway-like'], 50):.2f} | {p(sel['gateway-like'], 99):.2f} | {statistics.mean(sel['gateway-like']) * 1000:.2f} |",
            f"| overhead: gateway p50 − collect p50 (target ≤ 3 ms) | {over:.2f} | {p(g, 99) - p(sel['collect'], 99):.2f} | "
            f"{'**met**' if over <= 3 else '**not met**'} |",
            f"| overhead: median of paired differences (same round) | {p(paired, 50):.2f} | | |",
            f"| overhead of the gateway process alone: gateway − its call pattern, median of paired differences | "
            f"{p([a - b for a, b in zip(g, sel['gateway-like'], strict=True)], 50):.2f} | | |",
            "",
            "Gateway `SELECT 1`, median arrival of each event after `execute` was sent (ms): "
            + ", ".join(f"{k} {statistics.median(v) * 1000:.2f}" for k, v in sorted(sel["phases"].items(), key=lambda kv: statistics.median(kv[1])))
            + f". First execute on a new connection (creates the session's Spark session): {sel['cold'] * 1000:.0f} ms.",
        ]
        return "\n".join(lines) + "\n"

    def cpu_report(self, rows: list[int], stats: dict[tuple[str, int], dict[str, Any]]) -> list[str]:
        """Gateway CPU of each JSON path against the Arrow frames' (gw-arrow), same N."""
        med = statistics.median
        lines = ["| gateway CPU: JSON path ÷ Arrow frames | N | gateway CPU s, median | ÷ Arrow frames | target | met |",
                 "|---|---|---|---|---|---|"]
        for n in rows:
            arrow = [r["gateway_cpu"] for r in self.results if r["key"] == "gw-arrow" and r["n"] == n]
            if not arrow:
                continue
            for key, (label, _role, extra, _n, _reps) in CONFIGS.items():
                if (key, n) not in stats or extra.get("format") == "arrow" or not key.startswith(("gw", "client")):
                    continue
                if extra.get("compression") == "deflate":
                    continue
                cpu = med(r["gateway_cpu"] for r in self.results if r["key"] == key and r["n"] == n)
                ratio = cpu / med(arrow)
                target = CPU_TARGETS.get(key)
                verdict = "–" if target is None else ("met" if ratio <= target else "**not met**")
                lines.append(f"| {label} | {n / 1e6:g}M | {cpu:.2f} | {ratio:.2f}× | "
                             f"{'–' if target is None else f'≤ {target:g}×'} | {verdict} |")
        return [*lines, ""] if len(lines) > 2 else []

    def browser_report(self) -> list[str]:
        if not self.browser:
            return []
        med = statistics.median
        lines = [f"| web notebook, Debian chromium: execute → grid showing {BROWSER_ROWS:,} rows loaded "
                 "(1000-row pages, the rest asked for at once after the first) | runs | median s | best s | "
                 "page's frame handling ms (parse, store, render), median (best) | gateway CPU s | load |",
                 "|---|---|---|---|---|---|---|"]
        what = {"columns": "columns layout (the notebook as it is)",
                "rows": "rows layout (the same notebook asking for rows)"}
        for variant in dict.fromkeys(r["variant"] for r in self.browser):
            rs = [r for r in self.browser if r["variant"] == variant]
            secs = [r["seconds"] for r in rs]
            label = what.get(variant, f"rows layout, the notebook's js/ of {variant.split('@', 1)[-1]}")
            frames = [r["frames_ms"] for r in rs]
            lines.append(f"| {label} | {len(rs)} | {med(secs):.3f} | {min(secs):.3f} | {med(frames):.0f} ({min(frames):.0f}) | "
                         f"{med(r['gateway_cpu'] for r in rs):.2f} | {med(r['load'] for r in rs):.1f} |")
        return [*lines, ""]

    def cli_report(self, rows: list[int]) -> list[str]:
        """The client's command line writing the result to a file: time and, above all, peak RSS."""
        runs = [r for r in self.results if r["key"].startswith("cli-")]
        if not runs:
            return []
        med = statistics.median
        lines = ["| client CLI (`python -m spark_gateway_client --format F -o FILE`), whole process | N | runs | "
                 "time s | rows/s | file MB | client CPU s | client peak RSS MiB | gateway CPU s | load |",
                 "|---|---|---|---|---|---|---|---|---|---|"]
        peaks: dict[str, dict[int, float]] = {}
        for fmt in CLI_FORMATS:
            for n in rows:
                rs = [r for r in runs if r["key"] == f"cli-{fmt}" and r["n"] == n]
                if not rs:
                    continue
                secs = [r["seconds"] for r in rs]
                peak = peaks.setdefault(fmt, {})[n] = max(r["client_maxrss"] for r in rs)
                lines.append(
                    f"| `--format {fmt}` | {n / 1e6:g}M | {len(rs)} | {med(secs):.2f} ({min(secs):.2f}) | "
                    f"{fmt_rate(n / med(secs))} ({fmt_rate(n / min(secs))}) | {med(r['file_bytes'] for r in rs) / 1e6:.0f} | "
                    f"{med(r['client_cpu'] for r in rs):.2f} | {mib(peak)} | {med(r['gateway_cpu'] for r in rs):.2f} | "
                    f"{med(r['load'] for r in rs):.1f} |")
        lines.append("")
        if len(rows) > 1:
            lo, hi = min(rows), max(rows)
            flat = [f"{fmt} {mib(p[hi] - p[lo])} MiB" for fmt, p in peaks.items() if lo in p and hi in p]
            if flat:
                lines += [f"Client peak RSS, {hi / 1e6:g}M rows minus {lo / 1e6:g}M rows (flat = does not grow with N; "
                          f"target: flat): {', '.join(flat)}. Time includes starting Python, connecting and creating "
                          "the Spark session (the CLI's defaults: Arrow pages of 10000 rows for parquet/arrow, JSON pages "
                          "of 10000 rows for csv, 4 pages of credit).", ""]
        return lines



# ====================================================================== helpers


# Where the gateway's samples go, by the first marker found in a stack (most specific first).
PROFILE_ROLLUP = [
    ("websocket permessage-deflate (zlib)", "PerMessageDeflate.encode"),
    ("row conversion: batch_to_json (fetch thread)", "batch_to_json ("),
    ("row conversion: batch_to_rows (worker thread; before the JSON-text path)", "batch_to_rows ("),
    ("JSON page encoding: encode_event (orjson)", "encode_event ("),
    ("websocket send (framing, transport write)", "WebSocket.send ("),
    ("Spark fetch: ResultStream.next_batch (gRPC + Arrow IPC read)", "ResultStream.next_batch ("),
    ("pyspark ReleaseExecute thread pool", "_release_until"),
    ("gRPC channel spin thread", "channel_spin"),
    ("ResultCursor._fetch (resume; frees consumed chunks)", "ResultCursor._fetch ("),
    ("ResultCursor._page / _send_page / Outbox", "ResultCursor._page ("),
    ("anyio worker-thread handoff (idle worker / queue)", "WorkerThread.run ("),
    ("event loop: select / other callbacks", "BaseEventLoop._run_once ("),
]


def extra_deflate(key: str) -> bool:
    return CONFIGS[key][2].get("compression") == "deflate"


def summarize_profile(raw: Path, top: int = 25, rate: int = 200) -> str:
    """Self and inclusive sample shares from py-spy's raw (collapsed) stacks."""
    import re
    from collections import Counter

    self_c: Counter[str] = Counter()
    self_fn: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    rollup: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        c = int(count)
        frames = stack.split(";")
        total += c
        threads[re.sub(r"\(\d+\)", "", frames[0])] += c
        self_c[frames[-1]] += c
        self_fn[re.sub(r":\d+\)$", ")", frames[-1])] += c
        for f in set(frames[1:]):
            incl[f] += c
        for label, marker in PROFILE_ROLLUP:
            if any(marker in f for f in frames):
                rollup[label] += c
                break
        else:
            rollup["other"] += c
    pct = lambda c: f"{c / total:6.1%} ({c / rate:5.2f}s)"  # noqa: E731
    out = [f"# {raw.name}: {total} samples = {total / rate:.1f} thread-seconds at {rate} Hz", "",
           "## rollup (first matching marker per sample)", ""]
    out += [f"- {pct(c)} {k}" for k, c in rollup.most_common()]
    out += ["", "## threads", ""]
    out += [f"- {pct(c)} {t}" for t, c in threads.most_common(10)]
    out += ["", "## self, by function", ""]
    out += [f"- {pct(c)} {f}" for f, c in self_fn.most_common(top)]
    out += ["", "## self, by line", ""]
    out += [f"- {pct(c)} {f}" for f, c in self_c.most_common(top)]
    out += ["", "## inclusive", ""]
    out += [f"- {pct(c)} {f}" for f, c in incl.most_common(top * 2)]
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
    ap.add_argument("--profile-runs", default="gw:gil,gw:cpu,gw-deflate:cpu", metavar="KEY:MODE,...",
                    help="the profiled streams: configuration key and py-spy mode (gil or cpu)")
    ap.add_argument("--only", help="comma-separated throughput configurations to run (default: all), e.g. "
                    "gw,client-arrow,direct-iter,cli-parquet")
    ap.add_argument("--no-slow", action="store_true", help="skip the slow-reader run")
    ap.add_argument("--no-select1", action="store_true", help="skip the SELECT 1 round trips")
    ap.add_argument("--no-cli", action="store_true", help="skip the client command line runs")
    ap.add_argument("--no-browser", action="store_true", help="skip the web notebook (chromium) runs")
    ap.add_argument("--web-baseline", metavar="REV", help="also time the notebook's js/ as git revision REV had it")
    ap.add_argument("--x", choices=sorted(X_COLUMNS), default="double",
                    help="type of the query's x column (default double: bigint, double, string)")
    ap.add_argument("--out", default=str(BENCH / "results-latest.md"))
    ap.add_argument("--role", help=argparse.SUPPRESS)
    ap.add_argument("--params", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.role:
        run_role(args.role, json.loads(args.params))
        return 0
    global X_COLUMN
    X_COLUMN = X_COLUMNS[args.x]
    if args.quick:
        args.reps, args.slow_seconds = 1, min(args.slow_seconds, 5.0)
    bench = Bench(args)
    try:
        table = bench.run()
    finally:
        bench.stop()
    print(table)
    Path(args.out).write_text("# bench_gateway.py results\n\n" + table)
    raw = Path(args.out).with_suffix(".json")  # every run's numbers, RSS series included
    raw.write_text(json.dumps({"results": bench.results, "slow": bench.slow, "select1": bench.sel,
                               "browser": bench.browser, "failures": bench.failures, "loads": bench.loads},
                              indent=None))
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
