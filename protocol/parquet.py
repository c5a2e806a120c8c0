"""How a result's Arrow batches are stored in a Parquet file (downloads, the CLI's ``--format parquet``).

Parquet holds every Arrow type Spark sends but its two interval types, which Arrow's
Parquet writer refuses ("Unhandled type for Arrow to Parquet schema conversion"):

* a year-month interval (Arrow ``month_interval``) is stored as its number of months, an
  ``int32``: what Spark's own Parquet writer stores for ``INTERVAL YEAR TO MONTH``;
* a calendar interval (``make_interval``, Arrow ``month_day_nano_interval``), which Spark
  itself cannot write to Parquet, is stored as ``struct<months: int32, days: int32,
  nanoseconds: int64>``, Arrow's own three parts of it: nothing is lost.

Anywhere in a nested type too. Every other column is written as it came. Pure: pyarrow and
numpy only (docs/protocol.md, "Downloads over HTTP", is the contract).
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .arrow_json import is_month_interval, readable_schema, reinterpret, with_leaf_types

__all__ = ["CALENDAR_INTERVAL", "parquet_batch", "parquet_schema"]

MONTH_DAY_NANO: Final = pa.month_day_nano_interval()
# What a calendar interval becomes: Arrow's MonthDayNano parts, by name.
CALENDAR_INTERVAL: Final = pa.struct([pa.field("months", pa.int32(), False), pa.field("days", pa.int32(), False),
                                      pa.field("nanoseconds", pa.int64(), False)])
_NAMES: Final = ("months", "days", "nanoseconds")
# The layout of one month_day_nano value (Arrow's C struct, little-endian).
_PARTS: Final = np.dtype([("months", "<i4"), ("days", "<i4"), ("nanoseconds", "<i8")])


def parquet_schema(schema: pa.Schema) -> pa.Schema:
    """``schema`` as Parquet can hold it (the same schema when it has no interval to store)."""
    if not any(_has_interval(field.type) for field in schema):
        return schema
    return pa.schema([pa.field(f.name, _stored_type(f.type), f.nullable, f.metadata) for f in schema],
                     metadata=schema.metadata)


def parquet_batch(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """``batch`` as :func:`parquet_schema` of its schema, ``schema`` (zero-copy but for calendar intervals)."""
    if schema.equals(batch.schema):
        return batch
    readable = readable_schema(batch.schema)  # month_interval seen as int32: pyarrow cannot wrap it
    if readable is not None:
        batch = reinterpret(batch, readable)
    if not any(_has_calendar_interval(field.type) for field in batch.schema):
        return batch
    columns = [_stored(batch.column(i)) for i in range(batch.num_columns)]
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def _stored_type(arrow_type: pa.DataType) -> pa.DataType:
    return with_leaf_types(arrow_type, _stored_leaf)


def _stored_leaf(arrow_type: pa.DataType) -> pa.DataType:
    if is_month_interval(arrow_type):
        return pa.int32()
    return CALENDAR_INTERVAL if arrow_type == MONTH_DAY_NANO else arrow_type


def _has_interval(arrow_type: pa.DataType) -> bool:
    if is_month_interval(arrow_type) or arrow_type == MONTH_DAY_NANO:
        return True
    return any(_has_interval(arrow_type.field(i).type) for i in range(arrow_type.num_fields))


def _has_calendar_interval(arrow_type: pa.DataType) -> bool:
    if arrow_type == MONTH_DAY_NANO:
        return True
    return any(_has_calendar_interval(arrow_type.field(i).type) for i in range(arrow_type.num_fields))


def _stored(array: pa.Array) -> pa.Array:
    """One column with its calendar intervals as structs (month intervals are already int32)."""
    arrow_type = array.type
    if not _has_calendar_interval(arrow_type):
        return array
    mask = array.is_null() if array.null_count else None
    if arrow_type == MONTH_DAY_NANO:
        parts = np.frombuffer(array.buffers()[1], _PARTS, array.offset + len(array))[array.offset:]
        return pa.StructArray.from_arrays([pa.array(parts[name]) for name in _NAMES],
                                          fields=list(CALENDAR_INTERVAL), mask=mask)
    if pa.types.is_struct(arrow_type):
        children = [_stored(array.field(i)) for i in range(arrow_type.num_fields)]  # field(): the slice's part
        return pa.StructArray.from_arrays(children, fields=list(_stored_type(arrow_type)), mask=mask)
    # A list or a map: Arrow rebuilds them only from offsets that start at 0.
    offsets = array.offsets
    start, end = offsets[0].as_py(), offsets[-1].as_py()
    rebased = pc.subtract(offsets, offsets[0])
    stored_type = _stored_type(arrow_type)
    if pa.types.is_map(arrow_type):
        keys = _stored(array.keys.slice(start, end - start))
        items = _stored(array.items.slice(start, end - start))
        return pa.MapArray.from_arrays(rebased, keys, items, type=stored_type, mask=mask)
    values = _stored(array.values.slice(start, end - start))
    list_class = pa.LargeListArray if pa.types.is_large_list(arrow_type) else pa.ListArray
    return list_class.from_arrays(rebased, values, type=stored_type, mask=mask)
