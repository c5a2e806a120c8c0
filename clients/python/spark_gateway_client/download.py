"""Saving a whole result as a file: the gateway streams it over HTTP (``GET /download``).

The session asks for a signed link over its websocket (``download`` → ``download-link``), then
this module GETs it and writes the bytes to ``path`` as they come: the rows never pass through
this process's memory as rows. The file appears only once the gateway completed the response;
a download cut short (the gateway ends the chunked response without its last chunk when Spark
fails mid-way) leaves no file and raises :class:`DownloadFailed`.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import ssl
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from spark_gateway_protocol.messages import DOWNLOAD_FORMATS

from .errors import RequestRefused, SparkGatewayError

__all__ = ["DOWNLOAD_FORMATS", "DownloadFailed", "http_base", "save"]

COPY_BYTES = 1 << 20


class DownloadFailed(SparkGatewayError):
    """The download started but did not complete: no file was written."""


def http_base(ws_url: str) -> str:
    """``ws://host:port/ws?...`` → ``http://host:port`` (wss → https): where ``/download`` is."""
    parts = urllib.parse.urlsplit(ws_url)
    scheme = "https" if parts.scheme == "wss" else "http"
    return f"{scheme}://{parts.netloc}"


def save(url: str, path: str | os.PathLike[str], *, timeout: float = 300.0,
         context: ssl.SSLContext | None = None) -> int:
    """Blocking: GET ``url`` into ``path`` (through ``path.part``, renamed when complete); the bytes written."""
    target = Path(path)
    partial = target.with_name(target.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as response, open(partial, "wb") as out:
            shutil.copyfileobj(response, out, COPY_BYTES)
            size = out.tell()
    except urllib.error.HTTPError as err:
        partial.unlink(missing_ok=True)
        raise _refusal(err) from None
    except (http.client.IncompleteRead, http.client.HTTPException, OSError) as exc:
        partial.unlink(missing_ok=True)
        raise DownloadFailed(f"the download was cut short ({type(exc).__name__}): the gateway logs why; "
                             "no file was written") from None
    os.replace(partial, target)
    return size


def _refusal(err: urllib.error.HTTPError) -> SparkGatewayError:
    """The gateway's typed error body (an ``error`` event), as the client's exception."""
    try:
        body = json.loads(err.read())
        code, message = str(body["code"]), str(body["message"])
    except (ValueError, KeyError, TypeError, OSError):
        code, message = "internal", f"HTTP {err.code}"
    return RequestRefused(f"download refused ({err.code} {code}): {message}", code=code)
