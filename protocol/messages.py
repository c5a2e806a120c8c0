"""Every message of protocol v1 as a frozen dataclass, validated when built.

Requests travel client → gateway; events travel gateway → client. A request that
exists has passed validation, so the gateway never re-checks its fields; building an
invalid one raises :class:`ProtocolError` naming the field.
"""

from __future__ import annotations

from dataclasses import Field, dataclass, field, fields
from typing import Any, ClassVar, Literal

from .errors import ErrorCode, ProtocolError

PROTOCOL_VERSION = "spark-gateway.v1"

Language = Literal["sql", "python"]
Format = Literal["json", "arrow"]
Layout = Literal["rows", "columns"]
Status = Literal["ok", "error", "interrupted"]
Units = Literal["code_points", "utf-16"]

LANGUAGES: tuple[str, ...] = ("sql", "python")
FORMATS: tuple[str, ...] = ("json", "arrow")
LAYOUTS: tuple[str, ...] = ("rows", "columns")
# File formats of a whole-result download (``download`` request, ``GET /download``).
DOWNLOAD_FORMATS: tuple[str, ...] = ("csv", "parquet", "arrow")
# How `cursor`, `from` and `to` count characters in `code`: Unicode code points (Python's str,
# Jupyter's cursor_pos), or UTF-16 code units (JavaScript strings, CodeMirror positions).
UNITS: tuple[str, ...] = ("code_points", "utf-16")
# What a completion item, a catalog entry or an inspected name is.
KINDS: tuple[str, ...] = (
    "keyword", "function", "catalog", "database", "table", "view", "column", "alias",
    "variable", "method", "class", "module", "property", "parameter",
)
MAX_CATALOG_PATH = 3  # [catalog, database, table]

MAX_ID_LENGTH = 128
DEFAULT_PAGE_SIZE = 1000
MAX_PAGE_SIZE = 100_000

# Executions as `session-state` and `executions` describe them (docs/protocol.md, "Joining a session").
EXECUTION_STATUSES: tuple[str, ...] = ("queued", "running", "draining", "ok", "error", "interrupted")
CODE_EXCERPT_CHARS = 200  # `code` of an ExecutionInfo: the first this many code points (code_length: all)
MAX_LISTED_EXECUTIONS = 1000  # `executions` lists at most this many (newest first; truncated says so)
STATE_ENDED_EXECUTIONS = 100  # `session-state` carries at most this many ended executions (newest)


# ---------------------------------------------------------------- field checks


def _fail(msg: Any, name: str, problem: str) -> ProtocolError:
    rid = getattr(msg, "id", None)
    return ProtocolError(
        ErrorCode.BAD_MESSAGE,
        f"{msg.type}: field '{name}' {problem}",
        request_id=rid if isinstance(rid, str) else None,
        request_type=msg.type,
    )


def _check_id(msg: Any, name: str = "id", *, optional: bool = False) -> None:
    value = getattr(msg, name)
    if value is None and optional:
        return
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_ID_LENGTH:
        raise _fail(msg, name, f"must be a string of 1 to {MAX_ID_LENGTH} characters")


def _check_int(msg: Any, name: str, low: int, high: int, *, optional: bool = False) -> None:
    value = getattr(msg, name)
    if value is None and optional:
        return
    # bool is an int subclass in Python but never a count on the wire.
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise _fail(msg, name, f"must be an integer from {low} to {high}")


def _check_choice(msg: Any, name: str, choices: tuple[str, ...]) -> None:
    if getattr(msg, name) not in choices:
        raise _fail(msg, name, f"must be one of {', '.join(repr(c) for c in choices)}")


# ---------------------------------------------------------------- requests


