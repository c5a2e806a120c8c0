"""Gateway events as the protocol's typed dataclasses, and how the Python client dispatches them.

The fast tier: no JVM. The client runs over a real websocket against a scripted server.
"""

from __future__ import annotations

import ast
import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.asyncio.server import ServerConnection, serve

from spark_gateway.spark_server import free_port
from spark_gateway_client import connect
from spark_gateway_client.batch import page_batch
from spark_gateway_protocol import ErrorCode, ProtocolError, encode_event
from spark_gateway_protocol.codec import UnknownEvent, decode_event
from spark_gateway_protocol.messages import (
    EVENT_TYPES,
    PROTOCOL_VERSION,
    Accepted,
    ArrowRows,
    CatalogEntries,
    CatalogEntry,
    Column,
    CompletionItem,
    Completions,
    Credit,
    DownloadLink,
    Error,
    Event,
    ExecutionInfo,
    Executions,
    Finished,
    Inspection,
    Lost,
    LostExecution,
    LostResult,
    Pong,
    Progress,
    QueryContext,
    Result,
    ResultClosed,
    ResultInfo,
    ResultSummary,
    Resumed,
    Rows,
    SessionInfo,
    SessionState,
    StageProgress,
    Started,
    Stderr,
    Stdout,
    Value,
    field_names,
)

CLIENT = Path(__file__).resolve().parent.parent / "clients" / "python" / "spark_gateway_client"

EXECUTION_INFO = ExecutionInfo(
    "a", "sql", "SELECT 1", 8, "draining", "2026-12-05T02:30:00.123Z", "2026-12-05T02:30:00.124Z", None, 3,
    [ResultInfo(0, [Column("id", "bigint", False)], "json", None, 1000, 1000, False, True, 2000)], None)

SAMPLES: list[Event] = [
    SessionInfo("s", "x", PROTOCOL_VERSION, "0.1", "4.0", ["sql"], ["json"], {"max_page_size": 10}, None, ["t"]),
    Resumed("s", "x", 3, 9, Lost(4, 5, [LostExecution("a", {"rows": 2}, [LostResult(0, 10, 20)])]),
            [Credit("a", 0, 30)]),
    Resumed("s", "x", 3, 4),
    Accepted("a", 2),
    Started("a"),
    Progress("a", [StageProgress(1, 2, 3, 4, False)], 2, 3, 1, 4, "op"),
    Stdout("a", "out\n"),
    Stderr("a", "err\n"),
    Result("a", 0, [Column("id", "bigint", False), Column("m", "map<string,int>", True)], "json", 5),
    Rows("a", 0, 0, [[1, "x", None, 2**63 - 1]], True, True),
    ArrowRows("a", 0, 10, 3, True, False, b"IPC-BYTES"),
    ResultClosed("a", 0, 7, "interrupted"),
    Value("a", "42", "int", False, 2),
    Error(ErrorCode.SPARK_ERROR, "boom", id="a", result=0, error_class="E", sql_state="42000",
          context=[QueryContext("t", 1, 1)]),
    Finished("a", "ok", 1.5, [ResultSummary(0, 1, False)]),
    Pong({"ping": 1}),
    Completions("e1", 7, 9, [CompletionItem("name", "column", "string", None)], False),
    Inspection("e2", True, "table", "t", 0, 1, None, None, "doc", [CatalogEntry("id", "column", "int")]),
    CatalogEntries("e3", ["spark_catalog"], [CatalogEntry("default", "database")], True),
    DownloadLink("q1", 0, "parquet", "/download?session=s&execution=q1&result=0&format=parquet&expires=1&sig=x", 300),
    SessionState("s", "x", None, 12, 1, 2, [EXECUTION_INFO], True, None, [Credit("a", 0, 30)]),
    Executions("l1", [EXECUTION_INFO], False),
]


def test_every_event_decodes_into_its_own_dataclass() -> None:
    """decode_event gives back the very event encode_event wrote, nested messages included, with its seq."""
    assert {type(e) for e in SAMPLES} == set(EVENT_TYPES.values())
    for seq, event in enumerate(SAMPLES):
        assert decode_event(encode_event(event, seq)) == (event, seq)


def test_an_arrow_payload_is_a_view_of_the_frame() -> None:
    """A binary frame decodes into ArrowRows whose payload is a view of the frame, not a copy."""
    frame = encode_event(ArrowRows("a", 0, 0, 3, False, False, b"IPC"), 4)
    assert isinstance(frame, bytes)
    event, _seq = decode_event(frame)
    assert isinstance(event, ArrowRows) and isinstance(event.payload, memoryview)
    assert event.payload.obj is frame and bytes(event.payload) == b"IPC"


def test_a_rows_page_is_handed_over_without_a_copy() -> None:
    """The client's rows of a JSON page are the list the decoder built (no per-row work on the hot path)."""
    event, _seq = decode_event(encode_event(Rows("a", 0, 0, [[1, "x"], [2, "y"]], False), 2))
    assert isinstance(event, Rows)
    assert page_batch(event)[1] is event.rows and event.rows == [[1, "x"], [2, "y"]]


