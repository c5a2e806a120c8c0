"""The notebook's vendored bundles (the editor, codemirror.js; the charts, plot.js): each is what
scripts/build-vendor.sh makes from the lockfile, exports what the page imports, and the page loads
nothing from outside."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
WEB = ROOT / "clients" / "web"
VENDOR = WEB / "vendor"
IMPORT_FROM_BUNDLE = re.compile(r"import\s*\{([^}]*)\}\s*from\s*\"\.\./vendor/codemirror\.js\"", re.S)
IMPORT_PLOT = re.compile(r"import\s*\*\s*as\s*(\w+)\s*from\s*\"\.\./vendor/plot\.js\"")
BUNDLES = ("codemirror.js", "plot.js")


def bundle_exports(name: str) -> set[str]:
    """The names vendor/``name`` exports, as node loads it."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    script = "const m = await import(process.argv[1]); console.log(JSON.stringify(Object.keys(m)));"
    out = subprocess.run(
        [node, "--input-type=module", "-e", script, (VENDOR / name).as_uri()],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return set(json.loads(out.stdout))


def test_the_bundle_exports_every_name_the_page_imports_from_it() -> None:
    """Each name a module imports from vendor/codemirror.js is among the bundle's exports (node loads it)."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    wanted = {
        name.strip().split(" as ")[0]
        for path in (WEB / "js").glob("*.js")
        for group in IMPORT_FROM_BUNDLE.findall(path.read_text())
        for name in group.split(",")
        if name.strip()
    }
    assert {"EditorView", "autocompletion", "sql", "python"} <= wanted
    script = "const m = await import(process.argv[1]); console.log(JSON.stringify(Object.keys(m)));"
    out = subprocess.run(
        [node, "--input-type=module", "-e", script, (VENDOR / "codemirror.js").as_uri()],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert wanted <= set(json.loads(out.stdout)), sorted(wanted - set(json.loads(out.stdout)))


def test_the_chart_bundle_exports_every_name_the_chart_uses() -> None:
    """chart.js uses Plot.<name> of vendor/plot.js: each is among the bundle's exports; only chart.js imports it."""
    importers = [p.name for p in (WEB / "js").glob("*.js") if "vendor/plot.js" in p.read_text()]
    assert importers == ["chart.js"], importers  # table.js loads chart.js (and so Plot) only for a Chart view
    text = (WEB / "js" / "chart.js").read_text()
    [alias] = IMPORT_PLOT.findall(text)
    used = set(re.findall(rf"\b{alias}\.(\w+)", text))
    assert {"plot", "barY", "dot"} <= used
    assert used <= bundle_exports("plot.js"), sorted(used - bundle_exports("plot.js"))
    table = (WEB / "js" / "table.js").read_text()
    assert 'import("./chart.js")' in table and not re.search(r"^import .*chart\.js", table, re.M)


def test_the_bundles_import_nothing() -> None:
    """Each bundle is whole: no import of another module, from anywhere."""
    for name in BUNDLES:
        text = (VENDOR / name).read_text()
        found = re.search(r"""(\bfrom\s*|\bimport\s*\(\s*)["'`](\.{0,2}/|https?:|@?[a-z][\w.-]*/?[\w.-]*["'`])""", text)
        assert not found, (name, found and text[found.start() - 40 : found.end() + 40])


def test_the_page_loads_nothing_from_another_origin() -> None:
    """No module imports, and the page links, nothing by URL: every script and style is one of the notebook's files."""
    remote = re.compile(r"""(from\s*|import\s*\(\s*|src=|href=)["'](https?:)?//""")
    found = [
        f"{path.relative_to(WEB)}:{n}"
        for path in [WEB / "index.html", *(WEB / "js").glob("*.js")]
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if remote.search(line)
    ]
    assert not found, found


@pytest.mark.integration
@pytest.mark.timeout(600)
def test_the_bundle_is_rebuilt_byte_for_byte_from_the_lockfile(tmp_path: Path) -> None:
    """scripts/build-vendor.sh (npm ci from the registry, esbuild) remakes both bundles and LICENSES.txt exactly."""
    if shutil.which("npm") is None:
        pytest.skip("npm is not installed")
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "build-vendor.sh", tmp_path / "scripts")
    vendor = tmp_path / "clients" / "web" / "vendor"
    vendor.mkdir(parents=True)
    for name in ("package.json", "package-lock.json", "codemirror-entry.js", "plot-entry.js"):
        shutil.copy(VENDOR / name, vendor)
    build = subprocess.run(
        ["bash", str(tmp_path / "scripts" / "build-vendor.sh")], capture_output=True, text=True, timeout=540
    )
    assert build.returncode == 0, build.stdout[-2000:] + build.stderr[-2000:]
    for name in (*BUNDLES, "LICENSES.txt"):
        assert (vendor / name).read_bytes() == (VENDOR / name).read_bytes(), f"{name} differs from its rebuild"
    licences = (VENDOR / "LICENSES.txt").read_text()
    for package in json.loads((VENDOR / "package.json").read_text())["dependencies"]:
        assert f"\n{package} " in licences, f"{package} has no licence in LICENSES.txt"
