"""The Jupyter kernel (clients/python/spark_gateway_kernel).

Fast tests check the magics, the MIME bundles and the order of outputs without Java. The
integration tests install the kernelspec into a temporary prefix and start it with the real
jupyter_client (``KernelManager``), nbclient and ``jupyter nbconvert``, against the real
gateway on a real Spark Connect server.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from spark_gateway_kernel import cells, display, kernelspec
from spark_gateway_kernel.cells import CellError
from spark_gateway_kernel.outputs import CellOutput
from websockets.sync.client import connect as ws_connect

from spark_gateway_client import Column, GatewayConnectionError, Interrupted, PythonError, QueryError, SessionLost
from spark_gateway_protocol import PROTOCOL_VERSION
from spark_gateway_protocol.messages import Value
from tests.conftest import ROOT, GatewayProcess, running_jobs

integration = pytest.mark.integration
# The first integration test pays for Spark, the gateway and a kernel starting (80 s on a busy 2-core machine).
pytestmark = pytest.mark.timeout(300)
LONG_JOB = "SELECT sum(id % 7) FROM range(0, 200000000000, 1, 4)"
DATA_RESOURCE = "application/vnd.dataresource+json"
BIN = Path(sys.executable).parent
ANSI = re.compile(r"\x1b\[[0-9;]*m")


# ================================================================ fast: magics


def test_a_cell_is_python_unless_a_magic_says_sql() -> None:
    """Plain code is one Python part; `%%sql` on the first line makes the rest of the cell one SQL part."""
    assert [(p.language, p.code) for p in cells.parse("x = 1\nprint(x)")] == [("python", "x = 1\nprint(x)")]
    [part] = cells.parse("%%sql\nSELECT 1;\nSELECT 2")
    assert part.language == "sql" and part.code == "\nSELECT 1;\nSELECT 2" and part.output is None
    assert cells.parse("%%sql\n   \n") == [] and cells.parse("") == []


def test_sql_lines_run_where_they_stand_among_python_lines() -> None:
    """`%sql` lines split a cell into Python and SQL parts, in order, options read before the statement."""
    parts = cells.parse("a = 1\n%sql -n 5 SELECT 'x;y' AS s\nprint(a)\n%sql --output=df SELECT 2")
    assert [(p.language, p.max_rows, p.output) for p in parts] == [
        ("python", None, None), ("sql", 5, None), ("python", None, None), ("sql", None, "df")]
    assert parts[1].code.strip() == "SELECT 'x;y' AS s"


@pytest.mark.parametrize("cell", [
    "%%sql\nSELECT 1 AS a,\n  no_such_col FROM t",
    "x = 1\n\n%sql -o df SELECT bad FROM t\n",
    "%%sql -n 3\r\nSELECT 1",
    "import os\n%sql SELECT 1\nprint(1)\n%sql   SELECT   2",
])
def test_every_part_maps_back_to_the_cell_line_for_line(cell: str) -> None:
    """Each part's code sits on its own line and column of the cell: offset i of the code is offset i + start."""
    for part in cells.parse(cell):
        code = part.code
        for i, ch in enumerate(code):
            if not ch.isspace():
                assert cell[i + part.start] == ch, (part, i)
        first = len(code) - len(code.lstrip())
        assert code[:first].count("\n") == cell[: first + part.start].count("\n")


@pytest.mark.parametrize(("cell", "message"), [
    ("%%bash\nls", "unknown cell magic %%bash"),
    ("%%sql SELECT 1", "unexpected 'SELECT 1'"),
    ("%%sql -o 1x\nSELECT 1", "not a Python name"),
    ("%%sql -o class\nSELECT 1", "not a Python name"),
    ("%%sql -n 0\nSELECT 1", "at least 1"),
    ("%%sql -x\nSELECT 1", "unknown option '-x'"),
    ("%sql", "no statement"),
    ("%%sql -o t\nSELECT 1; INSERT INTO t VALUES (1)", "must be a query"),
    ("%%sql -o t\nCREATE TABLE t AS SELECT 1", "must be a query"),
])
def test_malformed_magics_are_usage_errors(cell: str, message: str) -> None:
    """Bad magics raise CellError naming the problem; nothing runs."""
    with pytest.raises(CellError, match=re.escape(message)):
        cells.parse(cell)


