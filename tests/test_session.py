"""A session in-process behind the fake Spark: requests in, events out (fast tier).

Through the session's public surface only — ``Session(...)``, ``handle``, ``run``, ``close``
and the events in its outbox — so that these tests hold while the session's insides move.
The same behaviours run end to end against real Spark in test_gateway.py.
"""

from __future__ import annotations

import threading
import time

import anyio
import pyarrow as pa
import pytest
from pyspark.errors.exceptions.connect import ArithmeticException

from spark_gateway.session import SessionLimits
from spark_gateway_protocol import ProtocolError
from spark_gateway_protocol.errors import ErrorCode
from tests.fakes.spark import LONG_JOB, FakeSpark, Job, analysis_error, table
from tests.inprocess import open_session, quiet, session_of
from tests.wsclient import arrow_table, of_type, rows_of

TEN = table(id=list(range(10)), name=[f"n{i}" for i in range(10)])


def types(events: list[dict]) -> list[str]:
    """The events' types, progress reports left out (how many come depends on timing)."""
    return [e["type"] for e in events if e["type"] != "progress"]


# ------------------------------------------------------------------ results


async def test_a_query_is_accepted_started_streamed_and_finished(fake_spark: FakeSpark) -> None:
    """SQL → accepted, started, result (columns), rows, finished ok with the result's summary."""
    fake_spark.script("SELECT * FROM t", Job(TEN, batch_rows=3))
    async with open_session(fake_spark) as client:
        events = await client.run("SELECT * FROM t", id="q1")
    assert types(events) == ["accepted", "started", "result", "rows", "finished"]
    assert events[0]["queue_position"] == 0
    assert events[2]["schema"] == [{"name": "id", "type": "bigint", "nullable": True},
                                    {"name": "name", "type": "string", "nullable": True}]
    assert rows_of(events) == [[i, f"n{i}"] for i in range(10)]
    [page] = of_type(events, "rows")
    assert page["last"] and not page["truncated"]
    finished = events[-1]
    assert finished["status"] == "ok" and finished["results"] == [{"result": 0, "rows": 10, "truncated": False}]


async def test_pages_wait_for_credit(fake_spark: FakeSpark) -> None:
    """The first page goes at once; every next one only after ``stream-rows`` grants rows."""
    fake_spark.script("SELECT * FROM t", Job(TEN, batch_rows=4))
    async with open_session(fake_spark) as client:
        await client.execute("SELECT * FROM t", id="q", page_size=4)
        first = await client.wait_for(lambda e: e["type"] == "rows")
        assert (first["offset"], len(first["rows"]), first["last"]) == (0, 4, False)
        await quiet(client)
        assert session_of(client).credit()[0].until == 4
        await client.send({"type": "stream-rows", "id": "q", "result": 0, "max_rows": 3})
        second = await client.recv()
        assert (second["offset"], len(second["rows"]), second["last"]) == (4, 3, False)
        await quiet(client)
        await client.send({"type": "stream-rows", "id": "q", "result": 0, "max_rows": 100})
        third = await client.recv()
        assert (third["offset"], len(third["rows"]), third["last"]) == (7, 3, True)
        assert (await client.recv())["type"] == "finished"


async def test_a_limit_is_applied_and_reported_as_truncated(fake_spark: FakeSpark) -> None:
    """``limit`` keeps that many rows and says rows were left out: never a silent cut."""
    fake_spark.script("SELECT * FROM t", Job(TEN))
    async with open_session(fake_spark) as client:
        cut = await client.run("SELECT * FROM t", id="cut", limit=4)
        whole = await client.run("SELECT * FROM t", id="whole", limit=10)
    assert len(rows_of(cut)) == 4 and of_type(cut, "rows")[-1]["truncated"]
    assert of_type(cut, "finished")[0]["results"] == [{"result": 0, "rows": 4, "truncated": True}]
    assert len(rows_of(whole)) == 10 and not of_type(whole, "rows")[-1]["truncated"]


