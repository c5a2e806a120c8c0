"""Execution: one ``execute`` request's life in a session, from queued to finished."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from spark_gateway_protocol.lifecycle import TERMINAL, State, advance
from spark_gateway_protocol.messages import Execute, Finished, ResultSummary

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
    job_seen: bool = False  # Spark reported a stage of a job this execution started
    failed: bool = False
    started_at: float | None = None
    sink: OutputSink | None = None  # what the code prints, while it runs
    sql_offset: int = 0  # where the running SQL statement's text starts in the code (scripts)
    result_sql_offsets: list[int] = field(default_factory=list)  # sql_offset of each result's statement

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
        self.state = advance(self.state, event)
        if self.state is State.RUNNING:
            self.started_at = time.monotonic()

    def final_status(self) -> str:
        """The status this execution ends with, once its code and results are done."""
        if self.interrupt_requested:
            return "interrupted"
        return "error" if self.failed else "ok"

    def finished_event(self) -> Finished:
        elapsed = 0.0 if self.started_at is None else time.monotonic() - self.started_at
        summaries = [ResultSummary(c.number, c.sent, c.truncated) for c in self.cursors]
        return Finished(self.id, self.state.value, round(elapsed * 1000, 3), summaries)  # type: ignore[arg-type]
