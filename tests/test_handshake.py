"""Slow handshakes are bounded: a client that dribbles its request head is closed, others are served."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Iterator

import anyio
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from spark_gateway.handshake import bounded_http
from spark_gateway.spark_server import free_port
from tests.conftest import GatewayProcess
from tests.wsclient import open_client, rows_of

HEAD = (b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n")


class Dribbler:
    """A client that sends a request head one byte at a time, never finishing it."""

    def __init__(self, port: int, interval: float) -> None:
        self.port = port
        self.interval = interval
        self.closed_after: float | None = None  # seconds from connecting to the server's close

    async def run(self, seconds: float) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        started = time.monotonic()
        endless = itertools.chain(HEAD, itertools.cycle(b"X-Pad: 0123456789\r\n"))
        try:
            with anyio.move_on_after(seconds):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._send, writer, endless)
                    try:
                        await reader.read()  # b"" once the server closes
                    except ConnectionResetError:
                        pass  # closed with our unread bytes in its buffer: the kernel sends a reset
                    self.closed_after = time.monotonic() - started
                    tg.cancel_scope.cancel()
        finally:
            writer.close()

    async def _send(self, writer: asyncio.StreamWriter, data: itertools.chain[int]) -> None:
        try:
            for byte in data:
                writer.write(bytes([byte]))
                await writer.drain()
                await anyio.sleep(self.interval)
        except OSError:
            pass  # closed by the server: the reader sees it


async def _ok(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


class serving:
    """``async with serving(timeout, cap) as port``: uvicorn in this process with bounded handshakes."""

    def __init__(self, timeout: float, cap: int) -> None:
        self.config = uvicorn.Config(Starlette(routes=[Route("/", _ok)]), host="127.0.0.1", port=free_port(),
                                     lifespan="off", log_config=None, http=bounded_http(timeout, cap))

    async def __aenter__(self) -> int:
        self.server = uvicorn.Server(self.config)
        self.task = asyncio.ensure_future(self.server.serve())
        with anyio.fail_after(10):
            while not self.server.started:  # noqa: ASYNC110 - uvicorn has no event for it
                await anyio.sleep(0.02)
        return int(self.config.port)

    async def __aexit__(self, *exc: object) -> None:
        self.server.should_exit = True
        await self.task


async def _get(port: int) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    response = await reader.read()
    writer.close()
    return response


async def test_dribbled_request_head_is_closed_and_others_are_served() -> None:
    """A request head still incomplete after the timeout is closed; a normal request is served meanwhile."""
    async with serving(timeout=1, cap=100) as port:
        dribblers = [Dribbler(port, interval=0.05) for _ in range(5)]
        async with anyio.create_task_group() as tg:
            for dribbler in dribblers:
                tg.start_soon(dribbler.run, 10.0)
            await anyio.sleep(0.3)
            assert (await _get(port)).endswith(b"\r\n\r\nok")
        closed = [d.closed_after for d in dribblers]
        assert all(c is not None and 0.8 < c < 5 for c in closed), closed


async def test_at_the_cap_the_longest_waiting_handshake_is_closed() -> None:
    """With max_pending handshakes open, a new connection closes the one that has waited longest."""
    async with serving(timeout=60, cap=3) as port:
        dribblers = [Dribbler(port, interval=0.1) for _ in range(5)]
        async with anyio.create_task_group() as tg:
            for dribbler in dribblers:
                tg.start_soon(dribbler.run, 3.5)  # long enough to outlast the eviction below
                await anyio.sleep(0.2)  # connected in this order
            assert (await _get(port)).endswith(b"\r\n\r\nok")  # one more: evicts the third
        closed = [d.closed_after is not None for d in dribblers]
        assert closed == [True, True, True, False, False], [d.closed_after for d in dribblers]


@pytest.fixture(scope="module")
def impatient(spark_remote: str) -> Iterator[GatewayProcess]:
    """The real gateway with a 2 s handshake timeout."""
    process = GatewayProcess(spark_remote, "--handshake-timeout", "2")
    yield process
    process.stop()


@pytest.mark.integration
async def test_gateway_closes_dribbling_clients_and_serves_sessions(impatient: GatewayProcess) -> None:
    """40 clients dribbling header bytes are closed after the handshake timeout; a session runs meanwhile."""
    dribblers = [Dribbler(impatient.port, interval=0.2) for _ in range(40)]
    async with anyio.create_task_group() as tg:
        for dribbler in dribblers:
            tg.start_soon(dribbler.run, 40.0)
        await anyio.sleep(0.5)
        async with open_client(impatient.ws_url) as client:
            assert rows_of(await client.run("SELECT 1 AS one", id="q")) == [[1]]
    closed = sorted(d.closed_after or float("inf") for d in dribblers)
    assert closed[0] > 1.5 and closed[-1] < 15, closed
