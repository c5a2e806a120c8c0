"""Gateway events as the ``protocol`` package's dataclasses, and Arrow payload decoding.

Unknown fields are dropped (a newer gateway may add some), missing optional ones take
their defaults, so an older client keeps working against a newer gateway.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, TypeVar

from spark_gateway_protocol.messages import (
    Column,
    Finished,
    Progress,
    QueryContext,
    ResultSummary,
    SessionInfo,
    StageProgress,
    Value,
)

if TYPE_CHECKING:
    import pyarrow as pa

T = TypeVar("T")

_FIELDS: dict[type, frozenset[str]] = {}


def build(cls: type[T], obj: dict[str, Any], **nested: Any) -> T:
    """``cls`` from a decoded event dict, ignoring fields this client does not know."""
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = frozenset(f.name for f in dataclasses.fields(cls))  # type: ignore[arg-type]
    args = {k: v for k, v in obj.items() if k in names}
    args.update(nested)
    return cls(**args)


def session_info(event: dict[str, Any]) -> SessionInfo:
    return build(SessionInfo, event)


def columns(event: dict[str, Any]) -> list[Column]:
    return [build(Column, c) for c in event.get("schema") or []]


def progress(event: dict[str, Any]) -> Progress:
    return build(Progress, event, stages=[build(StageProgress, s) for s in event.get("stages") or []])


def finished(event: dict[str, Any]) -> Finished:
    return build(Finished, event, results=[build(ResultSummary, r) for r in event.get("results") or []])


def value(event: dict[str, Any]) -> Value:
    return build(Value, event)


def query_context(items: list[dict[str, Any]]) -> list[QueryContext]:
    return [build(QueryContext, c) for c in items]


class ArrowDecoder:
    """Decodes one result's frame payloads: the first starts with the schema message."""

    def __init__(self) -> None:
        self.schema: pa.Schema | None = None

    def decode(self, payload: bytes | memoryview) -> list[pa.RecordBatch]:
        """The record batches of one frame's payload (zero-copy views of ``payload``)."""
        import pyarrow as pa

        batches: list[pa.RecordBatch] = []
        reader = pa.ipc.MessageReader.open_stream(pa.py_buffer(payload))
        for message in reader:
            kind = message.type
            if kind == "schema":
                self.schema = pa.ipc.read_schema(message)
            elif kind == "record batch":
                if self.schema is None:
                    raise ValueError("Arrow record batch before the schema message")
                batches.append(pa.ipc.read_record_batch(message, self.schema))
            else:
                raise ValueError(f"unexpected Arrow IPC message {kind!r} in an arrow-rows frame")
        return batches
