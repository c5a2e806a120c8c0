"""The bundled web notebook in a real Chromium, against the real gateway and real Spark.

Playwright drives Debian's ``chromium`` package (never ``playwright install``). Each test
gets a fresh browser context, hence a fresh page, websocket, gateway session and Spark
session (with the sample tables: the gateway runs with ``--sample-data``).
"""

from __future__ import annotations

import contextlib
import csv
import io
import re
import time
from collections import defaultdict
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from spark_gateway import sample_data
from tests.conftest import ARTIFACTS, GatewayProcess
from tests.test_python_client import TcpProxy

playwright_api = pytest.importorskip("playwright.sync_api")
from playwright.sync_api import Browser, BrowserContext, Locator, Page, expect  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.timeout(180)]

VIEWPORT = {"width": 1280, "height": 800}
# Long enough that only Stop ends it: 10^11 rows summed on local[2].
LONG_QUERY = "SELECT sum(id % 7) FROM range(0, 200000000000, 1, 4)"  # no overflow, however fast the machine
RUN_TIMEOUT = 60_000  # ms, for anything that waits on Spark


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def browser(chromium: Browser) -> Browser:
    return chromium


class Notebook:
    """The page under test, with the few gestures the tests need."""

    def __init__(self, page: Page, errors: list[str]) -> None:
        self.page = page
        self.errors = errors

    def cell(self, index: int) -> Locator:
        return self.page.locator(".cell").nth(index)

    @staticmethod
    def editor(cell: Locator) -> Locator:
        """The cell's code editor: CodeMirror's contenteditable."""
        return cell.locator(".cm-content")

    @staticmethod
    def code(cell: Locator) -> str:
        """The cell's code, as its editor holds it (not only the lines in view)."""
        return str(cell.evaluate("el => sparkGateway.notebook.cells.find((c) => c.element === el).editor.value"))

    def expect_code(self, cell: Locator, code: str) -> None:
        """Wait until the cell's code is exactly ``code``."""
        try:
            self.page.wait_for_function(
                "([el, code]) => sparkGateway.notebook.cells.find((c) => c.element === el)?.editor.value === code",
                arg=[cell.element_handle(), code], timeout=5_000)
        except Exception as exc:
            raise AssertionError(f"the cell's code is {self.code(cell)!r}, not {code!r}") from exc

    def add_cell(self, language: str, code: str) -> Locator:
        """Append a cell through the toolbar, type-in its code, return its locator."""
        count = self.page.locator(".cell").count()
        self.page.click(f"#add-{language}")
        cell = self.cell(count)
        expect(cell.locator("select.lang")).to_have_value(language)
        self.editor(cell).fill(code)
        self.expect_code(cell, code)
        return cell

    def run(self, cell: Locator) -> None:
        self.editor(cell).press("Control+Enter")

    def run_new(self, language: str, code: str, until: str = "ok") -> Locator:
        """Add a cell with ``code``, run it and wait until its status is ``until``."""
        cell = self.add_cell(language, code)
        self.run(cell)
        self.wait_status(cell, until)
        return cell

    def wait_status(self, cell: Locator, status: str, timeout: float = RUN_TIMEOUT) -> None:
        try:
            expect(cell.locator(".run")).to_have_attribute("data-status", status, timeout=timeout)
        except AssertionError as exc:
            shown = cell.locator(".cell-output").inner_text() if cell.locator(".run").count() else "(no run)"
            state = self.page.locator("#connection").inner_text()
            toasts = self.page.locator(".toast").all_inner_texts()
            raise AssertionError(f"cell never reached {status!r} (connection: {state}; notices: {toasts}); "
                                 f"its output shows:\n{shown[:2000]}") from exc

    def column(self, cell: Locator, index: int) -> list[str]:
        """Texts of column ``index`` (0-based, row numbers excluded) of the rows in the DOM."""
        return cell.locator(f"table.grid tr.row td:nth-child({index + 2})").all_inner_texts()

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / name
        self.page.screenshot(path=str(path))
        return path


@contextlib.contextmanager
def behind_proxy(browser: Browser, gateway: GatewayProcess, *, own_gateway: bool = False) -> Iterator[
        tuple[Notebook, TcpProxy]]:
    """The notebook loaded through a TCP proxy the test can cut; closed afterwards (and the
    gateway stopped too when the test started its own)."""
    proxy = TcpProxy(gateway.port)
    context, nb = open_notebook(browser, gateway, via=proxy)
    try:
        yield nb, proxy
    finally:
        context.close()
        proxy.close()
        if own_gateway:
            gateway.stop()


def open_notebook(browser: Browser, gateway: GatewayProcess, *, viewport: dict[str, int] = VIEWPORT,
                  color_scheme: str = "light", via: TcpProxy | None = None) -> tuple[BrowserContext, Notebook]:
    """A fresh context (own storage, own session) with the notebook loaded and connected."""
    context = browser.new_context(viewport=viewport, color_scheme=color_scheme,  # type: ignore[arg-type]
                                  accept_downloads=True)
    # The File System Access picker is a native dialog headless Chromium cannot answer;
    # without it the client streams CSV into Blob parts and downloads through a link.
    context.add_init_script("delete window.showSaveFilePicker;")
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto((via.http_url if via is not None else gateway.http_url) + "/")  # via: page and socket through it
    expect(page.locator("#connection")).to_have_attribute("data-state", "connected", timeout=30_000)
    return context, Notebook(page, errors)


