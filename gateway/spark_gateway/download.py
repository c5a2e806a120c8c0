"""Whole-result downloads: ``GET /download`` streams one result as CSV, Parquet or Arrow IPC.

The download runs the result's query again (its DataFrame, kept by the session: see
``Session.result_source``) on the session's Spark session, as an operation of its own,
and encodes Spark's Arrow batches as they come, in threads of anyio's pool (one hop per
chunk of about ``CHUNK_BYTES``), never on the event loop and never on the session's worker
thread: a download of ten million rows takes minutes, and the notebook's next cell must not
wait behind it, nor the paging of the same result (which is another operation). Memory
stays flat: the response asks for the next chunk only once the socket took the last one
(uvicorn's flow control), and a Parquet row group (``ROW_GROUP_ROWS`` rows or
``ROW_GROUP_BYTES`` of Arrow data, whichever comes first) is the most that is held.

A failure after the response started (Spark failed, the session ended) aborts the chunked
response without its final chunk: the client sees a failed download, never a file that
looks complete. It is logged and counted (``spark_gateway_downloads_total{outcome=...}``).
A client that goes away ends the download at once (its Spark operation is cancelled), since
uvicorn would otherwise drop the rest silently while Spark kept producing it.

Authorised like the websocket: ``Authorization: Bearer <token>`` of the session's owner,
or a signed link (:mod:`spark_gateway.links`) got over the websocket with ``download``.
A refusal is an HTTP status with a typed body: an ``error`` event with ``seq`` 0.
"""

from __future__ import annotations

import csv
import io
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.to_thread
import orjson
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from spark_gateway_protocol.arrow_json import columns_converter, readable_schema, reinterpret
from spark_gateway_protocol.codec import event_to_dict
from spark_gateway_protocol.errors import ErrorCode, ProtocolError
from spark_gateway_protocol.messages import DOWNLOAD_FORMATS, MAX_ID_LENGTH, Error
from spark_gateway_protocol.parquet import parquet_batch, parquet_schema

from . import auth, spark
from .failures import error_event
from .links import LinkCheck, Target, is_signed

log = logging.getLogger("spark_gateway.download")

ROW_GROUP_ROWS = 1_000_000
ROW_GROUP_BYTES = 64 << 20
CHUNK_BYTES = 1 << 20  # what one thread hop encodes at least (unless the result ends)

MEDIA_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "parquet": "application/vnd.apache.parquet",
    "arrow": "application/vnd.apache.arrow.stream",
}
EXTENSIONS = {"csv": "csv", "parquet": "parquet", "arrow": "arrows"}

STATUS = {
    ErrorCode.BAD_MESSAGE: 400, ErrorCode.UNAUTHORIZED: 401, ErrorCode.FORBIDDEN: 403,
    ErrorCode.LINK_EXPIRED: 403, ErrorCode.UNKNOWN_SESSION: 404, ErrorCode.UNKNOWN_EXECUTION: 404,
    ErrorCode.UNKNOWN_RESULT: 404, ErrorCode.LIMIT_EXCEEDED: 429, ErrorCode.SPARK_ERROR: 502,
    ErrorCode.PYTHON_ERROR: 502, ErrorCode.SPARK_UNAVAILABLE: 503, ErrorCode.SHUTTING_DOWN: 503,
}


# ------------------------------------------------------------------ encoding (blocking, any thread)


class Pipe:
    """A write-only file the encoders write to; what they wrote is taken out in chunks."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._position = 0
        self.size = 0  # bytes written and not taken yet
        self.closed = False

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self._parts.append(chunk)
        self._position += len(chunk)
        self.size += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self._position

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def take(self) -> bytes:
        data, self._parts, self.size = b"".join(self._parts), [], 0
        return data


class Encoder:
    """Writes a result's batches to a :class:`Pipe` in one file format."""

    def __init__(self, schema: pa.Schema, sink: Pipe) -> None:
        self.schema = schema
        self.sink = sink

    def add(self, batch: pa.RecordBatch) -> None:
        raise NotImplementedError

    def finish(self) -> None:
        raise NotImplementedError


