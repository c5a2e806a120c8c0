"""``spark-gateway query``: run SQL or Python through the gateway; print a table or stream rows to a file.

The entry point is :func:`main` (``main(argv) -> exit code``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import operator
import os
import re
import signal
import sys
import time
import unicodedata
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any, NamedTuple

import orjson

from spark_gateway_protocol.messages import Column, Progress

from .batch import RowBatch
from .errors import (
    GatewayConnectionError,
    Interrupted,
    PythonError,
    QueryError,
    RequestRefused,
    SparkGatewayError,
)
from .execution import Execution, ResultStream, Row
from .session import DEFAULT_URL, connect

EXIT_OK = 0
EXIT_QUERY_ERROR = 1
EXIT_USAGE = 2
EXIT_CONNECTION = 3
EXIT_INTERRUPTED = 4

FORMATS = ("table", "csv", "jsonl", "arrow", "parquet")
FILE_JSON_PAGE_SIZE = 10_000  # rows per JSON page when writing csv or jsonl
EXTENSIONS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".arrow": "arrow", ".arrows": "arrow",
              ".ipc": "arrow", ".parquet": "parquet", ".pq": "parquet", ".txt": "table"}
NUMERIC_TYPES = ("tinyint", "smallint", "int", "bigint", "float", "double", "decimal")
DEFAULT_MAX_ROWS = 1000
MAX_CELL_WIDTH = 80

EPILOG = """\
exit codes:
  0  the execution finished ok (its output is complete)
  1  query error: Spark or the Python code raised (the message is on stderr)
  2  usage error: bad arguments, unreadable input, unwritable output, or a request the gateway refused
  3  connection failure: the gateway cannot be reached, refused the connection or went away
     (a dropped connection is resumed first, within the gateway's grace period; see --no-resume),
     or its Spark Connect server is unavailable
  4  interrupted: Ctrl+C stopped the execution (a first Ctrl+C interrupts it on Spark and waits
     for it to stop; a second one exits at once)

output:
  without --format/-o, a table of at most --max-rows rows (saying so when rows were omitted),
  a value's lines cut at --max-width characters (saying so when any was cut);
  csv, jsonl, arrow (an Arrow IPC stream, readable with pyarrow.ipc.open_stream) and parquet
  stream any number of rows in constant memory (parquet: row groups of 1,048,576 rows).
  csv and jsonl values follow the gateway's JSON type mapping (docs/type-mapping.md); in CSV a NULL
  is an empty field and an empty string is "".
  Output the code prints goes to stdout (to stderr when stdout carries the rows).

examples:
  spark-gateway query --url ws://localhost:8765/ws "SELECT * FROM range(10)"
  spark-gateway query "SELECT * FROM range(10000000)" -o ten_million.parquet
  spark-gateway query -c "spark.range(5).show()"
  spark-gateway query -f report.sql --format csv > report.csv
"""


class UsageError(Exception):
    """Bad arguments or unusable input/output files: exit code 2."""


def build_parser(prog: str = "spark-gateway query") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description="Run SQL or Python code through a spark-gateway and print or save its result.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sql", nargs="?", help="SQL statement to run")
    parser.add_argument("-c", dest="python", metavar="CODE", help="Python code to run (spark is bound)")
    parser.add_argument("-f", dest="file", metavar="FILE",
                        help="read the code from FILE ('-': stdin); .py is Python, otherwise SQL")
    parser.add_argument("--language", choices=("sql", "python"),
                        help="language of the code (overrides the guess)")
    parser.add_argument("--url", default=os.environ.get("SPARK_GATEWAY_URL", DEFAULT_URL),
                        help=f"gateway websocket URL [SPARK_GATEWAY_URL, default {DEFAULT_URL}]")
    parser.add_argument("--token", default=os.environ.get("SPARK_GATEWAY_TOKEN"),
                        help="bearer token for the gateway [SPARK_GATEWAY_TOKEN]")
    parser.add_argument("--format", choices=FORMATS,
                        help="output format (default: from -o's extension, else table)")
    parser.add_argument("-o", "--output", metavar="FILE", help="write the rows to FILE instead of stdout")
    parser.add_argument("--download", action="store_true",
                        help="with -o FILE as csv, parquet or arrow: the gateway runs the result's query again "
                             "and streams the file itself (GET /download; Parquet row groups of a million rows), "
                             "instead of sending the rows through this client")
    parser.add_argument("--limit", type=_non_negative,
                        help="at most this many rows per result (applied in Spark)")
    parser.add_argument("--max-rows", type=_positive, default=DEFAULT_MAX_ROWS,
                        help=f"table format: rows shown at most (default {DEFAULT_MAX_ROWS})")
    parser.add_argument("--max-width", type=_non_negative, default=MAX_CELL_WIDTH,
                        help=f"table format: characters shown per line of a value, the rest cut and "
                             f"marked … (default {MAX_CELL_WIDTH}; 0: no limit)")
    parser.add_argument("--page-size", type=_positive, help="rows per page from the gateway")
    parser.add_argument("--no-resume", dest="resume", action="store_false",
                        help="fail at once when the connection drops (default: reconnect and resume the "
                             "session, losing nothing, within the gateway's grace period)")
    progress = parser.add_mutually_exclusive_group()
    progress.add_argument("--progress", dest="progress", action="store_true", default=None,
                          help="show a progress line on stderr (default: when stderr is a terminal)")
    progress.add_argument("--no-progress", dest="progress", action="store_false")
    return parser


def script() -> int:
    """The ``spark-gateway-query`` command of the light client's distribution."""
    return main(prog="spark-gateway-query")


def main(argv: list[str] | None = None, prog: str = "spark-gateway query") -> int:
    """Run the command line; returns the exit code (see ``--help``)."""
    parser = build_parser(prog)
    try:
        args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        job = Job.from_args(args)
    except UsageError as exc:
        parser.print_usage(sys.stderr)
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return asyncio.run(job.run())
    except KeyboardInterrupt:  # Ctrl+C outside the handled part (start-up, shut-down)
        return EXIT_INTERRUPTED


# ---------------------------------------------------------------- the job


class Job:
    """One command line run: what to execute and where its rows go."""

    def __init__(self, *, url: str, token: str | None, code: str, language: str, format: str,
                 output: str | None, limit: int | None, max_rows: int, page_size: int | None,
                 progress: bool, resume: bool = True, max_width: int = MAX_CELL_WIDTH,
                 download: bool = False) -> None:
        self.url = url
        self.token = token
        self.code = code
        self.language = language
        self.format = format
        self.output = output
        self.limit = limit
        self.max_rows = max_rows
        self.max_width = max_width
        self.page_size = page_size
        self.resume = resume
        self.download = download
        self.session: Any = None
        self.err = sys.stderr
        self.progress = ProgressLine(self.err) if progress else None
        self.execution: Execution | None = None
        self._sigints = 0
        # When the rows go to stdout, what the code prints goes to stderr.
        self.code_out: IO[str] = sys.stderr if (output is None and format != "table") else sys.stdout

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Job:
        given = [x for x in (args.sql, args.python, args.file) if x is not None]
        if len(given) != 1:
            raise UsageError("give exactly one of: a SQL statement, -c CODE, -f FILE")
        if args.file is not None:
            language = args.language or ("python" if args.file.endswith(".py") else "sql")
            try:
                code = sys.stdin.read() if args.file == "-" else Path(args.file).read_text()
            except OSError as exc:
                raise UsageError(f"cannot read {args.file}: {exc.strerror or exc}") from None
        elif args.python is not None:
            language, code = args.language or "python", args.python
        else:
            language, code = args.language or "sql", args.sql
        fmt = args.format
        if fmt is None and args.output is not None:
            fmt = EXTENSIONS.get(Path(args.output).suffix.lower())
            if fmt is None:
                raise UsageError(f"cannot tell the format from {args.output!r}: give --format "
                                 f"({', '.join(FORMATS)})")
        fmt = fmt or "table"
        if fmt == "parquet" and args.output is None:
            raise UsageError("--format parquet needs -o FILE")
        if fmt == "arrow" and args.output is None and sys.stdout.isatty():
            raise UsageError("--format arrow writes binary data: give -o FILE or redirect stdout")
        if args.download and (args.output is None or fmt not in ("csv", "parquet", "arrow")):
            raise UsageError("--download needs -o FILE and a format of csv, parquet or arrow")
        progress = args.progress if args.progress is not None else sys.stderr.isatty()
        return cls(url=args.url, token=args.token, code=code, language=language, format=fmt,
                   output=args.output, limit=args.limit, max_rows=args.max_rows, page_size=args.page_size,
                   progress=progress, resume=args.resume, max_width=args.max_width, download=args.download)

    async def run(self) -> int:
        self._install_sigint()
        try:
            return await self._run()
        except asyncio.CancelledError:  # a second Ctrl+C
            self._say("interrupted (not waiting for the execution to stop)")
            return EXIT_INTERRUPTED
        finally:
            if self.progress is not None:
                self.progress.stop()
            self._remove_sigint()

    async def _run(self) -> int:
        try:
            async with connect(self.url, token=self.token, resume=self.resume) as session:
                self.session = session
                arrow = self.format in ("arrow", "parquet")
                limit = self.limit
                if self.format == "table":
                    limit = self.max_rows if limit is None else min(limit, self.max_rows)
                execution = session.execute(
                    self.code, language="python" if self.language == "python" else "sql",
                    format="arrow" if arrow else "json", limit=limit, page_size=self._page_size(),
                    on_stdout=self._code_output, on_stderr=self._code_error, keep_output=False,
                    on_progress=self.progress.on_progress if self.progress else None)
                self.execution = execution
                if self._sigints:  # Ctrl+C while connecting
                    return EXIT_INTERRUPTED
                if self.progress is not None:
                    self.progress.start(execution)
                try:
                    await self._consume(execution)
                except SparkGatewayError as exc:
                    if not isinstance(exc, GatewayConnectionError):
                        with contextlib.suppress(TimeoutError):  # the job has stopped on Spark
                            async with asyncio.timeout(60):
                                await execution.wait(check=False)
                    raise
                if self.progress is not None:
                    self.progress.clear()
                for value in execution.values:
                    print(value.text, file=self.code_out, flush=True)  # a cut one is logged (stderr)
                return EXIT_OK
        except QueryError as exc:
            where = _where(exc)
            self._say(f"error: {exc.message}" + (f"\n  at: {where}" if where else ""))
            return EXIT_QUERY_ERROR
        except PythonError as exc:
            self._say(str(exc))
            return EXIT_QUERY_ERROR
        except Interrupted:
            self._say("interrupted")
            return EXIT_INTERRUPTED
        except GatewayConnectionError as exc:
            self._say(f"connection failure: {exc.message}")
            return EXIT_CONNECTION
        except RequestRefused as exc:
            self._say(f"refused by the gateway ({exc.code}): {exc.message}")
            return EXIT_USAGE
        except SparkGatewayError as exc:
            self._say(f"error ({exc.code}): {exc.message}")
            return EXIT_QUERY_ERROR
        except UsageError as exc:
            self._say(f"error: {exc}")
            return EXIT_USAGE
        except ValueError as exc:  # e.g. a bad URL
            self._say(f"error: {exc}")
            return EXIT_USAGE
        except BrokenPipeError:  # stdout closed early (| head): the reader has what it wanted
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            return EXIT_OK

    async def _consume(self, execution: Execution) -> None:
        written = False
        async for stream in execution.results():
            if self.format == "table":
                rows = await stream.rows()
                if self.progress is not None:
                    self.progress.clear()
                if stream.number > 0:
                    print(f"\nresult {stream.number}:", flush=True)
                sys.stdout.write(self._table(stream, rows))
                sys.stdout.flush()
            elif written:
                self._say(f"warning: result {stream.number} was not written: only the first result goes "
                          f"to the output")
                stream.close()
            elif self.download:
                stream.close()  # the gateway runs the query again for the file: these rows are not needed
                await execution.wait()
                assert self.output is not None
                path = await self.session.download(execution, stream.number, self.output, format=self.format)
                self._say(f"downloaded result {stream.number} to {path}")
                written = True
            else:
                await self._write(stream)
                written = True
        await execution.wait()
        if not written and self.format != "table":
            target = self.output or "stdout"
            self._say(f"note: the execution returned no result; nothing was written to {target}")

    def _page_size(self) -> int | None:
        """The user's, else bigger JSON pages for files (fewer frames); None: the client's default."""
        if self.page_size is None and self.format in ("csv", "jsonl"):
            return FILE_JSON_PAGE_SIZE
        return self.page_size

    def _table(self, stream: ResultStream, rows: list[Row]) -> str:
        table = format_table(stream.columns, rows, self.max_width)
        text = table.text
        if table.cut:
            text += (f"({table.cut} value{'s' if table.cut != 1 else ''} cut at {self.max_width} characters "
                     f"per line, marked …: --max-width 0 shows them whole)\n")
        count = f"({len(rows)} row{'s' if len(rows) != 1 else ''})"
        if stream.truncated:
            if self.limit is not None and self.limit <= self.max_rows:
                count = f"({len(rows)} rows; more rows exist beyond --limit {self.limit})"
            else:
                count = (f"({len(rows)} rows shown; more rows were omitted: the table shows at most "
                         f"{self.max_rows} rows. Use --max-rows N, or --format csv|jsonl|arrow|parquet "
                         f"-o FILE for every row)")
        return text + count + "\n"

    async def _write(self, stream: ResultStream) -> None:
        target = self.output
        try:
            if self.format == "parquet":
                assert target is not None
                await write_parquet(stream, target)
            elif self.format == "arrow":
                with _open_binary(target) as out:
                    async for chunk in stream.ipc_chunks():
                        out.write(chunk)
            elif self.format == "jsonl":
                with _open_binary(target) as out:
                    await write_jsonl(stream, out, warn=self._say)
            else:
                with _open_text(target) as out:
                    await write_csv(stream, out)
        except (SparkGatewayError, asyncio.CancelledError):
            if target is not None:
                self._say(f"note: {target} may be incomplete")
            raise
        except BrokenPipeError:
            raise
        except OSError as exc:
            stream.close()
            raise UsageError(f"cannot write {target or 'stdout'}: {exc.strerror or exc}") from None

    # ------------------------------------------------------------ output of the code, messages

    def _code_output(self, text: str) -> None:
        if self.progress is not None:
            self.progress.clear()
        self.code_out.write(text)
        self.code_out.flush()

    def _code_error(self, text: str) -> None:
        if self.progress is not None:
            self.progress.clear()
        self.err.write(text)
        self.err.flush()

    def _say(self, message: str) -> None:
        if self.progress is not None:
            self.progress.clear()
        print(message, file=self.err, flush=True)

    # ------------------------------------------------------------ Ctrl+C

    def _install_sigint(self) -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()

        def on_sigint() -> None:
            self._sigints += 1
            if self._sigints == 1 and self.execution is not None and not self.execution.done:
                self._say("interrupting... (press Ctrl+C again to exit now)")
                self.execution.interrupt()
            elif task is not None:
                task.cancel()

        try:
            loop.add_signal_handler(signal.SIGINT, on_sigint)
        except (NotImplementedError, RuntimeError):  # Windows, or not the main thread
            try:
                signal.signal(signal.SIGINT, lambda *_: loop.call_soon_threadsafe(on_sigint))
            except ValueError:
                pass

    def _remove_sigint(self) -> None:
        try:
            asyncio.get_running_loop().remove_signal_handler(signal.SIGINT)
        except (NotImplementedError, RuntimeError, ValueError):
            pass


# ---------------------------------------------------------------- writers


async def write_csv(stream: ResultStream, out: IO[str]) -> int:
    """RFC 4180 CSV with a header; values in the JSON mapping's text, NULL as an empty field."""
    out.write(",".join(_csv_field(name) for name in stream.names) + "\r\n")
    count = 0
    async for rows in stream.batches():
        if rows:
            # Column by column: one C-level pass per column instead of a Python call per value.
            columns = [_csv_column(column) for column in _columns(rows)]
            lines = map(",".join, zip(*columns, strict=True)) if columns else [""] * len(rows)
            out.write("\r\n".join(lines) + "\r\n")
        count += len(rows)
    return count


def _columns(rows: Sequence[Row]) -> Sequence[Sequence[Any]]:
    """The columns of a page: as they came (a RowBatch, the columns layout), else the rows zipped."""
    return rows.columns if isinstance(rows, RowBatch) else list(zip(*rows, strict=True))


_CSV_QUOTE = re.compile(r'[,"\r\n]|^\s|\s$')
_CSV_PLAIN: dict[type, Callable[[Any], str]] = {int: str, float: repr}


def _csv_column(values: Sequence[Any]) -> Sequence[str]:
    """One column's CSV fields (``_csv_field`` of each value, with fast paths for plain columns)."""
    kinds = set(map(type, values))
    if kinds == {str}:
        if not _csv_quotes_needed(values):
            return values
    elif len(kinds) == 1:
        plain = _CSV_PLAIN.get(kinds.pop())
        if plain is not None:
            return list(map(plain, values))
    return list(map(_csv_field, values))


def _csv_quotes_needed(values: Sequence[str]) -> bool:
    """Whether some value needs quotes (``_CSV_QUOTE``, or empty), in C-level passes."""
    text = "".join(values)
    if any(special in text for special in ',"\r\n') or "" in values:
        return True
    # str.strip() returns the very same object when there is no whitespace at either end.
    return any(map(operator.is_not, map(str.strip, values), values))


def _csv_field(value: Any) -> str:
    kind = type(value)
    text: str
    if kind is str:
        text = value
    elif kind is int or kind is float:
        return repr(value)
    elif value is None:
        return ""
    elif value is True or value is False:
        return "true" if value else "false"
    else:  # arrays, structs, maps: their JSON text
        text = orjson.dumps(value).decode()
    if text and _CSV_QUOTE.search(text) is None:
        return text
    return '"' + text.replace('"', '""') + '"'  # also "" for the empty string (NULL is an empty field)


async def write_jsonl(stream: ResultStream, out: IO[bytes], warn: Callable[[str], None] | None = None) -> int:
    """One JSON object per row, keys in column order (duplicate column names get a ``_2`` suffix)."""
    names = unique_names(stream.names)
    if names != stream.names and warn is not None:
        warn(f"warning: duplicate column names renamed for JSON Lines: {', '.join(names)}")
    dumps, newline = orjson.dumps, orjson.OPT_APPEND_NEWLINE
    count = 0
    async for rows in stream.batches():
        # From the columns when the page came as columns: no row lists to build.
        values = zip(*rows.columns, strict=True) if isinstance(rows, RowBatch) and rows.columns else rows
        out.write(b"".join(dumps(dict(zip(names, row, strict=True)), option=newline) for row in values))
        count += len(rows)
    return count


# Parquet row groups: each Arrow page is ~10,000 rows, and readers (DuckDB, Spark, pandas) pay
# per row group (footer entries, statistics, column chunk seeks), so pages are gathered into row
# groups of pyarrow's own default length, what ``pq.write_table`` of the same data would write.
# The byte cap bounds what the client holds for wide rows (a 64 MiB Arrow buffer encodes to less
# on disk, so one group also stays inside one 128 MiB Spark split).
ROW_GROUP_ROWS = 1 << 20
ROW_GROUP_BYTES = 64 << 20


async def write_parquet(stream: ResultStream, path: str) -> int:
    """The batches as they come, in row groups of ``ROW_GROUP_ROWS`` rows (fewer only when
    ``ROW_GROUP_BYTES`` of Arrow data come first, and for the last): memory stays bounded by one
    row group whatever the result's size. Rows received before a failure are still written.
    Intervals are stored as the gateway's Parquet downloads store them (``spark_gateway_protocol.parquet``)."""
    import pyarrow.parquet as pq

    from spark_gateway_protocol.parquet import parquet_batch, parquet_schema

    writer: pq.ParquetWriter | None = None
    stored: Any = None
    group = RowGroup()
    count = 0
    try:
        async for batch in stream.batches():
            if writer is None:
                stored = parquet_schema(stream.arrow_schema or batch.schema)
                writer = pq.ParquetWriter(path, stored)
            group.add(parquet_batch(batch, stored))
            count += batch.num_rows
            while group.full():
                writer.write_table(group.take(), row_group_size=ROW_GROUP_ROWS)
        if writer is None:  # no rows: a file with the schema only
            if stream.arrow_schema is None:
                raise SparkGatewayError("the result ended without an Arrow schema")
            writer = pq.ParquetWriter(path, parquet_schema(stream.arrow_schema))
    finally:
        if writer is not None:
            if group.rows:
                writer.write_table(group.take(), row_group_size=ROW_GROUP_ROWS)
            writer.close()
    return count


class RowGroup:
    """Arrow batches waiting to become one Parquet row group."""

    def __init__(self) -> None:
        self.batches: list[Any] = []
        self.rows = 0
        self.bytes = 0

    def add(self, batch: Any) -> None:
        self.batches.append(batch)
        self.rows += batch.num_rows
        self.bytes += batch.nbytes

    def full(self) -> bool:
        return self.rows >= ROW_GROUP_ROWS or self.bytes >= ROW_GROUP_BYTES

    def take(self) -> Any:
        """The next row group as a table: at most ``ROW_GROUP_ROWS`` rows; the rest stays buffered."""
        import pyarrow as pa

        table = pa.Table.from_batches(self.batches)
        head, rest = table.slice(0, ROW_GROUP_ROWS), table.slice(ROW_GROUP_ROWS)
        self.batches, self.rows, self.bytes = [], 0, 0
        for batch in rest.to_batches():
            self.add(batch)
        return head


def unique_names(names: list[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for name in names:
        candidate, n = name, 1
        while candidate in seen:
            n += 1
            candidate = f"{name}_{n}"
        seen.add(candidate)
        out.append(candidate)
    return out


class _open_binary:  # noqa: N801 - a context manager used like open()
    """A binary file, or stdout's buffer (left open) when ``path`` is None."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.file: IO[bytes] | None = None

    def __enter__(self) -> IO[bytes]:
        self.file = sys.stdout.buffer if self.path is None else open(self.path, "wb")  # noqa: SIM115
        return self.file

    def __exit__(self, *exc: object) -> None:
        assert self.file is not None
        if self.path is None:
            self.file.flush()
        else:
            self.file.close()


class _open_text:  # noqa: N801
    def __init__(self, path: str | None) -> None:
        self.path = path
        self.file: IO[str] | None = None

    def __enter__(self) -> IO[str]:
        self.file = sys.stdout if self.path is None else open(self.path, "w", encoding="utf-8", newline="")  # noqa: SIM115
        return self.file

    def __exit__(self, *exc: object) -> None:
        assert self.file is not None
        if self.path is None:
            self.file.flush()
        else:
            self.file.close()


# ---------------------------------------------------------------- table


def format_table(columns: list[Column], rows: list[Row], max_width: int = MAX_CELL_WIDTH) -> Table:
    """An aligned text table (numbers right-aligned), psql style, without the row count.

    A text value with line breaks spans several lines, each continued line marked ``+`` as
    psql does (an ``EXPLAIN`` plan reads as a plan). A line wider than ``max_width``
    characters (0: no limit) is cut with ``…``; :attr:`Table.cut` counts the values cut so
    that the caller says so.
    """
    numeric = [c.type.startswith(NUMERIC_TYPES) for c in columns]
    cut = 0

    def cell(value: Any) -> list[str]:
        nonlocal cut
        lines = _cell_lines(value)
        if max_width and any(_width(text) > max_width for text in lines):
            cut += 1
            lines = [_cut(text, max_width) for text in lines]
        return lines

    header = [cell(c.name) for c in columns]
    body = [[cell(v) for v in row] for row in rows]
    widths = [max(map(_width, h)) for h in header]
    for row in body:
        for i, lines in enumerate(row):
            widths[i] = max(widths[i], *map(_width, lines))

    def lines_of(cells: list[list[str]], align: list[bool]) -> list[str]:
        out = []
        for k in range(max(map(len, cells))):
            parts = []
            for lines, width, right in zip(cells, widths, align, strict=True):
                text = lines[k] if k < len(lines) else ""
                pad = " " * (width - _width(text))
                more = "+" if k < len(lines) - 1 else " "  # the value goes on, on the next line
                parts.append(" " + (pad + text if right else text + pad) + more)
            out.append("|".join(parts).rstrip() + "\n")
        return out

    out = [*lines_of(header, [False] * len(columns)), "-" + "-+-".join("-" * w for w in widths) + "-\n"]
    for row in body:
        out.extend(lines_of(row, numeric))
    return Table("".join(out), cut)


class Table(NamedTuple):
    """A formatted table and how many of its values were cut at the width limit."""

    text: str
    cut: int


_ESCAPES = str.maketrans({"\r": "\\r", "\t": "\\t"})  # they would break the alignment


def _cell_lines(value: Any) -> list[str]:
    if value is None:
        return ["NULL"]
    if value is True or value is False:
        return ["true" if value else "false"]
    if isinstance(value, str):
        return value.translate(_ESCAPES).split("\n")
    if isinstance(value, int | float):
        return [repr(value)]
    return [orjson.dumps(value).decode()]


def _cut(text: str, max_width: int) -> str:
    if _width(text) <= max_width:
        return text
    out, width = [], 0
    for ch in text:
        width += _char_width(ch)
        if width > max_width - 1:
            break
        out.append(ch)
    return "".join(out) + "…"


def _char_width(ch: str) -> int:
    if unicodedata.combining(ch):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def _width(text: str) -> int:
    return len(text) if text.isascii() else sum(_char_width(ch) for ch in text)


def _where(exc: QueryError) -> str:
    return "; ".join(f"{c.fragment!r} (characters {c.start}-{c.stop})" for c in exc.context if c.fragment)


# ---------------------------------------------------------------- progress


class ProgressLine:
    """One line on stderr, redrawn a few times a second: elapsed time, Spark tasks, rows received."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out
        self.progress: Progress | None = None
        self._execution: Execution | None = None
        self._task: asyncio.Task[None] | None = None
        self._shown = False
        self._started = time.monotonic()

    def on_progress(self, progress: Progress) -> None:
        self.progress = progress

    def start(self, execution: Execution) -> None:
        self._execution = execution
        self._started = time.monotonic()
        self._task = asyncio.create_task(self._tick())

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(0.25)
            self.draw()

    def draw(self) -> None:
        execution = self._execution
        if execution is None:
            return
        parts = [f"{time.monotonic() - self._started:.1f}s"]
        if execution.started_at is None and execution.queue_position:
            parts.append(f"queued ({execution.queue_position} ahead)")
        if self.progress is not None and self.progress.tasks_total:
            parts.append(f"tasks {self.progress.tasks_done}/{self.progress.tasks_total}")
        rows = sum(r.rows_received for r in execution.result_streams)
        if rows or execution.result_streams:
            parts.append(f"{rows:,} rows")
        self.out.write("\r\x1b[K" + " · ".join(parts))
        self.out.flush()
        self._shown = True

    def clear(self) -> None:
        if self._shown:
            self.out.write("\r\x1b[K")
            self.out.flush()
            self._shown = False

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        self.clear()


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {value}")
    return value


if __name__ == "__main__":
    sys.exit(main())
