"""Turn client frames into requests and events into frames; the only place JSON is read or written.

``decode_request`` and ``decode_event`` raise nothing but :class:`ProtocolError`.
``encode_event`` stamps the session ``seq`` on each event as it is written; ``decode_event``
gives it back beside the event.
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from collections.abc import Callable
from typing import Any, TypeVar

import orjson

from .errors import ErrorCode, ProtocolError
from .messages import EVENT_TYPES, REQUEST_TYPES, ArrowRows, Event, Request, Rows, field_names, wire_name

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
        out[wire_name(f)] = value
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
    try:
        header = orjson.loads(frame[4 : 4 + size])
    except orjson.JSONDecodeError as exc:
        raise ProtocolError(ErrorCode.BAD_MESSAGE, f"binary frame header is not valid JSON: {exc}") from None
    if not isinstance(header, dict) or header.get("type") != "arrow-rows":
        raise ProtocolError(ErrorCode.BAD_MESSAGE, "binary frame header is not an arrow-rows object")
    return header, memoryview(frame)[4 + size :]


def encode_request(request: Request) -> str:
    """Serialise a request (for clients written in Python)."""
    out: dict[str, Any] = {"type": request.type}
    for f in dataclasses.fields(request):
        value = getattr(request, f.name)
        if value is not None or f.name == "data":
            out[wire_name(f)] = value
    return orjson.dumps(out).decode()


@dataclasses.dataclass(frozen=True, slots=True)
class UnknownEvent:
    """An event of a type this version of the protocol does not define: a newer gateway's.

    New event types are how the protocol grows, so a client logs one and goes on.
    """

    type: str
    fields: dict[str, Any]


def decode_event(frame: str | bytes) -> tuple[Event | UnknownEvent, int]:
    """One gateway frame as its event and its ``seq``: a text frame is JSON, a binary one ``arrow-rows``.

    Fields this version does not know are dropped and missing optional ones take their
    defaults, so a client keeps working against a newer gateway. Nothing is copied: a
    ``rows`` page keeps the very list the parser built, an ``arrow-rows`` payload is a
    view of the frame. Raises only :class:`ProtocolError`.
    """
    if isinstance(frame, bytes):
        header, payload = decode_arrow_frame(frame)
        return _build(ArrowRows, {**header, "payload": payload}), _seq(header)
    try:
        obj = orjson.loads(frame)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError(ErrorCode.BAD_MESSAGE, f"event is not valid JSON: {exc}") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
        raise ProtocolError(ErrorCode.BAD_MESSAGE, "event must be a JSON object with a type")
    seq = _seq(obj)
    cls = EVENT_TYPES.get(obj["type"])
    if cls is None:
        return UnknownEvent(obj["type"], obj), seq
    return _build(cls, obj), seq


def _seq(obj: dict[str, Any]) -> int:
    seq = obj.get("seq")
    if not isinstance(seq, int) or isinstance(seq, bool):
        raise ProtocolError(ErrorCode.BAD_MESSAGE, f"{obj.get('type')}: field 'seq' must be an integer")
    return seq


T = TypeVar("T")


def _build(cls: type[T], obj: Any) -> T:
    """``cls`` from a decoded JSON object: known fields only, nested messages built too."""
    if not isinstance(obj, dict):
        raise ProtocolError(ErrorCode.BAD_MESSAGE, f"{_name(cls)}: expected a JSON object, got {type(obj).__name__}")
    known, nested, nullable = _plan(cls)
    args = {known[k]: v for k, v in obj.items() if k in known}
    for field in nullable:  # `X | None` with no default: absent on the wire means None (Rows.rows)
        args.setdefault(field, None)
    for field, build in nested:
        if field in args:
            args[field] = build(args[field])
    try:
        return cls(**args)
    except TypeError:
        missing = [wire_name(f) for f in dataclasses.fields(cls)  # type: ignore[arg-type]  # cls is a message class
                   if f.name not in args and f.default is dataclasses.MISSING
                   and f.default_factory is dataclasses.MISSING]
        raise ProtocolError(
            ErrorCode.BAD_MESSAGE, f"{_name(cls)}: missing field(s) {', '.join(repr(m) for m in missing)}"
        ) from None


def _name(cls: type) -> str:
    tag = getattr(cls, "type", None)  # a message's type; Column's `type` is a field
    return tag if isinstance(tag, str) else cls.__name__


# (wire name -> field name, builders of nested messages, fields `X | None` without a default)
Plan = tuple[dict[str, str], tuple[tuple[str, Callable[[Any], Any]], ...], tuple[str, ...]]
_PLANS: dict[type, Plan] = {}


def _plan(cls: type) -> Plan:
    """The wire fields of ``cls``, and how to build those that hold messages (read once from its type hints)."""
    plan = _PLANS.get(cls)
    if plan is None:
        hints = typing.get_type_hints(cls)
        fields = dataclasses.fields(cls)
        nested = ((f.name, _builder(hints[f.name])) for f in fields)
        names = {wire_name(f): f.name for f in fields}
        nullable = tuple(f.name for f in fields if f.default is dataclasses.MISSING
                         and f.default_factory is dataclasses.MISSING and type(None) in typing.get_args(hints[f.name]))
        plan = _PLANS[cls] = names, tuple((n, b) for n, b in nested if b is not None), nullable
    return plan


def _builder(hint: Any) -> Callable[[Any], Any] | None:
    """How to build a field of type ``hint`` when it holds messages; None: it stays as parsed."""
    if _is_message(hint):
        return functools.partial(_build, hint)
    args = typing.get_args(hint)
    if typing.get_origin(hint) is list and len(args) == 1 and _is_message(args[0]):
        item: type = args[0]
        return lambda value: [_build(item, v) for v in _list(value, item)]
    if len(args) == 2 and type(None) in args:  # X | None
        inner = args[0] if args[1] is type(None) else args[1]
        if _is_message(inner):
            return lambda value: None if value is None else _build(inner, value)
    return None


def _is_message(hint: Any) -> bool:
    return isinstance(hint, type) and dataclasses.is_dataclass(hint)


def _list(value: Any, item: type) -> list[Any]:
    if not isinstance(value, list):
        raise ProtocolError(ErrorCode.BAD_MESSAGE, f"expected a JSON array of {item.__name__}")
    return value
