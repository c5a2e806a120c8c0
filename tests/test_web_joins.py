"""The web notebook joins its session on a reload or in a second tab: real Chromium, real gateway, real Spark.

The session is kept per browser (localStorage, per gateway URL): a reloaded page joins it with
``?join=<session>&last_seq=0``, gets ``session-state`` and the replay of the stream, and shows each
cell's run complete (printed output once and in order, the pages it had) and live; a second tab of
the same browser joins too and sees the other tab's runs live. "New session" starts a fresh one.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import GatewayProcess
from tests.test_web_client import RUN_TIMEOUT, Notebook, open_notebook, session_id, table_ids

playwright_api = pytest.importorskip("playwright.sync_api")
from playwright.sync_api import Browser, BrowserContext, Locator, Page, expect  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.timeout(240)]

SHOTS = Path(os.environ.get("SHOTS_DIR", "/tmp/shots-joinsweb"))
LINES = 200
PRINTS = f"import time\nfor i in range({LINES}):\n    print(f'line {{i}}', flush=True)\n    time.sleep(0.03)\n'done'"


@pytest.fixture
def notebook(chromium: Browser, web_gateway: GatewayProcess) -> Iterator[Notebook]:
    context, nb = open_notebook(chromium, web_gateway)
    yield nb
    context.close()
    assert nb.errors == [], f"uncaught errors in the page: {nb.errors}"


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(SHOTS / name), full_page=True)


def printed(cell: Locator) -> list[str]:
    """The lines the cell's run shows as printed output."""
    return [line for line in cell.locator("pre.stream").inner_text().splitlines() if line]


def second_tab(context: BrowserContext, url: str) -> tuple[Notebook, list[str]]:
    """One more page of the same browser (same localStorage): it joins the session."""
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(url)
    expect(page.locator("#connection")).to_have_attribute("data-state", "connected", timeout=30_000)
    return Notebook(page, errors), errors


def connected(page: Page) -> None:
    expect(page.locator("#connection")).to_have_attribute("data-state", "connected", timeout=30_000)


def test_a_reload_joins_the_session_and_loses_nothing(notebook: Notebook) -> None:
    """Reload while a 100k-row result is paged and a Python cell prints in a loop: after the reload
    every printed line is there exactly once and in order, the pages are there, and Load more goes on."""
    nb = notebook
    page = nb.page
    first = session_id(page)
    sql = nb.add_cell("sql", "SELECT id FROM range(100000)")
    sql_index = page.locator(".cell").count() - 1
    nb.run(sql)
    counter = sql.locator(".row-counter")
    expect(counter).to_have_text("1,000 rows loaded", timeout=RUN_TIMEOUT)
    nb.wait_status(sql, "ready")
    sql.locator("button.load-more").click()
    expect(counter).to_have_text("2,000 rows loaded")
    py = nb.add_cell("python", PRINTS)
    py_index = page.locator(".cell").count() - 1
    nb.run(py)
    expect(py.locator("pre.stream")).to_contain_text("line 40", timeout=RUN_TIMEOUT)

    page.reload()
    connected(page)
    assert session_id(page) == first  # joined, not a new session
    assert page.evaluate("sparkGateway.client.joins") == 1
    sql, py = nb.cell(sql_index), nb.cell(py_index)
    expect(py.locator(".run")).to_have_attribute("data-status", "running")  # still going, live
    shot(page, "reload-running.png")
    nb.wait_status(py, "ok")
    assert printed(py) == [f"line {i}" for i in range(LINES)]
    expect(py.locator(".value-out pre")).to_have_text("'done'")
    # The result: the two pages it had, then paging goes on from there (no page twice).
    expect(counter := sql.locator(".row-counter")).to_have_text("2,000 rows loaded")
    nb.wait_status(sql, "ready")
    sql.locator("button.load-more").click()
    expect(counter).to_have_text("3,000 rows loaded")
    assert table_ids(page, sql_index) == list(range(3000))
    assert not page.locator("[data-lost]").count()
    shot(page, "reload-done.png")

    # A reload while the result is idle: still the same pages, and Load more still works.
    page.reload()
    connected(page)
    sql = nb.cell(sql_index)
    expect(sql.locator(".row-counter")).to_have_text("3,000 rows loaded")
    sql.locator("button.load-more").click()
    expect(sql.locator(".row-counter")).to_have_text("4,000 rows loaded")
    assert table_ids(page, sql_index) == list(range(4000))
    assert printed(nb.cell(py_index)) == [f"line {i}" for i in range(LINES)]
    assert session_id(page) == first