async def test_arrow_pages_form_one_ipc_stream_of_the_result(fake_spark: FakeSpark) -> None:
    """``format: arrow`` sends binary pages whose payloads read back as the very table Spark sent."""
    fake_spark.script("SELECT * FROM t", Job(TEN, batch_rows=3))
    async with open_session(fake_spark) as client:
        events = await client.run("SELECT * FROM t", id="a", format="arrow", page_size=4)
    pages = of_type(events, "arrow-rows")
    assert [p["count"] for p in pages] == [4, 4, 2] and pages[-1]["last"]
    assert arrow_table(events).equals(TEN)


async def test_an_empty_arrow_result_still_has_its_schema(fake_spark: FakeSpark) -> None:
    """A result with no rows at all sends one last page carrying the schema."""
    empty = pa.table({"id": pa.array([], pa.int32())})
    fake_spark.script("SELECT * FROM empty", Job(empty))
    async with open_session(fake_spark) as client:
        events = await client.run("SELECT * FROM empty", id="e", format="arrow")
    assert arrow_table(events).schema.equals(empty.schema) and arrow_table(events).num_rows == 0


async def test_commands_make_no_result(fake_spark: FakeSpark) -> None:
    """A statement without columns (CREATE VIEW) finishes ok with no result."""
    fake_spark.script("CREATE TEMP VIEW v AS SELECT 1", Job())
    async with open_session(fake_spark) as client:
        events = await client.run("CREATE TEMP VIEW v AS SELECT 1", id="c")
    assert types(events) == ["accepted", "started", "finished"]
    assert events[-1]["results"] == [] and events[-1]["status"] == "ok"


async def test_a_sql_script_runs_its_statements_in_order(fake_spark: FakeSpark) -> None:
    """A cell of several statements runs each in turn; each query's rows are a result of its own."""
    fake_spark.script("CREATE TEMP VIEW v AS SELECT 1", Job())
    fake_spark.script("SELECT * FROM v", Job(table(one=[1])))
    fake_spark.script("SELECT * FROM t", Job(TEN))
    async with open_session(fake_spark) as client:
        events = await client.run("CREATE TEMP VIEW v AS SELECT 1;\nSELECT * FROM v;\nSELECT * FROM t;", id="s")
    assert rows_of(events, 0) == [[1]] and len(rows_of(events, 1)) == 10
    assert [op.sql for op in fake_spark.operations] == ["CREATE TEMP VIEW v AS SELECT 1", "SELECT * FROM v",
                                                        "SELECT * FROM t"]


# ------------------------------------------------------------------ errors


async def test_a_spark_error_is_typed_and_points_into_the_cell(fake_spark: FakeSpark) -> None:
    """A failing statement of a script: spark_error with class, SQL state and the fragment's place in the cell."""
    code = "SELECT * FROM t;\nSELECT * FROM no_such_table;\nSELECT * FROM t"
    fake_spark.script("SELECT * FROM t", Job(TEN))
    # Spark counts from the statement it was sent: "\n" (keeps it on line 2) + "SELECT * FROM ".
    fake_spark.script("SELECT * FROM no_such_table", Job(error=analysis_error("no_such_table", start=15)))
    async with open_session(fake_spark) as client:
        events = await client.run(code, id="bad")
    error = of_type(events, "error")[0]
    assert (error["code"], error["error_class"], error["sql_state"], error["exception"]) == (
        "spark_error", "TABLE_OR_VIEW_NOT_FOUND", "42P01", "AnalysisException")
    [context] = error["context"]
    assert code[context["start"]:context["stop"] + 1] == context["fragment"] == "no_such_table"
    assert events[-1]["status"] == "error"
    assert len(of_type(events, "result")) == 1, "the statement after the failing one does not run"


