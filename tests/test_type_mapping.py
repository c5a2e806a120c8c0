"""The Arrow -> JSON value mapping (protocol/arrow_json.py), on hand-made batches and on real Spark results.

The wire form is what matters, so most assertions compare orjson.dumps output with expected JSON text.
Every batch these tests convert is also written by the gateway's encoder (spark_gateway.json_pages)
in both page layouts, which must give the reference's JSON text byte for byte and the same values
in rows and in columns (bench/check_json_text.py's ``check``).
"""

from __future__ import annotations

import datetime
import math
import struct
from decimal import Decimal
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pytest

from bench import check_json_text
from spark_gateway_protocol import arrow_json
from spark_gateway_protocol.arrow_json import month_interval_type, rows_converter, variant_to_json
from tests.conftest import GatewayProcess
from tests.wsclient import of_type, open_client, rows_of


def batch_to_rows(batch: Any) -> list[tuple[Any, ...]]:
    """The reference rows of ``batch``, after checking that the gateway writes them, and the
    same values as columns, byte for byte (raises AssertionError otherwise)."""
    check_json_text.check(batch)
    return arrow_json.batch_to_rows(batch)


# ---------------------------------------------------------------- helpers


def column_json(array: Any) -> str:
    """JSON text of one column's values, as the gateway would send them."""
    rows = batch_to_rows(pa.record_batch({"c": array}))
    return orjson.dumps([row[0] for row in rows]).decode()


class _Capsules:
    def __init__(self, schema: Any, batch: Any) -> None:
        self.capsules = (schema.__arrow_c_schema__(), batch.__arrow_c_array__()[1])

    def __arrow_c_array__(self, requested_schema: object = None) -> tuple[object, object]:
        return self.capsules


def month_interval_batch(months: list[int | None]) -> Any:
    """A batch like Spark's: v month_interval, a list<month_interval>, built from int32 buffers."""
    lists = pa.array([[m, None] for m in months], pa.list_(pa.int32()))
    ints = pa.record_batch({"v": pa.array(months, pa.int32()), "a": lists})
    mi = month_interval_type()
    schema = pa.schema([pa.field("v", mi), pa.field("a", pa.list_(pa.field("element", mi)))])
    return pa.record_batch(_Capsules(schema, ints))


def variant_array(pairs: list[tuple[bytes, bytes] | None]) -> Any:
    """A variant column exactly as Spark sends it (marker on the metadata child)."""
    variant_type = pa.struct(
        [
            pa.field("value", pa.binary(), nullable=False),
            pa.field("metadata", pa.binary(), nullable=False, metadata={b"variant": b"true"}),
        ]
    )
    values = [None if p is None else {"value": p[0], "metadata": p[1]} for p in pairs]
    return pa.array(values, variant_type)


EMPTY_METADATA = b"\x01\x00\x00"


def primitive(type_id: int, payload: bytes = b"") -> bytes:
    """A variant primitive value: header byte (type id << 2) then its payload."""
    return bytes([type_id << 2]) + payload


# ---------------------------------------------------------------- unit: scalars


def test_integers_keep_every_digit() -> None:
    """Integers of every width, including beyond 2^53 and the int64 extremes, keep every digit."""
    assert column_json(pa.array([-(2**63), 2**63 - 1, 2**53 + 1, 0, None], pa.int64())) == (
        "[-9223372036854775808,9223372036854775807,9007199254740993,0,null]"
    )
    assert column_json(pa.array([-128, 127, None], pa.int8())) == "[-128,127,null]"
    assert column_json(pa.array([-32768, 32767], pa.int16())) == "[-32768,32767]"
    assert column_json(pa.array([-(2**31), 2**31 - 1], pa.int32())) == "[-2147483648,2147483647]"
    assert column_json(pa.array([2**64 - 1], pa.uint64())) == "[18446744073709551615]"


def test_booleans_and_null_type() -> None:
    """Booleans are true/false, SQL NULL is null, and the Arrow null type is all nulls."""
    assert column_json(pa.array([True, False, None])) == "[true,false,null]"
    assert column_json(pa.nulls(2)) == "[null,null]"


def test_double_special_values_are_strings() -> None:
    """NaN and the infinities become strings, never null; -0.0 and extremes keep their value."""
    values = [math.nan, math.inf, -math.inf, -0.0, 0.1, 5e-324, 1.7976931348623157e308, None]
    assert column_json(pa.array(values, pa.float64())) == (
        '["NaN","Infinity","-Infinity",-0.0,0.1,5e-324,1.7976931348623157e+308,null]'
    )


def test_double_nulls_do_not_hide_nan() -> None:
    """A null slot stays null and a NaN slot stays "NaN" in the same column."""
    array = pa.array([None, math.nan, 1.5, None, -math.inf], pa.float64())
    assert column_json(array) == '[null,"NaN",1.5,null,"-Infinity"]'


def test_float32_uses_shortest_float32_form() -> None:
    """float32 prints as the shortest decimal that round-trips as float32 (1.1, not 1.100000023841858)."""
    values = [1.1, 0.1, -2.5, 16777217.0, 3.4028234663852886e38, 1e-45, 1e-40, -0.0, math.nan, None]
    assert column_json(pa.array(values, pa.float32())) == (
        '[1.1,0.1,-2.5,16777216.0,3.4028235e+38,1e-45,1e-40,-0.0,"NaN",null]'
    )


def test_float32_matches_numpy_shortest_repr_on_random_bits() -> None:
    """On random float32 bit patterns, every value equals numpy's shortest float32 repr."""
    bits = np.random.default_rng(42).integers(0, 2**32, 50_000, dtype=np.uint64).astype(np.uint32)
    floats = bits.view(np.float32)
    floats = floats[np.isfinite(floats)]
    got = [row[0] for row in batch_to_rows(pa.record_batch({"c": pa.array(floats)}))]
    assert got == [float(str(value)) for value in floats]


