"""The Starlette application: routes, and a lifespan that owns the Spark connection."""

from __future__ import annotations

import gc
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket

from spark_gateway_protocol import PROTOCOL_VERSION, encode_event
from spark_gateway_protocol.errors import ErrorCode
from spark_gateway_protocol.messages import FORMATS, MAX_PAGE_SIZE, Error, SessionInfo

from . import __version__, auth, capture, connection, download, logs, memory, spark, users
from .catalog import Builtins
from .config import Settings
from .lifetime import JoinRefused, Lifetime
from .links import LinkSigner
from .metrics import Metrics
from .outbox import Outbox, ResumeError
from .session import Session, SessionLimits
from .spark_server import EmbeddedSparkServer
from .spark_url import SparkUrl, redact

log = logging.getLogger("spark_gateway")

GC_INTERVAL_SECONDS = 5.0
WEB_DIR = Path(__file__).resolve().parent / "web"  # a link to clients/web in the source tree; package data in the wheel


@dataclass
class Gateway:
    """Shared state of one gateway process (held by the app, not by module globals)."""

    settings: Settings
    spark_url: str = field(repr=False)  # may hold a token: shown only through spark_url_redacted
    spark_version: str | None = None
    spark_ui: str | None = None
    server: EmbeddedSparkServer | None = None
    sessions: dict[str, Lifetime] = field(default_factory=dict)  # attached or away
    task_group: Any = None  # where sessions live: they outlive their connections
    fetch_limiter: anyio.CapacityLimiter | None = None
    metrics: Metrics = field(default_factory=Metrics)
    owners: auth.Owners = field(default_factory=auth.Owners)  # session / Spark session id -> credential
    builtins: Builtins = field(default_factory=lambda: Builtins(spark))  # Spark's functions, keywords: read once
    draining: bool = False
    collect_pending: bool = False  # a garbage collection is scheduled (see _collect_garbage)
    users: dict[str, str] = field(default_factory=dict)  # session id -> the user it runs as
    links: LinkSigner = field(init=False)  # signed download links, with a secret of this process
    downloads_active: int = 0  # GET /download responses streaming now (at most settings.max_downloads)
    _probe: Any = None  # a Spark session kept for /readyz
    _versions_noted: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.links = LinkSigner(self.settings.download_link_seconds)

    def ready(self) -> bool:
        """Blocking: does Spark answer right now? (``GET /readyz``)

        Asks the server each time (one RPC with a short deadline), on a Spark session kept
        for it; a server that restarted has lost that session, so a new one asks at once.
        """
        for _ in range(2):
            if self._probe is None:
                # connected as a session connects: with a session id and a user
                self._probe = spark.connect(self.spark_url, str(uuid.uuid4()), user_id=self.default_user)
            try:
                self.spark_version = spark.ping(self._probe)
                self.note_version()
                return True
            except Exception as exc:  # noqa: BLE001 - not ready, whatever the reason
                if not spark.is_session_gone(exc):
                    return False
                stale, self._probe = self._probe, None
                spark.release_quietly(stale, server_side=False)
        return False

    @property
    def default_user(self) -> str:
        return users.default_user(self.settings.remote)

    @property
    def spark_url_redacted(self) -> str:
        return redact(self.spark_url)

    def spark_url_for(self, user: str) -> str:
        """The sc:// URL a session of ``user`` connects with: Spark sees ``user`` as its user_id."""
        return str(SparkUrl.parse(self.spark_url).with_params(user_id=user))

    def note_version(self) -> None:
        """Warn, once per version, about a Spark Connect server outside the tested range."""
        version = self.spark_version
        if version is None or version in self._versions_noted:
            return
        self._versions_noted.add(version)
        if (warning := spark.untested_server(version)) is not None:
            log.warning("%s", warning)

    def forget_probe(self) -> None:
        """The server was replaced: the next readiness check connects anew."""
        self._probe = None

    async def drain(self, seconds: float) -> None:
        """Graceful shutdown: tell every client, interrupt its work, close with 1001 (within ``seconds``)."""
        self.draining = True
        log.info("draining %d sessions", len(self.sessions))
        with anyio.move_on_after(seconds):
            async with anyio.create_task_group() as tg:
                for life in list(self.sessions.values()):
                    tg.start_soon(life.shutdown, "the gateway is shutting down; running executions are interrupted")

    def render_metrics(self) -> str:
        m = self.metrics
        m.sessions = len(self.sessions)
        m.sessions_away = sum(life.away for life in self.sessions.values())
        counts = [life.session.counts() for life in self.sessions.values()]
        m.queued = sum(q for q, _ in counts)
        m.running = sum(r for _, r in counts)
        m.sessions_by_user = {name: 0 for name in users.user_names(self.settings.token, self.settings.remote)}
        for name in self.users.values():
            m.sessions_by_user[name] = m.sessions_by_user.get(name, 0) + 1
        return m.render()

    def prepare_spark(self, session: Any) -> None:
        """Worker thread, once per new Spark session: the optional sample tables."""
        self.builtins.warm(self.spark_url)  # Spark's functions, for editors: read beside, not on this thread
        if self.settings.sample_data:
            from . import sample_data

            sample_data.install(session)

    def _sample_tables(self) -> list[str]:
        if not self.settings.sample_data:
            return []
        from . import sample_data

        return list(sample_data.TABLES)

    @property
    def limits(self) -> SessionLimits:
        s = self.settings
        return SessionLimits(max_message_bytes=s.max_message_bytes, max_queued=s.max_queued,
                             max_page_size=MAX_PAGE_SIZE, max_page_bytes=s.max_page_bytes,
                             languages=s.languages)

    def session_info(self, session: Session) -> SessionInfo:
        limits = self.limits
        return SessionInfo(
            session_id=session.id, spark_session_id=session.spark_session_id, protocol=PROTOCOL_VERSION,
            gateway_version=__version__,
            spark_version=self.spark_version, languages=list(limits.languages), formats=list(FORMATS),
            limits={"max_message_bytes": limits.max_message_bytes, "max_queued": limits.max_queued,
                    "max_page_size": limits.max_page_size, "max_page_bytes": limits.max_page_bytes,
                    "max_value_chars": limits.max_value_chars,
                    "resume_grace": self.settings.resume_grace,
                    "replay_buffer_bytes": self.settings.replay_buffer_bytes,
                    "idle_timeout": self.settings.idle_timeout,
                    "max_connections": limits.max_connections,
                    "max_connection_lag_bytes": session.outbox.max_lag_bytes},
            spark_ui=self.spark_ui, sample_tables=self._sample_tables())