async def test_a_result_failing_while_streaming_ends_once_with_its_error(fake_spark: FakeSpark) -> None:
    """An error after some rows: an error event for that result, result-closed 'error', finished 'error'."""
    boom = ArithmeticException(message="[DIVIDE_BY_ZERO] Division by zero. SQLSTATE: 22012",
                               errorClass="DIVIDE_BY_ZERO", sql_state="22012")
    fake_spark.script("SELECT 1/x FROM t", Job(TEN, batch_rows=2, error=boom, error_after=1))
    async with open_session(fake_spark) as client:
        events = await client.run("SELECT 1/x FROM t", id="div", page_size=2)
    error = of_type(events, "error")[0]
    assert (error["error_class"], error["result"]) == ("DIVIDE_BY_ZERO", 0)
    closed = of_type(events, "result-closed")
    assert len(closed) == 1 and closed[0]["reason"] == "error"
    assert events[-1]["status"] == "error"


async def test_unscripted_python_errors_carry_the_cells_traceback(fake_spark: FakeSpark) -> None:
    """A Python exception: python_error with the exception's name and a traceback of the cell's lines."""
    async with open_session(fake_spark) as client:
        events = await client.run("x = 1\ny = x / 0", id="py", language="python")
    error = of_type(events, "error")[0]
    assert (error["code"], error["exception"]) == ("python_error", "ZeroDivisionError")
    assert '"<cell py>", line 2' in error["traceback"] and "y = x / 0" in error["traceback"]
    assert "spark_gateway" not in error["traceback"], "the gateway's own frames are left out"


async def test_a_syntax_error_is_a_python_error(fake_spark: FakeSpark) -> None:
    """Code that does not parse: python_error naming SyntaxError, nothing run."""
    async with open_session(fake_spark) as client:
        events = await client.run("def (", id="syn", language="python")
    error = of_type(events, "error")[0]
    assert (error["code"], error["exception"]) == ("python_error", "SyntaxError")


async def test_unreachable_spark_is_a_typed_error_and_the_session_recovers(fake_spark: FakeSpark) -> None:
    """Spark down: spark_unavailable; once it answers again, the next execution works."""
    fake_spark.script("SELECT * FROM t", Job(TEN))
    async with open_session(fake_spark) as client:
        fake_spark.reachable = False
        down = await client.run("SELECT * FROM t", id="down")
        fake_spark.reachable = True
        up = await client.run("SELECT * FROM t", id="up")
    assert of_type(down, "error")[0]["code"] == "spark_unavailable"
    assert len(rows_of(up)) == 10


async def test_a_lost_spark_session_is_replaced_and_the_client_told(fake_spark: FakeSpark) -> None:
    """After Spark lost the session (restarted), the next execution gets a new one and a reset notice."""
    fake_spark.script("SELECT * FROM t", Job(TEN))
    async with open_session(fake_spark) as client:
        await client.run("SELECT * FROM t", id="before")
        session_of(client).spark_lost("the server restarted")
        after = await client.run("SELECT * FROM t", id="after")
    notice = of_type(after, "error")[0]
    assert notice["code"] == "spark_session_reset" and "the server restarted" in notice["message"]
    assert len(rows_of(after)) == 10 and after[-1]["status"] == "ok"
    assert len(fake_spark.sessions) == 2 and fake_spark.sessions[0].released


# ------------------------------------------------------------------ Python cells


async def test_a_python_cell_prints_and_returns_a_value(fake_spark: FakeSpark) -> None:
    """Printed text comes as stdout/stderr events, before the trailing expression's value."""
    code = "import sys\nprint('hello')\nprint('oops', file=sys.stderr)\n40 + 2"
    async with open_session(fake_spark) as client:
        events = await client.run(code, id="py", language="python")
    assert types(events) == ["accepted", "started", "stdout", "stderr", "value", "finished"]
    assert events[2]["text"] == "hello\n" and events[3]["text"] == "oops\n"
    assert (events[4]["text"], events[4]["python_type"]) == ("42", "int")