@pytest.fixture
def notebook(browser: Browser, web_gateway: GatewayProcess) -> Iterator[Notebook]:
    context, nb = open_notebook(browser, web_gateway)
    yield nb
    context.close()
    assert nb.errors == [], f"uncaught errors in the page: {nb.errors}"


def expected_city_revenue() -> list[tuple[str, str]]:
    """Top cities by revenue, computed here from the sample rows themselves."""
    consumers, sales = sample_data.rows()
    city = {c[0]: c[3] for c in consumers}
    revenue: dict[str, Decimal] = defaultdict(Decimal)
    for sale in sales:
        revenue[city[sale[1]]] += sale[3]
    return [(c, str(r)) for c, r in sorted(revenue.items(), key=lambda kv: kv[1], reverse=True)]


# ------------------------------------------------------------------ tests


def test_first_cell_joins_the_sample_tables(notebook: Notebook) -> None:
    """The first cell joins sales and consumers and shows each city's exact revenue."""
    cell = notebook.cell(0)
    code = notebook.code(cell)
    assert "FROM sales" in code and "JOIN consumers" in code
    notebook.run(cell)
    notebook.wait_status(cell, "ok")
    headers = cell.locator("table.grid th .col-name").all_inner_texts()
    assert headers == ["city", "customers", "orders", "revenue"]
    assert cell.locator("table.grid th .col-type").all_inner_texts()[-1] == "decimal(20,2)"
    expect(cell.locator(".row-counter")).to_have_text("12 rows (all)")
    expected = expected_city_revenue()
    assert list(zip(notebook.column(cell, 0), notebook.column(cell, 3), strict=True)) == expected
    notebook.page.evaluate("window.scrollTo(0, 0)")
    notebook.screenshot("web-notebook.png")


def test_pages_through_5000_rows(notebook: Notebook) -> None:
    """Load more and scrolling fetch pages with stream-rows until all 5,000 rows, the last being 4999."""
    cell = notebook.add_cell("sql", "SELECT id FROM range(5000)")
    notebook.run(cell)
    counter = cell.locator(".row-counter")
    expect(counter).to_have_text("1,000 rows loaded", timeout=RUN_TIMEOUT)
    notebook.wait_status(cell, "ready")  # the query is done; the rest comes on demand
    cell.locator("button.load-more").click()
    expect(counter).to_have_text("2,000 rows loaded")
    notebook.screenshot("web-paging.png")
    scroller = cell.locator(".table-scroll")
    for expected in ("3,000 rows loaded", "4,000 rows loaded", "5,000 rows (all)"):
        scroller.evaluate("el => { el.scrollTop = el.scrollHeight; }")
        expect(counter).to_have_text(expected)
    notebook.wait_status(cell, "ok")
    expect(cell.locator("button.load-more")).to_be_hidden()
    scroller.evaluate("el => { el.scrollTop = el.scrollHeight; }")
    last = cell.locator("table.grid tr.row").last
    expect(last.locator("td.rownum")).to_have_text("5000")
    expect(last.locator("td").nth(1)).to_have_text("4999")


@pytest.mark.integration
def test_the_grid_keeps_the_column_pages_it_asked_for(notebook: Notebook) -> None:
    """Results come in the columns layout; the table keeps each page's column arrays and shows their cells."""
    cell = notebook.run_new("sql", "SELECT id, concat('r', id) AS s, CAST(NULL AS int) AS n FROM range(3)")
    index = notebook.page.locator(".cell").count() - 1
    pages = notebook.page.evaluate("(i) => sparkGateway.notebook.cells[i].run.tables.get(0).pages", index)
    assert pages == [{"start": 0, "count": 3, "columns": [[0, 1, 2], ["r0", "r1", "r2"], [None, None, None]]}]
    assert notebook.column(cell, 0) == ["0", "1", "2"] and notebook.column(cell, 1) == ["r0", "r1", "r2"]
    assert notebook.column(cell, 2) == ["NULL"] * 3


def test_python_prints_and_returns_a_dataframe(notebook: Notebook) -> None:
    """A Python cell's print() output and its trailing DataFrame both show, in order."""
    code = 'print("hello from python")\nspark.range(3).selectExpr("id", "id * 2 AS twice")'
    cell = notebook.run_new("python", code)
    expect(cell.locator("pre.stream")).to_have_text("hello from python\n")
    assert cell.locator("table.grid th .col-name").all_inner_texts() == ["id", "twice"]
    assert notebook.column(cell, 1) == ["0", "2", "4"]
    value = notebook.run_new("python", "x = 20\nx * 2 + 2")
    expect(value.locator(".value-out pre")).to_have_text("42")
    expect(value.locator(".value-type")).to_have_text("int")
    cell.scroll_into_view_if_needed()
    notebook.screenshot("web-python.png")


