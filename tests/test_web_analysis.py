"""The result grid as an analysis tool, in a real Chromium against the real gateway and Spark:
sort and filter the loaded rows, resize columns, copy cells, chart a result and export the chart.

Playwright drives Debian's ``chromium`` (never ``playwright install``); controls are found by their
role and accessible name, as a screen reader user would find them. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from spark_gateway import sample_data
from tests.conftest import GatewayProcess
from tests.test_web_client import RUN_TIMEOUT, Notebook, expected_city_revenue, open_notebook

playwright_api = pytest.importorskip("playwright.sync_api")
from playwright.sync_api import Browser, Locator, Page, expect  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.timeout(240)]

SVG = "{http://www.w3.org/2000/svg}"
# Every type whose order is easy to get wrong: BigInt beyond 2^53, decimals, NaN and infinities,
# dates and microsecond timestamps, and NULL in each column.
TYPED = """SELECT * FROM VALUES
  (1, 9007199254740993L, CAST('10.50' AS DECIMAL(20,2)), CAST('NaN' AS DOUBLE), DATE'2024-01-05',
   TIMESTAMP_NTZ'2024-01-05 10:00:00'),
  (2, 9007199254740992L, CAST('-2.00' AS DECIMAL(20,2)), CAST('-Infinity' AS DOUBLE), DATE'1999-12-31',
   TIMESTAMP_NTZ'2024-01-05 09:59:59.999999'),
  (3, NULL, CAST('9.99' AS DECIMAL(20,2)), 1.5D, NULL, TIMESTAMP_NTZ'2024-01-05 10:00:00.5'),
  (4, -5L, NULL, CAST('Infinity' AS DOUBLE), DATE'2024-01-04', NULL),
  (5, 1L, CAST('100.00' AS DECIMAL(20,2)), NULL, DATE'0999-06-01', TIMESTAMP_NTZ'1970-01-01 00:00:00')
