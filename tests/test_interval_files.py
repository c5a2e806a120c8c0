"""Fast tier: intervals in whole-result files (Parquet, Arrow IPC, CSV) and in the Arrow schema of a result.

pyspark's ``to_arrow_schema`` refuses year-month and calendar intervals, and Arrow's Parquet
writer has no type for either: before, a download of such a result failed in every format
and the CLI's ``--format parquet`` died with a traceback. No Spark here: batches are built
as Spark sends them (month_interval through the C data interface).
"""

from __future__ import annotations

import csv
import io
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyspark.sql import types as T
from pyspark.sql.pandas.types import to_arrow_schema

from spark_gateway import download
from spark_gateway.spark import arrow_schema_of
from spark_gateway_protocol.arrow_json import batch_to_rows, month_interval_type, reinterpret
from spark_gateway_protocol.parquet import CALENDAR_INTERVAL, parquet_batch, parquet_schema

MDN = pa.month_day_nano_interval()


def _parts(months: int, days: int, nanoseconds: int) -> Any:
    return pa.MonthDayNano([months, days, nanoseconds])


def interval_batch() -> pa.RecordBatch:
    """Year-month and calendar intervals, flat and nested (list, struct, map), with nulls at every level."""
    mi = month_interval_type()
    calendar = pa.array([_parts(14, 25, 18_367_500_000_000), None, _parts(-1, -2, -3_000_000_000)], MDN)
    as_int32 = pa.record_batch({
        "ym": pa.array([27, None, -5], pa.int32()),
        "ym_list": pa.array([[1, None], None, [36]], pa.list_(pa.int32())),
        "cal": calendar,
        "cal_list": pa.array([[_parts(1, 1, 1)], None, [None, _parts(2, 2, 2)]], pa.list_(MDN)),
        "cal_struct": pa.StructArray.from_arrays([calendar, pa.array([1, 2, 3])], names=["c", "n"],
                                                 mask=pa.array([False, False, True])),
        "cal_map": pa.array([[("a", _parts(5, 5, 5))], None, []], pa.map_(pa.string(), MDN)),
        "id": pa.array([0, 1, 2]),
    })
    fields = list(as_int32.schema)
    fields[0] = pa.field("ym", mi)
    fields[1] = pa.field("ym_list", pa.list_(pa.field("element", mi)))
    return reinterpret(as_int32, pa.schema(fields))


STORED_ROWS = [
    {"ym": 27, "ym_list": [1, None], "cal": {"months": 14, "days": 25, "nanoseconds": 18_367_500_000_000},
     "cal_list": [{"months": 1, "days": 1, "nanoseconds": 1}],
     "cal_struct": {"c": {"months": 14, "days": 25, "nanoseconds": 18_367_500_000_000}, "n": 1},
     "cal_map": [("a", {"months": 5, "days": 5, "nanoseconds": 5})], "id": 0},
    {"ym": None, "ym_list": None, "cal": None, "cal_list": None, "cal_struct": {"c": None, "n": 2},
     "cal_map": None, "id": 1},
    {"ym": -5, "ym_list": [36], "cal": {"months": -1, "days": -2, "nanoseconds": -3_000_000_000},
     "cal_list": [None, {"months": 2, "days": 2, "nanoseconds": 2}], "cal_struct": None, "cal_map": [], "id": 2},
]


def _read_parquet(data: bytes) -> pa.Table:
    return pq.read_table(io.BytesIO(data))


def test_parquet_stores_intervals_as_months_and_as_their_three_parts() -> None:
    batch = interval_batch()
    stored = parquet_schema(batch.schema)
    assert stored.field("ym").type == pa.int32() and stored.field("ym_list").type.value_type == pa.int32()
    assert stored.field("cal").type == CALENDAR_INTERVAL
    assert stored.field("cal_map").type.item_type == CALENDAR_INTERVAL
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_batches([parquet_batch(batch, stored)]), buffer)
    assert _read_parquet(buffer.getvalue()).to_pylist() == STORED_ROWS


@pytest.mark.parametrize("start", [1, 2])
def test_a_slice_of_a_batch_is_stored_as_its_rows(start: int) -> None:
    """Pages and row groups cut batches: offsets into every nested level must be honoured."""
    batch = interval_batch().slice(start)
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_batches([parquet_batch(batch, parquet_schema(batch.schema))]), buffer)
    assert _read_parquet(buffer.getvalue()).to_pylist() == STORED_ROWS[start:]