@dataclass(frozen=True, slots=True)
class Execute:
    """Run ``code`` in the session, after the executions already queued.

    ``layout`` shapes JSON pages: one array per row (``rows``) or one per column
    (``columns``); Arrow frames are columnar whatever it says.
    """

    type: ClassVar[str] = "execute"
    id: str
    code: str
    language: Language = "sql"
    page_size: int = DEFAULT_PAGE_SIZE
    limit: int | None = None
    format: Format = "json"
    layout: Layout = "rows"

    def __post_init__(self) -> None:
        _check_id(self)
        if not isinstance(self.code, str):
            raise _fail(self, "code", "must be a string")
        _check_choice(self, "language", LANGUAGES)
        _check_int(self, "page_size", 1, MAX_PAGE_SIZE)
        _check_int(self, "limit", 0, 2**63 - 2, optional=True)
        _check_choice(self, "format", FORMATS)
        _check_choice(self, "layout", LAYOUTS)


@dataclass(frozen=True, slots=True)
class Interrupt:
    """Stop one execution, or with no ``id`` everything running or queued."""

    type: ClassVar[str] = "interrupt"
    id: str | None = None

    def __post_init__(self) -> None:
        _check_id(self, optional=True)


@dataclass(frozen=True, slots=True)
class StreamRows:
    """Grant credit for ``max_rows`` more rows of one result."""

    type: ClassVar[str] = "stream-rows"
    id: str
    result: int
    max_rows: int

    def __post_init__(self) -> None:
        _check_id(self)
        _check_int(self, "result", 0, 2**31)
        _check_int(self, "max_rows", 1, 2**53)


@dataclass(frozen=True, slots=True)
class CloseResult:
    """Release one result now, on the Spark side too."""

    type: ClassVar[str] = "close-result"
    id: str
    result: int

    def __post_init__(self) -> None:
        _check_id(self)
        _check_int(self, "result", 0, 2**31)


@dataclass(frozen=True, slots=True)
class Ping:
    """Liveness check; ``data`` comes back unchanged in ``pong``."""

    type: ClassVar[str] = "ping"
    data: Any = None

    def __post_init__(self) -> None:
        if _depth(self.data, MAX_PING_DEPTH) > MAX_PING_DEPTH:  # pong must be able to echo it
            raise _fail(self, "data", f"must not nest deeper than {MAX_PING_DEPTH} levels")


MAX_PING_DEPTH = 64


def _depth(value: Any, limit: int) -> int:
    """Nesting depth of JSON-like ``value``, counting no further than ``limit + 1``."""
    if limit < 0 or not isinstance(value, (list, dict)):
        return 0
    items = value.values() if isinstance(value, dict) else value
    return 1 + max((_depth(v, limit - 1) for v in items), default=0)


@dataclass(frozen=True, slots=True)
class Complete:
    """Completions for ``code`` at ``cursor``; answered by ``completions`` (ids: their own space)."""

    type: ClassVar[str] = "complete"
    id: str
    code: str
    cursor: int
    language: Language = "sql"
    units: Units = "code_points"

    def __post_init__(self) -> None:
        _check_editor_request(self)


@dataclass(frozen=True, slots=True)
class Inspect:
    """What the name at ``cursor`` in ``code`` is; answered by ``inspection``."""

    type: ClassVar[str] = "inspect"
    id: str
    code: str
    cursor: int
    language: Language = "sql"
    units: Units = "code_points"

    def __post_init__(self) -> None:
        _check_editor_request(self)


@dataclass(frozen=True, slots=True)
class Catalog:
    """The entries under ``path``: [] catalogs, [catalog] databases, [catalog, database] tables
    and views, [catalog, database, table] columns. Answered by ``catalog-entries``."""

    type: ClassVar[str] = "catalog"
    id: str
    path: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        _check_id(self)
        path = self.path
        if not isinstance(path, list) or len(path) > MAX_CATALOG_PATH or not all(
                isinstance(name, str) and name for name in path):
            raise _fail(self, "path", f"must be a list of at most {MAX_CATALOG_PATH} non-empty strings")


