"""The notebook's editor (CodeMirror 6) and schema browser in a real Chromium, against the real gateway and Spark.

Keys, search and the local completion need nothing of the gateway beyond running cells. The completion
popup, the documentation and the schema browser are fed by the gateway's `complete`, `inspect` and
`catalog` answers: those tests are written as they pass on a gateway that has them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.conftest import ARTIFACTS, GatewayProcess
from tests.test_web_client import Notebook, open_notebook

playwright_api = pytest.importorskip("playwright.sync_api")
from playwright.sync_api import Browser, Locator, Page, expect  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.timeout(180)]

# Only on the editor's branch: the gateway's part (complete, inspect, catalog) lands separately.
LOOKUP_TIMEOUT = 20_000  # ms: the gateway answers within its own deadline (5 s), a cold catalog included


@pytest.fixture
def notebook(chromium: Browser, web_gateway: GatewayProcess) -> Iterator[Notebook]:
    context, nb = open_notebook(chromium, web_gateway)
    # The page's session is new: its Spark session (and the sample views) come with the first
    # editor request, seconds on a loaded machine. The schema browser asks at once; once it has
    # its answer, completion answers within the popup's time.
    expect(nb.page.locator("#schema [role=status]", has_text="Loading")).to_have_count(0, timeout=60_000)
    yield nb
    context.close()
    assert nb.errors == [], f"uncaught errors in the page: {nb.errors}"


def popup(page: Page) -> Locator:
    """The completion popup's options."""
    return page.locator(".cm-tooltip-autocomplete li")


def option(page: Page, label: str) -> Locator:
    """The popup's option labelled exactly ``label``."""
    return popup(page).filter(has=page.locator(".cm-completionLabel", has_text=re.compile(f"^{re.escape(label)}$")))


def accept(nb: Notebook, cell: Locator, key: str) -> None:
    """Accept the popup's selected option with ``key`` (the popup ignores keys in its first 75 ms)."""
    nb.page.wait_for_timeout(150)
    nb.editor(cell).press(key)