def test_decimals_keep_exact_scale() -> None:
    """Decimals are strings with exactly `scale` fractional digits, never scientific notation."""
    d10_3 = pa.array([Decimal("12.3"), Decimal("-0.001"), Decimal(0), None], pa.decimal128(10, 3))
    assert column_json(d10_3) == '["12.300","-0.001","0.000",null]'
    d38_18 = pa.array(
        [
            Decimal("-12345678901234567890.123456789012345678"),
            Decimal(0),
            Decimal("1E-18"),
            Decimal("-0.0000001"),
            Decimal("99999999999999999999.999999999999999999"),
        ],
        pa.decimal128(38, 18),
    )
    assert column_json(d38_18) == (
        '["-12345678901234567890.123456789012345678","0.000000000000000000",'
        '"0.000000000000000001","-0.000000100000000000","99999999999999999999.999999999999999999"]'
    )
    d38_38 = pa.array(
        [Decimal("0.00000001234567890123456789012345678901"), Decimal("-1E-38")], pa.decimal128(38, 38)
    )
    assert column_json(d38_38) == (
        '["0.00000001234567890123456789012345678901","-0.00000000000000000000000000000000000001"]'
    )
    d38_0 = pa.array([Decimal(10**38 - 1), Decimal(-(10**38) + 1)], pa.decimal128(38, 0))
    assert column_json(d38_0) == f'["{10**38 - 1}","-{10**38 - 1}"]'


def test_decimal_negative_scale_and_decimal256() -> None:
    """A negative scale prints as a plain integer; decimal256 follows the same rules."""
    assert column_json(pa.array([Decimal("1.23E+4"), None], pa.decimal128(5, -2))) == '["12300",null]'
    assert column_json(pa.array([Decimal("1E-40")], pa.decimal256(50, 40))) == (
        '["0.0000000000000000000000000000000000000001"]'
    )


def test_strings_empty_null_and_unicode() -> None:
    """Empty strings stay "", NULL stays null, and unicode and escapes survive (string and large_string)."""
    values = ["", None, "héllo wörld ✓ 😀", 'q"uote\\back\nline', "null"]
    expected = '["",null,"héllo wörld ✓ 😀","q\\"uote\\\\back\\nline","null"]'
    assert column_json(pa.array(values, pa.string())) == expected
    assert column_json(pa.array(values, pa.large_string())) == expected


def test_binary_is_padded_base64() -> None:
    """Binary is standard base64 with padding; empty binary is "" and NULL is null."""
    values = [b"", b"\x00\xff", b"hello", None]
    expected = '["","AP8=","aGVsbG8=",null]'
    assert column_json(pa.array(values, pa.binary())) == expected
    assert column_json(pa.array(values, pa.large_binary())) == expected


# ---------------------------------------------------------------- unit: dates, timestamps, intervals


def test_dates_in_and_out_of_the_four_digit_range() -> None:
    """Dates are YYYY-MM-DD; years outside 0..9999 carry a sign like Spark's own text ('+10000', '-0001')."""
    days = [-719162, 2932896, 0, 11016, None]  # 0001-01-01, 9999-12-31, 1970-01-01, 2000-02-29
    assert column_json(pa.array(days, pa.date32())) == (
        '["0001-01-01","9999-12-31","1970-01-01","2000-02-29",null]'
    )
    outside = [2932897, -719163, -719529, -4389162]
    assert column_json(pa.array(outside, pa.date32())) == (
        '["+10000-01-01","0000-12-31","-0001-12-31","-10048-11-19"]'
    )


def test_dates_match_python_calendar() -> None:
    """Every date of years 1..9999 (sampled) is the proleptic Gregorian ISO date."""
    days = np.random.default_rng(3).integers(-719162, 2932897, 20_000).astype(np.int32)
    got = [row[0] for row in batch_to_rows(pa.record_batch({"c": pa.array(days, pa.date32())}))]
    epoch = datetime.date(1970, 1, 1)
    assert got == [(epoch + datetime.timedelta(days=int(d))).isoformat() for d in days]


def test_timestamps_are_utc_with_six_digits_and_z() -> None:
    """Zoned timestamps are rendered in UTC as YYYY-MM-DDTHH:MM:SS.ffffffZ whatever the Arrow zone."""
    micros = [0, -1, 1_704_164_645_123_456, -62135596800000000, 253402300799999999, None]
    expected = (
        '["1970-01-01T00:00:00.000000Z","1969-12-31T23:59:59.999999Z","2024-01-02T03:04:05.123456Z",'
        '"0001-01-01T00:00:00.000000Z","9999-12-31T23:59:59.999999Z",null]'
    )
    for zone in ("UTC", "Etc/UTC", "Asia/Tokyo", "America/Los_Angeles"):
        assert column_json(pa.array(micros, pa.timestamp("us", tz=zone))) == expected


def test_timestamp_ntz_has_no_zone() -> None:
    """timestamp_ntz is YYYY-MM-DDTHH:MM:SS.ffffff with no zone designator."""
    micros = [0, 1_704_164_645_000_000, None]
    assert column_json(pa.array(micros, pa.timestamp("us"))) == (
        '["1970-01-01T00:00:00.000000","2024-01-02T03:04:05.000000",null]'
    )


def test_timestamps_outside_four_digit_years() -> None:
    """Timestamps outside years 1..9999 keep the same form with a signed year."""
    micros = [253402300800000000, -62135596800000001]
    assert column_json(pa.array(micros, pa.timestamp("us", tz="UTC"))) == (
        '["+10000-01-01T00:00:00.000000Z","0000-12-31T23:59:59.999999Z"]'
    )


