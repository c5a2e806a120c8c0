"""Whole-result downloads over HTTP: the real gateway, a real websocket, real Spark."""

from __future__ import annotations

import csv
import http.client
import io
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import anyio
import anyio.to_thread
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import GatewayProcess
from tests.wsclient import Client, open_client, rows_of, validate

pytestmark = pytest.mark.integration

MILLION = ("SELECT id, id * 0.5 AS half, concat('r', id) AS s, timestamp_seconds(id) AS ts, "
           "CASE WHEN id % 3 = 0 THEN NULL ELSE id % 7 END AS maybe FROM range(1000000)")
TOKEN = "d0wnl0ad"
OTHER = "0ther-d0wnl0ad"


@pytest.fixture(scope="module")
def token_gateway(spark_remote: str) -> Iterator[GatewayProcess]:
    """Two credentials; links that expire after 2 s."""
    process = GatewayProcess(spark_remote, "--token", f"{TOKEN},{OTHER}", "--download-link-seconds", "2")
    yield process
    process.stop()


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """GET the whole body; (status, headers, body); an error status has its typed body, schema-checked."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=300) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as err:
        body = err.read()
        error = json.loads(body)
        validate(error)  # an error event with seq 0: outside any session's stream
        assert error["seq"] == 0
        return err.code, dict(err.headers), body


async def link(client: Client, execution: str, result: int, fmt: str) -> str:
    await client.send({"type": "download", "id": execution, "result": result, "format": fmt})
    answer = await client.wait_for(lambda e: e["type"] in ("download-link", "error") and e.get("id") == execution
                                   and e.get("format", fmt) == fmt)
    assert answer["type"] == "download-link", answer
    return str(answer["url"])


async def first_page(client: Client, code: str, id: str, **fields: Any) -> None:
    """Run ``code`` and wait for its first page only (the rest is not asked for: the result stays open)."""
    await client.execute(code, id=id, **fields)
    await client.wait_for(lambda e: e["type"] in ("rows", "error") and e.get("id") == id)


async def download(base: str, url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    return await anyio.to_thread.run_sync(get, base + url, headers)


async def test_parquet_and_arrow_of_a_million_rows_equal_sparks_own_to_arrow(gateway: GatewayProcess, spark) -> None:  # type: ignore[no-untyped-def]
    """Read back with pyarrow, both files equal pyspark's toArrow() of the query; Parquet has one row group
    of the million rows (not one per Spark batch), and nothing went through the websocket."""
    expected = spark.sql(MILLION).toArrow()
    async with open_client(gateway.ws_url) as client:
        await first_page(client, MILLION, "m", page_size=100)
        status, headers, body = await download(gateway.http_url, await link(client, "m", 0, "parquet"))
        assert status == 200 and headers["content-type"] == "application/vnd.apache.parquet"
        assert 'filename="result-m-0.parquet"' in headers["content-disposition"]
        parquet = pq.ParquetFile(io.BytesIO(body))
        assert [parquet.metadata.row_group(i).num_rows for i in range(parquet.num_row_groups)] == [1_000_000]
        assert parquet.read().equals(expected)
        status, headers, body = await download(gateway.http_url, await link(client, "m", 0, "arrow"))
        assert status == 200 and headers["content-type"] == "application/vnd.apache.arrow.stream"
        assert pa.ipc.open_stream(body).read_all().equals(expected)


async def test_csv_download_of_a_sql_result(gateway: GatewayProcess) -> None:
    """CSV with a header; strings quoted as needed; the rows of the query, in order."""
    async with open_client(gateway.ws_url) as client:
        await first_page(client, "SELECT id, concat('a,', id) AS s FROM range(30000) ORDER BY id", "c")
        status, headers, body = await download(gateway.http_url, await link(client, "c", 0, "csv"))
    assert status == 200 and headers["content-type"] == "text/csv; charset=utf-8"
    rows = list(csv.reader(io.StringIO(body.decode(), newline="")))
    assert rows[0] == ["id", "s"] and len(rows) == 30001
    assert rows[1] == ["0", "a,0"] and rows[-1] == ["29999", "a,29999"]


async def test_a_python_cell_result_and_the_executions_limit(gateway: GatewayProcess) -> None:
    """A DataFrame a Python cell showed is run again (not the cell); the execution's limit applies."""
    async with open_client(gateway.ws_url) as client:
        await client.run("print('ran'); spark.range(50).selectExpr('id * 2 AS x')", id="py", language="python",
                         limit=20)
        status, _, body = await download(gateway.http_url, await link(client, "py", 0, "arrow"))
        assert status == 200 and pa.ipc.open_stream(body).read_all().column("x").to_pylist() == list(range(0, 40, 2))
        assert [e for e in client.events if e["type"] == "stdout"] and len(
            [e for e in client.events if e["type"] == "stdout"]) == 1  # the download printed nothing


