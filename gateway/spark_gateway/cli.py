"""Command line: ``spark-gateway serve`` (also ``python -m spark_gateway serve``)."""

from __future__ import annotations

import argparse
import faulthandler
import gc
import signal
import sys

from . import config, memory


def uvicorn_server_base() -> type:
    import uvicorn

    return uvicorn.Server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="spark-gateway", description="WebSocket execution gateway for Spark Connect")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the gateway")
    config.add_arguments(serve)
    commands.add_parser("cluster", help="a local Spark standalone cluster: up | down | status",
                        add_help=False)
    commands.add_parser("query", help="run SQL or Python through a gateway; print or save the result",
                        add_help=False)
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["cluster"]:
        from . import cluster

        return cluster.main(argv[1:])
    if argv[:1] == ["query"]:
        return run_plugin("query", argv[1:])
    args = parser.parse_args(argv)
    try:
        settings = config.from_arguments(args)
    except ValueError as exc:
        parser.error(str(exc))
    return run_server(settings)


def run_plugin(name: str, argv: list[str]) -> int:
    """Run a command another distribution registers (``query`` comes with spark-gateway-client).

    An entry point, not an import: the server depends on the client's distribution only for the
    protocol package, and its code never imports the client.
    """
    from importlib.metadata import entry_points

    found = entry_points(group="spark_gateway.commands", name=name)
    if not found:
        print(f"spark-gateway: `{name}` comes with the spark-gateway-client package: "
              "pip install spark-gateway-client", file=sys.stderr)
        return 2
    command = next(iter(found)).load()
    return int(command(argv, prog=f"spark-gateway {name}"))


def run_server(settings: config.Settings) -> int:
    import shutil

    import uvicorn

    from . import auth, logs
    from .app import create_app

    if settings.remote is None and shutil.which("java") is None:
        print("spark-gateway: Java 17 is needed to run the embedded Spark Connect server "
              "(Debian: apt-get install -y openjdk-17-jre-headless), or pass --remote sc://host:port",
              file=sys.stderr)
        return 2
    # `kill -USR1 <pid>` writes every thread's stack to stderr: how to see what a session waits on.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    log_config = logs.configure(settings.log_level, settings.log_format)
    settings, generated = auth.ensure_token(settings)  # non-loopback and no --token: generate one
    app = create_app(settings)
    # Result pages allocate millions of short-lived tuples that never form cycles: a young
    # generation this small makes the collector run every few hundred rows for nothing.
    gc.set_threshold(100_000, 50, 100)
    memory.limit_arenas()
    for line in auth.banner(settings, generated):
        print(line, file=sys.stderr, flush=True)
    server = GatewayServer(uvicorn.Config(
        app, host=settings.host, port=settings.port, log_level=settings.log_level, log_config=log_config,
        ws_max_size=16 * 1024 * 1024, ws="websockets-sansio",
        ws_per_message_deflate=settings.ws_compression, timeout_graceful_shutdown=5,
        ssl_certfile=settings.ssl_certfile, ssl_keyfile=settings.ssl_keyfile))  # both None: plain http
    server.drain_timeout = settings.shutdown_timeout
    auth.install_log_filters(settings)  # after uvicorn.Config has (re)configured logging
    server.run()
    return 0


class GatewayServer(uvicorn_server_base()):  # type: ignore[misc]
    """uvicorn, plus a drain step on SIGTERM: clients are told and their work interrupted first."""

    drain_timeout: float = 15.0

    async def shutdown(self, sockets: list | None = None) -> None:  # type: ignore[type-arg]
        for listener in self.servers:
            listener.close()  # stop accepting before draining
        gateway = getattr(self.config.app.state, "gateway", None)
        if gateway is not None:
            await gateway.drain(self.drain_timeout)
        await super().shutdown(sockets)