async def test_a_long_value_is_cut_and_says_so(fake_spark: FakeSpark) -> None:
    """A value longer than max_value_chars is cut, with its full length said."""
    async with open_session(fake_spark, limits=SessionLimits(max_value_chars=10)) as client:
        events = await client.run("'x' * 100", id="v", language="python")
    value = of_type(events, "value")[0]
    assert value["truncated"] and value["length"] == 102 and len(value["text"]) == 10


async def test_python_variables_live_across_cells(fake_spark: FakeSpark) -> None:
    """A cell sees the names earlier cells of its session defined."""
    async with open_session(fake_spark) as client:
        await client.run("answer = 42", id="a", language="python")
        events = await client.run("answer", id="b", language="python")
    assert of_type(events, "value")[0]["text"] == "42"


async def test_dataframes_of_a_python_cell_are_streamed_as_results(fake_spark: FakeSpark) -> None:
    """``display(df)`` and a trailing DataFrame each stream as a result of the cell."""
    fake_spark.script("SELECT * FROM t", Job(TEN))
    fake_spark.script("SELECT 1", Job(table(one=[1])))
    code = "display(spark.sql('SELECT 1'))\nspark.sql('SELECT * FROM t')"
    async with open_session(fake_spark) as client:
        events = await client.run(code, id="df", language="python")
    assert rows_of(events, 0) == [[1]] and len(rows_of(events, 1)) == 10
    assert events[-1]["status"] == "ok"


async def test_spark_jobs_of_python_code_report_progress(fake_spark: FakeSpark) -> None:
    """A job that Python code starts (collect) sends progress events for the execution."""
    fake_spark.script("SELECT * FROM t", Job(TEN, tasks=3))
    async with open_session(fake_spark) as client:
        events = await client.run("len(spark.sql('SELECT * FROM t').collect())", id="p", language="python")
    progress = of_type(events, "progress")
    assert progress and progress[-1]["tasks_total"] == 3
    assert progress[-1]["tasks_done"] == 3 and progress[-1]["stages"][0]["done"]
    assert of_type(events, "value")[0]["text"] == "10"


async def test_input_in_a_cell_is_a_clear_error(fake_spark: FakeSpark) -> None:
    """``input()`` fails with a message saying nobody can type, instead of reading the gateway's terminal."""
    async with open_session(fake_spark) as client:
        events = await client.run("input('name? ')", id="in", language="python")
    error = of_type(events, "error")[0]
    assert error["exception"] == "StdinUnavailable" and "nobody can type" in error["message"]


async def test_spark_stop_in_a_cell_gets_the_next_execution_a_new_session(fake_spark: FakeSpark) -> None:
    """``spark.stop()`` is said to be a reset; the next cell has a working ``spark`` and its variables."""
    fake_spark.script("SELECT 1", Job(table(one=[1])))
    async with open_session(fake_spark) as client:
        stopped = await client.run("kept = 1\nspark.stop()", id="stop", language="python")
        after = await client.run("kept + len(spark.sql('SELECT 1').collect())", id="after", language="python")
    assert of_type(stopped, "error")[0]["code"] == "spark_session_reset"
    assert of_type(after, "value")[0]["text"] == "2"
    assert len(fake_spark.sessions) == 2


# ------------------------------------------------------------------ the queue