async def test_a_download_does_not_disturb_the_notebooks_paging(gateway: GatewayProcess) -> None:
    """While the whole result downloads, the same result keeps paging over the websocket, page by page."""
    query = "SELECT id, concat('r', id) AS s FROM range(1000000)"
    async with open_client(gateway.ws_url) as client:
        await client.execute(query, id="pg", page_size=1000)
        await client.wait_for(lambda e: e["type"] == "rows" and e["id"] == "pg")
        url = await link(client, "pg", 0, "parquet")
        async with anyio.create_task_group() as tg:
            outcome: dict[str, tuple[int, dict[str, str], bytes]] = {}

            async def fetch() -> None:
                outcome["got"] = await download(gateway.http_url, url)

            tg.start_soon(fetch)
            for _ in range(20):
                await client.send({"type": "stream-rows", "id": "pg", "result": 0, "max_rows": 1000})
                await anyio.sleep(0.05)
            await client.send({"type": "close-result", "id": "pg", "result": 0})
            await client.wait_for(lambda e: e["type"] == "finished" and e["id"] == "pg")
        rows = rows_of(client.events)
        assert len(rows) == 21_000 and rows[0] == [0, "r0"] and rows[-1] == [20_999, "r20999"]
        status, _, body = outcome["got"]
        assert status == 200 and pq.read_table(io.BytesIO(body)).num_rows == 1_000_000


async def test_unknown_results_are_typed_errors(gateway: GatewayProcess) -> None:
    """Over the websocket: unknown_execution / unknown_result; over HTTP: 404 with a typed body."""
    async with open_client(gateway.ws_url) as client:
        await client.run("SELECT 1 AS one", id="k")
        await client.send({"type": "download", "id": "nope", "result": 0})
        error = await client.wait_for(lambda e: e["type"] == "error" and e.get("request") == "download")
        assert error["code"] == "unknown_execution" and error["id"] == "nope"
        await client.send({"type": "download", "id": "k", "result": 3})
        error = await client.wait_for(lambda e: e["type"] == "error" and e.get("id") == "k")
        assert error["code"] == "unknown_result"
        session = client.session["session_id"]
        for query, status, code in [
            ({"session": session, "execution": "k", "result": "1"}, 404, "unknown_result"),
            ({"session": session, "execution": "zz", "result": "0"}, 404, "unknown_execution"),
            ({"session": "00000000-0000-0000-0000-000000000000", "execution": "k", "result": "0"}, 404,
             "unknown_session"),
            ({"session": session, "execution": "k", "result": "0", "format": "xls"}, 400, "bad_message"),
        ]:
            got, _, body = await download(gateway.http_url, "/download?" + urlencode(query))
            assert (got, json.loads(body)["code"]) == (status, code)
        got, _, body = await download(gateway.http_url, "/download?" + urlencode(
            {"session": session, "execution": "k", "result": "0", "format": "csv"}))
        assert got == 200 and body == b"one\r\n1\r\n"  # open loopback gateway: no credential needed


