"""Several connections on one session (?join=), retry-safe execute, list-executions: real gateway, real Spark."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from spark_gateway_protocol import PROTOCOL_VERSION
from spark_gateway_protocol.close_codes import CLOSE_REFUSED, CLOSE_TOO_SLOW
from tests.conftest import GatewayProcess
from tests.wsclient import Client, decode_frame, open_client, rows_of

pytestmark = pytest.mark.integration

TOKEN = "j0in-s3cret"
OTHER_TOKEN = "0ther-j0in-s3cret"
# Small enough that a reader that stops reading falls behind by it within a few MB of rows.
REPLAY_BYTES = 1_000_000


@pytest.fixture(scope="module")
def joinable(spark_remote: str) -> Iterator[GatewayProcess]:
    """A gateway with two credentials, a short grace period and a small replay buffer."""
    process = GatewayProcess(spark_remote, "--token", f"{TOKEN},{OTHER_TOKEN}", "--resume-grace", "3",
                             "--replay-buffer-bytes", str(REPLAY_BYTES))
    yield process
    process.stop()


def bearer(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@asynccontextmanager
async def owner(gateway: GatewayProcess) -> AsyncIterator[Client]:
    async with open_client(gateway.ws_url, additional_headers=bearer()) as client:
        yield client


@asynccontextmanager
async def joined(gateway: GatewayProcess, session_id: str, last_seq: int | None = None,
                 **kwargs: Any) -> AsyncIterator[tuple[Client, dict[str, Any]]]:
    """A joined connection: (its client, positioned at next_seq; its session-state, schema-checked)."""
    query = f"?join={session_id}" + ("" if last_seq is None else f"&last_seq={last_seq}")
    async with connect(gateway.ws_url + query, subprotocols=[PROTOCOL_VERSION], max_size=None,
                       additional_headers=bearer(), **kwargs) as ws:
        state = decode_frame(await ws.recv())
        assert state["type"] == "session-state" and state["seq"] == 0, state
        client = Client(ws)
        client._next_seq = state["next_seq"]
        yield client, state


def of_id(events: list[dict[str, Any]], execution_id: str) -> list[dict[str, Any]]:
    return [e for e in events if e.get("id") == execution_id]


async def test_a_joined_client_sees_another_connections_execution(joinable: GatewayProcess) -> None:
    """Joined after the session opened, a raw client gets accepted → finished of the owner's execution, same seqs."""
    async with owner(joinable) as first:
        session_id = first.session["session_id"]
        async with joined(joinable, session_id) as (second, state):
            assert state["session_id"] == session_id and state["last_seq"] is None
            assert state["next_seq"] == 2 and state["connections"] == 2 and state["executions"] == []
            owner_events = await first.run("SELECT id FROM range(5)", id="q1")
            seen = await second.recv_until(lambda e: e["type"] == "finished")
            assert [e["type"] for e in seen][0] == "accepted" and seen[-1]["status"] == "ok"
            assert [(e["seq"], e["type"]) for e in seen] == [(e["seq"], e["type"]) for e in owner_events]
            assert rows_of(seen) == [[i] for i in range(5)]


async def test_join_with_last_seq_replays_and_the_state_shows_an_open_result(joinable: GatewayProcess) -> None:
    """A result paged halfway shows in session-state (rows, credit); the replay from 0 is the whole stream;
    credit from the joined connection advances the owner's result."""
    async with owner(joinable) as first:
        session_id = first.session["session_id"]
        await first.execute("SELECT id FROM range(1000)", id="paged", page_size=100)
        await first.wait_for(lambda e: e["type"] == "rows")
        async with joined(joinable, session_id, last_seq=0) as (second, state):
            [execution] = state["executions"]
            assert execution["id"] == "paged" and execution["status"] == "draining"
            assert execution["code"] == "SELECT id FROM range(1000)" and execution["first_seq"] == 2
            [result] = execution["results"]
            assert result["open"] and result["rows"] == 100 and result["until"] == 100
            assert result["schema"] == [{"name": "id", "type": "bigint", "nullable": False}]
            assert state["credit"] == [{"id": "paged", "result": 0, "until": 100}] and state["lost"] is None
            replay = await second.recv_until(lambda e: e["type"] == "rows")
            assert [e["seq"] for e in replay] == list(range(1, len(replay) + 1))
            assert replay[0]["type"] == "session"
            await second.send({"type": "stream-rows", "id": "paged", "result": 0, "max_rows": 900})
            pages = await first.recv_until(lambda e: e["type"] == "finished")
            assert len(rows_of(first.events)) == 1000 and pages[-1]["results"][0]["rows"] == 1000