def test_last_statement_ignores_semicolons_in_strings_names_and_comments() -> None:
    """The statement `-o` binds is the last one at top level, as the gateway splits a script."""
    sql = "CREATE TEMP VIEW v AS SELECT 1 AS `a;b`; -- x;\n SELECT 'p;q', \"r;s\" /* ; /* ; */ */ FROM v;\n"
    assert cells.last_statement(sql) == "-- x;\n SELECT 'p;q', \"r;s\" /* ; /* ; */ */ FROM v"
    assert cells.last_statement(r"SELECT 'it\'s;' AS a") == r"SELECT 'it\'s;' AS a"
    assert cells.last_statement("BEGIN SELECT 1; SELECT 2; END;") == "BEGIN SELECT 1; SELECT 2; END"
    assert cells.last_statement(" ; -- nothing\n") is None
    assert cells.query_statement("/* c */ (SELECT 1)") and cells.query_statement("with x as (select 1) select *")
    assert not cells.query_statement("INSERT INTO t SELECT 1") and not cells.query_statement("-- SELECT\nDROP t")


@pytest.mark.parametrize(("cell", "status"), [
    ("x = 1", "complete"),
    ("for i in range(3):", "incomplete"),
    ("for i in range(3):\n    print(i)", "incomplete"),
    ("for i in range(3):\n    print(i)\n\n", "complete"),
    ("f(1,", "incomplete"),
    ("x = )", "invalid"),
    ("%%sql", "incomplete"),
    ("%%sql\nSELECT 1", "incomplete"),
    ("%%sql\nSELECT 1;", "complete"),
    ("%%sql\nSELECT 1\n", "complete"),
    ("%%sql\nSELECT 'a;", "incomplete"),
    ("%%sql\nSELECT 1 /* open;", "incomplete"),
    ("print(1)\n%sql SELECT 1", "complete"),
    ("%%bash\nls", "invalid"),
])
def test_is_complete_follows_python_and_sql(cell: str, status: str) -> None:
    """is_complete: codeop for Python; a `%%sql` cell is complete at a final `;` or an empty line."""
    reply = cells.is_complete(cell)
    assert reply["status"] == status
    if cell == "for i in range(3):":
        assert reply["indent"] == "    "


# ================================================================ fast: MIME bundles

COLUMNS = [Column("id", "bigint", False), Column("d", "decimal(10,2)", True), Column("s", "string", True),
           Column("id", "int", False), Column("arr", "array<int>", True), Column("b", "binary", True),
           Column("dt", "interval day to second", True)]
ROWS: list[list[Any]] = [
    [9007199254740993, "1.50", "<b>&", 1, [1, None], "AP8=", "P1DT2H"],
    [-1, None, "two\nlines", 2, [], None, "PT0S"],
]


def test_a_result_is_html_text_and_a_data_resource_with_the_same_rows() -> None:
    """The three bundles hold every row as the gateway sent it (big integers whole, decimals as strings)."""
    bundle = display.result_bundle(COLUMNS, ROWS, truncated=False, max_rows=1000)
    page = bundle["text/html"]
    assert "&lt;b&gt;&amp;" in page and "<b>&" not in page  # escaped, never markup
    assert "9007199254740993" in page and "decimal(10,2)" in page and "NULL" in page and "2 rows" in page
    assert "white-space:pre-wrap" in page  # a value with a line break keeps it
    plain = bundle["text/plain"]
    assert "9007199254740993" in plain and plain.endswith("(2 rows)")
    resource = bundle[DATA_RESOURCE]
    names = [f["name"] for f in resource["schema"]["fields"]]
    assert names == ["id", "d", "s", "id_2", "arr", "b", "dt"]  # a repeated name would lose a value
    assert resource["schema"]["fields"][3]["title"] == "id"
    assert [(f["type"], f["spark_type"]) for f in resource["schema"]["fields"]] == [
        ("integer", "bigint"), ("number", "decimal(10,2)"), ("string", "string"), ("integer", "int"),
        ("array", "array<int>"), ("string", "binary"), ("duration", "interval day to second")]
    assert resource["data"][0] == dict(zip(names, ROWS[0], strict=True))
    assert orjson.loads(orjson.dumps(resource))["data"][0]["id"] == 9007199254740993


def test_more_rows_than_shown_is_said_in_every_bundle() -> None:
    """When the display limit left rows out, HTML and text say so and how to see more; nothing is cut silently."""
    bundle = display.result_bundle(COLUMNS, ROWS, truncated=True, max_rows=2)
    for text in (bundle["text/html"], bundle["text/plain"]):
        assert "2 rows shown; more rows exist" in text and "%%sql -n ROWS" in text
    python = display.result_bundle(COLUMNS, ROWS, truncated=True, max_rows=2, language="python")
    assert "more rows exist (at most 2 are shown: the kernel's --max-rows" in python["text/plain"]


