"""The web notebook's .ipynb files (js/ipynb.js) as nbformat and the gateway's Jupyter kernel read them.

Fast tier: ``node`` runs js/ipynb.js (a plain ES module) on cells and files; nbformat validates what it
writes, and the kernel's own cell parser (spark_gateway_kernel.cells) reads its SQL cells. The same
module in a real Chromium, with outputs, is tests/test_web_notebooks.py.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

nbformat = pytest.importorskip("nbformat")

from spark_gateway_kernel import cells as kernel_cells  # noqa: E402
from spark_gateway_kernel import kernelspec  # noqa: E402

IPYNB_JS = Path(__file__).resolve().parent.parent / "clients" / "web" / "js" / "ipynb.js"

# Cells as the notebook hands them to writeIpynb (toJSON()), and files to readIpynb.
SCRIPT = """
import { readFileSync } from "node:fs";
const M = await import(process.argv[1]);
const job = JSON.parse(readFileSync(0, "utf8"));
let out;
try {
  out = job.write
    ? { text: M.writeIpynb(job.write.map((spec) => ({ toJSON: () => spec, run: null })), { title: "t" }) }
    : M.readIpynb(job.read);
} catch (err) {
  out = { error: err.name, kind: err instanceof M.NotebookFileError, message: err.message };
}
console.log(JSON.stringify(out));
"""


def ipynb_js(job: dict[str, Any]) -> dict[str, Any]:
    """Run js/ipynb.js in node on ``job`` ({"write": cells} or {"read": text})."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    done = subprocess.run([node, "--input-type=module", "-e", SCRIPT, IPYNB_JS.as_uri()], input=json.dumps(job),
                          capture_output=True, text=True, timeout=30, check=True)
    return dict(json.loads(done.stdout))


NOTEBOOK_CELLS: list[dict[str, Any]] = [
    {"language": "sql", "code": "SELECT 1 AS one;\nSELECT 'two' AS two", "limit": 7},
    {"language": "python", "code": "df = spark.range(3)\ndf", "limit": None},
    {"language": "markdown", "code": "# Notes\n\nSome *text*."},
    {"language": "sql", "code": "", "limit": None},
]


def test_a_written_notebook_validates_and_its_sql_cells_are_the_kernels_sql_cells() -> None:
    """writeIpynb's file is valid nbformat 4; SQL cells are `%%sql` cells the kernel parses back to the same SQL."""
    text = ipynb_js({"write": NOTEBOOK_CELLS})["text"]
    nb = nbformat.reads(text, as_version=4)
    nbformat.validate(nb)
    assert nb.nbformat == 4 and nb.nbformat_minor == 5
    assert nb.metadata.kernelspec == {"name": kernelspec.DEFAULT_NAME, "display_name": kernelspec.DEFAULT_DISPLAY_NAME,
                                      "language": "python"}
    assert nb.metadata.language_info.name == "python"
    sql, python, markdown, empty = nb.cells
    assert [c.cell_type for c in nb.cells] == ["code", "code", "markdown", "code"]
    assert sql.source == "%%sql\nSELECT 1 AS one;\nSELECT 'two' AS two"
    [part] = kernel_cells.parse(sql.source)
    assert part.language == "sql" and part.code.strip() == NOTEBOOK_CELLS[0]["code"]
    assert sql.metadata.spark_gateway == {"limit": 7}
    assert [p.language for p in kernel_cells.parse(python.source)] == ["python"]
    assert python.source == NOTEBOOK_CELLS[1]["code"] and "spark_gateway" not in python.metadata
    assert markdown.source == "# Notes\n\nSome *text*."
    assert kernel_cells.parse(empty.source) == []  # an empty SQL cell runs nothing, in Jupyter too
    assert len({c.id for c in nb.cells}) == 4


def test_a_notebook_written_by_nbformat_opens_with_every_cell() -> None:
    """readIpynb reads nbformat's file (sources as lists, markdown, raw, `%%sql`, `%%sql -o`) and drops no cell."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Title\n\nText."),
        nbformat.v4.new_code_cell("%%sql\nSELECT id\nFROM range(3)"),
        nbformat.v4.new_code_cell("%%sql -o squares\nSELECT id * id AS sq FROM range(4)"),
        nbformat.v4.new_code_cell("x = 1\nprint(x)", outputs=[nbformat.v4.new_output("stream", text="1\n")]),
        nbformat.v4.new_raw_cell("raw text"),
        nbformat.v4.new_code_cell("%%bash\necho hi"),
    ]
    data = json.loads(nbformat.writes(nb))
    data["cells"][1]["source"] = ["%%sql\n", "SELECT id\n", "FROM range(3)"]  # as Jupyter writes sources
    opened = ipynb_js({"read": json.dumps(data)})
    specs = [(c["language"], c["code"]) for c in opened["cells"]]
    assert specs == [
        ("markdown", "# Title\n\nText."),
        ("sql", "SELECT id\nFROM range(3)"),
        ("sql", "SELECT id * id AS sq FROM range(4)"),
        ("python", "x = 1\nprint(x)"),
        ("raw", "raw text"),
        ("python", "%%bash\necho hi"),  # kept visible: the gateway says what it makes of it when run
    ]
    assert any("outputs" in note for note in opened["notes"])  # not shown, and said so
    assert any(note.startswith("cell 6 has IPython magics") for note in opened["notes"])
    again = nbformat.reads(ipynb_js({"write": opened["cells"]})["text"], as_version=4)
    nbformat.validate(again)
    assert [c.source for c in again.cells] == [c.source for c in nb.cells]  # `%%sql -o squares` written back
    assert [c.id for c in again.cells] == [c.id for c in nb.cells]


@pytest.mark.parametrize(("text", "says"), [
    ("{not json", "not JSON"),
    (json.dumps({"nbformat": 3, "worksheets": []}), "nbformat 3"),
    (json.dumps({"metadata": {}}), "no \"cells\""),
])
def test_a_file_that_is_no_notebook_is_refused_with_a_reason(text: str, says: str) -> None:
    """readIpynb refuses what is not an nbformat 4 notebook with a NotebookFileError saying why."""
    out = ipynb_js({"read": text})
    assert out["kind"] is True and says in out["message"]


MARKDOWN_JS = IPYNB_JS.with_name("markdown.js")


def test_markdown_cells_render_as_text_and_never_as_markup() -> None:
    """js/markdown.js renders headings, emphasis, lists and code, escapes HTML, and keeps only http(s)/mailto links."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    source = ("# Title <script>alert(1)</script>\n\nSome **bold** and _em_ with `a<b`.\n\n- one\n- two\n\n"
              "[ok](https://spark.apache.org) [bad](javascript:alert(1)) <img src=x onerror=alert(1)>")
    done = subprocess.run([node, "--input-type=module", "-e",
                           "const M = await import(process.argv[1]); console.log(M.renderMarkdown(process.argv[2]))",
                           MARKDOWN_JS.as_uri(), source], capture_output=True, text=True, timeout=30, check=True)
    html = done.stdout
    assert "<h1>Title &lt;script&gt;alert(1)&lt;/script&gt;</h1>" in html
    assert "<strong>bold</strong>" in html and "<em>em</em>" in html and "<code>a&lt;b</code>" in html
    assert "<ul><li>one</li><li>two</li></ul>" in html
    assert '<a href="https://spark.apache.org"' in html and "javascript:" not in html.split("[bad]")[0]
    assert "<img" not in html and "<script" not in html
