"""Splitting a SQL cell into statements (protocol/sql_script.py): pure, no Spark."""

from __future__ import annotations

import pytest

from spark_gateway_protocol.sql_script import Statement, split, tidy_message


def texts(code: str) -> list[str]:
    return [s.text.strip() for s in split(code)]


def test_one_statement_is_sent_exactly_as_written() -> None:
    """A cell of one statement (with or without ; and blanks) goes to Spark as it is."""
    for code in ("SELECT 1", "SELECT 1;", "  SELECT ';' -- x;\n", "-- nothing", "", "SELECT 1;;  ;\n-- end"):
        assert split(code) == [Statement(code, 0)]


def test_semicolons_inside_literals_identifiers_and_comments_do_not_split() -> None:
    """Semicolons in strings, raw strings, quoted identifiers and comments do not end a statement."""
    code = ("SELECT 'a;b', \"c;d\", `e;f`, 'it\\'s;', r'\\' AS raw, r'x;\\' AS raw2 -- g;h\n"
            "/* i; /* nested; */ j; */ FROM t;\n"
            "SELECT 2")
    assert texts(code) == [code.split(";\nSELECT 2")[0], "SELECT 2"]


def test_empty_statements_and_comment_only_parts_are_left_out() -> None:
    """Empty statements and parts with only comments are not sent."""
    assert texts("SELECT 1;;\n;-- only a comment;\n/* and; this */;SELECT 2;\n") == ["SELECT 1", "SELECT 2"]


def test_statements_keep_their_line_and_column_and_know_their_offset() -> None:
    """Each statement keeps its line and column in the cell; its offset maps positions back."""
    code = "SELECT 1;\n\n  -- why\n  SELECT x\n  FROM t;"
    first, second = split(code)
    assert first == Statement("SELECT 1", 0)
    start = code.index("SELECT x")
    assert second.text.split("\n")[3] == "  SELECT x"  # line 4, column 2, as in the cell
    assert second.text.lstrip() == "SELECT x\n  FROM t"
    # A character's offset in the statement's text plus `offset` is its offset in the cell.
    at = second.text.index("FROM")
    assert code[at + second.offset : at + second.offset + 6] == "FROM t"
    assert start == second.text.index("SELECT") + second.offset


@pytest.mark.parametrize("code", [
    "BEGIN\n  DECLARE x INT;\n  SET x = 1;\n  SELECT x;\nEND",
    "-- a script\nlbl: BEGIN SELECT 1; SELECT 2; END;",
    "begin select 1; end",
])
def test_sql_scripting_blocks_stay_whole(code: str) -> None:
    """A SQL scripting block (BEGIN ... END) is one statement, whatever its semicolons."""
    assert split(code) == [Statement(code, 0)]


def test_unterminated_quotes_and_comments_do_not_hang_or_split() -> None:
    """An unterminated quote or comment runs to the end of the cell: no hang, no split."""
    for code in ("SELECT 'a; SELECT 2", "SELECT `a; SELECT 2", "SELECT 1 /* ; SELECT 2", "SELECT \"x\\"):
        assert split(code) == [Statement(code, 0)]


def test_tidy_message_drops_the_blank_lines_that_placed_the_statement() -> None:
    """Spark's echo of the statement loses the blank lines that placed it on its line."""
    message = "[PARSE_SYNTAX_ERROR] Syntax error (line 3, pos 2)\n\n== SQL ==\n\n\n  SELEC 2\n--^^^"
    assert tidy_message(message) == "[PARSE_SYNTAX_ERROR] Syntax error (line 3, pos 2)\n\n== SQL ==\n  SELEC 2\n--^^^"
    assert tidy_message("no marker") == "no marker"
