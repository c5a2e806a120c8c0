"""The session's worker thread alone: jobs in order, results and errors handed back, interrupts (fast tier)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from functools import partial
from types import CodeType

import anyio
import pytest

from spark_gateway.worker import ExecutionInterrupted, Worker


def cell(code: str, name: str = "<cell w>") -> CodeType:
    """Code compiled as the session compiles a user's cell (its frames are the user's)."""
    return compile(code, name, "exec")


def is_cell(filename: str) -> bool:
    return filename.startswith("<cell ")


@pytest.fixture
def worker() -> Iterator[Worker]:
    worker = Worker("test-worker")
    yield worker
    worker.stop()


async def test_jobs_run_in_order_on_one_thread_and_hand_back_values_and_errors(worker: Worker) -> None:
    """``run`` returns the job's value or raises its exception in the awaiting task; one thread for all."""
    threads = []

    def job(n: int) -> int:
        threads.append(threading.current_thread())
        return n * 2

    assert [await worker.run(partial(job, n)) for n in range(3)] == [0, 2, 4]
    assert len(set(threads)) == 1 and threads[0] is not threading.current_thread()
    with pytest.raises(KeyError, match="missing"):
        await worker.run(partial(dict[str, int]().__getitem__, "missing"))


async def test_an_endless_loop_in_user_code_is_interrupted(worker: Worker) -> None:
    """``while True: pass`` in a cell ends with ExecutionInterrupted once interrupt() lands in it."""
    def job() -> None:
        worker.interruptible(lambda: exec(cell("while True:\n    pass"), {}), is_cell)

    async with anyio.create_task_group() as tg:
        outcome: list[BaseException] = []

        async def run() -> None:
            try:
                await worker.run(job)
            except ExecutionInterrupted as exc:
                outcome.append(exc)

        tg.start_soon(run)
        with anyio.fail_after(10):
            while not worker.interrupt():  # noqa: ASYNC110 - retried until it lands in the user's frame
                await anyio.sleep(0.01)
    assert len(outcome) == 1
    assert await worker.run(lambda: "free again") == "free again"


async def test_outside_user_code_an_interrupt_waits_for_a_safe_point(worker: Worker) -> None:
    """In gateway code interrupt() raises nothing; the job sees stop_requested and check_stop raises there."""
    reached = threading.Event()

    def gateway_side() -> str:
        reached.set()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            worker.check_stop()  # a safe point, as printing has
            time.sleep(0.005)
        return "never interrupted"

    async with anyio.create_task_group() as tg:
        outcome: list[object] = []

        async def run() -> None:
            try:
                outcome.append(await worker.run(lambda: worker.interruptible(gateway_side, is_cell)))
            except ExecutionInterrupted as exc:
                outcome.append(exc)

        tg.start_soon(run)
        await anyio.to_thread.run_sync(reached.wait)
        assert worker.interrupt() is False, "not raised asynchronously outside the user's frames"
        assert worker.stop_requested
    assert len(outcome) == 1 and isinstance(outcome[0], ExecutionInterrupted)


async def test_nothing_is_interrupted_between_jobs(worker: Worker) -> None:
    """With no interruptible job running, interrupt() does nothing, and the next job runs normally."""
    assert worker.interrupt() is False
    assert await worker.run(lambda: worker.interruptible(lambda: 42, is_cell)) == 42
    assert worker.interrupt() is False


async def test_a_cancelled_caller_interrupts_its_job_and_waits_for_it(worker: Worker) -> None:
    """Cancelling the task that awaits a job stops the job's user code; the thread is never abandoned."""
    started = threading.Event()

    def job() -> None:
        started.set()
        worker.interruptible(lambda: exec(cell("while True:\n    pass"), {}), is_cell)

    with anyio.move_on_after(10) as scope:
        async with anyio.create_task_group() as tg:
            tg.start_soon(worker.run, job)
            await anyio.to_thread.run_sync(started.wait)
            await anyio.sleep(0.05)
            tg.cancel_scope.cancel()
    assert not scope.cancelled_caught
    assert await worker.run(lambda: "next job") == "next job"


# Run in a process of its own: a regression would hang every traced thread of the test run.
TRACED_AFTER_JOBS = """
import sys, anyio
from spark_gateway.worker import ExecutionInterrupted, Worker

def is_cell(filename):
    return filename.startswith("<cell ")

async def main():
    worker = Worker("w")
    await worker.run(lambda: worker.interruptible(lambda: 1, is_cell))
    loop = compile("while True:\\n    pass", "<cell t>", "exec")
    async with anyio.create_task_group() as tg:
        async def run():
            try:
                await worker.run(lambda: worker.interruptible(lambda: exec(loop, {}), is_cell))
            except ExecutionInterrupted:
                pass
        tg.start_soon(run)
        while not worker.interrupt():
            await anyio.sleep(0.01)
    sys.settrace(lambda frame, event, arg: None)  # as coverage and debuggers do
    def traced():
        return "traced code still runs"
    print(traced())

anyio.run(main)
"""


def test_code_under_a_tracer_still_runs_after_interruptible_jobs() -> None:
    """After jobs that ended normally or by an interrupt, a traced call returns (coverage, debuggers).

    Clearing a thread's async exception when none is pending leaves CPython 3.11's
    async-exception signal set: every call then takes the slow path, and under a tracer the
    next function entry loops forever.
    """
    try:
        done = subprocess.run([sys.executable, "-c", TRACED_AFTER_JOBS], capture_output=True, text=True,
                              timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail("a traced call never returned after the worker's jobs")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "traced code still runs"
