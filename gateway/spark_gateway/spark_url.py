"""Spark Connect URLs, ``sc://host:port/;key=value;...``: read once, extended without breaking them.

pyspark reads such a URL as a host, a port, an empty path and a list of ``;key=value``
parameters (``token``, ``use_ssl``, ``user_id``, ``user_agent``, ``session_id``; any other key
travels as a gRPC header, e.g. ``x-team=data``). The gateway adds its own parameters
(``session_id``, ``user_id``) to that list, never to the end of the text: ``sc://h:1/;token=t``
plus a session id is ``sc://h:1/;token=t;session_id=...``, not ``sc://h:1/;token=t/;session_id=...``
(which pyspark rejects). Pure: no pyspark, no I/O.

Which channel pyspark builds (``DefaultChannelBuilder.toChannel``, the same in 4.0 to 4.3):

- no ``token`` and no ``use_ssl=true``: plain text;
- ``use_ssl=true``: TLS, and the token (if any) as a bearer header;
- a ``token`` without ``use_ssl``: TLS too, unless the host is literally ``localhost``, where it
  is plain text with gRPC's local credentials. So ``sc://127.0.0.1:15002/;token=t`` attempts a
  TLS handshake with a plain-text server and fails. The gateway extends pyspark's ``localhost``
  rule to every loopback address (see :attr:`SparkUrl.local_token`): traffic that never
  leaves the machine needs no TLS, and ``use_ssl=true`` still asks for it.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, replace
from urllib.parse import quote, unquote

SCHEME = "sc://"
DEFAULT_PORT = 15002  # pyspark's, when the URL names none
REDACTED = "[redacted]"
# pyspark splits ``host:port`` on ":" and parameters on ";" and "=": none may appear in a part.
_KEY = re.compile(r"[A-Za-z0-9_.-]+")


def is_loopback_host(host: str) -> bool:
    """``localhost`` or a loopback IP literal (127.0.0.0/8, ::1): a connection that stays on this machine."""
    host = host.strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _split_address(address: str) -> tuple[str, int | None]:
    """(host, port) of ``host``, ``host:port``, ``[v6]`` or ``[v6]:port``."""
    if address.startswith("["):
        host, bracket, rest = address[1:].partition("]")
        if not host or not bracket or (rest and not rest.startswith(":")):
            raise ValueError("an IPv6 host is written [address] in a Spark Connect URL: sc://[::1]:15002")
        port_text, has_port = rest[1:], bool(rest)
    else:
        host, colon, port_text = address.partition(":")
        has_port = bool(colon)
        if not host or ":" in port_text:
            raise ValueError("a Spark Connect URL names a host and a port: sc://host:port")
    if not has_port:
        return host, None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError("the port of a Spark Connect URL is a number 1..65535")
    return host, int(port_text)


@dataclass(frozen=True)
class SparkUrl:
    """A parsed ``sc://`` URL; ``str()`` gives it back in the form pyspark reads."""

    host: str
    port: int | None = None
    params: tuple[tuple[str, str], ...] = ()  # (key, decoded value), in the URL's order

    @classmethod
    def parse(cls, text: str) -> SparkUrl:
        """Read ``sc://host[:port][/][;key=value]*``; ValueError says what is wrong (never echoing a token)."""
        text = text.strip()
        if not text.startswith(SCHEME):
            raise ValueError("a Spark Connect URL starts with sc:// (sc://host:port/;key=value)")
        rest = text[len(SCHEME):]
        address, _, tail = rest.partition(";")
        address = address.removesuffix("/")
        if "/" in address or "?" in address or "#" in address:
            raise ValueError("a Spark Connect URL has no path: sc://host:port/;key=value")
        host, port = _split_address(address)
        params: list[tuple[str, str]] = []
        for number, part in enumerate(tail.split(";") if tail else (), 1):
            if not part:
                continue  # "sc://h/;;a=b" and a trailing ";": nothing to read
            # A value may hold "=" (base64 padding): pyspark refuses it unescaped, the gateway
            # reads it and passes it on escaped.
            key, eq, value = part.partition("=")
            if not eq or not _KEY.fullmatch(key):  # said without the text: it may be a secret
                raise ValueError(f"parameter {number} of the Spark Connect URL is not key=value "
                                 "(key: letters, digits, - _ .)")
            params.append((key, unquote(value)))
        return cls(host, port, tuple(params))

    def get(self, key: str) -> str | None:
        """The value of ``key`` (the last one when repeated, as pyspark reads it)."""
        found = None
        for k, value in self.params:
            if k == key:
                found = value
        return found

    def with_params(self, **values: str | None) -> SparkUrl:
        """This URL with parameters set (replaced where they are, else added at the end); None removes one."""
        params: list[tuple[str, str]] = []
        for key, value in self.params:
            if key in values:
                if values[key] is None:
                    continue
                value = str(values[key])
            params.append((key, value))
        present = {key for key, _ in self.params}
        params += [(key, value) for key, value in values.items() if value is not None and key not in present]
        return replace(self, params=tuple(params))

    @property
    def token(self) -> str | None:
        return self.get("token")

    @property
    def use_ssl(self) -> bool:
        return (self.get("use_ssl") or "").lower() == "true"

    @property
    def user_id(self) -> str | None:
        return self.get("user_id")

    @property
    def local_token(self) -> bool:
        """A token to a loopback address without ``use_ssl``: plain text with local credentials."""
        return self.token is not None and not self.use_ssl and is_loopback_host(self.host)

    @property
    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"

    def __str__(self) -> str:
        return self._text(reveal=True)

    def redacted(self) -> str:
        """For logs and HTTP answers: the URL with its token (if any) replaced by ``[redacted]``."""
        return self._text(reveal=False)

    def _text(self, *, reveal: bool) -> str:
        address = SCHEME + self.netloc
        if not self.params:
            return address
        parts = [f"{k}={quote(v, safe='') if reveal or k != 'token' else REDACTED}" for k, v in self.params]
        return f"{address}/;" + ";".join(parts)


def redact(url: str) -> str:
    """``url`` without its token, also when it does not parse (then every ``token=`` value is cut)."""
    try:
        return SparkUrl.parse(url).redacted()
    except ValueError:
        return re.sub(r"(token=)[^;]*", rf"\1{REDACTED}", url)