AS t(n, big, dec, dbl, day, ts)"""


@pytest.fixture
def notebook(chromium: Browser, web_gateway: GatewayProcess) -> Iterator[Notebook]:
    context, nb = open_notebook(chromium, web_gateway)
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    yield nb
    context.close()
    assert nb.errors == [], f"uncaught errors in the page: {nb.errors}"


def result(cell: Locator) -> Locator:
    return cell.locator(".result").first


def header(cell: Locator, name: str) -> Locator:
    """The column header whose sort button is named ``name``."""
    return result(cell).locator("th", has=cell.page.get_by_role("button", name=name, exact=True))


def shown(page: Page, cell_index: int, column: int) -> list[str | None]:
    """Column ``column`` of every row the grid shows, in its order (not only the rows in the DOM),
    as the grid writes the values (None for NULL)."""
    return list(
        page.evaluate(
            """([i, c]) => { const t = sparkGateway.notebook.cells[i].run.tables.get(0);
             const out = []; for (let p = 0; p < t.view.length; p++) { const v = t.value(t.view.rowAt(p), c);
               out.push(v === null ? null : String(v)); } return out; }""",
            [cell_index, column],
        )
    )


def last_index(nb: Notebook) -> int:
    return nb.page.locator(".cell").count() - 1


def status(cell: Locator) -> str:
    return result(cell).locator(".view-status").inner_text()


# ------------------------------------------------------------------ sort


def test_sort_orders_every_type_exactly_and_marks_aria_sort(notebook: Notebook) -> None:
    """A click on a column's name sorts the loaded rows ascending, then descending, then back to the
    order they came in; NULL first ascending and last descending, as Spark orders them."""
    cell = notebook.run_new("sql", TYPED)
    i = last_index(notebook)
    orders = {
        "big": ["-5", "1", "9007199254740992", "9007199254740993"],
        "dec": ["-2.00", "9.99", "10.50", "100.00"],
        "dbl": ["-Infinity", "1.5", "Infinity", "NaN"],
        "day": ["0999-06-01", "1999-12-31", "2024-01-04", "2024-01-05"],
        "ts": [
            "1970-01-01T00:00:00.000000",
            "2024-01-05T09:59:59.999999",
            "2024-01-05T10:00:00.000000",
            "2024-01-05T10:00:00.500000",
        ],
    }
    for column, (name, expected) in enumerate(orders.items(), start=1):
        button = result(cell).get_by_role("button", name=name, exact=True)
        button.click()
        expect(header(cell, name)).to_have_attribute("aria-sort", "ascending")
        assert shown(notebook.page, i, column) == [None, *expected], name
        button.click()
        expect(header(cell, name)).to_have_attribute("aria-sort", "descending")
        assert shown(notebook.page, i, column) == [*reversed(expected), None], name
        # The other columns say they are not sorted.
        assert result(cell).locator("th[aria-sort='none']").count() == 5
        button.click()
        expect(header(cell, name)).to_have_attribute("aria-sort", "none")
        assert shown(notebook.page, i, 0) == ["1", "2", "3", "4", "5"]
    # The row numbers stay the rows' places in the result: sorted by dec descending, row 5 leads.
    result(cell).get_by_role("button", name="dec", exact=True).click()
    result(cell).get_by_role("button", name="dec", exact=True).click()
    assert notebook.column(cell, 2)[:2] == ["100.00", "10.50"]
    assert cell.locator("table.grid tr.row td.rownum").all_inner_texts()[:2] == ["5", "1"]


def test_sort_and_filter_the_sample_sales(notebook: Notebook) -> None:
    """Sales sorted by amount, then filtered by product and by amount: the rows shown are Python's own
    answer over the sample rows, and the toolbar says the filter covers the rows loaded."""
    _, sales = sample_data.rows()
    cell = notebook.run_new("sql", "SELECT id, product, amount, sale_date FROM sales")
    i = last_index(notebook)
    expect(cell.locator(".row-counter")).to_have_text("1,000 rows (all)")
    result(cell).get_by_role("button", name="amount", exact=True).click()
    expect(header(cell, "amount")).to_have_attribute("aria-sort", "ascending")
    assert [Decimal(a) for a in shown(notebook.page, i, 2)] == sorted(s[3] for s in sales)  # type: ignore[arg-type]
    amounts_in_view = [Decimal(a) for a in notebook.column(cell, 2)]
    assert amounts_in_view == sorted(s[3] for s in sales)[: len(amounts_in_view)]

    result(cell).get_by_role("searchbox", name="Filter the loaded rows").fill("laptop")
    laptops = sorted(s[3] for s in sales if s[2] == "Laptop")
    expect(result(cell).locator(".view-status")).to_contain_text(
        f"{len(laptops)} of the 1,000 rows loaded (all of the result) match the filter"
    )
    assert set(notebook.column(cell, 1)) == {"Laptop"}
    assert [Decimal(a) for a in shown(notebook.page, i, 2)] == laptops  # type: ignore[arg-type]

    result(cell).get_by_role("button", name="Column filters").click()
    result(cell).get_by_role("searchbox", name="Filter amount").fill(">=2000")
    big = sorted(s[3] for s in sales if s[2] == "Laptop" and s[3] >= 2000)
    expect(result(cell).locator(".view-status")).to_contain_text(f"{len(big)} of the 1,000 rows loaded")
    assert [Decimal(a) for a in shown(notebook.page, i, 2)] == big  # type: ignore[arg-type]
    in_dom = [Decimal(a) for a in notebook.column(cell, 2)]
    assert in_dom == big[: len(in_dom)] and in_dom
    result(cell).get_by_role("searchbox", name="Filter the loaded rows").fill("")
    result(cell).get_by_role("searchbox", name="Filter sale_date").fill("=2023-03")
    march = [s for s in sales if s[3] >= 2000 and s[5].strftime("%Y-%m") == "2023-03"]
    expect(result(cell).locator(".view-status")).to_contain_text(f"{len(march)} of the 1,000 rows loaded")
    assert sorted(int(x) for x in shown(notebook.page, i, 0)) == sorted(s[0] for s in march)  # type: ignore[arg-type]
    notebook.page.evaluate("window.scrollTo(0, 0)")
    result(cell).scroll_into_view_if_needed()
    notebook.screenshot("web-grid-sorted-filtered.png")

    # A filter that cannot apply says why, and hides nothing.
    box = result(cell).get_by_role("searchbox", name="Filter amount")
    box.fill("> lots")
    expect(box).to_have_attribute("aria-invalid", "true")
    expect(box).to_have_attribute("title", re.compile("is not a number"))
    result(cell).get_by_role("searchbox", name="Filter sale_date").fill("")
    expect(result(cell).locator(".view-status")).to_have_text(re.compile(r"^1,000 rows loaded"))


def test_more_rows_keep_the_sort_and_the_filter(notebook: Notebook) -> None:
    """Loading more rows merges them into the sorted, filtered view: the toolbar counts the rows loaded."""
    cell = notebook.add_cell("sql", "SELECT id FROM range(5000)")
    notebook.run(cell)
    expect(cell.locator(".row-counter")).to_have_text("1,000 rows loaded", timeout=RUN_TIMEOUT)
    result(cell).get_by_role("button", name="Column filters").click()
    result(cell).get_by_role("searchbox", name="Filter id").fill("<1500")
    result(cell).get_by_role("button", name="id", exact=True).click()
    result(cell).get_by_role("button", name="id", exact=True).click()
    expect(header(cell, "id")).to_have_attribute("aria-sort", "descending")
    assert notebook.column(cell, 0)[:2] == ["999", "998"]
    expect(result(cell).locator(".view-status")).to_contain_text("1,000 of the 1,000 rows loaded match the filter")
    result(cell).get_by_role("button", name="Load 1,000 more").click()
    expect(cell.locator(".row-counter")).to_have_text("2,000 rows loaded", timeout=RUN_TIMEOUT)
    expect(result(cell).locator(".view-status")).to_contain_text("1,500 of the 2,000 rows loaded match the filter")
    assert notebook.column(cell, 0)[:2] == ["1499", "1498"]
    expect(header(cell, "id")).to_have_attribute("aria-sort", "descending")


# ------------------------------------------------------------------ resize, copy


def test_columns_resize_with_the_mouse_and_the_keyboard(notebook: Notebook) -> None:
    cell = notebook.run_new("sql", "SELECT id, product FROM sales LIMIT 5")
    th = header(cell, "product")
    handle = result(cell).get_by_role("separator", name="Resize column product")
    handle.hover()  # in view, and the page still
    notebook.page.wait_for_timeout(300)
    before = th.bounding_box()
    box = handle.bounding_box()
    assert before and box
    notebook.page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    notebook.page.mouse.down()
    notebook.page.mouse.move(box["x"] + 120, box["y"] + box["height"] / 2, steps=5)
    notebook.page.mouse.up()
    after = th.bounding_box()
    assert after and after["width"] == pytest.approx(before["width"] + 120 - box["width"] / 2, abs=6)
    handle.focus()
    notebook.page.keyboard.press("ArrowLeft")
    narrower = th.bounding_box()
    assert narrower and narrower["width"] == pytest.approx(after["width"] - 16, abs=2)
    assert int(handle.get_attribute("aria-valuenow") or 0) == pytest.approx(narrower["width"], abs=2)


def test_copy_a_selection_as_tab_separated_text(notebook: Notebook) -> None:
    """Rows picked by their numbers (Shift extends), or a block of cells, copy as TSV with a header."""
    cell = notebook.run_new(
        "sql", "SELECT * FROM VALUES (1, 'a\tb', CAST(NULL AS INT)), (2, 'c', 7), (3, 'd', 8) AS t(n, s, x)"
    )
    rownums = cell.locator("table.grid tr.row td.rownum")
    rownums.nth(0).click()
    rownums.nth(1).click(modifiers=["Shift"])
    copy = result(cell).get_by_role("button", name="Copy selection")
    expect(result(cell).locator(".view-status")).to_contain_text("2 × 3 selected")
    copy.click()
    expect(result(cell).locator(".export-status")).to_have_text("Copied 2 rows as tab-separated text")
    assert notebook.page.evaluate("navigator.clipboard.readText()") == 'n\ts\tx\n1\t"a\tb"\t\n2\tc\t7\n'
    # A block of cells: click one, Shift+click another.
    cells = cell.locator("table.grid tr.row td:not(.rownum):not(.filler)")
    cells.nth(4).click()  # row 2, s
    notebook.page.keyboard.press("Escape")
    cells.nth(8).click(modifiers=["Shift"])  # row 3, x
    copy.click()
    assert notebook.page.evaluate("navigator.clipboard.readText()") == "s\tx\nc\t7\nd\t8\n"
    # A filter drops the selection; Copy rows then copies every row shown (the filter's matches).
    result(cell).get_by_role("searchbox", name="Filter the loaded rows").fill("d")
    result(cell).get_by_role("button", name="Copy rows").click()
    assert notebook.page.evaluate("navigator.clipboard.readText()") == "n\ts\tx\n3\td\t8\n"


# ------------------------------------------------------------------ charts


def city_chart(notebook: Notebook) -> tuple[Locator, list[str]]:
    """Run the welcome cell (revenue by city), open its Chart view; the page's requests so far."""
    requests: list[str] = []
    notebook.page.on("request", lambda r: requests.append(r.url))
    cell = notebook.cell(0)
    notebook.run(cell)
    notebook.wait_status(cell, "ok")
    assert not [u for u in requests if u.endswith("/vendor/plot.js")], "the chart library loaded before a chart"
    result(cell).get_by_role("button", name="Chart").click()
    expect(result(cell).locator(".chart-figure svg")).to_be_visible()
    assert [u for u in requests if u.endswith("/vendor/plot.js")], "the chart library never loaded"
    return cell, requests


