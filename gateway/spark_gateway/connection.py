"""One websocket serving a session: one reader, one writer, until either ends.

A session outlives its connections (see :mod:`spark_gateway.lifetime`): when this socket goes,
the session keeps its executions and its unsent events, and the next connection of the
same client picks up its outbox where this one stopped.
"""

from __future__ import annotations

import logging

import anyio
from starlette.websockets import WebSocket, WebSocketDisconnect

from spark_gateway_protocol import PROTOCOL_VERSION, decode_request
from spark_gateway_protocol.errors import ErrorCode, ProtocolError
from spark_gateway_protocol.messages import Error

from .outbox import Outbox
from .session import Session

log = logging.getLogger("spark_gateway.connection")

# Close codes the gateway sends (docs/protocol.md, "Connections and resume").
CLOSE_SESSION_ENDED = 1000  # the session is over: do not resume
CLOSE_GOING_AWAY = 1001  # the gateway is shutting down
CLOSE_REFUSED = 1008  # a session could not be opened or resumed (an error said why)
CLOSE_TRY_AGAIN = 1013  # the gateway is full or draining: open a session later
CLOSE_TAKEN_OVER = 4001  # the session was resumed on another connection

# A client that closes with one of these is done with its session (normal, going away, or
# it cannot go on with this stream); no close frame (1005/1006: a dropped network, a crashed
# client), 1011-1014 or an application code 4000-4999 keeps the session for a resume.
# So do 1007 and 1009: the gateway's websocket layer closes with them when it refuses a
# client frame (not UTF-8; over the 16 MiB frame limit), and reports its own close to the
# app exactly as a client's. A refused frame must not end the session.
CLIENT_DONE = frozenset({1000, 1001, 1002, 1003, 1008, 1010})


def choose_subprotocol(websocket: WebSocket) -> str | None:
    """The protocol version the client asked for, if it asked for ours."""
    offered = websocket.scope.get("subprotocols") or []
    return PROTOCOL_VERSION if PROTOCOL_VERSION in offered else None


class Connection:
    """The socket currently attached to a session."""

    def __init__(self, websocket: WebSocket, session: Session) -> None:
        self.websocket = websocket
        self.session = session
        self.close_code: int | None = None  # the client's close code, once it closed
        self.taken_over = False
        self._closing: tuple[int, str] | None = None  # (code, reason) the gateway closes with
        self._scope = anyio.CancelScope()
        self._done = anyio.Event()

    @property
    def client_done(self) -> bool:
        """The client closed on purpose: its session should end now."""
        return self.close_code in CLIENT_DONE

    async def serve(self) -> None:
        """Read and write until the client leaves, the socket fails, or :meth:`end` is called."""
        try:
            with self._scope:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._write, tg.cancel_scope)
                    await self._read()
                    tg.cancel_scope.cancel()
        finally:
            # Closed here, by the task that owns the socket: once it returns, the server
            # drops the connection without a close frame.
            if self._closing is not None:
                with anyio.CancelScope(shield=True):
                    try:
                        await self.websocket.close(code=self._closing[0], reason=self._closing[1])
                    except (RuntimeError, OSError, WebSocketDisconnect):
                        pass  # already gone
            self._done.set()

    async def end(self, code: int, reason: str) -> None:
        """Stop serving and close the socket (session over, shutdown, or taken over)."""
        self._closing = (code, reason)
        self._scope.cancel()
        await self._done.wait()

    async def take_over(self) -> None:
        """The same session resumes on another connection: this one stops first."""
        self.taken_over = True
        await self.end(CLOSE_TAKEN_OVER, "session resumed on another connection")

    async def _read(self) -> None:
        """Decode and dispatch client frames; a bad frame is answered, never fatal."""
        session = self.session
        limit = session.limits.max_message_bytes
        while True:
            await session.outbox.wait_room()  # a client that does not read stops being read
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                self.close_code = message.get("code")
                log.info("client left (code %s)", self.close_code, extra={"session": session.id})
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

    async def _write(self, scope: anyio.CancelScope) -> None:
        """The only task that writes to the socket."""
        outbox: Outbox = self.session.outbox
        try:
            while True:
                frame = await outbox.get()
                if isinstance(frame, str):
                    await self.websocket.send_text(frame)
                else:
                    await self.websocket.send_bytes(frame)  # an arrow-rows page
        except (WebSocketDisconnect, OSError, RuntimeError):
            scope.cancel()  # the socket is gone: stop reading too
