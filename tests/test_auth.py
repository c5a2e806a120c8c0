"""Authentication and authorization: tokens, Origin, Host, session ownership (SECURITY.md).

Against the real gateway process over real sockets; the pure policy functions of
``spark_gateway.auth`` are checked directly first. The browser flow (``#token=`` / ``?token=``
moved into sessionStorage) runs in Debian's Chromium.
"""

from __future__ import annotations

import re
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from spark_gateway import auth, config
from spark_gateway_protocol import PROTOCOL_VERSION
from tests.conftest import GatewayProcess
from tests.wsclient import Client, open_client, rows_of

TOKEN = "s3cret"
OTHER_TOKEN = "0ther-s3cret"  # a second user's credential on the same gateway
LISTED_ORIGIN = "https://notebook.example.com"


@pytest.fixture(scope="module")
def token_gateway(spark_remote: str) -> Iterator[GatewayProcess]:
    """A loopback gateway with two tokens (two credentials) and one listed browser origin."""
    process = GatewayProcess(spark_remote, "--token", f"{TOKEN},{OTHER_TOKEN}",
                             "--allowed-origins", LISTED_ORIGIN)
    yield process
    process.stop()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def refused_status(url: str, **kwargs: object) -> int:
    """The HTTP status with which the gateway refuses this websocket handshake."""
    with pytest.raises(InvalidStatus) as refused:
        async with open_client(url, **kwargs):
            pass
    return refused.value.response.status_code


def raw_handshake(port: int, headers: dict[str, str], path: str = "/ws") -> tuple[int, str]:
    """Send a websocket upgrade with exactly these headers (Host included); (status, response head)."""
    lines = [f"GET {path} HTTP/1.1", "Upgrade: websocket", "Connection: Upgrade",
             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13",
             *(f"{k}: {v}" for k, v in headers.items())]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(4096)
            if not chunk:
                break
            head += chunk
    text = head.decode("latin-1")
    return int(text.split(" ", 2)[1]), text


def http_status(url: str, headers: dict[str, str] | None = None) -> int:
    try:
        request = urllib.request.Request(url, headers=headers or {})
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


async def one_query(client: Client) -> None:
    events = await client.run("SELECT 41 + 1 AS answer", id="q")
    assert rows_of(events) == [[42]] and events[-1]["status"] == "ok"


# ------------------------------------------------------------------ the policy, pure


def test_loopback_addresses() -> None:
    """127.0.0.0/8, ::1 and localhost are loopback; wildcard and other addresses are not."""
    for host in ("127.0.0.1", "127.8.9.10", "::1", "[::1]", "localhost", "LOCALHOST."):
        assert auth.is_loopback(host), host
    for host in ("0.0.0.0", "::", "", "192.168.1.10", "example.com", "localhost.example.com"):
        assert not auth.is_loopback(host), host
    assert not auth.token_required("127.0.0.1", None)
    assert auth.token_required("127.0.0.1", "t") and auth.token_required("0.0.0.0", None)


def test_origin_rules() -> None:
    """Same origin means Origin's host:port equals Host (default ports included); listed ones pass."""
    listed = auth.parse_allowed_origins([LISTED_ORIGIN])
    assert auth.origin_allowed(None, "127.0.0.1:8765", listed)  # not a browser
    assert auth.origin_allowed("http://127.0.0.1:8765", "127.0.0.1:8765", listed)
    assert auth.origin_allowed("https://gw.example.com", "gw.example.com", listed)
    assert auth.origin_allowed("https://GW.example.com:443", "gw.example.com", listed)
    assert auth.origin_allowed("https://notebook.example.com:443", "127.0.0.1:1", listed)
    assert not auth.origin_allowed("http://127.0.0.1:8766", "127.0.0.1:8765", listed)
    assert not auth.origin_allowed("http://evil.example", "127.0.0.1:8765", listed)
    assert not auth.origin_allowed("null", "127.0.0.1:8765", listed)
    assert not auth.origin_allowed("http://localhost:8765", "127.0.0.1:8765", listed)
    with pytest.raises(ValueError):
        auth.parse_allowed_origins(["notebook.example.com"])


def test_token_matching_and_credentials() -> None:
    """Bearer and subprotocol forms are read; matching yields a fingerprint, never the token."""
    assert auth.bearer_token("Bearer abc") == "abc" and auth.bearer_token("bearer  abc ") == "abc"
    assert auth.bearer_token("Basic abc") is None and auth.bearer_token("Bearer ") is None
    assert auth.subprotocol_token([PROTOCOL_VERSION, "token.abc"]) == "abc"
    assert auth.subprotocol_token([PROTOCOL_VERSION]) is None
    fp = auth.match_token("abc", ("zzz", "abc"))
    assert fp == auth.fingerprint("abc") and "abc" not in fp
    assert auth.match_token("ab", ("abc",)) is None and auth.match_token(None, ("abc",)) is None
    with pytest.raises(ValueError):
        auth.parse_tokens("good,has space")


