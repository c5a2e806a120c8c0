"""The Starlette app in-process (Starlette's TestClient), behind the fake Spark: routes, handshake, auth (fast tier).

The app, its lifespan, Lifetime, Connection and Session are the real ones; only Spark is
scripted and the socket is in memory. test_operations.py and test_auth.py check the same
against the real gateway process.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson
import pytest
from starlette.testclient import TestClient, WebSocketDenialResponse
from starlette.websockets import WebSocketDisconnect

from spark_gateway import app as app_module
from spark_gateway.app import Gateway, create_app
from spark_gateway.config import Settings
from spark_gateway_protocol import PROTOCOL_VERSION
from tests.fakes.spark import FakeSpark, Job, table
from tests.wsclient import decode_frame, validate

WS = "ws://127.0.0.1:8765/ws"
HTTP = "http://127.0.0.1:8765"
TOKEN = "s3cret-token"
TEN = table(id=list(range(10)))


@contextmanager
def serving(fake: FakeSpark, **settings: Any) -> Iterator[tuple[TestClient, Gateway]]:
    """The app with its lifespan running, on a gateway whose Spark is ``fake``."""
    gateway = Gateway(Settings(**settings), "sc://fake-spark:15002", spark_version=fake.version)
    with TestClient(create_app(gateway.settings, gateway), base_url=HTTP) as client:
        yield client, gateway


class Ws:
    """The client's side of a TestClient websocket: schema-checked events in, requests out."""

    def __init__(self, session: Any) -> None:
        self.raw = session

    def recv(self) -> dict[str, Any]:
        message = self.raw.receive()
        if message["type"] == "websocket.close":
            raise WebSocketDisconnect(message.get("code", 1000), message.get("reason"))
        return decode_frame(message.get("text") or message["bytes"])

    def send(self, message: dict[str, Any]) -> None:
        validate(message)
        self.raw.send_text(orjson.dumps(message).decode())

    def recv_until(self, kind: str) -> list[dict[str, Any]]:
        got = [self.recv()]
        while got[-1]["type"] != kind:
            got.append(self.recv())
        return got

    def refusal(self) -> tuple[dict[str, Any], int]:
        """A refused connection's only event, and the close code that follows it."""
        event = self.recv()
        with pytest.raises(WebSocketDisconnect) as closed:
            self.recv()
        return event, closed.value.code


@contextmanager
def connect(client: TestClient, query: str = "", **kwargs: Any) -> Iterator[Ws]:
    kwargs.setdefault("subprotocols", [PROTOCOL_VERSION])
    with client.websocket_connect(WS + query, **kwargs) as session:
        yield Ws(session)


# ------------------------------------------------------------------ HTTP routes


def test_healthz_answers_while_the_process_serves(fake_spark: FakeSpark) -> None:
    """GET /healthz: 200 {"status": "ok"}, whatever Spark does."""
    fake_spark.reachable = False
    with serving(fake_spark) as (client, _):
        response = client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_readyz_says_whether_spark_answers(fake_spark: FakeSpark) -> None:
    """GET /readyz: 200 with Spark's version when it answers, 503 when it does not or while draining."""
    with serving(fake_spark) as (client, gateway):
        ready = client.get("/readyz")
        fake_spark.reachable = False
        down = client.get("/readyz")
        fake_spark.reachable = True
        gateway.draining = True
        draining = client.get("/readyz")
    assert ready.status_code == 200 and ready.json() == {"ready": True, "spark": "sc://fake-spark:15002",
                                                         "spark_version": "4.0.1", "draining": False}
    assert down.status_code == 503 and down.json()["ready"] is False
    assert draining.status_code == 503 and draining.json()["draining"] is True


def test_metrics_count_sessions_executions_and_rows(fake_spark: FakeSpark) -> None:
    """GET /metrics: Prometheus text with what the gateway did (sessions, executions by status, rows)."""
    fake_spark.script("SELECT * FROM t", Job(TEN))
    with serving(fake_spark) as (client, _):
        with connect(client) as ws:
            ws.recv()
            ws.send({"type": "execute", "id": "q", "code": "SELECT * FROM t", "language": "sql"})
            ws.recv_until("finished")
            text = client.get("/metrics").text
    assert "spark_gateway_sessions 1\n" in text
    assert "spark_gateway_sessions_opened_total 1\n" in text
    assert 'spark_gateway_executions_total{status="ok"} 1\n' in text
    assert "spark_gateway_rows_streamed_total 10\n" in text
    assert "spark_gateway_execution_seconds_count 1\n" in text