def test_a_chart_draws_one_mark_per_row(notebook: Notebook) -> None:
    """Revenue by city: a bar per city by default, then a dot, a slice; the caption counts the rows."""
    cell, _ = city_chart(notebook)
    figure = result(cell).locator(".chart-figure")
    expect(result(cell).get_by_role("button", name="Chart")).to_have_attribute("aria-pressed", "true")
    expect(result(cell).locator(".chart-caption")).to_have_text("Chart of the 12 rows loaded (all of the result)")
    expect(result(cell).get_by_label("Chart type", exact=True)).to_have_value("bar")
    expect(result(cell).get_by_label("X", exact=True)).to_have_value("0")  # city, the first text column
    expect(figure.locator("g[aria-label='bar'] rect")).to_have_count(12)
    # Bars follow the grid's order: sorted by revenue descending (the query's order), Rome first.
    labels = figure.locator("g[aria-label='x-axis tick label'] text").evaluate_all(
        "els => els.map((e) => e.textContent)"
    )
    assert labels == [c for c, _ in expected_city_revenue()]
    result(cell).get_by_role("checkbox", name="revenue").check()
    expect(figure.locator("g[aria-label='bar'] rect")).to_have_count(24)  # two bars per city, side by side
    expect(figure.locator(".chart-legend li")).to_have_text(["customers", "revenue"])
    result(cell).get_by_role("checkbox", name="customers").uncheck()
    for kind, marks in (("scatter", "g[aria-label='dot'] circle"), ("pie", "path.slice")):
        result(cell).get_by_label("Chart type", exact=True).select_option(kind)
        expect(figure.locator(marks)).to_have_count(12)
        notebook.screenshot(f"web-chart-{kind}.png")
    result(cell).get_by_label("Chart type", exact=True).select_option("line")
    expect(figure.locator("g[aria-label='line'] path")).to_have_count(1)
    # A filter in the grid charts its matches only, and says so.
    result(cell).get_by_role("button", name="Table").click()
    result(cell).get_by_role("searchbox", name="Filter the loaded rows").fill("an")
    matches = sum(1 for c, _ in expected_city_revenue() if "an" in c.lower())
    result(cell).get_by_role("button", name="Chart").click()
    expect(result(cell).locator(".chart-caption")).to_have_text(
        f"Chart of the {matches} rows that match the filter, of the 12 rows loaded (all of the result)"
    )
    expect(figure.locator("g[aria-label='dot'] circle")).to_have_count(matches)


