"""The web client's js/protocol.js says what the Python protocol says, and is the only JS module that says it.

Fast tier: ``node`` loads protocol.js (a plain ES module) and prints its constants; no browser.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, get_args

import pytest

from spark_gateway_protocol import close_codes
from spark_gateway_protocol.errors import ErrorCode
from spark_gateway_protocol.messages import (
    DEFAULT_PAGE_SIZE,
    DOWNLOAD_FORMATS,
    EVENT_TYPES,
    FORMATS,
    KINDS,
    LANGUAGES,
    MAX_PAGE_SIZE,
    PROTOCOL_VERSION,
    REQUEST_TYPES,
    UNITS,
    Status,
)

JS = Path(__file__).resolve().parent.parent / "clients" / "web" / "js"
PROTOCOL_JS = JS / "protocol.js"

DUMP = """
const P = await import(process.argv[1]);
const plain = (value) => value instanceof Set ? [...value].sort((a, b) => a - b) : value;
console.log(JSON.stringify(Object.fromEntries(Object.entries(P)
  .filter(([, value]) => typeof value !== "function").map(([name, value]) => [name, plain(value)]))));
"""


@pytest.fixture(scope="module")
def js() -> dict[str, Any]:
    """The exported constants of js/protocol.js, as node evaluates them."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    out = subprocess.run([node, "--input-type=module", "-e", DUMP, PROTOCOL_JS.as_uri()],
                         capture_output=True, text=True, check=True, timeout=30)
    return dict(json.loads(out.stdout))


def close_code_constants() -> dict[str, int]:
    """spark_gateway_protocol.close_codes' CLOSE_* constants, without the prefix."""
    return {name.removeprefix("CLOSE_"): value for name, value in vars(close_codes).items()
            if name.startswith("CLOSE_") and isinstance(value, int)}


def test_message_types_and_version_match_the_python_protocol(js: dict[str, Any]) -> None:
    """Every request and event type, and the subprotocol, are those of spark_gateway_protocol.messages."""
    assert js["SUBPROTOCOL"] == PROTOCOL_VERSION
    assert sorted(js["Req"].values()) == sorted(REQUEST_TYPES)
    assert sorted(js["Evt"].values()) == sorted(EVENT_TYPES)
    for group in ("Req", "Evt"):  # the JS name is the wire name, upper-cased
        assert all(name == value.upper().replace("-", "_") for name, value in js[group].items()), group


def test_error_codes_match_the_python_protocol(js: dict[str, Any]) -> None:
    """js ErrorCode is ErrorCode: the same names, the same values."""
    assert js["ErrorCode"] == {code.name: code.value for code in ErrorCode}


def test_close_codes_match_the_python_protocol(js: dict[str, Any]) -> None:
    """js Close is spark_gateway_protocol.close_codes, and so is the set of codes after which no resume helps."""
    assert js["Close"] == close_code_constants()
    assert js["FINAL_CLOSES"] == sorted(close_codes.FINAL)


def test_statuses_languages_formats_and_page_sizes_match_the_python_protocol(js: dict[str, Any]) -> None:
    """The values of `finished.status`, `execute.language` / `format`, and the page sizes are the protocol's."""
    assert sorted(js["Status"].values()) == sorted(get_args(Status))
    assert sorted(js["Language"].values()) == sorted(LANGUAGES)
    assert sorted(js["Format"].values()) == sorted(FORMATS)
    assert sorted(js["DownloadFormat"].values()) == sorted(DOWNLOAD_FORMATS)
    assert (js["DEFAULT_PAGE_SIZE"], js["MAX_PAGE_SIZE"]) == (DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def test_editor_units_and_kinds_match_the_python_protocol(js: dict[str, Any]) -> None:
    """The `units` of complete/inspect and the `kind` of completion items and catalog entries are the protocol's."""
    assert sorted(js["Units"].values()) == sorted(UNITS)
    assert sorted(js["Kind"].values()) == sorted(KINDS)


def test_no_other_module_spells_a_protocol_constant() -> None:
    """Outside protocol.js, no JS module writes an error code, a request/event type test or a close code literally."""
    error_codes = "|".join(code.value for code in ErrorCode)
    distinct_types = "|".join(t for t in [*REQUEST_TYPES, *EVENT_TYPES] if "-" in t) + "|resumed"
    close = "|".join(str(code) for code in close_code_constants().values())
    patterns = [
        re.compile(rf'"({error_codes}|{distinct_types}|{re.escape(PROTOCOL_VERSION)})"'),
        re.compile(r'\.(type|request|code|status)\s*[!=]==?\s*"'),  # msg.type === "…" and the like
        re.compile(rf"(?i)(close|code).*\b({close})\b"),  # a close code, on a line about closing
    ]
    found = [f"{path.name}:{n}: {line.strip()}"
             for path in sorted(JS.glob("*.js")) if path != PROTOCOL_JS
             for n, line in enumerate(path.read_text().splitlines(), 1)
             if any(p.search(line) for p in patterns)]
    assert not found, "use the constants of js/protocol.js:\n" + "\n".join(found)


DISPATCH = """
globalThis.window = { addEventListener() {} };  // all of the browser that constructing a client touches
const warnings = [];
console.warn = (...args) => warnings.push(String(args[0]));
const { GatewayClient } = await import(process.argv[1]);
const notices = [];
const ui = { onNotice: (kind, text) => notices.push([kind, text]), onSession() {}, onState() {}, onDrop() {} };
const client = new GatewayClient(ui, "ws://127.0.0.1:9/ws");
for (const msg of [
  { type: "forecast", seq: 1, id: "c1", eta_ms: 300 },
  { type: "pong", seq: 2, data: null },
  { type: "resumed", seq: 3, session_id: "s", spark_session_id: "x", last_seq: 0, next_seq: 1, credit: [] },
]) client._onFrame(JSON.stringify(msg));
console.log(JSON.stringify({ notices, warnings, expectedSeq: client.expectedSeq }));
"""


def test_the_web_client_reports_an_event_of_unknown_type_and_goes_on() -> None:
    """js/client.js's one switch reports an unknown event type as a notice, ignores it, and keeps the stream going."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    out = subprocess.run([node, "--input-type=module", "-e", DISPATCH, (JS / "client.js").as_uri()],
                         capture_output=True, text=True, check=True, timeout=30)
    seen = json.loads(out.stdout)
    assert seen["notices"] == [["warning", 'Unknown message type "forecast" from the gateway (ignored).']]
    assert any("unexpected resumed event" in w for w in seen["warnings"])  # known, but out of place: no notice
    assert seen["expectedSeq"] == 4
