"""Gateway settings and the ``serve`` command line, in-process (fast tier).

test_operations.py starts ``spark-gateway serve`` as a process for the same refusals.
"""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from spark_gateway import cli, config
from spark_gateway.config import Settings


def parse(*argv: str) -> Settings:
    parser = argparse.ArgumentParser()
    config.add_arguments(parser)
    return config.from_arguments(parser.parse_args(argv))


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No SPARK_GATEWAY_* or SPARK_REMOTE from the developer's shell."""
    import os

    for name in list(os.environ):
        if name.startswith("SPARK_GATEWAY_") or name == "SPARK_REMOTE":
            monkeypatch.delenv(name)


def test_defaults_are_a_local_gateway_with_an_embedded_spark() -> None:
    """No flags, no environment: loopback:8765, embedded Spark, both languages, one-hour idle timeout."""
    settings = parse()
    assert settings == Settings()
    assert (settings.host, settings.port, settings.remote, settings.languages) == (
        "127.0.0.1", 8765, None, ("sql", "python"))


def test_flags_win_over_the_environment_which_wins_over_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each setting reads its flag, else SPARK_GATEWAY_<NAME>, else the default; SPARK_REMOTE too."""
    monkeypatch.setenv("SPARK_GATEWAY_PORT", "9000")
    monkeypatch.setenv("SPARK_GATEWAY_SAMPLE_DATA", "yes")
    monkeypatch.setenv("SPARK_GATEWAY_ALLOWED_ORIGINS", " https://a.example , https://b.example ,")
    monkeypatch.setenv("SPARK_REMOTE", "sc://spark:15002")
    settings = parse("--port", "9100", "--languages", "sql", "--ws-compression")
    assert settings.port == 9100 and settings.languages == ("sql",)
    assert settings.sample_data and settings.ws_compression
    assert settings.allowed_origins == ("https://a.example", "https://b.example")
    assert settings.remote == "sc://spark:15002"
    monkeypatch.setenv("SPARK_GATEWAY_REMOTE", "sc://other:15002")
    assert parse().remote == "sc://other:15002", "the gateway's own variable wins over pyspark's"


def test_every_setting_has_a_flag_with_help_naming_its_variable() -> None:
    """One flag and one SPARK_GATEWAY_* variable per field of Settings, each documented."""
    parser = argparse.ArgumentParser()
    config.add_arguments(parser)
    text = parser.format_help()
    for f in dataclasses.fields(Settings):
        assert "--" + f.name.replace("_", "-") in text and config.env_name(f.name) in text


@pytest.mark.parametrize(("argv", "message"), [
    (["--port", "99999"], "port must be 0..65535"),
    (["--port", "http"], "port: expected a int"),
    (["--remote", "http://spark:15002"], "remote must be a Spark Connect URL"),
    (["--languages", "sql,cobol"], "languages must be"),
    (["--log-format", "xml"], "log_format must be text or json"),
    (["--idle-timeout", "-1"], "idle_timeout must be >= 0"),
    (["--max-page-bytes", "100"], "max_page_bytes must be >= 1024"),
    (["--max-sessions", "0"], "max_sessions must be >= 1"),
    (["--shutdown-timeout", "-5"], "shutdown_timeout must be >= 0"),
    (["--token", "has space"], "token: entry 1 must be SECRET or NAME:SECRET"),
    (["--allowed-origins", "notebook.example"], "allowed_origins: not an origin"),
])
def test_bad_settings_stop_serve_with_a_message_naming_the_setting(
        argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    """``spark-gateway serve`` with an invalid value exits 2 before starting, naming the setting."""
    with pytest.raises(SystemExit) as exited:
        cli.main(["serve", *argv])
    assert exited.value.code == 2 and message in capsys.readouterr().err


def test_without_java_and_without_remote_serve_says_what_to_install(
        tmp_path: object, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """No ``java`` on the PATH and no --remote: exit 2 with how to get Java, or to pass --remote."""
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    assert cli.main(["serve"]) == 2
    err = capsys.readouterr().err
    assert "Java 17 is needed" in err and "--remote" in err


def test_query_is_found_by_entry_point(capsys: pytest.CaptureFixture[str]) -> None:
    """``spark-gateway query`` runs the client's command (an entry point of spark-gateway-client)."""
    assert cli.main(["query", "--help"]) == 0
    assert "usage: spark-gateway query" in capsys.readouterr().out


def test_a_missing_command_distribution_is_explained(capsys: pytest.CaptureFixture[str]) -> None:
    """A command no installed distribution provides: exit 2 saying which package brings it."""
    assert cli.run_plugin("no-such-command", []) == 2
    assert "pip install spark-gateway-client" in capsys.readouterr().err