def test_metrics_need_the_token_when_there_is_one(fake_spark: FakeSpark) -> None:
    """With --token, /metrics is 401 (with a Bearer challenge) unless the token is sent; /healthz stays open."""
    with serving(fake_spark, token=TOKEN) as (client, _):
        refused = client.get("/metrics")
        wrong = client.get("/metrics", headers={"Authorization": "Bearer nope"})
        allowed = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        health = client.get("/healthz")
    assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Bearer")
    assert wrong.status_code == 401
    assert allowed.status_code == 200 and health.status_code == 200


def test_an_open_gateway_answers_loopback_host_names_only(fake_spark: FakeSpark) -> None:
    """Without a token, a request naming another host (DNS rebinding) is refused with 403."""
    with serving(fake_spark) as (client, _):
        response = client.get("/metrics", headers={"Host": "evil.example:8765"})
        with pytest.raises(WebSocketDenialResponse) as denied:
            with connect(client, headers={"Host": "evil.example:8765"}):
                pass
    assert response.status_code == 403 and denied.value.status_code == 403


def test_the_notebook_is_served(fake_spark: FakeSpark) -> None:
    """GET / is the web notebook's page."""
    with serving(fake_spark) as (client, _):
        response = client.get("/")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")


# ------------------------------------------------------------------ the websocket


def test_a_session_opens_with_its_session_event_and_runs_queries(fake_spark: FakeSpark) -> None:
    """/ws: the protocol is agreed, the first event is ``session`` (limits, versions), then queries run."""
    fake_spark.script("SELECT * FROM t", Job(TEN))
    with serving(fake_spark, max_queued=7) as (client, gateway), connect(client) as ws:
        info = ws.recv()
        assert ws.raw.accepted_subprotocol == PROTOCOL_VERSION
        ws.send({"type": "execute", "id": "q", "code": "SELECT * FROM t", "language": "sql"})
        events = ws.recv_until("finished")
        assert list(gateway.sessions) == [info["session_id"]]
    assert info["type"] == "session" and info["seq"] == 1 and info["protocol"] == PROTOCOL_VERSION
    assert info["spark_version"] == "4.0.1" and info["limits"]["max_queued"] == 7
    assert [row for e in events if e["type"] == "rows" for row in e["rows"]] == [[i] for i in range(10)]


def test_bad_frames_are_answered_and_the_session_goes_on(fake_spark: FakeSpark) -> None:
    """Malformed JSON, an unknown type, a binary frame: each gets its typed error; the session survives."""
    with serving(fake_spark) as (client, _), connect(client) as ws:
        ws.recv()
        ws.raw.send_text("{not json")
        ws.raw.send_text('{"type": "launch-missiles"}')
        ws.raw.send_bytes(b"\x00\x01")
        errors = [ws.recv() for _ in range(3)]
        ws.send({"type": "ping", "data": "still here"})
        pong = ws.recv()
    assert [e["code"] for e in errors] == ["bad_message", "unknown_type", "bad_message"]
    assert "launch-missiles" in errors[1]["message"]
    assert pong["data"] == "still here"


def test_a_client_sharing_a_spark_session_gets_the_same_one(fake_spark: FakeSpark) -> None:
    """``?spark_session=<id>`` attaches a new gateway session to the first one's Spark session."""
    with serving(fake_spark) as (client, _), connect(client) as first:
        owner = first.recv()
        with connect(client, f"?spark_session={owner['spark_session_id']}") as second:
            joined = second.recv()
    assert joined["spark_session_id"] == owner["spark_session_id"]
    assert joined["session_id"] != owner["session_id"]


@pytest.mark.parametrize(("query", "code"), [
    ("?spark_session=not-a-uuid", "bad_message"),
    ("?resume=not-a-uuid&last_seq=0", "bad_message"),
    (f"?resume={uuid.uuid4()}&last_seq=0", "resume_failed"),
])
def test_bad_session_parameters_are_refused_with_a_typed_error(fake_spark: FakeSpark, query: str, code: str) -> None:
    """A malformed id or an unknown session: one error event (seq 0), then close 1008."""
    with serving(fake_spark) as (client, _), connect(client, query) as ws:
        event, close_code = ws.refusal()
    assert (event["code"], event["seq"], close_code) == (code, 0, 1008)


def test_a_resume_needs_the_last_seq(fake_spark: FakeSpark) -> None:
    """Resuming without ``last_seq`` is refused with resume_failed, saying what is missing."""
    with serving(fake_spark) as (client, _), connect(client) as ws:
        info = ws.recv()
        with connect(client, f"?resume={info['session_id']}") as again:
            event, close_code = again.refusal()
    assert (event["code"], close_code) == ("resume_failed", 1008) and "last_seq" in event["message"]


