"""The outbox alone: seq, backpressure accounting, replay after a resume, exact loss reports."""

from __future__ import annotations

import tracemalloc

import anyio
import orjson
import pytest

from spark_gateway.outbox import Outbox, ReaderCut, ResumeError
from spark_gateway_protocol.messages import ArrowRows, Error, Finished, Pong, Rows, Started


def seq_of(frame: str | bytes) -> int:
    return int(orjson.loads(frame)["seq"])


async def send_all(outbox: Outbox) -> list[str | bytes]:
    """Every frame the home reader has not sent yet (a replay too)."""
    frames = []
    while outbox.home.pos <= outbox.seq:
        frames.append(await outbox.get())
    return frames


async def test_rewind_replays_what_followed_last_seq_once() -> None:
    """A resume from last_seq puts every later frame back in front of the unsent ones, once."""
    outbox = Outbox()
    for i in range(10):
        outbox.put(Pong(i))
    sent = await send_all(outbox)
    assert [seq_of(f) for f in sent] == list(range(1, 11))
    outbox.put(Pong("unsent"))
    next_seq, lost = outbox.rewind(6)
    assert (next_seq, lost) == (7, None)
    assert [seq_of(f) for f in await send_all(outbox)] == [7, 8, 9, 10, 11]
    assert outbox.rewind(11) == (12, None)  # nothing to replay: the live stream goes on
    assert outbox.pending_bytes == 0


async def test_rewind_outside_the_stream_is_refused() -> None:
    """A last_seq the stream never reached (or a negative one) is a ResumeError."""
    outbox = Outbox()
    outbox.put(Pong(1))
    with pytest.raises(ResumeError):
        outbox.rewind(2)
    with pytest.raises(ResumeError):
        outbox.rewind(-1)


async def test_frames_beyond_the_replay_budget_are_described_exactly() -> None:
    """Frames pushed out of the replay buffer are reported as lost: counts per type, row ranges per result."""
    outbox = Outbox(replay_bytes=400)
    outbox.put(Started("q"))  # seq 1
    for page in range(6):  # seq 2..7: 6 pages of 10 rows
        outbox.put(Rows("q", 0, page * 10, [[i, "x" * 10] for i in range(10)], last=False, truncated=False))
    outbox.put(Pong(None))  # seq 8
    await send_all(outbox)
    next_seq, lost = outbox.rewind(0)
    assert lost is not None and lost.from_seq == 1 and lost.to_seq == next_seq - 1
    gone_pages = next_seq - 2  # replay kept the newest frames only
    assert gone_pages >= 2
    by_id = {e.id: e for e in lost.executions}
    assert by_id["q"].messages == {"started": 1, "rows": gone_pages}
    assert [(r.result, r.from_offset, r.to_offset) for r in by_id["q"].results] == [(0, 0, gone_pages * 10)]
    replayed = [seq_of(f) for f in await send_all(outbox)]
    assert replayed == list(range(next_seq, 9))


async def test_frames_that_left_the_replay_buffer_are_released_at_once() -> None:
    """Memory stays within the replay buffer, whatever the frame size: 300 frames of 100 kB, 1 MB kept.

    The log used to hold every trimmed frame until it compacted itself (once per 1024 frames):
    a 10M-row result streamed as 300 kB Arrow pages kept ~300 MB in the gateway.
    """
    outbox = Outbox(replay_bytes=1 << 20, high_water_bytes=64 << 20)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(300):
            outbox.put(Pong("x" * 100_000))
            await outbox.get()  # sent at once, as a fast client would take it
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert outbox.home.pos == 301
    assert held < 3 << 20, f"{held:,} bytes held for a 1 MiB replay buffer"


async def test_column_pages_are_counted_by_their_rows() -> None:
    """A columns-layout page counts its ``count`` rows (not its columns) in the loss report."""
    outbox = Outbox(replay_bytes=100)
    for page in range(4):  # seq 1..4: 4 pages of 7 rows in 2 columns
        outbox.put(Rows("q", 0, page * 7, None, last=False, columns=[list(range(7)), ["x" * 10] * 7], count=7))
    await send_all(outbox)
    next_seq, lost = outbox.rewind(0)
    assert lost is not None and next_seq > 2
    gone = next_seq - 1
    assert [(r.from_offset, r.to_offset) for r in lost.executions[0].results] == [(0, gone * 7)]


async def test_too_old_to_describe_is_refused() -> None:
    """Beyond the records kept of lost frames, a resume is refused rather than leaving a silent gap."""
    outbox = Outbox(replay_bytes=10, lost_records=2)
    for i in range(6):
        outbox.put(Pong(i))
    await send_all(outbox)
    with pytest.raises(ResumeError, match="too old"):
        outbox.rewind(0)
    next_seq, lost = outbox.rewind(3)  # records of 4 and 5 are still there
    assert next_seq == 6 and lost is not None and (lost.from_seq, lost.to_seq) == (4, 5)