async def test_executions_run_one_at_a_time_in_fifo_order(fake_spark: FakeSpark) -> None:
    """Each is told its queue position; the next starts once the previous has shown its first page."""
    gate = threading.Event()
    fake_spark.script("SELECT slow", Job(TEN, gate=gate))
    fake_spark.script("SELECT * FROM t", Job(TEN))
    async with open_session(fake_spark) as client:
        for n, code in enumerate(["SELECT slow", "SELECT * FROM t", "SELECT * FROM t"]):
            await client.execute(code, id=f"e{n}")
        accepted = [await client.wait_for(lambda e, n=n: e["type"] == "accepted" and e["id"] == f"e{n}")
                    for n in range(3)]
        assert [e["queue_position"] for e in accepted] == [0, 1, 2]
        await client.wait_for(lambda e: e["type"] == "started")
        assert session_of(client).counts() == (2, 1)
        await anyio.sleep(0.2)  # time enough for a wrong order to show
        gate.set()
        await client.wait_for(lambda e: e["type"] == "finished" and e["id"] == "e2")
    started = [e["id"] for e in of_type(client.events, "started")]
    finished = [e["id"] for e in of_type(client.events, "finished")]
    assert started == finished == ["e0", "e1", "e2"]
    first_page = client.events.index(of_type(client.events, "rows")[0])
    assert of_type(client.events, "rows")[0]["id"] == "e0"
    assert client.events.index(of_type(client.events, "started")[1]) > first_page


async def test_the_queue_has_a_limit(fake_spark: FakeSpark) -> None:
    """Beyond max_queued waiting executions, execute is refused with limit_exceeded."""
    gate = threading.Event()
    fake_spark.script("SELECT slow", Job(TEN, gate=gate))
    async with open_session(fake_spark, limits=SessionLimits(max_queued=1)) as client:
        await client.execute("SELECT slow", id="running")
        await client.wait_for(lambda e: e["type"] == "started")
        await client.execute("SELECT slow", id="waiting")
        with pytest.raises(ProtocolError) as refused:
            await client.execute("SELECT slow", id="one-too-many")
        gate.set()
        await client.wait_for(lambda e: e["type"] == "finished" and e["id"] == "waiting")
    assert (refused.value.code, refused.value.request_id) == (ErrorCode.LIMIT_EXCEEDED, "one-too-many")


@pytest.mark.parametrize(("request_", "code"), [
    ({"type": "execute", "id": "done", "code": "SELECT 2", "language": "sql"}, ErrorCode.DUPLICATE_ID),
    ({"type": "execute", "id": "py", "code": "1", "language": "python"}, ErrorCode.UNSUPPORTED),
    ({"type": "execute", "id": "big", "code": "SELECT 1", "language": "sql", "page_size": 1001},
     ErrorCode.LIMIT_EXCEEDED),
    ({"type": "interrupt", "id": "nobody"}, ErrorCode.UNKNOWN_EXECUTION),
    ({"type": "interrupt", "id": "done"}, ErrorCode.INVALID_STATE),
    ({"type": "stream-rows", "id": "nobody", "result": 0, "max_rows": 1}, ErrorCode.UNKNOWN_EXECUTION),
    ({"type": "close-result", "id": "done", "result": 0}, ErrorCode.INVALID_STATE),
])
async def test_requests_that_cannot_be_served_are_refused_with_a_typed_error(
        fake_spark: FakeSpark, request_: dict, code: ErrorCode) -> None:
    """Reused ids (other code), disabled languages, limits, unknown or finished executions: a typed refusal."""
    fake_spark.script("SELECT 1", Job(table(one=[1])))
    limits = SessionLimits(languages=("sql",), max_page_size=1000)
    async with open_session(fake_spark, limits=limits) as client:
        await client.run("SELECT 1", id="done")
        with pytest.raises(ProtocolError) as refused:
            await client.send(request_)
        assert refused.value.code is code and refused.value.request_id == request_["id"]
        assert (await client.run("SELECT 1", id="still-works"))[-1]["status"] == "ok"


async def test_results_of_a_running_execution_are_checked(fake_spark: FakeSpark) -> None:
    """Credit for a result that does not exist (yet) is refused with unknown_result."""
    gate = threading.Event()
    fake_spark.script("SELECT slow", Job(TEN, gate=gate))
    async with open_session(fake_spark) as client:
        await client.execute("SELECT slow", id="slow")
        await client.wait_for(lambda e: e["type"] == "result")
        with pytest.raises(ProtocolError) as refused:
            await client.send({"type": "stream-rows", "id": "slow", "result": 3, "max_rows": 1})
        gate.set()
        await client.wait_for(lambda e: e["type"] == "finished")
    assert refused.value.code is ErrorCode.UNKNOWN_RESULT


