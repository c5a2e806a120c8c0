"""What a Spark SQL statement says around a cursor: the name being typed, what fits there, the relations in scope.

Pure analysis of a (possibly unfinished) statement: sqlglot (dialect ``spark``) tokenizes the
text before the cursor, which tells what the name at the cursor follows (a relation after
``FROM`` / ``JOIN``, a column or function in an expression, a keyword after a finished term),
and parses the statement with a placeholder where the cursor is, which resolves the relations
its query reads: their aliases, ``WITH`` queries and subqueries. Columns come from a
:class:`CatalogView` (the session's :class:`~spark_gateway.catalog.SessionCatalog`, or a fake).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel, SqlglotError
from sqlglot.tokens import Token, TokenType

from spark_gateway_protocol import sql_script
from spark_gateway_protocol.messages import CatalogEntry

from .catalog import Function

PLACEHOLDER = "__spark_gateway_cursor__"
_WORD_BEFORE = re.compile(r"\w*\Z")
_WORD_AFTER = re.compile(r"\w*")
PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")  # a name that needs no quotes
_MAX_DEPTH = 4  # WITH queries built on WITH queries: how deep columns are followed

# What the token before the name says is expected there.
_RELATION_AFTER = {TokenType.FROM, TokenType.JOIN, TokenType.TABLE, TokenType.INTO, TokenType.UPDATE,
                   TokenType.DESCRIBE, TokenType.VIEW, TokenType.USING}
_NAMESPACE_WORDS = {"USE", "DATABASE", "SCHEMA", "NAMESPACE", "DATABASES", "SCHEMAS", "NAMESPACES"}
_TERM_END = {TokenType.VAR, TokenType.IDENTIFIER, TokenType.NUMBER, TokenType.STRING, TokenType.R_PAREN,
             TokenType.R_BRACKET}
_CLAUSES = {TokenType.SELECT, TokenType.FROM, TokenType.WHERE, TokenType.GROUP_BY, TokenType.ORDER_BY,
            TokenType.HAVING, TokenType.JOIN, TokenType.ON, TokenType.LIMIT, TokenType.SET, TokenType.VALUES}


class CatalogView(Protocol):
    """What completion asks of the catalog; names Spark does not know raise ``LookupError``."""

    def current(self) -> tuple[str, str]: ...
    def catalogs(self) -> list[CatalogEntry]: ...
    def databases(self, catalog: str) -> list[CatalogEntry]: ...
    def relations(self, catalog: str, database: str) -> list[CatalogEntry]: ...
    def columns(self, name: tuple[str, ...]) -> list[CatalogEntry]: ...
    def functions(self) -> dict[str, Function]: ...
    def function_doc(self, name: str) -> str: ...
    def keywords(self) -> list[str]: ...


@dataclass
class Spot:
    """The name at the cursor and what the text before it expects there."""

    context: str  # "relation", "namespace", "expression", "keyword" or "none"
    qualifiers: list[str]  # a.b.| -> ["a", "b"]
    prefix: str  # what is typed of the name
    start: int  # where the name (or its opening backquote) starts, in the statement
    end: int  # where the word at the cursor ends
    quoted: bool  # typed inside a backquote
    followed_by_paren: bool
    scope: Scope


def locate(statement: str, cursor: int) -> Spot:
    """Read the statement around ``cursor`` (an offset into the statement)."""
    inside = sql_script.open_at(statement, cursor)
    none = Spot("none", [], "", cursor, cursor, False, False, Scope())
    if inside is not None and inside[0] != "identifier":
        return none  # in a string literal or a comment: nothing to complete
    if inside is not None:
        start, prefix, quoted = inside[1], statement[inside[1] + 1 : cursor], True
        end = cursor
    else:
        prefix = _WORD_BEFORE.search(statement, 0, cursor).group()  # type: ignore[union-attr]
        start, quoted = cursor - len(prefix), False
        end = _WORD_AFTER.match(statement, cursor).end()  # type: ignore[union-attr]
    tokens = _tokens(statement[:start])
    if tokens is None:
        return none
    qualifiers, before = _qualifiers(tokens, start)
    context = _context(before, bool(qualifiers))
    rest = statement[end:].lstrip()
    scope = scope_of(statement[:start] + PLACEHOLDER + statement[end:])
    return Spot(context, qualifiers, prefix, start, end, quoted, rest.startswith("("), scope)


def _tokens(text: str) -> list[Token] | None:
    try:
        return list(sqlglot.tokenize(text, read="spark"))
    except SqlglotError:
        return None


def _qualifiers(tokens: list[Token], start: int) -> tuple[list[str], list[Token]]:
    """``a.b.`` right before ``start``: the names, and the tokens before them."""
    names: list[str] = []
    i = len(tokens)
    while i >= 2 and tokens[i - 1].token_type is TokenType.DOT and tokens[i - 1].end == start - 1:
        name = tokens[i - 2]
        if not _is_name(name):
            break
        names.insert(0, name.text)
        start = name.start
        i -= 2
    return names, tokens[:i]


def _is_name(token: Token) -> bool:
    return token.token_type in (TokenType.VAR, TokenType.IDENTIFIER) or bool(PLAIN.match(token.text))


def _context(before: list[Token], qualified: bool) -> str:
    if not before:
        return "keyword"
    last = before[-1]
    kind = last.token_type
    if last.text.upper() in _NAMESPACE_WORDS or (kind is TokenType.IN and _shows(before)):
        return "namespace"
    if kind in _RELATION_AFTER or (kind is TokenType.COMMA and _clause(before) is TokenType.FROM):
        return "relation"
    if kind is TokenType.ALIAS:
        return "none"  # a new name is being made up
    if not qualified and kind in _TERM_END:
        return "keyword"  # after a finished term: WHERE, JOIN, AS, ...
    return "expression"


def _shows(tokens: list[Token]) -> bool:
    return tokens[0].token_type is TokenType.SHOW


def _clause(tokens: list[Token]) -> TokenType | None:
    """The last clause keyword at the depth of the end of ``tokens``."""
    depth = 0
    for token in reversed(tokens):
        if token.token_type is TokenType.R_PAREN:
            depth += 1
        elif token.token_type is TokenType.L_PAREN:
            if depth == 0:
                return None
            depth -= 1
        elif depth == 0 and token.token_type in _CLAUSES:
            return token.token_type
    return None


# ---------------------------------------------------------------- what is in scope


@dataclass(frozen=True)
class Source:
    """A relation in scope: a catalog table (``parts``), or a query (a WITH query, a subquery)."""

    alias: str | None
    parts: tuple[str, ...] = ()
    query: exp.Expr | None = None
    column_names: tuple[str, ...] = ()  # WITH t(a, b) AS ...

    @property
    def reference(self) -> str:
        """How the statement refers to it: its alias, else its name."""
        return self.alias or (self.parts[-1] if self.parts else "")


@dataclass
class Scope:
    """The relations the cursor's query reads, innermost first, and the WITH queries it sees."""

    sources: list[Source] = field(default_factory=list)
    ctes: dict[str, Source] = field(default_factory=dict)