def test_two_tabs_see_each_others_runs_live(chromium: Browser, web_gateway: GatewayProcess) -> None:
    """Two pages of one browser: the second joins the first's session; a run in either shows live in
    the other, in the same cell when both show it, else in a new cell with the run's code."""
    context, a = open_notebook(chromium, web_gateway)
    try:
        b, b_errors = second_tab(context, web_gateway.http_url + "/")
        assert session_id(b.page) == session_id(a.page)
        # A cell both tabs show (the welcome notebook's first): the run appears in the same cell in B.
        first_a, first_b = a.cell(0), b.cell(0)
        a.run(first_a)
        a.wait_status(first_a, "ok")
        b.wait_status(first_b, "ok")
        assert a.column(first_a, 0) == b.column(first_b, 0) and len(b.column(first_b, 0)) == 12
        # A cell only A has: B shows the run live in a new cell, with its code.
        cells_b = b.page.locator(".cell").count()
        py = a.add_cell("python", PRINTS)
        a.run(py)
        new_b = b.cell(cells_b)
        expect(new_b.locator(".run")).to_have_attribute("data-status", "running", timeout=RUN_TIMEOUT)
        expect(new_b.locator("pre.stream")).to_contain_text("line 20", timeout=RUN_TIMEOUT)
        b.expect_code(new_b, PRINTS)
        expect(a.cell(cells_b).locator(".run")).to_have_attribute("data-status", "running")  # B saw it while it ran
        shot(b.page, "second-tab-live.png")
        b.wait_status(new_b, "ok")
        a.wait_status(py, "ok")
        assert printed(new_b) == printed(py) == [f"line {i}" for i in range(LINES)]
        # And the other way round: B runs, A shows it.
        ran = b.run_new("sql", "SELECT 6 * 7 AS answer")
        expect(ran.locator("table.grid tr.row td").nth(1)).to_have_text("42")
        shown = a.page.locator(".run", has=a.page.locator("td", has_text=re.compile(r"^42$")))
        expect(shown).to_have_attribute("data-status", "ok", timeout=RUN_TIMEOUT)
        shot(a.page, "first-tab-sees-second.png")
        assert a.errors == [] and b_errors == []
    finally:
        context.close()


def test_new_session_starts_a_fresh_one_and_a_gone_session_is_said(notebook: Notebook) -> None:
    """The "New session" button opens another session (the reload then joins that one); a stored session
    that ended is not joined: a new session opens, and the page says why."""
    nb = notebook
    page = nb.page
    first = session_id(page)
    nb.run_new("python", "kept = 1\nkept")
    page.get_by_role("button", name="New session").click()
    page.wait_for_function(
        "(old) => sparkGateway.client.session && sparkGateway.client.session.session_id !== old "
        "&& sparkGateway.client.connected",
        arg=first,
        timeout=30_000,
    )
    second = session_id(page)
    again = nb.run_new("python", "'kept' in globals()")
    expect(again.locator(".value-out pre")).to_have_text("False")  # a fresh Python namespace
    page.reload()
    connected(page)
    assert session_id(page) == second and page.evaluate("sparkGateway.client.joins") == 1

    # A stored session the gateway no longer has: refused, so a new session, said plainly.
    page.evaluate(
        "(url) => localStorage.setItem('spark-gateway.session:' + url, '00000000-0000-4000-8000-000000000000')",
        page.evaluate("sparkGateway.client.url"),
    )
    page.reload()
    connected(page)
    page.wait_for_function("sparkGateway.client.connected", timeout=30_000)
    assert session_id(page) not in (second, "00000000-0000-4000-8000-000000000000")
    expect(page.locator("#banner")).to_contain_text("could not be joined")
    shot(page, "join-refused.png")