def test_owners() -> None:
    """An id belongs to its first claimant; a live session on a Spark session also counts."""
    owners = auth.Owners()
    owners.claim("spark-1", "alice")
    owners.claim("spark-1", "bob")  # no takeover
    assert owners.owner_of("spark-1") == "alice"
    assert owners.same_owner("spark-1", "alice") and not owners.same_owner("spark-1", "bob")
    assert owners.same_owner("unknown", "bob") and not owners.is_owner("unknown", "bob")
    assert owners.is_owner("spark-1", "alice") and not owners.is_owner("spark-1", "bob")
    owners.claim("session-b", "bob")
    assert not auth.may_attach(owners, [("session-b", "spark-2")], "spark-2", "alice")
    assert auth.may_attach(owners, [("session-b", "spark-2")], "spark-2", "bob")


def test_log_redaction() -> None:
    """Tokens in logged URLs and configured tokens are replaced before output."""
    import logging

    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "GET %s HTTP/1.1" %d',
                               ("127.0.0.1:1", "/?ws=x&token=abc123&y=1", 200), None)
    auth.RedactTokens(["verysecrettoken"]).filter(record)
    assert "abc123" not in record.getMessage() and "token=[redacted]&y=1" in record.getMessage()
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "said %s", ("verysecrettoken",), None)
    auth.RedactTokens(["verysecrettoken"]).filter(record)
    assert record.getMessage() == "said [redacted]"



def test_a_token_is_generated_only_when_required_and_missing() -> None:
    """Non-loopback without --token: a fresh random token; loopback, or a token given: none generated."""
    from spark_gateway.config import Settings

    settings, generated = auth.ensure_token(Settings(host="0.0.0.0"))
    assert generated is not None and settings.token == generated and config.TOKEN_CHARS.fullmatch(generated)
    assert auth.ensure_token(Settings(host="0.0.0.0"))[1] != generated
    assert auth.ensure_token(Settings()) == (Settings(), None)
    assert auth.ensure_token(Settings(host="0.0.0.0", token="mine")) == (Settings(host="0.0.0.0", token="mine"), None)


def test_the_start_banner_shows_a_generated_token_only() -> None:
    """The banner gives the URL to open: with #token= for a generated token, a placeholder for the operator's."""
    from spark_gateway.config import Settings

    generated = auth.banner(Settings(host="0.0.0.0", token="abc"), "abc")
    assert "http://localhost:8765/#token=abc" in generated[0] and "Authorization: Bearer" in generated[1]
    own = auth.banner(Settings(token="mine"), None)
    assert "#token=<your token>" in own[0] and "mine" not in "".join(own)
    assert auth.banner(Settings(host="::1"), None) == ["spark-gateway: open http://[::1]:8765/  "
                                                      "(websocket ws://[::1]:8765/ws)"]


def test_decisions_for_programs_and_browsers() -> None:
    """Without browser checks only the credential counts; a gateway with no tokens admits anonymous loopback."""
    open_policy = auth.Policy(required=False, tokens=(), allowed_origins=frozenset())
    assert auth.decide(open_policy, headers={"host": "127.0.0.1:8765"}) == auth.Decision(0, auth.ANONYMOUS)
    assert auth.decide(open_policy, headers={"host": "gw.example"}).status == 403
    token_policy = auth.Policy(required=True, tokens=("t0k",), allowed_origins=frozenset())
    allowed = auth.decide(token_policy, headers={"authorization": "Bearer t0k", "origin": "http://evil.example"},
                          browser_checks=False)
    assert allowed.status == 0 and allowed.credential == auth.fingerprint("t0k")
    assert auth.decide(token_policy, headers={"host": "x", "authorization": "Bearer no"}).reason == "invalid token"
    assert auth.split_host("[::1]:80", 0) == ("::1", 80) and auth.split_host("", 80) is None
    assert not auth.host_is_loopback(None) and auth.host_is_loopback("localhost:1")


