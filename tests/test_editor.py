"""Editors that know the data: complete, inspect and catalog over a real websocket, a real gateway and Spark.

The gateway runs with ``--sample-data`` (temp views ``consumers`` and ``sales``). Every frame is
checked against the JSON Schema by tests/wsclient.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import orjson
import pytest

from tests.conftest import GatewayProcess
from tests.wsclient import Client, of_type, open_client

pytestmark = pytest.mark.integration

LONG_QUERY = "SELECT sum(id * 7 % 13) FROM range(0, 100000000000, 1, 2)"


@pytest.fixture(scope="module")
def sample_gateway(spark_remote: str) -> Iterator[GatewayProcess]:
    """The real gateway with the sample temp views, its Spark warmed up by a session of its own.

    A JVM that never ran a catalog read takes seconds for each of the first ones: the tests are
    about the gateway, not about the JIT (bench/bench_completion.py measures a cold catalog).
    """
    process = GatewayProcess(spark_remote, "--sample-data")

    async def warm_up() -> None:
        async with open_client(process.ws_url) as client:
            await client.run("SELECT * FROM consumers", id="warm", timeout=300)
            await client.send({"type": "complete", "id": "w1", "code": "SELECT c. FROM consumers c", "cursor": 9})
            await client.wait_for(lambda e: e.get("id") == "w1", 300)

    try:
        anyio.run(warm_up)
        yield process
    finally:
        process.stop()


@pytest.fixture
async def client(sample_gateway: GatewayProcess) -> AsyncIterator[Client]:
    async with open_client(sample_gateway.ws_url) as opened:
        yield opened


async def ask(client: Client, request: dict[str, Any]) -> dict[str, Any]:
    """Send an editor request; its one answer (or error)."""
    await client.send(request)
    kinds = ("completions", "inspection", "catalog-entries", "error")
    return await client.wait_for(lambda e: e["type"] in kinds and e.get("id") == request["id"]
                                 and (e["type"] != "error" or e["request"] == request["type"]), 30)


async def complete(client: Client, rid: str, code: str, cursor: int | None = None,
                   language: str = "sql") -> dict[str, Any]:
    answer = await ask(client, {"type": "complete", "id": rid, "language": language, "code": code,
                                "cursor": len(code) if cursor is None else cursor})
    assert answer["type"] == "completions", answer
    return answer


def labels(answer: dict[str, Any]) -> list[str]:
    return [item["label"] for item in answer["items"]]


async def test_a_relation_completes_before_anything_ran(client: Client) -> None:
    """`SELECT * FROM con` completes the sample view `consumers` in a session that has run nothing yet."""
    answer = await complete(client, "e1", "SELECT * FROM con")
    assert answer["items"][0] == {"label": "consumers", "kind": "view", "detail": "TEMPORARY", "insert": None}
    assert (answer["from"], answer["to"]) == (14, 17)


async def test_columns_of_an_alias_complete(client: Client) -> None:
    """`SELECT c. FROM consumers c` offers the columns of consumers, name and city among them, typed."""
    answer = await complete(client, "e1", "SELECT c. FROM consumers c", 9)
    items = {item["label"]: item for item in answer["items"]}
    assert items["name"]["detail"] == "string" and items["city"]["kind"] == "column"
    assert set(items) == {"id", "name", "age", "city", "email", "signup_date"}


async def test_python_completes_methods_and_columns_of_a_dataframe(client: Client) -> None:
    """After `sales = spark.table("sales")`, `sales.` offers groupBy and `sales["` the column amount."""
    events = await client.run('sales = spark.table("sales")', id="p1", language="python")
    assert events[-1]["status"] == "ok"
    methods = await complete(client, "e1", "sales.", language="python")
    assert "groupBy" in labels(methods)
    quoted = await complete(client, "e2", 'sales["', language="python")
    amount = next(item for item in quoted["items"] if item["label"] == "amount")
    assert (amount["kind"], amount["detail"]) == ("column", "decimal(10,2)")
    found = await ask(client, {"type": "inspect", "id": "e3", "language": "python", "code": "sales.groupBy",
                               "cursor": 10})
    assert found["found"] and found["signature"].startswith("groupBy(") and "Groups" in found["doc"]


async def test_the_catalog_expands_to_a_table_and_its_typed_columns(client: Client) -> None:
    """catalog: [] → spark_catalog, → default, → sales (a temp view), → its columns with Spark's types."""
    catalogs = await ask(client, {"type": "catalog", "id": "c1", "path": []})
    assert "spark_catalog" in [e["name"] for e in catalogs["entries"]]
    databases = await ask(client, {"type": "catalog", "id": "c2", "path": ["spark_catalog"]})
    assert "default" in [e["name"] for e in databases["entries"]]
    relations = await ask(client, {"type": "catalog", "id": "c3", "path": ["spark_catalog", "default"]})
    sales = next(e for e in relations["entries"] if e["name"] == "sales")
    assert (sales["kind"], sales["type"]) == ("view", "TEMPORARY") and relations["truncated"] is False
    columns = await ask(client, {"type": "catalog", "id": "c4", "path": ["spark_catalog", "default", "sales"]})
    assert [(e["name"], e["type"]) for e in columns["entries"]][:4] == [
        ("id", "int"), ("consumer_id", "int"), ("product", "string"), ("amount", "decimal(10,2)")]


