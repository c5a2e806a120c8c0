"""The shape of the code: who may import whom, read from the source with ``ast`` (nothing is imported)."""

from __future__ import annotations

import ast
import importlib.util
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

PACKAGES = ("spark_gateway", "spark_gateway_protocol", "spark_gateway_client")

# The Spark adapter is the gateway's one seam to Spark. spark_server locates the wheel's jars
# with it; sample_data builds its sample views' schemas from pyspark's types, in install(),
# which runs on a session's worker thread.
PYSPARK_IMPORTERS = {"spark_gateway.spark", "spark_gateway.spark_server", "spark_gateway.cluster",
                     "spark_gateway.sample_data"}


def modules(package: str) -> dict[str, Path]:
    """The package's modules (name -> file), found where the installed package lives."""
    spec = importlib.util.find_spec(package)
    assert spec is not None and spec.submodule_search_locations, package
    root = Path(next(iter(spec.submodule_search_locations)))
    return {package if path.stem == "__init__" else f"{package}.{path.stem}": path
            for path in sorted(root.glob("*.py"))}


ALL = {name: path for package in PACKAGES for name, path in modules(package).items()}


def _import_nodes(tree: ast.AST, with_type_checking: bool) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement, at any depth (functions too); ``if TYPE_CHECKING:`` blocks on request."""
    found: list[ast.Import | ast.ImportFrom] = []
    for child in ast.iter_child_nodes(tree):
        if isinstance(child, ast.Import | ast.ImportFrom):
            found.append(child)
        elif with_type_checking or not (isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test)):
            found.extend(_import_nodes(child, with_type_checking))
    return found


def imports_in(name: str, source: str, *, is_package: bool = False, known: Iterable[str] = (),
               with_type_checking: bool = True) -> set[str]:
    """The modules that module ``name`` (its text: ``source``) imports, as absolute names.

    ``known``: the module names that exist, so that ``from . import x`` counts as importing ``x``.
    """
    package = name if is_package else name.rpartition(".")[0]
    known = set(known)
    found: set[str] = set()
    for node in _import_nodes(ast.parse(source), with_type_checking):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
            continue
        base = package.rsplit(".", node.level - 1)[0] if node.level else ""
        origin = ".".join(part for part in (base, node.module or "") if part)
        submodules = {f"{origin}.{alias.name}" for alias in node.names} & known
        found.update(submodules)
        if len(submodules) < len(node.names):  # names defined in ``origin`` itself
            found.add(origin)
    return found


def imports(name: str, *, with_type_checking: bool = True) -> set[str]:
    path = ALL[name]
    return imports_in(name, path.read_text(), is_package=path.stem == "__init__", known=ALL,
                      with_type_checking=with_type_checking)


def find_circles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Circles in a graph of module -> the modules it imports, each as a path that ends where it began."""
    found: list[list[str]] = []
    state: dict[str, str] = {}

    def visit(name: str, path: list[str]) -> None:
        state[name] = "open"
        for other in sorted(graph.get(name, ())):
            if state.get(other) == "open":
                found.append([*path[path.index(other):], name, other] if other in path else [name, other])
            elif other not in state:
                visit(other, [*path, name])
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [])
    return found


def circles(package: str, *, with_type_checking: bool) -> list[list[str]]:
    """Import circles among a package's modules.

    A module's import of its own package does not count: the package is always imported
    first, and ``from . import x`` needs only ``x``.
    """
    names = modules(package).keys()
    return find_circles({
        name: {i for i in imports(name, with_type_checking=with_type_checking)
               if i in names and i != name and not name.startswith(f"{i}.")}
        for name in names})


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_circles(package: str) -> None:
    """No package's modules import each other in a circle (imports that run: TYPE_CHECKING ones never do)."""
    assert circles(package, with_type_checking=False) == []


def test_no_import_circles_in_the_gateway_even_for_type_checking() -> None:
    """The gateway's modules do not name each other in a circle, not even for the type checker."""
    assert circles("spark_gateway", with_type_checking=True) == []


def test_the_packages_are_layered() -> None:
    """The protocol imports neither side; the client never imports the server, nor the server the client."""
    def crosses(name: str, imported: str) -> bool:
        if name.startswith("spark_gateway_protocol"):
            return imported.startswith(("spark_gateway.", "spark_gateway_client"))
        if name.startswith("spark_gateway_client"):
            return imported.startswith("spark_gateway.")
        return imported.startswith("spark_gateway_client")

    assert {(name, i) for name in ALL for i in imports(name) if crosses(name, i)} == set()


def test_only_the_spark_adapter_and_the_launchers_import_pyspark() -> None:
    """pyspark is imported by spark.py (the seam), spark_server.py and cluster.py, and sample_data's install()."""
    importers = {name for name in ALL if any(i == "pyspark" or i.startswith("pyspark.") for i in imports(name))}
    assert "spark_gateway.spark" in importers  # the check does see pyspark imports
    assert importers <= PYSPARK_IMPORTERS, importers - PYSPARK_IMPORTERS


def test_the_checks_are_not_blind() -> None:
    """Relative, nested and TYPE_CHECKING imports are found, and a circle among them is reported."""
    known = {"pkg.a", "pkg.b", "pkg.c"}
    a = "from . import b\ndef f():\n    from .c import thing\n"
    c = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.a import A\n"
    assert imports_in("pkg.a", a, known=known) == {"pkg.b", "pkg.c"}
    assert imports_in("pkg.c", c, known=known) == {"typing", "pkg.a"}
    assert imports_in("pkg.c", c, known=known, with_type_checking=False) == {"typing"}
    assert find_circles({"pkg.a": {"pkg.b", "pkg.c"}, "pkg.b": set(), "pkg.c": {"pkg.a"}}) == [
        ["pkg.a", "pkg.c", "pkg.a"]]
    assert find_circles({"pkg.a": {"pkg.b"}, "pkg.b": set()}) == []
