"""The outbox alone: seq, backpressure accounting, replay after a resume, exact loss reports."""

from __future__ import annotations

import orjson
import pytest

from spark_gateway.outbox import Outbox, ResumeError
from spark_gateway_protocol.messages import Pong, Rows, Started


def seq_of(frame: str | bytes) -> int:
    return int(orjson.loads(frame)["seq"])


async def send_all(outbox: Outbox) -> list[str | bytes]:
    frames = []
    while outbox.pending_bytes:
        frames.append(await outbox.get())
    return frames


async def test_rewind_replays_what_followed_last_seq_once() -> None:
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
    outbox = Outbox()
    outbox.put(Pong(1))
    with pytest.raises(ResumeError):
        outbox.rewind(2)
    with pytest.raises(ResumeError):
        outbox.rewind(-1)


async def test_frames_beyond_the_replay_budget_are_described_exactly() -> None:
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
    outbox = Outbox(replay_bytes=10, lost_records=2)
    for i in range(6):
        outbox.put(Pong(i))
    await send_all(outbox)
    with pytest.raises(ResumeError, match="too old"):
        outbox.rewind(0)
    next_seq, lost = outbox.rewind(3)  # records of 4 and 5 are still there
    assert next_seq == 6 and lost is not None and (lost.from_seq, lost.to_seq) == (4, 5)
