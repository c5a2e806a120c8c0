"""First run: a busy port fails at once, the URL is printed once the gateway listens, Parquet
files come in real row groups, and the notebook shows only controls that can do something.

The gateway runs as users run it (``python -m spark_gateway serve``, a real subprocess); the
Parquet file is written by the real ``spark-gateway query`` through the real gateway; the
notebook runs in Debian's Chromium.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from spark_gateway import cli
from spark_gateway_client import cli as client_cli
from spark_gateway_client.errors import SparkGatewayError
from tests.conftest import ROOT, GatewayProcess
from tests.test_cli import run_cli

# ------------------------------------------------------------------ a busy port


def test_a_busy_port_is_refused_with_what_to_do() -> None:
    """Binding a port another socket listens on fails with EADDRINUSE; the message names it and --port 0."""
    with socket.create_server(("127.0.0.1", 0)) as held:
        port = held.getsockname()[1]
        with pytest.raises(OSError) as caught:
            cli.listen("127.0.0.1", port)
    assert caught.value.errno == errno.EADDRINUSE
    message = cli.cannot_listen("127.0.0.1", port, caught.value)
    assert f"port {port} on 127.0.0.1 is already in use" in message and "--port 0" in message


def test_port_0_binds_a_real_port_on_every_address_of_the_host() -> None:
    """--port 0 gets one free port, the same on each address ``localhost`` resolves to."""
    sockets = cli.listen("localhost", 0)
    try:
        ports = {sock.getsockname()[1] for sock in sockets}
        assert len(ports) == 1 and ports != {0}
    finally:
        for sock in sockets:
            sock.close()


def _gateway_processes(marker: str) -> list[psutil.Process]:
    """Processes whose environment carries ``marker``: the gateway's descendants, orphans included."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.environ().get("SPARK_GATEWAY_TEST_MARKER") == marker:
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


