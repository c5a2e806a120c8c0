"""Command line: ``spark-gateway serve`` (also ``python -m gateway serve``)."""

from __future__ import annotations

import argparse
import faulthandler
import signal
import logging
import sys

from . import config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="spark-gateway", description="WebSocket execution gateway for Spark Connect")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the gateway")
    config.add_arguments(serve)
    args = parser.parse_args(argv)
    try:
        settings = config.from_arguments(args)
    except ValueError as exc:
        parser.error(str(exc))
    return run_server(settings)


def run_server(settings: config.Settings) -> int:
    import uvicorn

    from .app import create_app

    # `kill -USR1 <pid>` writes every thread's stack to stderr: how to see what a session waits on.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(settings)
    shown = "localhost" if settings.host in ("127.0.0.1", "0.0.0.0") else settings.host
    print(f"spark-gateway: open http://{shown}:{settings.port}/  (websocket ws://{shown}:{settings.port}/ws)",
          file=sys.stderr, flush=True)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=settings.log_level,
                ws_max_size=16 * 1024 * 1024, ws="websockets-sansio")
    return 0