def test_an_event_of_an_unknown_type_decodes_as_unknown_event() -> None:
    """A type this protocol version does not define (a newer gateway's) is kept, with its seq, not refused."""
    event, seq = decode_event('{"type":"forecast","seq":12,"id":"a","eta_ms":300}')
    assert seq == 12
    assert event == UnknownEvent("forecast", {"type": "forecast", "seq": 12, "id": "a", "eta_ms": 300})


def test_fields_a_newer_gateway_adds_are_dropped() -> None:
    """Unknown fields, at the top or nested, are ignored; missing optional ones take their defaults."""
    frame = orjson.dumps({"type": "result", "seq": 3, "id": "a", "result": 0, "hint": "new",
                          "schema": [{"name": "x", "type": "int", "nullable": True, "comment": "new"}]}).decode()
    assert decode_event(frame) == (Result("a", 0, [Column("x", "int", True)]), 3)


@pytest.mark.parametrize(("frame", "message"), [
    ('{"type":"rows","seq":3,"id":"a","result":0,"offset":0,"rows":[]}', "rows: missing field(s) 'last'"),
    ('{"type":"result","seq":3,"id":"a","result":0,"schema":[7]}', "Column: expected a JSON object, got int"),
    ('{"type":"result","seq":3,"id":"a","result":0,"schema":{}}', "expected a JSON array of Column"),
    ('{"type":"started","id":"a"}', "started: field 'seq' must be an integer"),
    ('{"type":"started","seq":true,"id":"a"}', "started: field 'seq' must be an integer"),
    ('[1, 2]', "event must be a JSON object with a type"),
    ("{", "event is not valid JSON"),
    (b"\x00\x00\x00\x02{]", "binary frame header is not valid JSON"),
    (b"\x00\x00\x00\x09{}", "binary frame shorter than its header"),
])
def test_a_malformed_event_raises_a_protocol_error_naming_what_is_wrong(frame: str | bytes, message: str) -> None:
    """Decoding a bad frame raises ProtocolError (bad_message) saying which field or part is wrong."""
    with pytest.raises(ProtocolError) as raised:
        decode_event(frame)
    assert raised.value.code == ErrorCode.BAD_MESSAGE and message in raised.value.message


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                    max_leaves=10)
FIELD_NAMES = sorted({name for cls in EVENT_TYPES.values() for name in field_names(cls)} | {"seq"})


@settings(max_examples=300, deadline=None)
@given(kind=st.sampled_from([*EVENT_TYPES, "forecast"]),
       fields=st.dictionaries(st.sampled_from(FIELD_NAMES), JSON | st.lists(st.dictionaries(
           st.sampled_from(FIELD_NAMES), JSON, max_size=4), max_size=2), max_size=8))
def test_decoding_any_json_object_raises_only_protocol_error(kind: str, fields: dict[str, Any]) -> None:
    """Whatever fields an event carries, decode_event returns an event or raises ProtocolError, nothing else."""
    try:
        event, seq = decode_event(json.dumps({**fields, "type": kind}))
    except ProtocolError:
        return
    assert isinstance(seq, int) and event.type == kind


def test_execution_and_session_modules_do_not_import_each_other() -> None:
    """execution.py knows its session only through _link.SessionLink: it imports nothing of session.py."""
    for module in ("execution.py", "_link.py"):
        tree = ast.parse((CLIENT / module).read_text())
        imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        assert "session" not in imported and "spark_gateway_client.session" not in imported, module
    link = {node.module for node in ast.walk(ast.parse((CLIENT / "_link.py").read_text()))
            if isinstance(node, ast.ImportFrom)}
    assert "execution" not in link


# ---------------------------------------------------------------- the client against a scripted server


class ScriptedGateway:
    """Answers the first request with a fixed list of events; later requests are only recorded."""

    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.events = events
        self.received: list[dict[str, Any]] = []
        self.port = free_port()

    async def handler(self, ws: ServerConnection) -> None:
        await ws.send(orjson.dumps({
            "type": "session", "seq": 1, "session_id": "s", "spark_session_id": "x", "protocol": PROTOCOL_VERSION,
            "gateway_version": "0", "spark_version": "4", "languages": ["sql"], "formats": ["json"], "limits": {},
        }).decode())
        async for message in ws:
            self.received.append(orjson.loads(message))
            if len(self.received) == 1:
                for seq, event in enumerate(self.events, 2):
                    await ws.send(orjson.dumps({**event, "seq": seq}).decode())


