"""What a cell asks for: the executions to run on the gateway, read from its ``%%sql`` / ``%sql`` magics.

A cell is Python unless its first line is ``%%sql [options]`` (the rest of the cell is
SQL, several statements allowed). A line ``%sql [options] STATEMENT`` at the start of a
line is one SQL statement among Python lines; the cell's parts then run in order.
Options: ``-o NAME`` / ``--output NAME`` binds the last statement's result as a
DataFrame ``NAME`` in the session, ``-n N`` / ``--max-rows N`` shows up to N rows.

Pure: no I/O, no Jupyter; the kernel and the fast tests use it alike.
"""

from __future__ import annotations

import codeop
import keyword
import re
import warnings
from dataclasses import dataclass
from typing import Literal

from spark_gateway_protocol import sql_script

__all__ = ["CellError", "Part", "is_complete", "last_statement", "parse", "part_at", "query_statement"]

Language = Literal["python", "sql"]

_CELL_MAGIC = re.compile(r"%%(\S*)[ \t]*(.*)")
_LINE_SQL = re.compile(r"%sql(?:[ \t]+|$)")
_OPTION = re.compile(r"(-o|--output|-n|--max-rows)(?:[ \t]+|=)(\S+)[ \t]*")
# Statements that only read: binding one as a DataFrame runs nothing twice.
_QUERY_KEYWORDS = frozenset({"SELECT", "WITH", "VALUES", "TABLE", "FROM", "SHOW", "DESCRIBE", "DESC", "EXPLAIN"})


class CellError(ValueError):
    """The cell's magics are malformed (unknown magic, bad option): nothing was run."""


@dataclass(frozen=True, slots=True)
class Part:
    """One execution of a cell.

    ``code`` is sent as it is, preceded by as many newlines (and, for a ``%sql`` line, blanks)
    as put it on its line and column of the cell: the line numbers of Python tracebacks and
    of Spark's ``(line N, pos M)`` are the cell's own. A character at offset ``i`` of ``code``
    is at offset ``i + start`` of the cell (how Spark's query contexts map back to it).
    """

    language: Language
    code: str
    start: int = 0
    output: str | None = None
    max_rows: int | None = None


def parse(cell: str) -> list[Part]:
    """The parts of ``cell`` in the order they run; raises :class:`CellError` for bad magics."""
    first_end = cell.find("\n")
    first = cell if first_end < 0 else cell[:first_end]
    magic = _CELL_MAGIC.fullmatch(first.rstrip())
    if magic is not None:
        name, args = magic.groups()
        if name != "sql":
            raise CellError(f"unknown cell magic %%{name}: this kernel knows %%sql (a SQL cell) and %sql (a SQL line)")
        output, max_rows, rest = _options(args, "%%sql")
        if rest:
            raise CellError(f"%%sql: unexpected {rest!r} after the options (the SQL goes on the next lines)")
        start = len(cell) if first_end < 0 else first_end + 1
        body = cell[start:]
        return [_sql_part("\n" + body, start - 1, output, max_rows, "%%sql")] if body.strip() else []
    return _mixed(cell)


def part_at(cell: str, cursor: int) -> Part | None:
    """The part whose own text holds ``cursor`` (a Python run, a ``%%sql`` body, a ``%sql`` line's
    statement), for completion; None on a magic itself, or when the magics are malformed."""
    try:
        parts = parse(cell)
    except CellError:
        return None
    if not parts and not cell.lstrip().startswith("%"):
        return Part("python", cell)  # an empty cell: Python
    for part in reversed(parts):
        padding = len(part.code) - len(part.code.lstrip("\n" if part.language == "python" else "\n "))
        if part.start + padding <= cursor <= part.start + len(part.code):
            return part
    return None


def _mixed(cell: str) -> list[Part]:
    """Python lines, with ``%sql`` lines running as SQL where they stand."""
    parts: list[Part] = []
    python: list[str] = []
    python_at = (0, 0)  # (line, offset) in the cell where the pending Python starts
    offset = 0
    for number, line in enumerate(cell.splitlines(keepends=True)):
        found = _LINE_SQL.match(line)
        if found is None:
            if not python:
                python_at = (number, offset)
            python.append(line)
        else:
            _flush_python(parts, python, *python_at)
            python = []
            text = line.rstrip("\r\n")
            output, max_rows, rest = _options(text[found.end():], "%sql")
            if not rest.strip():
                raise CellError("%sql: no statement after the magic (use %%sql on the first line for a SQL cell)")
            column = len(text) - len(rest)
            parts.append(_sql_part("\n" * number + " " * column + rest, offset - number, output, max_rows, "%sql"))
        offset += len(line)
    _flush_python(parts, python, *python_at)
    return parts