def test_a_chart_exports_as_png_and_svg(notebook: Notebook, tmp_path: Path) -> None:
    cell, _ = city_chart(notebook)
    with notebook.page.expect_download() as png_download:
        result(cell).get_by_role("button", name="Download PNG").click()
    png = tmp_path / png_download.value.suggested_filename
    png_download.value.save_as(png)
    assert png.name == "result-1-bar-chart.png"
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5_000
    with notebook.page.expect_download() as svg_download:
        result(cell).get_by_role("button", name="Download SVG").click()
    svg = tmp_path / svg_download.value.suggested_filename
    svg_download.value.save_as(svg)
    root = ET.parse(svg).getroot()
    assert root.tag == f"{SVG}svg"
    bars = [g for g in root.iter(f"{SVG}g") if g.get("aria-label") == "bar"]
    assert len(bars) == 1 and len(list(bars[0].iter(f"{SVG}rect"))) == 12
    # A file on its own: the page's CSS variables are resolved to colours.
    assert "var(--" not in svg.read_text()


def test_keyboard_alone_sorts_and_opens_the_chart(notebook: Notebook) -> None:
    """Tab reaches every control of the result; Enter and Space sort; Enter opens the chart."""
    cell = notebook.run_new("sql", "SELECT * FROM VALUES ('b', 2), ('c', 1), ('a', 3) AS t(k, v)")
    page = notebook.page
    result(cell).get_by_role("button", name="Table").focus()  # the start: the toolbar's first control
    seen = []
    for _ in range(12):
        page.keyboard.press("Tab")
        seen.append(
            page.evaluate("document.activeElement.getAttribute('aria-label') || document.activeElement.textContent")
        )
        if seen[-1].startswith("v"):
            break
    assert seen[:5] == ["Chart", "Filter the loaded rows", "Column filters", "Copy rows", "Result 1"], seen
    assert seen[5:] == ["k", "Resize column k", "v"], seen
    page.keyboard.press("Enter")
    expect(header(cell, "v")).to_have_attribute("aria-sort", "ascending")
    assert notebook.column(cell, 0) == ["c", "b", "a"]
    page.keyboard.press("Space")
    expect(header(cell, "v")).to_have_attribute("aria-sort", "descending")
    assert notebook.column(cell, 0) == ["a", "b", "c"]
    # Back to the Chart button, and open it.
    for _ in range(7):
        page.keyboard.press("Shift+Tab")
    assert page.evaluate("document.activeElement.textContent") == "Chart"
    page.keyboard.press("Enter")
    expect(result(cell).locator(".chart-figure g[aria-label='bar'] rect")).to_have_count(3)
    # The chart's pickers are form controls: change the type from the keyboard.
    result(cell).get_by_label("Chart type", exact=True).focus()
    page.keyboard.press("ArrowDown")  # bar -> line
    expect(result(cell).get_by_label("Chart type", exact=True)).to_have_value("line")
    expect(result(cell).locator(".chart-figure g[aria-label='line'] path")).to_have_count(1)