def test_stop_interrupts_a_long_query(notebook: Notebook) -> None:
    """Stop sends interrupt: a long Spark job ends as interrupted and the session runs on."""
    cell = notebook.run_new("sql", LONG_QUERY, until="running")
    expect(cell.locator(".progress")).to_be_visible(timeout=RUN_TIMEOUT)  # live task progress
    expect(cell.locator(".progress-text")).to_contain_text("tasks")
    notebook.screenshot("web-running.png")
    stop = cell.locator("button.icon-stop")
    expect(stop).to_be_visible()
    stop.click()
    notebook.wait_status(cell, "interrupted", timeout=30_000)
    expect(stop).to_be_hidden()
    after = notebook.run_new("sql", "SELECT 'still here' AS msg")
    assert notebook.column(after, 0) == ["still here"]


def test_queue_positions_and_stop_all(notebook: Notebook) -> None:
    """Cells run FIFO: later cells show their queue position; Stop all ends them all."""
    long = notebook.add_cell("sql", LONG_QUERY)
    second = notebook.add_cell("sql", "SELECT 2")
    third = notebook.add_cell("python", "3")
    notebook.run(long)
    notebook.wait_status(long, "running")
    notebook.run(second)
    notebook.run(third)
    expect(second.locator(".status-badge")).to_have_text("queued (position 1)")
    expect(third.locator(".status-badge")).to_have_text("queued (position 2)")
    notebook.page.click("#stop-all")
    for cell in (long, second, third):
        notebook.wait_status(cell, "interrupted", timeout=30_000)


def test_error_highlights_the_failing_fragment(notebook: Notebook) -> None:
    """A SQL error shows class, SQL state and message, and marks the fragment in the code."""
    cell = notebook.run_new("sql", "SELECT *\nFROM no_such_table", until="error")
    box = cell.locator(".error-box")
    expect(box.locator(".error-class")).to_have_text("TABLE_OR_VIEW_NOT_FOUND")
    expect(box.locator(".sql-state")).to_have_text("SQLSTATE 42P01")
    expect(box.locator(".error-message")).to_contain_text("no_such_table")
    expect(cell.locator(".cm-content mark.error-fragment")).to_have_text("no_such_table")
    expect(cell.locator(".cm-lineNumbers .cm-gutterElement.error")).to_have_text("2")
    expect(box.locator(".where-label")).to_have_text("line 2, column 6")
    cell.scroll_into_view_if_needed()
    notebook.screenshot("web-error.png")
    # Editing the code removes the stale mark.
    notebook.editor(cell).press("Control+End")
    notebook.editor(cell).press_sequentially(" t")
    expect(cell.locator(".cm-content mark.error-fragment")).to_have_count(0)
    expect(cell.locator(".cm-lineNumbers .cm-gutterElement.error")).to_have_count(0)


def test_printed_output_reads_as_in_a_terminal(notebook: Notebook) -> None:
    """A progress line redrawn with \\r shows its last state, ANSI colours colour the text
    (an escape cut between two events too), CRLF is one line end, other escapes vanish."""
    code = "\n".join([
        "import sys, time",
        "for i in range(4):",
        "    print(f'\\rloading {i * 25}%', end='', flush=True)",
        "    time.sleep(0.3)",
        "print('\\rloaded      ')",
        "print('\\x1b[3', end='', flush=True)",  # an escape split across two stdout events
        "time.sleep(0.3)",
        "print('1mred\\x1b[0m plain \\x1b[1;38;5;208mbold orange\\x1b[0m')",
        "print('dos\\r\\nline', file=sys.stderr, flush=True)",
        "print('\\x1b]8;;https://example.com\\x1b\\\\link\\x1b]8;;\\x1b\\\\ \\x1b[2Kend')",
    ])
    cell = notebook.run_new("python", code)
    stream = cell.locator("pre.stream")
    expect(stream).to_have_text("loaded      \nred plain bold orange\ndos\nline\nlink end\n")
    red = stream.locator("span.ansi-fg-1")
    expect(red).to_have_text("red")
    expect(red).to_have_css("color", "rgb(207, 34, 46)")
    orange = stream.locator("span.ansi-bold", has_text="bold orange")
    expect(orange).to_have_css("color", "rgb(255, 135, 0)")
    expect(stream.locator("span.stderr")).to_have_text("dos\nline\n")


def test_python_error_shows_the_traceback(notebook: Notebook) -> None:
    """A Python exception shows its type, message and traceback, and marks the failing line."""
    cell = notebook.run_new("python", "a = 1\nb = 0\na / b", until="error")
    box = cell.locator(".error-box")
    expect(box.locator(".error-class")).to_have_text("ZeroDivisionError")
    expect(box.locator("details.traceback pre")).to_contain_text("ZeroDivisionError: division by zero")
    expect(cell.locator(".cm-lineNumbers .cm-gutterElement.error")).to_have_text("3")


def test_a_spark_session_reset_is_a_notice_not_an_error(notebook: Notebook) -> None:
    """spark.stop() in a cell: the cell is ok and says what was lost, in a notice; the next cell runs."""
    stop = notebook.run_new("python", "spark.stop()")
    box = stop.locator(".error-box.notice[role=status]")
    expect(box.locator(".error-class")).to_have_text("spark_session_reset")
    expect(box.locator(".error-message")).to_contain_text("spark.stop()")
    stop.scroll_into_view_if_needed()
    notebook.screenshot("web-notice.png")
    after = notebook.run_new("sql", "SELECT 7 AS seven")
    expect(after.locator("table.grid tr.row td:not(.rownum):not(.filler)")).to_have_text(["7"])


