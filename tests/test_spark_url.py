"""Spark Connect URLs, gateway users and version-dependent errors, without a server."""

from __future__ import annotations

import pytest

from spark_gateway import metrics, spark, users
from spark_gateway.config import Settings
from spark_gateway.spark_url import SparkUrl, is_loopback_host, redact


@pytest.mark.parametrize("text", ["sc://h:15002", "sc://h:15002/", "sc://h:15002/;", "sc://h:15002;"])
def test_with_or_without_a_trailing_slash_a_url_reads_the_same(text: str) -> None:
    """A trailing slash (or an empty parameter list) changes nothing."""
    assert SparkUrl.parse(text) == SparkUrl("h", 15002)
    assert str(SparkUrl.parse(text)) == "sc://h:15002"


def test_session_id_joins_the_url_parameters() -> None:
    """The session id is one more ;key=value parameter, after the URL's own, never a second path."""
    url = SparkUrl.parse("sc://host:15002/;token=SECRET;x-team=data")
    composed = str(url.with_params(session_id="0b7c", user_id="alice"))
    assert composed == "sc://host:15002/;token=SECRET;x-team=data;session_id=0b7c;user_id=alice"


def test_a_given_parameter_is_replaced_where_it_is() -> None:
    """Setting a parameter the URL has replaces it in place; None removes it."""
    url = SparkUrl.parse("sc://h:1/;user_id=bob;token=t")
    assert str(url.with_params(user_id="alice")) == "sc://h:1/;user_id=alice;token=t"
    assert str(url.with_params(user_id=None)) == "sc://h:1/;token=t"


@pytest.mark.parametrize(("text", "key", "value"), [
    ("sc://h:1/;token=a%2Fb%3D", "token", "a/b="),
    ("sc://h:1/;token=abc==", "token", "abc=="),  # base64 padding: read, and passed on escaped
    ("sc://h:1/;user_agent=my%20app", "user_agent", "my app"),
    ("sc://h:1/;use_ssl=true", "use_ssl", "true"),
    ("sc://h:1/;x-request-source=notebook", "x-request-source", "notebook"),
])
def test_values_are_decoded_and_encoded_again(text: str, key: str, value: str) -> None:
    """Percent-escapes are read as pyspark reads them, and written so that pyspark reads the same value."""
    url = SparkUrl.parse(text)
    assert url.get(key) == value
    assert SparkUrl.parse(str(url)).get(key) == value
    assert "==" not in str(url) and " " not in str(url)


def test_pyspark_reads_the_composed_url_as_meant() -> None:
    """pyspark's own builder accepts what the gateway composes, with every parameter intact."""
    from pyspark.sql.connect.client import DefaultChannelBuilder

    url = SparkUrl.parse("sc://h:1/;token=abc==;user_agent=my app;x-team=data")
    builder = DefaultChannelBuilder(str(url.with_params(session_id="8f4f4c60-5e0a-4d4b-9c9a-0c3c5a4a7e11",
                                                        user_id="alice")))
    assert (builder.host, builder.token, builder.userId) == ("h", "abc==", "alice")
    assert builder.session_id == "8f4f4c60-5e0a-4d4b-9c9a-0c3c5a4a7e11"
    assert builder.userAgent.startswith("my app ")
    assert ("x-team", "data") in builder.metadata()


def test_ipv6_hosts_keep_their_brackets() -> None:
    """[::1] is read as the host ::1 and written back in brackets."""
    url = SparkUrl.parse("sc://[::1]:15002/;token=t")
    assert (url.host, url.port, str(url)) == ("::1", 15002, "sc://[::1]:15002/;token=t")


@pytest.mark.parametrize("text", [
    "http://h:1", "sc://", "sc://h:1/path", "sc://h:port", "sc://h:0", "sc://h:1:2", "sc://h:1/;SECRET",
    "sc://h:1/;=v", "sc://[::1", "sc://h:1?q=1",
])
def test_malformed_urls_are_refused_without_echoing_them(text: str) -> None:
    """A malformed URL raises ValueError; the message never repeats the URL (it may hold a token)."""
    with pytest.raises(ValueError) as caught:
        SparkUrl.parse(text)
    assert "SECRET" not in str(caught.value)


