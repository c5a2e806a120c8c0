"""Editor: a session's answers to ``complete``, ``inspect`` and ``catalog`` requests, beside its executions.

They never wait behind an execution: each is answered in a task of its own, its Spark metadata
reads and jedi's inference running in threads of their own (at most :data:`THREADS` per
session), not on the session's worker, on the same Spark Connect session (pyspark's session is
safe to use from several threads; the worker's operation tags are thread-local, so an
interrupt of the running execution never reaches them). Nothing here runs code or changes
state: SQL metadata comes from the cached :class:`~spark_gateway.catalog.SessionCatalog`,
Python names from the namespace as it is. Every request gets exactly one answer: its event,
or an ``error`` (``timeout`` after :data:`DEADLINE_SECONDS`: a thread stuck on Spark is left to
finish, and still counts against the session's threads until it does).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, TypeVar

import anyio
import anyio.from_thread
import anyio.to_thread
from anyio.abc import TaskGroup

from spark_gateway_protocol import sql_script
from spark_gateway_protocol.errors import ErrorCode, ProtocolError
from spark_gateway_protocol.messages import (
    MAX_CATALOG_ENTRIES,
    Catalog,
    CatalogEntries,
    Complete,
    Completions,
    Error,
    Event,
    Execute,
    Inspect,
    Inspection,
    from_code_points,
    to_code_points,
)

from . import python_completion, sql_completion
from .catalog import Builtins, SessionCatalog, UnknownName, may_change_catalog
from .outbox import Outbox

log = logging.getLogger("spark_gateway.editor")

DEADLINE_SECONDS = 10.0  # an editor request not answered by then gets an error `timeout`
THREADS = 2  # threads a session's editor requests may hold at once
MAX_PENDING = 8  # editor requests of a session in flight at once (limit_exceeded beyond)

EditorRequest = Complete | Inspect | Catalog
T = TypeVar("T")


class Editor:
    """The editor side of one session. On the loop: :meth:`handle`, :meth:`after_code`."""

    def __init__(self, *, spark: Any, spark_url: str, builtins: Builtins, outbox: Outbox, languages: tuple[str, ...],
                 spark_session: Callable[[], Awaitable[Any]], namespace: Callable[[], dict[str, Any]],
                 deadline: float = DEADLINE_SECONDS, threads: int = THREADS, max_pending: int = MAX_PENDING) -> None:
        """``spark_session``: the session's Spark session, opened if no execution has yet;
        ``namespace``: its Python variables (read, never run)."""
        self.catalog = SessionCatalog(spark, builtins, spark_url)
        self._builtins = builtins
        self._spark_url = spark_url
        self._spark = spark
        self._outbox = outbox
        self._languages = languages
        self._spark_session = spark_session
        self._namespace = namespace
        self._deadline = deadline
        self._limiter = anyio.CapacityLimiter(threads)
        self._max_pending = max_pending
        self._pending: set[str] = set()

    def handle(self, request: EditorRequest, tg: TaskGroup) -> None:
        """Accept the request and answer it in a task of ``tg``; refusals raise ProtocolError."""
        def refuse(code: ErrorCode, message: str) -> ProtocolError:
            return ProtocolError(code, message, request_id=request.id, request_type=request.type)

        if request.id in self._pending:
            raise refuse(ErrorCode.DUPLICATE_ID, f"an editor request with id {request.id!r} is still being answered")
        if len(self._pending) >= self._max_pending:
            raise refuse(ErrorCode.LIMIT_EXCEEDED, f"{len(self._pending)} editor requests are being answered "
                         f"already (at most {self._max_pending})")
        if not isinstance(request, Catalog) and request.language not in self._languages:
            raise refuse(ErrorCode.UNSUPPORTED, f"language {request.language!r} is disabled on this gateway")
        self._pending.add(request.id)
        tg.start_soon(self._answer, request)

    def after_code(self, request: Execute) -> None:
        """An execution's code ran: if it may have changed the catalog, read the catalog again next time."""
        statements = [s.text for s in sql_script.split(request.code)] if request.language == "sql" else []
        if may_change_catalog(request, statements):
            self.catalog.invalidate()

    # ------------------------------------------------------------ answering

    async def _answer(self, request: EditorRequest) -> None:
        event: Event
        try:
            with anyio.fail_after(self._deadline):
                event = await self._compute(request)
        except TimeoutError:
            log.warning("%s %s: no answer from Spark within %g s", request.type, request.id, self._deadline)
            event = Error(ErrorCode.TIMEOUT, f"{request.type}: no answer from Spark within {self._deadline:g} s",
                          id=request.id, request=request.type)
        except Exception as exc:  # noqa: BLE001 - every request gets its one answer
            event = self._error(request, exc)
        finally:
            self._pending.discard(request.id)
        self._outbox.put(event)

    async def _compute(self, request: EditorRequest) -> Event:
        if isinstance(request, Catalog):
            session = await self._spark_session()
            return await self._in_thread(partial(self._list, request, session))
        if request.language == "python":
            return await self._in_thread(partial(self._python, request, self._namespace()))
        session = await self._spark_session()
        self._builtins.warm(self._spark_url)
        return await self._in_thread(partial(self._sql, request, session))

    def _error(self, request: EditorRequest, exc: Exception) -> Error:
        cause = exc.__cause__ if isinstance(exc, UnknownName) and exc.__cause__ is not None else exc
        fields = self._spark.spark_error_fields(cause)
        if fields is not None:
            return Error(id=request.id, request=request.type, **fields)
        log.exception("%s request failed", request.type, exc_info=exc)
        return Error(ErrorCode.INTERNAL, f"{request.type}: {type(exc).__name__}: {exc}", id=request.id,
                     request=request.type)

    async def _in_thread(self, fn: Callable[[], T]) -> T:
        """``fn()`` in a thread; a thread given up on (the deadline) holds its place until it returns."""
        holder = object()
        await self._limiter.acquire_on_behalf_of(holder)
        lock = threading.Lock()
        state = ["queued"]  # queued -> running, or queued -> abandoned

        def release() -> None:
            self._limiter.release_on_behalf_of(holder)

        def job() -> T:
            with lock:
                if state[0] == "abandoned":
                    raise anyio.get_cancelled_exc_class()()
                state[0] = "running"
            try:
                return fn()
            finally:
                try:
                    anyio.from_thread.run_sync(release)
                except RuntimeError:
                    pass  # the event loop is gone

        try:
            return await anyio.to_thread.run_sync(job, abandon_on_cancel=True)
        except BaseException:
            with lock:
                never_ran = state[0] == "queued"
                state[0] = "abandoned" if never_ran else state[0]
            if never_ran:
                release()
            raise

    # ------------------------------------------------------------ in a thread

    def _sql(self, request: Complete | Inspect, session: Any) -> Event:
        self.catalog.bind(session)
        self.catalog.prefetch()
        code, units = request.code, request.units
        cursor = to_code_points(code, request.cursor, units)
        assert cursor is not None  # the request checked it
        if isinstance(request, Complete):
            return _completions(request, sql_completion.complete(code, cursor, self.catalog))
        return _inspection(request, sql_completion.inspect(code, cursor, self.catalog))

    def _python(self, request: Complete | Inspect, namespace: dict[str, Any]) -> Event:
        code = request.code
        cursor = to_code_points(code, request.cursor, request.units)
        assert cursor is not None
        if isinstance(request, Complete):
            return _completions(request, python_completion.complete(namespace, code, cursor, self._columns_of))
        return _inspection(request, python_completion.inspect(namespace, code, cursor, self._columns_of))

    def _columns_of(self, value: Any) -> Any:
        if not self._spark.is_dataframe(value):
            return None
        try:
            return self._spark.dataframe_columns(value)
        except Exception:  # noqa: BLE001 - a DataFrame Spark cannot analyse has no columns to offer
            return None

    def _list(self, request: Catalog, session: Any) -> CatalogEntries:
        self.catalog.bind(session)
        path, catalog = request.path, self.catalog
        if not path:
            entries = catalog.catalogs()
        elif len(path) == 1:
            entries = catalog.databases(path[0])
        elif len(path) == 2:
            entries = catalog.relations(path[0], path[1])
        else:
            entries = catalog.path_columns(path[0], path[1], path[2])
        if len(path) < 3:  # columns keep their table's order
            entries = sorted(entries, key=lambda e: (e.name.lower(), e.name))
        return CatalogEntries(request.id, list(path), entries[:MAX_CATALOG_ENTRIES],
                              len(entries) > MAX_CATALOG_ENTRIES)


def _completions(request: Complete, found: sql_completion.Completion) -> Completions:
    code, units = request.code, request.units
    return Completions(request.id, from_code_points(code, found.start, units), from_code_points(code, found.end, units),
                       found.items, found.truncated)


def _inspection(request: Inspect, found: sql_completion.Found | None) -> Inspection:
    if found is None:
        return Inspection(request.id, False)
    code, units = request.code, request.units
    return Inspection(request.id, True, found.kind, found.name, from_code_points(code, found.start, units),
                      from_code_points(code, found.end, units), found.data_type, found.signature, found.doc,
                      found.columns)
