"""Who may open a session: tokens, Origin, Host, and which credential owns which session.

The policy is a handful of pure functions (easy to test, easy to read); ``admit`` and
``guard_http`` apply it to a Starlette websocket / request. SECURITY.md explains the why.

- A token is required when the gateway listens on a non-loopback address, or whenever one
  is configured (``--token``, a comma-separated list: one per user; each is its own credential).
  Loopback without a token stays open, as before, but then the ``Host`` header must name a
  loopback host (DNS rebinding) and browsers must come from the same origin.
- Credentials: ``Authorization: Bearer <token>`` (programs), or ``token.<token>`` as an extra
  entry of ``Sec-WebSocket-Protocol`` (browsers cannot set headers on a websocket). Never a URL
  query parameter: URLs end up in access logs.
- Browsers (they always send ``Origin``) must come from the gateway's own origin or a listed one:
  cross-site websocket hijacking.
- Refusals happen before the upgrade, as HTTP 401 (no valid credential) or 403 (refused origin,
  host, or another credential's session).
- A session belongs to the credential that opened it: ``Owners`` maps session and Spark session
  ids to a credential fingerprint (sha256 of the token, or ``anonymous``).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import re
import secrets
from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

# The value parsers live with the settings they check (config imports nothing from here).
from .config import DEFAULT_PORTS, Settings, parse_allowed_origins, parse_origin, parse_tokens

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.websockets import WebSocket

log = logging.getLogger("spark_gateway.auth")

ANONYMOUS = "anonymous"
SUBPROTOCOL_PREFIX = "token."


# ------------------------------------------------------------------ policy (pure)


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and ``localhost``; anything else (names, 0.0.0.0, ::) is not."""
    host = host.strip().strip("[]").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def token_required(host: str, token: str | None) -> bool:
    """A token is required on a non-loopback address, and whenever one is configured."""
    return token is not None or not is_loopback(host)