def test_timestamps_match_python_datetime() -> None:
    """Random timestamps across years 1..9999 equal datetime.isoformat with microseconds."""
    micros = np.random.default_rng(9).integers(-62135596800000000, 253402300800000000, 20_000)
    rows = batch_to_rows(
        pa.record_batch(
            {"z": pa.array(micros, pa.timestamp("us", tz="UTC")), "n": pa.array(micros, pa.timestamp("us"))}
        )
    )
    epoch = datetime.datetime(1970, 1, 1)
    expected = [
        (epoch + datetime.timedelta(microseconds=int(us))).isoformat(timespec="microseconds") for us in micros
    ]
    assert [row[1] for row in rows] == expected
    assert [row[0] for row in rows] == [text + "Z" for text in expected]


def test_day_time_intervals_are_iso_durations() -> None:
    """duration[us] becomes an ISO 8601 duration with 24-hour days and trimmed fractional seconds."""
    day, hour, second = 86_400_000_000, 3_600_000_000, 1_000_000
    values = [
        day + 2 * hour + 3 * 60 * second + 4_500_000,
        -1,
        0,
        100 * day,
        25 * hour,
        -(day + second),
        None,
    ]
    assert column_json(pa.array(values, pa.duration("us"))) == (
        '["P1DT2H3M4.5S","-PT0.000001S","PT0S","P100D","P1DT1H","-P1DT1S",null]'
    )


def test_calendar_intervals_are_iso_durations() -> None:
    """month_day_nano intervals keep months, days and time apart; mixed signs go on each component."""
    values = [(14, 25, 18_367_500_000_000), (-1, 2, 0), (-13, -1, -3_600_000_001_000), (0, 0, 90_000 * 10**9)]
    array = pa.array([pa.MonthDayNano(v) for v in values] + [pa.MonthDayNano((0, 0, 0)), None])
    assert column_json(array) == ('["P1Y2M25DT5H6M7.5S","P-1M2D","-P1Y1M1DT1H0.000001S","PT25H","PT0S",null]')


def test_year_month_intervals_are_iso_durations() -> None:
    """Arrow month intervals (which pyarrow cannot wrap) become P1Y2M / -P3M / P0M, nested too."""
    rows = batch_to_rows(month_interval_batch([14, -3, 0, 24, None]))
    assert orjson.dumps(rows).decode() == (
        '[["P1Y2M",["P1Y2M",null]],["-P3M",["-P3M",null]],["P0M",["P0M",null]],'
        '["P2Y",["P2Y",null]],[null,[null,null]]]'
    )


# ---------------------------------------------------------------- unit: nested types


def test_lists_map_elements_recursively() -> None:
    """Lists map their elements with the same rules; empty and null lists stay distinct."""
    ints = pa.array([[1, None], [], None, [2**63 - 1]], pa.list_(pa.int64()))
    assert column_json(ints) == "[[1,null],[],null,[9223372036854775807]]"
    doubles = pa.array([[math.nan, 1.5, None]], pa.large_list(pa.float64()))
    assert column_json(doubles) == '[["NaN",1.5,null]]'
    decimals = pa.array([[Decimal("1.5")]], pa.list_(pa.decimal128(5, 2)))
    assert column_json(decimals) == '[["1.50"]]'
    stamps = pa.array([[0, None]], pa.list_(pa.timestamp("us", tz="UTC")))
    assert column_json(stamps) == '[["1970-01-01T00:00:00.000000Z",null]]'
    nested = pa.array([[[1], [], None], None], pa.list_(pa.list_(pa.int32())))
    assert column_json(nested) == "[[[1],[],null],null]"


def test_structs_are_objects_with_nested_nulls() -> None:
    """Structs are objects; a null struct is null while a struct of nulls is an object of nulls."""
    struct_type = pa.struct([("a", pa.int64()), ("b", pa.struct([("x", pa.float32())]))])
    values = [{"a": 1, "b": {"x": 1.1}}, None, {"a": None, "b": None}, {"a": None, "b": {"x": None}}]
    assert column_json(pa.array(values, struct_type)) == (
        '[{"a":1,"b":{"x":1.1}},null,{"a":null,"b":null},{"a":null,"b":{"x":null}}]'
    )


def test_struct_field_names_are_kept_verbatim() -> None:
    """Field names with quotes, spaces or unicode are kept as given."""
    struct_type = pa.struct([('it\'s "odd"', pa.int8()), ("ünï code", pa.string()), ("", pa.bool_())])
    array = pa.array([{'it\'s "odd"': 1, "ünï code": "x", "": True}], struct_type)
    assert column_json(array) == '[{"it\'s \\"odd\\"":1,"ünï code":"x","":true}]'


def test_empty_struct_is_empty_object() -> None:
    """A struct with no fields is {} (or null when null)."""
    array = pa.StructArray.from_arrays([], fields=[], mask=pa.array([False, True]))
    assert column_json(array) == "[{},null]"


def test_struct_with_duplicate_field_names_is_rejected() -> None:
    """A struct with two equal field names cannot be a JSON object, so it raises TypeError."""
    struct_type = pa.struct([("a", pa.int32()), ("a", pa.int32())])
    with pytest.raises(TypeError, match="duplicate field names"):
        batch_to_rows(pa.record_batch({"c": pa.array([{"a": 1}], struct_type)}))


def test_maps_with_string_keys_are_objects() -> None:
    """map<string, _> becomes an object in entry order; empty map is {} and a null map is null."""
    array = pa.array([[("b", 1), ("a", None)], [], None], pa.map_(pa.string(), pa.int64()))
    assert column_json(array) == '[{"b":1,"a":null},{},null]'


