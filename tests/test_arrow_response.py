"""spark_gateway.spark.ArrowResponse: Spark's Arrow IPC bytes forwarded as they came (fast unit tests).

The integration tests (test_gateway.py, test_python_client.py) check the same path end to
end against real Spark results; these pin the byte layout it relies on.
"""

from __future__ import annotations

import pyarrow as pa
import pytest
from pyspark.errors.exceptions.connect import SparkConnectException

from spark_gateway.spark import IPC_EOS, ArrowResponse


def ipc_stream(*batches: pa.RecordBatch) -> bytes:
    """What Spark sends in one response: schema, record batch(es), end-of-stream."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batches[0].schema) as writer:
        for batch in batches:
            writer.write_batch(batch)
    return sink.getvalue().to_pybytes()


BATCH = pa.record_batch({"id": pa.array([1, 2, 3], pa.int64()), "s": pa.array(["a", None, "c"])})


def test_schema_and_body_re_read_as_the_same_rows() -> None:
    """Schema message plus record batch bodies re-read as one IPC stream of the same rows."""
    response = ArrowResponse(ipc_stream(BATCH, BATCH), 6)
    assert response.forwardable and len(response) == 6
    # A client's stream: the schema once, then the bodies of any number of responses, then EOS.
    stream = bytes(response.schema_message) + bytes(response.body) + bytes(response.body) + IPC_EOS
    table = pa.ipc.open_stream(stream).read_all()
    assert table.num_rows == 12
    assert table.to_pylist() == (pa.Table.from_batches([BATCH]).to_pylist()) * 4


def test_batches_are_checked_against_the_announced_count() -> None:
    """Decoded rows must match the row count Spark announced, else a Spark Connect error."""
    assert [b.num_rows for b in ArrowResponse(ipc_stream(BATCH), 3).batches()] == [3]
    with pytest.raises(SparkConnectException, match="Spark announced 4"):
        ArrowResponse(ipc_stream(BATCH), 4).batches()


def test_slice_decodes_and_cuts_across_batches() -> None:
    """slice() cuts rows across the response's record batches."""
    response = ArrowResponse(ipc_stream(BATCH, BATCH), 6)
    assert response.slice(2, 3).column("id").to_pylist() == [3, 1, 2]


def test_an_unusual_layout_is_decoded_not_forwarded() -> None:
    """Bytes without the usual layout (no end marker) are decoded, never forwarded as they are."""
    data = ipc_stream(BATCH)[:-8]  # no end-of-stream marker
    response = ArrowResponse(data, 3)
    assert not response.forwardable
    assert response.batches()[0].equals(BATCH)
