"""Who runs what: the user names of the gateway's credentials, which Spark sees as its ``user_id``.

``--token`` takes comma-separated entries, each ``NAME:SECRET`` or a bare ``SECRET``. A named
secret is that user; bare secrets (and a gateway without tokens) are one default user: the
``user_id`` of the Spark Connect URL when it has one, else :data:`DEFAULT_USER`. Each session's
Spark Connect ``user_id`` is its user's name, so Spark's job tags, UI and logs show who ran a
job, and Spark keys its sessions by (user, session id): two users never share one. Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache

from .spark_url import SparkUrl

DEFAULT_USER = "spark-gateway"
# URL-unreserved characters only, as for secrets: a secret travels in a URL fragment and a
# Sec-WebSocket-Protocol entry without any encoding.
SECRET_CHARS = re.compile(r"[A-Za-z0-9._~-]+")
# A name reaches Spark's job tags and the gateway's metric labels: short, no quoting needed.
NAME_CHARS = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")


@dataclass(frozen=True)
class Credential:
    """One ``--token`` entry: a secret, and the user it names (None: the default user)."""

    secret: str
    name: str | None = None


def parse_credentials(value: str | None) -> tuple[Credential, ...]:
    """The entries of ``--token`` (``NAME:SECRET`` or ``SECRET``, comma-separated); ValueError names no secret."""
    if value is None:
        return ()
    credentials = []
    for number, entry in enumerate((part.strip() for part in value.split(",")), 1):
        name, colon, secret = entry.rpartition(":")
        if colon and not NAME_CHARS.fullmatch(name):
            raise ValueError(f"token: the name of entry {number} must be 1-64 letters, digits or . _ @ - "
                             "(starting with a letter or digit)")
        if not SECRET_CHARS.fullmatch(secret):
            raise ValueError(f"token: entry {number} must be SECRET or NAME:SECRET, the secret non-empty and "
                             "of letters, digits and - . _ ~ only (it travels in a URL and a "
                             "Sec-WebSocket-Protocol header)")
        credentials.append(Credential(secret, name if colon else None))
    names: dict[str, str | None] = {}
    for credential in credentials:
        if names.setdefault(credential.secret, credential.name) != credential.name:
            raise ValueError("token: one secret is given to two users")
    return tuple(credentials)


def default_user(remote: str | None) -> str:
    """The user of bare secrets and of a gateway without tokens: the URL's ``user_id``, else the default."""
    if remote is not None:
        try:
            return SparkUrl.parse(remote).user_id or DEFAULT_USER
        except ValueError:
            pass  # Settings refuses such a URL before anyone asks
    return DEFAULT_USER


@lru_cache(maxsize=8)
def _names(token: str | None, remote: str | None) -> dict[str, str]:
    default = default_user(remote)
    # The fingerprint auth.fingerprint() gives a credential: sha256 of the secret.
    return {hashlib.sha256(c.secret.encode()).hexdigest(): c.name or default for c in parse_credentials(token)}


def user_of(token: str | None, remote: str | None, credential: str) -> str:
    """The user name of an admitted credential (``auth.admit``'s fingerprint, or ``anonymous``)."""
    return _names(token, remote).get(credential) or default_user(remote)


def user_names(token: str | None, remote: str | None) -> list[str]:
    """Every user name the gateway knows, the default one included, sorted."""
    return sorted({default_user(remote), *_names(token, remote).values()})
