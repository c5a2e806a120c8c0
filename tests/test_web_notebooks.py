"""Notebooks as files, several notebooks and the history of runs, in a real Chromium against the real gateway and Spark.

Playwright drives Debian's ``chromium`` (never ``playwright install``). Saved files are read with nbformat,
and one is run by nbclient on the gateway's own Jupyter kernel. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import GatewayProcess
from tests.test_kernel import install
from tests.test_web_client import Notebook, open_notebook

playwright_api = pytest.importorskip("playwright.sync_api")
nbformat = pytest.importorskip("nbformat")
from playwright.sync_api import Browser, Page, expect  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.timeout(240)]

DATA_RESOURCE = "application/vnd.dataresource+json"


@pytest.fixture
def notebook(chromium: Browser, web_gateway: GatewayProcess) -> Iterator[Notebook]:
    context, nb = open_notebook(chromium, web_gateway)
    yield nb
    context.close()
    assert nb.errors == [], f"uncaught errors in the page: {nb.errors}"


def notebooks_dialog(page: Page):  # type: ignore[no-untyped-def]
    """Open the Notebooks dialog from the header, as a user does; return it."""
    page.get_by_role("button", name=re.compile(r"^Notebooks \(open: ")).click()
    dialog = page.get_by_role("dialog", name="Notebooks")
    expect(dialog).to_be_visible()
    return dialog


def reload(nb: Notebook) -> None:
    nb.page.reload()
    expect(nb.page.locator("#connection")).to_have_attribute("data-state", "connected", timeout=30_000)


def save_ipynb(nb: Notebook, tmp_path: Path, *, outputs: bool) -> tuple[str, Any]:
    """Save through the dialog ("Save with outputs" as asked); the download's name and its notebook."""
    dialog = notebooks_dialog(nb.page)
    box = dialog.get_by_role("checkbox", name="Save with outputs")
    box.set_checked(outputs)
    with nb.page.expect_download() as info:
        dialog.get_by_role("button", name="Save as .ipynb").click()
    download = info.value
    path = tmp_path / download.suggested_filename
    download.save_as(path)
    dialog.get_by_role("button", name="Close").click()
    return download.suggested_filename, nbformat.read(path, as_version=4)


def test_a_saved_notebook_validates_and_holds_its_cells_and_outputs(notebook: Notebook, tmp_path: Path) -> None:
    """Save with outputs: valid nbformat 4, SQL as `%%sql`, tables as HTML + text + rows, printed text as a stream."""
    nb = notebook
    sql = nb.run_new("sql", "SELECT id, id * id AS sq, CAST(NULL AS string) AS nothing FROM range(3)")
    py = nb.run_new("python", "print('hello from python')\nspark.range(2).selectExpr('id AS n')")
    bad = nb.run_new("sql", "SELECT no_such_column FROM range(1)", until="error")
    name, saved = save_ipynb(nb, tmp_path, outputs=True)
    assert name == "Welcome.ipynb"
    nbformat.validate(saved)
    assert saved.metadata.kernelspec.name == "spark-gateway"
    codes = [c for c in saved.cells if c.cell_type == "code"]
    assert len(codes) == nb.page.locator(".cell").count()
    sql_cell, py_cell, bad_cell = codes[-3:]
    assert sql_cell.source == "%%sql\n" + nb.code(sql)
    assert py_cell.source == nb.code(py) and bad_cell.source == "%%sql\n" + nb.code(bad)
    [table] = [o for o in sql_cell.outputs if o.output_type == "display_data"]
    assert table.data[DATA_RESOURCE]["data"] == [{"id": i, "sq": i * i, "nothing": None} for i in range(3)]
    assert "<table" in table.data["text/html"] and "3 rows" in table.data["text/html"]
    assert "sq" in table.data["text/plain"].splitlines()[0]
    kinds = [o.output_type for o in py_cell.outputs]
    assert kinds == ["stream", "display_data"], kinds
    assert py_cell.outputs[0].name == "stdout" and py_cell.outputs[0].text == "hello from python\n"
    [error] = bad_cell.outputs
    assert error.output_type == "error" and "no_such_column" in error.evalue
    # Ctrl+S saves the same way (the option is remembered); unchecked, the same cells without outputs.
    nb.page.locator("body").click()
    with nb.page.expect_download() as info:
        nb.page.keyboard.press("Control+s")
    assert info.value.suggested_filename == "Welcome.ipynb"
    info.value.save_as(tmp_path / "again.ipynb")
    again = nbformat.read(tmp_path / "again.ipynb", as_version=4)
    assert [len(c.outputs) for c in again.cells] == [len(c.outputs) for c in saved.cells]
    _, plain = save_ipynb(nb, tmp_path, outputs=False)
    nbformat.validate(plain)
    assert [c.source for c in plain.cells] == [c.source for c in saved.cells]
    assert all(c.outputs == [] and c.execution_count is None for c in plain.cells)


