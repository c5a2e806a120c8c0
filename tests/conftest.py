"""Real parts for the tests: a Spark Connect server from the pip wheel and the real gateway.

Both start once per test run. The gateway runs as its own process (as users run it),
so tests observe it only through its socket, its HTTP routes and its process stats.

Two tiers. A test that starts a JVM, a gateway process, a cluster or a browser is marked
``integration``: explicitly, or here for every test that uses one of ``REAL_PARTS`` (the
fixtures below, directly or through another fixture). ``pytest -m "not integration"`` is the
fast tier: no Java, under a minute. An audit hook keeps the marks honest: a test without the
mark that tries to start one of those processes fails, saying which mark it needs.
"""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from spark_gateway.spark_server import EmbeddedSparkServer, free_port
from tests.fakes.spark import FakeSpark

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"

# Fixtures that start real processes: a test using any of them (even through another fixture) is integration.
REAL_PARTS = frozenset({"spark_server", "spark_remote", "spark", "gateway", "chromium"})
# Marks that mean real processes too.
REAL_MARKS = ("browser", "cluster")


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects on marks
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark ``integration`` every test that uses a real part's fixture or carries a real part's mark."""
    for item in items:
        uses = REAL_PARTS.intersection(getattr(item, "fixturenames", ()))
        if uses or any(item.get_closest_marker(name) for name in REAL_MARKS):
            item.add_marker(pytest.mark.integration)


# ------------------------------------------------------------------ the fast tier stays fast

_fast_test: str | None = None  # the node id of the running test when it is not integration
_fast_tier_run = False  # this run selected the fast tier (-m "not integration")


def pytest_configure(config: pytest.Config) -> None:
    global _fast_tier_run
    _fast_tier_run = "not integration" in (config.getoption("markexpr", "") or "")


def examples(thorough: int) -> int:
    """Examples a property test tries: all of them in a whole run, a fifth in the fast tier (its minute)."""
    return max(50, thorough // 5) if _fast_tier_run else thorough


def _real_process(argv: Sequence[str]) -> str | None:
    """What a process about to start is, if it is a real part the fast tier must not start."""
    names = [os.path.basename(str(arg)) for arg in argv]
    if names and names[0] in ("java", "spark-submit", "spark-class", "chromium", "chrome"):
        return names[0]
    if "serve" in names and ("spark_gateway" in names or "spark-gateway" in names):
        return "a gateway (spark-gateway serve)"
    if any("playwright" in str(arg) for arg in argv[:2]):
        return "a browser (playwright)"
    return None


def refuse_in_fast_tier(what: str) -> None:
    """Raise when the running test is not marked integration: it may not start ``what``."""
    if _fast_test is not None:
        raise RuntimeError(f"{_fast_test} starts {what}: mark it integration (pytest.mark.integration), "
                           "or use the fakes of tests/fakes")


def _refuse_real_processes(event: str, args: tuple[Any, ...]) -> None:
    if event != "subprocess.Popen" or _fast_test is None:
        return
    argv = args[1] if isinstance(args[1], (list, tuple)) else [args[1]]
    what = _real_process([args[0] or argv[0], *argv[1:]] if argv else [args[0]])
    if what is not None:
        refuse_in_fast_tier(what)


sys.addaudithook(_refuse_real_processes)  # cannot be removed; it only acts while a fast test runs


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    """Outside integration tests (their fixtures included), starting a JVM, a gateway or a browser fails."""
    global _fast_test
    _fast_test = None if item.get_closest_marker("integration") else item.nodeid
    try:
        return (yield)
    finally:
        _fast_test = None


@pytest.fixture
def fake_spark(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeSpark]:
    """A scripted Spark behind the ``spark_gateway.spark`` seam (tests/fakes/spark.py): no JVM."""
    fake = FakeSpark().install(monkeypatch)
    # The fake never loses an interrupt: ask again after milliseconds, not seconds (the same code runs).
    from spark_gateway import session
    monkeypatch.setattr(session, "REAP_DELAYS", (0.01, 0.02))
    monkeypatch.setattr(session, "CLOSE_REAP_DELAYS", (0.01, 0.02))
    yield fake
    fake.stop()


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

    context: ssl.SSLContext | None = None  # what checks its certificate, when it serves https

    def __init__(self, remote: str | None, *extra: str, env: dict[str, str | None] | None = None,
                 ready_timeout: float = 60) -> None:
        """``remote`` None: the gateway starts its own embedded Spark Connect server (unless ``extra``
        or ``env`` name one); ``env``: variables to set (a None value removes one)."""
        refuse_in_fast_tier("a gateway process")  # before opening its log: a refusal leaks nothing
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
                urllib.request.urlopen(self.http_url + "/healthz", timeout=1, context=self.context).read()
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


@pytest.fixture(scope="module")
def web_gateway(spark_remote: str) -> Iterator[GatewayProcess]:
    """The real gateway serving the web client, with the sample tables (one per browser test module)."""
    process = GatewayProcess(spark_remote, "--sample-data")
    yield process
    process.stop()


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