def scope_of(text: str) -> Scope:
    tree = _parse(text)
    if tree is None:
        return Scope()
    scope = Scope()
    spot = next((n for n in tree.walk() if isinstance(n, exp.Identifier) and n.name == PLACEHOLDER), None)
    node = spot.parent if spot is not None else None
    selects: list[exp.Select] = []
    while node is not None:
        if isinstance(node, exp.Select):
            selects.append(node)
        with_ = _arg(node, "with")
        if isinstance(with_, exp.With):
            for cte in with_.expressions:
                columns = tuple(c.name for c in cte.args["alias"].columns) if cte.args.get("alias") else ()
                scope.ctes.setdefault(cte.alias.lower(), Source(cte.alias, query=cte.this, column_names=columns))
        node = node.parent
    if spot is None:  # the placeholder vanished: every relation of the statement
        selects = list(tree.find_all(exp.Select))
    for select in selects:
        scope.sources.extend(_sources_of(select))
    return scope


def _parse(text: str) -> exp.Expr | None:
    for level in (ErrorLevel.RAISE, ErrorLevel.IGNORE):  # unfinished SQL: take what sqlglot makes of it
        try:
            tree = sqlglot.parse_one(text, read="spark", error_level=level)
        except (SqlglotError, RecursionError, ValueError, TypeError, AttributeError):
            continue
        if tree is not None:
            return tree
    return None