async def test_ping_is_answered_with_its_data(fake_spark: FakeSpark) -> None:
    """``ping`` gets a ``pong`` carrying the same data."""
    async with open_session(fake_spark) as client:
        await client.send({"type": "ping", "data": {"n": 1}})
        assert await client.recv() == {"type": "pong", "seq": 1, "data": {"n": 1}}


async def test_a_session_is_idle_only_while_nothing_is_pending(fake_spark: FakeSpark) -> None:
    """``idle_since`` is None while an execution is queued or running, and set when the last ends."""
    gate = threading.Event()
    fake_spark.script("SELECT slow", Job(TEN, gate=gate))
    async with open_session(fake_spark) as client:
        session = session_of(client)
        assert session.idle_since is not None
        await client.execute("SELECT slow", id="slow")
        assert session.idle_since is None
        gate.set()
        await client.wait_for(lambda e: e["type"] == "finished")
        assert session.idle_since is not None and session.counts() == (0, 0)


# ------------------------------------------------------------------ stopping things


async def test_close_result_stops_streaming_and_releases_it_on_spark(fake_spark: FakeSpark) -> None:
    """``close-result`` ends the result with result-closed 'closed'; the execution still finishes ok."""
    fake_spark.script("SELECT * FROM t", Job(TEN, batch_rows=2))
    async with open_session(fake_spark) as client:
        await client.execute("SELECT * FROM t", id="q", page_size=2)
        await client.wait_for(lambda e: e["type"] == "rows")
        await client.send({"type": "close-result", "id": "q", "result": 0})
        events = await client.recv_until(lambda e: e["type"] == "finished")
    closed = of_type(events, "result-closed")[0]
    assert (closed["reason"], closed["rows"]) == ("closed", 2)
    assert events[-1]["status"] == "ok" and events[-1]["results"][0]["rows"] == 2
    assert not fake_spark.running()


async def test_interrupt_stops_a_query_or_a_python_loop_and_the_queue_goes_on(fake_spark: FakeSpark) -> None:
    """A long Spark query (stopped on Spark) and ``while True: pass`` alike finish 'interrupted', no error."""
    fake_spark.script("SELECT forever", LONG_JOB)
    fake_spark.script("SELECT * FROM t", Job(TEN))
    async with open_session(fake_spark) as client:
        await client.execute("SELECT forever", id="long")
        await client.execute("print('looping')\nwhile True:\n    pass", id="loop", language="python")
        await client.execute("SELECT * FROM t", id="next")
        await client.wait_for(lambda e: e["type"] == "progress" and e["id"] == "long")
        await client.send({"type": "interrupt", "id": "long"})
        await client.wait_for(lambda e: e["type"] == "stdout" and e["id"] == "loop")
        assert not fake_spark.running(), "the query was stopped on Spark"
        await client.send({"type": "interrupt", "id": "loop"})
        await client.wait_for(lambda e: e["type"] == "finished" and e["id"] == "next")
    status = {e["id"]: e["status"] for e in of_type(client.events, "finished")}
    assert status == {"long": "interrupted", "loop": "interrupted", "next": "ok"}
    assert not of_type(client.events, "error")
    assert len(rows_of([e for e in client.events if e.get("id") == "next"])) == 10