def expect_option(nb: Notebook, cell: Locator, label: str) -> Locator:
    """Wait for the popup to offer ``label``. A session's first request may outlast the gateway's deadline
    while Spark reads a cold catalog (the popup then shows local words): like a user, ask again (Ctrl+Space)."""
    for _ in range(2):
        try:
            expect(option(nb.page, label)).to_be_visible(timeout=LOOKUP_TIMEOUT // 2)
            break
        except AssertionError:
            nb.editor(cell).press("Control+Space")
    expect(option(nb.page, label)).to_be_visible(timeout=LOOKUP_TIMEOUT)
    return option(nb.page, label)


def tree_item(page: Page, name: str) -> Locator:
    """The schema browser's item for ``name`` (its accessible name starts with it)."""
    return page.locator(f'#schema [role="treeitem"][aria-label^="{name},"]')


def catalog_read(page: Page) -> None:
    """Wait until the schema browser shows the session's tables (the gateway has read its catalog, as it
    does when a session starts); fail at once if the gateway does not know editor requests."""
    page.wait_for_function("sparkGateway.client.lookups.supported !== null", timeout=LOOKUP_TIMEOUT)
    assert page.evaluate("sparkGateway.client.lookups.supported") is True, "this gateway has no editor requests"
    expect(tree_item(page, "sales")).to_be_visible(timeout=LOOKUP_TIMEOUT)


def place_cursor(nb: Notebook, cell: Locator, offset: int) -> None:
    """Put the cursor ``offset`` characters into the cell's code, with the keyboard."""
    editor = nb.editor(cell)
    editor.press("Control+Home")
    for _ in range(offset):
        editor.press("ArrowRight")


# ------------------------------------------------------------------ keys, search, local completion


def test_keys_comment_undo_brackets_indent_and_search(notebook: Notebook) -> None:
    """Ctrl+/ comments and uncomments, Ctrl+Z / Ctrl+Y undo and redo, brackets match, Enter keeps the
    indentation (one more level after ':' in Python), Escape closes the completion popup or the search
    panel first and then leaves the editor, Ctrl+F searches."""
    cell = notebook.add_cell("sql", "SELECT count(amount)\n  FROM sales")
    editor = notebook.editor(cell)
    editor.press("Control+Home")
    editor.press("Control+/")
    notebook.expect_code(cell, "-- SELECT count(amount)\n  FROM sales")
    notebook.page.wait_for_timeout(600)  # edits within 500 ms are one step of the undo history
    editor.press("Control+/")
    notebook.expect_code(cell, "SELECT count(amount)\n  FROM sales")
    editor.press("Control+z")  # undo the uncommenting...
    notebook.expect_code(cell, "-- SELECT count(amount)\n  FROM sales")
    editor.press("Control+y")  # ...and redo it
    notebook.expect_code(cell, "SELECT count(amount)\n  FROM sales")
    editor.press("Home")
    editor.press("End")  # after the closing bracket: both brackets are marked
    expect(cell.locator(".cm-matchingBracket")).to_have_count(2)
    editor.press("Control+f")
    search = cell.locator(".cm-search")
    expect(search).to_be_visible()
    field = search.locator("input[name=search]")
    expect(field).to_be_focused()
    field.press_sequentially("sales")
    expect(cell.locator(".cm-searchMatch")).to_have_count(1)
    field.press("Escape")
    expect(search).to_have_count(0)
    expect(editor).to_be_focused()
    editor.press("Escape")
    expect(cell).to_be_focused()
    cell.press("Enter")  # back into the editor
    expect(editor).to_be_focused()

    editor.press("Control+End")
    editor.press("Enter")
    editor.press_sequentially("WH")
    expect(option(notebook.page, "WHERE")).to_be_visible(timeout=LOOKUP_TIMEOUT)  # the completion popup...
    editor.press("Escape")  # ...closes first, and the editor keeps the focus
    expect(popup(notebook.page)).to_have_count(0)
    expect(editor).to_be_focused()
    editor.press_sequentially("ERE")
    notebook.expect_code(cell, "SELECT count(amount)\n  FROM sales\n  WHERE")

    python = notebook.add_cell("python", "for i in range(3):")
    notebook.editor(python).press("Control+End")
    notebook.editor(python).press("Enter")
    notebook.editor(python).press_sequentially("print(i)")
    notebook.expect_code(python, "for i in range(3):\n    print(i)")
    notebook.editor(python).press("Shift+Enter")
    notebook.wait_status(python, "ok")
    expect(python.locator("pre.stream")).to_have_text("0\n1\n2\n")


def test_without_editor_requests_the_editor_completes_from_the_cell(notebook: Notebook) -> None:
    """A gateway that answers `complete` with unknown_type (one without editor requests): the popup offers
    the language's keywords and the names in the cell, quietly, and the schema browser says it is not supported."""
    page = notebook.page
    # The schema browser asks for the catalog as the session starts: the answer says which gateway this is.
    page.wait_for_function("sparkGateway.client.lookups.supported !== null", timeout=LOOKUP_TIMEOUT)
    if page.evaluate("sparkGateway.client.lookups.supported"):
        pytest.skip("this gateway answers editor requests: the fallback needs one that does not")
    cell = notebook.add_cell("sql", "SELECT amount FROM sales;\n")
    editor = notebook.editor(cell)
    editor.press("Control+End")
    editor.press_sequentially("SEL")
    expect(option(page, "SELECT").locator(".kind-icon")).to_have_class("kind-icon kind-keyword")
    accept(notebook, cell, "Enter")
    notebook.expect_code(cell, "SELECT amount FROM sales;\nSELECT")
    editor.press_sequentially(" am")
    expect(option(page, "amount")).to_be_visible()
    accept(notebook, cell, "Tab")
    notebook.expect_code(cell, "SELECT amount FROM sales;\nSELECT amount")
    expect(page.locator("#schema .schema-note")).to_contain_text("Not supported by this gateway")
    expect(page.locator(".toast", has_text="refused")).to_have_count(0)

    python = notebook.add_cell("python", "totals = spark.range(3)\n")
    notebook.editor(python).press("Control+End")
    notebook.editor(python).press_sequentially("tot")
    expect(option(page, "totals")).to_be_visible()
    accept(notebook, python, "Enter")
    notebook.expect_code(python, "totals = spark.range(3)\ntotals")


# ------------------------------------------------------------------ from the gateway


def test_completion_popup_offers_tables_and_inserts_one(notebook: Notebook) -> None:
    """`SELECT * FROM con` shows `consumers` (a view, with its icon) in the popup; Enter puts it in the code."""
    page = notebook.page
    catalog_read(page)
    cell = notebook.add_cell("sql", "SELECT * FROM co")
    notebook.editor(cell).press("Control+End")
    notebook.editor(cell).press_sequentially("n")
    consumers = expect_option(notebook, cell, "consumers")
    expect(consumers.locator(".kind-icon")).to_have_class("kind-icon kind-view")
    expect(page.locator(".cm-tooltip-autocomplete li[aria-selected]")).to_contain_text("consumers")
    accept(notebook, cell, "Enter")
    notebook.expect_code(cell, "SELECT * FROM consumers")
    assert page.evaluate("sparkGateway.client.lookups.supported") is True


def test_completion_after_an_alias_offers_its_columns(notebook: Notebook) -> None:
    """In `SELECT c. FROM consumers c`, Ctrl+Space after `c.` offers the columns of consumers with their types."""
    page = notebook.page
    catalog_read(page)
    cell = notebook.add_cell("sql", "SELECT c. FROM consumers c")
    place_cursor(notebook, cell, len("SELECT c."))
    notebook.editor(cell).press("Control+Space")
    expect_option(notebook, cell, "name")
    expect(option(page, "city").locator(".cm-completionDetail")).to_have_text("string")
    option(page, "city").click()
    notebook.expect_code(cell, "SELECT c.city FROM consumers c")


def test_python_completion_offers_dataframe_methods(notebook: Notebook) -> None:
    """After `sales = spark.table("sales")` ran, typing `sales.gro` offers groupBy; Tab accepts it."""
    page = notebook.page
    catalog_read(page)
    notebook.run_new("python", 'sales = spark.table("sales")')
    cell = notebook.add_cell("python", "sales.")
    notebook.editor(cell).press("Control+End")
    notebook.editor(cell).press_sequentially("gro")
    expect_option(notebook, cell, "groupBy")
    accept(notebook, cell, "Tab")
    notebook.expect_code(cell, "sales.groupBy")


def test_documentation_on_shift_tab_and_on_hover(notebook: Notebook) -> None:
    """Shift+Tab after a table's name shows what it is, with its columns; Escape closes it; hovering a
    function shows its signature. The code does not change."""
    page = notebook.page
    catalog_read(page)
    code = "SELECT upper(name) FROM consumers"
    cell = notebook.add_cell("sql", code)
    notebook.editor(cell).press("Control+End")
    notebook.editor(cell).press("Shift+Tab")
    doc = page.locator(".cm-tooltip .cm-doc")
    expect(doc).to_be_visible(timeout=LOOKUP_TIMEOUT)
    if doc.locator(".cm-doc-none").count():  # the session's first request outlasted the gateway's deadline
        notebook.editor(cell).press("Escape")
        notebook.editor(cell).press("Shift+Tab")
    expect(doc.locator(".cm-doc-name")).to_contain_text("consumers", timeout=LOOKUP_TIMEOUT)
    expect(doc.locator(".cm-doc-columns")).to_contain_text("city")
    notebook.screenshot("web-documentation.png")
    notebook.editor(cell).press("Escape")
    expect(doc).to_have_count(0)
    notebook.expect_code(cell, code)
    index = page.locator(".cell").count() - 1
    box = page.evaluate("(i) => { const r = sparkGateway.notebook.cells[i].editor.view.coordsAtPos(9); "
                        "return [r.left, r.top, r.bottom]; }", index)
    page.mouse.move(box[0] + 2, (box[1] + box[2]) / 2)
    expect(doc.locator(".cm-doc-signature")).to_contain_text("upper", timeout=LOOKUP_TIMEOUT)


def test_schema_browser_lists_columns_and_inserts_names(notebook: Notebook) -> None:
    """The schema browser opens the catalog and its database, `sales` opens to its columns with their types,
    a click inserts a name at the cell's cursor, the keyboard does too, and Refresh keeps what was open."""
    page = notebook.page
    catalog_read(page)
    cell = notebook.add_cell("sql", "SELECT  FROM sales")
    place_cursor(notebook, cell, len("SELECT "))
    sales = tree_item(page, "sales")
    expect(sales).to_be_visible(timeout=LOOKUP_TIMEOUT)
    expect(sales).to_have_attribute("aria-expanded", "false")
    sales.locator(".twisty").first.click()
    expect(sales).to_have_attribute("aria-expanded", "true")
    amount = tree_item(page, "amount")
    expect(amount.locator(".schema-type")).to_have_text("decimal(10,2)", timeout=LOOKUP_TIMEOUT)
    expect(tree_item(page, "sale_date").locator(".schema-type")).to_have_text("date")
    amount.locator(".schema-name").click()
    notebook.expect_code(cell, "SELECT amount FROM sales")
    expect(notebook.editor(cell)).to_be_focused()
    notebook.editor(cell).press_sequentially(", ")
    notebook.editor(cell).press("Escape")  # the completion popup ", " may have left open

    amount.focus()
    page.keyboard.press("p")  # type-ahead: the next name starting with p
    expect(tree_item(page, "product")).to_be_focused()
    page.keyboard.press("Enter")
    notebook.expect_code(cell, "SELECT amount, product FROM sales")
    expect(tree_item(page, "product")).to_be_focused()  # the keyboard stays in the tree
    page.keyboard.press("ArrowLeft")  # to the parent...
    expect(sales).to_be_focused()
    page.keyboard.press("ArrowLeft")  # ...which closes
    expect(sales).to_have_attribute("aria-expanded", "false")
    page.keyboard.press("ArrowRight")
    expect(amount).to_be_visible()

    page.click("#schema-refresh")
    expect(tree_item(page, "amount")).to_be_visible(timeout=LOOKUP_TIMEOUT)


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_screenshot_of_the_popup_and_the_schema_browser(chromium: Browser, web_gateway: GatewayProcess,
                                                        scheme: str) -> None:
    """The notebook with the completion popup open over a cell and the schema browser showing a table's columns."""
    context, nb = open_notebook(chromium, web_gateway, viewport={"width": 1280, "height": 760}, color_scheme=scheme)
    try:
        page = nb.page
        catalog_read(page)
        consumers = tree_item(page, "consumers")
        expect(consumers).to_be_visible(timeout=LOOKUP_TIMEOUT)
        consumers.locator(".twisty").first.click()
        expect(tree_item(page, "signup_date")).to_be_visible(timeout=LOOKUP_TIMEOUT)
        first = nb.cell(0)
        nb.run(first)
        nb.wait_status(first, "ok")
        place_cursor(nb, first, nb.code(first).index("c.city,") + len("c."))
        for _ in "city":  # SELECT c.|,
            nb.editor(first).press("Delete")
        nb.editor(first).press("Control+Space")
        expect_option(nb, first, "signup_date")
        expect(option(page, "city").locator(".cm-completionDetail")).to_have_text("string")
        page.evaluate("window.scrollTo(0, 0)")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"web-editor-{scheme}.png"))
        assert nb.errors == []
    finally:
        context.close()