@dataclass(frozen=True, slots=True)
class Download:
    """A link to download the whole of one result as a file; answered by ``download-link``.

    ``id`` is the execution's id (it may have finished); the link is valid for a few minutes.
    """

    type: ClassVar[str] = "download"
    id: str
    result: int
    format: str = "parquet"

    def __post_init__(self) -> None:
        _check_id(self)
        _check_int(self, "result", 0, 2**31)
        _check_choice(self, "format", DOWNLOAD_FORMATS)


def _check_editor_request(msg: Complete | Inspect) -> None:
    _check_id(msg)
    if not isinstance(msg.code, str):
        raise _fail(msg, "code", "must be a string")
    _check_choice(msg, "language", LANGUAGES)
    _check_choice(msg, "units", UNITS)
    _check_int(msg, "cursor", 0, text_length(msg.code, msg.units))
    if msg.units == "utf-16" and to_code_points(msg.code, msg.cursor) is None:
        raise _fail(msg, "cursor", "must not fall between the two halves of a surrogate pair")


def text_length(text: str, units: str) -> int:
    """The length of ``text`` in ``units`` (see :data:`UNITS`)."""
    if units == "code_points":
        return len(text)
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def to_code_points(text: str, offset: int, units: str = "utf-16") -> int | None:
    """The code point offset of ``offset`` counted in ``units``; None inside a surrogate pair."""
    if units == "code_points" or text.isascii():
        return offset
    counted = 0
    for index, ch in enumerate(text):
        if counted == offset:
            return index
        counted += 2 if ord(ch) > 0xFFFF else 1
        if counted > offset:
            return None
    return len(text) if counted == offset else None


def from_code_points(text: str, offset: int, units: str) -> int:
    """``offset``, a code point offset into ``text``, counted in ``units``."""
    if units == "code_points" or text.isascii():
        return offset
    return offset + sum(1 for ch in text[:offset] if ord(ch) > 0xFFFF)


@dataclass(frozen=True, slots=True)
class ListExecutions:
    """The session's executions, newest first: answered by ``executions`` (ids: the editor requests' space)."""

    type: ClassVar[str] = "list-executions"
    id: str

    def __post_init__(self) -> None:
        _check_id(self)


Request = (Execute | Interrupt | StreamRows | CloseResult | Ping | Complete | Inspect | Catalog | Download
           | ListExecutions)

REQUEST_TYPES: dict[str, type[Request]] = {
    cls.type: cls
    for cls in (Execute, Interrupt, StreamRows, CloseResult, Ping, Complete, Inspect, Catalog, Download, ListExecutions)
}


# ---------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """First event on every connection: who the client is talking to, and the limits."""

    type: ClassVar[str] = "session"
    session_id: str
    spark_session_id: str  # connect with /ws?spark_session=<this> to share this Spark session
    protocol: str
    gateway_version: str
    spark_version: str | None
    languages: list[str]
    formats: list[str]
    limits: dict[str, int]
    spark_ui: str | None = None
    sample_tables: list[str] = field(default_factory=list)  # temp views every session starts with


@dataclass(frozen=True, slots=True)
class LostResult:
    """Rows of one result that a resumed client cannot get back: offsets [from, to)."""

    result: int
    from_offset: int
    to_offset: int


@dataclass(frozen=True, slots=True)
class LostExecution:
    """What a resumed client lost of one execution (``id`` None: messages of no execution)."""

    id: str | None
    messages: dict[str, int]  # how many events of each type
    results: list[LostResult]


@dataclass(frozen=True, slots=True)
class Lost:
    """Events ``from_seq``..``to_seq`` (inclusive) left the replay buffer before the client resumed."""

    from_seq: int
    to_seq: int
    executions: list[LostExecution]


@dataclass(frozen=True, slots=True)
class Credit:
    """How far a result still streaming may go: rows up to offset ``until`` need no more credit.

    ``until`` is the first page plus every ``stream-rows`` the gateway received for it, so a
    resumed client re-sends exactly the credit that was lost on the way, never twice.
    """

    id: str
    result: int
    until: int


