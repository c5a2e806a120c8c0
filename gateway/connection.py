"""The websocket side of a session: one reader, one writer, and cleanup when either ends."""

from __future__ import annotations

import logging

import anyio
from starlette.websockets import WebSocket, WebSocketDisconnect

from protocol import PROTOCOL_VERSION, decode_request
from protocol.errors import ErrorCode, ProtocolError
from protocol.messages import Error

from .outbox import Outbox
from .session import Session

log = logging.getLogger("spark_gateway.connection")


async def serve(websocket: WebSocket, session: Session) -> None:
    """Run one accepted connection until the client leaves or the socket fails."""
    async with anyio.create_task_group() as tg:
        tg.start_soon(session.run)
        tg.start_soon(_write, websocket, session.outbox, tg.cancel_scope)
        try:
            await _read(websocket, session)
        finally:
            await session.close()
            tg.cancel_scope.cancel()


def choose_subprotocol(websocket: WebSocket) -> str | None:
    """The protocol version the client asked for, if it asked for ours."""
    offered = websocket.scope.get("subprotocols") or []
    return PROTOCOL_VERSION if PROTOCOL_VERSION in offered else None


async def _read(websocket: WebSocket, session: Session) -> None:
    """Decode and dispatch client frames; a bad frame is answered, never fatal."""
    limit = session.limits.max_message_bytes
    while True:
        await session.outbox.wait_room()  # a client that does not read stops being read
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            log.info("client left (code %s)", message.get("code"), extra={"session": session.id})
            return
        text = message.get("text")
        try:
            if text is None:
                raise ProtocolError(ErrorCode.BAD_MESSAGE, "binary frames are not accepted; send JSON text")
            await session.handle(decode_request(text, limit))
        except ProtocolError as exc:
            session.outbox.put(Error(exc.code, exc.message, id=exc.request_id, request=exc.request_type))
        except Exception as exc:  # noqa: BLE001 - a gateway bug must not drop the session
            log.exception("internal error handling a request in session %s", session.id)
            session.outbox.put(Error(ErrorCode.INTERNAL, f"internal gateway error: {type(exc).__name__}: {exc}"))


async def _write(websocket: WebSocket, outbox: Outbox, scope: anyio.CancelScope) -> None:
    """The only task that writes to the socket."""
    try:
        while True:
            frame = await outbox.get()
            if isinstance(frame, str):
                await websocket.send_text(frame)
            else:
                await websocket.send_bytes(frame)  # an arrow-rows page
    except (WebSocketDisconnect, OSError, RuntimeError):
        scope.cancel()  # the client is gone: stop reading too