class ArrowEncoder(Encoder):
    """An Arrow IPC stream (``.arrows``): the schema, then each of Spark's batches as it came."""

    def __init__(self, schema: pa.Schema, sink: Pipe) -> None:
        super().__init__(schema, sink)
        self._writer = pa.ipc.new_stream(sink, schema)

    def add(self, batch: pa.RecordBatch) -> None:
        self._writer.write_batch(batch)

    def finish(self) -> None:
        self._writer.close()


class ParquetEncoder(Encoder):
    """A Parquet file whose row groups hold ``ROW_GROUP_ROWS`` rows (or ``ROW_GROUP_BYTES`` of data),
    not one per Spark batch: readers scan a few large row groups much faster than many small ones.
    Intervals are stored as ``spark_gateway_protocol.parquet`` says (Parquet has no type for them)."""

    def __init__(self, schema: pa.Schema, sink: Pipe, *, group_rows: int = ROW_GROUP_ROWS,
                 group_bytes: int = ROW_GROUP_BYTES) -> None:
        super().__init__(schema, sink)
        self._stored = parquet_schema(schema)
        self._writer = pq.ParquetWriter(sink, self._stored, compression="zstd")
        self._group_rows = group_rows
        self._group_bytes = group_bytes
        self._held: list[pa.RecordBatch] = []
        self._rows = 0
        self._bytes = 0

    def add(self, batch: pa.RecordBatch) -> None:
        batch = parquet_batch(batch, self._stored)
        while batch.num_rows:
            take = min(batch.num_rows, self._group_rows - self._rows)
            part, batch = batch.slice(0, take), batch.slice(take)
            self._held.append(part)
            self._rows += part.num_rows
            self._bytes += part.nbytes
            if self._rows >= self._group_rows or self._bytes >= self._group_bytes:
                self._write_group()

    def finish(self) -> None:
        if self._held:
            self._write_group()
        self._writer.close()

    def _write_group(self) -> None:
        table = pa.Table.from_batches(self._held, self._stored)
        self._writer.write_table(table, row_group_size=max(1, table.num_rows))  # one row group
        self._held, self._rows, self._bytes = [], 0, 0


# Types Arrow's CSV writer writes as people expect them; any other column (timestamps, binary,
# intervals, nested types) is written as the notebook shows it: the protocol's JSON mapping.
def _written_as_is(arrow_type: pa.DataType) -> bool:
    t = pa.types
    return bool(t.is_boolean(arrow_type) or t.is_integer(arrow_type) or t.is_floating(arrow_type)
                or t.is_decimal(arrow_type) or t.is_string(arrow_type) or t.is_large_string(arrow_type)
                or t.is_date32(arrow_type))