def test_maps_with_other_keys_are_pair_arrays() -> None:
    """Maps with non-string keys become arrays of [key, value] pairs, keys mapped by the same rules."""
    ints = pa.array([[(2, "x"), (1, "y")], [], None], pa.map_(pa.int32(), pa.string()))
    assert column_json(ints) == '[[[2,"x"],[1,"y"]],[],null]'
    dates = pa.array([[(0, Decimal("1.0"))]], pa.map_(pa.date32(), pa.decimal128(3, 1)))
    assert column_json(dates) == '[[["1970-01-01","1.0"]]]'
    binary = pa.array([[(b"\x01", 1)]], pa.map_(pa.binary(), pa.int8()))
    assert column_json(binary) == '[[["AQ==",1]]]'


def test_nested_values_in_maps_follow_the_rules() -> None:
    """Map values that are arrays of doubles keep NaN as a string."""
    array = pa.array([[("k", [math.nan, None])]], pa.map_(pa.string(), pa.list_(pa.float64())))
    assert column_json(array) == '[{"k":["NaN",null]}]'


def test_sliced_batches_convert_like_their_rows() -> None:
    """A batch slice (non-zero offsets everywhere) gives exactly the matching rows of the whole batch."""
    batch = pa.record_batch(
        {
            "i": pa.array([1, None, 3, 4]),
            "d": pa.array([0.5, math.nan, None, 2.0]),
            "f": pa.array([1.1, None, 2.2, 3.3], pa.float32()),
            "t": pa.array([0, 1, None, 3], pa.timestamp("us", tz="UTC")),
            "day": pa.array([0, None, 2, 3], pa.date32()),
            "dec": pa.array([Decimal("1.1"), None, Decimal("2.2"), Decimal(0)], pa.decimal128(20, 10)),
            "l": pa.array([[1], None, [2, 3], []]),
            "m": pa.array([[("a", 1)], [("b", 2)], None, [("c", 3)]], pa.map_(pa.string(), pa.int64())),
            "s": pa.array([{"x": 1}, {"x": 2}, None, {"x": 4}]),
        }
    )
    whole = batch_to_rows(batch)
    assert batch_to_rows(batch.slice(1, 3)) == whole[1:4]
    assert batch_to_rows(batch.slice(2)) == whole[2:]


def test_rows_are_tuples_orjson_accepts() -> None:
    """Rows are tuples of plain Python values, and a zero-column batch still yields its rows."""
    rows = batch_to_rows(pa.record_batch({"a": pa.array([1, 2]), "b": pa.array(["x", None])}))
    assert rows == [(1, "x"), (2, None)]
    assert orjson.dumps({"rows": rows}) == b'{"rows":[[1,"x"],[2,null]]}'
    empty_columns = pa.RecordBatch.from_struct_array(
        pa.StructArray.from_arrays([], fields=[], mask=pa.array([False] * 3))
    )
    assert batch_to_rows(empty_columns) == [(), (), ()]
    assert batch_to_rows(pa.record_batch({"a": pa.array([], pa.int64())})) == []


# ---------------------------------------------------------------- unit: variant


def test_variant_primitives_render_as_json_text() -> None:
    """Variant scalars become JSON text following the same rules as columns (exact ints, UTC Z, base64...)."""
    cases = [
        (primitive(0), "null"),
        (primitive(1), "true"),
        (primitive(2), "false"),
        (primitive(3, b"\x80"), "-128"),
        (primitive(4, struct.pack("<h", -300)), "-300"),
        (primitive(5, struct.pack("<i", 2**31 - 1)), "2147483647"),
        (primitive(6, struct.pack("<q", 2**53 + 1)), "9007199254740993"),
        (primitive(7, struct.pack("<d", 0.1)), "0.1"),
        (primitive(7, struct.pack("<d", math.nan)), '"NaN"'),
        (primitive(7, struct.pack("<d", -math.inf)), '"-Infinity"'),
        (primitive(8, b"\x02" + struct.pack("<i", 150)), "1.50"),
        (primitive(9, b"\x00" + struct.pack("<q", -(2**62))), str(-(2**62))),
        (
            primitive(10, b"\x12" + (-(10**37)).to_bytes(16, "little", signed=True)),
            "-10000000000000000000.000000000000000000",
        ),
        (primitive(11, struct.pack("<i", -1)), '"1969-12-31"'),
        (primitive(12, struct.pack("<q", 1)), '"1970-01-01T00:00:00.000001Z"'),
        (primitive(13, struct.pack("<q", 0)), '"1970-01-01T00:00:00.000000"'),
        (primitive(14, struct.pack("<f", 1.1)), "1.1"),
        (primitive(15, struct.pack("<I", 2) + b"\x00\xff"), '"AP8="'),
        (primitive(16, struct.pack("<I", 3) + "é\n".encode()), '"é\\n"'),
        (bytes([(2 << 2) | 1]) + b"hi", '"hi"'),
    ]
    for value, expected in cases:
        assert variant_to_json(value, EMPTY_METADATA) == expected, value


def test_variant_objects_and_arrays() -> None:
    """Variant objects keep their stored field order and arrays nest; the result is a JSON string column."""
    metadata = b"\x01\x02\x00\x01\x02ab"  # keys "a", "b"
    # [7, null]: header 3 (array, 1-byte size and offsets), size 2, offsets 0 2 3, then the elements.
    inner = bytes([3, 2, 0, 2, 3]) + primitive(3, b"\x07") + primitive(0)
    # {"a": [7, null], "b": true}: header 2 (object, 1-byte size, ids and offsets), size 2, ids, offsets.
    obj = bytes([2, 2, 0, 1, 0, len(inner), len(inner) + 1]) + inner + primitive(1)
    assert variant_to_json(obj, metadata) == '{"a":[7,null],"b":true}'
    column = variant_array([(obj, metadata), None, (primitive(0), EMPTY_METADATA)])
    assert column_json(column) == '["{\\"a\\":[7,null],\\"b\\":true}",null,"null"]'


