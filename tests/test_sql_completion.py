"""SQL completion and inspection, read from the text alone: a SQL statement, a cursor and a fake catalog (no JVM)."""

from __future__ import annotations

import pytest

from spark_gateway.catalog import Builtins, Function, SessionCatalog, UnknownName, may_change_catalog, signature_of
from spark_gateway.sql_completion import Completion, complete, inspect
from spark_gateway_protocol.messages import CatalogEntry, Execute

CONSUMERS = [("id", "int"), ("name", "string"), ("age", "int"), ("city", "string")]
SALES = [("id", "int"), ("consumer_id", "int"), ("product", "string"), ("amount", "decimal(10,2)")]


class FakeCatalog:
    """A catalog of two temp views, a database `shop` with tables, and a few functions."""

    def __init__(self) -> None:
        self.temp = {"consumers": CONSUMERS, "sales": SALES}
        self.tables = {("spark_catalog", "default"): {"events": [("ts", "timestamp"), ("order date", "date")]},
                       ("spark_catalog", "shop"): {"orders": [("order_id", "bigint"), ("total", "double")]}}
        self.reads: list[str] = []

    def current(self) -> tuple[str, str]:
        return "spark_catalog", "default"

    def catalogs(self) -> list[CatalogEntry]:
        return [CatalogEntry("spark_catalog", "catalog")]

    def databases(self, catalog: str) -> list[CatalogEntry]:
        if catalog.lower() != "spark_catalog":
            raise UnknownName(catalog)
        return [CatalogEntry(db, "database") for _, db in self.tables]

    def relations(self, catalog: str, database: str) -> list[CatalogEntry]:
        tables = self.tables.get((catalog.lower(), database.lower()))
        if tables is None:
            raise UnknownName(database)
        return ([CatalogEntry(t, "table", "TABLE") for t in tables]
                + [CatalogEntry(v, "view", "TEMPORARY") for v in self.temp])

    def columns(self, name: tuple[str, ...]) -> list[CatalogEntry]:
        self.reads.append(".".join(name))
        parts = [p.lower() for p in name]
        if len(parts) == 1 and parts[0] in self.temp:
            found = self.temp[parts[0]]
        else:
            key = (("spark_catalog", "default") if len(parts) == 1 else
                   ("spark_catalog", parts[0]) if len(parts) == 2 else (parts[0], parts[1]))
            found = self.tables.get(key, {}).get(parts[-1])  # type: ignore[assignment]
        if found is None:
            raise UnknownName(".".join(name))
        return [CatalogEntry(n, "column", t) for n, t in found]

    def functions(self) -> dict[str, Function]:
        usages = {"upper": "upper(str) - Returns `str` with all characters changed to uppercase.",
                  "count": "count(*) - Returns the total number of retrieved rows.",
                  "concat": "concat(col1, col2, ..., colN) - Returns the concatenation of col1, col2, ..., colN.",
                  "!": "! expr - Logical not."}
        return {name: Function(name, signature_of(usage), usage) for name, usage in usages.items()}

    def function_doc(self, name: str) -> str:
        return self.functions()[name.lower()].usage + "\n\nExamples:\n  > SELECT upper('a');"  # type: ignore[operator]

    def keywords(self) -> list[str]:
        return ["AS", "FROM", "GROUP", "JOIN", "SELECT", "WHERE", "WITH"]


def at(sql: str) -> tuple[str, int]:
    """The SQL with its `|` removed, and the cursor where it was."""
    cursor = sql.index("|")
    return sql[:cursor] + sql[cursor + 1 :], cursor


def completing(sql: str, catalog: FakeCatalog | None = None) -> Completion:
    code, cursor = at(sql)
    return complete(code, cursor, catalog or FakeCatalog())


def labels(sql: str, kind: str | None = None) -> list[str]:
    return [i.label for i in completing(sql).items if kind is None or i.kind == kind]


def test_a_relation_after_from_completes_temp_views_and_tables() -> None:
    """`SELECT * FROM con` offers the temp view `consumers`, replacing the typed `con`."""
    result = completing("SELECT * FROM con|")
    assert result.items[0].label == "consumers" and result.items[0].kind == "view"
    assert (result.start, result.end) == (14, 17)
    assert "events" in labels("SELECT * FROM |")
    assert "shop" in labels("SELECT * FROM |", "database")


