"""ResultCursor alone, over result streams of the fake Spark: pages, byte limits, closing, failures (fast tier)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import orjson
import pyarrow as pa
import pytest
from pyspark.errors.exceptions.connect import SparkException

from spark_gateway.cursor import PAGE_ENVELOPE_BYTES, ResultCursor, RowQueue
from spark_gateway.json_pages import batch_to_json
from spark_gateway.outbox import Outbox
from tests.fakes.spark import LONG_JOB, FakeSpark, Job, arrow_responses, table
from tests.wsclient import arrow_table, decode_frame

TEN = table(id=list(range(10)))


class Opened:
    """A cursor on a scripted result, the frames it sent, and the failures it reported."""

    def __init__(self, cursor: ResultCursor, outbox: Outbox) -> None:
        self.cursor = cursor
        self.outbox = outbox
        self.frames: list[str | bytes] = []
        self.failures: list[BaseException] = []

    async def events(self, count: int) -> list[dict[str, Any]]:
        """The next ``count`` events, schema-checked."""
        out = []
        with anyio.fail_after(10):
            for _ in range(count):
                frame = await self.outbox.get()
                self.frames.append(frame)
                out.append(decode_frame(frame))
        return out


@asynccontextmanager
async def open_cursor(fake: FakeSpark, job: Job, *, page_size: int = 100, limit: int | None = None,
                      format: str = "json", max_page_bytes: int = 1 << 20) -> AsyncIterator[Opened]:
    """Open ``job``'s result on the fake Spark and run a cursor over it until the block ends."""
    fake.script("SELECT it", job)
    session = fake.connect("sc://fake")
    stream = fake.open_result(session, fake.run_sql(session, "SELECT it"), limit, None)
    assert stream is not None
    outbox = Outbox()
    opened: Opened

    def failed(cursor: ResultCursor, exc: BaseException) -> None:
        opened.failures.append(exc)

    cursor = ResultCursor(execution_id="x", number=0, stream=stream, session=session, outbox=outbox,
                          page_size=page_size, limit=limit, format=format, limiter=anyio.CapacityLimiter(2),
                          on_error=failed, max_page_bytes=max_page_bytes)
    opened = Opened(cursor, outbox)
    async with anyio.create_task_group() as tg:
        tg.start_soon(cursor.run)
        yield opened
        await cursor.close("closed")  # ends run() if the test left it streaming
    assert not fake.running()


async def test_json_pages_stay_under_the_byte_limit_and_a_bigger_row_goes_alone(fake_spark: FakeSpark) -> None:
    """With max_page_bytes, pages end early so each rows frame fits; a row bigger than that is sent alone."""
    texts = ["a" * 300] * 8 + ["b" * 3000] + ["c" * 10] * 3
    job = Job(table(text=texts), batch_rows=5)
    async with open_cursor(fake_spark, job, page_size=100, max_page_bytes=1024 + PAGE_ENVELOPE_BYTES) as opened:
        opened.cursor.grant(1000)
        events: list[dict[str, Any]] = []
        while not (events and events[-1]["last"]):
            events += await opened.events(1)
    assert [row for e in events for row in e["rows"]] == [[t] for t in texts]
    for frame, event in zip(opened.frames, events, strict=True):
        assert len(frame) <= 1024 + PAGE_ENVELOPE_BYTES or len(event["rows"]) == 1
    assert [len(e["rows"]) for e in events if "b" * 3000 in str(e["rows"])] == [1]


async def test_whole_spark_responses_are_forwarded_byte_for_byte(fake_spark: FakeSpark) -> None:
    """Arrow pages that take whole responses carry Spark's record batch bytes as they came."""
    job = Job(TEN, batch_rows=5)
    async with open_cursor(fake_spark, job, page_size=5, format="arrow") as opened:
        opened.cursor.grant(100)
        events = await opened.events(3)
    assert [e["count"] for e in events] == [5, 5, 0] and events[-1]["last"], "the end came after a full page"
    for response in arrow_responses(TEN, 5):
        assert bytes(response.body) in b"".join(e["payload"] for e in events)
    assert arrow_table(events).equals(TEN)


async def test_arrow_pages_that_cut_responses_still_form_the_table(fake_spark: FakeSpark) -> None:
    """Pages that cut Spark's responses anywhere still concatenate to the result's IPC stream."""
    job = Job(TEN, batch_rows=4)
    async with open_cursor(fake_spark, job, page_size=3, format="arrow") as opened:
        opened.cursor.grant(100)
        events = await opened.events(4)
    assert [e["count"] for e in events] == [3, 3, 3, 1]
    assert arrow_table(events).equals(TEN)


