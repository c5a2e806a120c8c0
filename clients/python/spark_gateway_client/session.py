"""The connection: ``connect()`` opens a websocket session; one reader task demultiplexes events by id."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
import urllib.parse
from collections import deque
from collections.abc import Callable, Generator
from types import TracebackType
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from protocol.codec import decode_arrow_frame, decode_event, encode_request
from protocol.errors import ProtocolError
from protocol.messages import PROTOCOL_VERSION, Interrupt, Ping, Progress, Request, SessionInfo

from . import _wire
from .errors import GatewayConnectionError, SparkGatewayError, error_from_event
from .execution import DEFAULT_WINDOW, Execution, Format, Language

log = logging.getLogger("spark_gateway_client")

DEFAULT_URL = "ws://127.0.0.1:8765/ws"


def normalize_url(url: str, spark_session: str | None = None) -> str:
    """``host:port``, ``http://…`` or ``ws://host:port`` → the gateway's ``ws://…/ws`` endpoint."""
    if "://" not in url:
        url = "ws://" + url
    parts = urllib.parse.urlsplit(url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    path = parts.path if parts.path not in ("", "/") else "/ws"
    query = parts.query
    if spark_session is not None:
        query = "&".join(q for q in (query, urllib.parse.urlencode({"spark_session": spark_session})) if q)
    return urllib.parse.urlunsplit((scheme, parts.netloc, path, query, parts.fragment))


class Session:
    """One gateway session (one websocket, one Spark session). Build it with :func:`connect`."""

    def __init__(self, ws: ClientConnection, info: SessionInfo, url: str) -> None:
        self.url = url
        self.info = info
        self._ws = ws
        self._executions: dict[str, Execution] = {}
        self._ids = itertools.count(1)
        self._used_ids: set[str] = set()
        self._outgoing: asyncio.Queue[str | None] = asyncio.Queue()
        self._pongs: deque[tuple[asyncio.Future[Any], float]] = deque()
        self._next_seq = 2  # the session event was seq 1
        self._failure: SparkGatewayError | None = None
        self._notice: SparkGatewayError | None = None  # e.g. shutting_down, reported on close
        self._writer = asyncio.create_task(self._write(), name="spark-gateway-writer")
        self._reader = asyncio.create_task(self._read(), name="spark-gateway-reader")

    def __repr__(self) -> str:
        return f"<Session {self.info.session_id} {self.url} {'closed' if self.closed else 'open'}>"

    @property
    def closed(self) -> bool:
        return self._failure is not None

    # ------------------------------------------------------------ public API

    def execute(self, code: str, *, language: Language = "sql", page_size: int | None = None,
                limit: int | None = None, format: Format | None = None, window: int = DEFAULT_WINDOW,
                on_stdout: Callable[[str], Any] | None = None, on_stderr: Callable[[str], Any] | None = None,
                on_progress: Callable[[Progress], Any] | None = None, keep_output: bool = True,
                id: str | None = None) -> Execution:
        """An execution of ``code``; it is sent when first used (see :class:`Execution`).

        ``page_size`` rows per page (default 1000 for JSON, 10000 for Arrow); ``limit`` caps
        the rows of each result (``truncated`` tells when rows were left out); ``window``
        is how many pages may be on their way or buffered per result. Callbacks run on the
        event loop, in the session's reader task: keep them quick.
        """
        if id is None:
            id = f"c{next(self._ids)}"
            while id in self._used_ids:
                id = f"c{next(self._ids)}"
        elif id in self._used_ids:
            raise ValueError(f"execution id {id!r} was already used in this session")
        self._used_ids.add(id)
        return Execution(self, id, code, language=language, page_size=page_size, limit=limit, format=format,
                         window=window, on_stdout=on_stdout, on_stderr=on_stderr, on_progress=on_progress,
                         keep_output=keep_output)

    def sql(self, code: str, **options: Any) -> Execution:
        """``execute(code, language="sql", ...)``."""
        return self.execute(code, language="sql", **options)

    def python(self, code: str, **options: Any) -> Execution:
        """``execute(code, language="python", ...)``: ``spark`` is bound; state persists in the session."""
        return self.execute(code, language="python", **options)

    def interrupt_all(self) -> None:
        """Interrupt every running or queued execution of the session."""
        if not self.closed:
            self._send(Interrupt())

    async def ping(self, data: Any = None) -> float:
        """Round trip to the gateway, in seconds."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pongs.append((future, time.perf_counter()))
        self._send(Ping(data))
        return float(await future)

    async def close(self) -> None:
        """Close the websocket; the gateway interrupts whatever is still running or queued."""
        if self._failure is None:
            self._fail(GatewayConnectionError("the session was closed"))
        self._outgoing.put_nowait(None)
        try:
            await asyncio.wait_for(asyncio.shield(self._writer), 5)
        except (TimeoutError, Exception):  # noqa: BLE001 - closing anyway
            self._writer.cancel()
        await self._ws.close()
        try:
            await asyncio.wait_for(self._reader, 10)
        except (TimeoutError, Exception):  # noqa: BLE001
            self._reader.cancel()

    async def __aenter__(self) -> Session:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    # ------------------------------------------------------------ used by executions

    def _send(self, request: Request) -> None:
        if self._failure is None:
            self._outgoing.put_nowait(encode_request(request))

    def _start(self, execution: Execution) -> None:
        if self._failure is not None:
            execution._finish_local("error", self._failure)
            return
        assert execution.request is not None
        self._executions[execution.id] = execution
        self._send(execution.request)

    def _forget(self, execution_id: str) -> None:
        self._executions.pop(execution_id, None)

    # ------------------------------------------------------------ tasks

    async def _write(self) -> None:
        """The only task that writes to the socket, so requests go out in the order they were made."""
        try:
            while (text := await self._outgoing.get()) is not None:
                await self._ws.send(text)
        except ConnectionClosed:
            pass

    async def _read(self) -> None:
        """The only task that reads: every event goes to its execution, by id."""
        failure: SparkGatewayError | None = None
        try:
            async for frame in self._ws:
                if isinstance(frame, bytes):
                    self._on_binary(frame)
                else:
                    self._on_event(decode_event(frame))
            failure = GatewayConnectionError("the gateway closed the connection")
        except ConnectionClosed as exc:
            failure = GatewayConnectionError(f"connection to the gateway lost: {exc}")
        except GatewayConnectionError as exc:
            failure = exc
            await self._ws.close(code=1002, reason="protocol violation")
        except ProtocolError as exc:
            failure = GatewayConnectionError(f"protocol violation: {exc.message}")
            await self._ws.close(code=1002, reason="protocol violation")
        except Exception as exc:  # noqa: BLE001 - a bad frame ends the session, never silently
            log.exception("cannot read the gateway's frames")
            failure = GatewayConnectionError(f"protocol violation: {type(exc).__name__}: {exc}")
            await self._ws.close(code=1002, reason="protocol violation")
        finally:
            if self._notice is not None and failure is not None and self._failure is None:
                failure = GatewayConnectionError(f"{self._notice.message} ({failure.message})",
                                                 code=self._notice.code)
            self._fail(failure or GatewayConnectionError("the connection ended"))

    def _fail(self, error: SparkGatewayError) -> None:
        if self._failure is None:
            self._failure = error
        for execution in list(self._executions.values()):
            execution._finish_local("error", self._failure)
        self._executions.clear()
        while self._pongs:
            future, _ = self._pongs.popleft()
            if not future.done():
                future.set_exception(self._failure)

    def _check_seq(self, seq: Any) -> None:
        if seq != self._next_seq:
            raise GatewayConnectionError(f"protocol violation: event seq {seq}, expected {self._next_seq}")
        self._next_seq += 1

    def _on_event(self, event: dict[str, Any]) -> None:
        self._check_seq(event.get("seq"))
        rid = event.get("id")
        execution = self._executions.get(rid) if isinstance(rid, str) else None
        if execution is not None:
            execution._on_event(event)
            return
        kind = event["type"]
        if kind == "pong":
            if self._pongs:
                future, sent = self._pongs.popleft()
                if not future.done():
                    future.set_result(time.perf_counter() - sent)
        elif kind == "error":
            if event.get("code") == "shutting_down":
                self._notice = error_from_event(event)
            elif rid is None or event.get("request") == "execute":
                log.warning("gateway error: %s: %s", event.get("code"), event.get("message"))

    def _on_binary(self, frame: bytes) -> None:
        header, payload = decode_arrow_frame(frame)
        self._check_seq(header.get("seq"))
        execution = self._executions.get(header["id"])
        if execution is not None:
            execution._on_arrow(header, payload)


class connect:  # noqa: N801 - used like a function: `async with connect(url) as session`
    """Open a session: ``async with connect(url) as session`` or ``session = await connect(url)``.

    ``url`` is the gateway's websocket address (``ws://host:8765/ws``; ``host:port`` and
    ``http://`` forms are accepted). ``token`` is sent as ``Authorization: Bearer <token>``.
    ``spark_session`` joins the Spark session of another gateway session. Extra keyword
    arguments go to ``websockets.connect`` (e.g. ``ping_interval``). Raises
    :class:`GatewayConnectionError` when the gateway cannot be reached or refuses.
    """

    def __init__(self, url: str = DEFAULT_URL, *, token: str | None = None, spark_session: str | None = None,
                 open_timeout: float = 10.0, compression: bool = False, **ws_options: Any) -> None:
        self.url = normalize_url(url, spark_session)
        self.token = token
        self.open_timeout = open_timeout
        self.compression = compression
        self.ws_options = ws_options
        self._session: Session | None = None

    async def open(self) -> Session:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else None
        try:
            ws = await websockets.connect(
                self.url, subprotocols=[PROTOCOL_VERSION],  # type: ignore[list-item]
                additional_headers=headers, max_size=None, open_timeout=self.open_timeout,
                compression="deflate" if self.compression else None, **self.ws_options)
        except InvalidURI as exc:
            raise ValueError(f"not a websocket URL: {self.url!r} ({exc})") from None
        except InvalidStatus as exc:
            status = exc.response.status_code
            raise GatewayConnectionError(f"the gateway at {self.url} refused the connection: HTTP {status}",
                                         code="unauthorized" if status in (401, 403) else None) from None
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            raise GatewayConnectionError(f"cannot connect to the gateway at {self.url}: "
                                         f"{exc or type(exc).__name__}") from None
        try:
            event = decode_event(await asyncio.wait_for(ws.recv(), self.open_timeout))
        except (ConnectionClosed, TimeoutError, Exception) as exc:  # noqa: BLE001
            await ws.close()
            raise GatewayConnectionError(f"no session from the gateway at {self.url}: {exc}") from None
        if event.get("type") != "session" or event.get("seq") != 1:
            await ws.close()
            if event.get("type") == "error":
                raise error_from_event(event)
            raise GatewayConnectionError(f"expected a session event first, got {event.get('type')!r}")
        return Session(ws, _wire.session_info(event), self.url)

    def __await__(self) -> Generator[Any, None, Session]:
        return self.open().__await__()

    async def __aenter__(self) -> Session:
        self._session = await self.open()
        return self._session

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._session is not None:
            await self._session.close()
