"""A frame the gateway refuses at the websocket layer closes the connection, never the session."""

from __future__ import annotations

from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from spark_gateway_protocol import PROTOCOL_VERSION
from tests.conftest import GatewayProcess
from tests.wsclient import decode_frame

pytestmark = pytest.mark.integration

WS_MAX_SIZE = 16 << 20  # uvicorn's ws_max_size in spark_gateway/cli.py


async def _open(url: str) -> tuple[ClientConnection, dict[str, Any]]:
    ws = await connect(url, subprotocols=[PROTOCOL_VERSION], max_size=None)
    return ws, decode_frame(await ws.recv())


async def _closed_by_gateway(ws: ClientConnection, frame: str | bytes, *, text: bool = True) -> int:
    """Send ``frame``, read until the gateway closes; the close code it sent."""
    with pytest.raises(ConnectionClosed) as closed:  # while still sending, or at the next read
        await ws.send(frame, text=text)
        while True:
            await ws.recv()
    assert closed.value.rcvd is not None, closed.value
    return closed.value.rcvd.code


async def _resumes(gateway: GatewayProcess, session_id: str, last_seq: int) -> None:
    """The session is still there: it resumes, and answers a ping with the next seq."""
    ws = await connect(f"{gateway.ws_url}?resume={session_id}&last_seq={last_seq}",
                       subprotocols=[PROTOCOL_VERSION], max_size=None)
    try:
        resumed = decode_frame(await ws.recv())
        assert resumed["type"] == "resumed" and resumed["session_id"] == session_id, resumed
        await ws.send('{"type": "ping", "data": "still here"}')
        pong = decode_frame(await ws.recv())
        assert pong == {"type": "pong", "seq": last_seq + 1, "data": "still here"}, pong
    finally:
        await ws.close()


async def test_frame_over_16_mib_closes_with_1009_and_the_session_resumes(gateway: GatewayProcess) -> None:
    """A 17 MiB frame is not read: close 1009, and the session is kept for a resume."""
    ws, session = await _open(gateway.ws_url)
    frame = '{"type": "ping", "data": "' + "x" * (17 << 20) + '"}'
    assert len(frame) > WS_MAX_SIZE
    assert await _closed_by_gateway(ws, frame) == 1009
    await _resumes(gateway, session["session_id"], last_seq=1)


async def test_frame_under_16_mib_is_refused_and_the_connection_stays(gateway: GatewayProcess) -> None:
    """A 2 MiB frame (over max_message_bytes) gets message_too_large; the same connection carries on."""
    ws, _ = await _open(gateway.ws_url)
    try:
        await ws.send('{"type": "ping", "data": "' + "x" * (2 << 20) + '"}')
        error = decode_frame(await ws.recv())
        assert error["type"] == "error" and error["code"] == "message_too_large", error
        await ws.send('{"type": "ping", "data": "after"}')
        assert decode_frame(await ws.recv())["data"] == "after"
    finally:
        await ws.close()


async def test_text_frame_not_utf8_closes_with_1007_and_the_session_resumes(gateway: GatewayProcess) -> None:
    """A text frame that is not UTF-8 closes the connection with 1007; the session is kept for a resume."""
    ws, session = await _open(gateway.ws_url)
    assert await _closed_by_gateway(ws, b'{"type": "ping", "data": "\xff\xfe"}', text=True) == 1007
    await _resumes(gateway, session["session_id"], last_seq=1)