def test_table_schema_types_of_spark_types() -> None:
    """Spark type strings map to Table Schema types; intervals are durations, not integers."""
    cases = {"tinyint": "integer", "double": "number", "boolean": "boolean", "date": "date",
             "timestamp": "datetime", "timestamp_ntz": "datetime", "interval year to month": "duration",
             "struct<a:int>": "object", "map<string,int>": "object", "map<int,string>": "array",
             "variant": "string", "void": "any"}
    assert {t: display.table_schema_type(t)["type"] for t in cases} == cases


def test_a_cut_value_repr_says_so() -> None:
    """A repr the gateway cut at max_value_chars is shown with its full length."""
    assert display.value_bundle(Value("c1", "'abc", "str", truncated=True, length=9))["text/plain"].endswith(
        "its first 4 of 9 characters are shown, the gateway's max_value_chars)")


def test_sql_errors_are_named_by_error_class_and_mark_the_cell_fragment() -> None:
    """A Spark error's ename is its error class; the traceback shows the cell's line with the fragment marked."""
    cell = "%%sql\nSELECT 1;\nSELECT *\n  FROM no_such_table"
    [part] = cells.parse(cell)
    start = part.code.index("no_such_table")
    error = QueryError("[TABLE_OR_VIEW_NOT_FOUND] no", error_class="TABLE_OR_VIEW_NOT_FOUND", sql_state="42P01",
                       context=[cells_context(start, start + 12)], exception="AnalysisException")
    content = display.error_content(error, cell, part)
    assert content["ename"] == "TABLE_OR_VIEW_NOT_FOUND" and content["evalue"] == "[TABLE_OR_VIEW_NOT_FOUND] no"
    lines = [ANSI.sub("", line) for line in content["traceback"]]
    assert lines[-2:] == ["   4 |   FROM no_such_table", "     |        ^^^^^^^^^^^^^"]


def cells_context(start: int, stop: int) -> Any:
    from spark_gateway_client import QueryContext

    return QueryContext("no_such_table", start, stop)


def test_other_errors_keep_their_python_names() -> None:
    """Python errors by exception type, interrupts as KeyboardInterrupt, a lost session by its class."""
    python = display.error_content(PythonError("ZeroDivisionError: division by zero", exception="ZeroDivisionError",
                                               traceback="Traceback...\nZeroDivisionError: division by zero\n"),
                                   "1/0", None)
    assert (python["ename"], python["evalue"]) == ("ZeroDivisionError", "division by zero")
    assert python["traceback"][-1] == "ZeroDivisionError: division by zero"
    assert display.error_content(Interrupted("x"), "", None)["ename"] == "KeyboardInterrupt"
    lost = display.error_content(SessionLost("gone", session_id="s"), "", None)
    assert lost["ename"] == "SessionLost" and "new session" in lost["traceback"][0]
    refused = display.error_content(GatewayConnectionError("cannot connect to the gateway at ws://x/ws"), "", None)
    assert refused == {"ename": "GatewayConnectionError", "evalue": "cannot connect to the gateway at ws://x/ws",
                       "traceback": ["\x1b[1;31mGatewayConnectionError\x1b[0m: cannot connect to the gateway at ws://x/ws"]}
    assert display.error_content(CellError("bad"), "", None)["ename"] == "UsageError"


# ================================================================ fast: output order


class Sent(list[tuple[str, dict[str, Any]]]):
    def __call__(self, msg_type: str, content: dict[str, Any]) -> None:
        self.append((msg_type, content))

    def kinds(self) -> list[str]:
        return [kind if kind != "stream" else f"stream:{c['text']}" for kind, c in self]


def test_text_printed_after_a_result_waits_for_the_result() -> None:
    """Printed text that arrives while the result before it is still being read is shown after that result."""
    sent = Sent()
    out = CellOutput(sent, 7)
    opened = [0]
    out.begin(lambda: opened[0])
    out.stream("stdout", "before\n")
    opened[0] = 1  # display(df): a result opens, then the code prints
    out.stream("stdout", "after\n")
    assert sent.kinds() == ["stream:before\n"]
    out.result({"text/plain": "table"})
    out.end("ok")
    out.finish()
    assert sent.kinds() == ["stream:before\n", "display_data", "stream:after\n"]


def test_the_last_table_of_a_cell_is_its_execute_result() -> None:
    """Several results: the earlier ones are display_data, the last one execute_result (Out[n])."""
    sent = Sent()
    out = CellOutput(sent, 3)
    out.begin(lambda: 2)
    out.result({"text/plain": "one"})
    out.result({"text/plain": "two"})
    out.end("ok")
    out.finish()
    assert sent.kinds() == ["display_data", "execute_result"]
    assert sent[1][1] == {"execution_count": 3, "data": {"text/plain": "two"}, "metadata": {}}


