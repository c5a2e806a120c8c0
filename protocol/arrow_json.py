"""The reference mapping of Spark Connect Arrow batches to JSON-ready Python values.

This is the product's wire contract; ``docs/type-mapping.md`` is its reference, and
every value a client receives, in either page layout, is what :func:`batch_to_rows`
gives, written by ``orjson.dumps``. The module is pure (pyarrow, numpy and the standard
library only; no I/O, no caches, no locks): a client or a test compares against it. The
gateway streams the same values through a faster encoder of its own
(``spark_gateway.json_pages``), checked byte for byte against this one
(bench/check_json_text.py). In short:

* SQL NULL of any type is JSON ``null``; nothing else ever becomes ``null``.
* Integers keep every digit; doubles use the shortest round-trip form, floats
  the shortest form that round-trips as float32; NaN and the infinities are the
  strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"``.
* Decimals are strings with the exact scale, binary is base64, dates are
  ``YYYY-MM-DD``, timestamps are ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (UTC) and
  ``timestamp_ntz`` the same without ``Z``; intervals are ISO 8601 durations.
* Arrays, structs and maps map recursively; a variant is its JSON text.

Conversion is columnar: one converter per Arrow type (:func:`column_converter`) turns a
whole column into a list, and rows are built with ``zip``.
"""

from __future__ import annotations

import binascii
import ctypes
import json
import math
import struct
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "Converter",
    "batch_to_columns",
    "batch_to_rows",
    "column_converter",
    "columns_converter",
    "is_month_interval",
    "is_variant",
    "month_interval_type",
    "readable_schema",
    "reinterpret",
    "rows_converter",
    "variant_to_json",
    "with_leaf_types",
]

# A column converter: an Arrow array in, one JSON-ready value per slot out.
Converter = Callable[[Any], list[Any]]
RowsConverter = Callable[[Any], list[tuple[Any, ...]]]
ColumnsConverter = Callable[[Any], list[list[Any]]]

_US_PER_SECOND: Final = 1_000_000
_US_PER_DAY: Final = 86_400 * _US_PER_SECOND
# Days from 1970-01-01 to 0001-01-01 and to 9999-12-31 (proleptic Gregorian).
_MIN_FAST_DAY: Final = -719_162
_MAX_FAST_DAY: Final = 2_932_896
# Arrow's interval-months type, which pyarrow cannot wrap as an Array.
_MONTH_INTERVAL_ID: Final = 21
_VARIANT_KEY: Final = b"variant"

_NON_FINITE: Final = {math.inf: "Infinity", -math.inf: "-Infinity"}


# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------


def batch_to_rows(batch: Any) -> list[tuple[Any, ...]]:
    """Rows of the batch as tuples of JSON-ready Python values.

    Values are what orjson.dumps accepts natively: None, bool, int, float, str,
    list, dict and tuple.  Raises TypeError for a column type with no mapping.
    """
    return rows_converter(batch.schema)(batch)


def batch_to_columns(batch: Any) -> list[list[Any]]:
    """The batch's columns as lists of JSON-ready Python values: the ``columns`` page layout.

    The same values as :func:`batch_to_rows`, one list per column (``zip(*columns)``
    gives the rows). Raises what :func:`batch_to_rows` raises.
    """
    return columns_converter(batch.schema)(batch)


def columns_converter(schema: Any) -> ColumnsConverter:
    """The batch-to-columns function for ``schema`` (see :func:`rows_converter`)."""
    converters = [column_converter(field) for field in schema]
    readable = readable_schema(schema)

    def convert(batch: Any) -> list[list[Any]]:
        if readable is not None:
            batch = reinterpret(batch, readable)
        return [conv(batch.column(i)) for i, conv in enumerate(converters)]

    return convert


def rows_converter(schema: Any) -> RowsConverter:
    """The batch-to-rows function for ``schema`` (build it once per schema to convert many batches).

    Raises ``TypeError`` naming the Arrow type when some column cannot be
    mapped, so a caller can reject a result before streaming any row.
    """
    to_columns = columns_converter(schema)

    def convert(batch: Any) -> list[tuple[Any, ...]]:
        columns = to_columns(batch)
        if not columns:
            return [()] * batch.num_rows
        return list(zip(*columns, strict=True))

    return convert


def is_month_interval(arrow_type: Any) -> bool:
    """Arrow's ``month_interval`` (Spark's year-month interval), which pyarrow cannot wrap as an array."""
    return bool(arrow_type.id == _MONTH_INTERVAL_ID)