def test_long_output_is_cut_on_screen_and_downloadable_whole(notebook: Notebook, tmp_path: Path) -> None:
    """Over 500,000 printed characters the cell says where it cut, and a button saves all of it."""
    cell = notebook.run_new("python", "for i in range(200):\n    print('line %d ' % i + 'y' * 25000)")
    expect(cell.locator("pre.stream")).to_contain_text("output cut here")
    with notebook.page.expect_download() as download:
        cell.locator("button.download-output").click()
    saved = tmp_path / "output.txt"
    download.value.save_as(saved)
    assert saved.read_text() == "".join(f"line {i} " + "y" * 25000 + "\n" for i in range(200))


def test_output_filling_the_screen_limit_exactly_is_still_cut_visibly(notebook: Notebook) -> None:
    """Output that reaches exactly 500,000 characters, then goes on: the rest used to vanish
    without the note (the cut was decided only by a write that crossed the limit)."""
    cell = notebook.run_new("python", "import time\nprint('x' * 499999, flush=True)\ntime.sleep(0.5)\nprint('more')")
    expect(cell.locator("pre.stream")).to_contain_text("output cut here")
    expect(cell.locator("button.download-output")).to_be_visible()
    exact = notebook.run_new("python", "print('x' * 499999)")
    expect(exact.locator("pre.stream")).to_have_text("x" * 499999 + "\n")
    expect(exact.locator("button.download-output")).to_have_count(0)


def test_a_cut_value_says_how_much_is_shown(notebook: Notebook) -> None:
    """A Python value whose repr is over the session's max_value_chars shows its beginning and says so."""
    cell = notebook.run_new("python", "'x' * 300000")
    expect(cell.locator(".value-out .value-truncated")).to_have_text(
        "Showing the first 262,144 of 300,002 characters of this value.")


def test_values_are_exact_and_null_is_distinct(notebook: Notebook) -> None:
    """Integers beyond 2^53, decimals, NaN, timestamps, nested values and NULL render exactly."""
    cell = notebook.add_cell("sql", (
        "SELECT 9007199254740993 AS big, CAST('-9223372036854775808' AS BIGINT) AS min_long, "
        "CAST(12.3 AS DECIMAL(10,3)) AS dec, NULL AS n, 'null' AS s, CAST(NULL AS STRING) AS ns, "
        "double('NaN') AS nan, 2.0D AS two, TIMESTAMP'2024-01-02 03:04:05.123456' AS ts, "
        "DATE'2024-01-02' AS d, "
        "array(1, 2) AS arr, map('k', 9007199254740993) AS m, named_struct('x', 1, 'y', 'two') AS st, "
        "X'0102FF' AS bin"))
    notebook.run(cell)
    notebook.wait_status(cell, "ok")
    cells = cell.locator("table.grid tr.row td:not(.rownum):not(.filler)")
    texts = cells.all_inner_texts()
    assert texts == [
        "9007199254740993", "-9223372036854775808", "12.300", "NULL", "null", "NULL", "NaN", "2.0",
        "2024-01-02T03:04:05.123456Z", "2024-01-02", "[1,2]", '{"k":9007199254740993}', '{"x":1,"y":"two"}',
        "[01 02 ff]"]
    classes = [c.split() for c in cells.evaluate_all("tds => tds.map(td => td.className)")]
    assert "null" in classes[3] and "null" in classes[5]
    assert "null" not in classes[4]  # the text 'null' is just text


def test_a_click_on_a_cell_shows_the_whole_value(notebook: Notebook) -> None:
    """A cell shows one line cut to its column; a click shows the value whole under the grid:
    an EXPLAIN plan line by line, a nested value as indented exact JSON; Escape closes it."""
    cell = notebook.run_new("sql", "EXPLAIN SELECT id FROM range(10) WHERE id > 3")
    cell.locator("table.grid tr.row td:not(.rownum):not(.filler)").first.click()
    panel = cell.locator(".value-detail")
    expect(panel).to_be_visible()
    expect(panel.locator(".value-detail-where")).to_have_text("Row 1 · plan (string)")
    text = panel.locator(".value-detail-text").inner_text()
    lines = text.splitlines()
    assert lines[0] == "== Physical Plan ==" and "Filter (id#" in lines[1] and "Range (0, 10" in lines[2], text
    expect(panel.locator(".value-detail-size")).to_contain_text(f"{len(text):,} characters")
    panel.locator(".value-detail-text").press("Escape")
    expect(panel).to_be_hidden()

    nested = notebook.run_new("sql", "SELECT 1 AS n, map('k', array(9007199254740993, NULL)) AS m")
    nested.locator("table.grid tr.row td:not(.rownum):not(.filler)").nth(1).click()
    panel = nested.locator(".value-detail")
    expect(panel.locator(".value-detail-where")).to_have_text("Row 1 · m (map<string,array<bigint>>)")
    assert panel.locator(".value-detail-text").inner_text() == (
        '{\n  "k": [\n    9007199254740993,\n    null\n  ]\n}')
    panel.locator("button.value-close").click()
    expect(panel).to_be_hidden()


