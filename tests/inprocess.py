"""A gateway session in this process, driven as a client drives it (fast tier).

``open_session(fake)`` runs a real :class:`~spark_gateway.session.Session` behind a
:class:`~tests.fakes.spark.FakeSpark` and yields the same :class:`tests.wsclient.Client` the
websocket tests use, on a :class:`SessionSocket` instead of a socket: a request goes through
the protocol's decoder into ``Session.handle`` (a refusal raises its ``ProtocolError`` in the
test), and every event the session puts in its outbox is read back, decoded and checked
against the JSON Schema, ``seq`` by ``seq``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.lowlevel

from spark_gateway import capture
from spark_gateway.outbox import Outbox
from spark_gateway.session import Session, SessionLimits
from spark_gateway_protocol import decode_request
from tests.fakes.spark import FakeSpark
from tests.wsclient import Client

SPARK_URL = "sc://fake-spark:15002"


class SessionSocket:
    """Stands where the websocket would: text in through ``Session.handle``, frames out of the outbox."""

    def __init__(self, session: Session) -> None:
        self.session = session

    async def send(self, text: str) -> None:
        await self.session.handle(decode_request(text, self.session.limits.max_message_bytes))

    async def recv(self) -> str | bytes:
        return await self.session.outbox.get()

    async def close(self) -> None:
        pass


@asynccontextmanager
async def open_session(fake: FakeSpark, *, limits: SessionLimits | None = None,
                       **kwargs: Any) -> AsyncIterator[Client]:
    """A running session and its client; closed on the way out, leaving nothing running on Spark."""
    capture.install()  # here, in the test's own phase: pytest puts its capture back between phases
    session = Session(spark_url=SPARK_URL, outbox=Outbox(), limits=limits or SessionLimits(),
                      fetch_limiter=anyio.CapacityLimiter(8), **kwargs)
    client = Client(SessionSocket(session))  # type: ignore[arg-type]
    async with anyio.create_task_group() as tg:
        tg.start_soon(session.run)
        await anyio.lowlevel.checkpoint()  # run() is under way: close() can stop it
        try:
            yield client
        finally:
            with anyio.fail_after(30, shield=True):
                await session.close()
    assert not fake.running(), f"left running on Spark: {fake.running()}"


def session_of(client: Client) -> Session:
    """The session behind an in-process client."""
    return client.ws.session  # type: ignore[attr-defined, no-any-return]


async def quiet(client: Client, seconds: float = 0.3) -> None:
    """Assert that no event but Spark's progress comes for ``seconds``."""
    with anyio.move_on_after(seconds):
        while True:
            event = await client.recv(timeout=seconds + 1)
            assert event["type"] == "progress", f"unexpected event {event}"
