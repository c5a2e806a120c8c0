"""MIME bundles for Jupyter: result tables, values, Spark progress and error tracebacks.

A result is shown three ways: ``text/html`` (a table, column types under the names),
``text/plain`` (an aligned table) and ``application/vnd.dataresource+json`` (a Table Schema
with Spark's types, for data grids). All three hold the same rows, exactly the values the
gateway sent (docs/type-mapping.md), and all three say how many rows there are, or that
more exist beyond the rows shown. Pure: no I/O, no Jupyter.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from typing import Any, Literal

import orjson

from spark_gateway_client import (
    Interrupted,
    Progress,
    PythonError,
    QueryError,
    ResultLost,
    SessionLost,
    SparkGatewayError,
)
from spark_gateway_client.cli import NUMERIC_TYPES, format_table, unique_names
from spark_gateway_protocol.messages import Column, Inspection, Value

from .cells import CellError, Part

Bundle = dict[str, Any]
MAX_PLAIN_WIDTH = 80  # characters of a value in the text/plain table; cut with …, and said so

_TABLE_STYLE = "border-collapse:collapse"
_NULL = '<span style="opacity:0.5">NULL</span>'
_RED, _BOLD_RED, _CYAN, _RESET = "\x1b[31m", "\x1b[1;31m", "\x1b[36m", "\x1b[0m"


# ---------------------------------------------------------------- results


def result_bundle(columns: list[Column], rows: list[list[Any]], *, truncated: bool, max_rows: int,
                  language: str = "sql") -> Bundle:
    """The three representations of a result's first rows; ``truncated``: more rows exist."""
    note = rows_note(len(rows), truncated, max_rows, language)
    return {
        "text/html": _html_table(columns, rows, note),
        "text/plain": _plain_table(columns, rows, note),
        "application/vnd.dataresource+json": data_resource(columns, rows),
    }


def rows_note(shown: int, truncated: bool, max_rows: int, language: str = "sql") -> str:
    """``3 rows``, or that more rows exist beyond those shown and how to see more."""
    if not truncated:
        return f"{shown:,} row{'s' if shown != 1 else ''}"
    how = ("`%%sql -n ROWS` shows more, `%%sql -o NAME` binds the whole result as a DataFrame" if language == "sql"
           else "the kernel's --max-rows sets how many; df.count() counts them, df.write saves them")
    return f"{shown:,} rows shown; more rows exist (at most {max_rows:,} are shown: {how})"


def data_resource(columns: list[Column], rows: list[list[Any]]) -> Bundle:
    """``application/vnd.dataresource+json``: a Table Schema (with Spark's type of each field) and the rows."""
    names = unique_names([c.name for c in columns])  # rows become objects: a repeated name would lose a value
    fields = []
    for name, column in zip(names, columns, strict=True):
        field: dict[str, Any] = {"name": name, **table_schema_type(column.type), "spark_type": column.type}
        if name != column.name:
            field["title"] = column.name
        fields.append(field)
    return {"schema": {"fields": fields}, "data": [dict(zip(names, row, strict=True)) for row in rows]}


def table_schema_type(spark_type: str) -> dict[str, str]:
    """The Table Schema ``type`` (and ``format``) for a Spark type string, as the gateway's JSON form carries it."""
    t = spark_type.lower()
    if t.startswith("interval"):  # before "int"
        return {"type": "duration"}
    if t.startswith(("tinyint", "smallint", "int", "bigint", "byte", "short", "long")):
        return {"type": "integer"}
    if t.startswith(("float", "double", "decimal", "real")):
        return {"type": "number"}  # decimals and NaN/Infinity arrive as strings: the lexical forms Table Schema allows
    if t == "boolean":
        return {"type": "boolean"}
    if t == "date":
        return {"type": "date"}
    if t.startswith("timestamp"):
        return {"type": "datetime"}
    if t == "binary":
        return {"type": "string", "format": "binary"}  # base64, as Table Schema's binary format
    if t.startswith("array<"):
        return {"type": "array"}
    if t.startswith("struct<") or t.startswith("map<string,"):
        return {"type": "object"}
    if t.startswith("map<"):
        return {"type": "array"}  # [key, value] pairs: keys that are not strings
    if t.startswith(("string", "char", "varchar", "variant")):
        return {"type": "string"}
    return {"type": "any"}


