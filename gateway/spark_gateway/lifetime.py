"""A session's life across connections: attached, away for a grace period, idle, ended.

A session has one or more connections: the one that opened it (or resumed it), and joined
ones (``?join=``), each reading the same stream. A connection that drops without a close
frame (a network change, a laptop lid, a crashed client) does not end the session: its
executions keep running — bounded by the outbox's backpressure — and the client may come
back within ``resume_grace`` seconds with the last ``seq`` it saw (:meth:`Lifetime.serve`
with ``last_seq``). A clean close ends it at once when it was the last connection and none
dropped less than ``resume_grace`` ago; so does the grace period running out, the session
sitting idle for ``idle_timeout`` seconds after its last execution, or the gateway shutting down.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable

import anyio
from starlette.websockets import WebSocket

from spark_gateway_protocol import encode_event
from spark_gateway_protocol.errors import ErrorCode
from spark_gateway_protocol.messages import Error, Resumed

from .connection import CLOSE_GOING_AWAY, CLOSE_SESSION_ENDED, Connection
from .errors import ResumeError
from .session import Session

log = logging.getLogger("spark_gateway.lifetime")

NOTICE_FLUSH_SECONDS = 2.0  # how long a last notice may take to reach an attached client


class Lifetime:
    """Keeps one session alive between its connections and ends it when its time is up."""

    def __init__(self, session: Session, credential: str, *, grace: float, idle_timeout: float,
                 on_end: Callable[[], None]) -> None:
        self.session = session
        self.credential = credential
        self.grace = grace
        self.idle_timeout = idle_timeout
        self.ending = False
        self.resumes = 0
        self._on_end = on_end
        self._connection: Connection | None = None  # the one that opened or resumed the session: resume replaces it
        self._joined: set[Connection] = set()
        self._away_since: float | None = None  # None while attached (or before the first attach)
        self._dropped_at: float | None = None  # a connection dropped (not a clean close), until a resume
        self._end_reason: str | None = None  # set: end now, for this reason
        self._changed = anyio.Event()
        self._left = anyio.Event()  # the attached connection's serve() returned
        self._attaching = anyio.Lock()  # one resume at a time takes over and rewinds

    @property
    def away(self) -> bool:
        return self._away_since is not None

    @property
    def connections(self) -> list[Connection]:
        """Every attached connection."""
        return ([self._connection] if self._connection is not None else []) + list(self._joined)

    # ------------------------------------------------------------ the session's own task

    async def live(self) -> None:
        """Run the session until its time is up, then end it (a task of the gateway's)."""
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self.session.run)
                try:
                    reason, notice = await self._watch()
                    self.ending = True
                    log.info("session ending: %s", reason, extra={"session": self.session.id})
                    if notice is not None:
                        await self._tell(notice)
                    await self._close(CLOSE_SESSION_ENDED, reason[:120])
                finally:
                    # Also when the gateway cancels this task. Close (interrupt, release Spark)
                    # before leaving the task group: session.run waits for the worker thread,
                    # which only returns once its Spark call has been interrupted.
                    self.ending = True
                    with anyio.CancelScope(shield=True):
                        await self.session.close()
        finally:
            self._on_end()

    async def _watch(self) -> tuple[str, Error | None]:
        """Wait until the session must end: (why, what to tell a still attached client)."""
        while True:
            if self._end_reason is not None:
                return self._end_reason, None
            now = time.monotonic()
            deadline = math.inf
            if self._away_since is not None:
                deadline = self._away_since + self.grace
                if now >= deadline:
                    return f"the client did not come back within {self.grace:g} s", None
            idle_since = self.session.idle_since
            wake: list[Callable[[], Awaitable[object]]] = [self._changed.wait]
            if self.idle_timeout > 0:
                if idle_since is None:  # busy: the idle clock starts when its last execution ends
                    wake.append(self.session.wait_idle)
                elif now >= idle_since + self.idle_timeout:
                    reason = f"idle for {self.idle_timeout:g} s since its last execution"
                    return reason, Error(ErrorCode.IDLE_TIMEOUT,
                                         f"this session ended: {reason} (the gateway's --idle-timeout); "
                                         "open a new session")
                else:
                    deadline = min(deadline, idle_since + self.idle_timeout)
            # Attach, detach, end and going idle wake us early; otherwise sleep until the next deadline.
            with anyio.move_on_after(deadline - now if deadline < math.inf else 3600):
                await _first(*wake)
            if self._changed.is_set():
                self._changed = anyio.Event()

    def end_soon(self, reason: str) -> None:
        self._end_reason = self._end_reason or reason
        self._changed.set()

    async def _tell(self, notice: Error) -> None:
        """Put a last event in the stream and give an attached client a moment to get it."""
        self.session.outbox.put(notice)
        await self._flush()

    async def _flush(self) -> None:
        """Give an attached client a moment to receive what is queued for it."""
        if self.connections:
            with anyio.move_on_after(NOTICE_FLUSH_SECONDS):
                await _first(self.session.outbox.wait_flushed, self._left.wait)

    async def _close(self, code: int, reason: str) -> None:
        connections = self.connections
        self._connection = None
        self._joined.clear()
        for connection in connections:
            await connection.end(code, reason)

    async def shutdown(self, reason: str) -> None:
        """The gateway is stopping: tell the client, interrupt the work, close with 1001."""
        if self.ending:
            return  # closing already
        self.ending = True
        await self.session.shutdown(reason)
        await self._flush()
        await self._close(CLOSE_GOING_AWAY, "gateway shutting down")
        self.end_soon("the gateway is shutting down")

    # ------------------------------------------------------------ connections

    async def serve(self, websocket: WebSocket, last_seq: int | None = None, *, join: bool = False) -> None:
        """Attach an accepted websocket and serve it until it goes.

        ``last_seq`` alone: a resume (it replaces the connection that opened or last resumed
        the session); ``join``: one more connection, from ``last_seq`` or (None) from now on.
        Raises :class:`~gateway.outbox.ResumeError` (before attaching) when the stream cannot
        continue from ``last_seq``, or the session has ``max_connections`` already.
        """
        async with self._attaching:
            connection = await (self._join(websocket, last_seq) if join else self._resume(websocket, last_seq))
            self._away_since = None
            if len(self.connections) == 1:
                self._left = anyio.Event()  # set when no connection is left
            self._changed.set()
        try:
            await connection.serve()
        finally:
            if not connection.taken_over:  # else its reader (home) is the new connection's now
                self.session.outbox.detach(connection.reader)
            if connection.joined:
                self._joined.discard(connection)
            elif self._connection is connection:
                self._connection = None
            if not self.connections:
                self._left.set()
        if connection.taken_over or self.ending:
            return
        self._left_one(connection)

    async def _resume(self, websocket: WebSocket, last_seq: int | None) -> Connection:
        """The opening connection, or a resume of it: reads through the outbox's home reader."""
        outbox = self.session.outbox
        if self._connection is not None:  # the client resumed before we noticed it was gone
            await self._connection.take_over()
            self._connection = None
            self._dropped_at = time.monotonic()
            if not self.connections:  # if the resume fails now, the grace period runs from here
                self._away_since = self._dropped_at
        connection = Connection(websocket, self.session)
        if last_seq is not None:
            next_seq, lost = outbox.rewind(last_seq)
            self._dropped_at = None  # the connection that dropped is back
            outbox.attach(outbox.home, connection.cut)
            resumed = Resumed(self.session.id, self.session.spark_session_id, last_seq, next_seq, lost,
                              self.session.credit())
            self._connection = connection
            await websocket.send_text(str(encode_event(resumed, 0)))
            self.resumes += 1
            log.info("session resumed after seq %d%s", last_seq, " with a gap" if lost else "",
                     extra={"session": self.session.id})
        else:
            outbox.attach(outbox.home, connection.cut)
            self._connection = connection
        return connection

    async def _join(self, websocket: WebSocket, last_seq: int | None) -> Connection:
        """One more connection: a ``session-state`` snapshot, then the stream from ``last_seq`` or from now."""
        session, outbox = self.session, self.session.outbox
        if len(self.connections) >= session.limits.max_connections:
            raise JoinRefused(f"this session has {len(self.connections)} connections already "
                              f"(max_connections {session.limits.max_connections})")
        reader, next_seq, lost = outbox.join(last_seq)  # may raise ResumeError: nothing attached yet
        connection = Connection(websocket, session, reader, joined=True)
        outbox.attach(reader, connection.cut)
        self._joined.add(connection)
        # Built in the same loop step as the reader's position: the snapshot and the stream agree.
        state = session.state(last_seq=last_seq, next_seq=next_seq, lost=lost, connections=len(self.connections))
        await websocket.send_text(str(encode_event(state, 0)))
        log.info("connection joined%s (%d attached)", "" if last_seq is None else f" after seq {last_seq}",
                 len(self.connections), extra={"session": session.id})
        return connection

    def _left_one(self, connection: Connection) -> None:
        """A connection went: the session ends when the last one left on purpose and none is awaited back."""
        now = time.monotonic()
        if not connection.client_done:
            self._dropped_at = now
        if self.connections:
            log.info("a connection %s; %d still attached", "closed" if connection.client_done else "dropped",
                     len(self.connections), extra={"session": self.session.id})
            return
        awaited = self._dropped_at is not None and now - self._dropped_at < self.grace
        if (connection.client_done or self.grace <= 0) and not awaited:
            self.end_soon("the client closed the connection")
            return
        self._away_since = now if not connection.client_done else self._dropped_at
        self._changed.set()
        log.info("client away; session kept %g s for a resume", self.grace, extra={"session": self.session.id})


class JoinRefused(ResumeError):
    """A join the session cannot take (it has max_connections already)."""


async def _first(*waits: Callable[[], Awaitable[object]]) -> None:
    """Until the first of ``waits`` returns (the others are cancelled)."""
    if len(waits) == 1:
        await waits[0]()  # no task group: ending a session stays as quick as it can be
        return
    async with anyio.create_task_group() as tg:
        async def wait(fn: Callable[[], Awaitable[object]]) -> None:
            await fn()
            tg.cancel_scope.cancel()

        for fn in waits:
            tg.start_soon(wait, fn)