# --------------------------------------------------------------------------
# Year-month intervals: pyarrow cannot wrap month_interval arrays
# (batch.column(i) raises KeyError: 21).  Its layout is exactly int32's, so the
# batch is re-imported zero-copy through the Arrow C data interface with every
# month_interval replaced by int32.  Converters are still chosen from the
# original schema, so those int32 columns are rendered as intervals.
# --------------------------------------------------------------------------


def readable_schema(schema: Any) -> Any | None:
    """``schema`` with month_interval replaced by int32, or None if absent."""
    if not any(_has_month_interval(field.type) for field in schema):
        return None
    return pa.schema([pa.field(f.name, _readable_type(f.type), f.nullable, f.metadata) for f in schema],
                     metadata=schema.metadata)


def _has_month_interval(arrow_type: Any) -> bool:
    if arrow_type.id == _MONTH_INTERVAL_ID:
        return True
    return any(_has_month_interval(arrow_type.field(i).type) for i in range(arrow_type.num_fields))


def _readable_type(arrow_type: Any) -> Any:
    return with_leaf_types(arrow_type, lambda leaf: pa.int32() if leaf.id == _MONTH_INTERVAL_ID else leaf)


def with_leaf_types(arrow_type: Any, replace: Callable[[Any], Any]) -> Any:
    """``arrow_type`` with every non-nested type in it replaced by ``replace(type)``, through the
    nesting Spark sends (map, list, large_list, struct; names, nullability and metadata kept).
    Raises ``TypeError`` for any other nesting."""

    def field(f: Any) -> Any:
        return pa.field(f.name, with_leaf_types(f.type, replace), f.nullable, f.metadata)

    if pa.types.is_map(arrow_type):
        return pa.map_(field(arrow_type.key_field), field(arrow_type.item_field), arrow_type.keys_sorted)
    if pa.types.is_large_list(arrow_type):
        return pa.large_list(field(arrow_type.value_field))
    if pa.types.is_list(arrow_type):
        return pa.list_(field(arrow_type.value_field))
    if pa.types.is_struct(arrow_type):
        return pa.struct([field(arrow_type.field(i)) for i in range(arrow_type.num_fields)])
    if arrow_type.num_fields:
        raise TypeError(f"cannot map Arrow type {arrow_type} to JSON: unsupported nesting")
    return replace(arrow_type)


class _ArrowSchemaC(ctypes.Structure):
    """The Arrow C data interface's ``ArrowSchema`` (just enough to describe one primitive type)."""

    _fields_ = [("format", ctypes.c_char_p), ("name", ctypes.c_char_p), ("metadata", ctypes.c_char_p),
                ("flags", ctypes.c_int64), ("n_children", ctypes.c_int64), ("children", ctypes.c_void_p),
                ("dictionary", ctypes.c_void_p), ("release", ctypes.c_void_p), ("private_data", ctypes.c_void_p)]


_RELEASE_SCHEMA: Final = ctypes.CFUNCTYPE(None, ctypes.POINTER(_ArrowSchemaC))(
    lambda schema: setattr(schema.contents, "release", None))


def month_interval_type() -> Any:
    """Arrow's ``month_interval`` (Spark's year-month interval), which pyarrow has no constructor
    for: imported through the C data interface (format ``tiM``), as Spark's batches bring it."""
    c_schema = _ArrowSchemaC(format=b"tiM", name=b"", flags=2, release=ctypes.cast(_RELEASE_SCHEMA, ctypes.c_void_p))
    return pa.DataType._import_from_c(ctypes.addressof(c_schema))


class _CapsulePair:
    """Hands pyarrow an exported array together with a substituted schema."""

    def __init__(self, schema_capsule: object, array_capsule: object) -> None:
        self._capsules = (schema_capsule, array_capsule)

    def __arrow_c_array__(self, requested_schema: object = None) -> tuple[object, object]:
        return self._capsules


def reinterpret(batch: Any, readable: Any) -> Any:
    """``batch`` seen through ``readable`` (from :func:`readable_schema`): zero-copy, every
    column wrappable; convert it with the converters chosen from the original schema."""
    _, array_capsule = batch.__arrow_c_array__()
    return pa.record_batch(_CapsulePair(readable.__arrow_c_schema__(), array_capsule))


# --------------------------------------------------------------------------
# Converter selection
# --------------------------------------------------------------------------


