"""Checks that the gateway's JSON text is exactly the reference mapping's JSON, in both layouts.

``spark_gateway.json_pages.batch_to_json`` (Arrow kernels, used by the gateway to stream
JSON pages) must give, byte for byte, ``orjson.dumps(batch_to_rows(batch))`` in the
``rows`` layout and ``orjson.dumps(batch_to_columns(batch))`` in the ``columns`` layout
(the reference mapping, ``spark_gateway_protocol.arrow_json``, that
tests/test_type_mapping.py checks); and both layouts must carry the same values. Two
ways to run it:

    .venv/bin/python bench/check_json_text.py                 # randomized batches of every mapped type
    .venv/bin/python -m pytest -p bench.check_json_text tests/test_type_mapping.py
        # every batch the type-mapping tests convert (hand-made and real Spark results)
        # is also converted by batch_to_json, its slices too, and compared
"""

from __future__ import annotations

import datetime as dt
import decimal
import random
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402
import pyarrow as pa  # noqa: E402

from spark_gateway import json_pages  # noqa: E402
from spark_gateway_protocol import arrow_json  # noqa: E402

checked = {"batches": 0}


def check(batch: Any) -> None:
    """Raise AssertionError unless the gateway's JSON text of ``batch`` is the reference's, in
    both layouts (whole, in pieces, and of a slice), and both layouts carry the same values.

    Both ways batch_to_json has: the Arrow kernels, and value by value for small batches.
    """
    small = json_pages._SMALL_BATCH
    try:
        json_pages._SMALL_BATCH = 0  # the Arrow kernels whatever the size
        _check(batch)
    finally:
        json_pages._SMALL_BATCH = small
    _check(batch)
    checked["batches"] += 1


def _check(batch: Any) -> None:
    try:
        rows = _reference(batch)
    except Exception as exc:  # noqa: BLE001 - the JSON path must fail the same way, in both layouts
        for layout in ("rows", "columns"):
            try:
                json_pages.batch_to_json(batch, layout)
            except type(exc):
                continue
            raise AssertionError(f"batch_to_rows raised {exc!r}, batch_to_json ({layout}) did not") from None
        return
    columns = arrow_json.batch_to_columns(batch)
    width = batch.num_columns
    assert [list(row) for row in zip(*columns, strict=True)] == [list(row) for row in rows] or not width
    _check_layout(batch, json_pages.rows_value, "rows", rows)
    _check_layout(batch, lambda pieces: json_pages.columns_value(pieces, width), "columns", columns)