async def test_producers_wait_while_the_unsent_frames_are_over_the_high_water_mark() -> None:
    """wait_room() blocks past high_water_bytes until the writer takes frames; close() frees waiters."""
    outbox = Outbox(high_water_bytes=100)
    outbox.put(Pong("x" * 200))
    waited = anyio.Event()

    async def producer() -> None:
        await outbox.wait_room()
        waited.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(producer)
        await anyio.sleep(0.05)
        assert not waited.is_set()
        await outbox.get()
        with anyio.fail_after(5):
            await waited.wait()
    outbox.put(Pong("y" * 200))
    outbox.close()
    with anyio.fail_after(5):
        await outbox.wait_room()  # a closed outbox never blocks a producer


async def test_get_waits_for_the_next_frame() -> None:
    """The writer's get() waits until an event is put, then returns it with the next seq."""
    outbox = Outbox()
    async with anyio.create_task_group() as tg:
        frames: list[str | bytes] = []

        async def writer() -> None:
            frames.append(await outbox.get())

        tg.start_soon(writer)
        await anyio.sleep(0.02)
        assert outbox.put(Pong("late")) == 1
    assert [seq_of(f) for f in frames] == [1]


def test_an_event_that_cannot_be_encoded_uses_no_seq() -> None:
    """put() of an event that fails to encode raises, and the stream keeps its seq without a gap."""
    outbox = Outbox()
    with pytest.raises(TypeError):
        outbox.put(Pong({1, 2}))
    assert outbox.put(Pong(1)) == 1 and outbox.pending_bytes > 0


def test_every_event_sent_is_counted_in_the_metrics() -> None:
    """Bytes, rows (JSON and Arrow pages), finished executions by status and errors by code are counted."""
    outbox = Outbox()
    outbox.put(Rows("q", 0, 0, [[1], [2]], last=False))
    outbox.put(ArrowRows("q", 0, 2, 3, True, False, b"\x00" * 8))
    outbox.put(Finished("q", "ok", 12.0, []))
    outbox.put(Error("spark_error", "boom", id="q"))
    metrics = outbox.metrics
    assert metrics.rows_streamed == 5 and metrics.bytes_sent == outbox.pending_bytes
    assert dict(metrics.executions) == {"ok": 1} and dict(metrics.errors) == {"spark_error": 1}
    assert metrics.latency_count == 1


async def test_every_reader_gets_every_frame_from_where_it_joined() -> None:
    """A joined reader starts at the next event (or replays from last_seq); frames are encoded once, for all."""
    outbox = Outbox()
    for i in range(3):
        outbox.put(Pong(i))
    reader, next_seq, lost = outbox.join(None)
    assert (next_seq, lost) == (4, None)
    outbox.attach(reader, None)
    outbox.put(Pong("both"))
    assert [seq_of(f) for f in await send_all(outbox)] == [1, 2, 3, 4]
    assert seq_of(await outbox.get(reader)) == 4
    replaying, next_seq, lost = outbox.join(1)
    assert (next_seq, lost, outbox.replay_from) == (2, None, 1)
    assert [seq_of(await outbox.get(replaying)) for _ in range(3)] == [2, 3, 4]


async def test_a_stalled_reader_is_cut_and_never_holds_the_producers_back() -> None:
    """Backpressure follows the fastest reader; one more than max_lag_bytes behind it is cut (its on_cut runs)."""
    outbox = Outbox(high_water_bytes=500, replay_bytes=4000)
    assert outbox.max_lag_bytes == 2000
    cut: list[str] = []
    stalled, _, _ = outbox.join(None)
    outbox.attach(stalled, lambda: cut.append("stalled"))
    outbox.attach(outbox.home, lambda: cut.append("home"))
    for _ in range(200):  # ~6 KB: the producer never waits, the home reader keeps up
        with anyio.fail_after(1):
            await outbox.wait_room()
        outbox.put(Pong("x" * 20))
        await outbox.get()
    assert cut == ["stalled"] and stalled.cut and outbox.readers == 1
    with pytest.raises(ReaderCut):
        await outbox.get(stalled)


async def test_with_no_reader_attached_the_producers_wait() -> None:
    """Nobody reads (every client away): frames wait in the outbox up to the high-water mark, then producers do."""
    outbox = Outbox(high_water_bytes=100)
    reader, _, _ = outbox.join(None)
    outbox.attach(reader, None)
    outbox.detach(reader)
    while outbox.pending_bytes <= 100:
        outbox.put(Pong("y" * 10))
    with anyio.move_on_after(0.1) as waited:
        await outbox.wait_room()
    assert waited.cancelled_caught
