"""One websocket serving a session: one reader, one writer, until either ends.

A session outlives its connections (see :mod:`spark_gateway.lifetime`) and may have several
(joined ones): each reads the session's outbox through its own
:class:`~spark_gateway.outbox.Reader`. When this socket goes, the session keeps its executions
and its events, and the next connection of the same client picks up where this one stopped.
"""

from __future__ import annotations

import logging

import anyio
from starlette.websockets import WebSocket, WebSocketDisconnect

from spark_gateway_protocol import PROTOCOL_VERSION, decode_request
from spark_gateway_protocol.close_codes import CLIENT_DONE, CLOSE_TAKEN_OVER, CLOSE_TOO_SLOW
from spark_gateway_protocol.close_codes import CLOSE_GOING_AWAY as CLOSE_GOING_AWAY
from spark_gateway_protocol.close_codes import CLOSE_REFUSED as CLOSE_REFUSED
from spark_gateway_protocol.close_codes import CLOSE_SESSION_ENDED as CLOSE_SESSION_ENDED
from spark_gateway_protocol.close_codes import CLOSE_TRY_AGAIN as CLOSE_TRY_AGAIN
from spark_gateway_protocol.errors import ErrorCode, ProtocolError
from spark_gateway_protocol.messages import Error

from .outbox import Reader, ReaderCut
from .session import Session

log = logging.getLogger("spark_gateway.connection")

# How long closing may wait for the socket to take the close frame: a client that stopped reading
# (a connection cut as too slow) may never make room for it; then the socket is dropped.
CLOSE_PATIENCE_SECONDS = 30.0


def choose_subprotocol(websocket: WebSocket) -> str | None:
    """The protocol version the client asked for, if it asked for ours."""
    offered = websocket.scope.get("subprotocols") or []
    return PROTOCOL_VERSION if PROTOCOL_VERSION in offered else None


class Connection:
    """The socket currently attached to a session."""

    def __init__(self, websocket: WebSocket, session: Session, reader: Reader | None = None, *,
                 joined: bool = False) -> None:
        """``reader``: where it reads the session's stream (default: the outbox's home reader)."""
        self.websocket = websocket
        self.session = session
        self.reader = reader or session.outbox.home
        self.joined = joined  # opened with ?join= (a resume never takes it over)
        self.close_code: int | None = None  # the client's close code, once it closed
        self.taken_over = False
        self.too_slow = False
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
                with anyio.CancelScope(shield=True), anyio.move_on_after(CLOSE_PATIENCE_SECONDS):
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

    def cut(self) -> None:
        """It fell too far behind the session's fastest connection: close it with 4002 (from any task)."""
        self.too_slow = True
        log.info("connection too slow: closed with %d", CLOSE_TOO_SLOW, extra={"session": self.session.id})
        self._closing = (CLOSE_TOO_SLOW, "too slow: join again from your last seq")
        self._scope.cancel()

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
        outbox, reader = self.session.outbox, self.reader
        try:
            while True:
                frame = await outbox.get(reader)
                if isinstance(frame, str):
                    await self.websocket.send_text(frame)
                else:
                    await self.websocket.send_bytes(frame)  # an arrow-rows page
        except ReaderCut:
            self.cut()
        except (WebSocketDisconnect, OSError, RuntimeError):
            scope.cancel()  # the socket is gone: stop reading too