async def test_the_client_logs_and_ignores_an_event_of_unknown_type(caplog: pytest.LogCaptureFixture) -> None:
    """An event type the client does not know (a newer gateway's) is logged and skipped; the execution goes on."""
    server = ScriptedGateway([
        {"type": "accepted", "id": "c1", "queue_position": 0},
        {"type": "started", "id": "c1"},
        {"type": "forecast", "id": "c1", "eta_ms": 300},
        {"type": "result", "id": "c1", "result": 0, "schema": [{"name": "one", "type": "int", "nullable": False}],
         "format": "json", "limit": None, "layout_hint": "new field"},
        {"type": "rows", "id": "c1", "result": 0, "offset": 0, "rows": [[1], [2]], "last": True, "truncated": False},
        {"type": "finished", "id": "c1", "status": "ok", "elapsed_ms": 3.0,
         "results": [{"result": 0, "rows": 2, "truncated": False}]},
    ])
    caplog.set_level(logging.WARNING, logger="spark_gateway_client")
    async with serve(server.handler, "127.0.0.1", server.port,
                     subprotocols=[PROTOCOL_VERSION]):  # type: ignore[list-item]
        async with connect(f"ws://127.0.0.1:{server.port}/ws", resume=False) as session:
            async with asyncio.timeout(10):
                execution = session.sql("SELECT 1")
                assert await execution.rows() == [[1], [2]]
            assert execution.status == "ok" and session.state == "open"
    assert "ignored an event of unknown type 'forecast'" in caplog.text



async def test_editor_requests_get_their_answers_and_errors_by_id() -> None:
    """complete, inspect and catalog each get their own answer; an error refusing one raises, typed, from it alone."""
    async def handler(ws: ServerConnection) -> None:
        await ws.send(orjson.dumps({
            "type": "session", "seq": 1, "session_id": "s", "spark_session_id": "x", "protocol": PROTOCOL_VERSION,
            "gateway_version": "0", "spark_version": "4", "languages": ["sql"], "formats": ["json"], "limits": {},
        }).decode())
        seq = 2
        async for message in ws:
            request = orjson.loads(message)
            rid = request["id"]
            if request["type"] == "complete":
                answer: Event = Completions(rid, 7, request["cursor"], [CompletionItem("name", "column", "string")])
            elif request["type"] == "inspect":
                answer = Error(ErrorCode.TIMEOUT, "no answer from Spark within 10 s", id=rid, request="inspect")
            else:
                answer = CatalogEntries(rid, request["path"], [CatalogEntry("default", "database")])
            await ws.send(encode_event(answer, seq))
            seq += 1

    from spark_gateway_client import RequestRefused

    port = free_port()
    async with serve(handler, "127.0.0.1", port, subprotocols=[PROTOCOL_VERSION]):  # type: ignore[list-item]
        async with connect(f"ws://127.0.0.1:{port}/ws", resume=False) as session:
            async with asyncio.timeout(10):
                completions, entries = await asyncio.gather(session.complete("SELECT na FROM t", 9),
                                                            session.catalog(["spark_catalog"]))
                assert (completions.from_, completions.to, completions.items[0].label) == (7, 9, "name")
                assert entries.path == ["spark_catalog"] and entries.entries[0].name == "default"
                with pytest.raises(RequestRefused) as refused:
                    await session.inspect("SELECT upper(x)", 8)
                assert refused.value.code == "timeout"
                assert (await session.complete("x")).to == 1  # the cursor defaults to the end of the code


async def test_a_download_request_lost_with_its_connection_is_asked_again_on_resume() -> None:
    """The connection drops after a `download` went out, unanswered: the resumed client asks again and gets its link."""
    requests: list[tuple[str, dict[str, Any]]] = []

    async def handler(ws: ServerConnection) -> None:
        resuming = "resume=" in (ws.request.path if ws.request else "")
        if resuming:
            await ws.send(encode_event(Resumed("s", "x", 1, 2), 0))
        else:
            await ws.send(orjson.dumps({
                "type": "session", "seq": 1, "session_id": "s", "spark_session_id": "x",
                "protocol": PROTOCOL_VERSION, "gateway_version": "0", "spark_version": "4", "languages": ["sql"],
                "formats": ["json"], "limits": {"resume_grace": 30},
            }).decode())
        async for message in ws:
            request = orjson.loads(message)
            requests.append(("resumed" if resuming else "first", request))
            if request["type"] != "download":
                continue
            if not resuming:  # the network drops with the request unanswered
                ws.transport.abort()
                return
            await ws.send(encode_event(DownloadLink(request["id"], request["result"], request["format"],
                                                    "/download?sig=x", 300), 2))

    port = free_port()
    async with serve(handler, "127.0.0.1", port, subprotocols=[PROTOCOL_VERSION]):  # type: ignore[list-item]
        async with connect(f"ws://127.0.0.1:{port}/ws") as session:
            async with asyncio.timeout(20):
                url = await session.download_link("q1", 0, format="arrow")
    assert url == f"http://127.0.0.1:{port}/download?sig=x"
    downloads = [(where, r["id"], r["format"]) for where, r in requests if r["type"] == "download"]
    assert downloads == [("first", "q1", "arrow"), ("resumed", "q1", "arrow")]