def test_redacted_url_hides_only_the_token() -> None:
    """Logs and /readyz show the URL with its token replaced."""
    assert SparkUrl.parse("sc://h:1/;token=s3cret;user_id=al").redacted() == "sc://h:1/;token=[redacted];user_id=al"
    assert redact("sc://h:1/;token=s3cret;;bad") == "sc://h:1/;token=[redacted];;bad"
    assert redact("not a url token=s3cret") == "not a url token=[redacted]"


@pytest.mark.parametrize(("host", "loopback"), [
    ("localhost", True), ("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("[::1]", True),
    ("vm", False), ("10.0.0.1", False), ("spark.example.com", False), ("0.0.0.0", False),
])
def test_loopback_hosts(host: str, loopback: bool) -> None:
    """Only localhost and loopback IP literals count as connections that stay on this machine."""
    assert is_loopback_host(host) is loopback


@pytest.mark.parametrize(("text", "tls", "local"), [
    ("sc://127.0.0.1:1", False, False),
    ("sc://127.0.0.1:1/;token=t", False, True),  # pyspark alone would try TLS here
    ("sc://localhost:1/;token=t", False, True),
    ("sc://127.0.0.1:1/;token=t;use_ssl=true", True, False),
    ("sc://spark.example.com:1/;token=t", True, False),
    ("sc://spark.example.com:1/;use_ssl=true", True, False),
])
def test_which_urls_make_a_tls_channel(text: str, tls: bool, local: bool) -> None:
    """A token means TLS unless the host is loopback and use_ssl is not set (then local credentials)."""
    url = SparkUrl.parse(text)
    assert url.local_token is local
    assert bool(spark.connection_hint(text)) is tls


def test_pyspark_itself_treats_only_the_name_localhost_as_local() -> None:
    """pyspark's rule, which the gateway widens: a token makes TLS unless the host is literally localhost."""
    from pyspark.sql.connect.client import DefaultChannelBuilder

    assert DefaultChannelBuilder("sc://127.0.0.1:1/;token=t").secure
    assert DefaultChannelBuilder("sc://localhost:1/;token=t").host == "localhost"
    assert not DefaultChannelBuilder("sc://127.0.0.1:1").secure


def test_settings_refuse_a_bad_remote_without_showing_it() -> None:
    """--remote must parse, and may not carry a session_id (the gateway picks one per session)."""
    with pytest.raises(ValueError, match="remote must be a Spark Connect URL") as caught:
        Settings(remote="sc://h:1/;SECRET")
    assert "SECRET" not in str(caught.value)
    with pytest.raises(ValueError, match="session_id"):
        Settings(remote="sc://h:1/;session_id=8f4f4c60-5e0a-4d4b-9c9a-0c3c5a4a7e11")
    assert Settings(remote="sc://h:1/;token=t;use_ssl=true").remote == "sc://h:1/;token=t;use_ssl=true"
    assert "token=t" not in repr(Settings(remote="sc://h:1/;token=t"))


# ---------------------------------------------------------------- users


def test_named_and_bare_secrets() -> None:
    """--token takes NAME:SECRET and bare SECRET entries; bare ones belong to the default user."""
    parsed = users.parse_credentials("alice:s1, s2 ,bob@corp:s3")
    assert parsed == (users.Credential("s1", "alice"), users.Credential("s2"), users.Credential("s3", "bob@corp"))


@pytest.mark.parametrize("value", ["alice:", ":s1", "al ice:s1", "alice:s 1", "a:b:c", "alice:s1,bob:s1", ""])
def test_malformed_credentials_are_refused_without_echoing_a_secret(value: str) -> None:
    """A bad entry raises ValueError naming its position, never its secret."""
    with pytest.raises(ValueError, match="token:") as caught:
        users.parse_credentials(value)
    assert "s1" not in str(caught.value)


def test_the_same_secret_twice_for_one_user_is_fine() -> None:
    """Repeating an entry is harmless; one secret for two users is not."""
    assert len(users.parse_credentials("alice:s1,alice:s1")) == 2


def test_a_credential_maps_to_its_user() -> None:
    """A named secret is its user; a bare one, and no token at all, are the URL's user_id or the default."""
    from spark_gateway import auth

    token = "alice:s1,s2"
    assert users.user_of(token, None, auth.fingerprint("s1")) == "alice"
    assert users.user_of(token, None, auth.fingerprint("s2")) == users.DEFAULT_USER
    assert users.user_of(token, "sc://h:1/;user_id=etl", auth.fingerprint("s2")) == "etl"
    assert users.user_of(None, None, auth.ANONYMOUS) == users.DEFAULT_USER
    assert users.user_names(token, None) == sorted(["alice", users.DEFAULT_USER])


def test_settings_and_auth_accept_named_tokens() -> None:
    """A gateway configured with named tokens accepts each secret (and not the name) as its credential."""
    from spark_gateway import auth

    settings = Settings(token="alice:s1,bob:s2")
    pol = auth.policy(settings)
    assert pol.tokens == ("s1", "s2")
    ok = auth.decide(pol, headers={"authorization": "Bearer s2", "host": "127.0.0.1"})
    assert ok.status == 0 and users.user_of(settings.token, None, ok.credential) == "bob"
    assert auth.decide(pol, headers={"authorization": "Bearer alice:s1", "host": "127.0.0.1"}).status == 401


def test_metrics_label_sessions_by_user() -> None:
    """The metrics count open and opened sessions per user, with label values escaped."""
    m = metrics.Metrics()
    m.sessions_by_user = {"alice": 2, 'we"ird': 0}
    m.sessions_opened_by_user["alice"] += 3
    text = m.render()
    assert 'spark_gateway_user_sessions{user="alice"} 2' in text
    assert 'spark_gateway_user_sessions{user="we\\"ird"} 0' in text
    assert 'spark_gateway_user_sessions_opened_total{user="alice"} 3' in text


def test_untested_server_versions_are_named() -> None:
    """Servers 4.0 to 4.3 are the tested range; others get a warning text."""
    assert spark.untested_server("4.0.5") is None and spark.untested_server("4.3.0") is None
    assert "3.5.1" in (spark.untested_server("3.5.1") or "")
    assert spark.untested_server("5.0.0") is not None


def test_log_lines_name_the_sessions_user() -> None:
    """A record names its user from the context, else from its session id (records of worker threads)."""
    import json
    import logging

    from spark_gateway import logs

    formatter = logs.JsonLines()
    record = logging.LogRecord("spark_gateway", logging.INFO, __file__, 1, "ran", None, None)
    record.session = "s-1"
    logs.SessionUsers({"s-1": "alice"}).filter(record)
    assert json.loads(formatter.format(record))["user"] == "alice"
    other = logging.LogRecord("spark_gateway", logging.INFO, __file__, 1, "ran", None, None)
    token = logs.user.set("bob")
    try:
        assert json.loads(formatter.format(other))["user"] == "bob"
        other.session, other.execution = "s-2", "e-1"
        assert logs.Text("%(ids)s").format(other) == " [bob@s-2/e-1]"
    finally:
        logs.user.reset(token)
    assert "user" not in json.loads(formatter.format(logging.LogRecord("x", 20, __file__, 1, "m", None, None)))


def test_a_python_worker_error_class_is_read_from_the_message() -> None:
    """A UDF failing in the server's Python worker (e.g. another Python minor version) gets its class."""
    from pyspark.errors.exceptions.connect import PythonException

    exc = PythonException(message=(
        "An exception was thrown from the Python worker.\n[PYTHON_EXCEPTION] An exception was thrown: Traceback\n"
        "pyspark.errors.exceptions.base.PySparkRuntimeError: [PYTHON_VERSION_MISMATCH] Python in worker has "
        "different version: 3.12 than that in driver: 3.11. SQLSTATE: 38000"))
    fields = spark.spark_error_fields(exc)
    assert fields is not None and (fields["code"], fields["error_class"]) == ("spark_error", "PYTHON_VERSION_MISMATCH")