@dataclass(frozen=True, slots=True)
class Resumed:
    """First frame of a resumed connection (``seq`` 0: it describes the stream, it is not in it).

    The events after ``last_seq`` follow, from ``next_seq`` on, exactly once and in order.
    ``lost`` is set only when some of them had already left the bounded replay buffer;
    ``credit`` lists the results still streaming, with the credit the gateway holds for each.
    """

    type: ClassVar[str] = "resumed"
    session_id: str
    spark_session_id: str
    last_seq: int
    next_seq: int
    lost: Lost | None = None
    credit: list[Credit] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ResultInfo:
    """One result of an execution: ``rows`` sent so far; while ``open``, ``until`` is its credit
    (rows up to that offset need no more ``stream-rows``); ``None`` once it ended."""

    result: int
    schema: list[Column]
    format: str
    limit: int | None
    page_size: int
    rows: int
    truncated: bool
    open: bool
    until: int | None


@dataclass(frozen=True, slots=True)
class ExecutionInfo:
    """What the session knows of one execution (times: ISO 8601, UTC; ``error``: its error code)."""

    id: str
    language: str
    code: str  # the first CODE_EXCERPT_CHARS code points
    code_length: int  # of the whole code, in code points
    status: str  # one of EXECUTION_STATUSES
    queued_at: str
    started_at: str | None
    ended_at: str | None
    first_seq: int  # seq of its `accepted`: replay from before it to get all its events
    results: list[ResultInfo]
    error: str | None = None


@dataclass(frozen=True, slots=True)
class SessionState:
    """First frame of a joined connection (``seq`` 0, like ``resumed``): the session as it is now.

    The events after ``last_seq`` follow from ``next_seq`` on (``last_seq`` None: from now on).
    ``replay_from`` is the oldest ``seq`` the replay buffer still holds; ``lost`` says what of
    the asked replay had already left it. ``executions``: queued, running and draining ones, then
    at most STATE_ENDED_EXECUTIONS ended ones, newest first (``truncated``: more ended ones are
    remembered; ask ``list-executions``). ``connections``: attached now, this one included.
    """

    type: ClassVar[str] = "session-state"
    session_id: str
    spark_session_id: str
    last_seq: int | None
    next_seq: int
    replay_from: int
    connections: int
    executions: list[ExecutionInfo]
    truncated: bool = False
    lost: Lost | None = None
    credit: list[Credit] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Executions:
    """The answer to ``list-executions``: newest first, at most MAX_LISTED_EXECUTIONS."""

    type: ClassVar[str] = "executions"
    id: str
    executions: list[ExecutionInfo]
    truncated: bool = False


@dataclass(frozen=True, slots=True)
class Accepted:
    """An execution was queued; ``attached``: the ``execute`` repeated one the session already has
    (same id, code and language), so nothing new runs: its events so far are not sent again."""

    type: ClassVar[str] = "accepted"
    id: str
    queue_position: int  # executions ahead of this one on the session's worker
    attached: bool = False


@dataclass(frozen=True, slots=True)
class Started:
    type: ClassVar[str] = "started"
    id: str


@dataclass(frozen=True, slots=True)
class StageProgress:
    stage_id: int
    tasks_done: int
    tasks_total: int
    bytes_read: int
    done: bool


@dataclass(frozen=True, slots=True)
class Progress:
    type: ClassVar[str] = "progress"
    id: str
    stages: list[StageProgress]
    tasks_done: int
    tasks_total: int
    inflight_tasks: int
    bytes_read: int
    operation_id: str | None = None


@dataclass(frozen=True, slots=True)
class Stdout:
    type: ClassVar[str] = "stdout"
    id: str
    text: str