def test_limit_marks_truncated_results(notebook: Notebook) -> None:
    """With a row limit, a longer result stops at the limit and says it was truncated."""
    cell = notebook.add_cell("sql", "SELECT id FROM range(100)")
    cell.locator("input.limit-input").fill("10")
    notebook.run(cell)
    notebook.wait_status(cell, "ok")
    expect(cell.locator(".row-counter")).to_have_text("10 rows (all)")
    expect(cell.locator(".truncated-mark")).to_have_text("truncated at limit 10")


def test_download_csv_streams_the_whole_result(notebook: Notebook, tmp_path: Path) -> None:
    """Download CSV saves every row of the result, also the rows not loaded in the page: the gateway
    streams the file (a signed link the browser navigates to), and the table pages on its own."""
    cell = notebook.add_cell("sql", "SELECT id, CASE WHEN id % 2 = 0 THEN 'a,\"b\"' END AS txt "
                                    "FROM range(2500)")
    notebook.run(cell)
    expect(cell.locator(".row-counter")).to_have_text("1,000 rows loaded", timeout=RUN_TIMEOUT)
    with notebook.page.expect_download(timeout=RUN_TIMEOUT) as info:
        cell.get_by_role("button", name="Download CSV").click()
    assert info.value.suggested_filename.endswith("-0.csv")
    target = tmp_path / "result.csv"
    info.value.save_as(target)
    rows = list(csv.reader(io.StringIO(target.read_text(encoding="utf-8"), newline="")))
    assert rows[0] == ["id", "txt"]
    assert len(rows) == 2501
    assert rows[1] == ["0", 'a,"b"'] and rows[2] == ["1", ""] and rows[-1] == ["2499", ""]
    expect(cell.locator(".export-status")).to_have_text("CSV download started (see the browser's downloads)")
    expect(cell.locator(".row-counter")).to_have_text("1,000 rows loaded")  # the table pages on its own

    first = notebook.cell(0)
    notebook.run(first)
    notebook.wait_status(first, "ok")
    with notebook.page.expect_download(timeout=RUN_TIMEOUT) as info:
        first.locator("button.download-csv").click()
    info.value.save_as(target)
    rows = list(csv.reader(io.StringIO(target.read_text(encoding="utf-8"), newline="")))
    assert rows[0] == ["city", "customers", "orders", "revenue"]
    assert [(r[0], r[3]) for r in rows[1:]] == expected_city_revenue()


def test_download_parquet_and_arrow_save_the_whole_result(notebook: Notebook, tmp_path: Path) -> None:
    """Download Parquet / Download Arrow save files that pyarrow reads back as the whole result."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    cell = notebook.add_cell("sql", "SELECT id, concat('r', id) AS s FROM range(120000)")
    notebook.run(cell)
    expect(cell.locator(".row-counter")).to_have_text("1,000 rows loaded", timeout=RUN_TIMEOUT)
    parquet = cell.get_by_role("button", name="Download Parquet")
    expect(parquet).to_be_visible()
    with notebook.page.expect_download(timeout=RUN_TIMEOUT) as info:
        parquet.click()
    assert info.value.suggested_filename.endswith("-0.parquet")
    target = tmp_path / "result.parquet"
    info.value.save_as(target)
    table = pq.read_table(target)
    assert table.num_rows == 120_000 and table.column("s")[119_999].as_py() == "r119999"
    with notebook.page.expect_download(timeout=RUN_TIMEOUT) as info:
        cell.get_by_role("button", name="Download Arrow").click()
    info.value.save_as(tmp_path / "result.arrows")
    assert pa.ipc.open_stream((tmp_path / "result.arrows").read_bytes()).read_all().equals(table)
    notebook.screenshot("web-downloads.png")


def session_id(page: Page) -> str:
    return str(page.evaluate("sparkGateway.client.session.session_id"))


def table_ids(page: Page, cell_index: int) -> list[int]:
    """The first column of every row the page holds for the cell's first result (not only those in view)."""
    return list(page.evaluate(
        "(i) => sparkGateway.notebook.cells[i].run.tables.get(0).rows.map((r) => Number(r[0]))", cell_index))


