"""The session's editor requests without a JVM: one answer each, a deadline, bounded threads, typed refusals.

A fake of the Spark adapter's catalog functions stands behind the one seam; the outbox is the real one.
"""

from __future__ import annotations

import threading
from typing import Any

import anyio
import orjson
import pytest

from spark_gateway.catalog import Builtins
from spark_gateway.editor import Editor
from spark_gateway.outbox import Outbox
from spark_gateway_protocol import ErrorCode, ProtocolError
from spark_gateway_protocol.messages import Catalog, CatalogEntry, Complete, Execute, Inspect
from tests.wsclient import validate


class SlowSpark:
    """The adapter's catalog part; ``list_relations`` waits for ``release`` (a Spark that does not answer)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.calls: list[str] = []

    def connect(self, url: str) -> object:
        return object()

    def release_quietly(self, session: object) -> None:
        pass

    def current_namespace(self, session: object) -> tuple[str, str]:
        return "spark_catalog", "default"

    def list_catalogs(self, session: object) -> list[CatalogEntry]:
        return [CatalogEntry("spark_catalog", "catalog")]

    def list_databases(self, session: object, catalog: str) -> list[CatalogEntry]:
        return [CatalogEntry("default", "database")]

    def list_relations(self, session: object, catalog: str, database: str) -> list[CatalogEntry]:
        self.calls.append(f"relations {database}")
        self.release.wait(10)
        return [CatalogEntry("consumers", "view", "TEMPORARY")]

    def list_columns(self, session: object, name: list[str]) -> list[CatalogEntry]:
        self.calls.append(f"columns {'.'.join(name)}")
        return [CatalogEntry("city", "column", "string")]

    def list_functions(self, session: object, *, builtin: bool) -> list[tuple[str, str | None]]:
        return [("upper", "upper(str) - Returns `str` upper-cased.")] if builtin else []

    def sql_keywords(self, session: object) -> list[str]:
        return ["SELECT", "FROM"]

    def spark_error_fields(self, exc: BaseException) -> dict[str, Any] | None:
        return None

    def is_unavailable(self, exc: BaseException) -> bool:
        return False

    def is_dataframe(self, value: object) -> bool:
        return False


def editor(spark: SlowSpark, outbox: Outbox, **options: Any) -> Editor:
    async def spark_session() -> object:
        return "the-spark-session"

    return Editor(spark=spark, spark_url="sc://fake", builtins=Builtins(spark), outbox=outbox,
                  languages=("sql", "python"), spark_session=spark_session, namespace=lambda: {"answer": 42},
                  **options)


async def answers(outbox: Outbox, count: int) -> list[dict[str, Any]]:
    """The next ``count`` events, schema-checked."""
    got = []
    with anyio.fail_after(10):
        for _ in range(count):
            event = orjson.loads(await outbox.get())
            validate(event)
            got.append(event)
    return got


async def test_a_catalog_that_does_not_answer_gets_a_timeout_and_the_session_goes_on() -> None:
    """A Spark call past the deadline: an error `timeout`; meanwhile and after, other requests are answered."""
    spark, outbox = SlowSpark(), Outbox()
    async with anyio.create_task_group() as tg:
        editing = editor(spark, outbox, deadline=0.3, threads=2)
        editing.handle(Complete("e1", "SELECT * FROM con", 17), tg)
        editing.handle(Complete("e2", "SELECT c. FROM consumers c", 9), tg)  # columns: no relations read
        (first, second) = await answers(outbox, 2)
        assert (first["type"], first["id"], [i["label"] for i in first["items"]]) == ("completions", "e2", ["city"])
        assert (second["type"], second["code"], second["id"], second["request"]) == ("error", "timeout", "e1",
                                                                                     "complete")
        spark.release.set()  # Spark answers at last: the stuck thread returns and frees its place
        editing.handle(Complete("e3", "SELECT * FROM con", 17), tg)
        (third,) = await answers(outbox, 1)
        assert third["type"] == "completions" and third["items"][0]["label"] == "consumers"


async def test_threads_stuck_on_spark_bound_what_a_session_holds() -> None:
    """With Spark stuck, requests that need the same read wait for the one under way and time out: no more threads."""
    spark, outbox = SlowSpark(), Outbox()
    before = threading.active_count()
    async with anyio.create_task_group() as tg:
        editing = editor(spark, outbox, deadline=0.3, threads=1)
        for n in range(3):
            editing.handle(Complete(f"e{n}", "SELECT * FROM con", 17), tg)
        events = await answers(outbox, 3)
        assert {e["code"] for e in events} == {"timeout"}
        assert spark.calls == ["relations default"]  # one read reached Spark; the others wait for it
        assert threading.active_count() <= before + 2  # the editor's one thread, and the stuck read
        spark.release.set()


async def test_refusals_are_typed_and_name_the_request() -> None:
    """A second request with an id in flight, too many in flight, a disabled language: refused at once."""
    spark, outbox = SlowSpark(), Outbox()
    async with anyio.create_task_group() as tg:
        editing = editor(spark, outbox, deadline=5, max_pending=2)
        editing.handle(Complete("e1", "SELECT * FROM con", 17), tg)
        with pytest.raises(ProtocolError) as duplicate:
            editing.handle(Inspect("e1", "SELECT 1", 1), tg)
        assert (duplicate.value.code, duplicate.value.request_type) == (ErrorCode.DUPLICATE_ID, "inspect")
        editing.handle(Catalog("e2", ["spark_catalog"]), tg)
        with pytest.raises(ProtocolError) as full:
            editing.handle(Catalog("e3", []), tg)
        assert full.value.code is ErrorCode.LIMIT_EXCEEDED
        spark.release.set()
        assert {e["id"] for e in await answers(outbox, 2)} == {"e1", "e2"}
        sql_only = Editor(spark=spark, spark_url="sc://fake", builtins=Builtins(spark), outbox=outbox,
                          languages=("sql",), spark_session=lambda: None,  # type: ignore[arg-type,return-value]
                          namespace=dict)
        with pytest.raises(ProtocolError) as python:
            sql_only.handle(Complete("e4", "x", 1, "python"), tg)
        assert python.value.code is ErrorCode.UNSUPPORTED


async def test_utf16_offsets_come_back_in_utf16() -> None:
    """A JavaScript client counts UTF-16 units: after an emoji, `from`/`to` are its offsets, not code points."""
    spark, outbox = SlowSpark(), Outbox()
    spark.release.set()
    code = "SELECT '\U0001F600', c. FROM consumers c"
    cursor = len(code.encode("utf-16-le")) // 2 - len(" FROM consumers c")
    async with anyio.create_task_group() as tg:
        editor(spark, outbox).handle(Complete("e1", code, cursor, units="utf-16"), tg)
        (answer,) = await answers(outbox, 1)
    assert (answer["from"], answer["to"]) == (cursor, cursor) and answer["items"][0]["label"] == "city"


async def test_python_completes_over_the_namespace_without_spark() -> None:
    """A Python completion reads the namespace it is given; no Spark call is made."""
    spark, outbox = SlowSpark(), Outbox()
    async with anyio.create_task_group() as tg:
        editor(spark, outbox).handle(Complete("e1", "ans", 3, "python"), tg)
        (answer,) = await answers(outbox, 1)
    assert answer["items"][0]["label"] == "answer" and spark.calls == []


def test_only_executions_that_may_change_the_catalog_invalidate_it() -> None:
    """A plain query keeps the cached catalog; a Python cell drops it."""
    spark = SlowSpark()
    spark.release.set()
    editing = editor(spark, Outbox())
    catalog = editing.catalog
    catalog.bind("session")
    catalog.columns(("t",))
    editing.after_code(Execute("q", "SELECT 1"))
    catalog.columns(("t",))
    assert spark.calls == ["columns t"]
    editing.after_code(Execute("p", "x = 1", "python"))
    catalog.columns(("t",))
    assert spark.calls == ["columns t", "columns t"]
