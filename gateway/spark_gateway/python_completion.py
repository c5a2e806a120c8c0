"""Python completion and inspection over a session's live namespace, with jedi's ``Interpreter``.

The namespace is read, never run: jedi gets a copy of the cell variables (taken in one step,
so the worker thread may go on changing them), with its unsafe executions turned off, so
properties and descriptors are not called. DataFrames are the exception that is worth it:
their columns come from the schema Spark already knows (``columns_of``: an AnalyzePlan RPC
the first time, which pyspark then keeps; never a job), after ``df.`` and inside ``df["``.
Offsets are code points into the code.
"""

from __future__ import annotations

import inspect as pyinspect
import re
import threading
from collections.abc import Callable
from typing import Any

import jedi

from spark_gateway_protocol.messages import MAX_COMPLETIONS, CatalogEntry, CompletionItem

from .sql_completion import Completion, Found

# Completion must not run the user's code: no properties, no __getattr__ through jedi.
jedi.settings.allow_unsafe_interpreter_executions = False
# jedi's inference caches are process-wide and not thread-safe: one completion at a time.
_JEDI = threading.Lock()

ColumnsOf = Callable[[Any], list[CatalogEntry] | None]  # a DataFrame's columns; None for other values

_KINDS = {"module": "module", "class": "class", "function": "function", "instance": "variable",
          "statement": "variable", "param": "parameter", "property": "property", "keyword": "keyword"}
_SUBSCRIPT = re.compile(r"([A-Za-z_][\w.]*)\s*\[\s*(['\"])([^'\"\\]*)\Z")
_CHAIN = re.compile(r"([A-Za-z_][\w.]*)\.(\w*)\Z")
_WORD = re.compile(r"\w*\Z")


def complete(namespace: dict[str, Any], code: str, cursor: int, columns_of: ColumnsOf) -> Completion:
    """Completions at ``cursor`` for Python ``code`` run in ``namespace``."""
    before = code[:cursor]
    names = dict(namespace)  # one step under the GIL: the worker may be changing it
    subscript = _SUBSCRIPT.search(before)
    if subscript is not None:  # df["am|
        columns = _columns(names, subscript.group(1), columns_of)
        if columns is not None:
            typed = subscript.group(3)
            items = [CompletionItem(c.name, "column", c.type) for c in columns if c.name.startswith(typed)]
            return Completion(cursor - len(typed), cursor, items[:MAX_COMPLETIONS], len(items) > MAX_COMPLETIONS)
    start = cursor - len(_WORD.search(before).group())  # type: ignore[union-attr]
    line, column = _line_column(code, cursor)
    with _JEDI:
        found = jedi.Interpreter(code, [names]).complete(line, column)
        items = [CompletionItem(c.name, _KINDS.get(c.type, "variable"), _detail(c, names)) for c in found
                 if c.type != "path"]  # the gateway's own files: not the user's business
        if found:
            start = cursor - (len(found[0].name) - len(found[0].complete or ""))
    chain = _CHAIN.search(before)
    if chain is not None:  # df.am| : the DataFrame's columns, typed, first
        columns = _columns(names, chain.group(1), columns_of)
        if columns is not None:
            typed = chain.group(2).lower()
            known = {c.name: c for c in columns if c.name.isidentifier() and c.name.lower().startswith(typed)}
            items = [CompletionItem(c.name, "column", c.type) for c in known.values()] + [
                i for i in items if i.label not in known]
    return Completion(start, cursor, items[:MAX_COMPLETIONS], len(items) > MAX_COMPLETIONS)


def inspect(namespace: dict[str, Any], code: str, cursor: int, columns_of: ColumnsOf) -> Found | None:
    """What the Python name at ``cursor`` is: its signature and docstring, a DataFrame's columns."""
    names = dict(namespace)
    word = _WORD.search(code[:cursor]).group()  # type: ignore[union-attr]
    end = cursor + len(re.match(r"\w*", code[cursor:]).group())  # type: ignore[union-attr]
    start = cursor - len(word)
    if start == end:
        return None
    line, column = _line_column(code, end)
    with _JEDI:
        script = jedi.Interpreter(code, [names])
        definitions = script.infer(line, column) or script.help(line, column)
        if not definitions:
            return None
        name = definitions[0]
        signatures = name.get_signatures()
        signature = signatures[0].to_string() if signatures else None
        doc = name.docstring(raw=True) or None
        kind = _KINDS.get(name.type, "variable")
        qualified = name.full_name or name.name
    chain = re.search(r"[A-Za-z_][\w.]*\Z", code[:end])
    if doc is None and chain is not None:  # pyspark's Connect methods inherit their docstrings
        doc = _runtime_doc(names, chain.group())
    value_columns = _columns(names, chain.group(), columns_of) if chain else None
    data_type = None
    if value_columns is not None:
        kind, data_type = "variable", "DataFrame"
    elif kind == "variable" and chain is not None:
        value = _lookup(names, chain.group())
        data_type = type(value).__name__ if value is not _MISSING else None
    return Found(kind, qualified, start, end, data_type=data_type, signature=signature, doc=doc,
                 columns=value_columns or [])


def _detail(completion: Any, names: dict[str, Any]) -> str | None:
    """A variable's type, cheaply: only names of the namespace itself (signatures would cost inference)."""
    value = names.get(completion.name, _MISSING)
    if value is _MISSING or completion.type not in ("instance", "statement"):
        return None
    return type(value).__name__


_MISSING = object()


def _lookup(names: dict[str, Any], chain: str) -> Any:
    """The value of ``a.b.c`` in the namespace, without running code (no properties, no __getattr__)."""
    first, *rest = chain.split(".")
    value = names.get(first, _MISSING)
    for part in rest:
        if value is _MISSING:
            break
        try:
            value = pyinspect.getattr_static(value, part)
        except AttributeError:
            return _MISSING
        if isinstance(value, (property, staticmethod, classmethod)) or hasattr(type(value), "__get__"):
            return _MISSING  # a descriptor: its value needs running code
    return value


def _runtime_doc(names: dict[str, Any], chain: str) -> str | None:
    """The docstring of ``a.b.c`` as the live objects have it (read statically: no code runs)."""
    first, *rest = chain.split(".")
    value = names.get(first, _MISSING)
    try:
        for part in rest:
            value = pyinspect.getattr_static(value, part)
    except AttributeError:
        return None
    if isinstance(value, (staticmethod, classmethod)):
        value = value.__func__
    # getdoc finds a method's docstring on the base class it overrides (pyspark's Connect classes).
    doc = pyinspect.getdoc(value) if value is not _MISSING and callable(value) else None
    return doc if doc and doc.strip() else None


def _columns(names: dict[str, Any], chain: str, columns_of: ColumnsOf) -> list[CatalogEntry] | None:
    value = _lookup(names, chain)
    if value is _MISSING:
        return None
    return columns_of(value)


def _line_column(code: str, offset: int) -> tuple[int, int]:
    """jedi's position: line from 1, column in code points from 0."""
    line = code.count("\n", 0, offset) + 1
    return line, offset - (code.rfind("\n", 0, offset) + 1)
