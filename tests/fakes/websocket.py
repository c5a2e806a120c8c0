"""An in-memory websocket: the gateway's end is a real Starlette ``WebSocket``, the test holds the other.

ASGI messages travel over two anyio memory streams instead of a socket, so Connection and
Lifetime run unchanged (fast tier); the client's end decodes every frame and checks it against
the JSON Schema, as tests/wsclient.py does over a real socket.
"""

from __future__ import annotations

import math
from collections.abc import MutableMapping
from typing import Any

import anyio
import orjson
from starlette.websockets import WebSocket

from spark_gateway_protocol import PROTOCOL_VERSION
from tests.wsclient import decode_frame, validate


class Closed(Exception):
    """The gateway closed this websocket."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"closed with {code} {reason!r}")
        self.code = code
        self.reason = reason


class MemoryWebSocket:
    """Both ends of one in-memory websocket; ``websocket`` is the gateway's."""

    def __init__(self, *, subprotocols: tuple[str, ...] = (PROTOCOL_VERSION,)) -> None:
        self._to_gateway, self._gateway_in = anyio.create_memory_object_stream[dict[str, Any]](64)
        self._gateway_out, self._from_gateway = anyio.create_memory_object_stream[MutableMapping[str, Any]](math.inf)
        scope = {"type": "websocket", "path": "/ws", "query_string": b"", "headers": [(b"host", b"127.0.0.1")],
                 "subprotocols": list(subprotocols), "client": ("127.0.0.1", 50000)}
        self.websocket = WebSocket(scope, receive=self._gateway_in.receive, send=self._gateway_out.send)
        self._to_gateway.send_nowait({"type": "websocket.connect"})
        self.events: list[dict[str, Any]] = []

    async def accept(self) -> None:
        """The handshake, as the app does it before handing the websocket over."""
        await self.websocket.accept(subprotocol=PROTOCOL_VERSION)
        assert (await self._from_gateway.receive())["type"] == "websocket.accept"

    async def send(self, message: dict[str, Any]) -> None:
        validate(message)
        await self._to_gateway.send({"type": "websocket.receive", "text": orjson.dumps(message).decode()})

    async def recv(self, wait: float = 10) -> dict[str, Any]:
        """The next event (schema-checked); raises Closed when the gateway closed instead."""
        with anyio.fail_after(wait):
            message = await self._from_gateway.receive()
        if message["type"] == "websocket.close":
            raise Closed(message.get("code", 1000), message.get("reason", ""))
        event = decode_frame(message.get("text") or message["bytes"])
        self.events.append(event)
        return event

    async def recv_until(self, predicate: Any, wait: float = 10) -> list[dict[str, Any]]:
        got: list[dict[str, Any]] = []
        while not got or not predicate(got[-1]):
            got.append(await self.recv(wait))
        return got

    async def closed(self, wait: float = 10) -> Closed:
        """Read on until the gateway closes; the close (its code and reason)."""
        try:
            while True:
                await self.recv(wait)
        except Closed as closed:
            return closed

    def drop(self, code: int = 1006) -> None:
        """The client goes: 1006 without a close frame (a dropped network), 1000 on purpose."""
        self._to_gateway.send_nowait({"type": "websocket.disconnect", "code": code})

    def aclose(self) -> None:
        for stream in (self._to_gateway, self._gateway_in, self._gateway_out, self._from_gateway):
            stream.close()