def test_reconnects_after_the_socket_drops(notebook: Notebook) -> None:
    """When the socket drops the page says so, resumes the same session (nothing lost), and runs again."""
    page = notebook.page
    cell = notebook.run_new("python", "kept = 41\nkept")
    first_session = session_id(page)

    page.context.set_offline(True)  # the network goes away
    connection = page.locator("#connection")
    expect(connection).to_have_attribute("data-state", re.compile("reconnecting|disconnected"))
    expect(page.locator("#banner")).to_contain_text("Disconnected")
    expect(page.locator("#banner")).to_contain_text("Spark session is kept")
    notebook.run(cell)  # refused while offline, with a notice
    expect(page.locator(".toast")).to_contain_text("Not connected to the gateway — this cell did not run")
    page.context.set_offline(False)
    expect(page.locator("#connection")).to_have_attribute("data-state", "connected", timeout=30_000)
    expect(page.locator(".toast.info")).to_contain_text("Reconnected — nothing lost")
    expect(page.locator(".toast", has_text="Not connected")).to_have_count(0)  # no longer true: gone
    expect(page.locator("#banner")).to_be_hidden()
    assert session_id(page) == first_session  # resumed, not a new session
    again = notebook.run_new("python", "kept + 1")  # the same Python variables
    expect(again.locator(".value-out pre")).to_have_text("42")
    page.evaluate("window.scrollTo(0, 0)")
    notebook.screenshot("web-reconnected.png")

    # The socket closing under the page (a close without a code: the gateway keeps the session).
    page.evaluate("sparkGateway.client.connection.socket.close()")
    expect(connection).to_have_attribute("data-state", "reconnecting")
    expect(connection).to_have_attribute("data-state", "connected", timeout=30_000)
    assert session_id(page) == first_session
    assert page.evaluate("sparkGateway.client.resumes") == 2
    notebook.run(cell)
    notebook.wait_status(cell, "ok")
    expect(cell.locator(".value-out pre")).to_have_text("41")


def test_results_left_open_keep_streaming_after_a_disconnect(notebook: Notebook) -> None:
    """A result left open when the socket drops is not lost: after the resume it pages on to its end."""
    cell = notebook.run_new("sql", "SELECT id FROM range(3000)", until="ready")
    counter = cell.locator(".row-counter")
    expect(counter).to_have_text("1,000 rows loaded")
    notebook.page.evaluate("sparkGateway.client.connection.socket.close()")
    expect(notebook.page.locator("#connection")).to_have_attribute("data-state", "reconnecting")
    expect(notebook.page.locator("#connection")).to_have_attribute("data-state", "connected", timeout=30_000)
    expect(notebook.page.locator(".toast.info")).to_contain_text("Reconnected — nothing lost")
    expect(counter).to_have_text("1,000 rows loaded")  # not "connection lost"
    notebook.wait_status(cell, "ready")
    for expected in ("2,000 rows loaded", "3,000 rows (all)"):
        cell.locator("button.load-more").click()
        expect(counter).to_have_text(expected)
    notebook.wait_status(cell, "ok")
    index = notebook.page.locator(".cell").count() - 1
    assert table_ids(notebook.page, index) == list(range(3000))


def test_a_result_keeps_paging_across_network_drops(browser: Browser, web_gateway: GatewayProcess) -> None:
    """The network drops (a proxy cuts the TCP connection) while pages are asked for and on their way:
    the page resumes the same session and the table ends up with every row, once, in order."""
    with behind_proxy(browser, web_gateway) as (nb, proxy):
        page = nb.page
        first_session = session_id(page)
        cell = nb.add_cell("sql", "SELECT id, concat('row ', id) AS label FROM range(6000)")
        index = page.locator(".cell").count() - 1
        nb.run(cell)
        counter = cell.locator(".row-counter")
        expect(counter).to_have_text("1,000 rows loaded", timeout=RUN_TIMEOUT)
        nb.wait_status(cell, "ready")
        drops = 0
        for loaded, delay_ms in ((2, 0), (3, 5), (4, 20), (5, 0), (6, 50)):
            cell.locator("button.load-more").click()  # the stream-rows request...
            if delay_ms:
                page.wait_for_timeout(delay_ms)
            proxy.cut()  # ...and the page it asks for may or may not get through
            drops += 1
            page.wait_for_function("(n) => sparkGateway.client.resumes >= n", arg=drops, timeout=30_000)
            expected = "6,000 rows (all)" if loaded == 6 else f"{loaded},000 rows loaded"
            expect(counter).to_have_text(expected, timeout=30_000)
            expect(page.locator("#connection")).to_have_attribute("data-state", "connected", timeout=30_000)
            if drops == 1:
                expect(page.locator(".toast.info").last).to_contain_text("Reconnected — nothing lost")
        nb.wait_status(cell, "ok")
        assert table_ids(page, index) == list(range(6000))
        assert page.evaluate("sparkGateway.client.resumes") == drops
        assert page.evaluate("sparkGateway.client.lastResumed.lost") is None
        assert session_id(page) == first_session
        assert not page.locator("[data-lost]").count()
        assert nb.errors == []


def test_away_longer_than_the_grace_period_opens_a_new_session(browser: Browser, spark_remote: str) -> None:
    """A gateway with --resume-grace 1 and the network down for 3 s: the resume is refused, the page opens
    a new session, says the Spark session was lost, and marks the result that was still open."""
    gateway = GatewayProcess(spark_remote, "--resume-grace", "1")
    with behind_proxy(browser, gateway, own_gateway=True) as (nb, proxy):
        page = nb.page
        first_session = session_id(page)
        cell = nb.add_cell("sql", "SELECT id FROM range(3000)")
        nb.run(cell)
        nb.wait_status(cell, "ready")
        state = nb.add_cell("python", "kept = 1")
        nb.run(state)
        nb.wait_status(state, "ok")
        proxy.refusing = True
        proxy.cut()
        expect(page.locator("#connection")).to_have_attribute("data-state", re.compile("reconnecting|disconnected"))
        page.wait_for_timeout(3000)  # longer than the grace period
        proxy.refusing = False
        expect(page.locator("#connection")).to_have_attribute("data-state", "connected", timeout=30_000)
        banner = page.locator("#banner")
        expect(banner).to_contain_text("The Spark session was lost")
        expect(banner).to_contain_text("new Spark session")
        assert session_id(page) != first_session
        expect(cell.locator(".row-counter")).to_have_text("1,000 rows loaded · connection lost, no more rows")
        nb.wait_status(cell, "lost")
        expect(cell.locator("button.load-more")).to_be_hidden()
        page.evaluate("window.scrollTo(0, 0)")
        nb.screenshot("web-session-lost.png")
        again = nb.add_cell("python", "kept")  # a new Spark session: the variable is gone
        nb.run(again)
        nb.wait_status(again, "error")
        expect(again.locator(".error-class")).to_have_text("NameError")
        assert nb.errors == []