async def test_an_interrupt_never_lands_in_the_next_execution(
        fake_spark: FakeSpark, monkeypatch: pytest.MonkeyPatch) -> None:
    """Stopping a query whose interrupt call returns late must not stop the Python cell after it.

    Spark's interrupt RPC returns once the job is stopped; meanwhile the queue moves on to the
    next cell. The gateway used to try the Python interrupt right after that call without
    looking whether its execution was still the one running, and stopped the next cell (seen
    once as a flaky test under load).
    """
    from spark_gateway import spark as seam

    interrupt_tag = seam.interrupt_tag

    def slow_interrupt_tag(session: object, tag: str) -> object:
        stopped = interrupt_tag(session, tag)
        time.sleep(0.5)  # the RPC's answer is late: the next cell starts meanwhile
        return stopped

    monkeypatch.setattr(seam, "interrupt_tag", slow_interrupt_tag)
    fake_spark.script("SELECT forever", LONG_JOB)
    async with open_session(fake_spark) as client:
        await client.execute("SELECT forever", id="long")
        await client.execute("print('looping', flush=True)\nwhile True:\n    pass", id="loop", language="python")
        await client.wait_for(lambda e: e["type"] == "progress" and e["id"] == "long")
        await client.send({"type": "interrupt", "id": "long"})
        await client.wait_for(lambda e: e["type"] == "stdout" and e["id"] == "loop")
        await anyio.sleep(1.0)  # the late RPC has returned by now
        assert not [e for e in of_type(client.events, "finished") if e["id"] == "loop"], "the next cell was stopped"
        await client.send({"type": "interrupt", "id": "loop"})
        await client.wait_for(lambda e: e["type"] == "finished" and e["id"] == "loop")
    assert {e["id"]: e["status"] for e in of_type(client.events, "finished")} == {
        "long": "interrupted", "loop": "interrupted"}


async def test_interrupt_without_id_stops_everything_queued_and_running(fake_spark: FakeSpark) -> None:
    """``interrupt`` without id: the running execution and every queued one finish 'interrupted'."""
    fake_spark.script("SELECT forever", LONG_JOB)
    async with open_session(fake_spark) as client:
        for n in range(3):
            await client.execute("SELECT forever", id=f"e{n}")
        await client.wait_for(lambda e: e["type"] == "progress")
        await client.send({"type": "interrupt"})
        for n in range(3):
            await client.wait_for(lambda e, n=n: e["type"] == "finished" and e["id"] == f"e{n}")
    finished = of_type(client.events, "finished")
    assert {e["id"]: e["status"] for e in finished} == {f"e{n}": "interrupted" for n in range(3)}
    assert [e["id"] for e in of_type(client.events, "started")] == ["e0"], "the queued ones never started"
    assert len(fake_spark.operations) == 1


async def test_closing_the_session_stops_its_work_on_spark(fake_spark: FakeSpark) -> None:
    """A session closed mid-query interrupts the query and releases its Spark session."""
    fake_spark.script("SELECT forever", LONG_JOB)
    async with open_session(fake_spark) as client:
        await client.execute("SELECT forever", id="long")
        await client.wait_for(lambda e: e["type"] == "progress")
        assert fake_spark.running()
    assert not fake_spark.running() and fake_spark.sessions[0].released


async def test_shutdown_tells_the_client_and_interrupts_everything(fake_spark: FakeSpark) -> None:
    """The gateway stopping: a shutting_down error, then every execution ends 'interrupted'."""
    fake_spark.script("SELECT forever", LONG_JOB)
    async with open_session(fake_spark) as client:
        await client.execute("SELECT forever", id="long")
        await client.execute("SELECT forever", id="queued")
        await client.wait_for(lambda e: e["type"] == "progress")
        with anyio.fail_after(20):
            await session_of(client).shutdown("maintenance")
        for rid in ("long", "queued"):
            await client.wait_for(lambda e, rid=rid: e["type"] == "finished" and e["id"] == rid)
    notice = of_type(client.events, "error")[0]
    assert (notice["code"], notice["message"]) == ("shutting_down", "maintenance")
    assert {e["id"]: e["status"] for e in of_type(client.events, "finished")} == {
        "long": "interrupted", "queued": "interrupted"}
