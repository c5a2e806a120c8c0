"""Turn client frames into requests and events into frames; the only place JSON is read or written.

``decode_request`` raises nothing but :class:`ProtocolError`. ``encode_event`` stamps
the session ``seq`` on each event as it is written.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson

from .errors import ErrorCode, ProtocolError
from .messages import REQUEST_TYPES, ArrowRows, Event, Request, Rows, field_names

DEFAULT_MAX_MESSAGE_BYTES = 1 << 20

_REQUEST_FIELDS = {name: set(field_names(cls)) for name, cls in REQUEST_TYPES.items()}


def decode_request(frame: str | bytes, max_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> Request:
    """Parse and validate one client text frame."""
    size = len(frame)
    if isinstance(frame, str) and size * 4 > max_bytes:  # only then can UTF-8 bytes exceed it
        size = len(frame.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise ProtocolError(
            ErrorCode.MESSAGE_TOO_LARGE,
            f"message of {size} bytes exceeds the limit of {max_bytes} bytes",
        )
    try:
        obj = orjson.loads(frame)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError(ErrorCode.BAD_MESSAGE, f"not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise ProtocolError(ErrorCode.BAD_MESSAGE, "a message must be a JSON object")
    return request_from_dict(obj)


def request_from_dict(obj: dict[str, Any]) -> Request:
    """Build the request a decoded JSON object describes."""
    rid = obj.get("id") if isinstance(obj.get("id"), str) else None
    kind = obj.get("type")
    if not isinstance(kind, str):
        raise ProtocolError(
            ErrorCode.BAD_MESSAGE, "field 'type' must be a string", request_id=rid
        )
    cls = REQUEST_TYPES.get(kind)
    if cls is None:
        known = ", ".join(sorted(REQUEST_TYPES))
        raise ProtocolError(
            ErrorCode.UNKNOWN_TYPE,
            f"unknown message type {kind!r}; expected one of {known}",
            request_id=rid,
            request_type=kind,
        )
    args = {k: v for k, v in obj.items() if k != "type"}
    unknown = sorted(set(args) - _REQUEST_FIELDS[kind])
    if unknown:
        raise ProtocolError(
            ErrorCode.BAD_MESSAGE,
            f"{kind}: unknown field(s) {', '.join(repr(u) for u in unknown)}",
            request_id=rid,
            request_type=kind,
        )
    try:
        return cls(**args)
    except TypeError:
        required = [
            f.name
            for f in dataclasses.fields(cls)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        ]
        missing = [name for name in required if name not in args]
        raise ProtocolError(
            ErrorCode.BAD_MESSAGE,
            f"{kind}: missing field(s) {', '.join(repr(m) for m in missing)}",
            request_id=rid,
            request_type=kind,
        ) from None


def event_to_dict(event: Event, seq: int) -> dict[str, Any]:
    """The wire form of an event: its fields plus ``type`` and ``seq``."""
    if type(event) is Rows:
        return _rows_dict(event, seq)
    out: dict[str, Any] = {"type": event.type, "seq": seq}
    for f in dataclasses.fields(event):
        value = getattr(event, f.name)
        if isinstance(value, list) and value and dataclasses.is_dataclass(value[0]):
            value = [dataclasses.asdict(v) for v in value]
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            value = dataclasses.asdict(value)
        out[f.name] = value
    return out


def encode_event(event: Event, seq: int) -> str | bytes:
    """Serialise one event as a websocket frame: text, or bytes for ``arrow-rows``."""
    if type(event) is ArrowRows:
        return encode_arrow_frame(event, seq)
    if type(event) is Rows:
        return orjson.dumps(_rows_dict(event, seq)).decode()  # the hot path: no generic field walk
    wire = event_to_dict(event, seq)
    try:
        return orjson.dumps(wire).decode()
    except TypeError:
        # orjson refuses text with lone surrogates (bytes decoded with surrogateescape, such
        # as file names, then printed or raised). Write those as \udcxx escapes: visible,
        # and never a frame that is not UTF-8. Any other TypeError raises again.
        return orjson.dumps(_without_surrogates(wire)).decode()


def _rows_dict(event: Rows, seq: int) -> dict[str, Any]:
    """A page's wire form: ``rows``, or ``count`` and ``columns``, as its layout says."""
    if event.columns is None:
        return {"type": "rows", "seq": seq, "id": event.id, "result": event.result, "offset": event.offset,
                "rows": event.rows, "last": event.last, "truncated": event.truncated}
    return {"type": "rows", "seq": seq, "id": event.id, "result": event.result, "offset": event.offset,
            "count": event.count, "columns": event.columns, "last": event.last, "truncated": event.truncated}


def _without_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {k: _without_surrogates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_surrogates(v) for v in value]
    return value


def encode_arrow_frame(event: ArrowRows, seq: int) -> bytes:
    """[4-byte big-endian header length][JSON header][Arrow IPC bytes] (docs/protocol.md)."""
    header = orjson.dumps(
        {
            "type": "arrow-rows",
            "seq": seq,
            "id": event.id,
            "result": event.result,
            "offset": event.offset,
            "count": event.count,
            "last": event.last,
            "truncated": event.truncated,
        }
    )
    return len(header).to_bytes(4, "big") + header + event.payload


def decode_arrow_frame(frame: bytes) -> tuple[dict[str, Any], memoryview]:
    """Split a binary frame into its ``arrow-rows`` header and its Arrow IPC payload."""
    if len(frame) < 4:
        raise ProtocolError(ErrorCode.BAD_MESSAGE, "binary frame shorter than its header length")
    size = int.from_bytes(frame[:4], "big")
    if 4 + size > len(frame):
        raise ProtocolError(ErrorCode.BAD_MESSAGE, "binary frame shorter than its header")
    header = orjson.loads(frame[4 : 4 + size])
    if not isinstance(header, dict) or header.get("type") != "arrow-rows":
        raise ProtocolError(ErrorCode.BAD_MESSAGE, "binary frame header is not an arrow-rows object")
    return header, memoryview(frame)[4 + size :]


def encode_request(request: Request) -> str:
    """Serialise a request (for clients written in Python)."""
    out: dict[str, Any] = {"type": request.type}
    for f in dataclasses.fields(request):
        value = getattr(request, f.name)
        if value is not None or f.name == "data":
            out[f.name] = value
    return orjson.dumps(out).decode()


def decode_event(frame: str | bytes) -> dict[str, Any]:
    """Parse one gateway frame into a dict (clients dispatch on ``type``)."""
    obj = orjson.loads(frame)
    if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
        raise ProtocolError(ErrorCode.BAD_MESSAGE, "event must be a JSON object with a type")
    return obj
