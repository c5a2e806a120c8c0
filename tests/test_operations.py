"""Operating the gateway: health, readiness, metrics, logs, graceful shutdown, replicas, config."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
from websockets.exceptions import ConnectionClosed

from tests.conftest import ROOT, GatewayProcess
from tests.wsclient import of_type, open_client, rows_of

LONG_JOB = "SELECT sum(id % 7) FROM range(0, 200000000000, 1, 4)"


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_health_and_readiness(gateway: GatewayProcess) -> None:
    """/healthz says the process is up; /readyz says Spark answers."""
    assert get(gateway.http_url + "/healthz") == (200, '{"status":"ok"}')
    status, body = get(gateway.http_url + "/readyz")
    assert status == 200 and json.loads(body)["ready"] is True


@pytest.mark.integration
def test_readiness_is_false_without_spark() -> None:
    """/readyz is 503 when the Spark Connect server cannot be reached, /healthz still 200."""
    from spark_gateway.spark_server import free_port

    dead = GatewayProcess(f"sc://127.0.0.1:{free_port()}")
    try:
        assert get(dead.http_url + "/healthz")[0] == 200
        status, body = get(dead.http_url + "/readyz")
        assert status == 503 and json.loads(body)["ready"] is False
    finally:
        dead.stop()


async def test_metrics_count_what_happened(gateway: GatewayProcess) -> None:
    """/metrics reports sessions, executions by status, rows streamed and latency."""
    async with open_client(gateway.ws_url) as client:
        await client.run("SELECT id FROM range(1234)", id="m1", page_size=1000)
        await client.run("SELEC nope", id="m2")
        status, text = get(gateway.http_url + "/metrics")
    assert status == 200
    samples = dict(line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))
    assert float(samples['spark_gateway_executions_total{status="ok"}']) >= 1
    assert float(samples['spark_gateway_executions_total{status="error"}']) >= 1
    assert float(samples['spark_gateway_errors_total{code="spark_error"}']) >= 1
    assert float(samples["spark_gateway_rows_streamed_total"]) >= 1234
    assert float(samples["spark_gateway_sessions"]) >= 1
    assert float(samples["spark_gateway_execution_seconds_count"]) >= 2


async def test_two_replicas_share_a_spark_session(spark_remote: str) -> None:
    """A second gateway attaches to the first one's Spark session by id and sees its temp views."""
    first, second = GatewayProcess(spark_remote), GatewayProcess(spark_remote)
    try:
        async with open_client(first.ws_url) as a:
            await a.run("CREATE TEMP VIEW shared AS SELECT 'from replica one' AS origin", id="v")
            attach = f"{second.ws_url}?spark_session={a.session['spark_session_id']}"
            async with open_client(attach) as b:
                assert b.session["spark_session_id"] == a.session["spark_session_id"]
                assert rows_of(await b.run("SELECT origin FROM shared", id="r")) == [["from replica one"]]
            async with open_client(second.ws_url) as stranger:
                missing = await stranger.run("SELECT origin FROM shared", id="r")
                assert of_type(missing, "error")[0]["error_class"] == "TABLE_OR_VIEW_NOT_FOUND"
            # The owner's session still works after the attached one left.
            assert rows_of(await a.run("SELECT count(*) FROM shared", id="c")) == [[1]]
    finally:
        first.stop()
        second.stop()


async def test_sigterm_drains_sessions_gracefully(spark_remote: str) -> None:
    """On SIGTERM clients are told, running work ends interrupted, sockets close 1001, the process exits."""
    gw = GatewayProcess(spark_remote, "--log-format", "json")
    async with open_client(gw.ws_url) as client:
        await client.execute(LONG_JOB, id="busy")
        await client.recv_until(lambda e: e["type"] == "started")
        gw.process.send_signal(signal.SIGTERM)
        events = await client.recv_until(lambda e: e["type"] == "finished", timeout=30)
        assert of_type(events, "error")[0]["code"] == "shutting_down"
        assert events[-1]["status"] == "interrupted"
        with pytest.raises(ConnectionClosed) as closed:
            await client.recv(timeout=30)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
    assert gw.process.wait(30) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once it is done
    gw.stop()
    lines = [json.loads(line) for line in gw.log_path.read_text().splitlines() if line.startswith("{")]
    finished = [line for line in lines if line.get("execution") == "busy"]
    assert finished and finished[-1]["session"] == client.session["session_id"]


@pytest.mark.integration  # each case starts `spark-gateway serve` (tests/test_config.py checks the same in-process)
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--port", "99999"], "port must be 0..65535"),
        (["--port", "http"], "port: expected a int"),
        (["--remote", "http://spark:15002"], "remote must be a Spark Connect URL"),
        (["--languages", "sql,cobol"], "languages must be"),
    ],
)
def test_bad_settings_fail_at_start_with_a_clear_message(args: list[str], message: str) -> None:
    """Invalid settings stop the gateway before it starts, naming the setting."""
    out = subprocess.run([sys.executable, "-m", "spark_gateway", "serve", *args], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and message in out.stderr


def test_settings_come_from_the_environment() -> None:
    """Every setting has an environment variable, and flags win over it."""
    from argparse import Namespace

    from spark_gateway import config

    env = {"SPARK_GATEWAY_PORT": "9999", "SPARK_GATEWAY_LANGUAGES": "sql", "SPARK_REMOTE": "sc://x:1"}
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        settings = config.from_arguments(Namespace(port="7000"))
    assert (settings.port, settings.languages, settings.remote) == (7000, ("sql",), "sc://x:1")


@pytest.mark.integration
def test_missing_java_is_explained(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Without Java and without --remote, the gateway says what to install instead of a stack trace."""
    out = subprocess.run([sys.executable, "-m", "spark_gateway", "serve"], cwd=ROOT, capture_output=True,
                         text=True, timeout=60, env={"PATH": str(tmp_path), "HOME": str(tmp_path)})
    assert out.returncode == 2 and "Java 17 is needed" in out.stderr
