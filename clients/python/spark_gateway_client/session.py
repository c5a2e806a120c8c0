"""The connection: ``connect()`` opens a websocket session; one reader task demultiplexes events by id.

``connect(url, join=session_id)`` opens one more connection on a live session of the same
credential (docs/protocol.md, "Join"): it starts from the gateway's ``session-state``
snapshot (:attr:`Session.joined_state`) and sees every event of the session from then on.

A session outlives its connection (docs/protocol.md, "Resume"): when the socket drops
without the gateway having ended the session, the session's task reconnects to
``/ws?resume=<session_id>&last_seq=<n>`` with backoff, checks the ``resumed`` frame, and
carries on from the next ``seq``. Requests the gateway may not have received are rebuilt
from the client's own state (executions never accepted, credit, close-result, interrupts,
pings), so running executions and their iterators go on as if nothing happened.

Frames become the protocol's typed events (``decode_event``) and are dispatched with one
``match``; an event type this client does not know (a newer gateway's) is logged and ignored.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import logging
import os
import secrets
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Generator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, TypeVar, assert_never

import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from spark_gateway_protocol import close_codes
from spark_gateway_protocol.codec import UnknownEvent, decode_event, encode_request
from spark_gateway_protocol.errors import ErrorCode, ProtocolError
from spark_gateway_protocol.messages import (
    PROTOCOL_VERSION,
    Accepted,
    ArrowRows,
    Catalog,
    CatalogEntries,
    CloseResult,
    Complete,
    Completions,
    Download,
    DownloadLink,
    Error,
    Event,
    Execute,
    ExecutionInfo,
    Executions,
    Finished,
    Format,
    Inspect,
    Inspection,
    Interrupt,
    Language,
    ListExecutions,
    Lost,
    Ping,
    Pong,
    Progress,
    Request,
    Result,
    ResultClosed,
    Resumed,
    Rows,
    SessionInfo,
    SessionState,
    Started,
    Stderr,
    Stdout,
    StreamRows,
    Units,
    Value,
)

from . import download as _download
from .errors import (
    GatewayConnectionError,
    ResultLost,
    SessionLost,
    SparkGatewayError,
    error_from_event,
)
from .execution import DEFAULT_WINDOW, Execution, ExecutionEvent

log = logging.getLogger("spark_gateway_client")

DEFAULT_URL = "ws://127.0.0.1:8765/ws"

RESUME_FIRST_DELAY = 0.1  # seconds before the first reconnect attempt, doubling...
RESUME_MAX_DELAY = 2.0  # ...up to this
# Reconnect attempts go on this long past the session's resume_grace: the gateway starts
# its grace period when it notices the drop, which can be after the client did.
RESUME_MARGIN = 5.0
LINK_TIMEOUT = 30.0  # seconds a download request waits for its download-link
# Lost events of these types alone do not make an execution's outcome or data incomplete
# (lost rows are judged per result: harmless only for a result being closed).
_HARMLESS_LOSSES = frozenset({Progress.type, Accepted.type, Started.type, Rows.type, ArrowRows.type})

State = Literal["open", "resuming", "closed"]
Dial = Callable[[str], Awaitable[ClientConnection]]
EditorRequest = Complete | Inspect | Catalog | ListExecutions  # answered by one event each
EditorAnswer = Completions | Inspection | CatalogEntries | Executions
_EDITOR_REQUESTS = frozenset({Complete.type, Inspect.type, Catalog.type, ListExecutions.type})
A = TypeVar("A", Completions, Inspection, CatalogEntries, Executions)
JOIN_RETRY_SECONDS = 60.0  # how long a joined session tries to join again after a drop (it knows no grace)


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


def resume_url(url: str, session_id: str, last_seq: int) -> str:
    """``url`` asking to resume ``session_id`` after ``last_seq`` (``spark_session`` dropped)."""
    parts = urllib.parse.urlsplit(url)
    query = [(k, v) for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
             if k not in ("spark_session", "resume", "last_seq")]
    query += [("resume", session_id), ("last_seq", str(last_seq))]
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, urllib.parse.urlencode(query),
                                    parts.fragment))


def join_url(url: str, session_id: str, last_seq: int | None = None) -> str:
    """``url`` asking to join ``session_id`` (after ``last_seq``; None: from now on)."""
    parts = urllib.parse.urlsplit(url)
    query = [(k, v) for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
             if k not in ("spark_session", "resume", "join", "last_seq")]
    query += [("join", session_id)] + ([] if last_seq is None else [("last_seq", str(last_seq))])
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, urllib.parse.urlencode(query),
                                    parts.fragment))


class _Retry(Exception):
    """A reconnect attempt failed in a way a later attempt may not."""


class Session:
    """One gateway session (one Spark session), over one websocket at a time. Build it with :func:`connect`.

    When the connection drops (a network failure, not a close by either side), the session
    resumes on a new connection by itself (``resume=True``, the default of :func:`connect`):
    meanwhile ``state`` is ``"resuming"``; ``resumes`` counts the successful resumes.

    ``attach``, ``send`` and ``detach`` are for its executions (:class:`~._link.SessionLink`).
    """

    def __init__(self, ws: ClientConnection, info: SessionInfo, url: str, *, dial: Dial | None = None,
                 resume: bool = True, resume_timeout: float | None = None, open_timeout: float = 10.0,
                 joined: SessionState | None = None) -> None:
        """``joined``: the connection joined a live session; the ``session-state`` it started with."""
        self.url = url
        self.info = info
        self.joined_state = joined
        # Every connection of a session sees every event: ids of its own keep its answers apart.
        self._nonce = secrets.token_hex(3)
        self._prefix = f"{self._nonce}-" if joined is not None else ""
        self.resumes = 0  # connections this session was resumed on
        self._ws = ws
        self._dial = dial
        self._resume = resume and dial is not None
        self._resume_timeout = resume_timeout
        self._open_timeout = open_timeout
        self._state: State = "open"
        self._executions: dict[str, Execution] = {}
        self._ids = itertools.count(1)
        self._used_ids: set[str] = set()
        self._outgoing: asyncio.Queue[str | None] = asyncio.Queue()
        self._pings = itertools.count(1)
        self._pongs: dict[int, tuple[asyncio.Future[float], float, Any]] = {}  # token → (future, sent, data)
        # Editor requests waiting for their answer (ids of their own space: e1, e2, ...).
        self._editor_ids = itertools.count(1)
        self._answers: dict[str, tuple[asyncio.Future[Any], EditorRequest]] = {}
        self._links: dict[tuple[str, int, str], asyncio.Future[DownloadLink]] = {}  # download requests waiting
        self._resent_editor: set[str] = set()
        self._next_seq = joined.next_seq if joined is not None else 2  # the session event was seq 1
        self._failure: SparkGatewayError | None = None
        self._notice: SparkGatewayError | None = None  # e.g. shutting_down, reported on close
        # What a resume must send again (the gateway may not have received it):
        self._grants: dict[str, dict[int, int]] = {}  # execution id → result → rows granted with stream-rows
        self._interrupts: set[str] = set()  # executions asked to stop
        self._resent: set[str] = set()  # executions whose execute was sent again (duplicate_id expected)
        self._writer: asyncio.Task[None] | None = None
        self._task = asyncio.create_task(self._main(), name="spark-gateway-session")

    def __repr__(self) -> str:
        return f"<Session {self.info.session_id} {self.url} {self.state}>"

    @property
    def closed(self) -> bool:
        return self._failure is not None

    @property
    def state(self) -> State:
        """``"open"``, ``"resuming"`` (the connection dropped; reconnecting) or ``"closed"``."""
        return "closed" if self._failure is not None else self._state

    @property
    def resume_grace(self) -> float:
        """Seconds the gateway keeps this session for a resume after a drop (0: it does not)."""
        value = self.info.limits.get("resume_grace", 0)
        return float(value) if isinstance(value, int | float) else 0.0

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
            id = f"{self._prefix}c{next(self._ids)}"
            while id in self._used_ids:
                id = f"{self._prefix}c{next(self._ids)}"
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
            self.send(Interrupt())

    async def ping(self, data: Any = None) -> float:
        """Round trip to the gateway, in seconds (across a resume, if one happens meanwhile)."""
        if self._failure is not None:
            raise self._failure
        token = next(self._pings)
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._pongs[token] = (future, time.perf_counter(), data)
        self._put(Ping({"ping": token, "from": self._nonce, "data": data}))
        try:
            return await future
        finally:
            self._pongs.pop(token, None)

    async def complete(self, code: str, cursor: int | None = None, *, language: Language = "sql",
                       units: Units = "code_points") -> Completions:
        """Completions at ``cursor`` in ``code`` (default: its end), answered beside running executions.

        ``cursor`` and the answer's ``from_`` / ``to`` count code points (``units="utf-16"``:
        UTF-16 code units). Items replace ``code[from_:to]``, best first. Raises
        :class:`RequestRefused` (``code`` ``timeout``, ``bad_message``, ...) or :class:`QueryError`.
        """
        return await self._ask(Complete(self._editor_id(), code, len(code) if cursor is None else cursor,
                                        language, units), Completions)

    async def inspect(self, code: str, cursor: int | None = None, *, language: Language = "sql",
                      units: Units = "code_points") -> Inspection:
        """What the name at ``cursor`` is: a table's columns, a column's type, a function's signature and doc."""
        return await self._ask(Inspect(self._editor_id(), code, len(code) if cursor is None else cursor,
                                       language, units), Inspection)

    async def catalog(self, path: Sequence[str] = ()) -> CatalogEntries:
        """The catalog's entries under ``path``: ``()`` catalogs, ``(catalog,)`` databases,
        ``(catalog, database)`` tables and views, ``(catalog, database, table)`` columns."""
        return await self._ask(Catalog(self._editor_id(), list(path)), CatalogEntries)

    async def download_link(self, execution: Execution | str, result: int = 0, *, format: str = "parquet") -> str:
        """A signed URL (absolute, no credential in it) that downloads the whole result as a ``format`` file
        for a few minutes: ``csv``, ``parquet`` or ``arrow`` (an Arrow IPC stream)."""
        if self._failure is not None:
            raise self._failure
        rid = execution if isinstance(execution, str) else execution.id
        key = (rid, result, format)
        future = self._links.get(key)
        if future is None:
            future = self._links[key] = asyncio.get_running_loop().create_future()
            self._put(Download(rid, result, format))
        try:
            # Sent again on a resume (the request may have been lost with the connection).
            link = await asyncio.wait_for(asyncio.shield(future), LINK_TIMEOUT)
        except TimeoutError:
            raise GatewayConnectionError(f"no download-link answer within {LINK_TIMEOUT:.0f} s") from None
        finally:
            self._links.pop(key, None)
        return _download.http_base(self.url) + link.url

    async def download(self, execution: Execution | str, result: int = 0, path: str | os.PathLike[str] = "",
                       *, format: str = "parquet") -> Path:
        """Save the whole of one result (running its query again on the gateway) as a file; its path.

        The gateway streams the file (CSV, Parquet with row groups of a million rows, or an Arrow
        IPC stream) straight to ``path`` (default ``result-<id>-<n>.<format>``): nothing is held in
        memory. Raises :class:`RequestRefused` (an unknown result, ...) or
        :class:`~.download.DownloadFailed` (cut short; no file is left).
        """
        url = await self.download_link(execution, result, format=format)
        rid = execution if isinstance(execution, str) else execution.id
        target = Path(path or f"result-{rid}-{result}.{'arrows' if format == 'arrow' else format}")
        await asyncio.to_thread(_download.save, url, target)
        return target

    def _on_download(self, event: DownloadLink | Error) -> None:
        for (rid, result, fmt), future in list(self._links.items()):
            if future.done() or rid != event.id:
                continue
            if isinstance(event, DownloadLink) and (result, fmt) == (event.result, event.format):
                future.set_result(event)
                return
            if isinstance(event, Error):
                future.set_exception(error_from_event(event))
                return

    async def executions(self) -> list[ExecutionInfo]:
        """The session's executions, newest first (every connection's; ended ones as far as the gateway
        remembers them): id, language, code excerpt, status, times, rows per result, error code."""
        return (await self._ask(ListExecutions(self._editor_id()), Executions)).executions

    def _editor_id(self) -> str:
        return f"{self._prefix}e{next(self._editor_ids)}"

    async def _ask(self, request: EditorRequest, answer: type[A]) -> A:
        """Send an editor request and wait for its one answer (sent again after a resume)."""
        if self._failure is not None:
            raise self._failure
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._answers[request.id] = (future, request)
        self._put(request)
        try:
            result = await future
        finally:
            self._answers.pop(request.id, None)
        if not isinstance(result, answer):
            raise GatewayConnectionError(f"protocol violation: {request.type} answered by {result.type!r}")
        return result

    async def close(self) -> None:
        """Close the websocket; the gateway interrupts whatever is still running or queued."""
        if self._failure is None:
            self._fail(GatewayConnectionError("the session was closed"))
        if self._state == "open":
            self._outgoing.put_nowait(None)
            writer = self._writer
            if writer is not None:
                try:
                    await asyncio.wait_for(asyncio.shield(writer), 5)
                except (TimeoutError, Exception):  # noqa: BLE001 - closing anyway
                    writer.cancel()
            await self._ws.close()
        else:  # reconnecting: stop trying (the gateway ends the session after its grace period)
            self._task.cancel()
        await asyncio.wait({self._task}, timeout=10)
        if not self._task.done():
            self._task.cancel()

    async def __aenter__(self) -> Session:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    # ------------------------------------------------------------ for executions (SessionLink)

    def attach(self, execution: Execution, /) -> None:
        """Send the execution's ``execute`` and route the events that answer it to it."""
        if self._failure is not None:
            execution.fail(self._failure)
            return
        assert execution.request is not None
        self._executions[execution.id] = execution
        self.send(execution.request)

    def send(self, request: Request, /) -> None:
        """Send one request, after those sent before it (remembered for a resume)."""
        if self._failure is not None:
            return
        if isinstance(request, StreamRows):
            per_result = self._grants.setdefault(request.id, {})
            per_result[request.result] = per_result.get(request.result, 0) + request.max_rows
        elif isinstance(request, Interrupt):
            if request.id is None:
                self._interrupts.update(self._executions)
            else:
                self._interrupts.add(request.id)
        self._put(request)

    def _put(self, request: Request) -> None:
        if self._failure is None:
            self._outgoing.put_nowait(encode_request(request))

    def detach(self, execution_id: str, /) -> None:
        """The execution has ended: route nothing more to it, send nothing of it again."""
        self._executions.pop(execution_id, None)
        self._grants.pop(execution_id, None)
        self._interrupts.discard(execution_id)

    # ------------------------------------------------------------ the session's task

    async def _main(self) -> None:
        """Serve the connection; after a drop, resume on a new one; fail everything at the end."""
        failure: SparkGatewayError | None = None
        try:
            while True:
                failure = await self._serve(self._ws)
                if failure is not None or self._failure is not None:
                    break
                self._state = "resuming"
                self._ws = await self._reconnect()
                self._state = "open"
        except SparkGatewayError as exc:
            failure = exc
        finally:
            if self._notice is not None and failure is not None and self._failure is None:
                failure = GatewayConnectionError(f"{self._notice.message} ({failure.message})",
                                                 code=self._notice.code)
            self._fail(failure or GatewayConnectionError("the connection ended"))
            self._state = "closed"

    async def _serve(self, ws: ClientConnection) -> SparkGatewayError | None:
        """One connection, until it ends: how it failed, or ``None`` when a resume may repair it."""
        writer = asyncio.create_task(self._write(ws), name="spark-gateway-writer")
        self._writer = writer
        try:
            return await self._read(ws)
        finally:
            if not writer.done():
                writer.cancel()
            await asyncio.wait({writer})
            self._writer = None

    async def _write(self, ws: ClientConnection) -> None:
        """The only task that writes to the socket, so requests go out in the order they were made."""
        try:
            while (text := await self._outgoing.get()) is not None:
                await ws.send(text)
        except ConnectionClosed:
            pass

    async def _read(self, ws: ClientConnection) -> SparkGatewayError | None:
        """Every event goes to its execution, by id, until the connection ends."""
        try:
            while True:
                frame = await ws.recv()
                large = isinstance(frame, str) and len(frame) > LARGE_FRAME
                self._on_event(*(_decode_large(frame) if large else decode_event(frame)))
        except ConnectionClosed as exc:
            return self._after_close(exc)
        except GatewayConnectionError as exc:
            failure = exc
        except ProtocolError as exc:
            failure = GatewayConnectionError(f"protocol violation: {exc.message}")
        except Exception as exc:  # noqa: BLE001 - a bad frame ends the session, never silently
            log.exception("cannot read the gateway's frames")
            failure = GatewayConnectionError(f"protocol violation: {type(exc).__name__}: {exc}")
        await ws.close(code=close_codes.CLOSE_PROTOCOL_ERROR, reason="protocol violation")
        return failure

    def _after_close(self, exc: ConnectionClosed) -> SparkGatewayError | None:
        """How the connection ended: a failure to report, or ``None`` to resume."""
        if self._failure is not None:  # we closed it
            return self._failure
        code = exc.rcvd.code if exc.rcvd is not None else close_codes.CLOSE_ABNORMAL
        reason = exc.rcvd.reason if exc.rcvd is not None else ""
        said = f" ({reason})" if reason else ""
        if code == close_codes.CLOSE_SESSION_ENDED:
            return GatewayConnectionError(f"the gateway ended the session{said}")
        if code == close_codes.CLOSE_GOING_AWAY:
            return GatewayConnectionError(f"the gateway is shutting down{said}")
        if code == close_codes.CLOSE_REFUSED:
            return GatewayConnectionError(f"the gateway closed the connection (policy violation){said}")
        if code == close_codes.CLOSE_TRY_AGAIN:
            return GatewayConnectionError(f"the gateway is busy: try again later{said}")
        if code == close_codes.CLOSE_TAKEN_OVER:
            return GatewayConnectionError("the session was resumed on another connection")
        if self._notice is not None or not self._resume or (self.resume_grace <= 0 and self.joined_state is None):
            return GatewayConnectionError(f"connection to the gateway lost: {exc}")
        log.info("connection to the gateway lost (%s); resuming session %s", exc, self.info.session_id)
        return None

    # ------------------------------------------------------------ resume

    async def _reconnect(self) -> ClientConnection:
        """A new connection on which the session goes on; raises :class:`SessionLost` if none can be had."""
        assert self._dial is not None
        loop = asyncio.get_running_loop()
        timeout = self._resume_timeout if self._resume_timeout is not None else (
            self.resume_grace + RESUME_MARGIN if self.joined_state is None else JOIN_RETRY_SECONDS)
        deadline = loop.time() + timeout
        delay = RESUME_FIRST_DELAY
        attempts = 0
        last = "no attempt"
        sid = self.info.session_id
        while True:
            attempts += 1
            last_seq = self._next_seq - 1
            try:
                again = join_url if self.joined_state is not None else resume_url
                ws = await self._dial(again(self.url, sid, last_seq))
            except GatewayConnectionError as exc:
                if exc.code == "unauthorized":
                    raise SessionLost(f"cannot resume session {sid}: {exc.message}", code=exc.code,
                                      session_id=sid) from None
                last = exc.message
            else:
                try:
                    resumed = await self._handshake(ws, last_seq)
                except _Retry as exc:
                    last = str(exc)
                except BaseException:
                    ws.transport.abort()
                    raise
                else:
                    self._on_resumed(resumed)
                    return ws
            if loop.time() + delay >= deadline:
                raise SessionLost(f"the connection to the gateway was lost and session {sid} could not be "
                                  f"resumed within {timeout:g} s ({attempts} attempts; last: {last})",
                                  session_id=sid)
            log.debug("resume attempt %d failed (%s); next in %.1f s", attempts, last, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RESUME_MAX_DELAY)

    async def _handshake(self, ws: ClientConnection, last_seq: int) -> Resumed:
        """The ``resumed`` frame of a new connection; raises :class:`_Retry` or :class:`SessionLost`."""
        sid = self.info.session_id
        try:
            frame = await asyncio.wait_for(ws.recv(), self._open_timeout)
        except TimeoutError:
            ws.transport.abort()
            raise _Retry("no answer to the resume") from None
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd is not None else close_codes.CLOSE_ABNORMAL
            if code in close_codes.FINAL and code != close_codes.CLOSE_TRY_AGAIN:
                raise SessionLost(f"the gateway refused to resume session {sid} (close code {code})",
                                  session_id=sid) from None
            raise _Retry(f"connection closed during the resume ({code})") from None
        try:
            event, seq = decode_event(frame)
        except ProtocolError as exc:
            await ws.close(code=close_codes.CLOSE_PROTOCOL_ERROR, reason="protocol violation")
            raise SessionLost(f"protocol violation while resuming: {exc}", session_id=sid) from None
        match event:
            case Resumed(session_id=resumed_sid, last_seq=resumed_after, next_seq=int()) \
                    if seq == 0 and resumed_sid == sid and resumed_after == last_seq:
                return event
            case SessionState(session_id=resumed_sid, last_seq=resumed_after) \
                    if seq == 0 and resumed_sid == sid and resumed_after == last_seq:  # joined again
                return Resumed(event.session_id, event.spark_session_id, last_seq, event.next_seq, event.lost,
                               event.credit)
        await ws.close()
        match event:
            case Error(code=ErrorCode.LIMIT_EXCEEDED):
                raise _Retry(event.message)
            case Error():
                raise SessionLost(f"the gateway refused to resume session {sid}: {event.message}",
                                  code=event.code or ErrorCode.RESUME_FAILED, session_id=sid)
            case _:
                raise SessionLost(f"protocol violation: expected a resumed frame, got {event.type!r}",
                                  session_id=sid)

    def _on_resumed(self, resumed: Resumed) -> None:
        """Continue the stream from ``next_seq``, fail what was lost, re-send what may not have arrived."""
        self.resumes += 1
        while not self._outgoing.empty():  # rebuilt below from the client's state
            self._outgoing.get_nowait()
        lost = resumed.lost
        self._next_seq = resumed.next_seq
        log.info("session %s resumed after seq %s%s", self.info.session_id, resumed.last_seq,
                 " with lost events" if lost else "")
        if lost is not None:
            self._on_lost(lost)
        # How far each result still streaming may go, as the gateway counted its credit.
        until = {(c.id, c.result): c.until for c in resumed.credit}
        for execution in list(self._executions.values()):
            request = execution.request
            if request is None:
                continue
            if execution.queue_position is None:  # its `accepted` never came: perhaps never received
                self._resent.add(execution.id)
                self._put(request)
            if execution.id in self._interrupts:
                self._put(Interrupt(execution.id))
            grants = self._grants.get(execution.id, {})
            for stream in execution.result_streams:
                if stream.ended:
                    continue
                if stream.closing:
                    self._put(CloseResult(execution.id, stream.number))
                    continue
                if (execution.id, stream.number) not in until:
                    continue  # it ended on the gateway; its last page is among the replayed events
                # Only credit the gateway never received was lost: grant exactly that again.
                owed = request.page_size + grants.get(stream.number, 0) - until[(execution.id, stream.number)]
                if owed > 0:
                    self._put(StreamRows(execution.id, stream.number, owed))
        for token, (_future, _sent, data) in self._pongs.items():
            self._put(Ping({"ping": token, "from": self._nonce, "data": data}))
        for _future, editor_request in self._answers.values():  # the gateway may not have received it
            self._resent_editor.add(editor_request.id)
            self._put(editor_request)
        for (rid, result, fmt), link in self._links.items():  # a download request may not have arrived either
            if not link.done():
                self._put(Download(rid, result, fmt))  # asking twice is harmless: the second link is ignored

    def _on_lost(self, lost: Lost) -> None:
        """Events left the gateway's replay buffer before the resume: fail the executions they belonged to."""
        from_seq, to_seq = lost.from_seq, lost.to_seq
        log.warning("session %s resumed with events %d..%d lost (beyond the gateway's replay buffer)",
                    self.info.session_id, from_seq, to_seq)
        for item in lost.executions:
            rid, messages, results = item.id, item.messages, item.results
            execution = self._executions.get(rid) if rid is not None else None
            if execution is None:
                log.warning("lost events of %s: %s", f"execution {rid!r}" if rid else "the session", messages)
                continue
            streams = {s.number: s for s in execution.result_streams}
            harmful = any(kind not in _HARMLESS_LOSSES for kind in messages) or any(
                r.result not in streams or not streams[r.result].closing for r in results)
            if not harmful:
                log.info("lost events of execution %r did not matter: %s", rid, messages)
                continue
            what = ", ".join(f"{n} {kind}" for kind, n in sorted(messages.items()))
            rows = "; ".join(f"result {r.result} rows [{r.from_offset}, {r.to_offset})" for r in results)
            error = ResultLost(
                f"execution {rid!r}: events {from_seq}..{to_seq} of the session were lost while the "
                f"connection was down (they had left the gateway's replay buffer): {what}"
                + (f"; missing {rows}" if rows else ""),
                from_seq=from_seq, to_seq=to_seq, messages=messages, results=results,
                execution_id=rid, result=results[0].result if results else None)
            self._put(Interrupt(rid))  # it cannot be shown whole: stop it and release its results
            execution.fail(error)

    # ------------------------------------------------------------ events

    def _fail(self, error: SparkGatewayError) -> None:
        if self._failure is None:
            self._failure = error
        for execution in list(self._executions.values()):
            execution.fail(self._failure)
        self._executions.clear()
        for future, _sent, _data in list(self._pongs.values()):
            if not future.done():
                future.set_exception(self._failure)
        for answer, _request in list(self._answers.values()):
            if not answer.done():
                answer.set_exception(self._failure)
        for link in list(self._links.values()):
            if not link.done():
                link.set_exception(self._failure)

    def _check_seq(self, seq: int) -> None:
        if seq != self._next_seq:
            raise GatewayConnectionError(f"protocol violation: event seq {seq}, expected {self._next_seq}")
        self._next_seq += 1

    def _on_event(self, event: Event | UnknownEvent, seq: int) -> None:
        """The one dispatch of the gateway's events: an execution's go to it, by id."""
        if seq == 0:  # about the connection, not part of the session's stream
            log.warning("gateway: %s", event.message if isinstance(event, Error) else event.type)
            return
        self._check_seq(seq)
        match event:
            case Error(code=ErrorCode.DUPLICATE_ID, id=str(rid)) if rid in self._resent:
                self._resent.discard(rid)  # the execute sent again on a resume had arrived the first time
            case Pong(data=data):
                self._on_pong(data)
            case Completions() | Inspection() | CatalogEntries() | Executions():
                self._on_answer(event.id, event)
            case DownloadLink() | Error(request=Download.type):
                self._on_download(event)
            case Error(request=str(kind), id=str(rid)) if kind in _EDITOR_REQUESTS:
                self._on_editor_error(rid, event)
            case SessionInfo() | Resumed() | SessionState():  # they open a connection, never come later
                log.warning("ignored a %r event in the middle of the session's stream", event.type)
            case (Accepted() | Started() | Progress() | Stdout() | Stderr() | Result() | Rows() | ArrowRows()
                  | ResultClosed() | Value() | Error() | Finished()):
                self._on_execution_event(event)
            case UnknownEvent(type=kind):  # a newer gateway's: new event types are how the protocol grows
                log.warning("ignored an event of unknown type %r (from a newer gateway?)", kind)
            case _:
                assert_never(event)

    def _on_execution_event(self, event: ExecutionEvent) -> None:
        execution = self._executions.get(event.id) if event.id is not None else None
        if execution is not None:
            execution.receive(event)
            return
        match event:  # an event of no execution running here
            case Accepted(id=rid, attached=True):  # a retry of one that ended here: the gateway ran nothing
                self._resent.discard(rid)
            case Accepted(id=rid) if rid in self._resent:
                self._put(Interrupt(rid))  # sent again for an execution given up meanwhile: stop it
            case Error(code=ErrorCode.SHUTTING_DOWN | ErrorCode.IDLE_TIMEOUT):
                self._notice = error_from_event(event)
            case Error(id=None) | Error(request=Execute.type):
                log.warning("gateway error: %s: %s", event.code, event.message)
            case _:
                pass  # the rest of an execution that ended here first (interrupted, or failed on a resume)

    def _on_answer(self, rid: str, answer: EditorAnswer | SparkGatewayError) -> None:
        entry = self._answers.get(rid)
        if entry is None or entry[0].done():
            return  # answered already (a request sent again on a resume is answered twice)
        self._resent_editor.discard(rid)
        if isinstance(answer, SparkGatewayError):
            entry[0].set_exception(answer)
        else:
            entry[0].set_result(answer)

    def _on_editor_error(self, rid: str, event: Error) -> None:
        if event.code == ErrorCode.DUPLICATE_ID and rid in self._resent_editor:
            self._resent_editor.discard(rid)  # sent again on a resume, but it had arrived: its answer comes
            return
        self._on_answer(rid, error_from_event(event))

    def _on_pong(self, data: Any) -> None:
        mine = isinstance(data, dict) and data.get("from") == self._nonce  # every connection sees every pong
        token = data.get("ping") if mine else None
        entry = self._pongs.get(token) if isinstance(token, int) else None
        if entry is not None and not entry[0].done():
            entry[0].set_result(time.perf_counter() - entry[1])


