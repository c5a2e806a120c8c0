"""The command-line client (``spark-gateway query``), run as a subprocess against the real gateway.

``spark_gateway_client`` is found through PYTHONPATH, so the tests also work before ``pip install -e .``.
"""

from __future__ import annotations

import csv
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spark_gateway.spark_server import free_port
from spark_gateway_client import cli
from spark_gateway_protocol.messages import Column
from tests.conftest import ROOT, GatewayProcess

CLIENT_DIR = ROOT / "clients" / "python"
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(CLIENT_DIR), str(ROOT)])}
LONG_JOB = "SELECT sum(id % 7) FROM range(0, 200000000000, 1, 4)"

# 25000 rows with NULLs, empty strings and text that CSV must quote.
EXPORT = """SELECT id, concat('r', id) AS s, id * 0.5D AS half,
  CASE WHEN id % 10 = 0 THEN NULL ELSE id % 3 = 0 END AS flag,
  CASE id % 4 WHEN 0 THEN 'a,b' WHEN 1 THEN 'say "hi"' WHEN 2 THEN '' ELSE NULL END AS tricky
FROM range(25000)"""


def expected_export() -> list[dict[str, Any]]:
    tricky = {0: "a,b", 1: 'say "hi"', 2: "", 3: None}
    return [{"id": i, "s": f"r{i}", "half": i * 0.5, "flag": None if i % 10 == 0 else i % 3 == 0,
             "tricky": tricky[i % 4]} for i in range(25000)]


def command(url: str, *args: str) -> list[str]:
    """``spark-gateway query --url URL ...``, through the gateway's own command line."""
    return [sys.executable, "-m", "spark_gateway", "query", "--url", url, *args]


def run_cli(url: str, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command(url, *args), cwd=ROOT, env=ENV, capture_output=True, text=True,
                          timeout=timeout, check=False)


def test_table_for_a_small_query(gateway: GatewayProcess) -> None:
    """A small result prints as an aligned table (numbers right-aligned, NULL shown) with a row count."""
    done = run_cli(gateway.ws_url, "SELECT id, concat('row ', id) AS s, id * 1.5 AS x, "
                   "CAST(NULL AS string) AS n, array(id, NULL) AS a FROM range(3)")
    assert done.returncode == 0, done.stderr
    assert done.stdout == (
        " id | s     | x   | n    | a\n"
        "----+-------+-----+------+----------\n"
        "  0 | row 0 | 0.0 | NULL | [0,null]\n"
        "  1 | row 1 | 1.5 | NULL | [1,null]\n"
        "  2 | row 2 | 3.0 | NULL | [2,null]\n"
        "(3 rows)\n")


def test_table_is_capped_and_says_rows_were_omitted(gateway: GatewayProcess) -> None:
    """Beyond --max-rows the table stops, and says that rows were omitted and how to get them all."""
    done = run_cli(gateway.ws_url, "SELECT id FROM range(1500)", "--max-rows", "1000")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[2].strip() == "0" and lines[1001].strip() == "999" and len(lines) == 1003
    assert "1000 rows shown; more rows were omitted" in lines[-1] and "--format" in lines[-1]


def test_table_shows_multiline_values_as_lines_and_says_what_it_cut(gateway: GatewayProcess) -> None:
    """An EXPLAIN plan prints as a plan (one line per plan line, psql's + marks), a line wider
    than --max-width is cut with a note saying so, and --max-width 0 prints it whole."""
    sql = "EXPLAIN SELECT id, repeat('x', 200) AS wide FROM range(3) WHERE id > 1"
    done = run_cli(gateway.ws_url, sql)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].strip() == "plan" and lines[2].startswith(" == Physical Plan ==") and lines[2].endswith("+")
    assert any("Filter" in line for line in lines[3:]), done.stdout
    assert all(len(line) <= 83 for line in lines[2:-2]), done.stdout
    cut = [line for line in lines if line.rstrip(" +").endswith("…")]
    assert cut and lines[-2] == "(1 value cut at 80 characters per line, marked …: --max-width 0 shows them whole)"
    assert lines[-1] == "(1 row)"
    whole = run_cli(gateway.ws_url, sql, "--max-width", "0")
    assert whole.returncode == 0, whole.stderr
    assert "…" not in whole.stdout and "cut at" not in whole.stdout
    assert "x" * 200 + " AS wide" in whole.stdout, whole.stdout  # Spark folds repeat() into the plan


