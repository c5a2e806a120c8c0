"""Command line: ``spark-gateway serve`` (also ``python -m spark_gateway serve``)."""

from __future__ import annotations

import argparse
import dataclasses
import errno
import faulthandler
import gc
import signal
import socket
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
    commands.add_parser("kernel", help="install the Jupyter kernel (JupyterLab, VS Code, nbclient)", add_help=False)
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["cluster"]:
        from . import cluster

        return cluster.main(argv[1:])
    if argv[:1] and argv[0] in commands.choices and argv[0] != "serve":  # query, kernel: other distributions
        return run_plugin(argv[0], argv[1:])
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
        return EXIT_USAGE
    command = next(iter(found)).load()
    return int(command(argv, prog=f"spark-gateway {name}"))


# Exit codes of ``spark-gateway serve`` (README, "Exit codes"). 3 is uvicorn's own: the app's
# startup failed (Spark could not be started or reached).
EXIT_USAGE = 2
EXIT_CANNOT_LISTEN = 4


def run_server(settings: config.Settings) -> int:
    import shutil

    import uvicorn

    from . import auth, logs
    from .app import create_app
    from .handshake import bounded_http

    if settings.remote is None and shutil.which("java") is None:
        print("spark-gateway: Java 17 is needed to run the embedded Spark Connect server "
              "(Debian: apt-get install -y openjdk-17-jre-headless), or pass --remote sc://host:port",
              file=sys.stderr)
        return EXIT_USAGE
    # The port first, before Spark takes its ten seconds: a busy port fails at once, and the
    # bound sockets go to uvicorn, so nothing can take the port in between.
    try:
        sockets = listen(settings.host, settings.port)
    except OSError as exc:
        print(f"spark-gateway: {cannot_listen(settings.host, settings.port, exc)}", file=sys.stderr)
        return EXIT_CANNOT_LISTEN
    settings = dataclasses.replace(settings, port=sockets[0].getsockname()[1])  # --port 0: the real one
    # `kill -USR1 <pid>` writes every thread's stack to stderr: how to see what a session waits on.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    log_config = logs.configure(settings.log_level, settings.log_format)
    settings, generated = auth.ensure_token(settings)  # non-loopback and no --token: generate one
    app = create_app(settings)
    # Result pages allocate millions of short-lived tuples that never form cycles: a young
    # generation this small makes the collector run every few hundred rows for nothing.
    gc.set_threshold(100_000, 50, 100)
    memory.limit_arenas()
    server = GatewayServer(uvicorn.Config(
        app, host=settings.host, port=settings.port, log_level=settings.log_level, log_config=log_config,
        ws_max_size=16 * 1024 * 1024, ws="websockets-sansio",
        http=bounded_http(settings.handshake_timeout, settings.max_pending_handshakes),
        ws_per_message_deflate=settings.ws_compression, timeout_graceful_shutdown=5,
        ssl_certfile=settings.ssl_certfile, ssl_keyfile=settings.ssl_keyfile))  # both None: plain http
    server.drain_timeout = settings.shutdown_timeout
    server.banner = tuple(auth.banner(settings, generated))  # printed once it serves, never before
    auth.install_log_filters(settings)  # after uvicorn.Config has (re)configured logging
    server.run(sockets=sockets)
    return 0


def listen(host: str, port: int) -> list[socket.socket]:
    """Bound, listening sockets for ``host:port``: one per address the host name has (as uvicorn's own).

    Connections that arrive while Spark starts wait in the backlog and are served once the app
    is ready. With port 0 the first address picks a free port and the others use the same.
    """
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    addresses = dict.fromkeys((family, address[:2]) for family, _, _, _, address in infos)
    sockets: list[socket.socket] = []
    try:
        for family, (ip, _) in addresses:
            chosen = sockets[0].getsockname()[1] if sockets else port
            sockets.append(socket.create_server((ip, chosen), family=family, backlog=2048))
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def cannot_listen(host: str, port: int, exc: OSError) -> str:
    """One line: which port, why, and what to do instead."""
    where = f"port {port} on {host or 'all addresses'}"
    if exc.errno == errno.EADDRINUSE:
        return (f"{where} is already in use by another program; stop it, or pass another --port "
                "(--port 0 picks a free one)")
    if exc.errno == errno.EACCES:
        return (f"not allowed to listen on {where} (ports below 1024 need privileges); pass a port above 1023 "
                "(--port 0 picks a free one)")
    if exc.errno == errno.EADDRNOTAVAIL or isinstance(exc, socket.gaierror):
        return f"cannot listen on {where}: {host!r} is not an address of this machine (--host)"
    return f"cannot listen on {where}: {exc.strerror or exc}"


class GatewayServer(uvicorn_server_base()):  # type: ignore[misc]
    """uvicorn, plus the banner once it listens, and a drain step on SIGTERM (clients are told and
    their work interrupted first)."""

    drain_timeout: float = 15.0
    banner: tuple[str, ...] = ()

    async def startup(self, sockets: list | None = None) -> None:  # type: ignore[type-arg]
        await super().startup(sockets)  # the app's startup (Spark) first, then the listeners serve
        if self.started:
            for line in self.banner:
                print(line, file=sys.stderr, flush=True)

    async def shutdown(self, sockets: list | None = None) -> None:  # type: ignore[type-arg]
        for listener in self.servers:
            listener.close()  # stop accepting before draining
        gateway = getattr(self.config.app.state, "gateway", None)
        if gateway is not None:
            await gateway.drain(self.drain_timeout)
        await super().shutdown(sockets)