async def test_credentials_and_signed_links(token_gateway: GatewayProcess) -> None:
    """Bearer of the owner: 200; none or wrong: 401; another credential: 403; a signed link needs no
    credential until it expires (403 link_expired); an altered one is refused (403 forbidden)."""
    base = token_gateway.http_url
    async with open_client(token_gateway.ws_url, additional_headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        await client.run("SELECT id FROM range(10)", id="t")
        session = client.session["session_id"]
        plain = "/download?" + urlencode({"session": session, "execution": "t", "result": "0", "format": "csv"})
        status, _, body = await download(base, plain, {"Authorization": f"Bearer {TOKEN}"})
        assert status == 200 and body.count(b"\r\n") == 11
        for headers, want, code in [({}, 401, "unauthorized"), ({"Authorization": "Bearer nope"}, 401, "unauthorized"),
                                    ({"Authorization": f"Bearer {OTHER}"}, 403, "forbidden")]:
            status, got_headers, body = await download(base, plain, headers)
            assert (status, json.loads(body)["code"]) == (want, code)
        url = await link(client, "t", 0, "csv")
        assert TOKEN not in url
        status, _, body = await download(base, url)
        assert status == 200 and body.startswith(b"id\r\n0\r\n")
        params = dict(parse_qsl(urlsplit(url).query))
        later = str(int(params["expires"]) + 60)
        for change in ({"result": "1"}, {"sig": params["sig"][:-2] + "AA"}, {"expires": later}):
            status, _, body = await download(base, "/download?" + urlencode({**params, **change}))
            assert (status, json.loads(body)["code"]) == (403, "forbidden")
        await anyio.sleep(2.5)
        status, _, body = await download(base, url)
        assert (status, json.loads(body)["code"]) == (403, "link_expired")
    metrics = (await download(base, "/metrics", {"Authorization": f"Bearer {TOKEN}"}))[2].decode()
    assert 'spark_gateway_downloads_total{format="csv",outcome="completed"} 2' in metrics
    assert 'spark_gateway_downloads_refused_total{code="link_expired"} 1' in metrics


def _read_cut(url: str) -> tuple[int, int]:
    """(status, bytes read) of a response that must end without its final chunk."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=300)
    conn.request("GET", f"{parts.path}?{parts.query}")
    response = conn.getresponse()
    read = 0
    with pytest.raises(http.client.IncompleteRead):
        while chunk := response.read1(1 << 16):
            read += len(chunk)
        response.read()  # a chunked body that ended cleanly returns b"" here
    conn.close()
    return response.status, read


async def test_a_failure_mid_download_cuts_the_response(gateway: GatewayProcess) -> None:
    """Spark fails after the download started: the chunked response has no final chunk (a failed
    download, never a file that looks complete), and the failure is counted."""
    query = ("SELECT id, CASE WHEN id = 3999999 THEN raise_error('boom') ELSE id END AS v "
             "FROM range(0, 4000000, 1, 4)")
    async with open_client(gateway.ws_url) as client:
        await first_page(client, query, "f", page_size=10)
        url = await link(client, "f", 0, "arrow")
        status, _ = await anyio.to_thread.run_sync(_read_cut, gateway.http_url + url)
        assert status == 200
        # the session lives on
        rows = rows_of(await client.run("SELECT 7 AS seven", id="after"))
        assert rows == [[7]]
    metrics = (await download(gateway.http_url, "/metrics"))[2].decode()
    assert 'spark_gateway_downloads_total{format="arrow",outcome="failed"}' in metrics


async def test_the_python_client_saves_a_result_and_the_cli_downloads(gateway: GatewayProcess, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """session.download writes the file the gateway streams; a refused one raises and leaves no file;
    `spark-gateway query --download -o FILE` saves the whole result."""
    import subprocess
    import sys

    from spark_gateway_client import connect
    from spark_gateway_client.errors import RequestRefused

    async with connect(gateway.ws_url) as session:
        execution = session.sql("SELECT id, id % 5 AS m FROM range(250000)", page_size=100)
        async for stream in execution.results():
            stream.close()
        await execution.wait()
        path = await session.download(execution, 0, tmp_path / "r.parquet")
        assert pq.read_table(path).num_rows == 250_000 and not (tmp_path / "r.parquet.part").exists()
        with pytest.raises(RequestRefused) as refused:
            await session.download(execution, 7, tmp_path / "none.csv", format="csv")
        assert refused.value.code == "unknown_result" and not (tmp_path / "none.csv").exists()
    out = tmp_path / "cli.arrows"
    done = await anyio.to_thread.run_sync(lambda: subprocess.run(
        [sys.executable, "-m", "spark_gateway_client", "--url", gateway.ws_url, "--download", "-o", str(out),
         "--format", "arrow", "SELECT id FROM range(123456)"], capture_output=True, text=True, timeout=120))
    assert done.returncode == 0, done.stderr
    assert pa.ipc.open_stream(out.read_bytes()).read_all().num_rows == 123_456


def _failed(metrics: str, fmt: str) -> int:
    for line in metrics.splitlines():
        if line.startswith(f'spark_gateway_downloads_total{{format="{fmt}",outcome="failed"}}'):
            return int(float(line.split()[-1]))
    return 0


def _read_some_and_leave(url: str) -> int:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=60)
    conn.request("GET", f"{parts.path}?{parts.query}")
    response = conn.getresponse()
    got = len(response.read1(1 << 20))
    conn.sock.close()  # type: ignore[union-attr]
    conn.close()
    return got


async def test_a_client_that_leaves_stops_the_download(gateway: GatewayProcess) -> None:
    """A client that goes away mid-download ends it on the gateway (counted as failed) at once,
    not after encoding the rest of the result for nobody."""
    query = "SELECT id, repeat('x', 40) AS s FROM range(0, 200000000, 1, 400)"  # minutes of CSV for nobody
    before = _failed((await download(gateway.http_url, "/metrics"))[2].decode(), "csv")
    async with open_client(gateway.ws_url) as client:
        await first_page(client, query, "leave", page_size=10)
        url = await link(client, "leave", 0, "csv")
        assert await anyio.to_thread.run_sync(_read_some_and_leave, gateway.http_url + url) > 0
        with anyio.fail_after(30):
            while _failed((await download(gateway.http_url, "/metrics"))[2].decode(), "csv") == before:  # noqa: ASYNC110 - another process's counter
                await anyio.sleep(0.2)
        rows = rows_of(await client.run("SELECT 8 AS eight", id="after"))
        assert rows == [[8]]


INTERVALS = ("SELECT INTERVAL '2-3' YEAR TO MONTH AS ym, make_interval(1, 2, 3, 4, 5, 6, 7.5) AS cal, "
             "array(INTERVAL '1' MONTH, NULL) AS ym_list, named_struct('c', make_interval(0, 0, 0, 1)) AS s, "
             "id FROM range(3)")
INTERVAL_ROW = {"ym": 27, "cal": {"months": 14, "days": 25, "nanoseconds": 18_367_500_000_000},
                "ym_list": [1, None], "s": {"c": {"months": 0, "days": 1, "nanoseconds": 0}}}


async def test_results_with_intervals_download_in_every_format(gateway: GatewayProcess, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Year-month and calendar intervals, which pyspark's toArrow() refuses and Parquet has no type for:
    Parquet stores months and (months, days, nanoseconds); Arrow keeps Spark's types; CSV what the
    notebook shows. The CLI's own Parquet writer stores them alike, and an empty result's Arrow file
    carries its interval columns."""
    import subprocess
    import sys

    async with open_client(gateway.ws_url) as client:
        await first_page(client, INTERVALS, "iv")
        shown = rows_of([e for e in client.events if e.get("id") == "iv"])[0]
        status, _, body = await download(gateway.http_url, await link(client, "iv", 0, "parquet"))
        assert status == 200
        assert pq.read_table(io.BytesIO(body)).to_pylist() == [{**INTERVAL_ROW, "id": i} for i in range(3)]
        status, _, body = await download(gateway.http_url, await link(client, "iv", 0, "arrow"))
        assert status == 200 and str(pa.ipc.open_stream(body).schema.field("ym").type) == "month_interval"
        status, _, body = await download(gateway.http_url, await link(client, "iv", 0, "csv"))
        rows = list(csv.reader(io.StringIO(body.decode(), newline="")))
    assert status == 200 and rows[1][:2] == [shown[0], shown[1]] == ["P2Y3M", "P1Y2M25DT5H6M7.5S"]

    def cli(fmt: str, out: str, query: str) -> None:
        done = subprocess.run([sys.executable, "-m", "spark_gateway_client", "--url", gateway.ws_url,
                               "--format", fmt, "-o", out, query], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr

    await anyio.to_thread.run_sync(cli, "parquet", str(tmp_path / "iv.parquet"), INTERVALS)
    assert pq.read_table(tmp_path / "iv.parquet").to_pylist() == [{**INTERVAL_ROW, "id": i} for i in range(3)]
    await anyio.to_thread.run_sync(cli, "arrow", str(tmp_path / "empty.arrows"), INTERVALS + " WHERE id < 0")
    empty = pa.ipc.open_stream((tmp_path / "empty.arrows").read_bytes())
    assert str(empty.schema.field("ym").type) == "month_interval"
    assert empty.schema.field("cal").type == pa.month_day_nano_interval()