def _arg(node: exp.Expr, name: str) -> exp.Expr | None:
    """A clause of a node: sqlglot names the ones that are Python keywords ``from_``, ``with_``."""
    value = node.args.get(name + "_", node.args.get(name))
    return value if isinstance(value, exp.Expr) else None


def _sources_of(select: exp.Select) -> Iterable[Source]:
    from_ = _arg(select, "from")
    items = [from_.this] if isinstance(from_, exp.From) else []
    items += [join.this for join in select.args.get("joins") or []]
    for item in items:
        alias = item.alias or None
        if alias == PLACEHOLDER:
            alias = None
        if isinstance(item, exp.Table) and isinstance(item.this, exp.Identifier):
            parts = tuple(p.name for p in item.parts)
            if PLACEHOLDER not in parts:
                yield Source(alias, parts=parts)
        elif isinstance(item, exp.Subquery) and alias:
            yield Source(alias, query=item.this)


# ---------------------------------------------------------------- columns of a source


def source_columns(source: Source, scope: Scope, view: CatalogView, depth: int = 0) -> list[CatalogEntry]:
    if source.query is not None:
        columns = _query_columns(source.query, scope, view, depth)
        if source.column_names:
            columns = [CatalogEntry(name, "column", c.type if c else None)
                       for name, c in zip(source.column_names, [*columns, *[None] * len(source.column_names)],
                                          strict=False)]
        return columns
    if len(source.parts) == 1 and source.parts[0].lower() in scope.ctes and depth < _MAX_DEPTH:
        return source_columns(scope.ctes[source.parts[0].lower()], scope, view, depth + 1)
    try:
        return view.columns(source.parts)
    except LookupError:
        return []


def _query_columns(query: exp.Expr, scope: Scope, view: CatalogView, depth: int) -> list[CatalogEntry]:
    """The output columns of a query, typed where they are plain columns of its relations."""
    while isinstance(query, (exp.Union, exp.Intersect, exp.Except)):
        query = query.this
    if not isinstance(query, exp.Select) or depth >= _MAX_DEPTH:
        return []
    inner = Scope(list(_sources_of(query)), scope.ctes)
    known: dict[str, CatalogEntry] = {}
    by_source: dict[str, list[CatalogEntry]] = {}
    for source in inner.sources:
        columns = source_columns(source, inner, view, depth + 1)
        by_source[source.reference.lower()] = columns
        for column in columns:
            known.setdefault(column.name.lower(), column)
    out: list[CatalogEntry] = []
    for projection in query.expressions:
        if isinstance(projection, exp.Star):
            out.extend(c for columns in by_source.values() for c in columns)
        elif isinstance(projection, exp.Column) and isinstance(projection.this, exp.Star):
            out.extend(by_source.get(projection.table.lower(), []))
        elif projection.alias_or_name:
            target = projection.unalias()
            same = known.get(target.name.lower()) if isinstance(target, exp.Column) else None
            out.append(CatalogEntry(projection.alias_or_name, "column", same.type if same else None))
    return out


def resolve(qualifiers: list[str], scope: Scope) -> Source | None:
    """The source that ``a.`` (or ``db.t.``) names in the statement."""
    wanted = [q.lower() for q in qualifiers]
    for source in scope.sources:
        if source.alias is not None:
            if wanted == [source.alias.lower()]:
                return source
        elif [p.lower() for p in source.parts[-len(wanted):]] == wanted:
            return source
    if len(wanted) == 1 and wanted[0] in scope.ctes:
        return scope.ctes[wanted[0]]
    return None
