"""Execution: one ``execute`` request's life in a session, from queued to finished.

The loop side (:mod:`spark_gateway.session`) moves it along the lifecycle table; the worker
side (:mod:`spark_gateway.runner`) reads it, and sets only the fields marked "worker" (while
the code runs: the loop reads them after a call across the bridge) or "any thread" (progress).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import anyio

from spark_gateway_protocol.lifecycle import TERMINAL, State, advance
from spark_gateway_protocol.messages import Error, Execute, Finished, ResultSummary

from .capture import OutputSink
from .cursor import ResultCursor


@dataclass(eq=False)
class Execution:
    """State of one execution; the session moves it along the lifecycle table."""

    request: Execute
    tag: str  # Spark operation tag for everything this execution starts
    state: State = State.QUEUED
    cursors: list[ResultCursor] = field(default_factory=list)
    interrupt_requested: bool = False
    job_seen: bool = False  # any thread: Spark reported a stage of a job this execution started
    failed: bool = False
    started_at: float | None = None
    code_ms: float | None = None  # time it spent running: its code, and its results' first pages
    code_ended: anyio.Event = field(default_factory=anyio.Event)  # set by the session: its code returned
    sink: OutputSink | None = None  # worker: what the code prints, while it runs
    sql_offset: int = 0  # worker: where the running SQL statement's text starts in the code (scripts)
    result_sql_offsets: list[int] = field(default_factory=list)  # sql_offset of each result's statement
    last_progress: tuple[float, Any] | None = None  # any thread: the last progress sent (when, what)
    # For session-state and list-executions (wall clock: shown to people).
    queued_wall: float = field(default_factory=time.time)
    started_wall: float | None = None
    ended_wall: float | None = None
    first_seq: int = 0  # seq of its `accepted`
    error: Error | None = None  # its first `error` event: told again to a retried execute

    @property
    def id(self) -> str:
        return self.request.id

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL

    @property
    def open_cursors(self) -> list[ResultCursor]:
        return [c for c in self.cursors if not c.done]

    def move(self, event: str) -> None:
        was_running = self.state is State.RUNNING
        self.state = advance(self.state, event)
        if self.state is State.RUNNING:
            self.started_at = time.monotonic()
            self.started_wall = time.time()
        elif was_running:
            self.code_ms = self._elapsed_ms()
        if self.state in TERMINAL:
            self.ended_wall = time.time()

    def final_status(self) -> str:
        """The status this execution ends with, once its code and results are done."""
        if self.interrupt_requested:
            return "interrupted"
        return "error" if self.failed else "ok"

    def finished_event(self) -> Finished:
        summaries = [ResultSummary(c.number, c.sent, c.truncated) for c in self.cursors]
        return Finished(self.id, self.state.value, self._elapsed_ms(), summaries)  # type: ignore[arg-type]

    def _elapsed_ms(self) -> float:
        return 0.0 if self.started_at is None else round((time.monotonic() - self.started_at) * 1000, 3)