@pytest.mark.integration
@pytest.mark.skipif(shutil.which("java") is None, reason="without Java the gateway stops before the port check")
def test_a_busy_port_stops_the_gateway_before_spark_starts() -> None:
    """`serve --port P` with P taken: exit 4 and one line naming P and --port 0; no URL, no JVM, no child at all."""
    marker = uuid.uuid4().hex
    env = {**os.environ, "SPARK_GATEWAY_TEST_MARKER": marker}
    env.pop("SPARK_REMOTE", None)  # the embedded Spark: the ten-second start the port check must precede
    with socket.create_server(("127.0.0.1", 0)) as held:
        port = held.getsockname()[1]
        process = subprocess.Popen([sys.executable, "-m", "spark_gateway", "serve", "--port", str(port)], cwd=ROOT,
                                   env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        children: set[str] = set()
        while process.poll() is None:  # whatever it starts while it runs (spark-submit, java)
            try:
                children |= {child.name() for child in psutil.Process(process.pid).children(recursive=True)}
            except psutil.NoSuchProcess:
                break
            time.sleep(0.02)
        out, err = process.communicate(timeout=60)
    assert process.returncode == cli.EXIT_CANNOT_LISTEN == 4
    assert err.splitlines() == [f"spark-gateway: port {port} on 127.0.0.1 is already in use by another program; "
                                "stop it, or pass another --port (--port 0 picks a free one)"]
    assert "http://" not in out + err
    assert children == set()
    assert _gateway_processes(marker) == []


@pytest.mark.integration
def test_port_0_prints_the_real_url_once_the_gateway_serves(spark_remote: str) -> None:
    """With --port 0 the URL shows the port really bound, printed after the app started, and serves the notebook."""
    process = subprocess.Popen(
        [sys.executable, "-m", "spark_gateway", "serve", "--port", "0", "--remote", spark_remote], cwd=ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert process.stdout is not None
        lines = []
        for line in process.stdout:
            lines.append(line)
            if "open http://" in line:
                break
        found = re.search(r"open http://localhost:(\d+)/  \(websocket ws://localhost:(\d+)/ws\)", lines[-1])
        assert found is not None, "".join(lines)
        assert found[1] == found[2] and int(found[1]) != 0
        assert any("Application startup complete" in line for line in lines[:-1])
        status, page = _get(f"http://127.0.0.1:{found[1]}/")
        assert status == 200 and "<title>Spark notebook" in page
    finally:
        process.terminate()
        process.communicate(timeout=30)  # also closes the pipe


def _get(url: str) -> tuple[int, str]:
    import urllib.request

    with urllib.request.urlopen(url, timeout=30) as response:
        return response.status, response.read().decode()


# ------------------------------------------------------------------ Parquet row groups


class _Stream:
    """Just what ``write_parquet`` reads of a ResultStream: a schema and Arrow batches."""

    def __init__(self, batches: list[pa.RecordBatch], fail_after: int | None = None) -> None:
        self.arrow_schema = batches[0].schema
        self._batches = batches
        self._fail_after = fail_after

    async def batches(self) -> AsyncIterator[pa.RecordBatch]:
        for n, batch in enumerate(self._batches):
            if n == self._fail_after:
                raise SparkGatewayError("the connection dropped")
            yield batch


def _pages(rows: int, page: int) -> list[pa.RecordBatch]:
    return [pa.record_batch({"id": pa.array(range(start, min(rows, start + page)), pa.int64())})
            for start in range(0, rows, page)]


def _row_groups(path: Path) -> list[int]:
    meta = pq.ParquetFile(path).metadata
    return [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]


async def test_parquet_pages_are_gathered_into_whole_row_groups(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Pages of 10,000 rows become row groups of exactly ROW_GROUP_ROWS rows (the last one the rest)."""
    monkeypatch.setattr(client_cli, "ROW_GROUP_ROWS", 25_000)
    path = tmp_path / "f.parquet"
    assert await client_cli.write_parquet(_Stream(_pages(60_000, 10_000)), str(path)) == 60_000  # type: ignore[arg-type]
    assert _row_groups(path) == [25_000, 25_000, 10_000]
    assert pq.read_table(path).column("id").to_pylist() == list(range(60_000))


async def test_parquet_row_groups_of_wide_rows_end_at_the_byte_cap(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Wide rows end a row group at ROW_GROUP_BYTES of Arrow data: the client holds at most that much."""
    monkeypatch.setattr(client_cli, "ROW_GROUP_BYTES", 8 * 30_000)  # three pages of int64
    path = tmp_path / "f.parquet"
    await client_cli.write_parquet(_Stream(_pages(100_000, 10_000)), str(path))  # type: ignore[arg-type]
    assert _row_groups(path) == [30_000, 30_000, 30_000, 10_000]


async def test_parquet_keeps_the_rows_received_before_a_failure(tmp_path: Path) -> None:
    """A stream that fails after three pages leaves a readable file of those 30,000 rows, and the error."""
    path = tmp_path / "f.parquet"
    with pytest.raises(SparkGatewayError):
        await client_cli.write_parquet(_Stream(_pages(100_000, 10_000), fail_after=3), str(path))  # type: ignore[arg-type]
    assert pq.read_table(path).column("id").to_pylist() == list(range(30_000))


@pytest.mark.integration
def test_a_parquet_export_has_row_groups_of_a_million_rows(gateway: GatewayProcess, tmp_path: Path) -> None:
    """`query … -o f.parquet` of 1.5M rows (150 Arrow pages) writes two row groups: 1,048,576 rows and the rest."""
    path = tmp_path / "f.parquet"
    done = run_cli(gateway.ws_url, "SELECT id FROM range(1500000)", "-o", str(path))
    assert done.returncode == 0, done.stderr
    assert _row_groups(path) == [1 << 20, 1_500_000 - (1 << 20)]
    ids = pq.read_table(path).column("id")
    assert len(ids) == 1_500_000 and ids[0].as_py() == 0 and ids[-1].as_py() == 1_499_999


# ------------------------------------------------------------------ no dead controls in the notebook


@pytest.mark.integration
@pytest.mark.browser
@pytest.mark.timeout(180)
def test_notebook_controls_show_only_when_they_can_act(chromium: Any, gateway: GatewayProcess) -> None:
    """No Download CSV without rows, no Load more at the end, no Stop after it; Stop all, the move arrows,
    Copy and Show in code greyed or hidden when they could do nothing."""
    from playwright.sync_api import expect

    from tests.test_web_client import LONG_QUERY, RUN_TIMEOUT, open_notebook

    context, nb = open_notebook(chromium, gateway)
    page = nb.page
    try:
        cells = page.locator(".cell")
        expect(page.locator("#stop-all")).to_be_disabled()  # nothing runs yet
        expect(cells.first.locator("button.icon-up")).to_be_disabled()
        expect(cells.first.locator("button.icon-down")).to_be_enabled()
        expect(cells.last.locator("button.icon-down")).to_be_disabled()

        # A stream interrupted before its first rows: nothing to load, nothing to download.
        long = nb.add_cell("sql", LONG_QUERY)
        expect(cells.nth(cells.count() - 2).locator("button.icon-down")).to_be_enabled()  # no longer the last
        nb.run(long)
        expect(long.locator(".result")).to_be_visible(timeout=RUN_TIMEOUT)
        nb.wait_status(long, "running")
        expect(page.locator("#stop-all")).to_be_enabled()
        long.locator("button.icon-stop").click()
        nb.wait_status(long, "interrupted", timeout=30_000)
        expect(long.locator(".row-counter")).to_have_text("Stream interrupted before its first rows")
        expect(long.locator("tr.empty")).to_have_text("No rows arrived")
        for control in ("button.download-csv", "button.load-more", "button.icon-stop"):
            expect(long.locator(control)).to_be_hidden()
        expect(page.locator("#stop-all")).to_be_disabled()
        long.scroll_into_view_if_needed()
        nb.screenshot("web-interrupted-no-rows.png")

        # An empty result: no rows to download.
        empty = nb.run_new("sql", "SELECT id FROM range(0)")
        expect(empty.locator(".row-counter")).to_have_text("0 rows (all)")
        expect(empty.locator("tr.empty")).to_have_text("No rows")
        expect(empty.locator("button.download-csv")).to_be_hidden()
        expect(empty.locator("button.load-more")).to_be_hidden()

        # Exactly one page: it is the last, so no Load more; its rows can be downloaded.
        whole = nb.run_new("sql", "SELECT id FROM range(1000)")
        expect(whole.locator(".row-counter")).to_have_text("1,000 rows (all)")
        expect(whole.locator("button.load-more")).to_be_hidden()
        expect(whole.locator("button.download-csv")).to_be_visible()

        # Show in code points into the code as it ran: greyed once the code is edited.
        failing = nb.run_new("sql", "SELECT nope FROM range(1)", until="error")
        show = failing.locator(".error-where button")
        expect(show).to_be_enabled()
        failing.locator(".cm-content").fill("SELECT id, nope FROM range(1)")
        expect(show).to_be_disabled()

        # Copy needs the clipboard API, which a page from another host over http:// lacks.
        whole.locator("tr.row td").nth(1).click()
        expect(whole.locator("button.value-copy")).to_be_visible()
        context.add_init_script("Object.defineProperty(Navigator.prototype, 'clipboard', { get: () => undefined });")
        page.reload()
        expect(page.locator("#connection")).to_have_attribute("data-state", "connected", timeout=30_000)
        again = nb.run_new("sql", "SELECT 'x' AS v")
        again.locator("tr.row td").nth(1).click()
        expect(again.locator(".value-detail")).to_be_visible()
        expect(again.locator("button.value-copy")).to_be_hidden()
        assert nb.errors == [], f"uncaught errors in the page: {nb.errors}"
    finally:
        context.close()
