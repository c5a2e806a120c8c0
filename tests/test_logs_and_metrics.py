"""The gateway's log lines and Prometheus metrics, as operators read them (fast tier)."""

from __future__ import annotations

import logging
import sys

import orjson
import pytest

from spark_gateway import logs
from spark_gateway.metrics import LATENCY_BUCKETS, Metrics


def record(msg: str = "session %s opened", *args: object, **extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("spark_gateway.session", logging.INFO, __file__, 1, msg, args or ("x",), None)
    for key, value in extra.items():
        setattr(rec, key, value)
    return rec


def test_json_lines_carry_session_and_execution_ids() -> None:
    """JSON format: one object per line with ts, level, logger, msg, and the ids a record carries."""
    line = orjson.loads(logs.JsonLines().format(record(session="s-1", execution="e-1")))
    assert (line["level"], line["logger"], line["msg"]) == ("info", "spark_gateway.session", "session x opened")
    assert (line["session"], line["execution"]) == ("s-1", "e-1")
    assert line["ts"].endswith("Z") and "T" in line["ts"]


def test_json_lines_include_the_exception() -> None:
    """A logged exception is in the line's ``exception`` field, traceback included."""
    try:
        raise ValueError("boom")
    except ValueError:
        rec = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    line = orjson.loads(logs.JsonLines().format(rec))
    assert "ValueError: boom" in line["exception"] and "Traceback" in line["exception"]


def test_text_lines_show_short_ids_when_known() -> None:
    """Text format: ``[session/execution]`` (8 characters each) after the logger name, nothing without ids."""
    formatter = logs.Text("%(name)s%(ids)s: %(message)s")
    assert formatter.format(record(session="0123456789", execution="abcdefghij")) == (
        "spark_gateway.session [01234567/abcdefgh]: session x opened")
    assert formatter.format(record()) == "spark_gateway.session: session x opened"


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_configure_sets_the_level_and_gives_uvicorn_the_same_format(fmt: str) -> None:
    """configure(): the root level as asked, and a uvicorn log_config using the chosen formatter."""
    root = logging.getLogger()
    before = (root.level, list(root.handlers))
    try:
        config = logs.configure("warning", fmt)
        assert root.level == logging.WARNING
        expected = "spark_gateway.logs.JsonLines" if fmt == "json" else "spark_gateway.logs.Text"
        assert config["formatters"]["default"]["()"] == expected
        assert set(config["loggers"]) == {"uvicorn", "uvicorn.access", "uvicorn.error"}
    finally:
        root.setLevel(before[0])
        root.handlers[:] = before[1]


def test_metrics_render_counters_gauges_and_a_cumulative_histogram() -> None:
    """The text exposition: every family with HELP and TYPE, labelled counters, cumulative buckets."""
    metrics = Metrics(sessions=2, rows_streamed=30)
    metrics.execution_finished("ok", 0.02)
    metrics.execution_finished("ok", 3.0)
    metrics.execution_finished("error", 0.2)
    metrics.error("spark_error")
    text = metrics.render()
    samples = dict(line.rsplit(" ", 1) for line in text.splitlines() if not line.startswith("#"))
    assert samples["spark_gateway_sessions"] == "2" and samples["spark_gateway_rows_streamed_total"] == "30"
    assert samples['spark_gateway_executions_total{status="ok"}'] == "2"
    assert samples['spark_gateway_executions_total{status="error"}'] == "1"
    assert samples['spark_gateway_errors_total{code="spark_error"}'] == "1"
    buckets = [int(samples[f'spark_gateway_execution_seconds_bucket{{le="{b:g}"}}']) for b in LATENCY_BUCKETS]
    assert buckets == sorted(buckets), "cumulative"
    assert samples['spark_gateway_execution_seconds_bucket{le="0.025"}'] == "1"
    assert samples['spark_gateway_execution_seconds_bucket{le="+Inf"}'] == "3"
    assert samples["spark_gateway_execution_seconds_count"] == "3"
    assert float(samples["spark_gateway_execution_seconds_sum"]) == pytest.approx(3.22)
    families = [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")]
    assert len(families) == len(set(families)) and all(f.startswith("spark_gateway_") for f in families)
