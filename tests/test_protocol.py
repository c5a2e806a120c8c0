"""The protocol package alone: decoding, validation, encoding, lifecycle, schema and docs agree."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import ValidationError

from spark_gateway_protocol import ErrorCode, ProtocolError, decode_request, encode_event, encode_request, event_to_dict
from spark_gateway_protocol.errors import LifecycleError
from spark_gateway_protocol.lifecycle import TRANSITIONS, State, advance
from spark_gateway_protocol.messages import (
    EVENT_TYPES,
    REQUEST_TYPES,
    Column,
    Error,
    Execute,
    Finished,
    Interrupt,
    Progress,
    QueryContext,
    Result,
    ResultSummary,
    Rows,
    StageProgress,
    field_names,
)
from tests.wsclient import VALIDATORS, validate

ROOT = Path(__file__).resolve().parent.parent


def refused(frame: str | bytes, **kwargs: int) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        decode_request(frame, **kwargs)
    return info.value


def test_execute_defaults() -> None:
    """An execute with only id and code gets the documented defaults."""
    request = decode_request('{"type":"execute","id":"a","code":"SELECT 1"}')
    assert request == Execute(id="a", code="SELECT 1", language="sql", page_size=1000, limit=None, format="json")


def test_interrupt_without_id_means_everything() -> None:
    """An interrupt with no id decodes to Interrupt(id=None)."""
    assert decode_request('{"type":"interrupt"}') == Interrupt(None)


def test_not_json_is_bad_message() -> None:
    """Text that is not JSON is refused as bad_message."""
    assert refused("{nope").code is ErrorCode.BAD_MESSAGE


def test_non_object_is_bad_message() -> None:
    """A JSON array or string is not a message."""
    assert refused("[1,2]").code is ErrorCode.BAD_MESSAGE
    assert refused('"execute"').code is ErrorCode.BAD_MESSAGE


def test_unknown_type_names_the_type() -> None:
    """An unknown type is refused with unknown_type, echoing the type and id."""
    error = refused('{"type":"exterminate","id":"x"}')
    assert error.code is ErrorCode.UNKNOWN_TYPE
    assert "exterminate" in error.message and error.request_id == "x"


def test_missing_field_is_named() -> None:
    """A missing required field is named in the error."""
    error = refused('{"type":"execute","id":"a"}')
    assert error.code is ErrorCode.BAD_MESSAGE and "'code'" in error.message
    assert error.request_id == "a" and error.request_type == "execute"


def test_unknown_field_is_named() -> None:
    """A misspelt field is refused rather than silently ignored."""
    error = refused('{"type":"execute","id":"a","code":"x","page-size":5}')
    assert "'page-size'" in error.message


@pytest.mark.parametrize(
    ("frame", "field"),
    [
        ('{"type":"execute","id":"a","code":"x","page_size":0}', "page_size"),
        ('{"type":"execute","id":"a","code":"x","page_size":true}', "page_size"),
        ('{"type":"execute","id":"a","code":"x","page_size":1.5}', "page_size"),
        ('{"type":"execute","id":"a","code":"x","page_size":1000001}', "page_size"),
        ('{"type":"execute","id":"a","code":"x","limit":-1}', "limit"),
        ('{"type":"execute","id":"a","code":"x","language":"scala"}', "language"),
        ('{"type":"execute","id":"a","code":"x","layout":"cols"}', "layout"),
        ('{"type":"execute","id":"a","code":"x","layout":null}', "layout"),
        ('{"type":"execute","id":"a","code":7}', "code"),
        ('{"type":"execute","id":"","code":"x"}', "id"),
        ('{"type":"execute","id":5,"code":"x"}', "id"),
        ('{"type":"stream-rows","id":"a","result":0,"max_rows":0}', "max_rows"),
        ('{"type":"stream-rows","id":"a","result":-1,"max_rows":5}', "result"),
        ('{"type":"close-result","id":"a","result":"0"}', "result"),
    ],
)
def test_wrong_field_values_are_named(frame: str, field: str) -> None:
    """A field of the wrong type or range is refused with its name."""
    error = refused(frame)
    assert error.code is ErrorCode.BAD_MESSAGE
    assert f"'{field}'" in error.message


def test_oversized_frame_is_refused_before_parsing() -> None:
    """A frame beyond the limit is refused as message_too_large."""
    assert refused("x" * 101, max_bytes=100).code is ErrorCode.MESSAGE_TOO_LARGE


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.text(), st.binary(), st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12).map(lambda v: json.dumps(v))))
def test_decoder_raises_only_protocol_errors(frame: str | bytes) -> None:
    """Whatever arrives, decoding returns a request or raises ProtocolError, nothing else."""
    try:
        decode_request(frame)
    except ProtocolError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.fixed_dictionaries(
    {"type": st.sampled_from(sorted(REQUEST_TYPES))},
    optional={"id": st.one_of(st.text(max_size=5), st.integers(), st.none()),
              "code": st.one_of(st.text(max_size=5), st.integers()),
              "result": st.one_of(st.integers(-2, 3), st.text(max_size=2)),
              "max_rows": st.one_of(st.integers(-2, 10), st.booleans()),
              "page_size": st.one_of(st.integers(-2, 200000), st.floats()),
              "language": st.sampled_from(["sql", "python", "r", 1]),
              "layout": st.sampled_from(["rows", "columns", "Rows", None])}))
def test_decoded_requests_match_their_schema(obj: dict) -> None:
    """A request the decoder accepts is one the JSON Schema accepts too."""
    try:
        request = decode_request(json.dumps(obj))
    except ProtocolError:
        return
    validate(orjson.loads(encode_request(request)))


def test_lifecycle_moves() -> None:
    """The lifecycle table allows the documented moves and nothing else."""
    assert advance(State.QUEUED, "start") is State.RUNNING
    assert advance(State.RUNNING, "code_done") is State.DRAINING
    assert advance(State.DRAINING, "interrupted") is State.INTERRUPTED
    assert advance(State.QUEUED, "interrupted") is State.INTERRUPTED
    with pytest.raises(LifecycleError):
        advance(State.OK, "start")
    with pytest.raises(LifecycleError):
        advance(State.QUEUED, "ok")
    assert all(source not in (State.OK, State.ERROR, State.INTERRUPTED) for source, _ in TRANSITIONS)


def test_every_message_has_a_schema_with_its_fields() -> None:
    """Each message class has a schema whose properties are exactly its fields."""
    for kind, cls in {**REQUEST_TYPES, **EVENT_TYPES}.items():
        schema = VALIDATORS[kind].schema
        expected = set(field_names(cls)) - {"payload"}  # arrow-rows: the payload follows the header
        expected |= {"type"} | ({"seq"} if kind in EVENT_TYPES else set())
        assert set(schema["properties"]) == expected, kind
    assert set(VALIDATORS) == set(REQUEST_TYPES) | set(EVENT_TYPES)


def test_encoded_events_match_their_schema() -> None:
    """Events as the gateway encodes them validate against the schema."""
    events = [
        Result("a", 0, [Column("id", "bigint", False)], "json", None),
        Rows("a", 0, 0, [[1, "x", None, 2**63 - 1]], True, False),
        Rows("a", 0, 5, None, False, False, columns=[[1, 2], ["x", None]], count=2),
        Rows("a", 0, 7, None, True, True, columns=[[], []], count=0),
        Progress("a", [StageProgress(1, 2, 3, 4, False)], 2, 3, 1, 4, None),
        Error(ErrorCode.SPARK_ERROR, "boom", id="a", context=[QueryContext("t", 1, 1)]),
        Finished("a", "ok", 1.5, [ResultSummary(0, 1, False)]),
    ]
    for seq, event in enumerate(events, 1):
        wire = orjson.loads(encode_event(event, seq))
        validate(wire)
        assert wire["seq"] == seq


def test_arrow_frame_round_trip() -> None:
    """A binary arrow-rows frame splits back into its schema-valid header and its payload."""
    from spark_gateway_protocol import decode_arrow_frame
    from spark_gateway_protocol.messages import ArrowRows

    frame = encode_event(ArrowRows("a", 0, 10, 3, True, False, b"IPC-BYTES"), 7)
    header, payload = decode_arrow_frame(frame)
    validate(header)
    assert header["seq"] == 7 and header["count"] == 3 and bytes(payload) == b"IPC-BYTES"
    with pytest.raises(ProtocolError):
        decode_arrow_frame(b"\x00\x00")


def test_rows_keep_big_integers_exact() -> None:
    """Integers beyond 2^53 keep every digit on the wire."""
    frame = encode_event(Rows("a", 0, 0, [[2**63 - 1, -(2**63)]], True), 1)
    assert "[9223372036854775807,-9223372036854775808]" in frame


def test_docs_examples_are_valid_and_complete() -> None:
    """docs/protocol.md has one valid JSON example per message type."""
    text = (ROOT / "docs" / "protocol.md").read_text()
    examples = [json.loads(block) for block in re.findall(r"```json\n(.*?)\n```", text, re.S)]
    for example in examples:
        validate(example)
    assert {e["type"] for e in examples} == set(REQUEST_TYPES) | set(EVENT_TYPES)


def test_protocol_package_does_no_io() -> None:
    """protocol/ imports no asyncio, Starlette, websockets or pyspark."""
    code = ("import sys, protocol, protocol.lifecycle, protocol.arrow_json; "
            "print([m for m in ('asyncio','starlette','pyspark','websockets','anyio','uvicorn') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"


def test_text_with_lone_surrogates_is_sent_escaped() -> None:
    """orjson refuses lone surrogates (surrogateescape-decoded bytes): the frame escapes them, as text."""
    frame = encode_event(Error("python_error", "bad name caf\udce9", id="a", traceback="caf\udce9"), 3)
    event = orjson.loads(frame)
    assert event["message"] == "bad name caf\\udce9" and event["traceback"] == "caf\\udce9"
    with pytest.raises(TypeError):  # anything else orjson cannot write still fails loudly
        encode_event(Error("python_error", object(), id="a"), 4)  # type: ignore[arg-type]


def test_execute_asks_for_a_page_layout() -> None:
    """``layout`` is "rows" unless the execute asks for "columns"; anything else is refused, naming it."""
    assert decode_request('{"type":"execute","id":"a","code":"x"}').layout == "rows"  # type: ignore[union-attr]
    request = decode_request('{"type":"execute","id":"a","code":"x","layout":"columns"}')
    assert request == Execute("a", "x", layout="columns")
    validate(orjson.loads(encode_request(request)))
    error = refused('{"type":"execute","id":"q9","code":"x","layout":"column"}')
    assert error.code is ErrorCode.BAD_MESSAGE and error.request_id == "q9"
    assert "'layout'" in error.message and "'columns'" in error.message


def test_a_column_page_carries_count_and_columns_instead_of_rows() -> None:
    """A columns-layout page is written with ``count`` and ``columns`` and without ``rows``; the
    schema refuses a page with both or with neither."""
    wire = orjson.loads(encode_event(Rows("a", 0, 0, None, True, columns=[[1, 2], ["x", None]], count=2), 3))
    assert wire == {"type": "rows", "seq": 3, "id": "a", "result": 0, "offset": 0, "count": 2,
                    "columns": [[1, 2], ["x", None]], "last": True, "truncated": False}
    assert event_to_dict(Rows("a", 0, 0, None, True, columns=[[1]], count=1), 3) == wire | {
        "count": 1, "columns": [[1]]}
    for bad in ({**wire, "rows": [[1, "x"]]}, {k: v for k, v in wire.items() if k not in ("columns", "count")},
                {k: v for k, v in wire.items() if k != "count"}):
        with pytest.raises(ValidationError):
            validate(bad)


def test_a_rows_page_holds_rows_or_columns_never_both() -> None:
    """Building a page with both layouts, neither, or a count without columns raises ProtocolError naming it."""
    for kwargs, field in [({"rows": None}, "rows"), ({"rows": [[1]], "columns": [[1]], "count": 1}, "rows"),
                          ({"rows": None, "columns": [[1]]}, "count"), ({"rows": [[1]], "count": 1}, "count")]:
        with pytest.raises(ProtocolError, match=f"'{field}'"):
            Rows("a", 0, 0, last=True, **kwargs)  # type: ignore[arg-type]
    page = Rows("a", 0, 0, None, True, columns=[[1, 2], ["x", "y"]], count=2)
    assert page.num_rows == 2 and page.row_values() == [[1, "x"], [2, "y"]]
    assert Rows("a", 0, 0, [[1, "x"]], True).num_rows == 1


def test_the_light_client_imports_without_pyarrow_or_numpy() -> None:
    """``spark_gateway_protocol`` and ``spark_gateway_client`` import, and decode a column page,
    in an interpreter where pyarrow and numpy cannot be imported (the light client's JSON mode)."""
    code = ("import sys; sys.modules.update(pyarrow=None, numpy=None)\n"
            "import spark_gateway_protocol, spark_gateway_client\n"
            "from spark_gateway_protocol import decode_event\n"
            "from spark_gateway_client.batch import page_batch\n"
            "event, _ = decode_event('{\"type\":\"rows\",\"seq\":1,\"id\":\"a\",\"result\":0,\"offset\":0,"
            "\"last\":true,\"count\":1,\"columns\":[[1]]}')\n"
            "assert list(page_batch(event)[1]) == [[1]]\n"
            "print(sorted(m for m in sys.modules if m.startswith(('pyarrow', 'numpy')) and sys.modules[m]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------- editor requests and their answers


def test_editor_requests_decode_with_their_defaults() -> None:
    """complete and inspect default to SQL counted in code points; catalog defaults to the root path."""
    from spark_gateway_protocol.messages import Catalog, Complete, Inspect

    assert decode_request('{"type":"complete","id":"e1","code":"SELECT ","cursor":7}') == Complete("e1", "SELECT ", 7)
    inspect = decode_request('{"type":"inspect","id":"e2","code":"x","cursor":1,"language":"python"}')
    assert inspect == Inspect("e2", "x", 1, "python", "code_points")
    assert decode_request('{"type":"catalog","id":"e3"}') == Catalog("e3", [])


@pytest.mark.parametrize(
    ("frame", "field"),
    [
        ('{"type":"complete","id":"e","code":"abc","cursor":4}', "cursor"),
        ('{"type":"complete","id":"e","code":"abc","cursor":-1}', "cursor"),
        ('{"type":"complete","id":"e","code":"abc","cursor":"1"}', "cursor"),
        ('{"type":"inspect","id":"e","code":"abc","cursor":1,"language":"scala"}', "language"),
        ('{"type":"inspect","id":"e","code":"abc","cursor":1,"units":"bytes"}', "units"),
        ('{"type":"complete","id":"e","code":"\\ud83d\\ude00x","cursor":1,"units":"utf-16"}', "cursor"),
        ('{"type":"complete","id":"e","code":"\\ud83d\\ude00x","cursor":3,"units":"code_points"}', "cursor"),
        ('{"type":"catalog","id":"e","path":["a","b","c","d"]}', "path"),
        ('{"type":"catalog","id":"e","path":["a",""]}', "path"),
        ('{"type":"catalog","id":"e","path":"a"}', "path"),
        ('{"type":"catalog","id":"","path":[]}', "id"),
    ],
)
def test_editor_requests_with_wrong_fields_are_refused_by_name(frame: str, field: str) -> None:
    """A cursor beyond the code (or inside a surrogate pair), an unknown language or units, a bad path: bad_message."""
    error = refused(frame)
    assert error.code is ErrorCode.BAD_MESSAGE
    assert f"'{field}'" in error.message
    assert error.request_type in ("complete", "inspect", "catalog")


def test_utf16_offsets_and_code_points_convert_both_ways() -> None:
    """An emoji counts two UTF-16 units and one code point; offsets map across it both ways."""
    from spark_gateway_protocol.messages import from_code_points, text_length, to_code_points

    code = "a\U0001F600b"
    assert (text_length(code, "code_points"), text_length(code, "utf-16")) == (3, 4)
    assert [to_code_points(code, offset) for offset in range(5)] == [0, 1, None, 2, 3]
    assert [from_code_points(code, offset, "utf-16") for offset in range(4)] == [0, 1, 3, 4]
    decoded = decode_request(orjson.dumps({"type": "complete", "id": "e", "code": code, "cursor": 4,
                                           "units": "utf-16"}))
    assert decoded.cursor == 4  # type: ignore[union-attr]


def test_editor_answers_encode_from_and_decode_back() -> None:
    """`from` (a Python keyword: the field from_) is written as `from` and read back; the frames match the schema."""
    from spark_gateway_protocol import decode_event
    from spark_gateway_protocol.messages import (
        CatalogEntries,
        CatalogEntry,
        CompletionItem,
        Completions,
        Inspection,
    )

    events = [
        Completions("e1", 7, 9, [CompletionItem("name", "column", "string"),
                                 CompletionItem("order date", "column", "date", "`order date`")], False),
        Inspection("e2", True, "table", "spark_catalog.default.t", 14, 15,
                   columns=[CatalogEntry("id", "column", "bigint")]),
        Inspection("e3", False),
        CatalogEntries("e4", ["spark_catalog"], [CatalogEntry("default", "database", None, "default database")]),
    ]
    for seq, event in enumerate(events, 1):
        frame = encode_event(event, seq)
        wire = orjson.loads(frame)
        validate(wire)
        assert decode_event(frame) == (event, seq)
    assert orjson.loads(encode_event(events[0], 1))["from"] == 7


def test_timeout_is_an_error_code_of_the_schema() -> None:
    """The editor requests' deadline error is a code the error schema knows."""
    validate(orjson.loads(encode_event(Error(ErrorCode.TIMEOUT, "no answer within 5 s", id="e1",
                                             request="complete"), 3)))
