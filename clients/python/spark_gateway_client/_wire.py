"""Arrow payloads of ``arrow-rows`` frames, decoded into record batches.

(Events themselves are decoded by the protocol package: ``spark_gateway_protocol.codec.decode_event``.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa


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