def test_variant_malformed_or_unknown_values_raise() -> None:
    """Truncated variant bytes or an unknown primitive type raise ValueError, never a wrong value."""
    with pytest.raises(ValueError, match="malformed"):
        variant_to_json(primitive(6, b"\x01\x02"), EMPTY_METADATA)
    with pytest.raises(ValueError, match="type id 20"):
        variant_to_json(primitive(20, bytes(16)), EMPTY_METADATA)


def test_variant_marker_is_what_selects_variant_rendering() -> None:
    """Without Spark's variant marker the same struct is an ordinary struct (the cache keeps them apart)."""
    plain_type = pa.struct([("value", pa.binary()), ("metadata", pa.binary())])
    plain = pa.array([{"value": primitive(1), "metadata": EMPTY_METADATA}], plain_type)
    marked = variant_array([(primitive(1), EMPTY_METADATA)])
    assert column_json(marked) == '["true"]'
    assert column_json(plain) == '[{"value":"BA==","metadata":"AQAA"}]'
    assert column_json(marked) == '["true"]'


# ---------------------------------------------------------------- unit: unsupported types


@pytest.mark.parametrize(
    "array",
    [
        pa.array(["a", "b"]).dictionary_encode(),
        pa.array([1], pa.time64("us")),
        pa.array([1], pa.timestamp("ns")),
        pa.array([1], pa.duration("ms")),
        pa.array(np.array([1.0], np.float16)),
        pa.array([[1]], pa.list_(pa.int8(), 1)),
        pa.array([1], pa.date64()),
    ],
    ids=lambda a: str(a.type),
)
def test_unmappable_types_raise_type_error(array: Any) -> None:
    """Arrow types with no defined JSON form raise TypeError naming the type."""
    with pytest.raises(TypeError, match="cannot map Arrow type"):
        rows_converter(pa.schema([pa.field("c", array.type)]))


def test_unmappable_nested_type_raises_type_error() -> None:
    """An unmappable type nested in a list is rejected too."""
    with pytest.raises(TypeError, match="time64"):
        rows_converter(pa.schema([pa.field("c", pa.list_(pa.time64("us")))]))


# ---------------------------------------------------------------- integration: real Spark Connect


def spark_json(spark: Any, sql: str) -> str:
    """Run SQL on the real server, convert every Arrow batch, and return the rows as JSON text."""
    rows: list[tuple[Any, ...]] = []
    for batch in spark_batches(spark, sql):
        rows.extend(batch_to_rows(batch))
    return orjson.dumps(rows).decode()


def spark_batches(spark: Any, sql: str) -> list[Any]:
    """The Arrow record batches Spark Connect streams for `sql`, fetched as the gateway does."""
    df = spark.sql(sql)
    request = spark.client._execute_plan_request_with_metadata()
    request.plan.CopyFrom(df._plan.to_proto(spark.client))
    return [
        x for x in spark.client._execute_and_fetch_as_iterator(request, {}) if isinstance(x, pa.RecordBatch)
    ]


@pytest.mark.integration
def test_spark_null_and_boolean(spark: Any) -> None:
    """Spark NullType and booleans: null, true, false."""
    assert spark_json(spark, "SELECT NULL AS n") == "[[null]]"
    assert (
        spark_json(spark, "SELECT v FROM VALUES (true), (false), (NULL) AS t(v)") == "[[true],[false],[null]]"
    )


@pytest.mark.integration
def test_spark_integers(spark: Any) -> None:
    """tinyint, smallint, int and bigint extremes and 2^53+1 keep every digit."""
    sql = """
        SELECT CAST(a AS tinyint), CAST(b AS smallint), CAST(c AS int), CAST(d AS bigint), CAST(e AS bigint)
        FROM VALUES (-128, 32767, -2147483648, '9223372036854775807', '-9223372036854775808'),
                    (127, -32768, 2147483647, '9007199254740993', '0'),
                    (NULL, NULL, NULL, NULL, NULL) AS t(a, b, c, d, e)
    """
    assert spark_json(spark, sql) == (
        "[[-128,32767,-2147483648,9223372036854775807,-9223372036854775808],"
        "[127,-32768,2147483647,9007199254740993,0],[null,null,null,null,null]]"
    )


@pytest.mark.integration
def test_spark_float_and_double(spark: Any) -> None:
    """float uses its shortest float32 form; NaN/Infinity are strings; NULL stays null; -0.0 is kept."""
    sql = """
        SELECT CAST(v AS float) AS f, CAST(v AS double) AS d
        FROM VALUES ('1.1'), ('-0.0'), ('NaN'), ('Infinity'), ('-Infinity'), ('3.4028235E38'),
                    ('1.0E-45'), ('0.1'), ('9007199254740993'), (NULL) AS t(v)
    """
    assert spark_json(spark, sql) == (
        '[[1.1,1.1],[-0.0,-0.0],["NaN","NaN"],["Infinity","Infinity"],["-Infinity","-Infinity"],'
        "[3.4028235e+38,3.4028235e+38],[1e-45,1e-45],[0.1,0.1],[9007199000000000.0,9007199254740992.0],"
        "[null,null]]"
    )


@pytest.mark.integration
def test_spark_decimals(spark: Any) -> None:
    """Decimals are strings with the exact declared scale, including precision 38 and zero."""
    sql = """
        SELECT CAST(a AS decimal(10,3)), CAST(b AS decimal(38,18)),
               CAST(c AS decimal(38,0)), CAST(d AS decimal(38,10))
        FROM VALUES ('12.3', '-12345678901234567890.123456789012345678',
                     '99999999999999999999999999999999999999', '0'),
                    ('-0.001', '0.000000000000000001', '-1', '-0.0000000001'),
                    (NULL, NULL, NULL, NULL) AS t(a, b, c, d)
    """
    assert spark_json(spark, sql) == (
        '[["12.300","-12345678901234567890.123456789012345678","99999999999999999999999999999999999999",'
        '"0.0000000000"],["-0.001","0.000000000000000001","-1","-0.0000000001"],[null,null,null,null]]'
    )


