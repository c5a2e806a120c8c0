"""Real parts for the tests: a Spark Connect server from the pip wheel and the real gateway.

Both start once per test run. The gateway runs as its own process (as users run it),
so tests observe it only through its socket, its HTTP routes and its process stats.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from spark_gateway.spark_server import EmbeddedSparkServer, free_port

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"


@pytest.fixture(scope="session")
def spark_server() -> Iterator[EmbeddedSparkServer]:
    """One real Spark Connect server (local[2]) for the whole run."""
    server = EmbeddedSparkServer(master="local[2]", driver_memory="2g", max_result_size="1g", ui=True)
    server.start()
    running_jobs(server)  # the UI's REST API is slow on first use; warm it before tests time it
    yield server
    server.stop()


@pytest.fixture(scope="session")
def spark_remote(spark_server: EmbeddedSparkServer) -> str:
    """The server's sc:// URL, its token included (the server refuses clients without it)."""
    return spark_server.url


@pytest.fixture(scope="session")
def spark(spark_remote: str):  # type: ignore[no-untyped-def]
    """A direct pyspark Connect session, to compare the gateway with Spark's own answers."""
    from spark_gateway import spark as adapter

    session = adapter.connect(spark_remote)
    yield session
    session.stop()


def _gateway_env(remote: str | None) -> dict[str, str]:
    """This process's environment, with the remote (its token stays off the command line, which ps
    shows); without a remote, no SPARK_REMOTE either (tests' own clients set it)."""
    env = {**os.environ}
    env.pop("SPARK_GATEWAY_REMOTE", None)
    if remote is None:
        env.pop("SPARK_REMOTE", None)
    else:
        env["SPARK_GATEWAY_REMOTE"] = remote
    return env


class GatewayProcess:
    """A running ``spark-gateway serve`` process."""

    def __init__(self, remote: str | None, *extra: str, env: dict[str, str | None] | None = None,
                 ready_timeout: float = 60) -> None:
        """``remote`` None: the gateway starts its own embedded Spark Connect server (unless ``extra``
        or ``env`` name one); ``env``: variables to set (a None value removes one)."""
        self.port = free_port()
        self.log_path = ARTIFACTS / f"gateway-{self.port}.log"
        ARTIFACTS.mkdir(exist_ok=True)
        self._log = open(self.log_path, "wb")
        environment = _gateway_env(remote)
        for name, value in (env or {}).items():
            if value is None:
                environment.pop(name, None)
            else:
                environment[name] = value
        self.process = subprocess.Popen(
            [sys.executable, "-m", "spark_gateway", "serve", "--port", str(self.port),
             "--log-level", "info", *extra],
            cwd=ROOT, stdout=self._log, stderr=subprocess.STDOUT, env=environment,
        )
        try:
            self.wait_ready(ready_timeout)
        except BaseException:
            self.stop()  # nobody else holds it yet: it (and its embedded JVM) must not outlive the test
            raise

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gateway exited: {self.log_path.read_text()}")
            try:
                urllib.request.urlopen(self.http_url + "/healthz", timeout=1).read()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("gateway did not become ready")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()


@pytest.fixture(scope="session")
def gateway(spark_remote: str) -> Iterator[GatewayProcess]:
    """The real gateway, talking to the real Spark Connect server."""
    process = GatewayProcess(spark_remote)
    yield process
    process.stop()


CHROMIUM = Path("/usr/bin/chromium")  # Debian's package; never `playwright install`
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


@pytest.fixture(scope="module")
def chromium():  # type: ignore[no-untyped-def]
    """A real headless Chromium driven by Playwright (one per test module)."""
    playwright_api = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    with playwright_api.sync_playwright() as p:
        instance = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield instance
        instance.close()


def running_jobs(server: EmbeddedSparkServer) -> list[dict]:
    """Jobs, and tasks still active, that Spark itself reports (from its UI's REST API)."""
    import json

    base = f"{server.ui_url}/api/v1/applications"
    apps = json.load(urllib.request.urlopen(base, timeout=30))
    app = f"{base}/{apps[0]['id']}"
    jobs = list(json.load(urllib.request.urlopen(f"{app}/jobs?status=running", timeout=30)))
    executors = json.load(urllib.request.urlopen(f"{app}/executors", timeout=30))
    busy = [{"executor": e["id"], "activeTasks": e["activeTasks"]} for e in executors if e["activeTasks"]]
    return jobs + busy
