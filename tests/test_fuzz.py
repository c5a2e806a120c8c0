"""Property-based fuzzing of the client-frame decoder (issue 6, hardening).

``protocol.decode_request`` is the gateway's only entry point for untrusted bytes. Whatever
arrives (random JSON-ish objects with right and wrong field types, unicode, huge numbers,
deeply nested junk, truncated or spliced JSON, binary garbage, frames around the size limit)
it must either return a valid request or raise :class:`ProtocolError` with a code of
:class:`ErrorCode`; never any other exception. The error event the gateway would send for
a refusal must match its JSON Schema, and an accepted request must survive a round trip.
Two gateway bugs it found (Ping data too deep to echo, a size limit counting characters) have tests at the end.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from spark_gateway_protocol import ErrorCode, ProtocolError, decode_request, encode_event, encode_request
from spark_gateway_protocol.codec import DEFAULT_MAX_MESSAGE_BYTES
from spark_gateway_protocol.messages import (
    MAX_ID_LENGTH,
    MAX_PAGE_SIZE,
    REQUEST_TYPES,
    Catalog,
    CloseResult,
    Complete,
    Error,
    Execute,
    Inspect,
    Interrupt,
    Ping,
    Pong,
    StreamRows,
    field_names,
)
from tests.conftest import examples
from tests.wsclient import validate

pytestmark = pytest.mark.timeout(120)

FUZZ = settings(
    max_examples=examples(1500),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)

ALL_FIELDS = sorted({name for cls in REQUEST_TYPES.values() for name in field_names(cls)})
ERROR_CODES = set(ErrorCode)
# orjson writes at most this many levels; deeper Ping data cannot be echoed (see test below).
ORJSON_DUMPS_DEPTH = 254

# ------------------------------------------------------------------ strategies

# Every code point, surrogates and private use included: the decoder must survive them all.
any_char = st.characters(exclude_categories=())
short_text = st.text(any_char, max_size=12)
edge_strings = st.sampled_from([
    "", "a", "x" * MAX_ID_LENGTH, "x" * (MAX_ID_LENGTH + 1), "é" * MAX_ID_LENGTH, "😀" * 65,
    "\x00", "\ud800", "\udfff", "\ufeff", "\u202e", "sql", "python", "json", "arrow", "csv", "SQL",
    "execute", "__proto__", "constructor", "null", "NaN", "-0", "1e309",
])
huge_ints = st.one_of(
    st.integers(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.sampled_from([0, 1, -1, 2**31, 2**31 + 1, 2**53, 2**53 + 1, 2**63 - 2, 2**63 - 1, 2**63,
                     2**64 - 1, 2**64, -(2**63), -(2**63) - 1, 10**30, MAX_PAGE_SIZE, MAX_PAGE_SIZE + 1]),
)
scalars = st.one_of(
    st.none(), st.booleans(), huge_ints,
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.0, -0.0, 1.0, 1e308, 5e-324]),
    short_text, edge_strings,
)
json_junk = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(short_text | st.sampled_from(ALL_FIELDS), inner,
                                                                 max_size=4),
    max_leaves=20,
)

# Per field: values of the right type and range, and wrong ones (type, range, junk).
_good_id = st.text(st.characters(codec="utf-8"), min_size=1, max_size=MAX_ID_LENGTH)
RIGHT: dict[str, st.SearchStrategy[Any]] = {
    "id": _good_id,
    "code": st.one_of(st.sampled_from(["SELECT 1", "1 + 1", ""]), st.text(st.characters(codec="utf-8"), max_size=20)),
    "language": st.sampled_from(["sql", "python"]),
    "page_size": st.integers(1, MAX_PAGE_SIZE),
    "limit": st.none() | st.integers(0, 2**63 - 2),
    "format": st.sampled_from(["json", "arrow"]),
    "layout": st.sampled_from(["rows", "columns"]),
    "result": st.integers(0, 2**31),
    "max_rows": st.integers(1, 2**53),
    "data": json_junk,
    "cursor": st.just(0),  # the only offset every code has
    "units": st.sampled_from(["code_points", "utf-16"]),
    "path": st.lists(st.text(st.characters(codec="utf-8"), min_size=1, max_size=8), max_size=3),
}
WRONG: dict[str, st.SearchStrategy[Any]] = {
    "id": st.one_of(st.just(""), st.text(min_size=MAX_ID_LENGTH + 1, max_size=MAX_ID_LENGTH + 3), edge_strings,
                    json_junk),
    "code": json_junk,
    "language": st.one_of(st.sampled_from(["scala", "", "SQL", "sql "]), json_junk),
    "page_size": st.one_of(st.sampled_from([0, -1, MAX_PAGE_SIZE + 1, True, 1.0, "10"]), huge_ints, json_junk),
    "limit": st.one_of(st.sampled_from([-1, 2**63 - 1, 2**63, True, 0.5, "1"]), json_junk),
    "format": st.one_of(st.sampled_from(["csv", "JSON", ""]), json_junk),
    "layout": st.one_of(st.sampled_from(["row", "COLUMNS", ""]), json_junk),
    "result": st.one_of(st.sampled_from([-1, 2**31 + 1, True, "0", 0.0]), huge_ints, json_junk),
    "max_rows": st.one_of(st.sampled_from([0, -1, 2**53 + 1, False, "5", 5.0]), huge_ints, json_junk),
    "data": json_junk,
    "cursor": st.one_of(st.sampled_from([-1, 10**6, True, "0", 0.0]), huge_ints, json_junk),
    "units": st.one_of(st.sampled_from(["utf-8", "UTF-16", "bytes", ""]), json_junk),
    "path": st.one_of(st.sampled_from([[""], ["a", "b", "c", "d"], "a", [1], [None]]), json_junk),
}
FIELD_VALUES = {name: st.one_of(RIGHT[name], WRONG[name]) for name in RIGHT}


@st.composite
def request_like(draw: st.DrawFn) -> dict[str, Any]:
    """A dict that looks like a request: a real or bogus type, right or wrong fields, maybe extras."""
    kind = draw(st.one_of(st.sampled_from(sorted(REQUEST_TYPES)), st.sampled_from(sorted(REQUEST_TYPES)),
                          short_text, edge_strings, json_junk))
    obj: dict[str, Any] = {}
    if draw(st.integers(0, 9)):  # mostly with a type
        obj["type"] = kind
    wanted = field_names(REQUEST_TYPES[kind]) if isinstance(kind, str) and kind in REQUEST_TYPES else ()
    mode = draw(st.sampled_from(["right", "one_wrong", "mixed"]))
    wrong_one = draw(st.sampled_from(wanted)) if wanted and mode == "one_wrong" else None
    for name in wanted:
        if draw(st.integers(0, 7)):  # mostly present
            if mode == "mixed":
                obj[name] = draw(FIELD_VALUES[name])
            else:
                obj[name] = draw(WRONG[name] if name == wrong_one else RIGHT[name])
    extras = st.lists(st.sampled_from(ALL_FIELDS) | short_text, min_size=1, max_size=2)
    for name in draw(st.one_of(st.just([]), st.just([]), st.just([]), extras)):
        obj[name] = draw(FIELD_VALUES.get(name, json_junk))
    return obj


@st.composite
def valid_requests(draw: st.DrawFn) -> Any:
    """Requests that are right in every field: the decoder must accept all of them."""
    ids = st.text(st.characters(codec="utf-8"), min_size=1, max_size=MAX_ID_LENGTH)
    kind = draw(st.sampled_from(sorted(REQUEST_TYPES)))
    if kind == "execute":
        return Execute(id=draw(ids), code=draw(st.text(st.characters(codec="utf-8"), max_size=50)),
                       language=draw(st.sampled_from(["sql", "python"])),
                       page_size=draw(st.integers(1, MAX_PAGE_SIZE)),
                       limit=draw(st.none() | st.integers(0, 2**63 - 2)),
                       format=draw(st.sampled_from(["json", "arrow"])))
    if kind == "interrupt":
        return Interrupt(id=draw(st.none() | ids))
    if kind == "stream-rows":
        return StreamRows(id=draw(ids), result=draw(st.integers(0, 2**31)), max_rows=draw(st.integers(1, 2**53)))
    if kind == "close-result":
        return CloseResult(id=draw(ids), result=draw(st.integers(0, 2**31)))
    if kind in ("complete", "inspect"):
        code = draw(st.text(st.characters(codec="utf-8"), max_size=30))
        units = draw(st.sampled_from(["code_points", "utf-16"]))
        cursor = draw(st.sampled_from([0, len(code)])) if units == "code_points" else 0
        cls = Complete if kind == "complete" else Inspect
        return cls(id=draw(ids), code=code, cursor=cursor, language=draw(st.sampled_from(["sql", "python"])),
                   units=units)
    if kind == "catalog":
        return Catalog(id=draw(ids), path=draw(RIGHT["path"]))
    plain = st.recursive(st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1)
                         | st.floats(allow_nan=False, allow_infinity=False)
                         | st.text(st.characters(codec="utf-8"), max_size=10),
                         lambda inner: st.lists(inner, max_size=3)
                         | st.dictionaries(st.text(st.characters(codec="utf-8"), max_size=5), inner, max_size=3),
                         max_leaves=10)
    return Ping(data=draw(plain))


def _dumps(obj: Any, ascii_only: bool) -> str | None:
    try:
        return json.dumps(obj, ensure_ascii=ascii_only, allow_nan=True)  # NaN/Infinity are not JSON: refused
    except (ValueError, TypeError, RecursionError):
        return None


@st.composite
def frames(draw: st.DrawFn) -> str | bytes:
    """A websocket frame as the gateway would hand it to the decoder: text, or bytes."""
    how = draw(st.sampled_from(["valid", "request", "request", "request", "junk", "truncated", "spliced",
                                "deep", "padded", "raw_text", "raw_bytes", "utf8_bytes"]))
    if how == "valid":
        return encode_request(draw(valid_requests()))
    if how == "raw_text":
        return draw(st.text(any_char, max_size=200))
    if how == "raw_bytes":
        return draw(st.binary(max_size=200))
    if how == "deep":  # nesting around orjson's read limit (1024) and its write limit (254)
        depth = draw(st.sampled_from([1, 10, 253, 254, 255, 600, 1023, 1024, 1025, 5000]))
        opener, closer = draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
        inner = opener * depth + "0" + closer * depth
        if draw(st.booleans()):
            inner = inner[: draw(st.integers(0, len(inner)))]
        return '{"type": "ping", "data": ' + inner + "}" if draw(st.booleans()) else inner
    obj: Any = draw(request_like()) if how != "junk" else draw(json_junk)
    text = _dumps(obj, draw(st.booleans()))
    assume(text is not None)
    assert text is not None
    if how == "truncated":
        text = text[: draw(st.integers(0, max(len(text) - 1, 0)))]
    elif how == "spliced":
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.sampled_from(['"', "\\", "}", "{", ",", ":", "\x00", "\\ud800", "'", "\n",
                                                  "/*", "]", "NaN", "1e99999", "\\u00"])) + text[at:]
    elif how == "padded":  # valid JSON around the size limit: whitespace costs bytes too
        text = " " * draw(st.integers(0, 3000)) + text
    if how == "utf8_bytes" or draw(st.integers(0, 5)) == 0:
        return text.encode("utf-8", "surrogatepass")  # decoder must also take bytes (lone surrogates: invalid)
    return text


def _depth(value: Any) -> int:
    """Nesting depth of a decoded JSON value (iterative: it may be 1000 levels deep)."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            level += 1
            deepest = max(deepest, level)
            stack.extend((child, level) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def wire_size(frame: str | bytes) -> int:
    """Bytes of the frame on the wire (a text frame is UTF-8)."""
    return len(frame.encode("utf-8", "surrogatepass")) if isinstance(frame, str) else len(frame)


def _check_outcome(frame: str | bytes, max_bytes: int) -> Any:
    """The decoder's contract for one frame; returns the request, or None when refused."""
    try:
        request = decode_request(frame, max_bytes)
    except ProtocolError as exc:
        assert exc.code in ERROR_CODES and isinstance(exc.code, ErrorCode)
        assert isinstance(exc.message, str) and exc.message
        assert exc.request_id is None or isinstance(exc.request_id, str)
        assert exc.request_type is None or isinstance(exc.request_type, str)
        if wire_size(frame) > max_bytes:
            assert exc.code is ErrorCode.MESSAGE_TOO_LARGE
        else:
            assert exc.code in (ErrorCode.BAD_MESSAGE, ErrorCode.UNKNOWN_TYPE), exc.code
        if exc.code is ErrorCode.UNKNOWN_TYPE:
            assert exc.request_type is not None and exc.request_type not in REQUEST_TYPES
        # The event the gateway sends for it (connection._read) must encode and match the schema.
        wire = orjson.loads(encode_event(Error(exc.code, exc.message, id=exc.request_id, request=exc.request_type), 7))
        validate(wire)
        return None
    # Accepted: a real request, within the limit, whose fields are valid and re-encode to itself.
    assert type(request) in REQUEST_TYPES.values()
    assert wire_size(frame) <= max_bytes
    again = decode_request(encode_request(request), DEFAULT_MAX_MESSAGE_BYTES * 64)
    if isinstance(request, Ping):
        # JSON numbers: 1 and 1.0 compare equal, NaN cannot occur (refused); compare as JSON.
        assert isinstance(again, Ping) and orjson.dumps(again.data) == orjson.dumps(request.data)
        validate(orjson.loads(encode_event(Pong(request.data), 2)))
    else:
        assert again == request
    validate(orjson.loads(encode_request(request)))
    if isinstance(request, Execute):
        assert 1 <= len(request.id) <= MAX_ID_LENGTH and isinstance(request.code, str)
        assert request.language in ("sql", "python") and request.format in ("json", "arrow")
        assert 1 <= request.page_size <= MAX_PAGE_SIZE and type(request.page_size) is int
        assert request.limit is None or (type(request.limit) is int and request.limit >= 0)
    if isinstance(request, StreamRows):
        assert type(request.result) is int and type(request.max_rows) is int and request.max_rows >= 1
    return request


# ------------------------------------------------------------------ properties


@FUZZ
@given(frame=frames(), max_bytes=st.one_of(st.just(DEFAULT_MAX_MESSAGE_BYTES), st.integers(0, 4096)))
def test_any_frame_decodes_to_a_request_or_a_typed_protocol_error(frame: str | bytes, max_bytes: int) -> None:
    """Random frames: a valid request, or ProtocolError with a documented code; nothing else."""
    _check_outcome(frame, max_bytes)


@settings(FUZZ, max_examples=examples(500))
@given(request=valid_requests(), pad=st.integers(0, 64))
def test_valid_requests_are_always_accepted_exactly(request: Any, pad: int) -> None:
    """Every well-formed request decodes to itself; at the size limit exactly it is still accepted."""
    frame = encode_request(request)
    assert decode_request(frame) == request or isinstance(request, Ping)
    size = wire_size(frame)
    assert _check_outcome(frame, size) is not None  # exactly at the limit: accepted
    refused = pytest.raises(ProtocolError)
    with refused as info:
        decode_request(frame + " " * (pad + 1), size + pad)  # one byte over: refused before parsing
    assert info.value.code is ErrorCode.MESSAGE_TOO_LARGE


@settings(FUZZ, max_examples=examples(400))
@given(obj=request_like())
def test_refusals_echo_what_could_be_read(obj: dict[str, Any]) -> None:
    """A refused request echoes its id (when a string) and its type (when a string)."""
    text = _dumps(obj, ascii_only=True)
    assume(text is not None)
    assert text is not None
    try:
        parsed = orjson.loads(text)
    except orjson.JSONDecodeError:  # NaN, lone surrogates: not JSON, nothing could be read
        return
    obj = parsed
    try:
        decode_request(text, DEFAULT_MAX_MESSAGE_BYTES * 64)
    except ProtocolError as exc:
        kind = obj.get("type")
        if not isinstance(kind, str):
            assert exc.request_type is None
        else:
            assert exc.request_type == kind
        rid = obj.get("id")
        if exc.request_type is not None and isinstance(rid, str):
            assert exc.request_id == rid
        if exc.request_id is not None:
            assert exc.request_id == rid


def test_oversized_frames_are_refused_cheaply() -> None:
    """Frames beyond the limit are refused before parsing, whatever their content."""
    for frame in ("x" * (DEFAULT_MAX_MESSAGE_BYTES + 1), b"\xff" * (DEFAULT_MAX_MESSAGE_BYTES + 1),
                  '{"type":"ping","data":"' + "y" * DEFAULT_MAX_MESSAGE_BYTES + '"}',
                  "[" * (DEFAULT_MAX_MESSAGE_BYTES + 1)):
        with pytest.raises(ProtocolError) as info:
            decode_request(frame)
        assert info.value.code is ErrorCode.MESSAGE_TOO_LARGE


def test_deep_ping_data_is_refused_or_echoed() -> None:
    """Ping data the decoder accepts can be echoed back in a pong (else it should be bad_message)."""
    frame = '{"type": "ping", "data": ' + "[" * 300 + "]" * 300 + "}"
    try:
        request = decode_request(frame)
    except ProtocolError as exc:
        assert exc.code is ErrorCode.BAD_MESSAGE
        return
    assert isinstance(request, Ping)
    encode_event(Pong(request.data), 2)


def test_size_limit_counts_bytes_not_characters() -> None:
    """max_message_bytes is a byte limit (docs/protocol.md): 'é' costs two bytes on the wire."""
    frame = '{"type":"ping","data":"' + "é" * 600 + '"}'
    assert len(frame.encode()) > 1000 >= len(frame)
    with pytest.raises(ProtocolError) as info:
        decode_request(frame, 1000)
    assert info.value.code is ErrorCode.MESSAGE_TOO_LARGE


def test_strategies_reach_every_outcome() -> None:
    """Sanity of the fuzzer itself: the frames it makes hit every decoder outcome."""
    seen: set[str] = set()

    # Fixed examples, all of them in either tier: never flaky, and decoding only (fast).
    @settings(FUZZ, max_examples=1000, database=None, derandomize=True)
    @given(frame=frames())
    def sample(frame: str | bytes) -> None:
        try:
            seen.add(type(decode_request(frame)).__name__)
        except ProtocolError as exc:
            seen.add(str(exc.code))

    sample()
    expected = {"bad_message", "unknown_type", "Ping", "Execute", "Interrupt", "StreamRows", "CloseResult",
                "Complete", "Inspect", "Catalog"}
    assert expected <= seen, f"never produced: {expected - seen}"


def test_dataclass_fields_match_decoder() -> None:
    """The fuzzer knows every request field (so it tries each with wrong types)."""
    for cls in REQUEST_TYPES.values():
        for f in dataclasses.fields(cls):
            assert f.name in FIELD_VALUES, f.name