async def test_a_temp_view_made_in_a_cell_completes_right_after(client: Client) -> None:
    """A temp view created by SQL, or by Python, completes as soon as its execution finished."""
    await complete(client, "e0", "SELECT * FROM fresh")  # the catalog is now cached without them
    await client.run("CREATE TEMP VIEW fresh_sql AS SELECT 1 AS one", id="q1")
    await client.run("spark.range(2).createOrReplaceTempView('fresh_py')", id="p1", language="python")
    answer = await complete(client, "e1", "SELECT * FROM fresh")
    assert {"fresh_sql", "fresh_py"} <= set(labels(answer))
    columns = await complete(client, "e2", "SELECT f. FROM fresh_sql f", 9)
    assert labels(columns) == ["one"]


async def test_completion_answers_while_a_long_query_runs(client: Client) -> None:
    """A long query runs in the session; completion, inspection and the catalog answer meanwhile."""
    await complete(client, "warm", "SELECT * FROM sales s WHERE s.")
    await complete(client, "warm-functions", "SELECT upp")  # Spark's function list: read once per gateway
    await client.execute(LONG_QUERY, id="long")
    await client.wait_for(lambda e: e["type"] == "progress" and e["id"] == "long", 60)  # its job runs
    answer = await complete(client, "e1", "SELECT s. FROM sales s", 9)
    assert "amount" in labels(answer)
    cold = await complete(client, "e2", "SELECT c. FROM consumers c WHERE c.age > 3", 9)  # not cached yet
    assert "city" in labels(cold)
    function = await ask(client, {"type": "inspect", "id": "e3", "code": "SELECT upper(name)", "cursor": 9})
    assert function["found"] and function["signature"] == "upper(str)" and "uppercase" in function["doc"]
    python = await complete(client, "e4", "spark.ra", language="python")
    assert "range" in labels(python)
    assert not [e for e in of_type(client.events, "finished") if e["id"] == "long"], "the query ended first"
    await client.send({"type": "interrupt", "id": "long"})
    finished = await client.wait_for(lambda e: e["type"] == "finished" and e["id"] == "long", 60)
    assert finished["status"] == "interrupted"


async def test_editor_ids_are_their_own_space(client: Client) -> None:
    """An editor request may carry the id of an execution: each gets its own answer."""
    await client.execute("SELECT 1 AS one", id="same")
    answer = await complete(client, "same", "SELECT * FROM sal")
    assert labels(answer)[0] == "sales"
    finished = await client.wait_for(lambda e: e["type"] == "finished" and e["id"] == "same")
    assert finished["status"] == "ok"


async def test_inspection_of_a_table_and_a_column(client: Client) -> None:
    """inspect: a relation gives its columns, a column its type."""
    table = await ask(client, {"type": "inspect", "id": "i1", "code": "SELECT * FROM sales", "cursor": 16})
    assert (table["found"], table["kind"], table["name"]) == (True, "view", "sales")
    assert "amount" in [c["name"] for c in table["columns"]] and (table["from"], table["to"]) == (14, 19)
    column = await ask(client, {"type": "inspect", "id": "i2", "code": "SELECT s.amount FROM sales s", "cursor": 11})
    assert (column["kind"], column["data_type"]) == ("column", "decimal(10,2)")
    nothing = await ask(client, {"type": "inspect", "id": "i3", "code": "SELECT nosuch FROM sales", "cursor": 9})
    assert nothing["found"] is False and nothing["columns"] == []


@pytest.mark.parametrize(("request_", "code"), [
    ({"type": "complete", "id": "b1", "code": "SELECT", "cursor": 7}, "bad_message"),
    ({"type": "complete", "id": "b2", "code": "SELECT", "cursor": 3, "language": "scala"}, "bad_message"),
    ({"type": "inspect", "id": "b3", "code": "SELECT", "cursor": -1}, "bad_message"),
    ({"type": "catalog", "id": "b4", "path": ["spark_catalog", "nosuchdb"]}, "spark_error"),
    ({"type": "catalog", "id": "b5", "path": ["spark_catalog", "default", "nosuchtable"]}, "spark_error"),
    ({"type": "catalog", "id": "b6", "path": ["a", "b", "c", "d"]}, "bad_message"),
])
async def test_bad_editor_requests_get_typed_errors(client: Client, request_: dict[str, Any], code: str) -> None:
    """A cursor beyond the code, an unknown language, a path to nothing: a typed error; the session goes on."""
    await client.send(request_ if code != "bad_message" else orjson.dumps(request_).decode())  # raw: not schema-valid
    error = await client.wait_for(lambda e: e["type"] == "error" and e.get("id") == request_["id"])
    assert (error["code"], error["request"]) == (code, request_["type"])
    if code == "spark_error":
        assert error["error_class"] in ("SCHEMA_NOT_FOUND", "TABLE_OR_VIEW_NOT_FOUND")
    assert labels(await complete(client, "after", "SELECT * FROM sal"))[0] == "sales"


async def test_a_language_the_gateway_disables_is_unsupported(spark_remote: str) -> None:
    """On a gateway without Python, Python completion is refused with `unsupported`."""
    process = GatewayProcess(spark_remote, "--languages", "sql")
    try:
        async with open_client(process.ws_url) as client:
            answer = await ask(client, {"type": "complete", "id": "e1", "language": "python", "code": "x",
                                        "cursor": 1})
            assert (answer["type"], answer["code"]) == ("error", "unsupported")
    finally:
        process.stop()
