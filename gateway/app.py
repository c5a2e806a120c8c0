"""The Starlette application: routes, and a lifespan that owns the Spark connection."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket

from protocol import PROTOCOL_VERSION
from protocol.messages import FORMATS, MAX_PAGE_SIZE, SessionInfo

from . import __version__, capture, connection, spark
from .config import Settings
from .outbox import Outbox
from .session import Session, SessionLimits
from .spark_server import EmbeddedSparkServer

log = logging.getLogger("spark_gateway")

WEB_DIR = Path(__file__).resolve().parent.parent / "clients" / "web"


@dataclass
class Gateway:
    """Shared state of one gateway process (held by the app, not by module globals)."""

    settings: Settings
    spark_url: str
    spark_version: str | None = None
    spark_ui: str | None = None
    server: EmbeddedSparkServer | None = None
    sessions: dict[str, Session] = field(default_factory=dict)
    fetch_limiter: anyio.CapacityLimiter | None = None

    def prepare_spark(self, session: Any) -> None:
        """Worker thread, once per new Spark session: the optional sample tables."""
        if self.settings.sample_data:
            from . import sample_data

            sample_data.install(session)

    @property
    def limits(self) -> SessionLimits:
        s = self.settings
        return SessionLimits(max_message_bytes=s.max_message_bytes, max_queued=s.max_queued,
                             max_page_size=MAX_PAGE_SIZE, languages=s.languages)

    def session_info(self, session: Session) -> SessionInfo:
        limits = self.limits
        return SessionInfo(
            session_id=session.id, protocol=PROTOCOL_VERSION, gateway_version=__version__,
            spark_version=self.spark_version, languages=list(limits.languages), formats=["json"],
            limits={"max_message_bytes": limits.max_message_bytes, "max_queued": limits.max_queued,
                    "max_page_size": limits.max_page_size},
            spark_ui=self.spark_ui)


def start_spark(settings: Settings) -> Gateway:
    """Blocking: start the embedded server when no remote is configured; learn its version."""
    server = None
    url = settings.remote
    ui = None
    if url is None:
        server = EmbeddedSparkServer(master=settings.spark_master, driver_memory=settings.driver_memory,
                                     max_result_size=settings.max_result_size)
        log.info("starting the embedded Spark Connect server...")
        url = server.start()
        ui = server.ui_url
        log.info("embedded Spark Connect server at %s (Spark UI %s)", url, ui)
    gateway = Gateway(settings, url, spark_ui=ui, server=server)
    gateway.spark_version = probe_version(url, patience=60.0 if server is not None else 10.0)
    return gateway


def probe_version(url: str, patience: float) -> str | None:
    """Blocking: ask the server its version, retrying while a fresh server warms up."""
    deadline = time.monotonic() + patience
    while True:
        try:
            probe = spark.connect(url)
            try:
                return spark.server_version(probe)
            finally:
                spark.release(probe)
        except Exception as exc:  # noqa: BLE001 - the gateway serves anyway; executions will say why
            if time.monotonic() > deadline:
                log.warning("Spark Connect server %s is not reachable: %s", url, exc)
                return None
            time.sleep(0.5)


def create_app(settings: Settings, gateway: Gateway | None = None) -> Starlette:
    """The ASGI app; pass ``gateway`` to reuse an already started Spark (tests, embedding)."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        capture.install()
        spark.quiet_client_logs()
        owned = gateway is None
        state = gateway or await anyio.to_thread.run_sync(start_spark, settings)
        state.fetch_limiter = anyio.CapacityLimiter(settings.max_spark_operations)
        app.state.gateway = state
        try:
            yield
        finally:
            if owned and state.server is not None:
                await anyio.to_thread.run_sync(state.server.stop)

    routes: list[Any] = [
        WebSocketRoute("/ws", websocket_endpoint),
        Route("/healthz", healthz),
    ]
    if WEB_DIR.is_dir():
        routes.append(Mount("/", StaticFiles(directory=WEB_DIR, html=True), name="web"))
    return Starlette(routes=routes, lifespan=lifespan)


async def websocket_endpoint(websocket: WebSocket) -> None:
    gateway: Gateway = websocket.app.state.gateway
    await websocket.accept(subprotocol=connection.choose_subprotocol(websocket))
    assert gateway.fetch_limiter is not None
    outbox = Outbox()
    session = Session(spark_url=gateway.spark_url, outbox=outbox, limits=gateway.limits,
                      fetch_limiter=gateway.fetch_limiter, prepare_namespace=gateway.prepare_spark)
    gateway.sessions[session.id] = session
    outbox.put(gateway.session_info(session))
    try:
        await connection.serve(websocket, session)
    finally:
        gateway.sessions.pop(session.id, None)


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})