async def test_join_is_refused_to_another_credential_and_for_an_unknown_session(joinable: GatewayProcess) -> None:
    """Another credential: HTTP 403 before the upgrade; an unknown session: resume_failed, close 1008."""
    async with owner(joinable) as first:
        session_id = first.session["session_id"]
        with pytest.raises(InvalidStatus) as refused:
            async with connect(f"{joinable.ws_url}?join={session_id}", subprotocols=[PROTOCOL_VERSION],
                               additional_headers=bearer(OTHER_TOKEN)):
                pass
        assert refused.value.response.status_code == 403
    async with connect(f"{joinable.ws_url}?join=6f1c2a9e-8f3e-4c7e-9a57-5a8d3c2b1e10",
                       subprotocols=[PROTOCOL_VERSION], additional_headers=bearer()) as ws:
        error = decode_frame(await ws.recv())
        assert (error["type"], error["code"], error["seq"]) == ("error", "resume_failed", 0)
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == CLOSE_REFUSED


async def test_a_retried_execute_never_runs_twice(joinable: GatewayProcess) -> None:
    """The same execute re-sent while it runs and after it ended: its side effect happened once."""
    cell = "import time\nruns.append(1)\ntime.sleep(3)\nprint('ran', len(runs))"
    async with owner(joinable) as first:
        await first.run("runs = []", id="setup", language="python")
        await first.execute(cell, id="side", language="python")
        await first.wait_for(lambda e: e["type"] == "started" and e["id"] == "side")
        await first.execute(cell, id="side", language="python")  # during the run: attaches
        again = await first.wait_for(lambda e: e["type"] == "accepted" and e["id"] == "side" and e["attached"])
        assert again["queue_position"] == 0
        finished = await first.wait_for(lambda e: e["type"] == "finished" and e["id"] == "side")
        assert finished["status"] == "ok"
        mark = len(first.events)
        await first.execute(cell, id="side", language="python")  # after it ended: told its outcome again
        told = await first.recv_until(lambda e: e["type"] == "finished")
        assert [e["type"] for e in told] == ["accepted", "finished"] and told[0]["attached"]
        assert {k: v for k, v in told[-1].items() if k != "seq"} == {k: v for k, v in finished.items() if k != "seq"}
        await first.send({"type": "execute", "id": "side", "code": "print('other')", "language": "python"})
        refused = await first.wait_for(lambda e: e["type"] == "error" and e.get("request") == "execute")
        assert refused["code"] == "duplicate_id"
        count = await first.run("print(len(runs))", id="count", language="python")
        assert [e["text"] for e in count if e["type"] == "stdout"] == ["1\n"]
        assert sum(e["type"] == "started" for e in of_id(first.events, "side")) == 1
        assert [e["text"] for e in of_id(first.events[mark:], "side") if e["type"] == "stdout"] == []


async def test_a_retried_failed_execute_is_told_its_error_again(joinable: GatewayProcess) -> None:
    """An ended execution that failed: the retry gets its error and its finished, not a second run."""
    async with owner(joinable) as first:
        events = await first.run("SELECT nope", id="bad")
        error = next(e for e in events if e["type"] == "error")
        await first.execute("SELECT nope", id="bad")
        told = await first.recv_until(lambda e: e["type"] == "finished")
        assert [e["type"] for e in told] == ["accepted", "error", "finished"]
        assert told[1]["message"] == error["message"] and told[-1]["status"] == "error"


async def test_list_executions_newest_first(joinable: GatewayProcess) -> None:
    """list-executions: every execution of the session, newest first, with status, rows and error code."""
    async with owner(joinable) as first:
        await first.run("SELECT id FROM range(3)", id="a")
        await first.run("SELECT nope", id="b")
        await first.execute("SELECT id FROM range(50)", id="c", page_size=10)
        await first.wait_for(lambda e: e["type"] == "rows" and e["id"] == "c")
        await first.send({"type": "list-executions", "id": "l1"})
        answer = await first.wait_for(lambda e: e["type"] == "executions")
        assert answer["id"] == "l1" and not answer["truncated"]
        listed = {e["id"]: e for e in answer["executions"]}
        assert [e["id"] for e in answer["executions"]] == ["c", "b", "a"]
        assert listed["a"]["status"] == "ok" and listed["a"]["results"][0]["rows"] == 3
        assert listed["b"]["status"] == "error" and listed["b"]["error"] == "spark_error"
        assert listed["c"]["status"] == "draining" and listed["c"]["results"][0]["rows"] == 10
        assert listed["a"]["ended_at"].endswith("Z") and listed["c"]["ended_at"] is None