def test_a_schema_without_intervals_is_written_as_it_came() -> None:
    batch = pa.record_batch({"i": [1, 2], "s": ["a", None], "l": [[1.5], None]})
    assert parquet_schema(batch.schema).equals(batch.schema)
    assert parquet_batch(batch, parquet_schema(batch.schema)) is batch


def test_downloads_of_intervals_in_every_format() -> None:
    """Parquet as above; Arrow IPC keeps Spark's own interval types; CSV writes what the notebook shows."""
    batch = interval_batch()
    assert _read_parquet(download.encode_all("parquet", [batch, batch.slice(1)], batch.schema)).to_pylist() == (
        STORED_ROWS + STORED_ROWS[1:])
    arrow = pa.ipc.open_stream(download.encode_all("arrow", [batch], batch.schema))
    assert str(arrow.schema.field("ym").type) == "month_interval" and arrow.schema.field("cal").type == MDN
    rows = list(csv.reader(io.StringIO(download.encode_all("csv", [batch], batch.schema).decode(), newline="")))
    assert rows[0] == batch.schema.names
    assert rows[1][:4] == ["P2Y3M", '["P1M",null]', "P1Y2M25DT5H6M7.5S", '["P1M1DT0.000000001S"]']
    assert rows[2][:3] == ["", "", ""] and rows[3][0] == "-P5M"
    assert [row[0] for row in rows[1:]] == [r[0] or "" for r in batch_to_rows(batch)]


def test_a_download_casts_a_batch_with_month_intervals_to_its_schema() -> None:
    """Spark's batch types differ from toArrow()'s (timestamp zones): the cast must not trip on month_interval."""
    mi = month_interval_type()
    as_int32 = pa.record_batch({"ym": pa.array([3], pa.int32()), "ts": pa.array([0], pa.timestamp("us", "Etc/UTC"))})
    batch = reinterpret(as_int32, pa.schema([pa.field("ym", mi), as_int32.schema.field("ts")]))
    target = pa.schema([pa.field("ym", mi), pa.field("ts", pa.timestamp("us", "UTC"))])
    cast = download.cast_batch(batch, target)
    assert cast.schema.equals(target)
    assert _read_parquet(download.encode_all("parquet", [batch], target)).to_pylist() == [
        {"ym": 3, "ts": pa.scalar(0, pa.timestamp("us", "UTC")).as_py()}]


def test_the_arrow_schema_of_a_result_with_intervals_is_what_spark_sends() -> None:
    schema = T.StructType([
        T.StructField("ym", T.YearMonthIntervalType(0, 1)),
        T.StructField("cal", T.CalendarIntervalType()),
        T.StructField("a", T.ArrayType(T.YearMonthIntervalType(), containsNull=False)),
        T.StructField("m", T.MapType(T.StringType(), T.CalendarIntervalType())),
        T.StructField("s", T.StructType([T.StructField("x", T.YearMonthIntervalType()),
                                         T.StructField("ts", T.TimestampType())]), nullable=False),
        T.StructField("dt", T.DayTimeIntervalType()),
    ])
    arrow = arrow_schema_of(schema, timezone="UTC")
    mi = month_interval_type()
    assert arrow.field("ym").type == mi and arrow.field("cal").type == MDN
    assert arrow.field("a").type == pa.list_(pa.field("element", mi, False))
    assert arrow.field("m").type == pa.map_(pa.string(), MDN)
    assert arrow.field("s").type == pa.struct([("x", mi), ("ts", pa.timestamp("us", "UTC"))])
    assert not arrow.field("s").nullable and arrow.field("dt").type == pa.duration("us")


def test_without_intervals_the_arrow_schema_is_pysparks_own() -> None:
    schema = T.StructType([T.StructField("i", T.LongType()), T.StructField("ts", T.TimestampType()),
                           T.StructField("l", T.ArrayType(T.DecimalType(10, 2)))])
    assert arrow_schema_of(schema, timezone="UTC").equals(to_arrow_schema(schema, timezone="UTC"))