@pytest.mark.integration
def test_spark_strings_char_varchar(spark: Any) -> None:
    """string, char and varchar are JSON strings; '' and NULL stay distinct; unicode is intact."""
    sql = """
        SELECT v, CAST(v AS varchar(20)) AS vc, CAST(v AS char(3)) AS c
        FROM VALUES (''), ('héllo ✓ 😀'), ('a"b\\\\c'), (NULL) AS t(v)
    """
    expected = spark.sql(sql).collect()
    assert spark_json(spark, sql) == orjson.dumps([tuple(row) for row in expected]).decode()
    assert spark_json(spark, "SELECT v FROM VALUES (''), (NULL) AS t(v)") == '[[""],[null]]'


@pytest.mark.integration
def test_spark_binary(spark: Any) -> None:
    """binary is padded standard base64."""
    sql = "SELECT v FROM VALUES (X''), (X'00FF'), (CAST('hello' AS binary)), (NULL) AS t(v)"
    assert spark_json(spark, sql) == '[[""],["AP8="],["aGVsbG8="],[null]]'


@pytest.mark.integration
def test_spark_dates(spark: Any) -> None:
    """Dates are YYYY-MM-DD and equal Spark's own text, also for years 1, 9999, 0, -1 and 10000."""
    sql = """
        SELECT v, CAST(v AS string) FROM VALUES
            (DATE'0001-01-01'), (DATE'9999-12-31'), (DATE'1582-10-15'), (DATE'1582-10-04'),
            (DATE'2024-02-29'),
            (make_date(10000, 1, 1)), (date_add(DATE'0001-01-01', -1)), (date_add(DATE'0001-01-01', -367)),
            (NULL) AS t(v)
    """
    rows = orjson.loads(spark_json(spark, sql))
    assert [row[0] for row in rows] == [
        "0001-01-01",
        "9999-12-31",
        "1582-10-15",
        "1582-10-04",
        "2024-02-29",
        "+10000-01-01",
        "0000-12-31",
        "-0001-12-31",
        None,
    ]
    assert all(row[0] == row[1] for row in rows)


@pytest.mark.integration
def test_spark_timestamps_in_utc(spark: Any) -> None:
    """timestamp is UTC with 6 digits and Z whatever the session time zone; timestamp_ntz has no zone."""
    sql = """
        SELECT v, CAST(v AS timestamp_ntz) FROM VALUES
            (TIMESTAMP'2024-01-02 03:04:05.123456Z'), (TIMESTAMP'2024-01-02 05:04:05+02:00'),
            (TIMESTAMP'0001-01-01 00:00:00Z'), (TIMESTAMP'9999-12-31 23:59:59.999999Z'),
            (TIMESTAMP'1969-12-31 23:59:59.999999Z'), (NULL) AS t(v)
    """
    expected_ntz = [
        "2024-01-02T03:04:05.123456",
        "2024-01-02T03:04:05.000000",
        "0001-01-01T00:00:00.000000",
        "9999-12-31T23:59:59.999999",
        "1969-12-31T23:59:59.999999",
    ]
    previous = spark.conf.get("spark.sql.session.timeZone")
    try:
        for zone in ("UTC", "America/Los_Angeles"):
            spark.conf.set("spark.sql.session.timeZone", zone)
            rows = orjson.loads(spark_json(spark, sql))
            assert [row[0] for row in rows] == [text + "Z" for text in expected_ntz] + [None]
            if zone == "UTC":
                assert [row[1] for row in rows] == [*expected_ntz, None]
    finally:
        spark.conf.set("spark.sql.session.timeZone", previous)


@pytest.mark.integration
def test_spark_timestamp_ntz(spark: Any) -> None:
    """timestamp_ntz literals come out as written, with 6 fractional digits and no zone."""
    sql = """
        SELECT v FROM VALUES (TIMESTAMP_NTZ'2024-01-02 03:04:05'), (TIMESTAMP_NTZ'0001-01-01 00:00:00'),
                             (TIMESTAMP_NTZ'9999-12-31 23:59:59.999999'), (NULL) AS t(v)
    """
    assert spark_json(spark, sql) == (
        '[["2024-01-02T03:04:05.000000"],["0001-01-01T00:00:00.000000"],["9999-12-31T23:59:59.999999"],[null]]'
    )


@pytest.mark.integration
def test_spark_timestamp_beyond_year_9999(spark: Any) -> None:
    """A timestamp past 9999 keeps the form with a '+' year."""
    sql = "SELECT timestamp_micros(253402300800000000) AS v"
    assert spark_json(spark, sql) == '[["+10000-01-01T00:00:00.000000Z"]]'


@pytest.mark.integration
def test_spark_day_time_intervals(spark: Any) -> None:
    """Day-time intervals become ISO 8601 durations."""
    sql = """
        SELECT v FROM VALUES (INTERVAL '1 2:3:4.5' DAY TO SECOND), (-INTERVAL '0.000001' SECOND),
            (INTERVAL '0' SECOND), (INTERVAL '100' DAY), (INTERVAL '1:30' HOUR TO MINUTE),
            (INTERVAL '-1 0:0:1' DAY TO SECOND), (NULL) AS t(v)
    """
    assert spark_json(spark, sql) == (
        '[["P1DT2H3M4.5S"],["-PT0.000001S"],["PT0S"],["P100D"],["PT1H30M"],["-P1DT1S"],[null]]'
    )


