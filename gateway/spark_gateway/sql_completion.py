"""SQL completion and inspection: the items that fit at the cursor of a Spark SQL text, and what a name is.

Built on :mod:`spark_gateway.sql_scope` (what the statement says around the cursor) over a
:class:`~spark_gateway.sql_scope.CatalogView` (the session's cached catalog, or a fake in fast
tests); it blocks only as long as the view does. Items are ranked (prefix matches first, then
looser ones), quoted where a name needs it, at most ``MAX_COMPLETIONS``. Offsets are code points
into the whole code.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from spark_gateway_protocol import sql_script
from spark_gateway_protocol.messages import MAX_COMPLETIONS, CatalogEntry, CompletionItem

from .sql_scope import PLAIN, CatalogView, Scope, Source, Spot, locate, resolve, scope_of, source_columns


@dataclass(frozen=True, slots=True)
class Completion:
    """Items that replace ``code[start:end]``."""

    start: int
    end: int
    items: list[CompletionItem]
    truncated: bool = False


@dataclass(frozen=True, slots=True)
class Found:
    """What a name is (the fields of an ``inspection``)."""

    kind: str
    name: str
    start: int
    end: int
    data_type: str | None = None
    signature: str | None = None
    doc: str | None = None
    columns: list[CatalogEntry] = field(default_factory=list)



# ---------------------------------------------------------------- completion


def complete(code: str, cursor: int, view: CatalogView) -> Completion:
    """The completions at ``cursor`` in ``code`` (code point offsets), best first."""
    base, stop = sql_script.statement_at(code, cursor)
    spot = locate(code[base:stop], cursor - base)
    items = list(_candidates(spot, view))
    ranked, truncated = _rank(items, spot.prefix)
    if spot.quoted:
        ranked = [_quoted(item) for item in ranked]
    else:
        ranked = [_unquoted(item, lower=spot.prefix.islower()) for item in ranked]
    return Completion(base + spot.start, base + spot.end, ranked, truncated)


def _candidates(spot: Spot, view: CatalogView) -> Iterable[CompletionItem]:
    match spot.context:
        case "relation":
            yield from _relations(spot, view)
        case "namespace":
            yield from _namespaces(spot.qualifiers, view)
        case "expression":
            yield from _expression(spot, view)
        case "keyword":
            yield from _keywords(view)
        case _:
            return


def _relations(spot: Spot, view: CatalogView) -> Iterable[CompletionItem]:
    qualifiers = spot.qualifiers
    catalog, database = view.current()
    if not qualifiers:
        for name in spot.scope.ctes.values():
            yield CompletionItem(name.reference, "view", "WITH query")
        yield from _relation_items(_lenient(view.relations, catalog, database))
        yield from _namespaces([], view)
        return
    if len(qualifiers) == 1:
        catalogs = {c.name.lower() for c in _lenient(view.catalogs)}
        if qualifiers[0].lower() in catalogs:
            yield from _entries(_lenient(view.databases, qualifiers[0]))
        if qualifiers[0].lower() not in catalogs or qualifiers[0].lower() != catalog.lower():
            yield from _relation_items(_lenient(view.relations, catalog, qualifiers[0]), temporary=False)
    elif len(qualifiers) == 2:
        yield from _relation_items(_lenient(view.relations, *qualifiers), temporary=False)


def _relation_items(entries: list[CatalogEntry], temporary: bool = True) -> Iterable[CompletionItem]:
    for entry in entries:
        if temporary or entry.type != "TEMPORARY":  # a temp view belongs to no database
            yield CompletionItem(entry.name, entry.kind, entry.type)


def _namespaces(qualifiers: list[str], view: CatalogView) -> Iterable[CompletionItem]:
    if qualifiers:
        yield from _entries(_lenient(view.databases, qualifiers[0]))
        return
    yield from _entries(_lenient(view.databases, view.current()[0]))
    yield from _entries(_lenient(view.catalogs))


def _entries(entries: list[CatalogEntry]) -> Iterable[CompletionItem]:
    for entry in entries:
        yield CompletionItem(entry.name, entry.kind, entry.type)


def _expression(spot: Spot, view: CatalogView) -> Iterable[CompletionItem]:
    scope = spot.scope
    if spot.qualifiers:
        source = resolve(spot.qualifiers, scope)
        if source is not None:
            yield from _columns(source_columns(source, scope, view))
        return
    seen: set[str] = set()
    for source in scope.sources:
        for column in _columns(source_columns(source, scope, view)):
            if column.label.lower() not in seen:
                seen.add(column.label.lower())
                yield column
    for source in scope.sources:
        yield CompletionItem(source.reference, "alias" if source.alias else "table")
    yield from _functions(view)
    yield from _keywords(view)


def _columns(columns: list[CatalogEntry]) -> Iterable[CompletionItem]:
    for column in columns:
        yield CompletionItem(column.name, "column", column.type)


def _functions(view: CatalogView) -> Iterable[CompletionItem]:
    for function in view.functions().values():
        if PLAIN.match(function.name):  # not the operators (!, %, ...) Spark lists as functions
            yield CompletionItem(function.name, "function", function.signature)


def _keywords(view: CatalogView) -> Iterable[CompletionItem]:
    for keyword in view.keywords():
        yield CompletionItem(keyword, "keyword")


def _lenient(read: Callable[..., list[CatalogEntry]], *args: str) -> list[CatalogEntry]:
    """A name Spark does not know has nothing under it (while typing, most names are unfinished)."""
    try:
        return read(*args)
    except LookupError:
        return []


def _rank(items: list[CompletionItem], prefix: str) -> tuple[list[CompletionItem], bool]:
    """Items matching ``prefix`` (a prefix, else in order), prefix matches first; at most MAX_COMPLETIONS."""
    wanted = prefix.lower()
    scored: list[tuple[int, int, CompletionItem]] = []
    seen: set[tuple[str, str]] = set()
    for order, item in enumerate(items):
        key = (item.label, item.kind)
        if key in seen:
            continue
        seen.add(key)
        label = item.label.lower()
        if label.startswith(wanted):
            scored.append((0, order, item))
        elif _subsequence(wanted, label):
            scored.append((1, order, item))
    scored.sort(key=lambda s: (s[0], s[1]))
    return [item for _, _, item in scored[:MAX_COMPLETIONS]], len(scored) > MAX_COMPLETIONS


def _subsequence(wanted: str, label: str) -> bool:
    found = iter(label)
    return all(ch in found for ch in wanted)


def _quoted(item: CompletionItem) -> CompletionItem:
    if item.kind == "keyword":
        return item
    return CompletionItem(item.label, item.kind, item.detail, quote(item.label))


def _unquoted(item: CompletionItem, lower: bool) -> CompletionItem:
    """Keywords in the case being typed; names that are not plain identifiers inserted quoted."""
    if item.kind == "keyword":
        return CompletionItem(item.label, item.kind, item.detail, item.label.lower()) if lower else item
    if item.kind == "function" or PLAIN.match(item.label):
        return item
    return CompletionItem(item.label, item.kind, item.detail, quote(item.label))


def quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


# ---------------------------------------------------------------- inspection


def inspect(code: str, cursor: int, view: CatalogView) -> Found | None:
    """What the name at ``cursor`` is: a relation, a column, a function; None when nothing is known."""
    base, stop = sql_script.statement_at(code, cursor)
    statement = code[base:stop]
    spot = locate(statement, cursor - base)
    start, end = spot.start, spot.end
    if spot.quoted:
        close = statement.find("`", start + 1)
        end = len(statement) if close < 0 else close + 1
        name = statement[start + 1 : close if close >= 0 else len(statement)]
    else:
        name = statement[start:end]
    if not name or spot.context == "none":
        return None
    # The placeholder stood for the name: an alias being inspected is in the statement as it is.
    whole = scope_of(statement)
    spot.scope.sources += [s for s in whole.sources if s not in spot.scope.sources]
    spot.scope.ctes = {**whole.ctes, **spot.scope.ctes}
    found = _inspect(spot, name, view)
    if found is None:
        return None
    return Found(found.kind, found.name, base + start, base + end, found.data_type, found.signature, found.doc,
                 found.columns)


def _inspect(spot: Spot, name: str, view: CatalogView) -> Found | None:
    scope, qualifiers = spot.scope, spot.qualifiers
    if spot.context == "relation":
        return _inspect_relation((*qualifiers, name), scope, view)
    if spot.context == "namespace":
        return Found("database", ".".join((*qualifiers, name)), 0, 0)
    if spot.followed_by_paren:
        return _inspect_function(name, view)
    if qualifiers:
        source = resolve(qualifiers, scope)
        return _inspect_column(source, name, scope, view) if source is not None else None
    for source in scope.sources:
        column = _inspect_column(source, name, scope, view)
        if column is not None:
            return column
    for source in scope.sources:
        if source.reference.lower() == name.lower():
            kind = "alias" if source.alias else "table"
            label = ".".join(source.parts) if source.parts else source.reference
            return Found(kind, label, 0, 0, columns=source_columns(source, scope, view))
    return _inspect_function(name, view)


def _inspect_relation(parts: tuple[str, ...], scope: Scope, view: CatalogView) -> Found | None:
    if len(parts) == 1 and parts[0].lower() in scope.ctes:
        cte = scope.ctes[parts[0].lower()]
        return Found("view", cte.reference, 0, 0, doc="a WITH query of this statement",
                     columns=source_columns(cte, scope, view))
    try:
        columns = view.columns(parts)
    except LookupError:
        return None
    kind, comment = "table", None
    catalog, database = view.current()
    where = (catalog, database) if len(parts) == 1 else (catalog, parts[0]) if len(parts) == 2 else parts[:2]
    entry = next((e for e in _lenient(view.relations, *where) if e.name.lower() == parts[-1].lower()), None)
    if entry is not None:
        kind, comment = entry.kind, entry.comment
    qualified = parts if entry is None or entry.type == "TEMPORARY" else (*where, parts[-1])
    return Found(kind, ".".join(qualified), 0, 0, data_type=entry.type if entry else None, doc=comment,
                 columns=columns)


def _inspect_column(source: Source, name: str, scope: Scope, view: CatalogView) -> Found | None:
    for column in source_columns(source, scope, view):
        if column.name.lower() == name.lower():
            return Found("column", f"{source.reference}.{column.name}", 0, 0, data_type=column.type,
                         doc=column.comment)
    return None


def _inspect_function(name: str, view: CatalogView) -> Found | None:
    function = view.functions().get(name.lower())
    if function is None:
        return None
    try:
        doc: str | None = view.function_doc(function.name)
    except LookupError:
        doc = None
    return Found("function", function.name, 0, 0, signature=function.signature, doc=doc or function.usage)