def _sql_part(code: str, start: int, output: str | None, max_rows: int | None, magic: str) -> Part:
    """A SQL part; with ``-o NAME`` its last statement must be a query, which is bound by running it
    again as ``spark.sql(...)``: a command (INSERT, CREATE, ...) would run twice."""
    if output is not None:
        statement = last_statement(code)
        if statement is None or not query_statement(statement):
            raise CellError(f"{magic} -o {output}: the last statement must be a query (SELECT, WITH, VALUES, TABLE, "
                            "FROM, SHOW, DESCRIBE or EXPLAIN) to be bound as a DataFrame")
    return Part("sql", code, start, output, max_rows)


def _flush_python(parts: list[Part], lines: list[str], line: int, offset: int) -> None:
    code = "".join(lines)
    if code.strip():
        parts.append(Part("python", "\n" * line + code, offset - line))


def _options(text: str, magic: str) -> tuple[str | None, int | None, str]:
    """``-o NAME`` and ``-n N`` at the start of ``text``; the rest of the text is returned as it is."""
    output: str | None = None
    max_rows: int | None = None
    text = text.lstrip(" \t")
    while (found := _OPTION.match(text)) is not None:
        flag, value = found.groups()
        if flag in ("-o", "--output"):
            if not value.isidentifier() or keyword.iskeyword(value):
                raise CellError(f"{magic} {flag}: {value!r} is not a Python name")
            output = value
        else:
            if not value.isdigit() or int(value) < 1:
                raise CellError(f"{magic} {flag}: expected a number of rows of at least 1, got {value!r}")
            max_rows = int(value)
        text = text[found.end():]
    if text.startswith("-") and not text.startswith("--"):  # `-x`: an option we do not know, not SQL
        raise CellError(f"{magic}: unknown option {text.split()[0]!r} (options: -o NAME, -n ROWS)")
    return output, max_rows, text


# ---------------------------------------------------------------- SQL statements


def last_statement(sql: str) -> str | None:
    """The last statement of ``sql`` (top-level semicolons split; strings, quoted names and comments do not).

    ``None`` when there is no statement. A script whose statements are all within
    ``BEGIN ... END`` is one statement, as the gateway runs it.
    """
    bounds = [(a, b) for a, b in sql_script.statement_bounds(sql) if sql_script.first_code(sql, a, b) < b]
    if not bounds:
        return None
    if sql_script.SCRIPTING_BLOCK.match(sql, sql_script.first_code(sql, *bounds[0])):
        return sql.strip().rstrip(";").strip()
    start, stop = bounds[-1]
    return sql[start:stop].strip()


def query_statement(statement: str) -> bool:
    """Whether ``statement`` only reads (SELECT, WITH, VALUES, TABLE, FROM, SHOW, DESCRIBE, EXPLAIN)."""
    text = statement[sql_script.first_code(statement, 0, len(statement)):].lstrip("( \t\r\n")
    word = re.match(r"[A-Za-z]+", text)
    return word is not None and word.group(0).upper() in _QUERY_KEYWORDS


def _open_at_end(sql: str) -> bool:
    """Whether ``sql`` ends inside a string, a quoted name or a bracketed comment (a line comment ends with it)."""
    inside = sql_script.open_at(sql, len(sql))
    return inside is not None and not sql.startswith("--", inside[1])


# ---------------------------------------------------------------- is_complete


def is_complete(cell: str) -> dict[str, str]:
    """The ``is_complete_reply`` content for ``cell``: complete, incomplete (with an indent) or invalid.

    Consoles send the cell when it is complete. A ``%%sql`` cell is complete once its SQL ends
    with ``;`` outside any string or comment, or with an empty line; Python follows ``codeop``
    (an open block waits for an empty line, as the Python prompt does).
    """
    try:
        parts = parse(cell)
    except CellError:
        return {"status": "invalid"}
    if _CELL_MAGIC.fullmatch(cell.split("\n", 1)[0].rstrip()):
        return _sql_complete(parts[0].code if parts else "", cell)
    last = parts[-1] if parts else None
    if last is None or last.language == "sql":
        return {"status": "complete"}
    return _python_complete(last.code.lstrip("\n"))


def _sql_complete(sql: str, cell: str) -> dict[str, str]:
    if not sql.strip():
        return {"status": "incomplete", "indent": ""}
    if _open_at_end(sql):
        return {"status": "incomplete", "indent": ""}
    if sql.rstrip().endswith(";") or cell.endswith("\n"):  # a semicolon, or an empty last line
        return {"status": "complete"}
    return {"status": "incomplete", "indent": ""}


def _python_complete(code: str) -> dict[str, str]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. SyntaxWarning for an invalid escape: not our business here
            compiled = codeop.compile_command(code, "<cell>", "exec")
    except (SyntaxError, OverflowError, ValueError):
        return {"status": "invalid"}
    lines = code.rstrip("\n").split("\n")
    last = lines[-1]
    indent = last[: len(last) - len(last.lstrip())]
    if compiled is None:
        if last.rstrip().endswith(":"):
            indent += "    "
        return {"status": "incomplete", "indent": indent}
    if indent and not code.endswith("\n\n"):  # inside a block: wait for the empty line that ends it
        return {"status": "incomplete", "indent": indent}
    return {"status": "complete"}