class connect:  # noqa: N801 - used like a function: `async with connect(url) as session`
    """Open a session: ``async with connect(url) as session`` or ``session = await connect(url)``.

    ``url`` is the gateway's websocket address (``ws://host:8765/ws``; ``host:port`` and
    ``http://`` forms are accepted). ``token`` is sent as ``Authorization: Bearer <token>``.
    ``spark_session`` joins the Spark session of another gateway session. ``join`` opens one
    more connection on the live gateway session with that id (same credential): it sees every
    event of the session from now on, and may run, page and interrupt like the first one. ``resume``
    (default on): when the connection drops, reconnect and resume the session, for up to
    ``resume_timeout`` seconds (default: the gateway's ``resume_grace`` plus a few
    seconds). Extra keyword arguments go to ``websockets.connect`` (e.g. ``ping_interval``).
    Raises :class:`GatewayConnectionError` when the gateway cannot be reached or refuses.
    """

    def __init__(self, url: str = DEFAULT_URL, *, token: str | None = None, spark_session: str | None = None,
                 open_timeout: float = 10.0, compression: bool = False, resume: bool = True,
                 resume_timeout: float | None = None, join: str | None = None, **ws_options: Any) -> None:
        if join is not None and spark_session is not None:
            raise ValueError("join and spark_session exclude each other")
        self.url = normalize_url(url, spark_session)
        self.join = join
        self.token = token
        self.open_timeout = open_timeout
        self.compression = compression
        self.resume = resume
        self.resume_timeout = resume_timeout
        self.ws_options = ws_options
        self._session: Session | None = None

    async def _dial(self, url: str) -> ClientConnection:
        """A websocket to ``url`` with this session's credential and options."""
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else None
        try:
            return await websockets.connect(
                url, subprotocols=[PROTOCOL_VERSION],  # type: ignore[list-item]
                additional_headers=headers, max_size=None, open_timeout=self.open_timeout,
                compression="deflate" if self.compression else None, **self.ws_options)
        except InvalidURI as exc:
            raise ValueError(f"not a websocket URL: {self.url!r} ({exc})") from None
        except InvalidStatus as exc:
            status = exc.response.status_code
            raise GatewayConnectionError(f"the gateway at {self.url} refused the connection: HTTP {status}",
                                         code="unauthorized" if status in (401, 403) else None) from None
        except (OSError, InvalidHandshake, TimeoutError, EOFError) as exc:
            raise GatewayConnectionError(f"cannot connect to the gateway at {self.url}: "
                                         f"{exc or type(exc).__name__}") from None

    async def open(self) -> Session:
        ws = await self._dial(self.url if self.join is None else join_url(self.url, self.join))
        try:
            event, seq = decode_event(await asyncio.wait_for(ws.recv(), self.open_timeout))
        except (ConnectionClosed, TimeoutError, Exception) as exc:  # noqa: BLE001
            await ws.close()
            raise GatewayConnectionError(f"no session from the gateway at {self.url}: {exc}") from None
        match event:
            case SessionInfo() if seq == 1 and self.join is None:
                return Session(ws, event, self.url, dial=self._dial, resume=self.resume,
                               resume_timeout=self.resume_timeout, open_timeout=self.open_timeout)
            case SessionState() if seq == 0 and self.join is not None:
                info = SessionInfo(event.session_id, event.spark_session_id, PROTOCOL_VERSION, "", None, [], [], {})
                return Session(ws, info, self.url, dial=self._dial, resume=self.resume,
                               resume_timeout=self.resume_timeout, open_timeout=self.open_timeout, joined=event)
        await ws.close()
        if isinstance(event, Error):
            raise error_from_event(event)
        raise GatewayConnectionError(f"expected a session event first, got {event.type!r}")

    def __await__(self) -> Generator[Any, None, Session]:
        return self.open().__await__()

    async def __aenter__(self) -> Session:
        self._session = await self.open()
        return self._session

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._session is not None:
            await self._session.close()


LARGE_FRAME = 64 * 1024  # a rows page, typically: thousands of small objects at once


def _decode_large(frame: str | bytes) -> tuple[Event | UnknownEvent, int]:
    """Parse a big page with the cyclic GC paused: its rows are lists of scalars that never
    form cycles, yet allocating them triggers collections that cost 4x the parse itself."""
    if not gc.isenabled():
        return decode_event(frame)
    gc.disable()
    try:
        return decode_event(frame)
    finally:
        gc.enable()