def column_converter(field: Any) -> Converter:
    """Pick the column converter for one Arrow field (recursively for nesting)."""
    arrow_type = field.type
    types = pa.types
    if is_variant(field):
        return _convert_variant
    if arrow_type.id == _MONTH_INTERVAL_ID:
        return _convert_year_month_interval
    if types.is_null(arrow_type):
        return _convert_null
    if types.is_boolean(arrow_type) or types.is_integer(arrow_type):
        return _convert_exact_primitive
    if types.is_float64(arrow_type):
        return _convert_double
    if types.is_float32(arrow_type):
        return _convert_float
    if types.is_decimal(arrow_type):
        return _decimal_converter(arrow_type.scale)
    if types.is_string(arrow_type) or types.is_large_string(arrow_type) or types.is_string_view(arrow_type):
        return _convert_string
    if types.is_binary(arrow_type) or types.is_large_binary(arrow_type) or types.is_binary_view(arrow_type):
        return _convert_binary
    if types.is_date32(arrow_type):
        return _convert_date
    if types.is_timestamp(arrow_type) and arrow_type.unit == "us":
        return _convert_timestamp_utc if arrow_type.tz is not None else _convert_timestamp_ntz
    if types.is_duration(arrow_type) and arrow_type.unit == "us":
        return _convert_day_time_interval
    if arrow_type == pa.month_day_nano_interval():
        return _convert_calendar_interval
    if types.is_map(arrow_type):
        return _map_converter(arrow_type)
    if types.is_list(arrow_type) or types.is_large_list(arrow_type):
        return _list_converter(column_converter(arrow_type.value_field))
    if types.is_struct(arrow_type):
        return _struct_converter(arrow_type)
    raise TypeError(f"cannot map Arrow type {arrow_type} (field {field.name!r}) to JSON")


def is_variant(field: Any) -> bool:
    """A Spark VariantType: struct<value: binary, metadata: binary> whose
    ``metadata`` child carries the field metadata variant='true' (as pyspark checks)."""
    arrow_type = field.type
    if not pa.types.is_struct(arrow_type) or arrow_type.num_fields != 2:
        return False
    children = {arrow_type.field(i).name: arrow_type.field(i) for i in range(2)}
    value, metadata = children.get("value"), children.get("metadata")
    return (
        value is not None
        and metadata is not None
        and pa.types.is_binary(value.type)
        and pa.types.is_binary(metadata.type)
        and (metadata.metadata or {}).get(_VARIANT_KEY) == b"true"
    )


# --------------------------------------------------------------------------
# Null handling helpers
# --------------------------------------------------------------------------


def _null_indices(arr: Any) -> list[int]:
    mask = arr.is_null().to_numpy(zero_copy_only=False)
    return np.flatnonzero(mask).tolist()


def _patch_nulls(values: list[Any], arr: Any) -> list[Any]:
    """Put None where ``arr`` is null (values there were placeholders)."""
    if arr.null_count:
        for i in _null_indices(arr):
            values[i] = None
    return values


def _int_values(arr: Any, int_type: Any) -> npt.NDArray[Any]:
    """The slot values of a fixed-width array as integers, nulls read as 0."""
    ints = arr.view(int_type)
    if arr.null_count:
        ints = ints.fill_null(0)
    return ints.to_numpy()  # type: ignore[no-any-return]


# --------------------------------------------------------------------------
# Primitive converters
# --------------------------------------------------------------------------


def _convert_null(arr: Any) -> list[Any]:
    return [None] * len(arr)


def _convert_exact_primitive(arr: Any) -> list[Any]:
    # numpy's tolist is the fastest exact path for ints and bools; with nulls,
    # pyarrow's to_pylist already yields None in the right places.
    if arr.null_count:
        return arr.to_pylist()  # type: ignore[no-any-return]
    return arr.to_numpy(zero_copy_only=False).tolist()  # type: ignore[no-any-return]


def _convert_double(arr: Any) -> list[Any]:
    raw = arr.fill_null(0.0).to_numpy() if arr.null_count else arr.to_numpy()
    values: list[Any] = raw.tolist()
    _patch_non_finite(values, raw)
    return _patch_nulls(values, arr)


def _convert_float(arr: Any) -> list[Any]:
    raw = arr.fill_null(0.0).to_numpy() if arr.null_count else arr.to_numpy()
    values = _shortest_float32(raw)
    _patch_non_finite(values, raw)
    return _patch_nulls(values, arr)


