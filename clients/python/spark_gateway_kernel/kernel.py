"""The Jupyter kernel: ipykernel's ``Kernel`` over one gateway session, through spark_gateway_client.

Thin on purpose: Jupyter's messaging lives in ipykernel, the gateway's protocol in the
client. This module maps one onto the other: an ``execute_request`` becomes the cell's
executions (``cells.parse``), their events become IOPub messages (``outputs.CellOutput``),
``interrupt_request`` and SIGINT become the gateway's ``interrupt``, shutdown closes the
session. The session lives on the shell's event loop (the main thread); control requests
(interrupt, shutdown) come on ipykernel's control thread and reach it thread-safely.
"""

from __future__ import annotations

import ast
import asyncio
import logging
import os
import platform
import signal
import threading
from typing import Any

from ipykernel.kernelbase import Kernel
from traitlets import Integer, Unicode

from spark_gateway_client import DEFAULT_URL, Execution, Interrupted, Session, SparkGatewayError, connect

from . import __version__, cells, display
from .cells import CellError, Part
from .outputs import CellOutput

CONNECT_TIMEOUT = 30.0  # seconds a kernel_info request waits for the gateway (it opens a Spark session)
CLIENT_LOGGER = "spark_gateway_client"


class SparkGatewayKernel(Kernel):  # type: ignore[misc]
    """Cells run in one gateway session: Python by default (``spark`` ready), ``%%sql`` / ``%sql`` for SQL."""

    implementation = "spark_gateway_kernel"
    implementation_version = __version__
    language = "python"

    url = Unicode("", help="the gateway's websocket address; default $SPARK_GATEWAY_URL, then "
                  f"{DEFAULT_URL}").tag(config=True)
    token_env = Unicode("", help="environment variable holding the gateway's token; default "
                        "SPARK_GATEWAY_TOKEN").tag(config=True)
    max_rows = Integer(1000, help="rows of a result shown (`%%sql -n N` for one cell)").tag(config=True)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._session: Session | None = None
        self._opening: asyncio.Lock | None = None
        self._open_error: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._python_version = ""
        self._resumes_seen = 0
        self._cell: CellOutput | None = None  # the cell running now
        self._cell_task: asyncio.Task[Any] | None = None
        self._execution: Execution | None = None
        self._interrupted = False
        logging.getLogger(CLIENT_LOGGER).addHandler(_ClientLog(self))

    # ------------------------------------------------------------ kernel_info

    @property
    def gateway_url(self) -> str:
        return self.url or os.environ.get("SPARK_GATEWAY_URL") or DEFAULT_URL

    @property
    def language_info(self) -> dict[str, Any]:  # type: ignore[override]
        return {"name": "python", "version": self._python_version or platform.python_version(),
                "mimetype": "text/x-python", "file_extension": ".py", "pygments_lexer": "ipython3",
                "codemirror_mode": {"name": "ipython", "version": 3}, "nbconvert_exporter": "python"}

    @property
    def banner(self) -> str:  # type: ignore[override]
        usage = "Cells are Python run on the gateway (`spark` is ready); %%sql makes a cell SQL, %sql a line."
        session = self._session
        if session is None or session.closed:
            reason = self._open_error or "not connected yet"
            return f"Spark through spark-gateway at {self.gateway_url}: {reason}.\n{usage}"
        info = session.info
        return (f"Spark {info.spark_version or '(version unknown)'} through spark-gateway {info.gateway_version} "
                f"at {self.gateway_url} (session {info.session_id}).\n{usage}")

    async def kernel_info_request(self, stream: Any, ident: Any, parent: Any) -> None:
        """Connect first, so that the banner names the gateway's and Spark's versions.

        Only on the shell's loop (the main thread), where the session lives: a kernel_info
        request on the control channel is answered with what is known.
        """
        if threading.current_thread() is threading.main_thread():
            self._loop = asyncio.get_running_loop()
            try:
                await asyncio.wait_for(self._connected(None), CONNECT_TIMEOUT)
            except (SparkGatewayError, TimeoutError) as exc:
                self._open_error = getattr(exc, "message", None) or f"no session within {CONNECT_TIMEOUT:g} s"
        await super().kernel_info_request(stream, ident, parent)

    # ------------------------------------------------------------ execute

    async def do_execute(self, code: str, silent: bool, store_history: bool = True,  # type: ignore[override]
                         user_expressions: dict[str, Any] | None = None, allow_stdin: bool = False,
                         *, cell_meta: Any = None, cell_id: Any = None) -> dict[str, Any]:
        parent = self.get_parent("shell")
        self._loop = asyncio.get_running_loop()
        out = CellOutput(lambda msg_type, content: self._publish(msg_type, content, parent),
                         self.execution_count, silent=silent, later=self._loop.call_later)
        self._interrupted = False
        self._cell, self._cell_task = out, asyncio.current_task()
        part: Part | None = None
        try:
            parts = cells.parse(code)
            session = await self._connected(out)
            for part in parts:
                await self._run(session, part, out)
                if self._interrupted:  # between two executions: the rest of the cell does not run
                    raise Interrupted("the cell was interrupted")
                if part.output is not None:
                    await self._bind(session, part)
            out.finish()
        except (SparkGatewayError, CellError, asyncio.CancelledError) as exc:
            if isinstance(exc, asyncio.CancelledError):
                if not self._interrupted or self._cell_task is None:
                    raise
                self._cell_task.uncancel()  # our own cancel (an interrupt while no execution ran): handled here
                exc = Interrupted("the cell was interrupted")
            content = display.error_content(exc, code, part)
            out.error(content)
            return {"status": "error", "execution_count": self.execution_count, **content}
        finally:
            self._cell = None
            self._cell_task = None
        return {"status": "ok", "execution_count": self.execution_count, "payload": [],
                "user_expressions": {name: {"status": "error", "ename": "NotImplementedError",
                                            "evalue": "user_expressions are not evaluated", "traceback": []}
                                     for name in user_expressions or {}}}

    async def _run(self, session: Session, part: Part, out: CellOutput) -> None:
        """One execution: its printed text, results, value and progress go to the cell's outputs."""
        rows = part.max_rows or self.max_rows
        max_page = int(session.info.limits.get("max_page_size", rows))
        execution = session.execute(
            part.code, language=part.language, limit=rows, page_size=min(rows, max_page), window=1,
            keep_output=False, on_stdout=lambda text: out.stream("stdout", text),
            on_stderr=lambda text: out.stream("stderr", text), on_progress=out.progress)
        self._execution = execution
        out.begin(lambda: len(execution.result_streams))
        self._notice_resumes(session, out)
        watch = asyncio.create_task(self._watch_connection(session, out))
        try:
            async for stream in execution.results():
                try:
                    page = await stream.rows()
                except SparkGatewayError:
                    out.skip_result()  # how the execution failed is raised below, once it has finished
                    continue
                out.result(display.result_bundle(stream.columns, page, truncated=stream.truncated, max_rows=rows,
                                                 language=part.language),
                           {"spark_gateway": {"execution": execution.id, "result": stream.number,
                                              "rows_shown": len(page), "truncated": stream.truncated}})
            await execution.wait()
        finally:
            watch.cancel()
            self._execution = None
            out.end(execution.status or "error")
        for value in execution.values:
            out.value(display.value_bundle(value))

    async def _bind(self, session: Session, part: Part) -> None:
        """``%%sql -o NAME``: ``NAME = spark.sql(<last statement>)`` in the session (a lazy DataFrame)."""
        statement = cells.last_statement(part.code)
        assert statement is not None and part.output is not None  # cells.parse checked both
        await session.python(f"{part.output} = spark.sql({statement!r})", keep_output=False)

    # ------------------------------------------------------------ the session

    async def _connected(self, out: CellOutput | None) -> Session:
        """The kernel's gateway session, opened on first use; a lost one is replaced, and the user told."""
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            session = self._session
            if session is not None and not session.closed:
                return session
            if session is not None:
                self._session = None
                if out is not None:
                    out.notice(f"spark-gateway: session {session.info.session_id} has ended; this cell runs in a "
                               "new session (Python variables and temp views of the old one are gone)")
            try:
                session = await connect(self.gateway_url, token=self._token())
            except SparkGatewayError as exc:
                self._open_error = exc.message
                if exc.code == "unauthorized":
                    exc.message += f" (the kernel reads the token from ${self.token_env or 'SPARK_GATEWAY_TOKEN'})"
                raise
            self._open_error = None
            self._session, self._resumes_seen = session, 0
            self._python_version = await self._gateway_python(session)
            return session

    def _token(self) -> str | None:
        """From the environment only: the kernelspec names the variable, never holds the token."""
        return os.environ.get(self.token_env or "SPARK_GATEWAY_TOKEN") or None

    async def _gateway_python(self, session: Session) -> str:
        """The gateway's Python version (language_info): the cells run there, not in this process."""
        if "python" not in session.info.languages:
            return ""
        try:
            execution = await session.python("__import__('platform').python_version()", keep_output=False)
            return str(ast.literal_eval(execution.value or "''"))
        except (SparkGatewayError, ValueError, SyntaxError):
            return ""

    def _notice_resumes(self, session: Session, out: CellOutput, *, told: bool = False) -> None:
        """One line when the session was resumed since last said (``told``: the drop was announced)."""
        if session.resumes > self._resumes_seen:
            self._resumes_seen = session.resumes
            out.notice("spark-gateway: reconnected; the session was resumed where it was" if told else
                       "spark-gateway: the connection to the gateway dropped; it was resumed where it was")

    async def _watch_connection(self, session: Session, out: CellOutput) -> None:
        """Tell the user, briefly, when the websocket drops during the cell and when it is back.

        The client resumes by itself and has no callback for it: its state is watched.
        """
        told = False
        while True:
            await asyncio.sleep(0.2)
            if session.state == "resuming" and not told:
                told = True
                out.notice("spark-gateway: the connection to the gateway dropped; resuming the session…")
            elif session.resumes > self._resumes_seen:
                self._notice_resumes(session, out, told=told)
                told = False

    async def do_shutdown(self, restart: bool) -> dict[str, Any]:  # type: ignore[override]
        """Close the gateway session (it is released on the gateway at once); a restart opens a new one."""
        session, loop = self._session, self._loop
        if session is not None and loop is not None and not loop.is_closed():
            future = asyncio.run_coroutine_threadsafe(session.close(), loop)  # it lives on the shell's loop
            try:
                await asyncio.wait_for(asyncio.wrap_future(future), 10)
            except (TimeoutError, SparkGatewayError, OSError) as exc:
                self.log.warning("closing the gateway session: %s", exc)
        self._session = None
        return {"status": "ok", "restart": restart}

    # ------------------------------------------------------------ interrupt

    async def interrupt_request(self, stream: Any, ident: Any, parent: Any) -> None:
        """``interrupt_mode: message``: stop the running cell's execution on the gateway (and Spark)."""
        self._interrupt_threadsafe()
        if self.session is not None:
            self.session.send(stream, "interrupt_reply", {"status": "ok"}, parent, ident=ident)

    def pre_handler_hook(self) -> None:
        """SIGINT during a request (e.g. ``kill -INT``) interrupts like an interrupt_request."""
        self.saved_sigint_handler = signal.signal(signal.SIGINT, lambda _signum, _frame: self._interrupt_threadsafe())

    def post_handler_hook(self) -> None:
        signal.signal(signal.SIGINT, self.saved_sigint_handler)

    def _interrupt_threadsafe(self) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._interrupt)

    def _interrupt(self) -> None:
        if self._cell is None:
            return
        self._interrupted = True
        if self._execution is not None:
            self._execution.interrupt()
        elif self._cell_task is not None:
            self._cell_task.cancel()

    # ------------------------------------------------------------ completion and inspection

    async def do_complete(self, code: str, cursor_pos: int) -> dict[str, Any]:  # type: ignore[override]
        matches, start, end, types = await self._complete(code, cursor_pos)
        return {"status": "ok", "matches": matches, "cursor_start": start, "cursor_end": end,
                "metadata": {"_jupyter_types_experimental": types} if types else {}}

    async def _complete(self, code: str, cursor_pos: int) -> tuple[list[str], int, int, list[dict[str, Any]]]:
        """Completions at ``cursor_pos`` from the gateway: Python, or SQL in ``%%sql`` cells and ``%sql`` lines."""
        found = await self._editor_part(code, cursor_pos)
        if found is None:
            return [], cursor_pos, cursor_pos, []
        session, part = found
        try:
            answer = await session.complete(part.code, cursor_pos - part.start, language=part.language)
        except SparkGatewayError as exc:
            self.log.info("completion: %s", exc)
            return [], cursor_pos, cursor_pos, []
        start, end = answer.from_ + part.start, answer.to + part.start
        matches = [item.insert or item.label for item in answer.items]
        types = [{"start": start, "end": end, "text": item.insert or item.label, "type": item.kind,
                  "signature": item.detail or ""} for item in answer.items]
        return matches, start, end, types

    async def do_inspect(self, code: str, cursor_pos: int, detail_level: int = 0,  # type: ignore[override]
                         omit_sections: Any = ()) -> dict[str, Any]:
        data = await self._inspect(code, cursor_pos, detail_level)
        return {"status": "ok", "found": bool(data), "data": data, "metadata": {}}

    async def _inspect(self, code: str, cursor_pos: int, detail_level: int) -> dict[str, str]:
        """Help on the name at ``cursor_pos`` from the gateway, as a MIME bundle (empty: nothing known)."""
        found = await self._editor_part(code, cursor_pos)
        if found is None:
            return {}
        session, part = found
        try:
            answer = await session.inspect(part.code, cursor_pos - part.start, language=part.language)
        except SparkGatewayError as exc:
            self.log.info("inspection: %s", exc)
            return {}
        return {"text/plain": display.inspection_text(answer)} if answer.found else {}

    async def _editor_part(self, code: str, cursor_pos: int) -> tuple[Session, Part] | None:
        """The session and the part of the cell (Python, or SQL) that the cursor is in; None: no help there."""
        part = cells.part_at(code, cursor_pos)
        if part is None:
            return None
        try:
            return await asyncio.wait_for(self._connected(None), CONNECT_TIMEOUT), part
        except (SparkGatewayError, TimeoutError):
            return None

    async def do_is_complete(self, code: str) -> dict[str, str]:  # type: ignore[override]
        return cells.is_complete(code)

    # ------------------------------------------------------------ IOPub

    def _publish(self, msg_type: str, content: dict[str, Any], parent: dict[str, Any]) -> None:
        """Send on IOPub as a child of ``parent``: callbacks run in the client's reader task, whose
        context is not the request's, so the parent is passed explicitly."""
        if self.session is not None:
            self.session.send(self.iopub_socket, msg_type, content, parent=parent, ident=self._topic(msg_type))

    def _client_log(self, record: logging.LogRecord) -> None:
        """The client's warnings (a Spark session reset, a value cut, lost events) are the user's business."""
        cell = self._cell
        if cell is not None and record.levelno >= logging.WARNING:
            cell.notice(f"spark-gateway: {record.getMessage()}")
        else:
            self.log.log(record.levelno, "%s", record.getMessage())


class _ClientLog(logging.Handler):
    """Routes the client library's log records to the running cell (warnings) or the kernel's log."""

    def __init__(self, kernel: SparkGatewayKernel) -> None:
        super().__init__(logging.INFO)
        self.kernel = kernel

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.kernel._client_log(record)
        except Exception:  # noqa: BLE001 - logging must never break the cell
            self.handleError(record)