def generate_token() -> str:
    """A fresh random token (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def fingerprint(token: str) -> str:
    """What the gateway remembers about a credential: never the token itself."""
    return hashlib.sha256(token.encode()).hexdigest()


def match_token(presented: str | None, accepted: Iterable[str]) -> str | None:
    """The fingerprint of the accepted token equal to ``presented``, else None.

    Constant time: digests of equal length are compared with ``hmac.compare_digest``, against
    every accepted token (no early exit), so neither length nor content leaks through timing.
    """
    if presented is None:
        return None
    digest = hashlib.sha256(presented.encode("utf-8", "surrogateescape")).digest()
    found = None
    for token in accepted:
        expected = hashlib.sha256(token.encode()).digest()
        if hmac.compare_digest(digest, expected):
            found = fingerprint(token)
    return found


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header value."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def subprotocol_token(subprotocols: Iterable[str]) -> str | None:
    """The token of a ``token.<token>`` entry of Sec-WebSocket-Protocol."""
    for entry in subprotocols:
        if entry.startswith(SUBPROTOCOL_PREFIX) and len(entry) > len(SUBPROTOCOL_PREFIX):
            return entry[len(SUBPROTOCOL_PREFIX):]
    return None


def split_host(host_header: str, default_port: int) -> tuple[str, int] | None:
    """(host, port) of a ``Host`` header value, or None when malformed."""
    try:
        parts = urlsplit("//" + host_header.strip())
        if not parts.hostname:
            return None
        return parts.hostname.lower(), parts.port if parts.port is not None else default_port
    except ValueError:
        return None


def origin_allowed(origin: str | None, host_header: str | None,
                   allowed: frozenset[tuple[str, str, int]]) -> bool:
    """Same origin (Origin's host:port equals Host), or a listed origin; no Origin: not a browser."""
    if origin is None:
        return True  # browsers always send Origin on a websocket; programs need not
    try:
        scheme, host, port = parse_origin(origin)
    except ValueError:
        return False  # "null" (file:, sandboxed frames) and garbage
    if (scheme, host, port) in allowed:
        return True
    if host_header is None:
        return False
    return split_host(host_header, DEFAULT_PORTS[scheme]) == (host, port)


def host_is_loopback(host_header: str | None) -> bool:
    """The ``Host`` header names a loopback host (an open gateway answers no other name)."""
    if host_header is None:
        return False
    parsed = split_host(host_header, 0)
    return parsed is not None and is_loopback(parsed[0])


@dataclass(frozen=True)
class Policy:
    """The policy of one gateway, derived once from its settings."""

    required: bool
    tokens: tuple[str, ...]
    allowed_origins: frozenset[tuple[str, str, int]]


@lru_cache(maxsize=8)
def policy(settings: Settings) -> Policy:
    return Policy(required=token_required(settings.host, settings.token), tokens=parse_tokens(settings.token),
                  allowed_origins=parse_allowed_origins(settings.allowed_origins))


def ensure_token(settings: Settings) -> tuple[Settings, str | None]:
    """Settings with a token when one is required and none was given; and that generated token."""
    import dataclasses

    if settings.token is not None or not token_required(settings.host, None):
        return settings, None
    token = generate_token()
    return dataclasses.replace(settings, token=token), token


@dataclass(frozen=True)
class Decision:
    """The outcome for one request: allowed with a credential fingerprint, or refused."""

    status: int  # 0 allowed, else 401 or 403
    credential: str = ANONYMOUS
    reason: str = ""


def decide(pol: Policy, *, headers: dict[str, str], subprotocols: Iterable[str] = (),
           browser_checks: bool = True) -> Decision:
    """Apply the policy to a request's headers (lower-case names)."""
    host_header = headers.get("host")
    if browser_checks and not origin_allowed(headers.get("origin"), host_header, pol.allowed_origins):
        return Decision(403, reason="origin not allowed (see --allowed-origins)")
    if not pol.required:
        if browser_checks and not host_is_loopback(host_header):
            return Decision(403, reason="this gateway has no token and answers loopback host names only")
        return Decision(0, ANONYMOUS)
    presented = bearer_token(headers.get("authorization")) or subprotocol_token(subprotocols)
    credential = match_token(presented, pol.tokens)
    if credential is None:
        return Decision(401, reason="a valid token is required" if presented is None else "invalid token")
    return Decision(0, credential)


# ------------------------------------------------------------------ ownership


class Owners:
    """Which credential owns which id (gateway session ids and Spark session ids alike).

    An id nobody claimed here (a Spark session another replica created) is free: the first
    credential to use it claims it.
    """

    def __init__(self) -> None:
        self._owner: dict[str, str] = {}

    def claim(self, key: str, credential: str) -> None:
        self._owner.setdefault(key, credential)

    def release(self, key: str) -> None:
        self._owner.pop(key, None)

    def owner_of(self, key: str) -> str | None:
        return self._owner.get(key)

    def same_owner(self, key: str, credential: str) -> bool:
        """True when ``credential`` may use ``key``: it owns it, or nobody does yet (attach)."""
        owner = self._owner.get(key)
        return owner is None or hmac.compare_digest(owner, credential)

    def is_owner(self, key: str, credential: str) -> bool:
        """Strict: ``key`` is known and owned by ``credential`` (resume, interrupt by session id)."""
        owner = self._owner.get(key)
        return owner is not None and hmac.compare_digest(owner, credential)

    def __len__(self) -> int:
        return len(self._owner)


def may_attach(owners: Owners, live: Iterable[tuple[str, str]], spark_session_id: str,
               credential: str) -> bool:
    """May ``credential`` attach to ``spark_session_id``? ``live``: (session id, Spark session id) pairs.

    Checks the Spark session's recorded owner and the owner of every live gateway session using
    it now (a session's Spark session id changes when Spark lost it and it starts a new one).
    """
    if not owners.same_owner(spark_session_id, credential):
        return False
    return all(owners.same_owner(sid, credential) for sid, spark_id in live if spark_id == spark_session_id)


# ------------------------------------------------------------------ Starlette side


async def admit(websocket: WebSocket, gateway: Any, attach: str | None,
                resume: str | None = None) -> str | None:
    """Check a websocket before its upgrade: the credential's fingerprint, or None once refused.

    ``gateway`` is the app's ``Gateway`` (settings, owners, sessions). A refusal is an HTTP
    401/403 response when the server supports the websocket denial response extension,
    otherwise a close before accept (uvicorn answers 403).
    """
    pol = policy(gateway.settings)
    if pol.required and not pol.tokens:  # a non-loopback gateway created without a token: fail closed
        decision = Decision(401, reason="this gateway has no token configured")
    else:
        decision = decide(pol, headers=_headers(websocket.scope),
                          subprotocols=websocket.scope.get("subprotocols") or [])
    if decision.status == 0 and attach is not None:
        live = [(life.session.id, life.session.spark_session_id) for life in gateway.sessions.values()]
        if not may_attach(gateway.owners, live, attach, decision.credential):
            decision = Decision(403, reason="this Spark session belongs to another credential")
    if decision.status == 0 and resume is not None and not gateway.owners.same_owner(resume, decision.credential):
        decision = Decision(403, reason="this session belongs to another credential")
    if decision.status == 0:
        return decision.credential
    client = websocket.scope.get("client")
    log.warning("websocket refused with %d from %s: %s", decision.status, client[0] if client else "?",
                decision.reason)
    await _deny(websocket, decision)
    return None


# Set in the connection's task once it was denied with an HTTP response (see QuietDenials).
_denied: ContextVar[bool] = ContextVar("spark_gateway_denied", default=False)


async def _deny(websocket: WebSocket, decision: Decision) -> None:
    from starlette.responses import PlainTextResponse

    if "websocket.http.response" in (websocket.scope.get("extensions") or {}):
        _denied.set(True)
        await websocket.send_denial_response(
            PlainTextResponse(decision.reason + "\n", status_code=decision.status,
                              headers=_challenge(decision)))
    else:
        await websocket.close(code=1008, reason=decision.reason)


def guard_http(request: Request) -> Response | None:
    """For HTTP routes that reveal something (``/metrics``): None when allowed, else a 401."""
    from starlette.responses import PlainTextResponse

    pol = policy(request.app.state.gateway.settings)
    if not pol.required:
        if host_is_loopback(request.headers.get("host")):
            return None
        return PlainTextResponse("this gateway has no token and answers loopback host names only\n",
                                 status_code=403)
    decision = decide(pol, headers=_headers(request.scope), browser_checks=False)
    if pol.tokens and decision.status == 0:
        return None
    return PlainTextResponse("a valid token is required (Authorization: Bearer <token>)\n", status_code=401,
                             headers=_challenge(Decision(401)))


def _headers(scope: Mapping[str, Any]) -> dict[str, str]:
    """Request headers by lower-case name (the last of repeated ones)."""
    return {name.decode("latin-1").lower(): value.decode("latin-1")
            for name, value in scope.get("headers", [])}


def _challenge(decision: Decision) -> dict[str, str]:
    return {"WWW-Authenticate": 'Bearer realm="spark-gateway"'} if decision.status == 401 else {}


# ------------------------------------------------------------------ logs


_TOKEN_IN_URL = re.compile(r"((?:[?&#;]|%3[fF]|%26|%23)token=)[^&\s\"'#]*")


class RedactTokens(logging.Filter):
    """Defence in depth: ``token=...`` in a logged URL (a page opened as ``/?token=``) and the
    configured tokens themselves never reach the log output."""

    def __init__(self, tokens: Iterable[str] = ()) -> None:
        super().__init__()
        self.tokens = tuple(t for t in tokens if t)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken record is the formatter's problem, not ours
            return True
        redacted = _TOKEN_IN_URL.sub(r"\1[redacted]", message)
        for token in self.tokens:
            redacted = redacted.replace(token, "[redacted]")
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


class QuietDenials(logging.Filter):
    """Drop uvicorn's spurious ERROR "ASGI callable returned without completing handshake." after a
    denial response we sent: websockets-sansio never marks that handshake complete (uvicorn 0.54;
    upstream PR Kludex/uvicorn#3138). The record is logged in the denied connection's own task,
    so the ``_denied`` context variable tells exactly those apart from real incomplete handshakes."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (_denied.get() and record.msg == "ASGI callable returned without completing handshake.")


def install_log_filters(settings: Settings) -> None:
    """Install ``RedactTokens`` on the root handlers and uvicorn's loggers, and ``QuietDenials``
    (call after logging is configured: uvicorn.Config reconfigures it)."""
    redactor = RedactTokens(parse_tokens(settings.token))
    names = ("uvicorn", "uvicorn.access", "uvicorn.error")
    targets: list[Any] = list(logging.getLogger().handlers)
    targets += [logging.getLogger(name) for name in names]
    targets += [h for name in names for h in logging.getLogger(name).handlers]
    for target in targets:
        target.addFilter(redactor)
    logging.getLogger("uvicorn.error").addFilter(QuietDenials())


def banner(settings: Settings, generated: str | None) -> list[str]:
    """The lines ``spark-gateway serve`` prints once it serves (the generated token only, Jupyter style).

    ``settings.port`` is the port really bound (with ``--port 0``, the one the system chose).
    """
    shown = "localhost" if settings.host in ("127.0.0.1", "0.0.0.0", "::", "") else settings.host
    if ":" in shown:
        shown = f"[{shown}]"
    tls = settings.ssl_certfile is not None
    base = f"{'https' if tls else 'http'}://{shown}:{settings.port}/"
    ws = f"{'wss' if tls else 'ws'}://{shown}:{settings.port}/ws"
    if generated is not None:
        return [f"spark-gateway: open {base}#token={generated}  (websocket {ws})",
                "spark-gateway: a token was generated for this run; programs send "
                "'Authorization: Bearer <token>' (set your own with --token or SPARK_GATEWAY_TOKEN)"]
    if settings.token is not None:
        return [f"spark-gateway: open {base}#token=<your token>  (websocket {ws}, "
                "'Authorization: Bearer <token>')"]
    return [f"spark-gateway: open {base}  (websocket {ws})"]