def test_a_table_nothing_follows_is_shown_while_the_code_goes_on() -> None:
    """display(df) then a long job: the table goes out after HOLD seconds, not at the end of the cell."""
    sent = Sent()
    timers: list[tuple[float, Any]] = []
    out = CellOutput(sent, 1, later=lambda delay, fn: timers.append((delay, fn)) or Timer())
    out.begin(lambda: 1)
    out.result({"text/plain": "table"})
    assert sent == [] and timers[0][0] == 0.5
    timers[0][1]()  # half a second later, nothing else came
    assert sent.kinds() == ["display_data"]
    out.end("ok")
    out.finish()
    assert sent.kinds() == ["display_data"]  # shown once


class Timer:
    def cancel(self) -> None:
        pass


def test_progress_is_one_display_updated_in_place_and_finalised() -> None:
    """Progress reports update one display (same display_id); the end replaces it by a final line."""
    from spark_gateway_client import Progress, StageProgress

    sent = Sent()
    out = CellOutput(sent, 1)
    out.begin(lambda: 0)
    for done in (1, 3):
        out.progress(Progress("c1", [StageProgress(4, done, 8, 0, False)], done, 8, 2, 0))
    out.end("interrupted")
    out.finish()
    assert [kind for kind, _ in sent] == ["display_data", "update_display_data", "update_display_data"]
    assert len({c["transient"]["display_id"] for _, c in sent}) == 1
    assert "3/8 tasks" in sent[1][1]["data"]["text/plain"] and "<progress" in sent[1][1]["data"]["text/html"]
    final = sent[2][1]["data"]
    assert final["text/plain"].endswith("(interrupted)") and "<progress" not in final["text/html"]


def test_a_silent_request_publishes_nothing() -> None:
    """execute_request with silent=True runs the code but sends no output."""
    sent = Sent()
    out = CellOutput(sent, 1, silent=True)
    out.begin(lambda: 1)
    out.stream("stdout", "x")
    out.result({"text/plain": "t"})
    out.end("ok")
    out.error({"ename": "E", "evalue": "", "traceback": []})
    assert sent == []


# ================================================================ fast: the kernelspec


def test_the_kernelspec_names_the_token_variable_never_the_token(tmp_path: Path) -> None:
    """`spark-gateway kernel install --prefix` writes a spec `jupyter kernelspec list` shows; no token in it."""
    env = {**os.environ, "SPARK_GATEWAY_TOKEN": "s3cret-token", "MY_TOKEN": "other-s3cret",
           "JUPYTER_PATH": str(tmp_path / "share" / "jupyter"), "JUPYTER_PLATFORM_DIRS": "1"}
    done = subprocess.run([str(BIN / "spark-gateway"), "kernel", "install", "--prefix", str(tmp_path),
                           "--url", "gateway.example:8765", "--token-env", "MY_TOKEN", "--name", "sg-test",
                           "--display-name", "Spark (test)"], env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "$MY_TOKEN" in done.stdout
    listed = subprocess.run([str(BIN / "jupyter"), "kernelspec", "list", "--json"], env=env, capture_output=True,
                            text=True, check=True)
    spec = json.loads(listed.stdout)["kernelspecs"]["sg-test"]
    folder = Path(spec["resource_dir"])
    assert folder.is_relative_to(tmp_path) and (folder / "logo-svg.svg").exists()
    content = spec["spec"]
    assert content["display_name"] == "Spark (test)" and content["interrupt_mode"] == "message"
    assert content["argv"][1:] == ["-m", "spark_gateway_kernel", "start", "-f", "{connection_file}",
                                   "--url", "ws://gateway.example:8765/ws", "--token-env", "MY_TOKEN"]
    text = (folder / "kernel.json").read_text()
    assert "s3cret" not in text
    with pytest.raises(ValueError, match="name of an environment variable"):
        kernelspec.spec(url=None, token_env="s3cret token!")


# ================================================================ integration: a real kernel, gateway and Spark


@pytest.fixture(scope="module")
def jupyter_path(tmp_path_factory: pytest.TempPathFactory, gateway: GatewayProcess) -> Iterator[Path]:
    """The kernelspec `spark-gateway`, installed into a temporary prefix for the real gateway; JUPYTER_PATH set."""
    prefix = tmp_path_factory.mktemp("jupyter-prefix")
    install(prefix, gateway.ws_url)
    path = prefix / "share" / "jupyter"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JUPYTER_PATH", str(path))
        patch.setenv("JUPYTER_PLATFORM_DIRS", "1")
        yield path


def install(prefix: Path, url: str, name: str = "spark-gateway") -> None:
    subprocess.run([sys.executable, "-m", "spark_gateway_kernel", "install", "--prefix", str(prefix),
                    "--url", url, "--name", name], check=True, capture_output=True)


class Kernel:
    """A kernel started by jupyter_client's KernelManager from its installed kernelspec."""

    def __init__(self, name: str = "spark-gateway") -> None:
        from jupyter_client.manager import KernelManager

        self.manager = KernelManager(kernel_name=name)
        self.manager.start_kernel()
        self.client = self.manager.blocking_client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=90)

    def info(self) -> dict[str, Any]:
        self.client.kernel_info()
        return self.client.get_shell_msg(timeout=60)["content"]

    def run(self, code: str, timeout: float = 120) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Execute ``code``: the reply's content and the cell's IOPub messages (status and input left out)."""
        messages: list[dict[str, Any]] = []
        reply = self.client.execute_interactive(code, timeout=timeout, output_hook=messages.append)
        return reply["content"], [m for m in messages if m["msg_type"] not in ("status", "execute_input")]

    def session_id(self) -> str:
        found = re.search(r"session ([0-9a-f-]{36})", self.info()["banner"])
        assert found is not None
        return found.group(1)

    def stop(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=False)  # shutdown_request: the kernel closes its gateway session


@pytest.fixture(scope="module")
def kernel(jupyter_path: Path) -> Iterator[Kernel]:
    """One kernel for the module's tests that do not need one of their own."""
    started = Kernel()
    yield started
    started.stop()