def _html_table(columns: list[Column], rows: list[list[Any]], note: str) -> str:
    numeric = [_numeric(c.type) for c in columns]
    head = "".join(
        f'<th style="text-align:{"right" if num else "left"}" title="{html.escape(c.type)}">{html.escape(c.name)}'
        f'<br><small style="font-weight:normal;opacity:0.6">{html.escape(c.type)}</small></th>'
        for c, num in zip(columns, numeric, strict=True))
    body = "".join(
        "<tr>" + "".join(_html_cell(value, num) for value, num in zip(row, numeric, strict=True)) + "</tr>"
        for row in rows)
    return (f'<div><table style="{_TABLE_STYLE}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
            f'<p style="opacity:0.7;margin-top:0.3em">{html.escape(note)}</p></div>')


def _numeric(spark_type: str) -> bool:
    return spark_type.startswith(NUMERIC_TYPES) and not spark_type.startswith("interval")


def _html_cell(value: Any, numeric: bool) -> str:
    if value is None:
        return f'<td style="text-align:{"right" if numeric else "left"}">{_NULL}</td>'
    text = html.escape(text_of(value))
    wrap = ";white-space:pre-wrap" if "\n" in text else ""
    return f'<td style="text-align:{"right" if numeric else "left"}{wrap}">{text}</td>'


def _plain_table(columns: list[Column], rows: list[list[Any]], note: str) -> str:
    table = format_table(columns, rows, MAX_PLAIN_WIDTH)
    cut = ""
    if table.cut:
        cut = (f"({table.cut} value{'s' if table.cut != 1 else ''} cut at {MAX_PLAIN_WIDTH} characters, marked …; "
               "the HTML table shows them whole)\n")
    return f"{table.text}{cut}({note})"


def text_of(value: Any) -> str:
    """A value as text: NULL, true/false, numbers as sent, strings as they are, nested values as JSON."""
    if value is None:
        return "NULL"
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return repr(value)
    return orjson.dumps(value).decode()


# ---------------------------------------------------------------- values


def value_bundle(value: Value) -> Bundle:
    """A Python cell's trailing value (its repr); a repr cut by the gateway says so."""
    text = value.text
    if value.truncated:
        text += (f"\n… (the repr is cut: its first {len(value.text):,} of {value.length:,} characters are shown, "
                 "the gateway's max_value_chars)")
    return {"text/plain": text}


# ---------------------------------------------------------------- progress

ProgressState = Literal["running", "ok", "error", "interrupted"]


def progress_bundle(progress: Progress | None, elapsed: float, state: ProgressState = "running") -> Bundle:
    """Spark's stages and tasks, as one display updated in place; ``state`` other than running: the final line.

    The final line of a finished execution counts its tasks without a "done" figure: the last
    report can predate the last tasks (reports are rate limited), and stages skipped by
    adaptive execution never complete theirs.
    """
    done, total = (progress.tasks_done, progress.tasks_total) if progress else (0, 0)
    stages = list(progress.stages) if progress else []
    parts = [f"{total:,} task{'s' if total != 1 else ''}" if state == "ok" else f"{done:,}/{total:,} tasks"]
    if state == "running" and progress is not None and progress.inflight_tasks:
        parts.append(f"{progress.inflight_tasks} running")
    if state != "running" and stages:
        parts.insert(0, f"{len(stages)} stage{'s' if len(stages) != 1 else ''}")
    if progress is not None and progress.bytes_read:
        parts.append(f"{_bytes(progress.bytes_read)} read")
    parts.append(f"{elapsed:.1f} s")
    ending = {"running": "", "ok": "", "error": " (failed)", "interrupted": " (interrupted)"}[state]
    line = "Spark: " + " · ".join(parts) + ending
    active = [s for s in stages if not s.done] if state == "running" else []
    plain = line + "".join(f"\n  stage {s.stage_id}: {s.tasks_done}/{s.tasks_total} tasks" for s in active)
    bars = "".join(
        f'<div style="display:flex;gap:0.6em;align-items:center"><span style="min-width:6em">stage {s.stage_id}</span>'
        f'<progress value="{s.tasks_done}" max="{max(s.tasks_total, 1)}" style="width:16em"></progress>'
        f"<span>{s.tasks_done:,}/{s.tasks_total:,}</span></div>"
        for s in active)
    return {"text/plain": plain, "text/html": f"<div><div>{html.escape(line)}</div>{bars}</div>"}