def test_events_lost_beyond_the_replay_buffer_are_marked(browser: Browser, spark_remote: str) -> None:
    """Frames written into a dead connection and gone from a small replay buffer: after the resume
    the cell is marked with exactly the rows that are missing; the session goes on."""
    gateway = GatewayProcess(spark_remote, "--replay-buffer-bytes", "200000")
    with behind_proxy(browser, gateway, own_gateway=True) as (nb, proxy):
        page = nb.page
        first_session = session_id(page)
        code = ("print('x' * 100)\n"
                "for i in range(8):\n    display(spark.range(1000).selectExpr('id', \"repeat('x', 100) AS pad\"))")
        cell = nb.add_cell("python", code)
        proxy.blackhole = True  # what the gateway sends from now on vanishes on the way
        nb.run(cell)
        deadline = time.monotonic() + 60
        while True:  # until the gateway has written it all (~900 kB)
            before = proxy.discarded
            page.wait_for_timeout(1000)
            if before > 800_000 and proxy.discarded == before:
                break
            assert time.monotonic() < deadline, f"the gateway wrote {proxy.discarded} bytes only"
        proxy.blackhole = False
        proxy.cut()
        expect(page.locator("#connection")).to_have_attribute("data-state", "connected", timeout=30_000)
        expect(page.locator(".toast.warning")).to_contain_text("Reconnected — but events")
        assert session_id(page) == first_session
        lost = page.evaluate("sparkGateway.client.lastResumed.lost")
        # The cell's execution; the page's editor lookups (ids "lookup-N") may have lost answers too.
        [item] = [e for e in lost["executions"] if e["id"] is not None and not e["id"].startswith("lookup-")]
        assert item["messages"]["stdout"] == 1 and item["results"]  # what the gateway says is gone...
        note = cell.locator(".lost-events")  # ...is exactly what the cell says is missing
        expect(note).to_contain_text(f"Lost in a reconnection (events {lost['from_seq']}–{lost['to_seq']}")
        for r in item["results"]:
            assert (r["from_offset"], r["to_offset"]) == (0, 1000)
            expect(note).to_contain_text(f"rows 1–1,000 of result {r['result'] + 1};")
        expect(note).to_contain_text("1 stdout event")
        assert note.inner_text().count("rows 1–1,000 of result") == len(item["results"])
        expect(cell).to_have_attribute("data-lost", "true")
        nb.wait_status(cell, "ok")  # its end was in the replay buffer: the run still completes
        cell.scroll_into_view_if_needed()
        nb.screenshot("web-events-lost.png")
        after = nb.add_cell("sql", "SELECT 'still here' AS msg")  # the session goes on
        nb.run(after)
        nb.wait_status(after, "ok")
        assert nb.column(after, 0) == ["still here"]
        assert nb.errors == []


def test_dark_mode_follows_the_system_and_toggles(browser: Browser, web_gateway: GatewayProcess) -> None:
    """The page starts in the system's colour scheme and the toggle switches it."""
    context, nb = open_notebook(browser, web_gateway, color_scheme="dark")
    try:
        html = nb.page.locator("html")
        expect(html).to_have_attribute("data-theme", "dark")
        cell = nb.cell(0)
        nb.run(cell)
        nb.wait_status(cell, "ok")
        error = nb.add_cell("sql", "SELECT amount FROM sales WHERE nope > 1")
        nb.run(error)
        nb.wait_status(error, "error")
        nb.page.evaluate("window.scrollTo(0, 0)")
        nb.screenshot("web-dark.png")
        nb.page.click("#theme-toggle")
        expect(html).to_have_attribute("data-theme", "light")
        nb.page.reload()  # the choice is remembered
        expect(html).to_have_attribute("data-theme", "light")
        assert nb.errors == []
    finally:
        context.close()


def test_narrow_window_stays_usable(browser: Browser, web_gateway: GatewayProcess) -> None:
    """At phone width nothing overflows the page sideways and cells still run."""
    context, nb = open_notebook(browser, web_gateway, viewport={"width": 420, "height": 860})
    try:
        cell = nb.cell(0)
        nb.run(cell)
        nb.wait_status(cell, "ok")
        width = nb.page.evaluate("document.documentElement.scrollWidth")
        assert width <= 420
        expect(cell.locator("button.icon-run")).to_be_in_viewport()
        nb.screenshot("web-narrow.png")
        assert nb.errors == []
    finally:
        context.close()