@dataclass(frozen=True, slots=True)
class Stderr:
    type: ClassVar[str] = "stderr"
    id: str
    text: str


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: str  # Spark's own type string, e.g. "decimal(10,2)", "array<string>"
    nullable: bool


@dataclass(frozen=True, slots=True)
class Result:
    """A result table opens; its rows follow as ``rows`` pages, on credit."""

    type: ClassVar[str] = "result"
    id: str
    result: int
    schema: list[Column]
    format: str = "json"
    limit: int | None = None


@dataclass(frozen=True, slots=True)
class Rows:
    """One page of a result; ``last`` ends the stream, ``truncated`` says rows were left out.

    In the layout its ``execute`` asked for: ``rows``, one array per row, or ``columns``,
    one array per column (in schema order) of ``count`` values each. Exactly one of
    ``rows`` and ``columns`` is set, and ``count`` only with ``columns``.
    """

    type: ClassVar[str] = "rows"
    id: str
    result: int
    offset: int
    rows: list[Any] | None
    last: bool
    truncated: bool = False
    columns: list[Any] | None = None
    count: int | None = None

    def __post_init__(self) -> None:
        if (self.rows is None) == (self.columns is None):
            raise _fail(self, "rows", "or 'columns' must be set (exactly one of them)")
        if self.columns is not None:
            _check_int(self, "count", 0, 2**53)
        elif self.count is not None:
            raise _fail(self, "count", "goes only with 'columns'")

    @property
    def num_rows(self) -> int:
        """Rows in the page, in either layout."""
        return len(self.rows) if self.rows is not None else self.count  # type: ignore[return-value]

    def row_values(self) -> list[Any]:
        """The page's rows as lists, in either layout (columns are transposed)."""
        if self.rows is not None:
            return self.rows
        if not self.columns:
            return [[] for _ in range(self.count or 0)]
        return [list(row) for row in zip(*self.columns, strict=True)]


@dataclass(frozen=True, slots=True)
class ArrowRows:
    """One page of a result in Arrow format: a binary frame, header plus IPC ``payload``."""

    type: ClassVar[str] = "arrow-rows"
    id: str
    result: int
    offset: int
    count: int
    last: bool
    truncated: bool
    payload: bytes | memoryview = field(repr=False)  # decoded: a view of the frame, not a copy


@dataclass(frozen=True, slots=True)
class ResultClosed:
    """A result stream ended before its last page (client close, interrupt, error)."""

    type: ClassVar[str] = "result-closed"
    id: str
    result: int
    rows: int  # rows sent before the close
    reason: Literal["closed", "interrupted", "error"]


@dataclass(frozen=True, slots=True)
class Value:
    """The repr of the value of a Python cell's trailing expression (not a DataFrame).

    A repr longer than the session's ``limits.max_value_chars`` is cut there:
    ``truncated`` says so and ``length`` is the length of the whole repr, in characters.
    """

    type: ClassVar[str] = "value"
    id: str
    text: str
    python_type: str
    truncated: bool = False
    length: int = 0


@dataclass(frozen=True, slots=True)
class QueryContext:
    fragment: str
    start: int
    stop: int


@dataclass(frozen=True, slots=True)
class Error:
    """Something failed: a refused request (``request`` set) or an execution error."""

    type: ClassVar[str] = "error"
    code: str
    message: str
    id: str | None = None
    request: str | None = None  # type of the refused client message
    result: int | None = None  # the result whose stream failed, if any
    error_class: str | None = None
    sql_state: str | None = None
    context: list[QueryContext] = field(default_factory=list)
    exception: str | None = None  # Python exception type
    traceback: str | None = None


@dataclass(frozen=True, slots=True)
class ResultSummary:
    result: int
    rows: int
    truncated: bool


@dataclass(frozen=True, slots=True)
class Finished:
    """The last event of every execution."""

    type: ClassVar[str] = "finished"
    id: str
    status: Status
    elapsed_ms: float
    results: list[ResultSummary]