def _patch_non_finite(values: list[Any], raw: npt.NDArray[Any]) -> None:
    """Replace NaN/Infinity by strings: orjson would write null, which means SQL NULL."""
    if np.isfinite(raw).all():
        return
    for i in np.flatnonzero(~np.isfinite(raw)).tolist():
        value = values[i]
        values[i] = "NaN" if value != value else _NON_FINITE[value]


def _shortest_float32(raw: npt.NDArray[np.float32]) -> list[Any]:
    """Doubles whose shortest repr is the shortest decimal that round-trips as float32.

    ``float(np.float32(1.1))`` is 1.100000023841858; the client must see 1.1.
    For each digit count p = 1..9 the nearest p-digit decimal is computed
    vectorized (m / 10**k or m * 10**k with exact m and exact 10**k, |k| <= 22,
    so correctly rounded) and kept where it converts back to the same float32.
    A decimal of at most 15 significant digits is exactly what repr() prints
    for its nearest double, so orjson writes that decimal.  Magnitudes that
    would need an inexact 10**k use numpy's shortest float32 repr instead.
    Non-finite values are returned unchanged (the caller replaces them).
    """
    exact = raw.astype(np.float64)
    out = exact.copy()
    magnitude = np.abs(exact)
    todo = np.flatnonzero(np.isfinite(magnitude) & (magnitude != 0.0))
    if todo.size == 0:
        return out.tolist()  # type: ignore[no-any-return]
    exponent = _decimal_exponent(magnitude[todo])
    # k = p - 1 - exponent stays within [-22, 22] for every p in 1..9 exactly
    # when -14 <= exponent <= 22 (about 1e-14 .. 1e23).
    in_range = (exponent >= -14) & (exponent <= 22)
    slow = todo[~in_range]
    todo, exponent = todo[in_range], exponent[in_range]
    for digits in range(1, 10):
        if todo.size == 0:
            break
        k = digits - 1 - exponent
        power = np.power(10.0, np.abs(k).astype(np.float64))
        x = exact[todo]
        candidate = np.where(k >= 0, np.round(x * power) / power, np.round(x / power) * power)
        with np.errstate(over="ignore"):
            good = candidate.astype(np.float32) == raw[todo]
        out[todo[good]] = candidate[good]
        todo, exponent = todo[~good], exponent[~good]
    for i in np.concatenate([slow, todo]).tolist():
        out[i] = float(str(raw[i]))
    return out.tolist()  # type: ignore[no-any-return]