def test_cells_survive_a_reload(notebook: Notebook) -> None:
    """Cells (code, language, limit) are kept in the browser across a reload."""
    cell = notebook.add_cell("python", "print('kept')")
    cell.locator("input.limit-input").fill("7")
    count = notebook.page.locator(".cell").count()
    notebook.page.wait_for_function(
        "(localStorage.getItem('spark-gateway.notebook.v1') || '').includes('\"limit\":7')")
    notebook.page.reload()
    expect(notebook.page.locator(".cell")).to_have_count(count)
    last = notebook.cell(count - 1)
    notebook.expect_code(last, "print('kept')")
    expect(last.locator("select.lang")).to_have_value("python")
    expect(last.locator("input.limit-input")).to_have_value("7")


def test_keyboard_runs_and_moves_between_cells(notebook: Notebook) -> None:
    """Tab indents, Shift+Enter runs and moves to a new cell, Esc and arrows move between cells."""
    page = notebook.page
    cell = notebook.add_cell("sql", "")
    editor = notebook.editor(cell)
    editor.press("Tab")
    notebook.expect_code(cell, "  ")
    editor.press("Shift+Tab")
    notebook.expect_code(cell, "")
    editor.press_sequentially("SELECT 41 + 1 AS answer")  # a completion popup may be open: Shift+Enter runs anyway
    count = page.locator(".cell").count()
    editor.press("Shift+Enter")
    expect(page.locator(".cell")).to_have_count(count + 1)
    new_editor = notebook.editor(notebook.cell(count))
    expect(new_editor).to_be_focused()
    notebook.wait_status(cell, "ok")
    assert notebook.column(cell, 0) == ["42"]
    new_editor.press("Escape")
    expect(notebook.cell(count)).to_be_focused()
    page.keyboard.press("ArrowUp")
    expect(cell).to_be_focused()
    page.keyboard.press("Enter")
    expect(editor).to_be_focused()


def test_sql_error_inside_python_is_marked_in_the_python_code(notebook: Notebook) -> None:
    """A SQL error raised by spark.sql() in a Python cell marks the fragment inside the SQL string."""
    cell = notebook.run_new("python", 'rows = 1\ndf = spark.sql("SELECT * FROM no_such_table")', until="error")
    expect(cell.locator(".error-class")).to_have_text("TABLE_OR_VIEW_NOT_FOUND")
    expect(cell.locator(".cm-content mark.error-fragment")).to_have_text("no_such_table")


def run_all_welcome_cells(nb: Notebook) -> list[str]:
    """Press Run all on a fresh page; every welcome cell must end well (the last one, a big
    result, waits for the reader: "ready"). Returns their languages."""
    cells = nb.page.locator(".cell")
    languages = [cells.nth(i).locator("select.lang").input_value() for i in range(cells.count())]
    nb.page.click("#run-all")
    for i in range(cells.count()):
        nb.wait_status(cells.nth(i), "ready" if i == cells.count() - 1 else "ok")
    return languages


def test_welcome_cells_run_on_a_gateway_without_sample_tables(browser: Browser, gateway: GatewayProcess) -> None:
    """Without --sample-data the first cells use generated rows, so Run all on a fresh page fails nowhere."""
    context, nb = open_notebook(browser, gateway)
    try:
        first = nb.code(nb.cell(0))
        assert "range(10000000)" in first and "FROM sales" not in first
        assert run_all_welcome_cells(nb) == ["sql", "python", "sql", "sql"]
        assert nb.column(nb.cell(0), 1) == ["1000000"] * 10
        expect(nb.cell(1).locator("pre.stream")).to_contain_text("rows: 1000000")
    finally:
        context.close()
    assert nb.errors == []


def test_sql_only_gateway_offers_no_python(browser: Browser, spark_remote: str) -> None:
    """With --languages sql the notebook shows no Python cell or button, and Python is greyed out."""
    gateway = GatewayProcess(spark_remote, "--languages", "sql", "--sample-data")
    context, nb = open_notebook(browser, gateway)
    try:
        assert run_all_welcome_cells(nb) == ["sql", "sql", "sql"]
        assert "FROM sales" in nb.code(nb.cell(0))
        expect(nb.page.locator("#add-python")).to_be_hidden()
        expect(nb.page.locator(".adder button", has_text="+ Python")).to_have_count(0)
        assert nb.cell(0).locator("select.lang option[value=python]").is_disabled()
    finally:
        context.close()
        gateway.stop()
    assert nb.errors == []


def test_sql_script_shows_each_result_and_marks_the_failing_statement(notebook: Notebook) -> None:
    """A cell of several statements: a table per query, and an error marked where it is in the cell."""
    cell = notebook.run_new("sql", "SELECT 1 AS a;\nSELECT 'two' AS b;\nSELECT * FROM nowhere", until="error")
    expect(cell.locator("table.grid")).to_have_count(2)
    assert cell.locator("table.grid th .col-name").all_inner_texts() == ["a", "b"]
    expect(cell.locator(".cm-content mark.error-fragment")).to_have_text("nowhere")
    expect(cell.locator(".cm-lineNumbers .cm-gutterElement.error")).to_have_text("3")
    expect(cell.locator(".error-box .where-label")).to_have_text("line 3, column 15")