async def test_until_is_what_was_sent_plus_the_credit_left(fake_spark: FakeSpark) -> None:
    """A cursor may stream up to its first page plus every row granted since."""
    async with open_cursor(fake_spark, Job(TEN), page_size=4) as opened:
        [first] = await opened.events(1)
        assert (len(first["rows"]), opened.cursor.until) == (4, 4)
        opened.cursor.grant(2)
        [second] = await opened.events(1)
        assert (second["offset"], len(second["rows"]), opened.cursor.until) == (4, 2, 6)


async def test_closing_while_spark_computes_interrupts_the_operation(fake_spark: FakeSpark) -> None:
    """A close while a thread waits inside Spark interrupts the operation there, then says result-closed."""
    async with open_cursor(fake_spark, LONG_JOB) as opened:
        with anyio.fail_after(10):
            while not opened.cursor.stream.job_started:  # noqa: ASYNC110 - polling a plain attribute
                await anyio.sleep(0.01)
        await opened.cursor.close("interrupted")
        [closed] = await opened.events(1)
    assert (closed["type"], closed["reason"], closed["rows"]) == ("result-closed", "interrupted", 0)
    assert [op.state for op in fake_spark.operations] == ["cancelled"]
    assert opened.cursor.done and opened.cursor.end == "interrupted"


async def test_a_stream_failing_is_reported_once_and_closes_the_result(fake_spark: FakeSpark) -> None:
    """Spark failing mid-result: on_error gets Spark's exception itself, then result-closed 'error'."""
    boom = SparkException(message="[INTERNAL_ERROR] boom", errorClass="INTERNAL_ERROR", sql_state="XX000")
    async with open_cursor(fake_spark, Job(TEN, batch_rows=2, error=boom, error_after=1), page_size=2) as opened:
        first, closed = await opened.events(2)
    assert first["rows"] == [[0], [1]]
    assert (closed["type"], closed["reason"]) == ("result-closed", "error")
    assert opened.failures == [boom]


async def test_closing_a_result_waiting_for_credit_interrupts_it_on_spark(fake_spark: FakeSpark) -> None:
    """A close while the fetcher waits for the client (no thread in Spark) still stops the operation."""
    job = Job(table(id=list(range(100))), batch_rows=2, until_interrupted=True)
    async with open_cursor(fake_spark, job, page_size=2) as opened:
        await opened.events(1)
        with anyio.fail_after(5):
            while opened.cursor._in_fetch:  # noqa: ASYNC110 - the fetcher settles once its buffer is full
                await anyio.sleep(0.05)
        await opened.cursor.close("closed")
        with anyio.move_on_after(1):
            while not opened.cursor.done:  # noqa: ASYNC110 - polling a plain attribute
                await anyio.sleep(0.05)
        states = [op.state for op in fake_spark.operations]
        fake_spark.stop()  # lets a drain that is still reading end, so the block can close either way
    assert states == ["cancelled"], "the cursor is still reading the rest of the result from Spark"


# ------------------------------------------------------------------ the queue of rows not sent yet


def json_chunk(values: list[Any]) -> Any:
    return batch_to_json(pa.record_batch({"v": pa.array(values)}))


def rows_of(pieces: list[Any]) -> list[Any]:
    return [row for piece in pieces for row in orjson.loads(b"[" + piece.text() + b"]")]


def test_row_queue_takes_rows_across_chunks_in_order() -> None:
    """take(n) returns the next n rows whatever the chunk boundaries, and keeps count."""
    queue = RowQueue()
    for values in ([1, 2, 3], [], [4], [5, 6]):
        queue.append(json_chunk(values))
    assert queue.size == 6
    assert rows_of(queue.take(2)) == [[1], [2]]
    assert rows_of(queue.take(3)) == [[3], [4], [5]]
    assert queue.size == 1 and rows_of(queue.take(1)) == [[6]]


def test_row_queue_keeps_only_the_first_rows_when_a_limit_is_reached() -> None:
    """keep(n) drops every row after the first n."""
    queue = RowQueue()
    queue.append(json_chunk([1, 2, 3]))
    queue.append(json_chunk([4, 5]))
    queue.take(1)
    queue.keep(3)
    assert queue.size == 3 and rows_of(queue.take(3)) == [[2], [3], [4]]


@pytest.mark.parametrize(("nbytes", "fit"), [(1, 1), (24, 2), (10_000, 4)])
def test_row_queue_measures_how_many_rows_fit_in_a_byte_budget(nbytes: int, fit: int) -> None:
    """within_bytes counts the rows whose JSON text fits, and never fewer than one."""
    queue = RowQueue()
    queue.append(json_chunk(["aaaaaaa", "bbbbbbb"]))
    queue.append(json_chunk(["ccccccc", "ddddddd"]))
    assert queue.within_bytes(4, nbytes) == fit