def test_a_saved_notebook_runs_in_jupyter_on_the_gateways_kernel(
        notebook: Notebook, web_gateway: GatewayProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """nbclient runs the downloaded .ipynb on the gateway's kernel: its `%%sql` cell gives the same rows."""
    from nbclient import NotebookClient

    nb = notebook
    nb.page.evaluate("sparkGateway.library.create('For Jupyter', [])")
    nb.run_new("sql", "SELECT id, id * 10 AS tens FROM range(4)")
    nb.run_new("python", "print(spark.range(5).count())")
    name, saved = save_ipynb(nb, tmp_path, outputs=False)
    assert name == "For Jupyter.ipynb"
    install(tmp_path / "prefix", web_gateway.ws_url)
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "prefix" / "share" / "jupyter"))
    monkeypatch.setenv("JUPYTER_PLATFORM_DIRS", "1")
    NotebookClient(saved, timeout=120, kernel_name=saved.metadata.kernelspec.name).execute()
    sql, python = saved.cells
    [result] = [o for o in sql.outputs if o.output_type in ("execute_result", "display_data")
                and DATA_RESOURCE in o.data]
    assert result.data[DATA_RESOURCE]["data"] == [{"id": i, "tens": 10 * i} for i in range(4)]
    assert [o.text for o in python.outputs if o.output_type == "stream"] == ["5\n"]


def test_a_notebook_written_by_nbformat_opens_with_its_cells(notebook: Notebook, tmp_path: Path) -> None:
    """"Open notebook…" reads nbformat's file into a new notebook: markdown, `%%sql`, Python, raw; the SQL runs."""
    nb = notebook
    doc = nbformat.v4.new_notebook()
    doc.metadata["kernelspec"] = {"name": "spark-gateway", "display_name": "Spark (gateway)", "language": "python"}
    doc.cells = [
        nbformat.v4.new_markdown_cell("# Sales report\n\nRevenue by **city**, from the sample tables."),
        nbformat.v4.new_code_cell("%%sql\nSELECT city, count(*) AS n\nFROM consumers\nGROUP BY city\nORDER BY city"),
        nbformat.v4.new_code_cell("n = spark.table('sales').count()\nprint('sales:', n)"),
        nbformat.v4.new_raw_cell("Raw text is kept too."),
    ]
    data = json.loads(nbformat.writes(doc))
    assert all(isinstance(cell["source"], list) for cell in data["cells"])  # nbformat writes lists of lines
    path = tmp_path / "Sales report.ipynb"
    path.write_text(json.dumps(data, indent=1), encoding="utf-8")

    dialog = notebooks_dialog(nb.page)
    with nb.page.expect_file_chooser() as chooser:
        dialog.get_by_role("button", name="Open notebook…").click()
    chooser.value.set_files(str(path))
    expect(dialog).to_be_hidden()
    cells = nb.page.locator(".cell")
    expect(cells).to_have_count(4)
    expect(nb.page.locator("#notebooks-toggle")).to_contain_text("Sales report")
    assert [cells.nth(i).get_attribute("data-language") for i in range(4)] == ["markdown", "sql", "python", "raw"]
    markdown = cells.nth(0)
    expect(markdown.get_by_role("heading", name="Sales report")).to_be_visible()  # shown as text, as in Jupyter
    expect(markdown.locator("strong")).to_have_text("city")
    nb.expect_code(cells.nth(1), "SELECT city, count(*) AS n\nFROM consumers\nGROUP BY city\nORDER BY city")
    nb.expect_code(cells.nth(2), doc.cells[2].source)
    expect(cells.nth(3).get_by_role("textbox", name="Raw text")).to_have_value("Raw text is kept too.")
    nb.run(cells.nth(1))
    nb.wait_status(cells.nth(1), "ok")
    expect(cells.nth(1).locator(".row-counter")).to_have_text("12 rows (all)")
    nb.page.evaluate("window.scrollTo(0, 0)")
    shots = Path("/tmp/shots-files")
    shots.mkdir(exist_ok=True)
    nb.page.screenshot(path=str(shots / "ipynb-opened.png"))
    markdown.get_by_role("button", name="Edit the Markdown").click()
    source = markdown.get_by_role("textbox", name="Markdown text")
    expect(source).to_be_focused()
    expect(source).to_have_value(doc.cells[0].source)
    source.press("End")
    source.type(" More.")
    source.press("Escape")
    expect(markdown.get_by_role("paragraph")).to_contain_text("More.")
    nb.page.wait_for_timeout(400)  # the cells are kept a moment after the last change
    dialog = notebooks_dialog(nb.page)
    with nb.page.expect_download() as info:
        dialog.get_by_role("button", name="Save as .ipynb").click()
    info.value.save_as(tmp_path / "again.ipynb")
    again = nbformat.read(tmp_path / "again.ipynb", as_version=4)
    nbformat.validate(again)
    assert [c.cell_type for c in again.cells] == ["markdown", "code", "code", "raw"]
    assert again.cells[0].source == doc.cells[0].source + " More."
    assert [c.source for c in again.cells[1:]] == [c.source for c in doc.cells[1:]]
    assert [c.id for c in again.cells] == [c.id for c in doc.cells]


