"""Bounded handshakes: a connection gets a few seconds to send its HTTP request head.

uvicorn's HTTP protocol waits for a request head as long as bytes keep coming, so a client
that sends its headers a byte at a time holds a socket (and a file descriptor) for ever,
and a few thousand of them starve the gateway. This is uvicorn's h11 protocol with a
deadline for each request head (the websocket upgrade request, or the next request on a
kept-alive connection) and a cap on connections still sending one: at the cap, the one
that has waited longest is closed, so new clients are always served.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("spark_gateway.handshake")


def bounded_http(timeout: float, max_pending: int) -> type[asyncio.Protocol]:
    """uvicorn's ``http`` protocol class for one server: request heads within ``timeout`` seconds,
    at most ``max_pending`` connections sending one at a time."""
    pending: dict[BoundedH11Protocol, None] = {}  # insertion-ordered: the longest waiting first

    class BoundedH11Protocol(H11Protocol):
        _deadline: asyncio.TimerHandle | None = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._await_head()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.conn.their_state is not h11.IDLE:  # a whole head arrived (or the socket upgraded)
                self._head_received()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                self._await_head()  # the next request on a kept-alive connection

        def connection_lost(self, exc: Exception | None) -> None:
            self._head_received()
            super().connection_lost(exc)

        def _await_head(self) -> None:
            if self._deadline is not None:
                return
            while len(pending) >= max_pending:
                oldest = next(iter(pending))
                oldest._give_up("too many connections are still sending their request head")
            self._deadline = self.loop.call_later(timeout, self._give_up, f"no request head within {timeout:g} s")
            pending[self] = None

        def _head_received(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None
            pending.pop(self, None)

        def _give_up(self, why: str) -> None:
            self._head_received()
            log.debug("closing %s: %s", self.client, why)
            self.transport.close()

    return BoundedH11Protocol
