"""What a session tells of its executions: live ones as they are, ended ones from a bounded record.

``session-state`` and ``executions`` describe executions (:func:`describe`); a retried
``execute`` of an ended execution is answered from its :class:`Ended` record (its ``error``
and ``finished``), never run again. A session remembers its last
:data:`REMEMBERED_EXECUTIONS` ended executions within :data:`REMEMBERED_BYTES`: code is
kept as an excerpt and a digest, so a huge cell costs no more than a small one.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime

from spark_gateway_protocol import encode_event
from spark_gateway_protocol.messages import CODE_EXCERPT_CHARS, Error, Execute, ExecutionInfo, Finished, ResultInfo

from .execution import Execution

REMEMBERED_EXECUTIONS = 1000
REMEMBERED_BYTES = 4 << 20
RECORD_OVERHEAD_BYTES = 1024  # an ExecutionInfo, its digest and their containers, roughly


def iso(timestamp: float | None) -> str | None:
    """Unix time as ISO 8601 UTC with milliseconds (``2026-12-05T02:30:00.123Z``)."""
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def digest(request: Execute) -> bytes:
    """What a retried ``execute`` must match: its language and code."""
    return hashlib.sha256(f"{request.language}\0{request.code}".encode("utf-8", "surrogatepass")).digest()


def describe(execution: Execution) -> ExecutionInfo:
    """An execution as ``session-state`` and ``executions`` list it, now."""
    request = execution.request
    results = [ResultInfo(c.number, list(c.stream.columns), c.format, c.limit, c.page_size, c.sent, c.truncated,
                          open=c.end is None, until=c.until if c.end is None else None)
               for c in execution.cursors]
    return ExecutionInfo(
        id=request.id, language=request.language, code=request.code[:CODE_EXCERPT_CHARS],
        code_length=len(request.code), status=execution.state.value, queued_at=iso(execution.queued_wall) or "",
        started_at=iso(execution.started_wall), ended_at=iso(execution.ended_wall), first_seq=execution.first_seq,
        results=results, error=execution.error.code if execution.error is not None else None)


@dataclass(frozen=True, slots=True)
class Ended:
    """An ended execution, as remembered: enough to list it and to answer a retry of it."""

    info: ExecutionInfo
    digest: bytes
    error: Error | None
    finished: Finished
    size: int  # what it counts towards REMEMBERED_BYTES


class History:
    """The ended executions a session remembers, oldest first, within a count and a byte budget."""

    def __init__(self, max_count: int = REMEMBERED_EXECUTIONS, max_bytes: int = REMEMBERED_BYTES) -> None:
        self.max_count = max_count
        self.max_bytes = max_bytes
        self._ended: OrderedDict[str, Ended] = OrderedDict()
        self._bytes = 0

    def add(self, execution: Execution, finished: Finished) -> None:
        info = describe(execution)
        error = execution.error
        size = RECORD_OVERHEAD_BYTES + 4 * len(info.code) + sum(64 * len(r.schema) for r in info.results)
        if error is not None:
            size += len(encode_event(error, 0))
        self._ended[execution.id] = Ended(info, digest(execution.request), error, finished, size)
        self._bytes += size
        # The newest is always kept (a retry of it must not run again), even alone over the budget.
        while len(self._ended) > 1 and (len(self._ended) > self.max_count or self._bytes > self.max_bytes):
            _, old = self._ended.popitem(last=False)
            self._bytes -= old.size

    def get(self, execution_id: str) -> Ended | None:
        return self._ended.get(execution_id)

    def newest_first(self) -> list[ExecutionInfo]:
        return [ended.info for ended in reversed(self._ended.values())]

    def __len__(self) -> int:
        return len(self._ended)
