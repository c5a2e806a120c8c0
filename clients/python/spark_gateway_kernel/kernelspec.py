"""The kernelspec: how Jupyter starts this kernel, written where ``jupyter kernelspec list`` finds it.

The spec holds the gateway's address and the *name* of the environment variable that holds
its token, never the token: kernelspecs are world-readable files, often shared.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

DEFAULT_NAME = "spark-gateway"
DEFAULT_DISPLAY_NAME = "Spark (gateway)"
_LOGO = Path(__file__).with_name("logo-svg.svg")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def spec(*, url: str | None, token_env: str | None, display_name: str = DEFAULT_DISPLAY_NAME,
         max_rows: int | None = None, python: str = sys.executable) -> dict[str, Any]:
    """The ``kernel.json`` content: this Python runs ``-m spark_gateway_kernel start``."""
    if token_env is not None and not _ENV_NAME.fullmatch(token_env):
        raise ValueError(f"--token-env takes the name of an environment variable, not {token_env!r}")
    argv = [python, "-m", "spark_gateway_kernel", "start", "-f", "{connection_file}"]
    if url:
        argv += ["--url", url]
    if token_env:
        argv += ["--token-env", token_env]
    if max_rows:
        argv += ["--max-rows", str(max_rows)]
    return {
        "argv": argv,
        "display_name": display_name,
        "language": "python",
        "interrupt_mode": "message",  # interrupt_request: the kernel asks the gateway to stop Spark's jobs
        "metadata": {"spark_gateway": {"url": url}, "debugger": False},
    }


def install(content: dict[str, Any], *, name: str = DEFAULT_NAME, user: bool = False,
            prefix: str | None = None) -> str:
    """Install the spec as ``name`` (per user, or under ``prefix``); returns the directory written."""
    from jupyter_client.kernelspec import KernelSpecManager

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / name
        folder.mkdir()
        (folder / "kernel.json").write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")
        shutil.copy(_LOGO, folder / _LOGO.name)
        return str(KernelSpecManager().install_kernel_spec(str(folder), kernel_name=name, user=user,
                                                           prefix=prefix))
