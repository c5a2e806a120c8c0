"""An execution's failure, told to the client: the one translation of a Python or Spark
exception into the protocol's ``error`` event.

Spark's own errors keep their error class, SQL state and query context (pointing into the
cell's text, also for one statement of a SQL script); Python's keep the traceback from the
cell's own frames on.
"""

from __future__ import annotations

import os
import re
import traceback
from typing import Any

from spark_gateway_protocol import sql_script
from spark_gateway_protocol.errors import ErrorCode
from spark_gateway_protocol.messages import Error, QueryContext


def error_event(spark: Any, execution_id: str, exc: BaseException, *, result: int | None = None,
                sql: str | None = None, sql_offset: int = 0) -> Error:
    """The ``error`` event for ``exc``; ``spark``: the Spark adapter that knows Spark's exceptions.

    ``sql``: the cell's SQL, to place a parse error's (line, pos); ``sql_offset``: where in
    the cell's SQL the failing statement's text began (a script's statements are sent
    apart; see :mod:`spark_gateway_protocol.sql_script`).
    """
    fields = spark.spark_error_fields(exc)
    if fields is not None:
        if sql_offset:
            fields["message"] = sql_script.tidy_message(fields["message"])
            fields["context"] = [QueryContext(c.fragment, c.start + sql_offset, c.stop + sql_offset)
                                 for c in fields.get("context") or []]
        if sql is not None and not fields.get("context"):  # Spark's (line, pos) is in the SQL text
            fields["context"] = _parse_position(fields["message"], sql)
        return Error(id=execution_id, result=result, **fields)
    if isinstance(exc, SyntaxError):
        return Error(ErrorCode.PYTHON_ERROR, f"{type(exc).__name__}: {exc}", id=execution_id,
                     exception=type(exc).__name__,
                     traceback="".join(traceback.format_exception_only(exc)))
    return Error(ErrorCode.PYTHON_ERROR, f"{type(exc).__name__}: {exc}", id=execution_id,
                 result=result, exception=type(exc).__name__, traceback=_user_traceback(exc))


_POSITION = re.compile(r"\(line (\d+), pos (\d+)\)")
_TOKEN = re.compile(r"\S+")


def _parse_position(message: str, code: str) -> list[QueryContext]:
    """Spark's parse errors give (line, pos) in the text only; turn it into a code fragment."""
    found = _POSITION.search(message)
    if found is None:
        return []
    line, pos = int(found.group(1)), int(found.group(2))
    lines = code.split("\n")
    if not 1 <= line <= len(lines) or pos > len(lines[line - 1]):
        return []
    start = sum(len(text) + 1 for text in lines[: line - 1]) + pos
    token = _TOKEN.match(code, start)
    stop = token.end() - 1 if token else start
    return [QueryContext(code[start : stop + 1], start, stop)]


_GATEWAY_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _user_traceback(exc: BaseException) -> str:
    """The traceback from the cell's own frames on, without the gateway's frames at either
    end (the exec machinery before, a guard such as sys.stdin's after): noise to the user."""
    tb = exc.__traceback__
    while tb is not None and not tb.tb_frame.f_code.co_filename.startswith("<cell "):
        tb = tb.tb_next
    report = traceback.TracebackException(type(exc), exc, tb or exc.__traceback__)
    while len(report.stack) > 1 and report.stack[-1].filename.startswith(_GATEWAY_DIR):
        report.stack.pop()
    return "".join(report.format())
