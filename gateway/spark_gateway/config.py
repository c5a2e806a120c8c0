"""Gateway settings: one table, each a CLI flag and a ``SPARK_GATEWAY_*`` environment variable.

Also the syntax of the values that need more than a type (tokens, origins): :class:`Settings`
refuses a malformed one when it is built, and :mod:`spark_gateway.auth` uses the same parsers
when it applies them.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from urllib.parse import urlsplit

from spark_gateway_protocol.messages import LANGUAGES

from . import users
from .spark_url import SparkUrl

# URL-unreserved characters only: a token must survive a URL (``#token=``) and a
# Sec-WebSocket-Protocol entry (an HTTP "token") without any encoding.
TOKEN_CHARS = users.SECRET_CHARS
DEFAULT_PORTS = {"http": 80, "ws": 80, "https": 443, "wss": 443}


@dataclass(frozen=True)
class Settings:
    """Everything an operator can set. ``remote`` None means: start an embedded Spark."""

    host: str = "127.0.0.1"
    port: int = 8765
    remote: str | None = field(default=None, repr=False)  # may hold a token
    sample_data: bool = False
    languages: tuple[str, ...] = LANGUAGES
    max_message_bytes: int = 1 << 20
    max_page_bytes: int = 1 << 20
    max_queued: int = 100
    max_sessions: int = 200
    resume_grace: int = 120
    replay_buffer_bytes: int = 8 << 20
    idle_timeout: int = 3600
    max_spark_operations: int = 64
    max_downloads: int = 8
    download_link_seconds: int = 300
    driver_memory: str = "2g"
    max_result_size: str = "1g"
    spark_master: str = "local[*]"
    log_level: str = "info"
    log_format: str = "text"
    ws_compression: bool = False
    shutdown_timeout: int = 15
    handshake_timeout: int = 10
    max_pending_handshakes: int = 256
    token: str | None = field(default=None, repr=False)  # never in a repr, hence never in a log
    allowed_origins: tuple[str, ...] = ()
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None

    def __post_init__(self) -> None:
        if self.log_format not in ("text", "json"):
            raise ValueError(f"log_format must be text or json, got {self.log_format!r}")
        for name in ("resume_grace", "replay_buffer_bytes", "idle_timeout"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.max_page_bytes < 1024:
            raise ValueError("max_page_bytes must be >= 1024")
        if self.max_downloads < 1 or self.download_link_seconds < 1:
            raise ValueError("max_downloads and download_link_seconds must be >= 1")
        if self.max_sessions < 1:
            raise ValueError("max_sessions must be >= 1")
        if self.shutdown_timeout < 0:
            raise ValueError("shutdown_timeout must be >= 0 seconds")
        if self.handshake_timeout < 1 or self.max_pending_handshakes < 1:
            raise ValueError("handshake_timeout and max_pending_handshakes must be >= 1")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be 0..65535, got {self.port}")
        if self.remote is not None:
            check_remote(self.remote)
        bad = set(self.languages) - set(LANGUAGES)
        if bad or not self.languages:
            raise ValueError(f"languages must be a non-empty subset of {', '.join(LANGUAGES)}")
        parse_tokens(self.token)
        parse_allowed_origins(self.allowed_origins)
        check_tls(self.ssl_certfile, self.ssl_keyfile)



def parse_tokens(value: str | None) -> tuple[str, ...]:
    """The accepted secrets of ``--token`` (entries ``NAME:SECRET`` or ``SECRET``, comma-separated);
    ValueError when one is malformed. The names: :mod:`spark_gateway.users`."""
    return tuple(credential.secret for credential in users.parse_credentials(value))


def parse_origin(origin: str) -> tuple[str, str, int]:
    """(scheme, host, port) of ``scheme://host[:port]``, default port filled in; ValueError if not one."""
    parts = urlsplit(origin.strip())
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname or parts.path not in ("", "/") \
            or parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(f"not an origin (scheme://host[:port]): {origin!r}")
    port = parts.port if parts.port is not None else DEFAULT_PORTS[scheme]
    return scheme, parts.hostname.lower(), port


def parse_allowed_origins(values: Iterable[str]) -> frozenset[tuple[str, str, int]]:
    """``--allowed-origins`` entries, normalised; ValueError names the bad one."""
    try:
        return frozenset(parse_origin(value) for value in values)
    except ValueError as exc:
        raise ValueError(f"allowed_origins: {exc}") from None


def check_tls(certfile: str | None, keyfile: str | None) -> None:
    """ValueError unless TLS is off, or on with a certificate file and a key file that exist."""
    if (certfile is None) != (keyfile is None):
        raise ValueError("ssl_certfile and ssl_keyfile go together: give both for TLS (https, wss), or neither")
    for name, path in (("ssl_certfile", certfile), ("ssl_keyfile", keyfile)):
        if path is not None and not os.path.isfile(path):
            raise ValueError(f"{name}: no such file: {path}")