def test_history_lists_earlier_runs_after_a_reload_and_opens_one_in_a_new_cell(notebook: Notebook) -> None:
    """Runs are kept across a reload, newest first, with status and rows; search filters; the keyboard opens one."""
    nb = notebook
    nb.run_new("sql", "SELECT id AS history_probe FROM range(3)")
    nb.run_new("python", "print('from python')")
    nb.run_new("sql", "SELECT missing_history_column", until="error")
    nb.page.wait_for_timeout(400)  # the history is written a moment after the last change
    reload(nb)
    count_before = nb.page.locator(".cell").count()
    nb.page.get_by_role("button", name="History", exact=True).focus()
    nb.page.keyboard.press("Enter")
    dialog = nb.page.get_by_role("dialog", name="History")
    expect(dialog).to_be_visible()
    items = dialog.locator(".history-item")
    expect(items).to_have_count(3)
    assert [items.nth(i).get_attribute("data-status") for i in range(3)] == ["error", "ok", "ok"]
    expect(items.nth(0)).to_contain_text("UNRESOLVED_COLUMN")  # the error's class says what went wrong
    expect(items.nth(2)).to_contain_text("3 rows")
    expect(items.nth(2)).to_contain_text("SQL")
    expect(items.nth(1)).to_contain_text("Python")
    expect(dialog.get_by_role("status")).to_contain_text("last 500 runs")
    shots = Path("/tmp/shots-files")
    shots.mkdir(exist_ok=True)
    nb.page.screenshot(path=str(shots / "history.png"))
    nb.screenshot("web-history.png")
    search = dialog.get_by_role("searchbox", name="Search history")
    expect(search).to_be_focused()
    search.fill("history_probe")
    expect(items).to_have_count(1)
    nb.page.keyboard.press("ArrowDown")
    expect(items.first.get_by_role("button", name="Open in new cell")).to_be_focused()
    nb.page.keyboard.press("Enter")
    expect(dialog).to_be_hidden()
    expect(nb.page.locator(".cell")).to_have_count(count_before + 1)
    new = nb.page.locator(".cell").nth(count_before)
    nb.expect_code(new, "SELECT id AS history_probe FROM range(3)")
    expect(new.locator(".cm-content")).to_be_focused()


def test_notebooks_are_created_renamed_switched_and_deleted_and_survive_a_reload(notebook: Notebook) -> None:
    """New, rename, switch, delete (confirmed) in the Notebooks dialog; the open one and its cells survive a reload."""
    nb = notebook
    welcome = nb.code(nb.cell(0))
    dialog = notebooks_dialog(nb.page)
    dialog.get_by_role("button", name="New notebook").click()
    expect(dialog).to_be_hidden()
    expect(nb.page.locator(".cell")).to_have_count(1)
    nb.editor(nb.cell(0)).fill("SELECT 'in the second notebook' AS s")
    nb.expect_code(nb.cell(0), "SELECT 'in the second notebook' AS s")

    dialog = notebooks_dialog(nb.page)
    dialog.get_by_role("button", name="Rename Untitled 1").click()
    name = dialog.get_by_role("textbox", name="New name for Untitled 1")
    expect(name).to_be_focused()
    name.fill("Quarterly")
    name.press("Enter")
    expect(dialog.get_by_role("button", name="Quarterly (open)")).to_be_visible()
    dialog.get_by_role("button", name="Duplicate Quarterly").click()
    expect(dialog.get_by_role("button", name="Quarterly (copy) (open)")).to_be_visible()
    shots = Path("/tmp/shots-files")
    shots.mkdir(exist_ok=True)
    nb.page.screenshot(path=str(shots / "notebooks.png"))
    nb.screenshot("web-notebooks.png")
    dialog.get_by_role("button", name="Delete Quarterly (copy)").click()
    dialog.get_by_role("button", name="Delete Quarterly (copy) for good").click()
    expect(dialog.locator(".notebook-list li")).to_have_count(2)
    expect(dialog.get_by_role("button", name="Quarterly (open)", exact=True)).to_be_visible()  # its neighbour
    dialog.get_by_role("button", name="Close").click()
    expect(dialog).to_be_hidden()

    reload(nb)
    expect(nb.page.locator("#notebooks-toggle")).to_contain_text("Quarterly")
    expect(nb.page.locator(".cell")).to_have_count(1)
    nb.expect_code(nb.cell(0), "SELECT 'in the second notebook' AS s")
    dialog = notebooks_dialog(nb.page)
    dialog.get_by_role("button", name="Open Welcome").click()
    nb.expect_code(nb.cell(0), welcome)
    reload(nb)
    expect(nb.page.locator("#notebooks-toggle")).to_contain_text("Welcome")
    nb.expect_code(nb.cell(0), welcome)
    assert nb.page.title().startswith("Welcome")


