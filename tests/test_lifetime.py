"""A session's life across connections, in-process: idle timeout, resume grace, resume, take-over, shutdown.

Real Session, Lifetime and Connection over in-memory websockets (tests/fakes/websocket.py), behind
the fake Spark (fast tier). test_resume.py checks the same against the real gateway and Spark.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio
import pytest
from anyio.abc import TaskGroup

from spark_gateway import capture
from spark_gateway.connection import CLOSE_GOING_AWAY, CLOSE_SESSION_ENDED, CLOSE_TAKEN_OVER
from spark_gateway.lifetime import Lifetime
from spark_gateway.outbox import Outbox, ResumeError
from spark_gateway.session import Session, SessionLimits
from tests.fakes.spark import FakeSpark, Job, table
from tests.fakes.websocket import MemoryWebSocket
from tests.inprocess import SPARK_URL

TEN = table(id=list(range(10)))


@dataclass
class Life:
    """A session living in a task group, and the websockets that served it."""

    lifetime: Lifetime
    tg: TaskGroup
    ended: anyio.Event
    sockets: list[MemoryWebSocket] = field(default_factory=list)

    async def attach(self, last_seq: int | None = None) -> MemoryWebSocket:
        """A new connection for the session (a resume when ``last_seq`` is given)."""
        socket = MemoryWebSocket()
        self.sockets.append(socket)
        await socket.accept()
        self.tg.start_soon(self.lifetime.serve, socket.websocket, last_seq)
        return socket

    async def wait_ended(self, wait: float = 10) -> None:
        with anyio.fail_after(wait):
            await self.ended.wait()


@asynccontextmanager
async def living(fake: FakeSpark, *, grace: float = 30, idle_timeout: float = 0) -> AsyncIterator[Life]:
    capture.install()
    session = Session(spark_url=SPARK_URL, outbox=Outbox(), limits=SessionLimits(),
                      fetch_limiter=anyio.CapacityLimiter(4))
    ended = anyio.Event()
    lifetime = Lifetime(session, "anonymous", grace=grace, idle_timeout=idle_timeout, on_end=ended.set)
    async with anyio.create_task_group() as tg:
        life = Life(lifetime, tg, ended)
        tg.start_soon(lifetime.live)
        try:
            yield life
        finally:
            lifetime.end_soon("the test is over")
            await life.wait_ended()
            for socket in life.sockets:
                socket.drop(1000)
    for socket in life.sockets:
        socket.aclose()
    assert not fake.running()


async def test_an_idle_session_is_ended_with_a_notice(fake_spark: FakeSpark) -> None:
    """idle_timeout seconds after its last execution, the client is told (idle_timeout) and closed with 1000."""
    fake_spark.script("SELECT * FROM t", Job(TEN))
    async with living(fake_spark, idle_timeout=0.2) as life:
        socket = await life.attach()
        await socket.send({"type": "execute", "id": "q", "code": "SELECT * FROM t", "language": "sql"})
        await socket.recv_until(lambda e: e["type"] == "finished")
        notice = await socket.recv()
        closed = await socket.closed()
        await life.wait_ended()
    assert notice["code"] == "idle_timeout" and "idle for 0.2 s" in notice["message"]
    assert closed.code == CLOSE_SESSION_ENDED and "idle" in closed.reason
    assert fake_spark.sessions[0].released


async def test_a_busy_session_outlives_the_idle_timeout(fake_spark: FakeSpark) -> None:
    """An execution still running keeps the session; the idle clock starts when it has finished."""
    gate = threading.Event()
    fake_spark.script("SELECT slow", Job(TEN, gate=gate))
    async with living(fake_spark, idle_timeout=0.2) as life:
        socket = await life.attach()
        await socket.send({"type": "execute", "id": "slow", "code": "SELECT slow", "language": "sql"})
        await socket.recv_until(lambda e: e["type"] == "started")
        await anyio.sleep(0.5)  # past the idle timeout, still running
        assert not life.ended.is_set()
        gate.set()
        await socket.recv_until(lambda e: e["type"] == "finished")
        await socket.closed()
        await life.wait_ended()
    assert [e["code"] for e in socket.events if e["type"] == "error"] == ["idle_timeout"]


async def test_a_dropped_client_is_waited_for_then_the_session_ends(fake_spark: FakeSpark) -> None:
    """A connection lost without a close frame leaves the session away for the grace period, then it ends."""
    async with living(fake_spark, grace=0.2) as life:
        socket = await life.attach()
        await socket.send({"type": "ping"})
        await socket.recv()
        socket.drop(1006)
        with anyio.fail_after(5):
            while not life.lifetime.away:  # noqa: ASYNC110 - polling a plain attribute
                await anyio.sleep(0.01)
        await life.wait_ended()


async def test_a_clean_close_ends_the_session_at_once(fake_spark: FakeSpark) -> None:
    """A client closing with 1000 is done with its session: no grace period."""
    async with living(fake_spark, grace=60) as life:
        socket = await life.attach()
        socket.drop(1000)
        await life.wait_ended(wait=5)


async def test_a_resumed_client_gets_every_event_it_missed_once(fake_spark: FakeSpark) -> None:
    """Resuming with the last seq seen: ``resumed`` first, then the events after that seq, in order."""
    fake_spark.script("SELECT * FROM t", Job(TEN))
    async with living(fake_spark) as life:
        first = await life.attach()
        await first.send({"type": "execute", "id": "q", "code": "SELECT * FROM t", "language": "sql",
                          "page_size": 3})
        seen = await first.recv_until(lambda e: e["type"] == "rows")
        first.drop(1006)
        with anyio.fail_after(5):
            while not life.lifetime.away:  # noqa: ASYNC110 - polling a plain attribute
                await anyio.sleep(0.01)
        second = await life.attach(last_seq=seen[-1]["seq"] - 1)  # as if the first page was lost
        resumed = await second.recv()
        replayed = await second.recv()
        assert resumed["type"] == "resumed" and resumed["seq"] == 0
        assert (resumed["last_seq"], resumed["next_seq"]) == (seen[-1]["seq"] - 1, seen[-1]["seq"])
        assert resumed["credit"] == [{"id": "q", "result": 0, "until": 3}]
        assert replayed == seen[-1]
        await second.send({"type": "stream-rows", "id": "q", "result": 0, "max_rows": 100})
        rest = await second.recv_until(lambda e: e["type"] == "finished")
    rows = [row for e in [replayed, *rest] if e["type"] == "rows" for row in e["rows"]]
    assert rows == [[i] for i in range(10)]
    assert life.lifetime.resumes == 1


async def test_a_resume_takes_over_a_half_open_connection(fake_spark: FakeSpark) -> None:
    """The client comes back before the gateway saw the old connection go: the old one is closed (4001)."""
    async with living(fake_spark) as life:
        old = await life.attach()
        await old.send({"type": "ping"})
        pong = await old.recv()
        new = await life.attach(last_seq=pong["seq"])
        assert (await new.recv())["type"] == "resumed"
        closed = await old.closed()
        await new.send({"type": "ping", "data": 2})
        assert (await new.recv())["data"] == 2
    assert closed.code == CLOSE_TAKEN_OVER


async def test_a_resume_from_outside_the_stream_is_refused(fake_spark: FakeSpark) -> None:
    """A last_seq the session never sent cannot be resumed from: ResumeError before attaching."""
    async with living(fake_spark) as life:
        socket = MemoryWebSocket()
        life.sockets.append(socket)
        await socket.accept()
        with pytest.raises(ResumeError, match="last_seq 99"):
            await life.lifetime.serve(socket.websocket, 99)


async def test_shutdown_tells_the_client_and_closes_with_going_away(fake_spark: FakeSpark) -> None:
    """The gateway stopping: a shutting_down error, then close 1001 (clients may come back later)."""
    async with living(fake_spark) as life:
        socket = await life.attach()
        await socket.send({"type": "ping"})
        await socket.recv()  # the connection is being served
        with anyio.fail_after(10):
            await life.lifetime.shutdown("the gateway is shutting down")
        notice = await socket.recv()
        closed = await socket.closed()
        await life.wait_ended()
    assert notice["code"] == "shutting_down"
    assert closed.code == CLOSE_GOING_AWAY
