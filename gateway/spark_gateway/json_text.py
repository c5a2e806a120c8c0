"""One Arrow column as the JSON text of its values, without a Python object per value.

The gateway's fast path to the reference mapping (``spark_gateway_protocol.arrow_json``):
a column becomes an Arrow ``large_string`` array (no nulls) holding each value's JSON
text, byte for byte what ``orjson.dumps`` writes for the reference value
(bench/check_json_text.py checks it). Integers, booleans, doubles, decimals and strings
are written by Arrow kernels, which run without the GIL, or by orjson over numpy; other
types go through their reference converter and orjson, column by column.

``json_pages`` places these texts: into rows (``[v1,v2,...]``) or into columns. The
:data:`Layout` of a column's text says what the placing still has to add.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any, Final

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from spark_gateway_protocol.arrow_json import Converter, column_converter, is_month_interval, is_variant

__all__ = ["BARE", "CLOSED", "JOINED", "LS", "QUOTED", "TERMINATED", "NumberText", "TextEncoder", "string_offsets",
           "text_encoder"]

LS: Final = pa.large_string()

# What a column's text array holds per value, so that the row or column join adds the rest.
Layout = int
BARE: Final = 0  # its JSON text
QUOTED: Final = 1  # its JSON text without the enclosing quotes (the join adds them: cheaper)
TERMINATED: Final = 2  # its JSON text followed by a comma
CLOSED: Final = 3  # its JSON text followed by a closing bracket (a row's last column)
JOINED: Final = 4  # not an array: a NumberText, every value's JSON text joined by commas

# A column's encoder: an Arrow array in, its values' text (large_string, no nulls) and layout out.
TextEncoder = Callable[[Any], tuple[Any, Layout]]

_SCALARS: dict[str, Any] = {}


def _text_scalar(text: str) -> Any:
    scalar = _SCALARS.get(text)
    if scalar is None:
        scalar = _SCALARS[text] = pa.scalar(text, LS)
    return scalar


_NULL: Final = _text_scalar("null")
_QUOTE: Final = _text_scalar('"')
_EMPTY: Final = _text_scalar("")


def text_encoder(field: Any, end: bytes | None = b",") -> TextEncoder:
    """How a column becomes JSON text.

    ``end``: what follows each value where it is placed in a row (``b","``, or ``b"]"`` for
    a row's last column), which a number column written from numpy carries itself (layout
    TERMINATED or CLOSED), saving the join a piece; None, for the columns layout: such a
    column comes as one text, its values joined by commas (JOINED). Raises ``TypeError``
    for a type with no mapping (as the reference does).
    """
    arrow_type = field.type
    types = pa.types
    if is_variant(field):
        return _per_value_encoder(column_converter(field))
    if types.is_boolean(arrow_type) or types.is_integer(arrow_type):
        return _numpy_encoder(_text_exact_primitive, end)
    if types.is_float64(arrow_type):
        return _numpy_encoder(_comma_free_encoder(column_converter(field)), end)
    if types.is_decimal(arrow_type):
        return _decimal_text_encoder(arrow_type.scale)
    if types.is_string(arrow_type) or types.is_large_string(arrow_type) or types.is_string_view(arrow_type):
        return _text_string
    converter = column_converter(field)  # raises TypeError for a type with no mapping
    if is_month_interval(arrow_type) or _is_comma_free(arrow_type):
        return _comma_free_encoder(converter)
    return _per_value_encoder(converter)


def _is_comma_free(arrow_type: Any) -> bool:
    """Scalars whose JSON text never holds a comma: numbers, base64, dates, times, intervals, null."""
    types = pa.types
    return bool(
        types.is_null(arrow_type)
        or types.is_floating(arrow_type)
        or types.is_binary(arrow_type)
        or types.is_large_binary(arrow_type)
        or types.is_binary_view(arrow_type)
        or types.is_date32(arrow_type)
        or types.is_timestamp(arrow_type)
        or types.is_duration(arrow_type)
        or arrow_type == pa.month_day_nano_interval()
    )


def _quoted_or_null(text: Any, has_nulls: bool) -> tuple[Any, Layout]:
    """Leave the quotes to the join, unless nulls (written ``null``) need them per value."""
    if not has_nulls:
        return text, QUOTED
    return pc.binary_join_element_wise(_QUOTE, text, _QUOTE, _EMPTY).fill_null(_NULL), BARE


def _replace_at(text: Any, rows: list[int], values: list[str]) -> Any:
    mask = np.zeros(len(text), dtype=bool)
    mask[rows] = True
    return pc.replace_with_mask(text, pa.array(mask), pa.array(values, LS))


def _text_exact_primitive(arr: Any) -> tuple[Any, Layout]:
    # Arrow's cast writes every digit of any integer, and true/false for booleans.
    text = pc.cast(arr, LS)
    return (text.fill_null(_NULL) if arr.null_count else text), BARE


def _decimal_text_converter(scale: int) -> Callable[[Any], Any]:
    """Decimals as large_string text with the exact scale (nulls stay null)."""
    # Arrow's decimal cast writes scientific notation (0E-18) when the adjusted exponent is
    # below -6, which only a scale > 6 (or a negative one) allows: those values are redone.
    needs_fix = scale > 6 or scale < 0

    def convert(arr: Any) -> Any:
        text = _small_decimal_text(arr, scale)
        if text is not None:
            return text
        text = pc.cast(arr, LS)
        if needs_fix:
            scientific = pc.match_substring(text, "E").fill_null(False)
            if pc.any(scientific).as_py():
                rows = np.flatnonzero(scientific.to_numpy(zero_copy_only=False)).tolist()
                fixed = [format(Decimal(v), "f") for v in text.take(rows).to_pylist()]
                text = _replace_at(text, rows, fixed)
        return text

    return convert


def _small_decimal_text(arr: Any, scale: int) -> Any | None:
    """Decimal128 text through int64 (2-3x faster than Arrow's decimal cast), or None.

    Applies when every unscaled value fits int64 and has more digits than the scale
    (|u| >= 10**scale, so the point goes between digits), with 1 <= scale <= 18: the
    int64's digits with a point inserted are then exactly the decimal cast's text.
    """
    if not 1 <= scale <= 18 or arr.type.byte_width != 16 or len(arr) == 0:
        return None
    words = np.frombuffer(arr.buffers()[1], np.int64, 2 * len(arr), 16 * arr.offset).reshape(-1, 2)
    low = words[:, 0]
    ok = (words[:, 1] == (low >> 63)) & ((low >= 10**scale) | (low <= -(10**scale)))
    if arr.null_count:
        valid = arr.is_valid().to_numpy(zero_copy_only=False)
        if not (ok | ~valid).all():
            return None
        ints = pa.array(low, pa.int64(), mask=~valid)
    else:
        if not ok.all():
            return None
        ints = pa.array(low, pa.int64())
    return pc.binary_replace_slice(pc.cast(ints, LS), start=-scale, stop=-scale, replacement=".")


def _decimal_text_encoder(scale: int) -> TextEncoder:
    to_text = _decimal_text_converter(scale)

    def encode(arr: Any) -> tuple[Any, Layout]:
        return _quoted_or_null(to_text(arr), bool(arr.null_count))

    return encode


def _checked_string(arr: Any) -> tuple[Any, list[int]]:
    """The column as string or large_string (as it came: no copy of its offsets) and its
    rows whose values JSON escapes (control characters, quote, backslash); raises
    UnicodeDecodeError unless it is UTF-8."""
    if not (pa.types.is_large_string(arr.type) or pa.types.is_string(arr.type)):
        arr = pc.cast(arr, LS)  # string_view: no offsets buffer to read
    data_buffer = arr.buffers()[2]
    offsets = string_offsets(arr)
    first, end = int(offsets[0]), int(offsets[-1])
    if data_buffer is None or end <= first:
        return arr, []
    data = np.frombuffer(data_buffer, np.uint8, end - first, first)
    # Two cheap reductions settle the common case, ASCII text with nothing to escape:
    # Arrow's full UTF-8 validation and the escape scan each cost several times more.
    if data.max() >= 0x80:
        _validate_utf8(arr)
    elif data.min() >= 0x20 and not (data == 0x22).any() and not (data == 0x5C).any():
        return arr, []
    special = np.flatnonzero((data < 0x20) | (data == 0x22) | (data == 0x5C))
    if not special.size:
        return arr, []
    rows = np.unique(np.searchsorted(offsets, special + first, side="right") - 1)
    return arr, rows.tolist()  # type: ignore[no-any-return]


def string_offsets(arr: Any) -> Any:
    """The value offsets of a string or large_string array (a view of its buffer: int32 or int64)."""
    width = np.int64 if pa.types.is_large_string(arr.type) or pa.types.is_large_binary(arr.type) else np.int32
    return np.frombuffer(arr.buffers()[1], width, len(arr) + 1, arr.offset * np.dtype(width).itemsize)


def _validate_utf8(arr: Any) -> None:
    try:
        arr.validate(full=True)  # the bytes go to the client as they are: they must be UTF-8
    except pa.ArrowInvalid:
        arr.to_pylist()  # raises UnicodeDecodeError, as the reference does
        raise


def _text_string(arr: Any) -> tuple[Any, Layout]:
    arr, rows = _checked_string(arr)
    if not rows and not arr.null_count:
        return arr, QUOTED  # string or large_string: the join reads either
    if arr.type != LS:
        arr = pc.cast(arr, LS)  # the null and escape replacements below are large_string
    if not rows:
        return _quoted_or_null(arr, bool(arr.null_count))
    values = arr.take(rows).to_pylist()
    fixed = [(row, orjson.dumps(v).decode()) for row, v in zip(rows, values, strict=True) if v is not None]
    text = pc.binary_join_element_wise(_QUOTE, arr, _QUOTE, _EMPTY)
    if fixed:
        text = _replace_at(text, [row for row, _ in fixed], [v for _, v in fixed])
    return (text.fill_null(_NULL) if arr.null_count else text), BARE


def _comma_free_encoder(convert: Converter) -> TextEncoder:
    """orjson writes the whole column at once; its values are split at the commas."""

    def encode(arr: Any) -> tuple[Any, Layout]:
        values = convert(arr)
        if not values:
            return pa.array([], LS), BARE
        text = orjson.dumps(values)[1:-1]
        return pc.split_pattern(pa.array([text], LS), ",").flatten(), BARE

    return encode


def _numpy_encoder(fallback: TextEncoder, end: bytes | None) -> TextEncoder:
    """Numbers without nulls as orjson writes a numpy array: no Python object per value.

    orjson's text of an int, bool or float64 array is exactly that of the list of the
    same Python values (checked by tests/test_json_text.py). Each value keeps what
    follows it where it is placed (``end``: the comma, or a row's closing bracket), which
    saves the join a piece; with no ``end``, orjson's text is the column's (JOINED).
    Nulls and NaN or the infinities (strings in this mapping) go to ``fallback``.
    """

    def encode(arr: Any) -> tuple[Any, Layout]:
        if arr.null_count or not len(arr):
            return fallback(arr)
        values = arr.to_numpy(zero_copy_only=False)  # zero-copy but for booleans (bit-packed)
        if values.dtype.kind == "f" and not np.isfinite(values).all():
            return fallback(arr)
        if end is None:
            return NumberText.of(values), JOINED
        text = orjson.dumps(values, option=orjson.OPT_SERIALIZE_NUMPY)
        terminated = _terminated_values(text, len(arr), end)
        return fallback(arr) if terminated is None else terminated

    return encode


class NumberText:
    """A number column's values as orjson writes them, joined by commas, kept as the
    segments of :attr:`SEGMENT` values that orjson wrote (no copy to join them; a page's
    join copies them once). Where each segment starts is known, so a page cut from inside
    the column finds its ends by scanning one segment for commas, not the whole text."""

    SEGMENT: Final = 1024

    __slots__ = ("count", "parts", "starts")

    def __init__(self, parts: list[memoryview], count: int) -> None:
        self.parts = parts
        self.count = count
        starts = [0]
        for part in parts:
            starts.append(starts[-1] + len(part) + 1)
        self.starts = starts  # where segment k starts in the joined text; last: its end plus a comma

    @classmethod
    def of(cls, values: Any) -> NumberText:
        """The text of a numpy array of numbers (no NaN, no infinity)."""
        dumps, option, step = orjson.dumps, orjson.OPT_SERIALIZE_NUMPY, cls.SEGMENT
        return cls([memoryview(dumps(values[i : i + step], option=option))[1:-1]
                    for i in range(0, len(values), step)], len(values))

    def start(self, index: int) -> int:
        """Where value ``index`` starts in the joined text; ``index`` = count: its end plus one."""
        if index >= self.count:
            return self.starts[-1]
        segment, within = divmod(index, self.SEGMENT)
        if not within:
            return self.starts[segment]
        commas = np.flatnonzero(np.frombuffer(self.parts[segment], np.uint8) == 0x2C)
        return self.starts[segment] + int(commas[within - 1]) + 1

    def offsets(self) -> Any:
        """Where every value starts, and the end plus one (for a page's byte budget)."""
        found = [np.flatnonzero(np.frombuffer(part, np.uint8) == 0x2C) + (start + 1)
                 for part, start in zip(self.parts, self.starts, strict=False)]
        return _merged_starts(self.starts, found)

    def pieces(self, start: int, stop: int) -> list[Any]:
        """Values ``start``..``stop`` joined by commas, as buffers to concatenate."""
        if start >= stop:
            return []
        begin, end = self.start(start), self.start(stop) - 1
        out: list[Any] = []
        for segment in range(start // self.SEGMENT, (stop - 1) // self.SEGMENT + 1):
            base = self.starts[segment]
            part = self.parts[segment]
            if out:
                out.append(b",")
            out.append(part[max(begin - base, 0) : min(end - base, len(part))])
        return out


def _merged_starts(starts: list[int], commas: list[Any]) -> Any:
    """Every value's start: each segment's start, then the position after each of its commas."""
    pieces: list[Any] = []
    for start, found in zip(starts, commas, strict=False):
        pieces.append(np.asarray([start], np.int64))
        pieces.append(found)
    pieces.append(np.asarray(starts[-1:], np.int64))
    return np.concatenate(pieces).astype(np.int64, copy=False)


def _terminated_values(text: bytes, count: int, end: bytes) -> tuple[Any, Layout] | None:
    """orjson's ``[v,v,...,v]`` of ``count`` numbers as a large_string array of
    ``v`` + ``end`` values (``end``: a comma or a closing bracket)."""
    data = bytearray(text if end == b"," else text.replace(b",", end))
    data[-1] = end[0]  # orjson's closing bracket becomes the last value's end
    ends = np.flatnonzero(np.frombuffer(data, np.uint8) == end[0])
    if ends.size != count:  # cannot happen (numbers hold no comma or bracket): be safe anyway
        return None
    offsets = np.empty(count + 1, np.int64)
    offsets[0] = 1
    offsets[1:] = ends + 1
    layout = TERMINATED if end == b"," else CLOSED
    return pa.LargeStringArray.from_buffers(count, pa.py_buffer(offsets), pa.py_buffer(data)), layout


def _per_value_encoder(convert: Converter) -> TextEncoder:
    def encode(arr: Any) -> tuple[Any, Layout]:
        dumps = orjson.dumps
        return pa.array([dumps(v) for v in convert(arr)], pa.large_binary()).view(LS), BARE

    return encode
