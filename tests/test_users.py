"""Users Spark can see: --token NAME:SECRET names a user, which is each session's Spark Connect user_id."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator

import anyio
import anyio.to_thread
import pytest
from websockets.exceptions import InvalidStatus

from spark_gateway.spark_server import EmbeddedSparkServer
from spark_gateway.users import DEFAULT_USER
from tests.conftest import GatewayProcess
from tests.wsclient import of_type, open_client, rows_of

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

TOKENS = "alice:alice-s3cret,bob:bob-s3cret,bare-s3cret"


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture(scope="module")
def named(spark_remote: str) -> Iterator[GatewayProcess]:
    """A gateway with two named users and one bare secret, logging JSON lines."""
    process = GatewayProcess(spark_remote, "--token", TOKENS, "--log-format", "json")
    yield process
    process.stop()


def spark_job_tags(server: EmbeddedSparkServer) -> list[str]:
    """Every tag of every job the Spark application ran, from its UI's REST API."""
    base = f"{server.ui_url}/api/v1/applications"
    app = json.load(urllib.request.urlopen(base, timeout=30))[0]["id"]
    jobs = json.load(urllib.request.urlopen(f"{base}/{app}/jobs", timeout=30))
    return [tag for job in jobs for tag in job.get("jobTags", [])]


async def user_id_of(client: object) -> str:
    events = await client.run("spark.client._user_id", id="who", language="python")  # type: ignore[attr-defined]
    return str(of_type(events, "value")[0]["text"]).strip("'")


async def test_each_named_user_is_sparks_user_id(named: GatewayProcess, spark_server: EmbeddedSparkServer) -> None:
    """alice's and bob's sessions reach Spark as user_id alice and bob; Spark's job tags say so."""
    async with open_client(named.ws_url, additional_headers=bearer("alice-s3cret")) as alice, \
            open_client(named.ws_url, additional_headers=bearer("bob-s3cret")) as bob:
        assert await user_id_of(alice) == "alice" and await user_id_of(bob) == "bob"
        for client, name in ((alice, "alice"), (bob, "bob")):
            events = await client.run("SELECT count(*) FROM range(0, 1000, 1, 2)", id=f"job-{name}")
            assert rows_of(events) == [[1000]]
        tags = spark_job_tags(spark_server)
        for client, name in ((alice, "alice"), (bob, "bob")):
            session = client.session["spark_session_id"]
            assert any(f"_User_{name}_Session_{session}_" in tag for tag in tags), (name, tags[-6:])


async def test_bare_secrets_are_the_default_user(named: GatewayProcess) -> None:
    """A secret without a name runs as the default user."""
    async with open_client(named.ws_url, additional_headers=bearer("bare-s3cret")) as client:
        assert await user_id_of(client) == DEFAULT_USER


async def test_without_tokens_the_urls_user_id_is_everyones(spark_remote: str) -> None:
    """An open gateway's sessions run as the user_id of its sc:// URL."""
    gateway = GatewayProcess(f"{spark_remote};user_id=etl-team")
    try:
        async with open_client(gateway.ws_url) as client:
            assert await user_id_of(client) == "etl-team"
    finally:
        gateway.stop()


async def test_users_never_share_a_spark_session(named: GatewayProcess, spark_remote: str) -> None:
    """bob may not attach to alice's Spark session; on another replica that allows it, Spark keeps them apart."""
    async with open_client(named.ws_url, additional_headers=bearer("alice-s3cret")) as alice:
        await alice.run("CREATE TEMP VIEW mine AS SELECT 'alice' AS who", id="v")
        shared = alice.session["spark_session_id"]
        with pytest.raises(InvalidStatus) as refused:
            async with open_client(f"{named.ws_url}?spark_session={shared}", additional_headers=bearer("bob-s3cret")):
                pass
        assert refused.value.response.status_code == 403
        # Another replica knows nothing of alice's session and lets bob attach to its id (replicas of
        # one user share a Spark session this way: test_operations). Spark keys sessions by user too.
        replica = GatewayProcess(spark_remote, "--token", TOKENS)
        try:
            async with open_client(f"{replica.ws_url}?spark_session={shared}",
                                   additional_headers=bearer("bob-s3cret")) as bob:
                assert bob.session["spark_session_id"] == shared
                error = of_type(await bob.run("SELECT who FROM mine", id="b"), "error")[0]
                assert error["error_class"] == "TABLE_OR_VIEW_NOT_FOUND", error
        finally:
            replica.stop()
        assert rows_of(await alice.run("SELECT who FROM mine", id="a")) == [["alice"]]


async def test_logs_and_metrics_carry_the_user(named: GatewayProcess) -> None:
    """JSON log lines of a session name its user; /metrics counts sessions per user."""
    async with open_client(named.ws_url, additional_headers=bearer("alice-s3cret")) as client:
        await client.run("SELECT 1", id="one")
        request = urllib.request.Request(named.http_url + "/metrics", headers=bearer("bob-s3cret"))
        text = await anyio.to_thread.run_sync(lambda: urllib.request.urlopen(request, timeout=30).read().decode())
        session = client.session["session_id"]
    assert 'spark_gateway_user_sessions{user="alice"} ' in text
    assert float(text.split('spark_gateway_user_sessions_opened_total{user="alice"} ')[1].split()[0]) >= 1
    assert f'spark_gateway_user_sessions{{user="{DEFAULT_USER}"}} ' in text
    lines = [json.loads(line) for line in named.log_path.read_text().splitlines() if line.startswith("{")]
    mine = [line for line in lines if line.get("session") == session]
    assert mine and all(line.get("user") == "alice" for line in mine), mine
    assert "alice-s3cret" not in named.log_path.read_text()
