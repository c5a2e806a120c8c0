"""Bad input, vanishing clients and clients that never read: the gateway carries on, leaking nothing."""

from __future__ import annotations

import json
import random

import anyio
import orjson
import psutil
import pytest

from protocol import ProtocolError, decode_request
from protocol.messages import Execute, Interrupt, Ping
from tests.conftest import GatewayProcess
from tests.wsclient import open_client, rows_of

TEMPLATES = [
    {"type": "execute", "id": "e", "code": "SELECT 1", "language": "sql", "page_size": 10, "limit": 5},
    {"type": "interrupt", "id": "nobody"},
    {"type": "stream-rows", "id": "nobody", "result": 0, "max_rows": 10},
    {"type": "close-result", "id": "nobody", "result": 1},
    {"type": "ping", "data": [1, "two", None]},
]
JUNK = [None, True, -1, 0, 2**40, 1.5, "", "x" * 200, [], {}, [1, [2]], {"a": {"b": None}}]


def mutate(rng: random.Random) -> str | bytes:
    """A frame that is wrong in one of many ways (or, rarely, harmless and right)."""
    message = dict(rng.choice(TEMPLATES))
    how = rng.randrange(9)
    if how == 0:
        return orjson.dumps(message)[: rng.randrange(1, 20)].decode(errors="ignore") or "{"
    if how == 1:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))
    if how == 2:
        return json.dumps(rng.choice(JUNK))
    if how == 3:
        message[rng.choice(list(message))] = rng.choice(JUNK)
    elif how == 4:
        message.pop(rng.choice(list(message)))
    elif how == 5:
        message["type"] = rng.choice(["", "EXECUTE", "exec", "rows", "session", 7])
    elif how == 6:
        message[rng.choice(["extra", "Id", "page-size"])] = 1
    elif how == 7:
        message["code"] = "x" * (1 << 20)  # over max_message_bytes
    return json.dumps(message)


def expected_code(frame: str | bytes) -> str | None:
    """What the gateway must answer: an error code, or None for pong."""
    if isinstance(frame, bytes):
        return "bad_message"
    try:
        request = decode_request(frame)
    except ProtocolError as exc:
        return exc.code.value
    if isinstance(request, Ping):
        return None
    return "unknown_execution"


@pytest.mark.timeout(300)
async def test_fuzzed_frames_are_all_answered_and_harm_no_neighbour(gateway: GatewayProcess) -> None:
    """Thousands of malformed frames: each gets its typed error, and a neighbour's stream is unaffected."""
    rng = random.Random(20261125)
    frames = [f for f in (mutate(rng) for _ in range(4000))
              if isinstance(f, bytes) or not _is_runnable(f)]
    async with open_client(gateway.ws_url) as fuzzed, open_client(gateway.ws_url) as neighbour:
        await neighbour.execute("SELECT id FROM range(20000)", id="n", page_size=1000)
        answers: list[str | None] = []

        async def read_answers() -> None:
            while len(answers) < len(frames):
                event = await fuzzed.recv()
                answers.append(event.get("code") if event["type"] == "error" else None)

        async with anyio.create_task_group() as tg:
            tg.start_soon(read_answers)
            for frame in frames:
                await fuzzed.send(frame)
        assert answers == [expected_code(f) for f in frames]
        events = await neighbour.run("SELECT 'still here'", id="after")
        assert rows_of(events) == [["still here"]]
        first = [e for e in neighbour.events if e.get("id") == "n" and e["type"] == "rows"]
        assert first[0]["offset"] == 0 and len(first[0]["rows"]) == 1000
    assert len(frames) > 3000


def _is_runnable(frame: str) -> bool:
    """Frames that would run code, or interrupt-everything (answered by nothing when idle)."""
    try:
        request = decode_request(frame)
    except ProtocolError:
        return False
    return isinstance(request, Execute) or (isinstance(request, Interrupt) and request.id is None)


async def test_a_client_that_never_reads_does_not_hurt_others(gateway: GatewayProcess) -> None:
    """A client granting huge credit but never reading costs bounded memory; others keep working."""
    process = psutil.Process(gateway.process.pid)
    baseline = process.memory_info().rss
    async with open_client(gateway.ws_url, max_queue=1) as stuck:
        await stuck.execute("SELECT id, repeat('x', 200) AS pad FROM range(0, 1000000, 1, 40)", id="big",
                            page_size=10000)
        await stuck.recv_until(lambda e: e["type"] == "rows")
        await stuck.send({"type": "stream-rows", "id": "big", "result": 0, "max_rows": 1_000_000})
        peak = 0
        async with open_client(gateway.ws_url) as other:
            for n in range(20):
                events = await other.run(f"SELECT {n} AS n", id=f"q{n}")
                assert rows_of(events) == [[n]]
                peak = max(peak, process.memory_info().rss)
        assert peak - baseline < 200 * 2**20, f"gateway grew by {(peak - baseline) >> 20} MiB"
