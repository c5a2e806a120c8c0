"""A blocking wrapper for scripts and notebooks: the asyncio session runs on a background thread.

::

    with connect_sync("ws://localhost:8765/ws") as s:
        rows = s.sql("SELECT 1 AS one").rows()
        table = s.sql("SELECT * FROM range(10)").to_arrow()

Ctrl+C while a call waits interrupts the execution on Spark, waits for it to stop, then
raises ``KeyboardInterrupt`` (a second Ctrl+C stops waiting).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Sequence
from concurrent.futures import Future
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from spark_gateway_protocol.messages import (
    CatalogEntries,
    Column,
    Completions,
    ExecutionInfo,
    Format,
    Inspection,
    Language,
    Progress,
    SessionInfo,
    Status,
    Units,
)

from .execution import DEFAULT_WINDOW, Execution, ResultStream, Row
from .session import DEFAULT_URL, Session, connect

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

T = TypeVar("T")


class _LoopThread:
    """An event loop running forever on a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="spark-gateway-client",
                                        daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], execution: Execution | None = None) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result()
        except KeyboardInterrupt:
            if execution is None:
                future.cancel()
                raise
            self.loop.call_soon_threadsafe(execution.interrupt)
            try:
                future.exception()  # wait for the execution to stop (a second Ctrl+C stops waiting)
            finally:
                future.cancel()
            raise

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        if not self._thread.is_alive():
            self.loop.close()


class SyncResult:
    """Blocking view of a :class:`ResultStream`."""

    def __init__(self, stream: ResultStream, runner: _LoopThread) -> None:
        self._stream = stream
        self._runner = runner

    @property
    def number(self) -> int:
        return self._stream.number

    @property
    def columns(self) -> list[Column]:
        return self._stream.columns

    @property
    def truncated(self) -> bool:
        return self._stream.truncated

    def __iter__(self) -> Iterator[Any]:
        return _iterate(self._runner, self._stream.batches(), self._stream.execution)

    def rows(self) -> list[Row]:
        return self._runner.run(self._stream.rows(), self._stream.execution)

    def to_arrow(self) -> pa.Table:
        return self._runner.run(self._stream.to_arrow(), self._stream.execution)

    def close(self) -> None:
        self._runner.loop.call_soon_threadsafe(self._stream.close)


class SyncExecution:
    """Blocking view of an :class:`Execution` (same methods, without ``await``)."""

    def __init__(self, execution: Execution, runner: _LoopThread) -> None:
        self.execution = execution
        self._runner = runner

    def __repr__(self) -> str:
        return repr(self.execution).replace("<Execution", "<SyncExecution", 1)

    @property
    def id(self) -> str:
        return self.execution.id

    @property
    def status(self) -> Status | None:
        """``None`` until finished (or never started): a peek, it runs nothing."""
        return self.execution.status

    # Reading the output of an execution never started runs it to its end first: in blocking
    # code, ``s.python("1 + 1").value`` means "run it and tell me", never a silent None.
    # One already started (being iterated, say) answers with what it has so far.

    @property
    def stdout(self) -> str:
        self._run_if_unstarted()
        return self.execution.stdout

    @property
    def stderr(self) -> str:
        self._run_if_unstarted()
        return self.execution.stderr

    @property
    def value(self) -> str | None:
        """The trailing value's repr; raises how the execution failed, as :meth:`wait` does."""
        if self._run_if_unstarted():
            self.wait()
        return self.execution.value

    def _run_if_unstarted(self) -> bool:
        """Run a never-started execution to its end (failures kept, not raised); True if it did."""
        if self.execution.request is not None or self.execution.done:
            return False
        self.wait(check=False)
        return True

    @property
    def truncated(self) -> bool:
        return self.execution.truncated

    @property
    def result_schema(self) -> list[Column] | None:
        return self.execution.result_schema

    def start(self, format: Format | None = None) -> SyncExecution:
        self._runner.run(_call(lambda: self.execution.start(format)))
        return self

    def wait(self, check: bool = True) -> SyncExecution:
        """Run to the end (results nobody reads are closed); raises if it failed (unless ``check=False``)."""
        self._runner.run(self.execution.wait(check), self.execution)
        return self

    def rows(self, result: int = 0) -> list[Row]:
        return self._runner.run(self.execution.rows(result), self.execution)

    def to_arrow(self, result: int = 0) -> pa.Table:
        return self._runner.run(self.execution.to_arrow(result), self.execution)

    def to_pandas(self, result: int = 0, **kwargs: Any) -> pd.DataFrame:
        return self.to_arrow(result).to_pandas(**kwargs)

    def results(self) -> Iterator[SyncResult]:
        for stream in _iterate(self._runner, self.execution.results(), self.execution):
            yield SyncResult(stream, self._runner)

    def __iter__(self) -> Iterator[Any]:
        return _iterate(self._runner, self.execution.batches(), self.execution)

    def interrupt(self) -> None:
        self._runner.loop.call_soon_threadsafe(self.execution.interrupt)