@dataclass(frozen=True, slots=True)
class Pong:
    type: ClassVar[str] = "pong"
    data: Any = None


@dataclass(frozen=True, slots=True)
class CompletionItem:
    """One completion: ``label`` is shown, ``insert`` (when set) replaces ``from``..``to`` instead."""

    label: str
    kind: str  # one of KINDS
    detail: str | None = None  # a type ("decimal(10,2)") or a signature ("upper(str)")
    insert: str | None = None  # e.g. a quoted identifier: `order date`


@dataclass(frozen=True, slots=True)
class Completions:
    """The answer to ``complete``: ``items`` replace ``code[from:to]``, best first."""

    type: ClassVar[str] = "completions"
    id: str
    from_: int = field(metadata={"wire": "from"})
    to: int
    items: list[CompletionItem]
    truncated: bool = False  # more items matched than the gateway sends (MAX_COMPLETIONS)


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    """A catalog, database, table, view or column; ``type`` is a column's Spark type, or what a
    relation is: TABLE, VIEW or TEMPORARY (a temporary view)."""

    name: str
    kind: str
    type: str | None = None
    comment: str | None = None


@dataclass(frozen=True, slots=True)
class Inspection:
    """The answer to ``inspect``: what the name at the cursor is (``found`` false: nothing known)."""

    type: ClassVar[str] = "inspection"
    id: str
    found: bool
    kind: str | None = None
    name: str | None = None  # as qualified as the gateway knows it
    from_: int | None = field(default=None, metadata={"wire": "from"})  # the name's span in code
    to: int | None = None
    data_type: str | None = None  # a column's Spark type, a Python value's type
    signature: str | None = None
    doc: str | None = None
    columns: list[CatalogEntry] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class CatalogEntries:
    """The answer to ``catalog``: the entries under ``path`` (columns in their table's order, the rest by name)."""

    type: ClassVar[str] = "catalog-entries"
    id: str
    path: list[str]
    entries: list[CatalogEntry]
    truncated: bool = False  # more entries exist than the gateway sends (MAX_CATALOG_ENTRIES)


@dataclass(frozen=True, slots=True)
class DownloadLink:
    """The answer to ``download``: a signed URL (relative to the gateway) that downloads the result.

    Anyone holding ``url`` may use it, once or more, for ``expires_in`` seconds; no credential
    travels in it (an HMAC signature made with a secret of the gateway process).
    """

    type: ClassVar[str] = "download-link"
    id: str
    result: int
    format: str
    url: str
    expires_in: int  # seconds from now


MAX_COMPLETIONS = 1000
MAX_CATALOG_ENTRIES = 10_000


Event = (
    SessionInfo
    | Resumed
    | Accepted
    | Started
    | Progress
    | Stdout
    | Stderr
    | Result
    | Rows
    | ArrowRows
    | ResultClosed
    | Value
    | Error
    | Finished
    | Pong
    | Completions
    | Inspection
    | CatalogEntries
    | DownloadLink
    | SessionState
    | Executions
)

EVENT_TYPES: dict[str, type[Event]] = {
    cls.type: cls
    for cls in (
        SessionInfo,
        Resumed,
        Accepted,
        Started,
        Progress,
        Stdout,
        Stderr,
        Result,
        Rows,
        ArrowRows,
        ResultClosed,
        Value,
        Error,
        Finished,
        Pong,
        Completions,
        Inspection,
        CatalogEntries,
        DownloadLink,
        SessionState,
        Executions,
    )
}


def field_names(cls: type) -> tuple[str, ...]:
    """Wire field names of a message class (the ``type`` tag excluded)."""
    return tuple(wire_name(f) for f in fields(cls))


def wire_name(f: Field[Any]) -> str:
    """A field's name on the wire: its own, unless Python reserves it (``from``: ``from_``)."""
    return str(f.metadata.get("wire", f.name))