def test_format_table_cells() -> None:
    """The table's cell rules: NULL, booleans, JSON for nested values, line breaks, tabs, width."""
    columns = [Column("s", "string", True), Column("n", "int", True)]
    table = cli.format_table(columns, [["a\nbb", 7], [None, None], ["t\tu", True], [[1, None], 123]], 0)
    assert table.cut == 0
    assert table.text == (
        " s        | n\n"
        "----------+------\n"
        " a       +|    7\n"
        " bb       |\n"
        " NULL     | NULL\n"
        " t\\tu     | true\n"
        " [1,null] |  123\n")
    narrow = cli.format_table(columns, [["abcdefghij", 1], ["東京東京東京", 2]], 6)
    assert narrow.cut == 2
    assert narrow.text.splitlines()[2:] == [" abcde… | 1", " 東京…  | 2"]


def test_files_in_every_format_hold_the_whole_result(gateway: GatewayProcess, spark: Any,
                                                     tmp_path: Path) -> None:
    """CSV, JSON Lines, Arrow IPC and Parquet files of a 25000-row result hold exactly its rows."""
    paths = {fmt: tmp_path / f"out.{ext}" for fmt, ext in
             (("csv", "csv"), ("jsonl", "jsonl"), ("arrow", "arrows"), ("parquet", "parquet"))}
    runs = [subprocess.Popen(command(gateway.ws_url, EXPORT, "-o", str(path)), cwd=ROOT, env=ENV,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for path in paths.values()]
    try:
        for run in runs:
            out, err = run.communicate(timeout=120)
            assert run.returncode == 0, err
            assert out == ""
    finally:
        for run in runs:
            run.kill()
            run.wait()
    expected = expected_export()

    text = paths["csv"].read_bytes().decode()
    assert text.startswith('id,s,half,flag,tricky\r\n0,r0,0.0,,"a,b"\r\n1,r1,0.5,false,"say ""hi"""\r\n'
                           '2,r2,1.0,false,""\r\n3,r3,1.5,true,\r\n')
    parsed = list(csv.DictReader(io.StringIO(text, newline="")))

    def as_csv(row: dict[str, Any]) -> dict[str, str]:
        return {k: "" if v is None else str(v).lower() if isinstance(v, bool) else str(v)
                for k, v in row.items()}

    assert parsed == [as_csv(row) for row in expected]

    lines = paths["jsonl"].read_bytes().splitlines()
    assert [orjson.loads(line) for line in lines] == expected

    theirs = spark.sql(EXPORT).toArrow()
    with pa.ipc.open_stream(paths["arrow"]) as reader:
        arrow_table = reader.read_all()
    assert arrow_table.equals(theirs, check_metadata=True)
    assert pq.read_table(paths["parquet"]).equals(theirs)


def test_csv_to_stdout_and_python_output_to_stderr(gateway: GatewayProcess) -> None:
    """With rows on stdout, what the code prints goes to stderr, so the data stays clean."""
    done = subprocess.run(command(gateway.ws_url, "--format", "csv", "-c", "print('note')\nspark.range(3)"),
                          cwd=ROOT, env=ENV, capture_output=True, timeout=90, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"id\r\n0\r\n1\r\n2\r\n" and b"note" in done.stderr


def test_python_code_from_c_and_f(gateway: GatewayProcess, tmp_path: Path) -> None:
    """-c runs Python (prints and the trailing value shown); -f takes the language from the extension."""
    done = run_cli(gateway.ws_url, "-c", "print('hello')\nx = 6 * 7\nx")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "hello\n42\n"
    script = tmp_path / "job.py"
    script.write_text("df = spark.range(2).selectExpr('id * 10 AS tens')\ndf\n")
    done = run_cli(gateway.ws_url, "-f", str(script))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[2:] == ["    0", "   10", "(2 rows)"]
    query = tmp_path / "q.sql"
    query.write_text("SELECT 'from a file' AS origin")
    assert "from a file" in run_cli(gateway.ws_url, "-f", str(query)).stdout


def test_a_cut_value_is_said_so(gateway: GatewayProcess) -> None:
    """A trailing value over the gateway's max_value_chars: its beginning on stdout, a note on stderr."""
    done = run_cli(gateway.ws_url, "-c", "'x' * 300000")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "'" + "x" * 262143 + "\n"
    assert "the first 262,144 of 300,002 characters" in done.stderr


def test_exit_codes_for_errors(gateway: GatewayProcess) -> None:
    """A SQL or Python error exits 1 (message on stderr); no server at the URL exits 3; bad usage exits 2."""
    done = run_cli(gateway.ws_url, "SELECT * FROM no_such_table")
    assert done.returncode == 1 and "TABLE_OR_VIEW_NOT_FOUND" in done.stderr and done.stdout == ""
    done = run_cli(gateway.ws_url, "-c", "raise ValueError('bad value')")
    assert done.returncode == 1 and "ValueError: bad value" in done.stderr
    done = run_cli(f"ws://127.0.0.1:{free_port()}/ws", "SELECT 1")
    assert done.returncode == 3 and "cannot connect" in done.stderr
    assert run_cli(gateway.ws_url).returncode == 2  # no code at all
    assert run_cli(gateway.ws_url, "SELECT 1", "--format", "parquet").returncode == 2  # parquet needs -o
    assert run_cli(gateway.ws_url, "SELECT 1", "-o", "out.unknown").returncode == 2


def test_ctrl_c_interrupts_and_waits_then_exits_4(gateway: GatewayProcess) -> None:
    """Ctrl+C sends interrupt, waits for the execution to stop, exits 4; --progress draws a progress line."""
    code = f"print('started', flush=True)\nspark.sql('{LONG_JOB}').collect()"
    process = subprocess.Popen(command(gateway.ws_url, "--progress", "-c", code), cwd=ROOT, env=ENV,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    err = b""
    try:
        assert process.stdout.readline() == b"started\n"
        deadline = time.monotonic() + 60
        while b"tasks" not in err:  # the progress line shows the Spark job running
            assert time.monotonic() < deadline and process.poll() is None, err
            err += os.read(process.stderr.fileno(), 4096)
        sent = time.monotonic()
        process.send_signal(signal.SIGINT)
        _, rest = process.communicate(timeout=30)
    finally:
        process.kill()
        process.wait()
    text = (err + rest).decode()
    assert process.returncode == 4, text
    assert time.monotonic() - sent < 20
    assert "interrupting" in text and text.rstrip().endswith("interrupted")


def test_help_documents_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    """--help exits 0 and lists every exit code."""
    assert cli.main(["--help"]) == 0
    text = capsys.readouterr().out
    for line in ("0  the execution finished ok", "1  query error", "2  usage error", "3  connection failure",
                 "4  interrupted"):
        assert line in text


_CSV_VALUES = st.one_of(
    st.text(alphabet=st.sampled_from(list('ab ,"\n\r\t\x00é\u2003')), max_size=5),
    st.integers(-(10**20), 10**20), st.floats(allow_nan=False, allow_infinity=False), st.none(), st.booleans(),
    st.lists(st.integers(-(2**63), 2**63 - 1), max_size=2), st.dictionaries(st.text(max_size=2), st.none(), max_size=1))


@settings(max_examples=800, deadline=None, derandomize=True)
@given(st.one_of(st.lists(_CSV_VALUES, min_size=1, max_size=6),
                 st.sampled_from([st.text(max_size=4), st.integers(), st.floats(allow_nan=False)])
                 .flatmap(lambda values: st.lists(values, min_size=1, max_size=6))))
def test_csv_columns_are_written_as_each_value_would_be(column: list[Any]) -> None:
    """The column-at-a-time CSV path writes exactly what the per-value rules write (quoting included)."""
    assert list(cli._csv_column(tuple(column))) == [cli._csv_field(value) for value in column]