def start_spark(settings: Settings) -> Gateway:
    """Blocking: start the embedded server when no remote is configured; learn its version."""
    server = None
    url = settings.remote
    ui = None
    if url is None:
        server = EmbeddedSparkServer(master=settings.spark_master, driver_memory=settings.driver_memory,
                                     max_result_size=settings.max_result_size)
        # uvicorn binds the gateway's own port only after this startup: Spark must not take it.
        server.pick_ports(avoid={settings.port})
        log.info("starting the embedded Spark Connect server...")
        url = server.start()
        ui = server.ui_url
        log.info("embedded Spark Connect server at %s (Spark UI %s)", redact(url), ui)
    gateway = Gateway(settings, url, spark_ui=ui, server=server)
    gateway.spark_version = probe_version(url, patience=60.0 if server is not None else 10.0,
                                          user_id=gateway.default_user)
    gateway.note_version()
    return gateway


SPARK_WATCH_SECONDS = 1.0
SPARK_RESTART_BACKOFF_MAX = 60.0


async def supervise_spark(gateway: Gateway) -> None:
    """Restart the embedded Spark Connect server whenever its JVM ends on its own.

    It does when a query's result does not fit the driver's memory (Spark Connect holds a
    partition's Arrow batches at once, and an OutOfMemoryError ends the JVM): without
    this, one such query would leave every session of the gateway without Spark. Sessions
    are told at their next execution (a ``spark_session_reset`` notice saying why).
    """
    server = gateway.server
    assert server is not None
    failures = 0
    while True:
        await anyio.sleep(SPARK_WATCH_SECONDS)
        if server.running():
            continue
        cause = server.death_cause()
        log.error("the embedded Spark Connect server ended (%s; log %s); restarting it", cause, server.log_path)
        for life in list(gateway.sessions.values()):
            life.session.spark_lost(f"the embedded server's JVM ended: {cause}; it was restarted")
        gateway.metrics.spark_restarts += 1
        gateway.forget_probe()
        try:
            await anyio.to_thread.run_sync(server.start)  # the same port: sessions keep their URL
        except Exception as exc:  # noqa: BLE001 - keep trying: the gateway is useless without it
            failures += 1
            log.error("restarting the embedded Spark Connect server failed (%s)", exc)
            await anyio.sleep(min(SPARK_RESTART_BACKOFF_MAX, 2.0**failures))
        else:
            failures = 0
            log.info("embedded Spark Connect server restarted at %s", redact(server.url))


