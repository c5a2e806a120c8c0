"""The two distributions as users get them: wheels built from a clean copy of the tree,
installed into fresh virtual environments.

Done when: both wheels build without packaging warnings and carry their data files, the
server's wheel serves the notebook from a fresh venv, and the light client (no pyspark, no
pyarrow) streams rows from a running gateway. pip may use the package index for the
dependencies; its cache keeps that fast.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
import venv
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from spark_gateway.spark_server import free_port
from tests.conftest import ROOT, GatewayProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

# What the build must not say: a data file setuptools would leave out, or a misused option.
BUILD_WARNINGS = ("BuildBackendWarning", "Package would be ignored", "SetuptoolsDeprecationWarning")
# Not part of a source tree: what a checkout, a venv or a build leaves behind.
NOT_SOURCE = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__",
                                    "test-artifacts", ".*_cache", "spark-warehouse", "metastore_db", ".spark-cluster")

LIGHT_CLIENT = """
import asyncio, importlib.util, json, sys
from spark_gateway_client import connect

async def main(url):
    ids = []
    async with connect(url) as session:
        async for rows in session.sql("SELECT id FROM range(1000)", format="json"):
            ids.extend(row[0] for row in rows)
    missing = [name for name in ("pyspark", "pyarrow") if importlib.util.find_spec(name) is None]
    print(json.dumps({"ids": ids, "missing": missing}))

asyncio.run(main(sys.argv[1]))
"""


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Both wheels, built with pip from a copy of the working tree (nothing of a previous build in it)."""
    base = tmp_path_factory.mktemp("packaging")
    source = base / "source"
    shutil.copytree(ROOT, source, symlinks=True, ignore=NOT_SOURCE)  # the links: web/ and the protocol
    out = base / "wheels"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "-w", str(out),
                            str(source), str(source / "clients" / "python")],
                           capture_output=True, text=True, timeout=600)
    log = build.stdout + build.stderr
    assert build.returncode == 0, log[-4000:]
    for warning in BUILD_WARNINGS:
        assert warning not in log, _around(log, warning)
    built = {path.name.split("-")[0]: path for path in out.glob("*.whl")}
    assert set(built) == {"spark_gateway", "spark_gateway_client"}, built
    return built


def _around(log: str, needle: str) -> str:
    at = log.index(needle)
    return log[max(0, at - 1500):at + 500]


def _names(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())


def test_server_wheel_carries_the_notebook(wheels: dict[str, Path]) -> None:
    """The server wheel holds spark_gateway/web/index.html and every file of clients/web."""
    names = _names(wheels["spark_gateway"])
    web = ROOT / "clients" / "web"
    expected = {f"spark_gateway/web/{path.relative_to(web).as_posix()}" for path in web.rglob("*") if path.is_file()}
    assert "spark_gateway/web/index.html" in expected
    assert expected <= names, sorted(expected - names)
    assert not any(name.startswith(("spark_gateway_client/", "spark_gateway_protocol/")) for name in names)


def test_client_wheel_carries_the_protocol_schemas_and_types(wheels: dict[str, Path]) -> None:
    """The client wheel holds spark_gateway_protocol with py.typed and every JSON Schema."""
    names = _names(wheels["spark_gateway_client"])
    schemas = {f"spark_gateway_protocol/schema/{path.name}" for path in (ROOT / "protocol" / "schema").glob("*.json")}
    assert schemas and schemas <= names, sorted(schemas - names)
    assert {"spark_gateway_protocol/py.typed", "spark_gateway_client/py.typed"} <= names
    assert not any(name.startswith("spark_gateway/") for name in names)


def _fresh_venv(path: Path, *wheels: Path, extra: tuple[str, ...] = ()) -> Path:
    """A new venv (no system site-packages) with ``wheels`` and ``extra`` installed; its python."""
    venv.EnvBuilder(with_pip=False, clear=True).create(path)  # this pip installs into it: no ensurepip
    python = path / "bin" / "python"
    install = subprocess.run([*_pip(python), "install", "--quiet", *map(str, wheels), *extra],
                             capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    return python


def _pip(python: Path) -> list[str]:
    """This environment's pip, acting on the venv of ``python``."""
    return [sys.executable, "-m", "pip", "--python", str(python)]


def _outside_the_tree() -> dict[str, str]:
    """An environment in which nothing of the checkout can be imported by accident."""
    return {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV", "SPARK_REMOTE")}


@pytest.fixture
def served(wheels: dict[str, Path], spark_remote: str, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """``spark-gateway serve --remote`` from a fresh venv with both wheels: (its URL, its python)."""
    python = _fresh_venv(tmp_path / "server-venv", wheels["spark_gateway"], wheels["spark_gateway_client"])
    port = free_port()
    log = tmp_path / "gateway.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([str(python.parent / "spark-gateway"), "serve", "--port", str(port),
                                    "--remote", spark_remote], cwd=tmp_path, env=_outside_the_tree(),
                                   stdout=out, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while "open http://" not in log.read_text():  # printed once it serves
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        yield url, python
    finally:
        process.terminate()
        process.wait(30)


def test_server_wheel_serves_the_notebook_from_a_fresh_venv(served: tuple[str, Path]) -> None:
    """A fresh venv with the two wheels runs `spark-gateway serve`, which serves the notebook at / from the wheel."""
    url, python = served
    with urllib.request.urlopen(url + "/", timeout=30) as response:
        page = response.read().decode()
    assert "<title>Spark notebook" in page and 'src="js/main.js"' in page
    with urllib.request.urlopen(url + "/js/table.js", timeout=30) as response:
        assert response.status == 200
    where = subprocess.run([str(python), "-c", "import spark_gateway; print(spark_gateway.__file__)"],
                           capture_output=True, text=True, env=_outside_the_tree(), cwd=python.parent, timeout=60)
    assert str(python.parents[1]) in where.stdout, where  # the installed copy, not the checkout


def test_light_client_streams_without_pyspark_or_pyarrow(wheels: dict[str, Path], gateway: GatewayProcess,
                                                         tmp_path: Path) -> None:
    """A fresh venv with only the client wheel (websockets, orjson) streams SELECT id FROM range(1000) as JSON."""
    python = _fresh_venv(tmp_path / "client-venv", wheels["spark_gateway_client"])
    listed = subprocess.run([*_pip(python), "list", "--format", "freeze"], capture_output=True, text=True,
                            timeout=60).stdout
    installed = {re.split("==", line)[0].lower() for line in listed.split()}
    assert {"spark-gateway-client", "websockets", "orjson"} <= installed
    assert not installed & {"pyspark", "pyarrow", "pandas", "spark-gateway", "pip"}, installed
    run = subprocess.run([str(python), "-c", LIGHT_CLIENT, gateway.ws_url], capture_output=True, text=True,
                         env=_outside_the_tree(), cwd=tmp_path, timeout=120)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result == {"ids": list(range(1000)), "missing": ["pyspark", "pyarrow"]}
