"""The outputs of one cell, published on IOPub in the order the gateway produced them.

The gateway's events come in order (a result, then what the code printed after it), but
a result is shown once its rows have been read, while printed text arrives through a
callback at once. ``CellOutput`` holds text that came after a result still being read
until that result is shown, so the notebook shows them as the code made them.

The cell's last output, if it is a table, is its ``execute_result`` (``Out[n]``, as a
trailing expression in IPython); tables shown before something else are ``display_data``.
A table is held back for that only briefly (``HOLD`` seconds): when nothing follows it
within that time, the code is still busy (``display(df)`` then a long job) and the table
is shown at once, as ``display_data``. Spark's progress is one display per execution,
updated in place, finalised at its end.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Callable
from typing import Any

from spark_gateway_client import Progress

from .display import Bundle, ProgressState, progress_bundle

Send = Callable[[str, dict[str, Any]], None]  # (msg_type, content) on IOPub, parented to the cell's request
Later = Callable[[float, Callable[[], None]], Any]  # loop.call_later: returns a handle with cancel()
HOLD = 0.5  # seconds a table waits to become the cell's execute_result before it is shown anyway

_displays = itertools.count(1)


class CellOutput:
    """Publishes one cell's outputs through ``send``; nothing at all when the request is ``silent``."""

    def __init__(self, send: Send, execution_count: int, *, silent: bool = False, later: Later | None = None) -> None:
        self._send = send
        self.execution_count = execution_count
        self.silent = silent
        self._later = later
        self._hold: Any = None  # the timer that shows the pending table anyway
        self._pending: tuple[Bundle, dict[str, Any]] | None = None  # the last table: execute_result if nothing follows
        self._opened: Callable[[], int] = lambda: 0  # results the current execution has opened so far
        self._shown = 0  # results of the current execution shown (or given up)
        self._backlog: list[tuple[int, str, str]] = []  # (results opened then, stream name, text)
        self._progress_id: str | None = None
        self._progress: Progress | None = None
        self._progress_started = 0.0

    # ------------------------------------------------------------ one execution of the cell

    def begin(self, opened: Callable[[], int]) -> None:
        """An execution of the cell starts; ``opened()`` says how many results it has opened so far."""
        self._opened = opened
        self._shown = 0
        self._progress_id = None
        self._progress = None
        self._progress_started = time.monotonic()

    def end(self, state: ProgressState) -> None:
        """The execution finished: text still held is published, its progress display finalised."""
        self._shown = self._opened()
        self._flush_backlog()
        if self._progress_id is not None:
            self._publish_progress("update_display_data", state)
        self._opened = lambda: 0

    # ------------------------------------------------------------ outputs

    def stream(self, name: str, text: str) -> None:
        """Text the code printed (``stdout`` / ``stderr``): after any result opened before it."""
        opened = self._opened()
        if opened > self._shown:
            self._backlog.append((opened, name, text))
        else:
            self._emit_stream(name, text)

    def result(self, bundle: Bundle, metadata: dict[str, Any] | None = None) -> None:
        """The next result of the execution, rendered."""
        self._release()
        self._pending = (bundle, metadata or {})
        if self._later is not None:
            self._hold = self._later(HOLD, self._release)
        self._shown += 1
        self._flush_backlog()

    def skip_result(self) -> None:
        """The next result could not be shown (it failed): text printed after it may go out."""
        self._shown += 1
        self._flush_backlog()

    def value(self, bundle: Bundle) -> None:
        """A Python cell's trailing value: the cell's result."""
        self._release()
        self._pending = (bundle, {})

    def notice(self, text: str) -> None:
        """A line from the kernel itself (a resumed connection, a new session), on stderr, at once."""
        self._emit_stream("stderr", text if text.endswith("\n") else text + "\n")

    def error(self, content: dict[str, Any]) -> None:
        """The cell failed: what it showed so far stays, then the error."""
        self.finish(as_result=False)
        if not self.silent:
            self._send("error", content)

    def finish(self, *, as_result: bool = True) -> None:
        """The cell is done: its last table (or value) becomes ``execute_result``."""
        self._flush_backlog(everything=True)
        self._cancel_hold()
        if self._pending is not None and not self.silent:
            bundle, metadata = self._pending
            if as_result:
                self._send("execute_result", {"execution_count": self.execution_count, "data": bundle,
                                              "metadata": metadata})
            else:
                self._send("display_data", {"data": bundle, "metadata": metadata, "transient": {}})
        self._pending = None

    # ------------------------------------------------------------ progress

    def progress(self, progress: Progress) -> None:
        """Spark's progress for the current execution: shown, then updated in place."""
        self._progress = progress
        self._publish_progress("display_data" if self._progress_id is None else "update_display_data", "running")

    def _publish_progress(self, msg_type: str, state: ProgressState) -> None:
        if self._progress_id is None:
            self._progress_id = f"spark-progress-{uuid.uuid4().hex[:12]}-{next(_displays)}"
        if self.silent:
            return
        bundle = progress_bundle(self._progress, time.monotonic() - self._progress_started, state)
        self._send(msg_type, {"data": bundle, "metadata": {}, "transient": {"display_id": self._progress_id}})

    # ------------------------------------------------------------ internals

    def _release(self) -> None:
        """Something follows the pending table (or it waited long enough): ``display_data`` where it stands."""
        self._cancel_hold()
        if self._pending is not None:
            bundle, metadata = self._pending
            self._pending = None
            if not self.silent:
                self._send("display_data", {"data": bundle, "metadata": metadata, "transient": {}})

    def _cancel_hold(self) -> None:
        if self._hold is not None:
            self._hold.cancel()
            self._hold = None

    def _emit_stream(self, name: str, text: str) -> None:
        self._release()
        if not self.silent:
            self._send("stream", {"name": name, "text": text})

    def _flush_backlog(self, everything: bool = False) -> None:
        while self._backlog and (everything or self._backlog[0][0] <= self._shown):
            _opened, name, text = self._backlog.pop(0)
            self._emit_stream(name, text)
