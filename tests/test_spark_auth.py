"""Spark Connect servers that require a token: every sc:// URL form, wrong tokens, and the embedded server's own.

The shared test server (conftest's ``spark_server``) is started like the embedded one, with a
random token, so ``spark_remote`` is ``sc://127.0.0.1:P/;token=...``.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
import warnings
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest

from spark_gateway import spark as adapter
from spark_gateway.spark_server import EmbeddedSparkServer
from spark_gateway.spark_url import SparkUrl
from tests.conftest import GatewayProcess
from tests.wsclient import of_type, open_client, rows_of

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def readyz(gateway: GatewayProcess) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(gateway.http_url + "/readyz", timeout=60) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as refused:
        return refused.code, json.load(refused)


def with_params(url: str, **params: str) -> str:
    return str(SparkUrl.parse(url).with_params(**params))


def direct_sql(url: str) -> Any:
    """``SELECT 1`` through pyspark's own client and channel builder, failing within seconds."""
    from pyspark.sql.connect.client.retries import DefaultPolicy
    from pyspark.sql.connect.session import SparkSession

    session = SparkSession.builder.remote(url).create()
    session.client.set_retry_policies([DefaultPolicy(max_retries=2, initial_backoff=100, max_backoff=500)])
    try:
        with warnings.catch_warnings():  # pyspark 4.3 warns "[RETRIES_EXCEEDED]" before it raises
            warnings.simplefilter("ignore")
            return session.sql("SELECT 1 AS one").collect()
    finally:
        session.release_session_on_close = False
        adapter.release_quietly(session, server_side=False)


def gateway_sql(url: str, sql: str) -> Any:
    """``sql`` through the gateway's own connect(), the session released after (no exit hook left)."""
    session = adapter.connect(url)
    try:
        return session.sql(sql).collect()
    finally:
        adapter.release_quietly(session)


# ---------------------------------------------------------------- 1. every URL form


@pytest.mark.parametrize("how", ["--remote", "SPARK_GATEWAY_REMOTE", "SPARK_REMOTE"])
async def test_a_token_url_works_however_it_is_given(spark_server: EmbeddedSparkServer, how: str) -> None:
    """--remote, SPARK_GATEWAY_REMOTE and SPARK_REMOTE, with extra parameters: sessions run SQL, /readyz agrees."""
    token = spark_server.token
    assert token is not None
    forms = {  # a different form each time: parameters before and after the token, a header, no slash
        "--remote": f"sc://127.0.0.1:{spark_server.port}/;token={token}",
        "SPARK_GATEWAY_REMOTE": f"sc://127.0.0.1:{spark_server.port}/;user_agent=gateway%20tests;token={token};"
                                "x-team=data;use_ssl=false",
        "SPARK_REMOTE": f"sc://localhost:{spark_server.port};token={token};grpc_keepalive_time_ms=30000",
    }
    url = forms[how]
    if how == "--remote":
        gateway = GatewayProcess(None, "--remote", url)
    else:
        gateway = GatewayProcess(None, env={how: url})
    try:
        assert readyz(gateway)[0] == 200
        async with open_client(gateway.ws_url) as client:
            events = await client.run("SELECT 40 + 2 AS answer", id="q", timeout=90)
            assert rows_of(events) == [[42]], events
            assert client.session["spark_version"] == gateway_sql(spark_server.url, "SELECT version()")[0][0].split()[0]
        status, body = readyz(gateway)
        assert status == 200 and token not in json.dumps(body) and "[redacted]" in body["spark"]
    finally:
        gateway.stop()
    assert token not in gateway.log_path.read_text(), "the token must never reach the gateway's log"


async def test_a_wrong_token_is_a_typed_error_at_once(spark_server: EmbeddedSparkServer) -> None:
    """A token the server refuses: /readyz 503 and spark_unavailable (UNAUTHENTICATED) within seconds, no hang."""
    gateway = GatewayProcess(with_params(spark_server.url, token="not-the-token"))
    try:
        started = time.monotonic()
        assert readyz(gateway)[0] == 503
        async with open_client(gateway.ws_url) as client:
            events = await client.run("SELECT 1", id="q", timeout=30)
        error = of_type(events, "error")[0]
        assert error["code"] == "spark_unavailable" and error["error_class"] == "UNAUTHENTICATED", error
        assert "token" in error["message"] and "not-the-token" not in error["message"]
        assert time.monotonic() - started < 20
    finally:
        gateway.stop()
    assert "not-the-token" not in gateway.log_path.read_text()