def test_log_filters_redact_the_configured_tokens_in_uvicorns_logs() -> None:
    """install_log_filters puts the token redaction on uvicorn's loggers and the root handlers."""
    import logging

    from spark_gateway.config import Settings

    targets: list[logging.Filterer] = [logging.getLogger(n) for n in ("uvicorn", "uvicorn.access", "uvicorn.error")]
    targets += logging.getLogger().handlers
    before = [list(target.filters) for target in targets]
    try:
        auth.install_log_filters(Settings(token="verysecrettoken"))
        record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, "got %s", ("verysecrettoken",), None)
        assert logging.getLogger("uvicorn.access").filter(record) and record.getMessage() == "got [redacted]"
    finally:
        for target, filters in zip(targets, before, strict=True):
            target.filters[:] = filters


async def test_uvicorns_spurious_error_after_a_denial_is_dropped_for_that_connection_only() -> None:
    """After admit() denied a websocket with HTTP 401, QuietDenials drops uvicorn's 'handshake' error in its task."""
    import logging
    from collections.abc import MutableMapping
    from types import SimpleNamespace
    from typing import Any

    from starlette.websockets import WebSocket

    from spark_gateway.config import Settings

    spurious = logging.LogRecord("uvicorn.error", logging.ERROR, __file__, 1,
                                 "ASGI callable returned without completing handshake.", (), None)
    assert auth.QuietDenials().filter(spurious), "kept where nothing was denied"
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "websocket.connect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(dict(message))

    scope = {"type": "websocket", "path": "/ws", "headers": [(b"host", b"127.0.0.1")], "query_string": b"",
             "extensions": {"websocket.http.response": {}}, "client": ("127.0.0.1", 1)}
    gateway = SimpleNamespace(settings=Settings(token=TOKEN), sessions={}, owners=auth.Owners())
    assert await auth.admit(WebSocket(scope, receive, send), gateway, None) is None
    assert sent[0]["type"] == "websocket.http.response.start" and sent[0]["status"] == 401
    assert not auth.QuietDenials().filter(spurious)

# ------------------------------------------------------------------ the real gateway


async def test_missing_token_is_401(token_gateway: GatewayProcess) -> None:
    """No credential: refused with 401 and a Bearer challenge before the upgrade."""
    assert await refused_status(token_gateway.ws_url) == 401
    status, head = raw_handshake(token_gateway.port, {"Host": f"127.0.0.1:{token_gateway.port}"})
    assert status == 401 and 'www-authenticate: bearer realm="spark-gateway"' in head.lower()
    assert head.lower().count("content-length:") == 1 and "upgrade: websocket" not in head.lower()


async def test_wrong_token_is_401(token_gateway: GatewayProcess) -> None:
    """A wrong token, as header or subprotocol entry, or a prefix of the right one: 401."""
    assert await refused_status(token_gateway.ws_url, additional_headers=bearer("wrong")) == 401
    assert await refused_status(token_gateway.ws_url, additional_headers=bearer(TOKEN[:-1])) == 401
    with pytest.raises(InvalidStatus) as refused:
        async with connect(token_gateway.ws_url, subprotocols=[PROTOCOL_VERSION, "token.wrong"]):
            pass
    assert refused.value.response.status_code == 401


async def test_bearer_header_opens_a_working_session(token_gateway: GatewayProcess) -> None:
    """The right token in Authorization: Bearer gives a session that runs queries."""
    async with open_client(token_gateway.ws_url, additional_headers=bearer(TOKEN)) as client:
        assert client.ws.subprotocol == PROTOCOL_VERSION
        await one_query(client)


async def test_subprotocol_token_works_and_answers_the_protocol(token_gateway: GatewayProcess) -> None:
    """The token as a `token.<token>` subprotocol entry works; the gateway answers spark-gateway.v1."""
    async with connect(token_gateway.ws_url, subprotocols=[PROTOCOL_VERSION, f"token.{OTHER_TOKEN}"],
                       max_size=None) as ws:
        assert ws.subprotocol == PROTOCOL_VERSION
        assert ws.response.headers["Sec-WebSocket-Protocol"] == PROTOCOL_VERSION
        client = Client(ws)
        client.session = await client.recv()
        assert client.session["type"] == "session"
        await one_query(client)


async def test_foreign_origin_is_403(token_gateway: GatewayProcess) -> None:
    """A page from another origin is refused with 403 even with the right token (CSWSH)."""
    for origin in ("https://evil.example", f"http://127.0.0.1:{token_gateway.port + 1}", "null"):
        status = await refused_status(token_gateway.ws_url, origin=origin, additional_headers=bearer(TOKEN))
        assert status == 403, origin


async def test_same_origin_is_accepted(token_gateway: GatewayProcess) -> None:
    """A page served by the gateway itself (Origin host:port equal to Host) connects."""
    async with open_client(token_gateway.ws_url, origin=token_gateway.http_url,
                           additional_headers=bearer(TOKEN)) as client:
        assert client.session["protocol"] == PROTOCOL_VERSION