@pytest.mark.integration
def test_spark_year_month_intervals(spark: Any) -> None:
    """Year-month intervals (Arrow month_interval) become P1Y2M-style durations, nested too."""
    assert "month_interval" in str(spark_batches(spark, "SELECT INTERVAL '1' MONTH")[0].schema)
    sql = """
        SELECT v FROM VALUES (INTERVAL '1-2' YEAR TO MONTH), (INTERVAL '-3' MONTH), (INTERVAL '0' MONTH),
            (INTERVAL '2' YEAR), (-INTERVAL '1-1' YEAR TO MONTH), (NULL) AS t(v)
    """
    assert spark_json(spark, sql) == '[["P1Y2M"],["-P3M"],["P0M"],["P2Y"],["-P1Y1M"],[null]]'
    nested = """
        SELECT array(INTERVAL '2' YEAR, NULL) AS a, named_struct('i', INTERVAL '1' MONTH) AS s,
               map('k', INTERVAL '13' MONTH) AS m, 7 AS after
    """
    assert spark_json(spark, nested) == '[[["P2Y",null],{"i":"P1M"},{"k":"P1Y1M"},7]]'


@pytest.mark.integration
def test_spark_calendar_intervals(spark: Any) -> None:
    """CalendarIntervalType (Arrow month_day_nano_interval) becomes an ISO 8601 duration."""
    sql = """
        SELECT v FROM VALUES (make_interval(1, 2, 3, 4, 5, 6, 7.5)), (make_interval(0, -1, 0, 2)),
            (-make_interval(1, 1, 0, 1, 1, 0, 0.000001)), (make_interval(0, 0, 0, 0, 25)),
            (make_interval(0, 0, 0, 0, -1, 0, 0.5)), (NULL) AS t(v)
    """
    assert spark_json(spark, sql) == (
        '[["P1Y2M25DT5H6M7.5S"],["P-1M2D"],["-P1Y1M1DT1H0.000001S"],["PT25H"],["-PT59M59.5S"],[null]]'
    )


@pytest.mark.integration
def test_spark_arrays(spark: Any) -> None:
    """Arrays map their elements recursively (decimals, NaN, timestamps, nested and empty arrays)."""
    sql = """
        SELECT array(1, NULL, 3) AS a, array() AS e, CAST(NULL AS array<int>) AS n,
               array(CAST('1.5' AS decimal(5,2))) AS d, array(double('NaN'), 1.5d, NULL) AS f,
               array(TIMESTAMP'2024-01-02 03:04:05Z') AS t, array(array(1), array(), NULL) AS aa
    """
    assert spark_json(spark, sql) == (
        '[[[1,null,3],[],null,["1.50"],["NaN",1.5,null],["2024-01-02T03:04:05.000000Z"],[[1],[],null]]]'
    )


@pytest.mark.integration
def test_spark_structs(spark: Any) -> None:
    """Structs are objects with nested nulls kept apart from null structs."""
    sql = """
        SELECT named_struct('a', 1, 'b', 'x', 'c', CAST(NULL AS int)) AS s,
               CAST(NULL AS struct<a:int>) AS n,
               named_struct('inner', named_struct('x', CAST(NULL AS double), 'y', double('-Infinity')))
                   AS nested,
               named_struct('arr', array(CAST('0.1' AS decimal(2,1))), 'f', CAST(1.1 AS float)) AS mixed
    """
    assert spark_json(spark, sql) == (
        '[[{"a":1,"b":"x","c":null},null,{"inner":{"x":null,"y":"-Infinity"}},{"arr":["0.1"],"f":1.1}]]'
    )


@pytest.mark.integration
def test_spark_maps(spark: Any) -> None:
    """String-keyed maps are objects; other key types give [key, value] pairs in order."""
    sql = """
        SELECT map('a', 1, 'b', NULL) AS sm, map(2, 'x', 1, 'y') AS im, CAST(map() AS map<string,int>) AS em,
               CAST(NULL AS map<string,int>) AS nm, map(DATE'2024-01-01', 1.5d) AS dm,
               map(named_struct('k', 1), 'v') AS structkey, map('k', array(double('NaN'))) AS nested
    """
    assert spark_json(spark, sql) == (
        '[[{"a":1,"b":null},[[2,"x"],[1,"y"]],{},null,[["2024-01-01",1.5]],[[{"k":1},"v"]],{"k":["NaN"]}]]'
    )


@pytest.mark.integration
def test_spark_variant(spark: Any) -> None:
    """A variant is its JSON text (a string): exact numbers, stored key order, contract forms for scalars."""
    sql = """
        SELECT parse_json('{"b":1.50,"a":[1e20,2.5,null,true,"x\\\\u00e9"],"c":12345678901234567890123}') AS v
    """
    assert spark_json(spark, sql) == (
        '[["{\\"a\\":[1e+20,2.5,null,true,\\"xé\\"],\\"b\\":1.50,\\"c\\":12345678901234567890123}"]]'
    )
    typed = """
        SELECT to_variant_object(named_struct('d', DATE'2024-01-02', 't', TIMESTAMP'2024-01-02 03:04:05.5Z',
            'n', TIMESTAMP_NTZ'2024-01-02 03:04:05', 'b', X'0102', 'f', CAST(1.1 AS float),
            'nan', double('NaN'), 'dec', CAST(1.50 AS decimal(10,2)), 'big', 9007199254740993L)) AS v
    """
    text = orjson.loads(spark_json(spark, typed))[0][0]
    assert text == (
        '{"b":"AQI=","big":9007199254740993,"d":"2024-01-02","dec":1.50,"f":1.1,'
        '"n":"2024-01-02T03:04:05.000000","nan":"NaN","t":"2024-01-02T03:04:05.500000Z"}'
    )
    nested = """
        SELECT array(parse_json('1'), NULL) AS a, named_struct('x', parse_json('"s"')) AS s,
               map('k', parse_json('null')) AS m, CAST(NULL AS variant) AS n
    """
    assert spark_json(spark, nested) == '[[["1",null],{"x":"\\"s\\""},{"k":"null"},null]]'