def outputs(messages: list[dict[str, Any]], *kinds: str) -> list[dict[str, Any]]:
    return [m["content"] for m in messages if m["msg_type"] in kinds]


def tables(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The tables a cell showed as ``display_data`` (not Spark's progress display, which has no data resource)."""
    return [c for c in outputs(messages, "display_data") if DATA_RESOURCE in c["data"]]


def stdout(messages: list[dict[str, Any]]) -> str:
    return "".join(c["text"] for c in outputs(messages, "stream") if c["name"] == "stdout")


@integration
def test_kernel_info_names_the_gateway_and_spark(kernel: Kernel) -> None:
    """kernel_info_reply: language python, and the banner gives the gateway's and Spark's versions."""
    info = kernel.info()
    assert info["language_info"]["name"] == "python" and info["implementation"] == "spark_gateway_kernel"
    assert re.match(r"3\.\d+", info["language_info"]["version"])
    assert re.search(r"Spark 4\.\d+\.\d+ through spark-gateway \d+\.\d+", info["banner"]), info["banner"]


@integration
def test_python_output_streams_and_the_trailing_value_is_the_result(kernel: Kernel) -> None:
    """print() becomes stream messages; the cell's trailing value its execute_result."""
    reply, messages = kernel.run("import sys\nprint('out')\nprint('err', file=sys.stderr)\n{'answer': 6 * 7}")
    assert reply["status"] == "ok"
    streams = [(c["name"], c["text"]) for c in outputs(messages, "stream")]
    assert streams == [("stdout", "out\n"), ("stderr", "err\n")]
    [result] = outputs(messages, "execute_result")
    assert result["data"] == {"text/plain": "{'answer': 42}"} and result["execution_count"] == reply["execution_count"]


@integration
def test_a_table_shows_while_the_next_statement_runs(kernel: Kernel) -> None:
    """A script's first table is shown while its next statement still runs (then the last is Out[n])."""
    messages: list[dict[str, Any]] = []
    reply = kernel.client.execute_interactive(
        "%%sql\nSELECT 1 AS one;\nSELECT reflect('java.lang.Thread', 'sleep', CAST(2500 AS bigint)) AS slept",
        timeout=120, output_hook=messages.append)
    assert reply["content"]["status"] == "ok", reply["content"]
    tables = [m for m in messages if DATA_RESOURCE in m["content"].get("data", {})]
    assert [m["msg_type"] for m in tables] == ["display_data", "execute_result"]
    assert tables[0]["content"]["data"][DATA_RESOURCE]["data"] == [{"one": 1}]
    assert (tables[1]["header"]["date"] - tables[0]["header"]["date"]).total_seconds() > 1.5


@integration
def test_a_sql_cell_shows_html_and_a_data_resource_with_exact_values(kernel: Kernel) -> None:
    """`%%sql`: the result comes as HTML, text and a data resource with Spark's types and the gateway's values."""
    reply, messages = kernel.run("%%sql\nSELECT id, 9007199254740993L + id AS big, CAST(id AS decimal(10,2)) AS d,\n"
                                 "  concat('<r', id, '>') AS s, DATE'2024-02-29' AS day FROM range(3)")
    assert reply["status"] == "ok", reply
    [result] = outputs(messages, "execute_result")
    data = result["data"]
    assert {"text/html", "text/plain", DATA_RESOURCE} <= set(data)
    assert "&lt;r2&gt;" in data["text/html"] and "3 rows" in data["text/html"]
    assert data["text/plain"].endswith("(3 rows)")
    fields = data[DATA_RESOURCE]["schema"]["fields"]
    assert [(f["name"], f["type"], f["spark_type"]) for f in fields] == [
        ("id", "integer", "bigint"), ("big", "integer", "bigint"), ("d", "number", "decimal(10,2)"),
        ("s", "string", "string"), ("day", "date", "date")]
    assert data[DATA_RESOURCE]["data"][2] == {"id": 2, "big": 9007199254740995, "d": "2.00", "s": "<r2>",
                                              "day": "2024-02-29"}


@integration
def test_more_rows_than_the_display_shows_are_announced(kernel: Kernel) -> None:
    """`%%sql -n 5` on 100 rows shows 5 and says more rows exist; a multi-statement cell shows each result."""
    reply, messages = kernel.run("%%sql -n 5\nSELECT 1 AS one;\nSELECT id FROM range(100)")
    assert reply["status"] == "ok"
    [first] = tables(messages)
    [last] = outputs(messages, "execute_result")
    assert first["data"][DATA_RESOURCE]["data"] == [{"one": 1}]
    assert [r["id"] for r in last["data"][DATA_RESOURCE]["data"]] == [0, 1, 2, 3, 4]
    assert "5 rows shown; more rows exist" in last["data"]["text/html"]
    assert last["metadata"]["spark_gateway"]["truncated"] is True


@integration
def test_a_spark_error_is_named_by_its_error_class_and_marks_the_fragment(kernel: Kernel) -> None:
    """A failing statement: error reply and message with Spark's error class, the SQL fragment marked."""
    reply, messages = kernel.run("%%sql\nSELECT 1 AS fine;\nSELECT *\n  FROM no_such_table")
    assert reply["status"] == "error"
    assert reply["ename"] == "TABLE_OR_VIEW_NOT_FOUND" and "no_such_table" in reply["evalue"]
    [error] = outputs(messages, "error")
    lines = [ANSI.sub("", line) for line in error["traceback"]]
    assert "   4 |   FROM no_such_table" in lines
    assert lines[lines.index("   4 |   FROM no_such_table") + 1] == "     |        ^^^^^^^^^^^^^"
    assert tables(messages)[-1]["data"][DATA_RESOURCE]["data"] == [{"fine": 1}]  # shown before


@integration
def test_a_python_error_is_named_by_its_exception_type(kernel: Kernel) -> None:
    """A Python exception: ename is its type, the traceback has the cell's line numbers."""
    reply, messages = kernel.run("x = 1\n\ndef f():\n    return 1 / 0\n\nf()")
    assert (reply["status"], reply["ename"], reply["evalue"]) == ("error", "ZeroDivisionError", "division by zero")
    text = "\n".join(outputs(messages, "error")[0]["traceback"])
    assert "line 6" in text and "line 4" in text


@integration
def test_sql_output_binds_a_dataframe_for_python_cells(kernel: Kernel) -> None:
    """`%%sql -o squares` binds the last statement as a DataFrame in the session, used by the next Python cell."""
    reply, _ = kernel.run("%%sql -o squares\nCREATE OR REPLACE TEMP VIEW nums AS SELECT id FROM range(6);\n"
                          "SELECT id, id * id AS sq FROM nums WHERE id > 1")
    assert reply["status"] == "ok", reply
    reply, messages = kernel.run("print(type(squares).__name__, squares.count())\nsquares.agg({'sq': 'sum'})")
    assert reply["status"] == "ok"
    assert stdout(messages) == "DataFrame 4\n"
    assert outputs(messages, "execute_result")[0]["data"][DATA_RESOURCE]["data"] == [{"sum(sq)": 54}]
    reply, _ = kernel.run("%%sql -o t\nINSERT INTO nowhere VALUES (1)")
    assert (reply["status"], reply["ename"]) == ("error", "UsageError")


@integration
def test_completion_inspection_and_is_complete_are_answered(kernel: Kernel) -> None:
    """complete_request and inspect_request are answered by the gateway (Python, and SQL in %%sql cells)."""
    client = kernel.client
    reply = client.complete("spark.ran", 9, reply=True, timeout=60)["content"]
    assert reply["status"] == "ok" and "range" in reply["matches"]
    assert (reply["cursor_start"], reply["cursor_end"]) == (6, 9)
    assert kernel.run("spark.range(3).createOrReplaceTempView('kernel_view')")[0]["status"] == "ok"
    cell = "%%sql\nSELECT * FROM kernel_v"
    client.complete(cell, len(cell), reply=True, timeout=60)  # a JVM's first catalog reads may pass the deadline
    reply = client.complete(cell, len(cell), reply=True, timeout=60)["content"]
    assert reply["matches"] == ["kernel_view"]
    assert (reply["cursor_start"], reply["cursor_end"]) == (len(cell) - len("kernel_v"), len(cell))
    reply = client.inspect("spark.range", 9, reply=True, timeout=60)["content"]
    assert reply["status"] == "ok" and reply["found"] is True and "range(" in reply["data"]["text/plain"]
    reply = client.inspect("%%sql\nSELECT * FROM kernel_view", 25, reply=True, timeout=60)["content"]
    assert reply["found"] is True and "id  bigint" in reply["data"]["text/plain"]
    assert shell_reply(client, client.is_complete("for i in x:"), 30) == {"status": "incomplete", "indent": "    "}
    assert shell_reply(client, client.is_complete("%%sql\nSELECT 1;"), 30) == {"status": "complete"}


@integration
@pytest.mark.parametrize("how", ["interrupt_request", "SIGINT"])
def test_interrupt_stops_the_spark_job(kernel: Kernel, spark_server: Any, how: str) -> None:
    """interrupt_request (interrupt_mode message), or SIGINT to the kernel, stops the cell's Spark job."""
    client = kernel.client
    msg_id = client.execute(f"%%sql\n{LONG_JOB}")
    deadline = time.monotonic() + 60
    while not [j for j in running_jobs(spark_server) if "jobId" in j]:
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.2)
    if how == "SIGINT":
        kernel.manager.signal_kernel(signal.SIGINT)
    else:
        kernel.manager.interrupt_kernel()
    reply = shell_reply(client, msg_id, 60)
    assert (reply["status"], reply["ename"]) == ("error", "KeyboardInterrupt")
    assert "interrupted" in reply["evalue"]
    deadline = time.monotonic() + 30
    while running_jobs(spark_server):
        assert time.monotonic() < deadline, running_jobs(spark_server)
        time.sleep(0.2)
    assert kernel.run("6 * 7")[0]["status"] == "ok"  # the session goes on


def shell_reply(client: Any, msg_id: str, timeout: float) -> dict[str, Any]:
    while True:
        message = client.get_shell_msg(timeout=timeout)
        if message["parent_header"].get("msg_id") == msg_id:
            return message["content"]


@integration
def test_a_dropped_websocket_resumes_without_losing_output(jupyter_path: Path, gateway: GatewayProcess,
                                                           tmp_path: Path) -> None:
    """The kernel's connection cut mid-cell: it resumes the session; every line arrives once; a notice says so."""
    from tests.test_python_client import TcpProxy

    proxy = TcpProxy(gateway.port)
    install(tmp_path, proxy.ws_url, name="spark-gateway-proxied")
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("JUPYTER_PATH", f"{tmp_path / 'share' / 'jupyter'}")
            started = Kernel("spark-gateway-proxied")
        try:
            assert started.run("marker = 41")[0]["status"] == "ok"
            cutter = threading.Timer(1.0, proxy.cut)
            cutter.start()
            reply, messages = started.run(
                "import time\nfor i in range(10):\n    print(i, flush=True)\n    time.sleep(0.3)\n"
                "spark.range(3).selectExpr('id * 2 AS twice')")
            cutter.join()
            assert reply["status"] == "ok", reply
            assert stdout(messages) == "".join(f"{i}\n" for i in range(10))
            notices = [c["text"] for c in outputs(messages, "stream") if c["name"] == "stderr"]
            assert any("dropped" in text for text in notices) and "resumed" in notices[-1], notices
            assert outputs(messages, "execute_result")[0]["data"][DATA_RESOURCE]["data"] == [
                {"twice": 0}, {"twice": 2}, {"twice": 4}]
            assert proxy.connections == 2
            assert outputs(started.run("marker + 1")[1], "execute_result")[0]["data"]["text/plain"] == "42"
        finally:
            started.stop()
    finally:
        proxy.close()


@integration
def test_restart_opens_a_new_session_and_shutdown_releases_it(jupyter_path: Path, gateway: GatewayProcess) -> None:
    """A restart gives a new gateway session (variables gone); shutdown ends it on the gateway at once."""
    started = Kernel()
    try:
        first = started.session_id()
        assert started.run("kept = 1")[0]["status"] == "ok"
        started.manager.restart_kernel(now=False)
        started.client.wait_for_ready(timeout=90)
        second = started.session_id()
        assert second != first
        reply, _ = started.run("kept")
        assert (reply["status"], reply["ename"]) == ("error", "NameError")
        assert resume_refused(gateway, first)
    finally:
        started.stop()
    assert resume_refused(gateway, second)


def resume_refused(gateway: GatewayProcess, session_id: str) -> bool:
    """Whether the gateway refuses to resume ``session_id``: it has ended (not kept for a resume)."""
    url = f"{gateway.ws_url}?resume={session_id}&last_seq=0"
    with ws_connect(url, subprotocols=[PROTOCOL_VERSION]) as ws:  # type: ignore[list-item]
        event = json.loads(ws.recv(timeout=30))
    return event["type"] == "error" and event["code"] == "resume_failed"


def mixed_notebook() -> Any:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "spark-gateway", "display_name": "Spark (gateway)", "language": "python"}
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Squares"),
        nbformat.v4.new_code_cell("%%sql\nCREATE OR REPLACE TEMP VIEW nums AS SELECT id, id * id AS sq FROM range(5)"),
        nbformat.v4.new_code_cell("%%sql -o squares\nSELECT * FROM nums WHERE id > 1"),
        nbformat.v4.new_code_cell("total = squares.groupBy().sum('sq').first()[0]\nprint('total', total)\ntotal"),
        nbformat.v4.new_code_cell("%sql SELECT count(*) AS n FROM nums\nprint('done')"),
    ]
    return nb