async def test_listed_origin_is_accepted(token_gateway: GatewayProcess) -> None:
    """An origin listed in --allowed-origins connects, but still needs the token."""
    async with open_client(token_gateway.ws_url, origin=LISTED_ORIGIN,
                           additional_headers=bearer(TOKEN)) as client:
        assert client.session["protocol"] == PROTOCOL_VERSION
    assert await refused_status(token_gateway.ws_url, origin=LISTED_ORIGIN) == 401


async def test_attach_with_another_credential_is_403(token_gateway: GatewayProcess) -> None:
    """Another credential cannot attach to a session's Spark session; the same credential can."""
    async with open_client(token_gateway.ws_url, additional_headers=bearer(TOKEN)) as owner:
        spark_id = owner.session["spark_session_id"]
        await owner.run("CREATE OR REPLACE TEMP VIEW mine AS SELECT 7 AS x", id="v")
        attach = f"{token_gateway.ws_url}?spark_session={spark_id}"
        assert await refused_status(attach, additional_headers=bearer(OTHER_TOKEN)) == 403
        async with open_client(attach, additional_headers=bearer(TOKEN)) as same:
            assert same.session["spark_session_id"] == spark_id
            assert rows_of(await same.run("SELECT x FROM mine", id="r")) == [[7]]
        # the owner is unaffected by the refused attempt
        assert rows_of(await owner.run("SELECT x FROM mine", id="r")) == [[7]]


async def test_resume_with_another_credential_is_403(token_gateway: GatewayProcess) -> None:
    """Only the credential that opened a session may resume it (and so take it over)."""
    async with open_client(token_gateway.ws_url, additional_headers=bearer(TOKEN)) as owner:
        session_id = owner.session["session_id"]
        resume = f"{token_gateway.ws_url}?resume={session_id}&last_seq=1"
        assert await refused_status(resume, additional_headers=bearer(OTHER_TOKEN)) == 403
        assert await refused_status(resume) == 401
        await one_query(owner)  # not taken over: the owner's connection carries on


async def test_metrics_needs_the_token_health_does_not(token_gateway: GatewayProcess) -> None:
    """/metrics answers 401 without the bearer token; /healthz and /readyz stay open."""
    base = token_gateway.http_url
    assert http_status(base + "/metrics") == 401
    assert http_status(base + "/metrics", bearer("wrong")) == 401
    assert http_status(base + "/metrics", bearer(TOKEN)) == 200
    assert http_status(base + "/healthz") == 200
    assert http_status(base + "/readyz") == 200


async def test_open_loopback_gateway_refuses_foreign_hosts_and_origins(gateway: GatewayProcess) -> None:
    """Without a token: loopback host names only (DNS rebinding), same origin only (CSWSH)."""
    port = gateway.port
    assert raw_handshake(port, {"Host": f"127.0.0.1:{port}"})[0] == 101
    assert raw_handshake(port, {"Host": f"localhost:{port}", "Origin": f"http://localhost:{port}"})[0] == 101
    assert raw_handshake(port, {"Host": f"attacker.example:{port}",
                                "Origin": f"http://attacker.example:{port}"})[0] == 403
    assert raw_handshake(port, {"Host": f"127.0.0.1:{port}", "Origin": "https://evil.example"})[0] == 403
    assert await refused_status(gateway.ws_url, origin="https://evil.example") == 403
    async with open_client(gateway.ws_url, origin=gateway.http_url) as client:
        assert client.session["type"] == "session"
    assert http_status(gateway.http_url + "/metrics") == 200  # open gateway, loopback: as before


async def test_token_never_in_the_log(token_gateway: GatewayProcess) -> None:
    """Neither token appears in the gateway's log, whatever way it was sent (even ?token= on the page)."""
    async with open_client(token_gateway.ws_url, additional_headers=bearer(TOKEN)):
        pass
    await refused_status(token_gateway.ws_url, additional_headers=bearer(TOKEN + "x"))
    assert http_status(f"{token_gateway.http_url}/?token={TOKEN}&x=1") == 200
    assert http_status(f"{token_gateway.http_url}/metrics", bearer(OTHER_TOKEN)) == 200
    text = wait_for_log(token_gateway.log_path, "GET /?token=[redacted]&x=1")
    assert TOKEN not in text and OTHER_TOKEN not in text
    assert "websocket refused with 401" in text
    assert "without completing handshake" not in text  # uvicorn's spurious error after a denial: filtered