async def test_a_token_to_a_host_name_means_tls_and_fails_fast(spark_server: EmbeddedSparkServer) -> None:
    """A token to a non-loopback name makes pyspark use TLS: against a plain-text server, a typed error and a hint."""
    name = socket.gethostname()
    try:
        resolves_here = socket.gethostbyname(name).startswith("127.")
    except OSError:
        resolves_here = False
    if not resolves_here or name == "localhost":
        pytest.skip("needs a host name other than localhost that resolves to a loopback address")
    gateway = GatewayProcess(f"sc://{name}:{spark_server.port}/;token={spark_server.token}")
    try:
        started = time.monotonic()
        async with open_client(gateway.ws_url) as client:
            events = await client.run("SELECT 1", id="q", timeout=60)
        assert of_type(events, "error")[0]["code"] == "spark_unavailable"
        assert time.monotonic() - started < 45
    finally:
        gateway.stop()
    assert "makes the client use TLS" in gateway.log_path.read_text()


def test_pyspark_alone_needs_the_name_localhost_for_a_plain_text_token(spark_server: EmbeddedSparkServer) -> None:
    """pyspark's rule: a token to 127.0.0.1 attempts TLS (fails), to localhost not; the gateway's works for both."""
    url = spark_server.url
    with pytest.raises(Exception, match="UNAVAILABLE|RETRIES_EXCEEDED"):
        direct_sql(url)
    assert direct_sql(url.replace("127.0.0.1", "localhost"))[0].one == 1
    assert gateway_sql(url, "SELECT 1 AS one")[0].one == 1


# ---------------------------------------------------------------- 2. the embedded server's token


def test_the_embedded_server_refuses_clients_without_its_token(spark_server: EmbeddedSparkServer) -> None:
    """A direct pyspark client without the token, or with a wrong one, is refused at once."""
    base = f"sc://localhost:{spark_server.port}"  # localhost: plain text even with a token
    for url in (base, f"{base}/;token=wrong"):
        started = time.monotonic()
        with pytest.raises(Exception, match="UNAUTHENTICATED") as refused:
            direct_sql(url)
        assert time.monotonic() - started < 10
        assert adapter.is_refused(refused.value)
    assert direct_sql(f"{base}/;token={spark_server.token}")[0].one == 1


def test_the_token_reaches_the_jvm_by_environment_not_command_line(spark_server: EmbeddedSparkServer) -> None:
    """ps shows the JVM's command line to every user: the token is only in its environment."""
    assert spark_server.process is not None and spark_server.token
    pid = spark_server.process.pid  # spark-submit execs java: the JVM
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    assert b"java" in cmdline and spark_server.token.encode() not in cmdline
    assert b"authenticate.token" not in cmdline
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    assert f"SPARK_CONNECT_AUTHENTICATE_TOKEN={spark_server.token}".encode() in environ
    assert spark_server.token not in repr(spark_server)


def test_each_server_gets_its_own_random_token() -> None:
    """Two servers, two secrets; a restart keeps its server's (sessions keep their URL)."""
    first, second = EmbeddedSparkServer(), EmbeddedSparkServer()
    first.environment(), second.environment()
    assert first.token and second.token and first.token != second.token
    before = first.token
    first.environment()
    assert first.token == before


async def test_the_embedded_server_is_closed_to_everyone_but_its_gateway() -> None:
    """A gateway's own Spark requires a token: the gateway runs SQL, a direct client on its port is refused."""
    gateway = GatewayProcess(None, "--driver-memory", "640m", env={"SPARK_REMOTE": None}, ready_timeout=240)
    try:
        with anyio.fail_after(120):  # /readyz is 503 until Spark answers: polled, as a load balancer does
            while (status := await anyio.to_thread.run_sync(readyz, gateway))[0] != 200:  # noqa: ASYNC110
                await anyio.sleep(1)
        spark_url = SparkUrl.parse(status[1]["spark"].replace("[redacted]", "x"))
        assert spark_url.token == "x", "the embedded server's URL carries a token, redacted in /readyz"
        async with open_client(gateway.ws_url) as client:
            assert rows_of(await client.run("SELECT 7 AS n", id="q", timeout=90)) == [[7]]
        with pytest.raises(Exception, match="UNAUTHENTICATED"):
            direct_sql(f"sc://localhost:{spark_url.port}")
    finally:
        gateway.stop()
    assert "token=[redacted]" in gateway.log_path.read_text()