def test_a_dropped_client_resumes_its_session(fake_spark: FakeSpark) -> None:
    """A connection lost without a close frame (1006) keeps the session; ``?resume=`` continues its stream."""
    with serving(fake_spark) as (client, gateway):
        with connect(client) as ws:
            info = ws.recv()
            ws.raw.close(1006)
        with connect(client, f"?resume={info['session_id']}&last_seq=1") as ws:
            resumed = ws.recv()
            ws.send({"type": "ping", "data": 2})
            pong = ws.recv()
        assert gateway.metrics.resumes_total == 1
    assert (resumed["type"], resumed["session_id"], resumed["next_seq"]) == ("resumed", info["session_id"], 2)
    assert pong["seq"] == 2


def test_the_gateway_refuses_sessions_beyond_max_sessions(fake_spark: FakeSpark) -> None:
    """With max_sessions open, a new one gets limit_exceeded and close 1013 (try again later)."""
    with serving(fake_spark, max_sessions=1) as (client, _), connect(client) as first:
        first.recv()
        with connect(client) as second:
            event, close_code = second.refusal()
    assert (event["code"], close_code) == ("limit_exceeded", 1013)


def test_a_draining_gateway_tells_clients_and_takes_no_new_sessions(fake_spark: FakeSpark) -> None:
    """Draining: open sessions get shutting_down and close 1001; new ones are refused with 1013."""
    with serving(fake_spark) as (client, gateway), connect(client) as ws:
        ws.recv()
        client.portal.call(gateway.drain, 5.0)  # type: ignore[union-attr]
        notice = ws.recv()
        with pytest.raises(WebSocketDisconnect) as closed:
            ws.recv()
        with connect(client) as late:
            event, close_code = late.refusal()
    assert notice["code"] == "shutting_down" and closed.value.code == 1001
    assert (event["code"], close_code) == ("shutting_down", 1013)


# ------------------------------------------------------------------ who may connect


def test_with_a_token_a_websocket_without_it_is_refused_before_the_upgrade(fake_spark: FakeSpark) -> None:
    """No token or a wrong one: HTTP 401 instead of a websocket."""
    with serving(fake_spark, token=TOKEN) as (client, _):
        with pytest.raises(WebSocketDenialResponse) as missing, connect(client):
            pass
        with pytest.raises(WebSocketDenialResponse) as wrong, connect(client, headers={"Authorization": "Bearer x"}):
            pass
    assert missing.value.status_code == wrong.value.status_code == 401
    assert "token" in missing.value.text


def test_a_token_opens_a_session_as_header_or_as_subprotocol(fake_spark: FakeSpark) -> None:
    """``Authorization: Bearer`` (programs) and ``token.<token>`` in the subprotocols (browsers) both work."""
    with serving(fake_spark, token=TOKEN) as (client, _):
        with connect(client, headers={"Authorization": f"Bearer {TOKEN}"}) as ws:
            assert ws.recv()["type"] == "session"
        with connect(client, subprotocols=[PROTOCOL_VERSION, f"token.{TOKEN}"]) as ws:
            assert ws.recv()["type"] == "session"
            assert ws.raw.accepted_subprotocol == PROTOCOL_VERSION, "the token is never echoed"


def test_browsers_from_other_origins_are_refused(fake_spark: FakeSpark) -> None:
    """A foreign Origin is 403; the gateway's own origin and listed ones are let in."""
    with serving(fake_spark, allowed_origins=("https://notebook.example",)) as (client, _):
        with pytest.raises(WebSocketDenialResponse) as foreign:
            with connect(client, headers={"Origin": "https://evil.example"}):
                pass
        with connect(client, headers={"Origin": HTTP}) as ws:
            assert ws.recv()["type"] == "session"
        with connect(client, headers={"Origin": "https://notebook.example"}) as ws:
            assert ws.recv()["type"] == "session"
    assert foreign.value.status_code == 403


def test_another_credentials_spark_session_cannot_be_attached(fake_spark: FakeSpark) -> None:
    """Attaching to a Spark session opened with another token is 403."""
    with serving(fake_spark, token=f"{TOKEN},other-token") as (client, _):
        with connect(client, headers={"Authorization": f"Bearer {TOKEN}"}) as owner:
            spark_session = owner.recv()["spark_session_id"]
            with pytest.raises(WebSocketDenialResponse) as denied:
                with connect(client, f"?spark_session={spark_session}",
                             headers={"Authorization": "Bearer other-token"}):
                    pass
    assert denied.value.status_code == 403


# ------------------------------------------------------------------ Spark at start


def test_the_version_probe_asks_spark_and_gives_up_quietly(fake_spark: FakeSpark) -> None:
    """probe_version: Spark's version when it answers; None (and a warning) once patience runs out."""
    assert app_module.probe_version("sc://fake", patience=1) == "4.0.1"
    fake_spark.reachable = False
    assert app_module.probe_version("sc://fake", patience=0) is None