@pytest.mark.integration
def test_spark_multi_batch_result(spark: Any) -> None:
    """A result streamed as several Arrow batches converts to every row in order."""
    sql = "SELECT id, id * 0.5d AS half, CAST(id AS string) AS s FROM range(0, 300000, 1, 1)"
    batches = spark_batches(spark, sql)
    assert len(batches) > 1
    rows = [row for batch in batches for row in batch_to_rows(batch)]
    assert len(rows) == 300_000
    assert rows == [(i, i * 0.5, str(i)) for i in range(300_000)]


# ---------------------------------------------------------------- integration: both page layouts through the gateway

EVERY_MAPPED_TYPE = """
SELECT * FROM VALUES
  (CAST(NULL AS void), true, CAST(-128 AS tinyint), 9007199254740993L, CAST(1.1 AS float), 0.1D,
   CAST('NaN' AS double), CAST(12.3 AS decimal(10,3)), CAST(0 AS decimal(38,18)), 'h\u00e9llo "q" \\\\ \t',
   CAST('ab' AS char(4)), X'00FF', DATE'2024-02-29', TIMESTAMP'2024-01-02 03:04:05.123456',
   TIMESTAMP_NTZ'2024-01-02 03:04:05', INTERVAL '1 2:3:4.5' DAY TO SECOND, INTERVAL '1-2' YEAR TO MONTH,
   make_interval(1, 2, 0, 3, 4, 5, 6.5), array(1, NULL, 3), named_struct('a', 1, 'b', 'x'),
   map('a', 1, 'b', NULL), map(2, 'x'), parse_json('{"b":1.50,"a":[1e20,null,true]}')),
  (NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
   NULL, NULL, NULL, NULL, parse_json('2')),
  (NULL, false, CAST(127 AS tinyint), -9223372036854775808L, CAST(-0.0 AS float), 1e308D,
   CAST('-Infinity' AS double), CAST(-0.001 AS decimal(10,3)), CAST(-1 AS decimal(38,18)), '',
   CAST('' AS char(4)), X'', DATE'1582-10-04', TIMESTAMP'1970-01-01 00:00:00',
   TIMESTAMP_NTZ'9999-12-31 23:59:59.999999', -INTERVAL '0.000001' SECOND, -INTERVAL '3' MONTH,
   make_interval(0, -1, 0, 2, 0, 0, 0), array(), named_struct('a', NULL, 'b', NULL), map(), map(1, NULL),
   parse_json('null'))
AS t(nul, b, i8, i64, f32, f64, nan, dec, dec38, s, ch, bin, d, ts, ntz, dt, ym, cal, arr, st, sm, im, v)
"""


def page_shapes(events: list[dict[str, Any]]) -> list[tuple[int, int, bool, bool]]:
    """Each page's (offset, rows, last, truncated), in either layout."""
    return [(p["offset"], p["count"] if "columns" in p else len(p["rows"]), p["last"], p["truncated"])
            for p in of_type(events, "rows")]


@pytest.mark.integration
async def test_gateway_pages_carry_the_same_values_in_both_layouts(gateway: GatewayProcess, spark: Any) -> None:
    """Every mapped type, through the real gateway: "columns" pages (one array per column, ``count``
    values each) carry exactly the rows of "rows" pages, page for page, and both are the reference mapping."""
    async with open_client(gateway.ws_url) as client:
        by_rows = await client.run(EVERY_MAPPED_TYPE, id="rows", page_size=2)
        by_columns = await client.run(EVERY_MAPPED_TYPE, id="columns", page_size=2, layout="columns")
    assert by_rows[-1]["status"] == by_columns[-1]["status"] == "ok"
    assert page_shapes(by_rows) == page_shapes(by_columns) == [(0, 2, False, False), (2, 1, True, False)]
    width = len(of_type(by_columns, "result")[0]["schema"])
    assert all(len(page["columns"]) == width and "rows" not in page for page in of_type(by_columns, "rows"))
    assert rows_of(by_columns) == rows_of(by_rows) == orjson.loads(spark_json(spark, EVERY_MAPPED_TYPE))
    assert orjson.dumps(rows_of(by_columns)) == orjson.dumps(rows_of(by_rows))  # same JSON forms, not only equal


@pytest.mark.integration
async def test_column_pages_keep_the_page_byte_bound_the_limit_and_the_summary(gateway: GatewayProcess) -> None:
    """A multi-batch result with a limit and wide rows, in the columns layout: pages end before their
    frame passes 1 MiB (the client refuses bigger ones), offsets follow on, the last page says truncated,
    and the rows and the finished summary are those of the rows layout."""
    sql = ("SELECT id, id * 0.5D AS half, concat('s', id) AS s, IF(id % 3 = 0, NULL, repeat('x', 700)) AS wide "
           "FROM range(0, 30000, 1, 3)")
    async with open_client(gateway.ws_url, max_size=1 << 20) as client:
        by_rows = await client.run(sql, id="rows", page_size=7000, limit=25_000)
        by_columns = await client.run(sql, id="columns", page_size=7000, limit=25_000, layout="columns")
    for shapes in (page_shapes(by_columns), page_shapes(by_rows)):
        counts = [n for _, n, _, _ in shapes]
        assert [offset for offset, _, _, _ in shapes] == [sum(counts[:i]) for i in range(len(shapes))]
        assert sum(counts) == 25_000 and shapes[-1][2:] == (True, True)
        assert 1000 < max(counts) < 7000  # the byte bound cut them, not page_size
    assert rows_of(by_columns) == rows_of(by_rows)
    assert [row[0] for row in rows_of(by_columns)] == list(range(25_000))
    assert by_columns[-1]["results"] == by_rows[-1]["results"] == [{"result": 0, "rows": 25_000, "truncated": True}]
