"""The catalog as editors see it: Spark's metadata for one Spark session, read through the adapter and cached.

Everything here blocks (a cache miss calls Spark) and runs in an editor thread
(:mod:`spark_gateway.editor`), never on the event loop or the session's worker. What a session
reads is cached until :meth:`SessionCatalog.invalidate` (called after each execution that may
have changed the catalog) or for :data:`MAX_AGE` seconds, since another gateway session
sharing the Spark session can change it unseen. Spark's built-in functions and keywords are the
server's, the same for every session: :class:`Builtins` reads them once per gateway.
"""

from __future__ import annotations

import functools
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from spark_gateway_protocol.messages import CatalogEntry, Execute

MAX_AGE = 60.0  # seconds a cached read is trusted without an execution having invalidated it

T = TypeVar("T")


class UnknownName(LookupError):
    """Spark could not resolve a catalog, database, table or function name (its error is the cause)."""


@dataclass(frozen=True, slots=True)
class Function:
    """A SQL function: ``signature`` and ``usage`` as Spark describes it (None for the session's own)."""

    name: str
    signature: str | None = None
    usage: str | None = None


_SIGNATURE = re.compile(r"\s*(.+?)\s+-\s")


def signature_of(usage: str | None) -> str | None:
    """``upper(str)`` from Spark's usage text ``upper(str) - Returns ...`` (its first form, if several)."""
    if not usage:
        return None
    found = _SIGNATURE.match(usage)
    return found.group(1) if found else None


class Builtins:
    """Spark's built-in functions (with their usage) and SQL keywords, read once per gateway.

    Read through a Spark session of their own, so that no gateway session's end waits for
    them. :meth:`warm` starts reading them as soon as a gateway session has a Spark session.
    The functions come from catalog calls (a second or two on a cold server), which a
    completion that needs them waits for. Spark's keywords come from ``sql_keywords()``, a Spark
    job, which waits for free task slots behind any running query: a completion never waits
    for it, and uses sqlglot's list of Spark SQL keywords until Spark has answered.
    """

    def __init__(self, spark: Any) -> None:
        self._spark = spark
        self._loading = threading.Lock()  # one thread reads; the others wait for its answer
        self._state = threading.Lock()  # held only for a moment: warm() is called on the event loop
        self._functions: dict[str, Function] | None = None
        self._keywords: list[str] | None = None
        self._warming = False

    def functions(self, url: str) -> dict[str, Function]:
        """By lower-case name; ``url``: the Spark Connect server's."""
        if self._functions is None:
            with self._loading:
                if self._functions is None:
                    self._functions = self._read(url, self._read_functions)
        return self._functions

    def keywords(self, url: str) -> list[str]:
        """Spark's own once it has answered; until then sqlglot's (and Spark's are being read)."""
        if self._keywords is None:
            self.warm(url)
            return _sqlglot_keywords()
        return self._keywords

    def warm(self, url: str) -> None:
        """Start reading them in a thread of their own, unless done or under way (any thread, never blocks)."""
        with self._state:
            if self._warming or self._keywords is not None:
                return
            self._warming = True
        threading.Thread(target=self._warm, args=(url,), name="spark-gateway-builtins", daemon=True).start()

    def _warm(self, url: str) -> None:
        try:
            self.functions(url)
            self._keywords = self._read(url, lambda session: sorted(self._spark.sql_keywords(session)))
        except Exception:  # noqa: BLE001 - the next request reads them (and reports what fails)
            with self._state:
                self._warming = False

    def _read_functions(self, session: Any) -> dict[str, Function]:
        return {name.lower(): Function(name, signature_of(usage), usage)
                for name, usage in self._spark.list_functions(session, builtin=True)}

    def _read(self, url: str, read: Callable[[Any], T]) -> T:
        session = self._spark.connect(url)
        try:
            return read(session)
        finally:
            self._spark.release_quietly(session)


@functools.cache
def _sqlglot_keywords() -> list[str]:
    """The words sqlglot's Spark dialect tokenizes as keywords: close to Spark's, never a Spark job."""
    from sqlglot.dialects.spark import Spark

    return sorted(word for word in Spark.Tokenizer.KEYWORDS if word.isalpha() and word.isupper())