def check_executed(nb: Any) -> None:
    """The saved outputs of mixed_notebook()."""
    _, create, query, python, mixed = nb.cells
    assert [o["output_type"] for o in create.outputs if o["output_type"] != "display_data"] == []
    [result] = [o for o in query.outputs if o["output_type"] == "execute_result"]
    assert result["data"][DATA_RESOURCE]["data"] == [{"id": 2, "sq": 4}, {"id": 3, "sq": 9}, {"id": 4, "sq": 16}]
    assert "3 rows" in result["data"]["text/html"]
    assert [o.get("text") for o in python.outputs if o["output_type"] == "stream"] == ["total 29\n"]
    assert [o["data"]["text/plain"] for o in python.outputs if o["output_type"] == "execute_result"] == ["29"]
    kinds = [o["output_type"] for o in mixed.outputs if "Spark:" not in o.get("data", {}).get("text/plain", "")]
    assert kinds == ["display_data", "stream"]  # the table, then what was printed after it
    progress = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs
                if "Spark:" in o.get("data", {}).get("text/plain", "")]
    assert progress and all("<progress" not in o["data"]["text/html"] for o in progress)  # finalised


@integration
def test_nbclient_executes_a_notebook_of_mixed_cells(jupyter_path: Path) -> None:
    """nbclient runs SQL, `%%sql -o`, Python and mixed cells end to end; the saved outputs are right."""
    from nbclient import NotebookClient

    nb = mixed_notebook()
    NotebookClient(nb, timeout=120, kernel_name="spark-gateway").execute()
    check_executed(nb)