def check_remote(remote: str) -> None:
    """ValueError (that never shows the URL: it may hold a token) unless ``remote`` is a usable sc:// URL."""
    try:
        url = SparkUrl.parse(remote)
    except ValueError as exc:
        raise ValueError(f"remote must be a Spark Connect URL ({exc})") from None
    if url.get("session_id") is not None:
        raise ValueError("remote: the gateway chooses a session_id per session; remove it from the URL")


HELP = {
    "host": "address to listen on",
    "port": "port to listen on (0: any free port)",
    "remote": "Spark Connect server URL sc://host:port[/;token=...;use_ssl=true;user_id=...] (also SPARK_REMOTE); "
              "default: start an embedded one",
    "sample_data": "give every session the sample temp views 'consumers' and 'sales'",
    "languages": "comma-separated languages clients may run (sql,python)",
    "max_message_bytes": "largest client message accepted",
    "max_page_bytes": "largest JSON rows frame sent (pages end early to stay under it; a row "
                      "bigger than it goes alone); 1 MiB suits clients with a 1 MiB frame limit",
    "max_queued": "executions a session may have waiting",
    "max_sessions": "sessions open at once (connected or away); more are refused with limit_exceeded",
    "resume_grace": "seconds a session whose connection dropped is kept for its client to resume "
                    "(0: the session ends with its connection)",
    "replay_buffer_bytes": "bytes of sent events each session keeps to replay on a resume",
    "idle_timeout": "seconds after its last execution ended that an idle session is ended "
                    "(0: never); a busy session is never ended",
    "max_spark_operations": "result fetches running at once across the gateway",
    "max_downloads": "whole-result downloads (GET /download) running at once across the gateway; more are "
                     "refused with 429",
    "download_link_seconds": "seconds a signed download link (the download request) stays valid",
    "driver_memory": "embedded Spark driver heap",
    "max_result_size": "embedded Spark spark.driver.maxResultSize",
    "spark_master": "embedded Spark master",
    "log_level": "log level (debug, info, warning, error)",
    "ws_compression": "offer permessage-deflate to clients (less traffic on slow links, much more gateway CPU)",
    "log_format": "log lines as text or json (one JSON object per line, with session and execution ids)",
    "shutdown_timeout": "seconds to let sessions wind down on SIGTERM before closing them",
    "handshake_timeout": "seconds a connection has to send its HTTP request head (the websocket "
                         "upgrade request) before it is closed",
    "max_pending_handshakes": "connections still sending their request head at once; at the limit "
                              "the one waiting longest is closed",
    "token": "access tokens, comma-separated, each NAME:SECRET (a user Spark sees as its user_id) or a bare "
             "SECRET (the default user); required (and generated if absent) when --host is not loopback; "
             "see SECURITY.md",
    "allowed_origins": "comma-separated browser origins (scheme://host[:port]) allowed besides the "
                       "gateway's own",
    "ssl_certfile": "TLS certificate (PEM, the chain after the certificate): serve https and wss",
    "ssl_keyfile": "TLS private key (PEM) of --ssl-certfile",
}


def env_name(name: str) -> str:
    return "SPARK_GATEWAY_" + name.upper()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per setting; defaults come from the environment, then the dataclass."""
    for f in fields(Settings):
        flag = "--" + f.name.replace("_", "-")
        env = env_name(f.name)
        if f.type == "bool":
            parser.add_argument(flag, action="store_true", default=None, help=f"{HELP[f.name]} [{env}]")
        else:
            parser.add_argument(flag, default=None, help=f"{HELP[f.name]} [{env}]")


def from_arguments(args: argparse.Namespace) -> Settings:
    """Settings from parsed flags, the environment and defaults, in that order."""
    values: dict[str, object] = {}
    for f in fields(Settings):
        raw = getattr(args, f.name, None)
        if raw is None:
            raw = os.environ.get(env_name(f.name))
        if raw is None and f.name == "remote":
            raw = os.environ.get("SPARK_REMOTE")  # pyspark's own convention
        if raw is None:
            continue
        values[f.name] = _convert(f.name, f.type, raw)
    return Settings(**values)  # type: ignore[arg-type]


def _convert(name: str, kind: object, raw: object) -> object:
    if isinstance(raw, bool):
        return raw
    text = str(raw)
    try:
        if kind == "int":
            return int(text)
        if kind == "bool":
            return text.lower() in {"1", "true", "yes", "on"}
        if kind == "tuple[str, ...]":
            return tuple(part.strip() for part in text.split(",") if part.strip())
    except ValueError:
        raise ValueError(f"{name}: expected a {kind}, got {text!r}") from None
    return text