class CsvEncoder(Encoder):
    """RFC 4180 CSV (CRLF), UTF-8, a header line; strings quoted, null as an empty field.

    Numbers, strings, booleans, decimals and dates are written by Arrow's CSV writer (fast, in
    C++); the other columns as the protocol maps them (timestamps as ``2024-01-02T03:04:05.000000Z``,
    nested values as JSON text), through the protocol's Arrow-to-JSON mapping.
    """

    def __init__(self, schema: pa.Schema, sink: Pipe) -> None:
        super().__init__(schema, sink)
        self._mapped = [i for i, f in enumerate(schema) if not _written_as_is(f.type)]
        fields = [pa.field(f.name, pa.string()) if i in self._mapped else f for i, f in enumerate(schema)]
        self._out_schema = pa.schema(fields)
        self._to_json = columns_converter(pa.schema([schema.field(i) for i in self._mapped])) if self._mapped else None
        header = io.StringIO()
        csv.writer(header, lineterminator="\r\n").writerow(schema.names)
        sink.write(header.getvalue().encode())
        self._writer = pa_csv.CSVWriter(sink, self._out_schema, write_options=pa_csv.WriteOptions(
            include_header=False, quoting_style="needed", eol="\r\n"))

    def add(self, batch: pa.RecordBatch) -> None:
        self._writer.write_batch(self._textual(batch))

    def finish(self) -> None:
        self._writer.close()

    def _textual(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        if self._to_json is None:
            return batch
        readable = readable_schema(batch.schema)
        if readable is not None:  # year-month intervals seen as int32 (pyarrow cannot wrap them); mapped below
            batch = reinterpret(batch, readable)
        mapped = pa.RecordBatch.from_arrays([batch.column(i) for i in self._mapped],
                                            schema=pa.schema([batch.schema.field(i) for i in self._mapped]))
        columns = list(batch.columns)
        for i, values in zip(self._mapped, self._to_json(mapped), strict=True):
            columns[i] = pa.array([csv_text(v) for v in values], pa.string())
        return pa.RecordBatch.from_arrays(columns, schema=self._out_schema)


def csv_text(value: Any) -> str | None:
    """A JSON-mapped value as CSV text: strings as they are, null as null, anything else as JSON."""
    if value is None or isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


ENCODERS: dict[str, Callable[[pa.Schema, Pipe], Encoder]] = {
    "csv": CsvEncoder, "parquet": ParquetEncoder, "arrow": ArrowEncoder,
}


class Encoding:
    """One download's encoding: batches pulled from ``next_batch`` become chunks of file bytes."""

    def __init__(self, format: str, schema: pa.Schema, next_batch: Callable[[], pa.RecordBatch | None]) -> None:
        self.schema = schema
        self._next_batch = next_batch
        self._pipe = Pipe()
        self._encoder = ENCODERS[format](schema, self._pipe)
        self._done = False
        self.rows = 0

    def next_chunk(self) -> bytes | None:
        """The next bytes of the file (at least ``CHUNK_BYTES`` but at the end), None after the end.

        Blocking (it reads from Spark): call it in a worker thread.
        """
        while not self._done and self._pipe.size < CHUNK_BYTES:
            batch = self._next_batch()
            if batch is None:
                self._encoder.finish()
                self._done = True
                break
            if batch.schema != self.schema:
                batch = cast_batch(batch, self.schema)  # Spark's batch types to toArrow()'s (timestamps: UTC)
            self._encoder.add(batch)
            self.rows += batch.num_rows
        if self._pipe.size:
            return self._pipe.take()
        return None


def cast_batch(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """``batch.cast(schema)``, year-month intervals included (cast as the int32 they are laid out as:
    pyarrow cannot wrap a month_interval column)."""
    readable = readable_schema(batch.schema)
    if readable is None:
        return batch.cast(schema)
    target = readable_schema(schema)
    return reinterpret(reinterpret(batch, readable).cast(target if target is not None else schema), schema)


def encode_all(format: str, batches: list[pa.RecordBatch], schema: pa.Schema) -> bytes:
    """The whole file for ``batches`` at once (tests, small results)."""
    pending = iter(batches)
    encoding = Encoding(format, schema, lambda: next(pending, None))
    out = []
    while (chunk := encoding.next_chunk()) is not None:
        out.append(chunk)
    return b"".join(out)


# ------------------------------------------------------------------ the HTTP route (event loop)


class Refused(Exception):
    """A download that cannot start: an HTTP status and a typed error body."""

    def __init__(self, code: ErrorCode, message: str, event: Error | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = STATUS.get(code, 500)
        self.event = event or Error(code.value, message)

    def response(self) -> Response:
        """The body is an ``error`` event with seq 0, as when a websocket is refused: not part of a stream."""
        headers = {"WWW-Authenticate": 'Bearer realm="spark-gateway"'} if self.status == 401 else {}
        headers["Cache-Control"] = "no-store"
        return JSONResponse(event_to_dict(self.event, 0), status_code=self.status, headers=headers)


def parse_target(query: Any) -> Target:
    """The session, execution, result and format a request names (400 when malformed)."""
    names = ("session", "execution", "result")
    missing = [n for n in names if not query.get(n)]
    if missing:
        raise Refused(ErrorCode.BAD_MESSAGE, f"query parameter(s) {', '.join(missing)} missing "
                      "(GET /download?session=&execution=&result=&format=)")
    for name in ("session", "execution"):
        if len(query[name]) > MAX_ID_LENGTH:
            raise Refused(ErrorCode.BAD_MESSAGE, f"query parameter {name} is longer than {MAX_ID_LENGTH}")
    result = query["result"]
    if not result.isdigit() or len(result) > 10:
        raise Refused(ErrorCode.BAD_MESSAGE, "query parameter result must be a result number (0, 1, ...)")
    fmt = query.get("format", "parquet")
    if fmt not in DOWNLOAD_FORMATS:
        raise Refused(ErrorCode.BAD_MESSAGE, f"format must be one of {', '.join(DOWNLOAD_FORMATS)}")
    return Target(query["session"], query["execution"], int(result), fmt)


def authorise(request: Request, gateway: Any, target: Target) -> None:
    """A signed link of this gateway for exactly ``target``, or the credential that owns the session."""
    query = request.query_params
    if is_signed(query):
        verdict = gateway.links.check(target, query.get("expires"), query.get("sig"))
        if verdict is LinkCheck.EXPIRED:
            raise Refused(ErrorCode.LINK_EXPIRED, "this download link has expired: ask for a new one "
                          f"(links are valid for {gateway.links.seconds} s)")
        if verdict is LinkCheck.FORGED:
            raise Refused(ErrorCode.FORBIDDEN, "this download link is not valid (altered, or from another "
                          "gateway process)")
        return
    pol = auth.policy(gateway.settings)
    if pol.required and not pol.tokens:
        raise Refused(ErrorCode.UNAUTHORIZED, "this gateway has no token configured")
    decision = auth.decide(pol, headers=auth._headers(request.scope), browser_checks=False)
    if not pol.required and not auth.host_is_loopback(request.headers.get("host")):
        raise Refused(ErrorCode.FORBIDDEN, "this gateway has no token and answers loopback host names only")
    if decision.status:
        raise Refused(ErrorCode.UNAUTHORIZED, "a valid token is required (Authorization: Bearer <token>), "
                      "or a signed link (the download request of the websocket protocol)")
    if target.session in gateway.sessions and not gateway.owners.is_owner(target.session, decision.credential):
        raise Refused(ErrorCode.FORBIDDEN, "this session belongs to another credential")


@dataclass
class Opened:
    """A download whose Spark operation is open: its encoding, and how to stop it."""

    encoding: Encoding
    close: Callable[[], None]
    cancel: Callable[[], None]  # from any thread, while the encoding reads


def _open(session_spark: Any, source: Any, fmt: str, adapter: Any) -> Opened:
    """Blocking: run the result's query again and set up its encoding."""
    stream = adapter.open_download(session_spark, source.df, source.limit)
    if stream is None:
        raise Refused(ErrorCode.UNKNOWN_RESULT, "the query has no columns any more")
    try:
        schema = adapter.download_schema(stream)
        return Opened(Encoding(fmt, schema, stream.next_batch), stream.close, stream.cancel)
    except BaseException:
        stream.close()
        raise


async def endpoint(request: Request) -> Response:
    """``GET /download``: the whole result as a file, or a typed refusal."""
    gateway = request.app.state.gateway
    try:
        target = parse_target(request.query_params)
        authorise(request, gateway, target)
        if gateway.draining:
            raise Refused(ErrorCode.SHUTTING_DOWN, "the gateway is shutting down")
        life = gateway.sessions.get(target.session)
        if life is None or life.ending:
            raise Refused(ErrorCode.UNKNOWN_SESSION, f"no session {target.session}: it ended (a download "
                          "needs the session that ran the query to be open)")
        try:
            source = life.session.result_source(target.execution, target.result)
        except ProtocolError as exc:
            raise Refused(ErrorCode(exc.code), exc.message) from None
        spark_session = life.session.spark_session
        if spark_session is None:
            raise Refused(ErrorCode.SPARK_UNAVAILABLE, "the session has no Spark session now; run the cell again")
        if gateway.downloads_active >= gateway.settings.max_downloads:
            raise Refused(ErrorCode.LIMIT_EXCEEDED, f"{gateway.downloads_active} downloads are running "
                          "(max_downloads); try again later")
        gateway.downloads_active += 1
    except Refused as refused:
        gateway.metrics.download_refused(refused.code.value)
        log.warning("download refused with %d: %s", refused.status, refused.message)
        return refused.response()
    try:
        opened = await anyio.to_thread.run_sync(_open, spark_session, source, target.format, spark)
    except Refused as refused:
        gateway.downloads_active -= 1
        return refused.response()
    except Exception as exc:  # noqa: BLE001 - Spark refused the query now: a typed error, no file
        gateway.downloads_active -= 1
        event = error_event(spark, target.execution, exc)
        gateway.metrics.download_refused(event.code)
        log.warning("download of %s result %d failed to start: %s", target.execution, target.result, event.message)
        return Refused(ErrorCode(event.code), event.message, event).response()
    filename = f"result-{_safe(target.execution)}-{target.result}.{EXTENSIONS[target.format]}"
    return DownloadResponse(gateway, target, opened, filename)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:64]


class DownloadResponse(Response):
    """A chunked response of the file's bytes, ended without its last chunk when anything fails."""

    def __init__(self, gateway: Any, target: Target, opened: Opened, filename: str) -> None:
        # As StreamingResponse does: no body attribute, so no Content-Length (the response is chunked).
        self.status_code = 200
        self.media_type = MEDIA_TYPES[target.format]
        self.background = None
        self.init_headers({"Content-Disposition": f'attachment; filename="{filename}"',
                           "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})
        self.gateway = gateway
        self.target = target
        self.opened = opened

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        metrics, target = self.gateway.metrics, self.target
        metrics.download_started(target.format)
        started = time.monotonic()
        failure: str | None = None
        self.sent = 0
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._watch_disconnect, receive, tg.cancel_scope)
                await self._stream(send)
                tg.cancel_scope.cancel()
            if self.gone and not self.completed:
                failure = "the client went away"
        except Exception as exc:  # noqa: BLE001 - Spark failed mid-way: the response is cut, never completed
            while isinstance(exc, ExceptionGroup) and len(exc.exceptions) == 1:  # from the task group
                exc = exc.exceptions[0]
            failure = "the client went away" if self.gone else error_event(spark, target.execution, exc).message
        finally:
            self.gateway.downloads_active -= 1
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(_close_quietly, self.opened.close)
        sent = self.sent
        seconds = time.monotonic() - started
        rows = self.opened.encoding.rows
        if failure is None:
            metrics.download_finished(target.format, "completed")
            log.info("download of %s result %d as %s: %d rows, %d bytes in %.1f s", target.execution, target.result,
                     target.format, rows, sent, seconds, extra={"session": target.session})
        else:
            metrics.download_finished(target.format, "failed")
            log.warning("download of %s result %d as %s failed after %d rows, %d bytes (%.1f s): %s; the response "
                        "was cut short", target.execution, target.result, target.format, rows, sent, seconds, failure,
                        extra={"session": target.session})

    gone = False  # the client disconnected
    completed = False  # the final chunk was sent

    async def _stream(self, send: Any) -> None:
        """Headers, then every chunk as it is encoded, then the final (empty) chunk."""
        await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
        while (chunk := await anyio.to_thread.run_sync(self.opened.encoding.next_chunk)) is not None:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            self.sent += len(chunk)
            self.gateway.metrics.download_bytes += len(chunk)
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        self.completed = True

    async def _watch_disconnect(self, receive: Any, scope: anyio.CancelScope) -> None:
        """uvicorn drops what is sent after a disconnect: stop reading from Spark as soon as it happens."""
        while (await receive())["type"] != "http.disconnect":
            pass
        self.gone = True
        _close_quietly(self.opened.cancel)  # the thread waiting on Spark for the next chunk returns now
        scope.cancel()


def _close_quietly(close: Callable[[], None]) -> None:
    try:
        close()
    except Exception:  # noqa: BLE001, S110 - cleanup must not raise over the real outcome
        pass