def _decimal_exponent(magnitude: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
    """floor(log10(m)) exactly (log10 may be off by one next to powers of ten)."""
    exponent = np.floor(np.log10(magnitude)).astype(np.int64)
    power = np.power(10.0, exponent.astype(np.float64))
    exponent -= (power > magnitude).astype(np.int64)
    exponent += (power * 10.0 <= magnitude).astype(np.int64)
    return exponent


def _decimal_converter(scale: int) -> Converter:
    # Arrow's decimal-to-string cast is exact but switches to scientific
    # notation (0E-18) when the adjusted exponent is below -6, which can only
    # happen for scale > 6 (or a negative scale); those entries are redone.
    needs_fix = scale > 6 or scale < 0

    def convert(arr: Any) -> list[Any]:
        values: list[Any] = pc.cast(arr, pa.string()).to_pylist()
        if needs_fix:
            for i, text in enumerate(values):
                if text is not None and "E" in text:
                    values[i] = format(Decimal(text), "f")
        return values

    return convert


def _convert_string(arr: Any) -> list[Any]:
    return arr.to_pylist()  # type: ignore[no-any-return]


def _convert_binary(arr: Any) -> list[Any]:
    b2a = binascii.b2a_base64
    return [None if b is None else b2a(b, newline=False).decode("ascii") for b in arr.to_pylist()]


# --------------------------------------------------------------------------
# Dates and timestamps
# --------------------------------------------------------------------------


def _convert_date(arr: Any) -> list[Any]:
    days = _int_values(arr, pa.int32())
    if days.size and (days.min() < _MIN_FAST_DAY or days.max() > _MAX_FAST_DAY):
        values = [_format_date(d) for d in days.tolist()]
    else:
        values = _ascii_rows(_fill_text(_DATE_LAYOUT, _date_fields(days)))
    return _patch_nulls(values, arr)


def _convert_timestamp_utc(arr: Any) -> list[Any]:
    return _convert_timestamp(arr, _TIMESTAMP_UTC_LAYOUT, "Z")


def _convert_timestamp_ntz(arr: Any) -> list[Any]:
    return _convert_timestamp(arr, _TIMESTAMP_NTZ_LAYOUT, "")


def _convert_timestamp(arr: Any, layout: _TextLayout, suffix: str) -> list[Any]:
    micros = _int_values(arr, pa.int64())
    days, time_of_day = np.divmod(micros, _US_PER_DAY)
    if days.size and (days.min() < _MIN_FAST_DAY or days.max() > _MAX_FAST_DAY):
        values = [_format_timestamp(us) + suffix for us in micros.tolist()]
    else:
        # Both parts fit int32 (seconds < 86400, fraction < 10**6): faster math.
        seconds, fraction = (part.astype(np.int32) for part in np.divmod(time_of_day, _US_PER_SECOND))
        hours, rest = np.divmod(seconds, 3600)
        minutes, secs = np.divmod(rest, 60)
        fields = _date_fields(days.astype(np.int32)) + [
            hours,
            minutes,
            secs,
            fraction // 10_000,
            fraction // 100 % 100,
            fraction % 100,
        ]
        values = _ascii_rows(_fill_text(layout, fields))
    return _patch_nulls(values, arr)


# Fast date/time text: rows are filled into a fixed-width ASCII matrix from a
# template, two digits at a time through a structured uint16 view (one
# vectorized store per field), then turned into str objects in one call.
# This is ~4x faster than numpy.datetime_as_string and ~15x faster than
# Arrow's timestamp-to-string cast.


class _TextLayout:
    """A fixed-width ASCII template and the byte offsets of its 2-digit fields."""

    def __init__(self, template: str, offsets: list[int]) -> None:
        self.template = np.frombuffer(template.encode("ascii"), dtype=np.uint8)
        self.names = [f"f{i}" for i in range(len(offsets))]
        self.view = np.dtype(
            {
                "names": self.names,
                "formats": ["<u2"] * len(offsets),
                "offsets": offsets,
                "itemsize": len(template),
            }
        )


# ASCII digit pairs "00".."99" as little-endian uint16, indexed by the number.
_DIGIT_PAIRS: Final = np.array([48 + i // 10 + ((48 + i % 10) << 8) for i in range(100)], dtype="<u2")
_DATE_OFFSETS: Final = [0, 2, 5, 8]
_TIME_OFFSETS: Final = [11, 14, 17, 20, 22, 24]
_DATE_LAYOUT: Final = _TextLayout("0000-00-00", _DATE_OFFSETS)
_TIMESTAMP_NTZ_LAYOUT: Final = _TextLayout("0000-00-00T00:00:00.000000", _DATE_OFFSETS + _TIME_OFFSETS)
_TIMESTAMP_UTC_LAYOUT: Final = _TextLayout("0000-00-00T00:00:00.000000Z", _DATE_OFFSETS + _TIME_OFFSETS)


def _date_fields(days: npt.NDArray[Any]) -> list[npt.NDArray[Any]]:
    """The 2-digit fields (century, year of century, month, day) of day numbers."""
    year, month, day = _civil_from_days(days)
    return [year // 100, year % 100, month, day]


def _fill_text(layout: _TextLayout, fields: list[npt.NDArray[Any]]) -> npt.NDArray[np.uint8]:
    buf = np.empty((fields[0].size, layout.template.size), dtype=np.uint8)
    buf[:] = layout.template
    record = buf.view(layout.view).reshape(-1)
    for name, values in zip(layout.names, fields, strict=True):
        record[name] = _DIGIT_PAIRS[values]
    return buf


def _civil_from_days(days: Any) -> tuple[Any, Any, Any]:
    """Proleptic Gregorian (year, month, day) of day numbers since 1970-01-01.

    H. Hinnant's civil_from_days, written with operators only so that it works
    on Python ints and on numpy integer arrays alike (floor division throughout).
    """
    z = days + 719_468
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 - 12 * (mp >= 10)
    year = yoe + era * 400 + (month <= 2)
    return year, month, day


def _ascii_rows(buf: npt.NDArray[np.uint8]) -> list[Any]:
    """One str per row of a fixed-width ASCII matrix (via an Arrow string array: fastest)."""
    count, width = buf.shape
    offsets = np.arange(0, (count + 1) * width, width, dtype=np.int64)
    text = pa.Array.from_buffers(
        pa.large_string(), count, [None, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(buf))]
    )
    return text.to_pylist()  # type: ignore[no-any-return]


def _format_year(year: int) -> str:
    # Spark's own form: 4 digits for 0..9999, else a sign (ISO 8601 expanded).
    if 0 <= year <= 9999:
        return f"{year:04d}"
    return f"+{year}" if year > 0 else f"-{-year:04d}"


def _format_date(days: int) -> str:
    year, month, day = _civil_from_days(days)
    return f"{_format_year(year)}-{month:02d}-{day:02d}"


def _format_timestamp(micros: int) -> str:
    days, time_of_day = divmod(micros, _US_PER_DAY)
    seconds, fraction = divmod(time_of_day, _US_PER_SECOND)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{_format_date(days)}T{hours:02d}:{minutes:02d}:{secs:02d}.{fraction:06d}"


# --------------------------------------------------------------------------
# Intervals
# --------------------------------------------------------------------------


def _convert_day_time_interval(arr: Any) -> list[Any]:
    values: list[Any] = [_iso_duration(us) for us in _int_values(arr, pa.int64()).tolist()]
    return _patch_nulls(values, arr)


def _convert_year_month_interval(arr: Any) -> list[Any]:
    # ``arr`` is the int32 view made by reinterpret: a count of months.
    values: list[Any] = [_iso_months(m) for m in _int_values(arr, pa.int32()).tolist()]
    return _patch_nulls(values, arr)


def _convert_calendar_interval(arr: Any) -> list[Any]:
    # Spark's legacy CalendarIntervalType arrives as month_day_nano_interval.
    return [
        None if v is None else _iso_calendar_interval(v.months, v.days, v.nanoseconds)
        for v in arr.to_pylist()
    ]


def _iso_duration(micros: int) -> str:
    """ISO 8601 duration of a day-time interval; a day is exactly 24 hours in Spark."""
    if micros == 0:
        return "PT0S"
    days, rest = divmod(abs(micros), _US_PER_DAY)
    sign = "-" if micros < 0 else ""
    return f"{sign}P" + (f"{days}D" if days else "") + _time_part(rest * 1000, "")


def _iso_months(months: int) -> str:
    """ISO 8601 duration of a year-month interval."""
    if months == 0:
        return "P0M"
    return ("-P" if months < 0 else "P") + _year_month_part(abs(months), "")


def _iso_calendar_interval(months: int, days: int, nanos: int) -> str:
    """ISO 8601 duration of a calendar interval (months, days and time kept apart, as in Spark).

    Its components may have different signs, which ISO 8601 cannot say with one
    leading sign: then each component carries its own (as java.time.Period prints).
    """
    if months == days == nanos == 0:
        return "PT0S"
    if months <= 0 and days <= 0 and nanos <= 0:
        return "-" + _iso_calendar_interval(-months, -days, -nanos)
    return (
        "P"
        + _year_month_part(abs(months), "-" if months < 0 else "")
        + (f"{days}D" if days else "")
        + _time_part(abs(nanos), "-" if nanos < 0 else "")
    )


def _year_month_part(months: int, sign: str) -> str:
    """'1Y2M' for a non-negative month count, each number prefixed by sign."""
    years, months = divmod(months, 12)
    return (f"{sign}{years}Y" if years else "") + (f"{sign}{months}M" if months else "")


def _time_part(nanos: int, sign: str) -> str:
    """'T1H2M3.5S' for non-negative nanoseconds (hours not folded into days), or ''."""
    if not nanos:
        return ""
    seconds, fraction = divmod(nanos, 1_000_000_000)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    text = "T"
    if hours:
        text += f"{sign}{hours}H"
    if minutes:
        text += f"{sign}{minutes}M"
    if seconds or fraction:
        text += sign + f"{seconds}.{fraction:09d}".rstrip("0").rstrip(".") + "S"
    return text


# --------------------------------------------------------------------------
# Nested types
# --------------------------------------------------------------------------


def _children_and_bounds(arr: Any, child: Any) -> tuple[Any, list[tuple[int, int]]]:
    """The child range a list/map array covers, and each slot's (start, end) in it."""
    offsets: list[int] = arr.offsets.to_numpy().tolist()
    first = offsets[0]
    if first:
        offsets = [offset - first for offset in offsets]
    return child.slice(first, offsets[-1]), list(zip(offsets, offsets[1:], strict=False))


def _list_converter(element: Converter) -> Converter:
    def convert(arr: Any) -> list[Any]:
        child, bounds = _children_and_bounds(arr, arr.values)
        items = element(child)
        values: list[Any] = [items[a:b] for a, b in bounds]
        return _patch_nulls(values, arr)

    return convert


def _map_converter(map_type: Any) -> Converter:
    key_convert = column_converter(map_type.key_field)
    item_convert = column_converter(map_type.item_field)
    key_type = map_type.key_type
    # String keys make a JSON object; any other key type would have to be
    # stringified (lossy, ambiguous), so those maps are [key, value] pairs.
    as_object = (
        pa.types.is_string(key_type)
        or pa.types.is_large_string(key_type)
        or pa.types.is_string_view(key_type)
    )

    def convert(arr: Any) -> list[Any]:
        keys, bounds = _children_and_bounds(arr, arr.keys)
        items, _ = _children_and_bounds(arr, arr.items)
        pairs = list(zip(key_convert(keys), item_convert(items), strict=True))
        values: list[Any] = (
            [dict(pairs[a:b]) for a, b in bounds] if as_object else [pairs[a:b] for a, b in bounds]
        )
        return _patch_nulls(values, arr)

    return convert


def _struct_converter(struct_type: Any) -> Converter:
    fields = [struct_type.field(i) for i in range(struct_type.num_fields)]
    names = [field.name for field in fields]
    if len(set(names)) != len(names):
        # A JSON object cannot hold two equal keys without losing one value.
        raise TypeError(f"cannot map Arrow type {struct_type} to a JSON object: duplicate field names")
    children = [column_converter(field) for field in fields]
    make_objects = _object_maker(names)

    def convert(arr: Any) -> list[Any]:
        values = make_objects([child(arr.field(i)) for i, child in enumerate(children)], len(arr))
        return _patch_nulls(values, arr)

    return convert


def _object_maker(names: list[str]) -> Callable[[list[list[Any]], int], list[Any]]:
    """A function turning per-field value lists into one dict per row.

    It is generated as a comprehension with a dict display, which is about 3x
    faster than dict(zip(names, row)) per row.  Field names enter the source
    only as repr() string literals, so any name is safe; variables are v0..vN.
    """
    if not names:
        return lambda columns, count: [{} for _ in range(count)]
    variables = [f"v{i}" for i in range(len(names))]
    display = ", ".join(f"{name!r}: {var}" for name, var in zip(names, variables, strict=True))
    source = f"lambda columns, count: [{{{display}}} for {', '.join(variables)}, in zip(*columns)]"
    maker: Callable[[list[list[Any]], int], list[Any]] = eval(
        compile(source, "<struct row maker>", "eval"), {}
    )
    return maker


# --------------------------------------------------------------------------
# Variant: Spark sends struct<value: binary, metadata: binary> (field metadata
# variant='true') in the Parquet/Spark variant binary encoding.  It is decoded
# here into JSON text, with scalars following this module's contract.
# --------------------------------------------------------------------------


def _convert_variant(arr: Any) -> list[Any]:
    values = arr.field("value").to_pylist()
    metadata = arr.field("metadata").to_pylist()
    # Child slots under a null variant hold placeholders (often b""): skip them.
    valid = arr.is_valid().to_numpy(zero_copy_only=False).tolist()
    return [
        variant_to_json(v, m) if ok and v is not None and m is not None else None
        for v, m, ok in zip(values, metadata, valid, strict=True)
    ]


def variant_to_json(value: bytes, metadata: bytes) -> str:
    """JSON text of one variant (value and metadata in Spark's binary encoding)."""
    try:
        return _variant_json(value, 0, _variant_keys(metadata))
    except (IndexError, struct.error, UnicodeDecodeError) as exc:
        raise ValueError("malformed variant value") from exc


def _le(data: bytes, pos: int, size: int) -> int:
    if pos + size > len(data):
        raise IndexError(pos + size)
    return int.from_bytes(data[pos : pos + size], "little")


def _variant_keys(metadata: bytes) -> list[str]:
    """The metadata dictionary: header, size, offsets, then the key bytes."""
    header = metadata[0]
    if header & 0x0F != 1:
        raise ValueError(f"unsupported variant metadata version {header & 0x0F}")
    width = ((header >> 6) & 0x3) + 1
    size = _le(metadata, 1, width)
    offsets = [_le(metadata, 1 + (i + 1) * width, width) for i in range(size + 1)]
    start = 1 + (size + 2) * width
    return [
        metadata[start + a : start + b].decode("utf-8") for a, b in zip(offsets, offsets[1:], strict=False)
    ]


def _json_string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _json_float(value: float) -> str:
    if math.isnan(value):
        return '"NaN"'
    if math.isinf(value):
        return '"Infinity"' if value > 0 else '"-Infinity"'
    return repr(value)


def _json_decimal(unscaled: int, scale: int) -> str:
    """Plain decimal text keeping the stored scale (a JSON number is exact text).

    Built from the digits, since Decimal arithmetic would round to 28 digits.
    """
    sign, digits = ("-" if unscaled < 0 else ""), str(abs(unscaled))
    if scale <= 0:
        return sign + digits + "0" * -scale if unscaled else "0"
    digits = digits.rjust(scale + 1, "0")
    return f"{sign}{digits[:-scale]}.{digits[-scale:]}"


def _variant_json(value: bytes, pos: int, keys: list[str]) -> str:
    header = value[pos]
    basic, info = header & 0x3, header >> 2
    if basic == 1:  # short string
        return _json_string(value[pos + 1 : pos + 1 + info].decode("utf-8"))
    if basic == 2:  # object
        return _variant_object(value, pos, info, keys)
    if basic == 3:  # array
        return _variant_array(value, pos, info, keys)
    return _variant_primitive(value, pos + 1, info)


def _variant_object(value: bytes, pos: int, info: int, keys: list[str]) -> str:
    size_width = 4 if (info >> 4) & 0x1 else 1
    id_width = ((info >> 2) & 0x3) + 1
    offset_width = (info & 0x3) + 1
    count = _le(value, pos + 1, size_width)
    ids_at = pos + 1 + size_width
    offsets_at = ids_at + count * id_width
    data_at = offsets_at + (count + 1) * offset_width
    parts = []
    for i in range(count):
        key = keys[_le(value, ids_at + i * id_width, id_width)]
        field_at = data_at + _le(value, offsets_at + i * offset_width, offset_width)
        parts.append(f"{_json_string(key)}:{_variant_json(value, field_at, keys)}")
    return "{" + ",".join(parts) + "}"


def _variant_array(value: bytes, pos: int, info: int, keys: list[str]) -> str:
    size_width = 4 if (info >> 2) & 0x1 else 1
    offset_width = (info & 0x3) + 1
    count = _le(value, pos + 1, size_width)
    offsets_at = pos + 1 + size_width
    data_at = offsets_at + (count + 1) * offset_width
    parts = [
        _variant_json(value, data_at + _le(value, offsets_at + i * offset_width, offset_width), keys)
        for i in range(count)
    ]
    return "[" + ",".join(parts) + "]"


def _signed(value: bytes, pos: int, size: int) -> int:
    if pos + size > len(value):
        raise IndexError(pos + size)
    return int.from_bytes(value[pos : pos + size], "little", signed=True)


def _variant_primitive(value: bytes, pos: int, type_id: int) -> str:
    """One scalar; pos is just after the header byte."""
    if type_id == 0:
        return "null"
    if type_id in (1, 2):
        return "true" if type_id == 1 else "false"
    if type_id in (3, 4, 5, 6):  # int8/16/32/64
        return str(_signed(value, pos, 1 << (type_id - 3)))
    if type_id == 7:
        return _json_float(struct.unpack_from("<d", value, pos)[0])
    if type_id in (8, 9, 10):  # decimal4/8/16: scale byte, then unscaled integer
        return _json_decimal(_signed(value, pos + 1, 4 << (type_id - 8)), value[pos])
    if type_id == 11:
        return f'"{_format_date(_signed(value, pos, 4))}"'
    if type_id == 12:
        return f'"{_format_timestamp(_signed(value, pos, 8))}Z"'
    if type_id == 13:
        return f'"{_format_timestamp(_signed(value, pos, 8))}"'
    if type_id == 14:
        single = np.frombuffer(value, dtype="<f4", count=1, offset=pos).astype(np.float32)
        return _json_float(_shortest_float32(single)[0])
    if type_id in (15, 16):  # binary / long string: 4-byte length, then bytes
        size = _le(value, pos, 4)
        data = value[pos + 4 : pos + 4 + size]
        if len(data) != size:
            raise IndexError(pos + 4 + size)
        if type_id == 15:
            return f'"{binascii.b2a_base64(data, newline=False).decode("ascii")}"'
        return _json_string(data.decode("utf-8"))
    raise ValueError(f"unsupported variant primitive type id {type_id}")