@integration
def test_nbconvert_execute_from_the_command_line(jupyter_path: Path, tmp_path: Path) -> None:
    """`jupyter nbconvert --to notebook --execute` runs a notebook saved with this kernel."""
    import nbformat

    source = tmp_path / "report.ipynb"
    nbformat.write(mixed_notebook(), source)
    done = subprocess.run([str(BIN / "jupyter"), "nbconvert", "--to", "notebook", "--execute", str(source),
                           "--output", "report.out.ipynb"], cwd=ROOT, env={**os.environ}, capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    check_executed(nbformat.read(tmp_path / "report.out.ipynb", as_version=4))


@integration
def test_a_token_is_read_from_the_named_variable(spark_remote: str, tmp_path: Path) -> None:
    """Against a gateway that requires a token, the kernel reads it from the variable the spec names."""
    secured = GatewayProcess(spark_remote, "--token", "kernel-test-token")
    try:
        subprocess.run([sys.executable, "-m", "spark_gateway_kernel", "install", "--prefix", str(tmp_path),
                        "--url", secured.ws_url, "--token-env", "KERNEL_TEST_TOKEN", "--name", "sg-token"],
                       check=True, capture_output=True)
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("JUPYTER_PATH", str(tmp_path / "share" / "jupyter"))
            patch.setenv("JUPYTER_PLATFORM_DIRS", "1")
            patch.delenv("KERNEL_TEST_TOKEN", raising=False)
            refused = Kernel("sg-token")
            try:
                reply, _ = refused.run("1")
                assert reply["ename"] == "GatewayConnectionError" and "KERNEL_TEST_TOKEN" in reply["evalue"]
            finally:
                refused.stop()
            patch.setenv("KERNEL_TEST_TOKEN", "kernel-test-token")
            allowed = Kernel("sg-token")
            try:
                assert outputs(allowed.run("6 * 7")[1], "execute_result")[0]["data"]["text/plain"] == "42"
            finally:
                allowed.stop()
        assert "kernel-test-token" not in (tmp_path / "share/jupyter/kernels/sg-token/kernel.json").read_text()
    finally:
        secured.stop()