class SyncSession:
    """Blocking view of a :class:`Session`; use :func:`connect_sync`."""

    def __init__(self, session: Session, runner: _LoopThread) -> None:
        self.session = session
        self._runner = runner

    @property
    def info(self) -> SessionInfo:
        return self.session.info

    @property
    def state(self) -> str:
        """``"open"``, ``"resuming"`` (reconnecting after a drop) or ``"closed"``."""
        return self.session.state

    @property
    def resumes(self) -> int:
        """How many times the session was resumed on a new connection."""
        return self.session.resumes

    def execute(self, code: str, *, language: Language = "sql", page_size: int | None = None,
                limit: int | None = None, format: Format | None = None, window: int = DEFAULT_WINDOW,
                on_stdout: Callable[[str], Any] | None = None, on_stderr: Callable[[str], Any] | None = None,
                on_progress: Callable[[Progress], Any] | None = None, keep_output: bool = True,
                id: str | None = None) -> SyncExecution:
        """Like :meth:`Session.execute`; callbacks run on the client's background thread."""
        execution = self._runner.run(_call(lambda: self.session.execute(
            code, language=language, page_size=page_size, limit=limit, format=format, window=window,
            on_stdout=on_stdout, on_stderr=on_stderr, on_progress=on_progress, keep_output=keep_output,
            id=id)))
        return SyncExecution(execution, self._runner)

    def sql(self, code: str, **options: Any) -> SyncExecution:
        return self.execute(code, language="sql", **options)

    def python(self, code: str, **options: Any) -> SyncExecution:
        return self.execute(code, language="python", **options)

    def ping(self) -> float:
        return self._runner.run(self.session.ping())

    def complete(self, code: str, cursor: int | None = None, *, language: Language = "sql",
                 units: Units = "code_points") -> Completions:
        """Like :meth:`Session.complete`."""
        return self._runner.run(self.session.complete(code, cursor, language=language, units=units))

    def inspect(self, code: str, cursor: int | None = None, *, language: Language = "sql",
                units: Units = "code_points") -> Inspection:
        """Like :meth:`Session.inspect`."""
        return self._runner.run(self.session.inspect(code, cursor, language=language, units=units))

    def catalog(self, path: Sequence[str] = ()) -> CatalogEntries:
        """Like :meth:`Session.catalog`."""
        return self._runner.run(self.session.catalog(path))

    def download(self, execution: Any, result: int = 0, path: Any = "", *, format: str = "parquet") -> Any:
        """Like :meth:`Session.download`: the whole result saved as a file by the gateway; its path."""
        return self._runner.run(self.session.download(execution, result, path, format=format))

    def download_link(self, execution: Any, result: int = 0, *, format: str = "parquet") -> str:
        """Like :meth:`Session.download_link`."""
        return self._runner.run(self.session.download_link(execution, result, format=format))

    def executions(self) -> list[ExecutionInfo]:
        """Like :meth:`Session.executions`."""
        return self._runner.run(self.session.executions())

    def close(self) -> None:
        try:
            self._runner.run(self.session.close())
        finally:
            self._runner.stop()

    def __enter__(self) -> SyncSession:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def connect_sync(url: str = DEFAULT_URL, **options: Any) -> SyncSession:
    """Open a session for blocking use (same arguments as :func:`connect`)."""
    runner = _LoopThread()
    try:
        session = runner.run(connect(url, **options).open())
    except BaseException:
        runner.stop()
        raise
    return SyncSession(session, runner)


async def _call(fn: Callable[[], T]) -> T:
    """Run ``fn`` on the loop thread (asyncio objects must be made and touched there)."""
    return fn()


def _iterate(runner: _LoopThread, agen: AsyncIterator[T], execution: Execution) -> Iterator[T]:
    """Drive an async iterator from a blocking one; stopping early closes it on the loop."""
    try:
        while True:
            try:
                yield runner.run(_anext(agen), execution)
            except StopAsyncIteration:
                return
    finally:
        aclose = getattr(agen, "aclose", None)
        if aclose is not None:
            try:
                runner.run(aclose())
            except RuntimeError:  # still running after a Ctrl+C cancelled it: it ends by itself
                pass


async def _anext(agen: AsyncIterator[T]) -> T:
    return await agen.__anext__()
