"""What a session remembers of its ended executions: bounded by count and bytes, code as an excerpt."""

from __future__ import annotations

from spark_gateway.execution import Execution
from spark_gateway.history import History, describe, digest, iso
from spark_gateway_protocol.messages import CODE_EXCERPT_CHARS, Error, Execute


def ended(eid: str, code: str = "SELECT 1", *, error: Error | None = None) -> Execution:
    execution = Execution(Execute(eid, code), tag="t")
    execution.move("start")
    execution.error = error
    execution.failed = error is not None
    execution.move(execution.final_status())
    return execution


def test_the_oldest_are_forgotten_beyond_the_count() -> None:
    """At most max_count records, newest first; the oldest go first."""
    history = History(max_count=3)
    for i in range(5):
        execution = ended(f"e{i}")
        history.add(execution, execution.finished_event())
    assert [info.id for info in history.newest_first()] == ["e4", "e3", "e2"]
    assert history.get("e0") is None and history.get("e4") is not None


def test_the_oldest_are_forgotten_beyond_the_bytes_and_huge_code_costs_an_excerpt() -> None:
    """A 1 MB cell is remembered as a 200 code point excerpt and a digest; big errors count towards the budget."""
    history = History(max_bytes=20_000)
    big = ended("big", "SELECT " + "x" * 1_000_000)
    history.add(big, big.finished_event())
    record = history.get("big")
    assert record is not None and len(record.info.code) == CODE_EXCERPT_CHARS
    assert record.info.code_length == 1_000_007 and record.digest == digest(big.request)
    failing = ended("bad", error=Error("python_error", "boom", id="bad", traceback="t" * 30_000))
    history.add(failing, failing.finished_event())
    assert [i.id for i in history.newest_first()] == ["bad"]  # the newest stays, even alone over the budget
    for i in range(10):
        execution = ended(f"s{i}")
        history.add(execution, execution.finished_event())
    assert 1 < len(history) < 11 and history.newest_first()[0].id == "s9" and history.get("bad") is None


def test_an_ended_execution_is_described_with_its_status_times_and_error_code() -> None:
    """describe(): status, ISO times in UTC, the error event's code."""
    execution = ended("e", error=Error("spark_error", "no such table", id="e"))
    info = describe(execution)
    assert (info.status, info.error, info.language) == ("error", "spark_error", "sql")
    assert info.queued_at.endswith("Z") and info.ended_at is not None and info.ended_at >= info.queued_at
    assert iso(0) == "1970-01-01T00:00:00.000Z" and iso(None) is None