def wait_for_log(path: Path, needle: str, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while True:
        text = path.read_text(errors="replace")
        if needle in text or time.monotonic() > deadline:
            assert needle in text, f"{needle!r} not in the log:\n{text[-3000:]}"
            return text
        time.sleep(0.1)


async def test_token_generated_and_printed_on_a_non_loopback_address(spark_remote: str) -> None:
    """--host 0.0.0.0 without --token: a token is generated, printed with the URL, and required."""
    process = GatewayProcess(spark_remote, "--host", "0.0.0.0")
    try:
        text = process.log_path.read_text()
        found = re.search(r"open http://localhost:\d+/#token=([A-Za-z0-9_-]{40,})", text)
        assert found, text
        token = found.group(1)
        assert await refused_status(process.ws_url) == 401
        async with open_client(process.ws_url, additional_headers=bearer(token)) as client:
            await one_query(client)
        # printed once, at start, and nowhere else
        assert process.log_path.read_text().count(token) == 1
    finally:
        process.stop()


# ------------------------------------------------------------------ the browser


@pytest.mark.browser
@pytest.mark.timeout(120)
def test_browser_takes_the_token_from_the_url(chromium, token_gateway: GatewayProcess) -> None:  # type: ignore[no-untyped-def]
    """#token= and ?token= connect; the token leaves the URL for sessionStorage and survives a reload."""
    from playwright.sync_api import expect

    for suffix in (f"#token={TOKEN}", f"?token={TOKEN}&ws=ws://127.0.0.1:{token_gateway.port}/ws"):
        context = chromium.new_context()
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc, errors=errors: errors.append(str(exc)))
        try:
            page.goto(f"{token_gateway.http_url}/{suffix}")
            expect(page.locator("#connection")).to_have_attribute("data-state", "connected", timeout=30_000)
            assert TOKEN not in page.url and "token" not in page.url, page.url
            if "ws=" in suffix:
                assert "ws=" in page.url  # other parameters are kept
            stored = page.evaluate("JSON.parse(sessionStorage.getItem('spark-gateway.token'))")
            assert stored == {"token": TOKEN, "ws": token_gateway.ws_url}
            page.reload()
            expect(page.locator("#connection")).to_have_attribute("data-state", "connected", timeout=30_000)
            assert errors == []
        finally:
            context.close()


@pytest.mark.browser
@pytest.mark.timeout(120)
def test_browser_without_token_is_told_how_to_get_in(chromium, token_gateway: GatewayProcess) -> None:  # type: ignore[no-untyped-def]
    """Without a token the page does not connect and says authentication is required."""
    from playwright.sync_api import expect

    for suffix, told in (("", "Authentication required"), ("#token=wrong", "refused this page's token")):
        context = chromium.new_context()
        page = context.new_page()
        try:
            page.goto(f"{token_gateway.http_url}/{suffix}")
            expect(page.locator("#banner")).to_be_visible(timeout=30_000)
            expect(page.locator("#banner-text")).to_contain_text(told, timeout=30_000)
            assert page.locator("#connection").get_attribute("data-state") != "connected"
            assert "wrong" not in page.url
        finally:
            context.close()


@pytest.mark.browser
@pytest.mark.timeout(120)
def test_browser_never_hands_the_token_to_another_server(chromium, token_gateway: GatewayProcess) -> None:  # type: ignore[no-untyped-def]
    """A later ?ws=<another server> in the same tab (link, redirect) gets no token: it is bound."""
    import threading

    from playwright.sync_api import expect

    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(30)
    heads: list[str] = []

    def capture() -> None:  # a fake "gateway" that records handshakes and hangs up
        try:
            while len(heads) < 2:
                conn, _ = listener.accept()
                with conn:
                    conn.settimeout(5)
                    data = b""
                    while b"\r\n\r\n" not in data:
                        chunk = conn.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                    heads.append(data.decode("latin-1"))
        except OSError:
            pass

    thread = threading.Thread(target=capture, daemon=True)
    thread.start()
    context = chromium.new_context()
    page = context.new_page()
    try:
        page.goto(f"{token_gateway.http_url}/#token={TOKEN}")
        expect(page.locator("#connection")).to_have_attribute("data-state", "connected", timeout=30_000)
        other = f"ws://127.0.0.1:{listener.getsockname()[1]}/ws"
        page.goto(f"{token_gateway.http_url}/?ws={other}")  # same tab: same sessionStorage
        thread.join(30)
        assert heads, "the page never tried the other server"
        assert all("sec-websocket-protocol: spark-gateway.v1\r\n" in h.lower() for h in heads), heads
        assert not any(TOKEN in h or "token." in h for h in heads), heads
    finally:
        context.close()
        listener.close()
