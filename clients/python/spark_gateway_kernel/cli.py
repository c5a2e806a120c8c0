"""``spark-gateway kernel install | start`` (also ``python -m spark_gateway_kernel``).

``install`` writes the kernelspec; ``start`` is what the kernelspec runs: the kernel
itself, on the connection file Jupyter gives it.
"""

from __future__ import annotations

import argparse
import os
import sys

from . import kernelspec


def build_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="A Jupyter kernel that runs cells on Spark through "
                                     "spark-gateway (JupyterLab, VS Code, nbclient, papermill)")
    commands = parser.add_subparsers(dest="action", required=True)
    install = commands.add_parser("install", help="write the kernelspec (default: for this user)")
    where = install.add_mutually_exclusive_group()
    where.add_argument("--user", action="store_true", help="for this user (the default)")
    where.add_argument("--sys-prefix", action="store_true", help=f"into this Python's prefix ({sys.prefix})")
    where.add_argument("--prefix", metavar="DIR", help="under DIR/share/jupyter/kernels")
    install.add_argument("--name", default=kernelspec.DEFAULT_NAME,
                         help=f"kernelspec name [{kernelspec.DEFAULT_NAME}]")
    install.add_argument("--display-name", default=kernelspec.DEFAULT_DISPLAY_NAME,
                         help=f"name shown in JupyterLab and VS Code [{kernelspec.DEFAULT_DISPLAY_NAME}]")
    _connection_arguments(install)
    start = commands.add_parser("start", help="run the kernel (what the kernelspec runs)")
    start.add_argument("-f", dest="connection_file", required=True, help="Jupyter's connection file")
    _connection_arguments(start)
    return parser


def _connection_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="the gateway, ws://HOST:PORT/ws [at start: $SPARK_GATEWAY_URL, "
                        "then ws://127.0.0.1:8765/ws]")
    parser.add_argument("--token-env", metavar="VAR", help="environment variable the kernel reads the token "
                        "from when it starts [SPARK_GATEWAY_TOKEN]; the token itself is never written")
    parser.add_argument("--max-rows", type=int, metavar="N", help="rows of a result shown [1000]")


def main(argv: list[str] | None = None, prog: str = "spark-gateway kernel") -> int:
    parser = build_parser(prog)
    args, rest = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    if args.action == "install" and rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    try:
        return install(args) if args.action == "install" else start(args, rest)
    except ModuleNotFoundError as exc:  # the `kernel` extra is not installed
        print(f"{prog}: {exc.name} is missing: pip install 'spark-gateway-client[kernel]'", file=sys.stderr)
        return 2


def install(args: argparse.Namespace) -> int:
    from spark_gateway_client.session import normalize_url

    try:
        content = kernelspec.spec(url=normalize_url(args.url) if args.url else None, token_env=args.token_env,
                                  display_name=args.display_name, max_rows=args.max_rows)
        prefix = sys.prefix if args.sys_prefix else args.prefix
        path = kernelspec.install(content, name=args.name, user=prefix is None, prefix=prefix)
    except (ValueError, OSError) as exc:
        print(f"spark-gateway kernel install: {exc}", file=sys.stderr)
        return 2
    variable = args.token_env or "SPARK_GATEWAY_TOKEN"
    print(f"Installed kernelspec {args.name} ({args.display_name!r}) in {path}")
    print(f"The kernel reads its token from ${variable} when it starts"
          + ("" if os.environ.get(variable) else f" (${variable} is not set here: set it where Jupyter runs, "
             "unless the gateway needs no token)") + ".")
    return 0


def start(args: argparse.Namespace, rest: list[str]) -> int:
    from ipykernel.kernelapp import IPKernelApp
    from traitlets.config import Config

    from .kernel import SparkGatewayKernel

    config = Config()
    for trait, value in (("url", args.url), ("token_env", args.token_env), ("max_rows", args.max_rows)):
        if value is not None:
            config.SparkGatewayKernel[trait] = value
    IPKernelApp.launch_instance(argv=["-f", args.connection_file, *rest], kernel_class=SparkGatewayKernel,
                                config=config)
    return 0