def _bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    raise AssertionError("unreachable")


# ---------------------------------------------------------------- errors


def error_content(exc: BaseException, cell: str, part: Part | None) -> dict[str, Any]:
    """``ename``, ``evalue`` and ``traceback`` of an execute reply / ``error`` message for ``exc``.

    Spark errors are named by their error class, Python errors by their exception type; a
    SQL error's traceback shows the cell's lines with the failing fragment marked.
    """
    if isinstance(exc, QueryError):
        ename = exc.error_class or exc.exception or "SparkError"
        lines = [f"{_BOLD_RED}{ename}{_RESET}" + (f" ({exc.exception})" if exc.exception else ""), exc.message]
        if exc.sql_state and exc.sql_state not in exc.message:
            lines.append(f"SQLSTATE: {exc.sql_state}")
        if part is not None and part.language == "sql":
            lines += sql_marks(cell, part.start, [(c.start, c.stop) for c in exc.context])
        elif exc.context:
            lines += [f"in: {_RED}{c.fragment}{_RESET}" for c in exc.context]
        return {"ename": ename, "evalue": exc.message, "traceback": lines}
    if isinstance(exc, PythonError):
        ename = exc.exception or "PythonError"
        evalue = exc.message.removeprefix(f"{ename}: ")
        return {"ename": ename, "evalue": evalue, "traceback": str(exc).splitlines()}
    if isinstance(exc, Interrupted):
        evalue = "the cell was interrupted on the gateway (its Spark jobs, if any, were cancelled)"
        return _plain_error("KeyboardInterrupt", evalue)
    if isinstance(exc, CellError):
        return _plain_error("UsageError", str(exc))
    if isinstance(exc, SparkGatewayError):
        ename = type(exc).__name__
        hint = ""
        if isinstance(exc, SessionLost | ResultLost) or exc.code in ("shutting_down", "idle_timeout"):
            hint = "\nThe next cell opens a new session if this one has ended (its variables and temp views are gone)."
        return _plain_error(ename, exc.message, hint)
    return _plain_error(type(exc).__name__, str(exc))


def _plain_error(ename: str, evalue: str, hint: str = "") -> dict[str, Any]:
    return {"ename": ename, "evalue": evalue, "traceback": [f"{_BOLD_RED}{ename}{_RESET}: {evalue}{hint}"]}


def sql_marks(cell: str, start: int, spans: Sequence[tuple[int, int]]) -> list[str]:
    """The cell's lines holding each span (offsets in the SQL from ``start``, ``stop`` inclusive), marked ``^``."""
    out: list[str] = []
    for span_start, span_stop in spans:
        first, last = start + span_start, start + span_stop
        if not 0 <= first <= last < len(cell):
            continue
        line_start = cell.rfind("\n", 0, first) + 1
        while line_start <= last:
            line_end = cell.find("\n", line_start)
            line_end = len(cell) if line_end < 0 else line_end
            number = cell.count("\n", 0, line_start) + 1
            text = cell[line_start:line_end]
            a, b = max(first, line_start) - line_start, min(last, line_end - 1) - line_start
            gutter = f"{number:>4} | "
            out.append(f"{_CYAN}{gutter}{_RESET}{text}")
            out.append(" " * (len(gutter) - 2) + "| " + _pad(text[:a]) + _BOLD_RED + "^" * max(b - a + 1, 1) + _RESET)
            line_start = line_end + 1
    return out


def _pad(prefix: str) -> str:
    """Blanks as wide as ``prefix``, tabs kept so that the marks line up under them."""
    return re.sub(r"[^\t]", " ", prefix)


def inspection_text(found: Inspection) -> str:
    """An ``inspection`` as the text of an inspect_reply: what the name is, its signature, its doc, its columns."""
    head = f"{found.name or ''} ({found.kind})" if found.kind else found.name or ""
    if found.data_type:
        head += f": {found.data_type}"
    lines = [head]
    if found.signature:
        lines += ["", found.signature]
    if found.doc:
        lines += ["", found.doc.strip()]
    if found.columns:
        width = max(len(c.name) for c in found.columns)
        lines += ["", "Columns:"] + [f"  {c.name.ljust(width)}  {c.type or ''}".rstrip() for c in found.columns]
    return "\n".join(lines)