def probe_version(url: str, patience: float, user_id: str | None = None) -> str | None:
    """Blocking: ask the server its version, retrying while a fresh server warms up."""
    deadline = time.monotonic() + patience
    while True:
        try:
            probe = spark.connect(url, str(uuid.uuid4()), user_id=user_id)  # as a session connects
            try:
                return spark.server_version(probe)
            finally:
                spark.release(probe)
        except Exception as exc:  # noqa: BLE001 - the gateway serves anyway; executions will say why
            if time.monotonic() > deadline or spark.is_refused(exc):  # waiting cannot fix a refusal
                log.warning("Spark Connect server %s is not reachable: %s%s", redact(url), spark.failure_text(exc),
                            spark.connection_hint(url))
                return None
            time.sleep(0.5)


def create_app(settings: Settings, gateway: Gateway | None = None) -> Starlette:
    """The ASGI app; pass ``gateway`` to reuse an already started Spark (tests, embedding)."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        capture.install()
        spark.quiet_client_logs()
        owned = gateway is None
        state: Gateway = gateway if gateway is not None else await anyio.to_thread.run_sync(start_spark, settings)
        state.fetch_limiter = anyio.CapacityLimiter(settings.max_spark_operations)
        app.state.gateway = state
        users_filter = logs.SessionUsers(state.users)  # log records from worker threads name their user too
        handlers = list(logging.getLogger().handlers)
        for handler in handlers:
            handler.addFilter(users_filter)
        try:
            async with anyio.create_task_group() as sessions:
                state.task_group = sessions
                if owned and state.server is not None:
                    sessions.start_soon(supervise_spark, state)
                yield
                sessions.cancel_scope.cancel()  # each session still closes itself (shielded)
        finally:
            for handler in handlers:
                handler.removeFilter(users_filter)
            if owned and state.server is not None:
                await anyio.to_thread.run_sync(state.server.stop)

    routes: list[Any] = [
        WebSocketRoute("/ws", websocket_endpoint),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics),
        Route("/download", download.endpoint),
    ]
    if WEB_DIR.is_dir():
        routes.append(Mount("/", StaticFiles(directory=WEB_DIR, html=True), name="web"))
    return Starlette(routes=routes, lifespan=lifespan)


async def websocket_endpoint(websocket: WebSocket) -> None:
    """``/ws``: open a session (``?spark_session=`` to share a Spark session), resume one or join one."""
    gateway: Gateway = websocket.app.state.gateway
    attach = websocket.query_params.get("spark_session")
    resume = websocket.query_params.get("resume")
    join = websocket.query_params.get("join")
    # 401/403 before the upgrade; joining takes the very credential resuming does
    credential = await auth.admit(websocket, gateway, attach, resume if join is None else join)
    if credential is None:
        return
    await websocket.accept(subprotocol=connection.choose_subprotocol(websocket))
    if gateway.draining:
        await _refuse(websocket, ErrorCode.SHUTTING_DOWN, "the gateway is shutting down; try again later",
                      connection.CLOSE_TRY_AGAIN)
        return
    for name, value in (("spark_session", attach), ("resume", resume), ("join", join)):
        if value is not None and not _is_uuid(value):
            await _refuse(websocket, ErrorCode.BAD_MESSAGE, f"query parameter {name} must be a session UUID",
                          connection.CLOSE_REFUSED)
            return
    if join is not None and (resume is not None or attach is not None):
        await _refuse(websocket, ErrorCode.BAD_MESSAGE, "join goes alone: not with resume or spark_session",
                      connection.CLOSE_REFUSED)
        return
    if join is not None:
        await _join(websocket, gateway, join, websocket.query_params.get("last_seq"))
    elif resume is not None:
        await _resume(websocket, gateway, resume, websocket.query_params.get("last_seq"))
    else:
        await _open(websocket, gateway, credential, attach)


async def _open(websocket: WebSocket, gateway: Gateway, credential: str, attach: str | None) -> None:
    """A new session: announce it, start its life in the gateway's task group, serve it."""
    settings = gateway.settings
    if len(gateway.sessions) >= settings.max_sessions:
        await _refuse(websocket, ErrorCode.LIMIT_EXCEEDED,
                      f"the gateway has {len(gateway.sessions)} sessions (max_sessions); try again later",
                      connection.CLOSE_TRY_AGAIN)
        return
    assert gateway.fetch_limiter is not None and gateway.task_group is not None
    outbox = Outbox(gateway.metrics, replay_bytes=settings.replay_buffer_bytes)
    user = users.user_of(settings.token, settings.remote, credential)
    logs.user.set(user)  # the session's tasks inherit it: their log records say whose session it is
    session = Session(spark_url=gateway.spark_url_for(user), outbox=outbox, limits=gateway.limits,
                      fetch_limiter=gateway.fetch_limiter, prepare_namespace=gateway.prepare_spark,
                      spark_session_id=attach, builtins=gateway.builtins, links=gateway.links)
    life = Lifetime(session, credential, grace=settings.resume_grace, idle_timeout=settings.idle_timeout,
                    on_end=lambda: _forget(gateway, session))
    gateway.sessions[session.id] = life
    gateway.users[session.id] = user
    gateway.metrics.sessions_opened_by_user[user] += 1
    gateway.owners.claim(session.id, credential)
    gateway.owners.claim(session.spark_session_id, credential)
    gateway.metrics.sessions_total += 1
    log.info("session opened%s", f" on Spark session {attach}" if attach else "", extra={"session": session.id})
    outbox.put(gateway.session_info(session))
    gateway.task_group.start_soon(life.live)
    await _serve(life, websocket)


