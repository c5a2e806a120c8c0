"""The editor's requests to the gateway (js/lookups.js) and its local completion (js/assist.js), in node.

Fast tier: ``node`` loads the page's own ES modules (and the vendored CodeMirror, which needs no DOM
for an editor state); the transport is a recording ``send``, the frames are those the gateway sends.
The browser tests (tests/test_web_editor.py) drive the same code against the real gateway.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

WEB = Path(__file__).resolve().parent.parent / "clients" / "web"


def run_node(script: str) -> Any:
    """Run an ES module script with the web client's folder as its base; what it prints, as JSON."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    prelude = f'const WEB = {json.dumps(WEB.as_uri())};\nglobalThis.window = {{ addEventListener() {{}} }};\n'
    out = subprocess.run([node, "--input-type=module", "-e", prelude + script],
                         capture_output=True, text=True, check=True, timeout=60)
    return json.loads(out.stdout)


def test_offsets_convert_between_utf16_and_code_points() -> None:
    """A cursor after an emoji is one code point less than its JavaScript offset, and back; ASCII is unchanged."""
    seen = run_node("""
const { toCodePoints, fromCodePoints } = await import(`${WEB}/js/lookups.js`);
const text = "a\\u{1F600}b\\u{1F600}";  // a 😀 b 😀: 6 UTF-16 units, 4 code points
console.log(JSON.stringify({
  to: [0, 1, 3, 4, 6].map((i) => toCodePoints(text, i)),
  from: [0, 1, 2, 3, 4, 9].map((p) => fromCodePoints(text, p)),
  ascii: [toCodePoints("SELECT 1", 5), fromCodePoints("SELECT 1", 5), fromCodePoints("ab", 7)],
}));
""")
    assert seen == {"to": [0, 1, 2, 3, 4], "from": [0, 1, 3, 4, 6, 6], "ascii": [5, 5, 2]}


def test_complete_sends_code_points_and_maps_the_answer_back() -> None:
    """complete sends the cursor in code points and turns the answer's from/to into editor (UTF-16) offsets."""
    seen = run_node("""
const { Lookups } = await import(`${WEB}/js/lookups.js`);
const sent = [];
const lookups = new Lookups((message) => { sent.push(message); return true; });
const code = "SELECT '\\u{1F600}', co";  // the emoji: 2 UTF-16 units, 1 code point
const pending = lookups.complete("sql", code, code.length);
lookups.answered({ type: "completions", seq: 7, id: sent[0].id, from: 12, to: 14,
                   items: [{ label: "count", kind: "function", detail: "count(expr)" }] });
const answer = await pending;
console.log(JSON.stringify({ sent, from: answer.from, to: answer.to, items: answer.items,
                             supported: lookups.supported }));
""")
    [request] = seen["sent"]
    assert request == {"type": "complete", "id": request["id"], "code": "SELECT '\U0001f600', co", "cursor": 14,
                       "language": "sql"}
    assert (seen["from"], seen["to"]) == (13, 15)  # "co", in UTF-16 units
    assert seen["items"] == [{"label": "count", "kind": "function", "detail": "count(expr)"}]
    assert seen["supported"] is True


def test_an_older_gateway_makes_the_editor_stop_asking_without_a_notice() -> None:
    """The gateway's unknown_type error for `complete`, through client.js's one dispatch: the request fails
    quietly (no notice), the editor knows the gateway cannot answer, and the next lookups send nothing."""
    seen = run_node("""
const { GatewayClient } = await import(`${WEB}/js/client.js`);
const notices = [];
const ui = { onNotice: (kind, text) => notices.push([kind, text]), onSession() {}, onState() {}, onDrop() {} };
const client = new GatewayClient(ui, "ws://127.0.0.1:9/ws");
const sent = [];
client.lookups.send = (message) => { sent.push(message); return true; };
const asked = client.lookups.complete("sql", "SELECT * FROM con", 17).catch((err) => err.code);
client._onFrame(JSON.stringify({ type: "error", seq: 1, id: sent[0].id, request: "complete", code: "unknown_type",
  message: "unknown message type 'complete'; expected one of close-result, execute, interrupt, ping, stream-rows" }));
const first = await asked;
const second = await client.lookups.catalog([]).catch((err) => err.code);
console.log(JSON.stringify({ first, second, sent: sent.length, supported: client.lookups.supported, notices,
                             expectedSeq: client.expectedSeq }));
""")
    assert seen == {"first": "unknown_type", "second": "unknown_type", "sent": 1, "supported": False, "notices": [],
                    "expectedSeq": 2}