class SessionCatalog:
    """One Spark session's catalogs, databases, tables, columns and functions, cached.

    Methods raise :class:`UnknownName` for names Spark does not know; other failures (Spark
    unreachable) raise as they are. Thread-safe: several editor threads may read at once.
    """

    def __init__(self, spark: Any, builtins: Builtins, spark_url: str, *, max_age: float = MAX_AGE) -> None:
        self._spark = spark
        self._builtins = builtins
        self._url = spark_url
        self._max_age = max_age
        self._lock = threading.Lock()
        self._session: Any = None
        self._generation = 0  # bumped by invalidate(): reads begun before it are not kept
        self._cache: dict[tuple[Any, ...], tuple[float, Any]] = {}
        self._flights: dict[tuple[int, tuple[Any, ...]], _Flight] = {}  # reads under way, by generation and key

    def bind(self, session: Any) -> None:
        """Read from ``session`` from now on (the gateway session's Spark session may be made anew)."""
        with self._lock:
            if session is not self._session:
                self._session = session
                self._forget()

    def invalidate(self) -> None:
        """The catalog may have changed: read it again at the next use."""
        with self._lock:
            self._forget()

    def _forget(self) -> None:
        self._generation += 1
        self._cache.clear()

    # ------------------------------------------------------------ reads

    def prefetch(self) -> None:
        """Start reading what most completions need, side by side, when not cached: the current
        namespace's relations, its databases and the catalogs. Does not wait for them: a
        completion that needs one waits for that read (see :meth:`_read`), and no other."""
        catalog, database = self.current()
        with self._lock:
            known = set(self._cache) | {key for _, key in self._flights}
        reads = [read for key, read in (
            (("relations", catalog.lower(), database.lower()), lambda: self.relations(catalog, database)),
            (("databases", catalog.lower()), lambda: self.databases(catalog)),
            (("catalogs",), self.catalogs)) if key not in known]
        for read in reads:
            threading.Thread(target=_quietly, args=(read,), name="spark-gateway-catalog", daemon=True).start()

    def current(self) -> tuple[str, str]:
        """The current catalog and database."""
        return self._read(("current",), self._spark.current_namespace)

    def catalogs(self) -> list[CatalogEntry]:
        return self._read(("catalogs",), self._spark.list_catalogs)

    def databases(self, catalog: str) -> list[CatalogEntry]:
        return self._read(("databases", catalog.lower()), lambda s: self._spark.list_databases(s, catalog))

    def relations(self, catalog: str, database: str) -> list[CatalogEntry]:
        """Tables and views of a database, with the session's temporary views (``type`` TEMPORARY)."""
        key = ("relations", catalog.lower(), database.lower())
        return self._read(key, lambda s: self._spark.list_relations(s, catalog, database))

    def columns(self, name: tuple[str, ...]) -> list[CatalogEntry]:
        """The columns of the relation a query would find under ``name`` (1 to 3 parts)."""
        key = ("columns", *(part.lower() for part in name))
        return self._read(key, lambda s: self._spark.list_columns(s, list(name)))

    def path_columns(self, catalog: str, database: str, table: str) -> list[CatalogEntry]:
        """The columns of a catalog path's table; a temporary view is listed under every database."""
        entry = next((e for e in self.relations(catalog, database) if e.name.lower() == table.lower()), None)
        if entry is not None and entry.type == "TEMPORARY":
            return self.columns((entry.name,))
        return self.columns((catalog, database, table))

    def functions(self) -> dict[str, Function]:
        """Spark's built-in functions and the session's own, by lower-case name."""
        builtin = self._builtins.functions(self._url)
        own = self._read(("functions",), lambda s: self._spark.list_functions(s, builtin=False))
        if not own:
            return builtin
        extra = {name.split(".")[-1].lower(): Function(name.split(".")[-1]) for name, _ in own}
        return {**builtin, **{k: v for k, v in extra.items() if k not in builtin}}

    def function_doc(self, name: str) -> str:
        """Spark's own description of a function: its usage and examples."""
        return self._read(("describe", name.lower()), lambda s: self._spark.describe_function(s, name))

    def keywords(self) -> list[str]:
        return self._builtins.keywords(self._url)

    # ------------------------------------------------------------ the cache

    def _read(self, key: tuple[Any, ...], load: Callable[[Any], T]) -> T:
        """The cached answer, else Spark's: one read per key at a time, the others wait for it."""
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and now - hit[0] < self._max_age:
                return _answer(hit[1])
            session, generation = self._session, self._generation
            flight = self._flights.get((generation, key))
            leader = flight is None
            if flight is None:
                flight = self._flights[(generation, key)] = _Flight()
        if not leader:
            flight.done.wait()
            if flight.failure is not None:
                raise flight.failure
            return _answer(flight.value)
        try:
            if session is None:
                raise RuntimeError("no Spark session to read the catalog from")
            flight.value = self._load(load, session)
        except Exception as exc:
            flight.failure = exc
            raise
        finally:
            with self._lock:
                del self._flights[(generation, key)]
                if flight.failure is None and generation == self._generation:  # not invalidated meanwhile
                    self._cache[key] = (now, flight.value)
            flight.done.set()
        return _answer(flight.value)

    def _load(self, load: Callable[[Any], T], session: Any) -> T | UnknownName:
        """Spark's answer; a name it cannot resolve is an answer too (kept, so typing on asks no more)."""
        try:
            return load(session)
        except Exception as exc:
            if self._spark.spark_error_fields(exc) is None or self._spark.is_unavailable(exc):
                raise
            unknown = UnknownName(str(exc))
            unknown.__cause__ = exc
            return unknown


class _Flight:
    """One read of the catalog under way; the threads that want the same wait for it."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: Any = None
        self.failure: Exception | None = None


def _answer(value: Any) -> Any:
    if isinstance(value, UnknownName):
        raise UnknownName(str(value)) from value.__cause__
    return value


def _quietly(read: Callable[[], Any]) -> None:
    try:
        read()
    except Exception:  # noqa: BLE001 - a prefetch: the completion that needs it reads it and reports
        pass


# Statements that only read: anything else (and every Python cell) may change the catalog.
_READS = frozenset({"SELECT", "WITH", "VALUES", "TABLE", "FROM", "SHOW", "DESCRIBE", "DESC", "EXPLAIN"})
_FIRST_WORD = re.compile(r"(?:\s|--[^\n]*\n?|/\*.*?\*/|\()*([A-Za-z]+)", re.S)


def may_change_catalog(request: Execute, statements: list[str]) -> bool:
    """Whether an execution may have changed the catalog (CREATE, DROP, ALTER, USE, a temp view from Python, ...)."""
    if request.language != "sql":
        return True
    for text in statements:
        word = _FIRST_WORD.match(text)
        if word is None or word.group(1).upper() not in _READS:
            return True
    return False