async def test_closing_one_of_two_connections_keeps_the_session(joinable: GatewayProcess) -> None:
    """The owner closes with 1000: the joined connection runs on; when it closes too, the session ends."""
    async with open_client(joinable.ws_url, additional_headers=bearer()) as first:
        session_id = first.session["session_id"]
        async with joined(joinable, session_id) as (second, _):
            await first.close()
            await anyio.sleep(0.5)
            events = await second.run("SELECT 42", id="after")
            assert events[-1]["status"] == "ok" and rows_of(events) == [[42]]
    await anyio.sleep(0.5)
    async with connect(f"{joinable.ws_url}?join={session_id}", subprotocols=[PROTOCOL_VERSION],
                       additional_headers=bearer()) as ws:
        error = decode_frame(await ws.recv())
        assert error["code"] == "resume_failed"


async def test_a_reader_that_stops_reading_is_closed_with_4002_and_the_owner_streams_on(
        joinable: GatewayProcess) -> None:
    """A joined connection that never reads is closed with 4002; the owner gets every row; it may join again."""
    rows = 400_000
    async with owner(joinable) as first:
        session_id = first.session["session_id"]
        async with joined(joinable, session_id, max_queue=1) as (stalled, _):
            events = await first.run(f"SELECT id, repeat('x', 60) AS pad FROM range({rows})", id="big",
                                     page_size=10_000, timeout=300)
            assert events[-1]["status"] == "ok" and events[-1]["results"][0]["rows"] == rows
            last_seq = stalled._next_seq - 1
            with pytest.raises(ConnectionClosed) as closed:  # read what was on its way, then the close
                while True:
                    event = decode_frame(await stalled.ws.recv())
                    last_seq = event["seq"]
            assert closed.value.rcvd is not None and closed.value.rcvd.code == CLOSE_TOO_SLOW, closed.value
        async with joined(joinable, session_id, last_seq=last_seq) as (again, state):
            assert state["next_seq"] <= first.events[-1]["seq"] + 1
            events = await again.run("SELECT 1", id="after")
            assert events[-1]["status"] == "ok"


async def test_python_client_joins_and_lists_executions(joinable: GatewayProcess) -> None:
    """connect(join=...) opens a second connection on the session; executions() lists both connections' work."""
    from spark_gateway_client import connect as client_connect

    async with client_connect(joinable.ws_url, token=TOKEN) as first:
        assert (await first.sql("SELECT 1 AS one").rows()) == [[1]]
        async with client_connect(joinable.ws_url, token=TOKEN, join=first.info.session_id) as second:
            assert second.joined_state is not None and second.info.session_id == first.info.session_id
            assert [e.id for e in second.joined_state.executions] == ["c1"]
            mine = second.sql("SELECT 2 AS two")
            assert await mine.rows() == [[2]]
            assert mine.id != "c1"  # ids of its own: both connections see every event
            listed = await second.executions()
            assert [(e.id, e.status) for e in listed] == [(mine.id, "ok"), ("c1", "ok")]
            assert [e.id for e in await first.executions()] == [mine.id, "c1"]
            assert await first.ping() > 0 and await second.ping() > 0
        assert (await first.python("40 + 2")).value == "42"  # the joined one closing kept the session


async def test_python_client_retries_an_execute_with_its_own_id(joinable: GatewayProcess) -> None:
    """A connection dropped just after an execute went out: the retry on resume runs nothing twice."""
    from spark_gateway_client import connect as client_connect

    async with client_connect(joinable.ws_url, token=TOKEN) as session:
        await session.python("runs = []")
        for attempt in range(4):
            execution = session.python("import time\nruns.append(1)\ntime.sleep(0.5)").start()
            await anyio.sleep(0.01 * attempt)  # the drop lands before or after the gateway got it
            session._ws.transport.abort()
            with anyio.fail_after(60):
                await execution
            assert execution.status == "ok"
        assert (await session.python("len(runs)")).value == "4"
        assert session.resumes == 4