def test_every_result_control_has_an_accessible_name(notebook: Notebook) -> None:
    cell = notebook.run_new("sql", "SELECT id, product, amount FROM sales LIMIT 3")
    r = result(cell)
    for role, name in (
        ("button", "Table"),
        ("button", "Chart"),
        ("searchbox", "Filter the loaded rows"),
        ("button", "Column filters"),
        ("button", "Copy rows"),
        ("button", "amount"),
        ("separator", "Resize column amount"),
        ("button", "Download CSV"),
    ):
        expect(r.get_by_role(role, name=name, exact=True)).to_have_count(1)  # type: ignore[arg-type]
    r.get_by_role("button", name="Column filters").click()
    expect(r.get_by_role("searchbox", name="Filter product", exact=True)).to_be_visible()
    r.get_by_role("button", name="Chart").click()
    for role, name in (
        ("combobox", "Chart type"),
        ("combobox", "X"),
        ("combobox", "Series"),
        ("checkbox", "amount"),
        ("button", "Download PNG"),
        ("button", "Download SVG"),
    ):
        expect(r.get_by_role(role, name=name, exact=True)).to_have_count(1)  # type: ignore[arg-type]
    # The checkboxes of the Y picker are a named group.
    expect(r.get_by_role("group", name="Y")).to_be_visible()
