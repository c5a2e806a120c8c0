"""The gateway's CPU per result page, measured apart: no Spark, no socket, no client.

A real ``ResultCursor`` and ``Outbox`` stream a real ``ResultStream`` over Spark-like Arrow
IPC responses of 10k rows held in memory (the fake Spark of tests/fakes/spark.py); every
frame is then written the way uvicorn's websockets-sansio protocol writes it (text
encoded to UTF-8, framed). The rows are the bench query's (bigint, double, string). It
prints the process CPU per 10M rows for each path, and for JSON pages how much of it the
fetch thread spent (reading, and writing the JSON text of each batch), interleaved over
repetitions. Serialising the fake's responses when a result opens is counted in every
path alike (~0.2 CPU-s per 10M rows)::

    .venv/bin/python bench/bench_page_cpu.py --rows 1000000 --reps 5 --paths arrow,columns,rows

To compare with other gateway code, put its ``gateway`` directory first on the path
(``PYTHONPATH=/tmp/old/gateway``, e.g. from ``git archive REV gateway``). Use it to decide
on changes to the JSON text (bench/README.md, "The gateway's CPU"); the full bench
(bench_gateway.py) adds Spark, gRPC and the client, whose noise on a shared 2-core
machine hides changes of a few percent.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import anyio  # noqa: E402
import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.compute as pc  # noqa: E402
import pytest  # noqa: E402
from websockets.frames import Frame, Opcode  # noqa: E402

from spark_gateway.cursor import ResultCursor  # noqa: E402
from spark_gateway.outbox import Outbox  # noqa: E402
from tests.fakes.spark import FakeSpark, Job  # noqa: E402

PAGE = 10_000


def bench_table(rows: int) -> pa.Table:
    """``SELECT id, id * 1.5D AS x, concat('row-', CAST(id AS STRING)) AS s FROM range(rows)``."""
    ids = np.arange(rows, dtype=np.int64)
    s = pc.binary_join_element_wise(pa.scalar("row-"), pc.cast(pa.array(ids), pa.string()), pa.scalar(""))
    return pa.table({"id": ids, "x": ids * 1.5, "s": s})


def write_frame(frame: str | bytes) -> bytes:
    """What uvicorn's websockets-sansio protocol does with a websocket.send message."""
    if isinstance(frame, str):
        return Frame(Opcode.TEXT, frame.encode()).serialize(mask=False, extensions=[])
    return Frame(Opcode.BINARY, frame).serialize(mask=False, extensions=[])


class FetchClock:
    """CPU time the cursor's fetch thread spends in ``_next_chunks`` (read + JSON text)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        original = ResultCursor._next_chunks

        def timed(cursor: ResultCursor) -> Any:
            start = time.thread_time()
            try:
                return original(cursor)
            finally:
                self.seconds += time.thread_time() - start

        ResultCursor._next_chunks = timed  # type: ignore[method-assign]


async def stream(fake: FakeSpark, table: pa.Table, path: str) -> float:
    """Stream ``table`` through a cursor in ``path`` (arrow, rows, columns); CPU seconds used."""
    fake.script("SELECT it", Job(table, batch_rows=PAGE))
    session = fake.connect("sc://fake")
    result = fake.open_result(session, fake.run_sql(session, "SELECT it"), None, None)
    assert result is not None
    outbox = Outbox()
    failures: list[BaseException] = []
    cursor = ResultCursor(
        execution_id="e1",
        number=0,
        stream=result,
        session=session,
        outbox=outbox,
        page_size=PAGE,
        limit=None,
        format="arrow" if path == "arrow" else "json",
        limiter=anyio.CapacityLimiter(2),
        on_error=lambda c, e: failures.append(e),
        layout="columns" if path == "columns" else "rows",
    )
    cursor.grant(10**12)

    async def writer() -> None:
        while True:
            write_frame(await outbox.get())

    start = time.process_time()
    async with anyio.create_task_group() as tg:
        tg.start_soon(writer)
        await cursor.run()
        while outbox.home.pos <= outbox.seq:
            write_frame(await outbox.get())
        tg.cancel_scope.cancel()
    if failures or cursor.sent != table.num_rows:
        raise SystemExit(f"{path}: {cursor.sent} rows sent, failures {failures}")
    return time.process_time() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--paths", default="arrow,columns")
    args = ap.parse_args()
    paths = args.paths.split(",")
    gc.set_threshold(100_000, 50, 100)  # the gateway's (cli.py)
    table = bench_table(args.rows)
    monkeypatch = pytest.MonkeyPatch()
    fake = FakeSpark().install(monkeypatch)
    clock = FetchClock()
    per_10m = 10_000_000 / args.rows
    cpu: dict[str, list[float]] = {p: [] for p in paths}
    fetch: dict[str, list[float]] = {p: [] for p in paths}
    try:
        for _ in range(args.reps):
            for path in paths:
                clock.seconds = 0.0
                cpu[path].append(anyio.run(stream, fake, table, path) * per_10m)
                fetch[path].append(clock.seconds * per_10m)
    finally:
        fake.stop()
        monkeypatch.undo()
    print(f"{args.rows} rows of (bigint, double, string), pages of {PAGE}, {args.reps} interleaved repetitions")
    print("| path | process CPU s per 10M rows, median (min) | of it the fetch thread |")
    print("|---|---|---|")
    for path in paths:
        print(
            f"| {path} | {statistics.median(cpu[path]):.3f} ({min(cpu[path]):.3f}) | "
            f"{statistics.median(fetch[path]):.3f} |"
        )
    if "arrow" in cpu:
        base = statistics.median(cpu["arrow"])
        for path in paths:
            if path != "arrow":
                print(f"{path} ÷ arrow: {statistics.median(cpu[path]) / base:.2f}×")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