async def _resume(websocket: WebSocket, gateway: Gateway, session_id: str, last_seq: str | None) -> None:
    """An existing session, continued on this connection from the client's ``last_seq``."""
    life = gateway.sessions.get(session_id)
    if life is None or life.ending:
        grace = gateway.settings.resume_grace
        await _refuse(websocket, ErrorCode.RESUME_FAILED,
                      f"no session {session_id} to resume: it ended, or it was away longer than the "
                      f"gateway's resume grace period ({grace} s); open a new session", connection.CLOSE_REFUSED)
        return
    if last_seq is None or not last_seq.isdigit():
        await _refuse(websocket, ErrorCode.RESUME_FAILED,
                      "resume needs last_seq: the seq of the last event received (0 for none)",
                      connection.CLOSE_REFUSED)
        return
    gateway.metrics.resumes_total += 1
    logs.user.set(gateway.users.get(session_id))
    await _serve(life, websocket, int(last_seq))


async def _join(websocket: WebSocket, gateway: Gateway, session_id: str, last_seq: str | None) -> None:
    """One more connection on a live session: its state, then its stream from ``last_seq`` (or from now)."""
    life = gateway.sessions.get(session_id)
    if life is None or life.ending:
        await _refuse(websocket, ErrorCode.RESUME_FAILED,
                      f"no session {session_id} to join: it ended, or it was away longer than the gateway's "
                      f"resume grace period ({gateway.settings.resume_grace} s); open a new session",
                      connection.CLOSE_REFUSED)
        return
    if last_seq is not None and not last_seq.isdigit():
        await _refuse(websocket, ErrorCode.RESUME_FAILED,
                      "last_seq must be the seq of the last event received (0 for none), or left out",
                      connection.CLOSE_REFUSED)
        return
    gateway.metrics.joins_total += 1
    logs.user.set(gateway.users.get(session_id))
    await _serve(life, websocket, None if last_seq is None else int(last_seq), join=True)