def _check_layout(batch: Any, page: Any, layout: str, reference: Any) -> None:
    """The page text of the whole batch, of pieces of it, and of a slice of it, against ``reference``."""
    expected = orjson.dumps(reference)
    got = json_pages.batch_to_json(batch, layout)  # type: ignore[arg-type]
    assert len(got) == batch.num_rows
    text = orjson.dumps(page([got]))
    assert text == expected, f"\n{layout} reference: {expected[:600]!r}\ngateway: {text[:600]!r}"
    n = batch.num_rows
    if n >= 3:
        cuts = sorted({0, 1, n // 2, n - 1, n})
        pieces = [got.slice(a, b) for a, b in zip(cuts, cuts[1:], strict=False)]
        assert orjson.dumps(page(pieces)) == expected, layout
        assert orjson.dumps(page([got.slice(1, n - 1)])) == orjson.dumps(_cut(reference, layout, 1, n - 1)), layout
        sliced = batch.slice(1, n - 2)
        again = _reference(sliced) if layout == "rows" else arrow_json.batch_to_columns(sliced)
        assert orjson.dumps(page([json_pages.batch_to_json(sliced, layout)])) == orjson.dumps(again), layout  # type: ignore[arg-type]


def _cut(reference: Any, layout: str, start: int, stop: int) -> Any:
    return reference[start:stop] if layout == "rows" else [column[start:stop] for column in reference]


_original = arrow_json.batch_to_rows


def _reference(batch: Any) -> Any:
    return _original(batch)


def _checking_batch_to_rows(batch: Any) -> Any:
    check(batch)
    return _original(batch)


# As a pytest plugin (-p bench.check_json_text): every batch_to_rows call in the tests checks too.
def pytest_configure(config: Any) -> None:
    arrow_json.batch_to_rows = _checking_batch_to_rows


def pytest_terminal_summary(terminalreporter: Any) -> None:
    terminalreporter.write_line(f"check_json_text: {checked['batches']} batches identical on both paths")


# ---------------------------------------------------------------- randomized batches

_TEXT = ["", "a", "row-1", 'quote"d', "back\\slash", "tab\tnew\nline\r", "\x00\x01\x1f\x7f", "é中文🎉",
         "\u2028\u2029", ",", "[1,2]", '{"a":1}', "null", " spaced ", "x" * 300]


def _values(kind: str, n: int, rng: random.Random, nulls: bool = True) -> list[Any]:
    def maybe(v: Any) -> Any:
        return None if nulls and rng.random() < 0.2 else v

    if kind == "int":
        return [maybe(rng.choice([0, -1, 2**63 - 1, -(2**63), rng.randrange(-10**12, 10**12)])) for _ in range(n)]
    if kind == "str":
        return [maybe(rng.choice(_TEXT) + rng.choice(_TEXT)) for _ in range(n)]
    if kind == "finite":  # every finite double form: integral, tiny, huge, subnormal, negative zero
        return [maybe(rng.choice([0.0, -0.0, 1.0, 3.0, 0.1, 1e15, 1e16, 1e-5, 1e-7, 5e-324, 1.7976931348623157e308,
                                  rng.uniform(-1e6, 1e6), rng.randrange(-10**7, 10**7) * 1.5,
                                  rng.uniform(-1, 1) * 10.0 ** rng.randrange(-300, 300)])) for _ in range(n)]
    if kind == "double":
        return [maybe(rng.choice([0.0, -0.0, 1.0, 0.1, 1e16, 1e-7, 5e-324, float("nan"), float("inf"),
                                  -float("inf"), rng.uniform(-1e6, 1e6)])) for _ in range(n)]
    if kind == "bool":
        return [maybe(rng.random() < 0.5) for _ in range(n)]
    if kind.startswith("dec"):
        scale = int(kind[3:])
        return [maybe(decimal.Decimal(rng.randrange(-10**8, 10**8)).scaleb(-scale)) for _ in range(n)]
    if kind == "ts":
        return [maybe(dt.datetime(2000, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=rng.randrange(10**15)))
                for _ in range(n)]
    if kind == "date":
        return [maybe(dt.date(1, 1, 1) + dt.timedelta(days=rng.randrange(3_000_000))) for _ in range(n)]
    if kind == "bin":
        return [maybe(rng.randbytes(rng.randrange(6))) for _ in range(n)]
    if kind == "list":
        return [maybe([rng.choice(_TEXT), None]) for _ in range(n)]
    if kind == "struct":
        return [maybe({"a": rng.randrange(10), "b": rng.choice(_TEXT)}) for _ in range(n)]
    if kind == "map":
        return [maybe([(rng.choice(_TEXT), rng.randrange(5))]) for _ in range(n)]
    raise ValueError(kind)


_TYPES = {
    "int": pa.int64(), "finite": pa.float64(), "str": pa.string(), "double": pa.float64(), "bool": pa.bool_(),
    "dec1": pa.decimal128(23, 1), "dec10": pa.decimal128(38, 10), "dec0": pa.decimal128(10, 0),
    "ts": pa.timestamp("us", "UTC"), "date": pa.date32(), "bin": pa.binary(),
    "list": pa.list_(pa.string()), "struct": pa.struct([("a", pa.int32()), ("b", pa.string())]),
    "map": pa.map_(pa.string(), pa.int32()),
}


def main() -> int:
    rng = random.Random(1234)
    for _ in range(300):
        kinds = rng.sample(sorted(_TYPES), rng.randrange(1, 5))
        n = rng.choice([0, 1, 2, 3, 17, 1000])
        columns = [pa.array(_values(k, n, rng), _TYPES[k]) for k in kinds]
        batch = pa.record_batch(columns, names=[f"c{i}" for i in range(len(kinds))])
        check(batch)
        check(pa.record_batch([pa.array(["plain"] * n, pa.large_string()),
                               pa.array([i % 100 for i in range(n)], pa.int8())], names=["s", "i"]))
    for _ in range(100):  # flat schemas: integers, booleans, decimals, strings
        kinds = rng.sample(["int", "str", "bool", "dec1", "dec10", "dec0"], rng.randrange(1, 5))
        n = rng.choice([33, 100, 1000])
        check(pa.record_batch([pa.array(_values(k, n, rng), _TYPES[k]) for k in kinds],
                              names=[f"c{i}" for i in range(len(kinds))]))
        plain = [None if rng.random() < 0.1 else rng.choice(["", "a,b", "é中文🎉", "x y", "[1]", "{}", "'"])
                 for _ in range(n)]
        check(pa.record_batch([pa.array(plain, pa.string()), pa.array(_values("int", n, rng), pa.int64())],
                              names=["s", "i"]))
    for _ in range(100):  # numbers without nulls: written by orjson from numpy, each value with its comma or bracket
        kinds = rng.choices(["int", "finite", "bool", "str", "double"], k=rng.randrange(1, 5))
        n = rng.choice([33, 100, 1000])
        check(pa.record_batch([pa.array(_values(k, n, rng, nulls=k == "str"), _TYPES[k]) for k in kinds],
                              names=[f"c{i}" for i in range(len(kinds))]))
    for int_type in (pa.int8(), pa.int16(), pa.int32(), pa.uint8(), pa.uint16(), pa.uint32(), pa.uint64()):
        bits, signed = int_type.bit_width, pa.types.is_signed_integer(int_type)
        low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
        ints = pa.array([low, high, 0, *(rng.randrange(low, high + 1) for _ in range(40))], int_type)
        check(pa.record_batch([ints, pa.array(range(len(ints)), pa.int64())], names=["i", "j"]))
    check(pa.record_batch([pa.array([1.5, 2.0])], names=["x"]).select([]))  # no columns
    # Negative scale: Arrow's cast writes 1.2E+3.
    check(pa.record_batch([pa.array([decimal.Decimal("1.2E+3"), None], pa.decimal128(5, -2))], names=["d"]))
    # Invalid UTF-8 fails on both paths.
    check(pa.record_batch([pa.array([b"\xff"], pa.binary()).view(pa.string())], names=["bad"]))
    print(f"check_json_text: {checked['batches']} batches identical on both paths, in both layouts")
    return 0


if __name__ == "__main__":
    sys.exit(main())