def test_columns_of_an_alias_complete_after_its_dot() -> None:
    """`SELECT c. FROM consumers c` offers the columns of consumers with their types, and only them."""
    result = completing("SELECT c.| FROM consumers c")
    assert [(i.label, i.kind, i.detail) for i in result.items] == [(n, "column", t) for n, t in CONSUMERS]
    assert (result.start, result.end) == (9, 9)


def test_columns_of_every_relation_in_scope_complete_in_an_expression() -> None:
    """In a WHERE clause, columns of both joined relations come first, then aliases, functions, keywords."""
    items = completing("SELECT * FROM consumers c JOIN sales s ON c.id = s.consumer_id WHERE |").items
    names = [i.label for i in items]
    assert names[:7] == ["id", "name", "age", "city", "consumer_id", "product", "amount"]
    assert {"c", "s"} <= set(names) and "upper" in names and "WHERE" in names
    assert "!" not in names  # operators Spark lists as functions are not names
    assert labels("SELECT * FROM consumers c JOIN sales s ON s.| = c.id") == [n for n, _ in SALES]


def test_the_word_being_typed_filters_and_is_replaced_whole() -> None:
    """`SELECT na|me_x` replaces the whole word; a prefix match ranks before a looser one."""
    result = completing("SELECT c.na|mexx FROM consumers c")
    assert [i.label for i in result.items] == ["name"]
    assert (result.start, result.end) == (9, 15)
    assert labels("SELECT c.ag| FROM consumers c") == ["age"]
    assert labels("SELECT c.cy| FROM consumers c") == ["city"]  # c..y: a subsequence


def test_with_queries_and_subqueries_resolve_to_their_columns() -> None:
    """A WITH query's and a subquery's output columns complete, typed when they are plain columns."""
    sql = "WITH big AS (SELECT name, age * 2 AS twice FROM consumers) SELECT b.| FROM big b"
    assert [(i.label, i.detail) for i in completing(sql).items] == [("name", "string"), ("twice", None)]
    assert "big" in labels("WITH big AS (SELECT * FROM consumers) SELECT * FROM b|")
    sub = "SELECT x.| FROM (SELECT id AS a, product FROM sales) x"
    assert [(i.label, i.detail) for i in completing(sub).items] == [("a", "int"), ("product", "string")]
    star = "WITH s2 AS (SELECT * FROM sales) SELECT s2.| FROM s2"
    assert labels(star) == [n for n, _ in SALES]


def test_unfinished_sql_still_completes() -> None:
    """A dangling WHERE, an open parenthesis or a missing FROM list do not stop completion."""
    assert labels("SELECT c.| FROM consumers c WHERE") == [n for n, _ in CONSUMERS]
    assert "name" in labels("SELECT upper(| FROM consumers")
    assert "amount" in labels("SELECT * FROM consumers WHERE id IN (SELECT consumer_id FROM sales WHERE am|")
    assert "consumers" in labels("SELECT * FROM sales, |")


def test_qualified_relations_complete_from_their_database_and_catalog() -> None:
    """`shop.` offers the tables of shop; `spark_catalog.` its databases; temp views belong to none."""
    assert labels("SELECT * FROM shop.|") == ["orders"]
    assert labels("SELECT * FROM spark_catalog.|") == ["default", "shop"]
    assert labels("SELECT * FROM spark_catalog.shop.o|") == ["orders"]
    assert labels("SELECT * FROM nosuchdb.|") == []
    assert labels("SELECT o.| FROM shop.orders o") == ["order_id", "total"]


def test_names_that_need_quotes_are_inserted_quoted() -> None:
    """A column with a blank is inserted in backquotes; inside an open backquote everything is."""
    item = next(i for i in completing("SELECT e.| FROM events e").items if i.label == "order date")
    assert item.insert == "`order date`"
    quoted = completing("SELECT e.`ord| FROM events e")
    assert [(i.label, i.insert) for i in quoted.items] == [("order date", "`order date`")]
    assert quoted.start == len("SELECT e.")


def test_keywords_after_a_finished_term_and_in_the_typed_case() -> None:
    """After `FROM consumers c ` come keywords; typed in lower case, they are inserted in lower case."""
    assert labels("SELECT * FROM consumers c |") == FakeCatalog().keywords()
    item = completing("SELECT * FROM consumers c wh|").items[0]
    assert (item.label, item.insert) == ("WHERE", "where")
    assert labels("sel|") == ["SELECT"]


