"""SQL scripts: the statements of a ``sql`` execution, split at their semicolons.

Spark's ``spark.sql`` takes one statement. A cell often holds a few (``CREATE TEMP VIEW
...; SELECT ...``), so the gateway runs them one after the other. A semicolon ends a
statement only outside string literals (``'...'``, ``"..."``, with backslash escapes,
or raw ``r'...'``), quoted identifiers (`` `...` ``) and comments (``-- ...``, nested
``/* ... */``). A script that is a SQL scripting block (``BEGIN ... END``, whose
statements end with semicolons of their own) is one statement.

Each statement is sent with as many newlines and spaces before it as put it on its
line and column in the cell, so the (line, pos) of Spark's errors are the cell's own;
``offset`` turns the character offsets of Spark's query context into the cell's.
Pure: no I/O, no pyspark. Shared by the gateway (running, completing) and the Jupyter
kernel (which statement of a ``%%sql`` cell shows its rows, whether a cell is complete).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Statement", "first_code", "open_at", "split", "statement_at", "statement_bounds", "tidy_message"]


@dataclass(frozen=True, slots=True)
class Statement:
    """One statement of a script: ``text`` to send to Spark; a character at offset ``i`` of
    ``text`` is at offset ``i + offset`` of the script."""

    text: str
    offset: int


SCRIPTING_BLOCK = re.compile(r"(?:[A-Za-z_][A-Za-z0-9_]*\s*:\s*)?BEGIN\b", re.IGNORECASE)


def split(code: str) -> list[Statement]:
    """The statements of ``code`` in order; empty ones (only blanks or comments) left out.

    A script of one statement is returned as it is, so Spark sees exactly the cell's text.
    """
    bounds = statement_bounds(code)
    statements = [(start, stop) for start, stop in bounds if _has_code(code, start, stop)]
    if len(statements) <= 1 or SCRIPTING_BLOCK.match(code, first_code(code, *statements[0])):
        return [Statement(code, 0)]
    return [_placed(code, start, stop) for start, stop in statements]


def statement_at(code: str, offset: int) -> tuple[int, int]:
    """(start, stop) of the statement of ``code`` that ``offset`` is in (an editor's cursor), empty ones too."""
    for start, stop in statement_bounds(code):
        if start <= offset <= stop:
            return start, stop
    return offset, offset


def open_at(code: str, offset: int) -> tuple[str, int] | None:
    """What ``offset`` is inside of, if anything: ``("string" | "identifier" | "comment", where it starts)``.

    An ``identifier`` is a backquoted one (`` `my ta`` while it is being typed). None: plain code.
    """
    i = 0
    while i < offset:
        c = code[i]
        if c in "'\"":
            # A sentinel after the text: a string that runs to the end is not closed.
            kind, end = "string", _string_end(code + "\0", i, raw=_is_raw_prefix(code, i))
            end, closed = min(end, len(code)), end <= len(code)
        elif c == "`":
            kind, close = "identifier", code.find("`", i + 1)
            end, closed = (len(code), False) if close < 0 else (close + 1, True)
        elif code.startswith("--", i):
            kind, newline = "comment", code.find("\n", i)
            end, closed = (len(code), False) if newline < 0 else (newline, True)
        elif code.startswith("/*", i):
            kind, end = "comment", _comment_end(code + " ", i)
            end, closed = min(end, len(code)), end <= len(code)
        else:
            i += 1
            continue
        if end > offset or (end == offset and not closed):
            return kind, i
        i = end
    return None


def tidy_message(message: str) -> str:
    """Spark prints the statement it got under ``== SQL ==``: drop the blank lines that
    placed it on its line of the cell."""
    head, marker, tail = message.partition("== SQL ==\n")
    if not marker:
        return message
    return head + marker + tail.lstrip("\n")


def _placed(code: str, start: int, stop: int) -> Statement:
    first = first_code(code, start, stop)
    line_start = code.rfind("\n", 0, first) + 1
    prefix = "\n" * code.count("\n", 0, first) + " " * (first - line_start)
    return Statement(prefix + code[first:stop], first - len(prefix))


def statement_bounds(code: str) -> list[tuple[int, int]]:
    """(start, stop) of the text between top-level semicolons, empty pieces included."""
    bounds = []
    start = i = 0
    n = len(code)
    while i < n:
        c = code[i]
        if c == ";":
            bounds.append((start, i))
            start = i + 1
            i += 1
        elif c in "'\"":
            i = _string_end(code, i, raw=_is_raw_prefix(code, i))
        elif c == "`":
            end = code.find("`", i + 1)  # a doubled backtick is an end and a start: no special case
            i = n if end < 0 else end + 1
        else:
            i = _after_comment(code, i) or i + 1
    bounds.append((start, n))
    return bounds


def _string_end(code: str, i: int, raw: bool) -> int:
    quote = code[i]
    i += 1
    while i < len(code):
        c = code[i]
        if c == "\\" and not raw:
            i += 2
        elif c == quote:
            return i + 1
        else:
            i += 1
    return len(code)


def _is_raw_prefix(code: str, i: int) -> bool:
    """``r'...'``: the quote follows a lone r (not the end of an identifier)."""
    return i >= 1 and code[i - 1] in "rR" and (i < 2 or not (code[i - 2].isalnum() or code[i - 2] == "_"))


def _after_comment(code: str, i: int) -> int | None:
    """Where the comment starting at ``i`` ends (None: no comment starts there)."""
    if code.startswith("--", i):
        end = code.find("\n", i)
        return len(code) if end < 0 else end + 1
    if code.startswith("/*", i):
        return _comment_end(code, i)
    return None


def _comment_end(code: str, i: int) -> int:
    """End of a bracketed comment starting at ``i``; Spark's nest."""
    depth = 0
    while i < len(code):
        if code.startswith("/*", i):
            depth += 1
            i += 2
        elif code.startswith("*/", i):
            depth -= 1
            i += 2
            if depth == 0:
                return i
        else:
            i += 1
    return len(code)


def first_code(code: str, start: int, stop: int) -> int:
    """Offset of the first character in [start, stop) that is neither blank nor comment."""
    i = start
    while i < stop:
        if code[i].isspace():
            i += 1
        elif (end := _after_comment(code, i)) is not None:
            i = end
        else:
            return i
    return stop


def _has_code(code: str, start: int, stop: int) -> bool:
    return first_code(code, start, stop) < stop