async def _serve(life: Lifetime, websocket: WebSocket, last_seq: int | None = None, *, join: bool = False) -> None:
    try:
        await life.serve(websocket, last_seq, join=join)
    except JoinRefused as exc:
        await _refuse(websocket, ErrorCode.LIMIT_EXCEEDED, str(exc), connection.CLOSE_REFUSED)
    except ResumeError as exc:
        await _refuse(websocket, ErrorCode.RESUME_FAILED, str(exc), connection.CLOSE_REFUSED)
    except (OSError, RuntimeError):  # the socket died during the handshake: the session is away
        pass


async def _refuse(websocket: WebSocket, code: ErrorCode, message: str, close_code: int) -> None:
    """The connection's only message: a typed error with seq 0 (no session's stream), then close."""
    try:
        await websocket.send_text(str(encode_event(Error(code, message), 0)))
        await websocket.close(code=close_code, reason=code.value)
    except (OSError, RuntimeError):
        pass  # the client is gone already


def _forget(gateway: Gateway, session: Session) -> None:
    """A session ended: it can no longer be resumed, attached to or counted."""
    gateway.sessions.pop(session.id, None)
    gateway.users.pop(session.id, None)
    gateway.owners.release(session.id)
    if session.owns_spark:  # it released its Spark session
        gateway.owners.release(session.spark_session_id)
    if not gateway.collect_pending and gateway.task_group is not None:
        gateway.collect_pending = True
        gateway.task_group.start_soon(_collect_garbage, gateway)


async def _collect_garbage(gateway: Gateway) -> None:
    """Free what ended sessions left in reference cycles (tasks, tracebacks, closures).

    The CLI raises the collector's young-generation threshold for the row hot path, so
    without this a burst of ended sessions would stay in memory until a full collection
    happened to run. At most one collection per ``GC_INTERVAL_SECONDS``.
    """
    await anyio.sleep(GC_INTERVAL_SECONDS)
    gateway.collect_pending = False
    gc.collect()
    await anyio.to_thread.run_sync(memory.trim)  # it walks the whole heap: not on the event loop


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


async def healthz(request: Request) -> Response:
    """The process is up and serving."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Spark answers: 200 when ready, 503 otherwise (also while shutting down)."""
    gateway: Gateway = request.app.state.gateway
    ready = not gateway.draining and await anyio.to_thread.run_sync(gateway.ready)
    body = {"ready": ready, "spark": gateway.spark_url_redacted, "spark_version": gateway.spark_version,
            "draining": gateway.draining}
    return JSONResponse(body, status_code=200 if ready else 503)


async def metrics(request: Request) -> Response:
    if (refusal := auth.guard_http(request)) is not None:
        return refusal
    gateway: Gateway = request.app.state.gateway
    return PlainTextResponse(gateway.render_metrics(), media_type="text/plain; version=0.0.4")
