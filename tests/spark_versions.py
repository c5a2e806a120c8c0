"""Spark Connect servers of every tested version, each from its own pip wheel in its own cached venv.

The gateway keeps one pyspark (its pin); a server of another version runs from
``~/.cache/spark-gateway/servers/pyspark-X.Y.Z`` (``SPARK_GATEWAY_SERVERS`` moves it), a venv
made on first use with ``python -m venv`` and ``pip install pyspark[connect]==X.Y.Z`` (pandas
and pyarrow are for its Python workers, which run UDFs). A venv is complete once its
``.complete`` marker exists; a half-made one is made again. ``SPARK_GATEWAY_TEST_SPARK_VERSIONS``
(comma-separated) narrows the matrix.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyspark

from spark_gateway.spark_server import spark_home, udf_python

# The newest release of each minor version the gateway supports (spark.TESTED_SERVERS).
SERVERS = ("4.0.5", "4.1.4", "4.2.1", "4.3.0")
INSTALL_TIMEOUT = 1800  # seconds; 1.5-4 min each on this machine (the 4.x wheels are sdists of ~450 MB)


def versions() -> tuple[str, ...]:
    chosen = os.environ.get("SPARK_GATEWAY_TEST_SPARK_VERSIONS")
    return tuple(v.strip() for v in chosen.split(",") if v.strip()) if chosen else SERVERS


def cache_dir() -> Path:
    return Path(os.environ.get("SPARK_GATEWAY_SERVERS", Path.home() / ".cache" / "spark-gateway" / "servers"))


def install(version: str) -> tuple[Path, str]:
    """(SPARK_HOME, Python of its workers) of pyspark ``version``: this environment's, or a cached venv."""
    if pyspark.__version__ == version:
        return spark_home(), udf_python()
    venv = cache_dir() / f"pyspark-{version}"
    marker = venv / ".complete"
    if not marker.exists():
        venv.parent.mkdir(parents=True, exist_ok=True)
        with open(venv.parent / f".pyspark-{version}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # two test runs at once make it once
            if not marker.exists():
                _create(venv, version)
                marker.write_text(f"pyspark[connect]=={version}\n")
    python = venv / "bin" / "python"
    home = subprocess.run([str(python), "-c", "import os, pyspark; print(os.path.dirname(pyspark.__file__))"],
                          check=True, capture_output=True, text=True, timeout=120).stdout.strip()
    return Path(home), str(python)


def _create(venv: Path, version: str) -> None:
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    f"pyspark[connect]=={version}"], check=True, timeout=INSTALL_TIMEOUT)