def test_nothing_completes_in_strings_comments_and_new_aliases() -> None:
    """Inside a string literal, a comment, or where an alias is being named, no items come."""
    assert labels("SELECT 'con|") == []
    assert labels("SELECT 1 -- FROM con|") == []
    assert labels("SELECT id AS i| FROM consumers") == []


def test_the_statement_at_the_cursor_is_the_one_completed() -> None:
    """In a script, only the cursor's statement counts, and offsets are the whole code's."""
    result = completing("SELECT * FROM sales s; SELECT c.| FROM consumers c")
    assert [i.label for i in result.items] == [n for n, _ in CONSUMERS]
    assert result.start == result.end == len("SELECT * FROM sales s; SELECT c.")


def test_functions_complete_with_their_signatures() -> None:
    """A function's item carries its signature from Spark's usage text."""
    item = next(i for i in completing("SELECT upp|").items if i.kind == "function")
    assert (item.label, item.detail) == ("upper", "upper(str)")


def test_inspecting_a_table_a_column_and_a_function() -> None:
    """inspect: a relation has its columns, a column its type, a function its signature and Spark's doc."""
    catalog = FakeCatalog()
    table = inspect(*at("SELECT * FROM cons|umers c"), catalog)
    assert table is not None and (table.kind, table.name, table.data_type) == ("view", "consumers", "TEMPORARY")
    assert [c.name for c in table.columns] == [n for n, _ in CONSUMERS] and (table.start, table.end) == (14, 23)
    column = inspect(*at("SELECT c.ci|ty FROM consumers c"), catalog)
    assert column is not None and (column.kind, column.name, column.data_type) == ("column", "c.city", "string")
    function = inspect(*at("SELECT up|per(name) FROM consumers"), catalog)
    assert function is not None and function.kind == "function" and function.signature == "upper(str)"
    assert function.doc is not None and "Examples" in function.doc
    alias = inspect(*at("SELECT * FROM consumers c| WHERE c.id = 1"), catalog)
    assert alias is not None and alias.kind == "alias" and len(alias.columns) == len(CONSUMERS)
    orders = inspect(*at("SELECT * FROM shop.ord|ers"), catalog)
    assert orders is not None and orders.name == "spark_catalog.shop.orders" and orders.kind == "table"
    assert inspect(*at("SELECT nosuch|thing FROM consumers"), catalog) is None


@pytest.mark.parametrize(("code", "changes"), [
    ("SELECT 1", False), ("  -- note\nWITH a AS (SELECT 1) SELECT * FROM a", False), ("SHOW TABLES", False),
    ("(SELECT 1)", False), ("CREATE TEMP VIEW v AS SELECT 1", True), ("USE shop", True),
    ("SELECT 1; DROP VIEW v", True), ("CACHE TABLE t", True),
])
def test_executions_that_may_change_the_catalog(code: str, changes: bool) -> None:
    """Plain queries keep the cached catalog; DDL, USE and any other statement invalidate it."""
    from spark_gateway_protocol import sql_script

    request = Execute("q", code)
    assert may_change_catalog(request, [s.text for s in sql_script.split(code)]) is changes
    assert may_change_catalog(Execute("p", "x = 1", "python"), []) is True


class CountingSpark:
    """The catalog part of the Spark adapter, counting its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def list_columns(self, session: object, name: list[str]) -> list[CatalogEntry]:
        self.calls += 1
        if name == ["nosuch"]:
            raise ValueError("not found")
        return [CatalogEntry("a", "column", "int")]

    def spark_error_fields(self, exc: BaseException) -> dict | None:
        return {"code": "spark_error"} if isinstance(exc, ValueError) else None

    def is_unavailable(self, exc: BaseException) -> bool:
        return False


def test_the_session_catalog_caches_until_invalidated_or_rebound() -> None:
    """A second read is served from the cache; invalidate() or a new Spark session read Spark again."""
    spark = CountingSpark()
    catalog = SessionCatalog(spark, Builtins(spark), "sc://nowhere")
    catalog.bind("session-1")
    catalog.columns(("t",))
    catalog.columns(("T",))
    assert spark.calls == 1
    catalog.invalidate()
    catalog.columns(("t",))
    catalog.bind("session-2")
    catalog.columns(("t",))
    assert spark.calls == 3
    for _ in range(2):  # an unknown name is an answer too: asked once
        with pytest.raises(UnknownName):
            catalog.columns(("nosuch",))
    assert spark.calls == 4
