"""Signed download links: a URL that downloads one result for a few minutes, with no credential in it.

A browser cannot put ``Authorization`` on a plain navigation (``<a href download>``), and a
token must never travel in a URL (URLs end up in access logs and browser history). So a
client that holds the credential asks for a link over its websocket (``download``), and the
gateway answers with ``/download?...&expires=<unix time>&sig=<HMAC>``: an HMAC-SHA256 over
every parameter, made with a random secret of this gateway process. The link names one
session, execution, result and format; it expires after ``download_link_seconds`` (a link
seen in a log later is useless); it dies with the process (a restarted gateway has no
sessions to download from anyway). Pure: no I/O beyond the clock given to it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from urllib.parse import urlencode

DOWNLOAD_PATH = "/download"


@dataclass(frozen=True)
class Target:
    """What a download is of: one result of one execution of one session, in one file format."""

    session: str
    execution: str
    result: int
    format: str


class LinkCheck(Enum):
    """The verdict on a signed link."""

    VALID = "valid"
    EXPIRED = "expired"
    FORGED = "forged"  # the signature does not match (altered parameters, another gateway's link)


class LinkSigner:
    """Makes and checks signed links with a secret that never leaves this process."""

    def __init__(self, seconds: int, secret: bytes | None = None, clock: Callable[[], float] = time.time) -> None:
        self.seconds = seconds
        self._secret = secret if secret is not None else secrets.token_bytes(32)
        self._clock = clock

    def url(self, target: Target) -> str:
        """The path and query of a link to ``target``, valid for ``self.seconds`` from now."""
        expires = int(self._clock()) + self.seconds
        params = {"session": target.session, "execution": target.execution, "result": str(target.result),
                  "format": target.format, "expires": str(expires)}
        params["sig"] = self._sign(target, expires)
        return f"{DOWNLOAD_PATH}?{urlencode(params)}"

    def check(self, target: Target, expires: str | None, sig: str | None) -> LinkCheck:
        """Is ``sig`` this gateway's signature of ``target`` until ``expires``, and is that still ahead?

        The signature is checked first and in constant time: an expired link is only called
        expired when it is genuine (a forged one learns nothing about the clock).
        """
        if expires is None or sig is None or not expires.isdigit() or len(expires) > 12:
            return LinkCheck.FORGED
        if not hmac.compare_digest(self._sign(target, int(expires)).encode(), sig.encode("utf-8", "replace")):
            return LinkCheck.FORGED
        return LinkCheck.VALID if int(expires) > self._clock() else LinkCheck.EXPIRED

    def _sign(self, target: Target, expires: int) -> str:
        # Newlines cannot occur in the parameters' values as used (ids are checked before)
        # but the separator is unambiguous anyway: each field is length-prefixed.
        fields = (target.session, target.execution, str(target.result), target.format, str(expires))
        message = "".join(f"{len(f)}:{f}" for f in fields).encode("utf-8", "surrogateescape")
        digest = hmac.new(self._secret, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def is_signed(query: Mapping[str, str]) -> bool:
    """The request carries a signed link's parameters (else it must carry a credential)."""
    return "sig" in query or "expires" in query