def test_answers_and_errors_reach_the_request_they_answer() -> None:
    """catalog-entries and inspection events resolve their own request; a Spark error rejects only its own."""
    seen = run_node("""
const { GatewayClient } = await import(`${WEB}/js/client.js`);
const client = new GatewayClient({ onNotice() {}, onSession() {}, onState() {}, onDrop() {} }, "ws://127.0.0.1:9/ws");
const sent = [];
client.lookups.send = (message) => { sent.push(message); return true; };
const tables = client.lookups.catalog(["spark_catalog", "default"]);
const missing = client.lookups.catalog(["spark_catalog", "nowhere"]).catch((err) => [err.code, err.message]);
const what = client.lookups.inspect("sql", "SELECT * FROM sales", 19);
const frames = [
  { type: "error", seq: 1, id: sent[1].id, request: "catalog", code: "spark_error",
    message: "[SCHEMA_NOT_FOUND] nowhere" },
  { type: "inspection", seq: 2, id: sent[2].id, found: true, kind: "view", name: "sales",
    columns: [{ name: "amount", kind: "column", type: "decimal(10,2)" }] },
  { type: "catalog-entries", seq: 3, id: sent[0].id, path: ["spark_catalog", "default"], truncated: false,
    entries: [{ name: "sales", kind: "view", type: "TEMPORARY" }] },
];
for (const frame of frames) client._onFrame(JSON.stringify(frame));
console.log(JSON.stringify({ tables: await tables, missing: await missing, what: await what,
                             pending: client.lookups.pending.size }));
""")
    assert seen["tables"]["entries"] == [{"name": "sales", "kind": "view", "type": "TEMPORARY"}]
    assert seen["missing"] == ["spark_error", "[SCHEMA_NOT_FOUND] nowhere"]
    assert seen["what"]["name"] == "sales" and seen["what"]["columns"][0]["type"] == "decimal(10,2)"
    assert seen["pending"] == 0


def test_local_completion_offers_keywords_functions_and_the_names_in_the_cell() -> None:
    """Without the gateway: SQL keywords (upper case), functions and the cell's names, not the word being
    typed; Python's keywords and builtins and the cell's variables."""
    seen = run_node("""
const { EditorState } = await import(`${WEB}/vendor/codemirror.js`);
const { localCompletion } = await import(`${WEB}/js/assist.js`);
const options = (language, doc) => {
  const state = EditorState.create({ doc });
  const from = doc.length - /[\\w$]*$/.exec(doc)[0].length;
  return Object.fromEntries(localCompletion(state, language, from, doc.length).options.map((o) => [o.label, o.type]));
};
const sql = options("sql", "SELECT amount, product_name FROM sales;\\nSEL");
const py = options("python", "totals = spark.range(3)\\nfor row in totals.collect():\\n    pri");
console.log(JSON.stringify({
  sql: ["SELECT", "FROM", "amount", "product_name", "sales", "count", "DECIMAL"].map((l) => [l, sql[l] ?? null]),
  typed: "SEL" in sql, lowerSelect: "select" in sql,
  py: ["print", "for", "totals", "row", "spark", "None"].map((l) => [l, py[l] ?? null]),
  pyTyped: "pri" in py,
}));
""")
    assert seen["sql"] == [["SELECT", "keyword"], ["FROM", "keyword"], ["amount", "variable"],
                           ["product_name", "variable"], ["sales", "variable"], ["count", "function"],
                           ["DECIMAL", "type"]]
    assert seen["typed"] is False and seen["lowerSelect"] is False
    assert seen["py"] == [["print", "function"], ["for", "keyword"], ["totals", "variable"], ["row", "variable"],
                          ["spark", "variable"], ["None", "keyword"]]
    assert seen["pyTyped"] is False
