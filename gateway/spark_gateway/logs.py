"""Log output as text or JSON lines; session and execution ids ride along as record extras.

The user a session runs as rides along too, from the context (:data:`user`): the gateway sets
it where a session opens, and the session's tasks inherit it, so every record they log says
whose session it is without each call passing it. Records made on other threads (a session's
worker thread, and tasks it starts, begin with an empty context) get it from their session id
(:class:`SessionUsers`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from contextvars import ContextVar

import orjson

_EXTRAS = ("session", "execution")
user: ContextVar[str | None] = ContextVar("spark_gateway_user", default=None)


def _user(record: logging.LogRecord) -> str | None:
    return getattr(record, "user", None) or user.get()


class SessionUsers(logging.Filter):
    """Names the user of a record that has a session id and no user, from ``users`` (session id -> user)."""

    def __init__(self, users: Mapping[str, str]) -> None:
        super().__init__()
        self.users = users

    def filter(self, record: logging.LogRecord) -> bool:
        session = getattr(record, "session", None)
        if _user(record) is None and isinstance(session, str) and (name := self.users.get(session)) is not None:
            record.user = name
        return True


class JsonLines(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, and session/execution when known."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in _EXTRAS:
            if hasattr(record, key):
                out[key] = getattr(record, key)
        if (name := _user(record)) is not None:
            out["user"] = name
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(out).decode()


class Text(logging.Formatter):
    """Plain lines, with ``[session/execution]`` when the record carries them."""

    def format(self, record: logging.LogRecord) -> str:
        ids = "/".join(str(getattr(record, k))[:8] for k in _EXTRAS if hasattr(record, k))
        name = _user(record)
        ids = f"{name}@{ids}" if name is not None and ids else ids or (name or "")
        record.ids = f" [{ids}]" if ids else ""
        return super().format(record)


def configure(level: str, fmt: str) -> dict:
    """Set up the root logger; returns a uvicorn ``log_config`` using the same format."""
    formatter = "spark_gateway.logs.JsonLines" if fmt == "json" else "spark_gateway.logs.Text"
    config = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": {"()": formatter,
                                   "fmt": "%(asctime)s %(levelname)s %(name)s%(ids)s: %(message)s"}},
        "handlers": {"default": {"class": "logging.StreamHandler", "formatter": "default",
                                 "stream": "ext://sys.stderr"}},
        "root": {"handlers": ["default"], "level": level.upper()},
        "loggers": {"uvicorn": {"handlers": [], "propagate": True},
                    "uvicorn.access": {"handlers": [], "propagate": True},
                    "uvicorn.error": {"handlers": [], "propagate": True}},
    }
    logging.config.dictConfig(config)
    return config


import logging.config  # noqa: E402 - after the classes dictConfig refers to by name
