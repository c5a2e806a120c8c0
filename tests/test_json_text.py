"""The gateway's streaming JSON text is byte for byte the reference mapping's JSON, in both page layouts.

``spark_gateway.json_pages.batch_to_json`` (Arrow kernels, orjson over numpy) writes the
pages of every JSON result with more than a few rows; ``batch_to_rows`` /
``batch_to_columns`` + ``orjson.dumps`` is the mapping tests/test_type_mapping.py checks
against real Spark results. The randomized batches of bench/check_json_text.py cover every
way the text is made (the join by ``take``, numbers without nulls written from numpy with
their comma or closing bracket, small batches value by value) and slices, in the ``rows``
and the ``columns`` layout, and that both layouts carry the same values.
"""

from __future__ import annotations

import orjson
import pyarrow as pa

from bench import check_json_text
from spark_gateway import json_pages
from spark_gateway.cursor import RowQueue
from spark_gateway.json_pages import batch_to_json, columns_value, rows_value


def test_randomized_batches_match_the_reference_mapping() -> None:
    """Hundreds of random batches of every mapped type: both layouts are the reference's text."""
    before = check_json_text.checked["batches"]
    assert check_json_text.main() == 0
    assert check_json_text.checked["batches"] - before > 900


def test_numbers_without_nulls_before_the_last_column() -> None:
    """The numpy path: values keep their comma, and the row join adds no separator after them."""
    batch = pa.record_batch([pa.array([1, -2, 2**63 - 1] * 20), pa.array([0.5, 3.0, -0.0] * 20),
                             pa.array([True, False, True] * 20), pa.array(["a", "b,c", "d"] * 20)],
                            names=["i", "x", "b", "s"])
    check_json_text.check(batch)
    text = bytes(batch_to_json(batch).text())
    assert text.startswith(b'[1,0.5,true,"a"],[-2,3.0,false,"b,c"],[9223372036854775807,-0.0,true,"d"],')


def test_numbers_without_nulls_in_the_last_column() -> None:
    """The numpy path for the last column: values keep the row's closing bracket."""
    batch = pa.record_batch([pa.array(["a", "b"] * 20), pa.array([1, -2] * 20), pa.array([0.25, 1e300] * 20)],
                            names=["s", "i", "x"])
    check_json_text.check(batch)
    text = bytes(batch_to_json(batch).text())
    assert text.startswith(b'["a",1,0.25],["b",-2,1e+300],["a",1,0.25],')
    assert text.endswith(b'["b",-2,1e+300]')


def test_take_plans_stay_within_their_memory_budget() -> None:
    """Batches of many sizes (byte-limited Arrow batches vary) do not pile up take plans."""
    for count in range(50_000, 60_000, 97):
        batch = pa.record_batch([pa.array(range(count)), pa.array(["x"] * count)], names=["i", "s"])
        assert batch_to_json(batch).text()[:8] == b'[0,"x"],'
    held = sum(indices.nbytes for _, indices, _ in json_pages._PLANS.values())
    assert 0 < held <= json_pages._PLANS_BUDGET


def test_sliced_batches() -> None:
    """A batch that is a slice of another (its arrays start at an offset) writes only its rows."""
    count = 300
    batch = pa.record_batch([pa.array(range(count)), pa.array([i * 0.5 for i in range(count)]),
                             pa.array([None if i % 7 == 0 else f"s{i}" for i in range(count)]),
                             pa.array([None if i % 5 == 0 else i for i in range(count)])],
                            names=["i", "x", "s", "n"])
    for start, length in [(0, 100), (37, 100), (250, 50), (299, 1)]:
        part = batch.slice(start, length)
        check_json_text.check(part)
        text = bytes(batch_to_json(part).text())
        assert text.startswith(b"[%d," % start)


def test_a_page_stops_before_its_json_text_passes_the_byte_limit() -> None:
    """RowQueue.within_bytes: the most leading rows (across chunks) whose JSON text, commas
    included, fits the limit; never fewer than one row, never more than asked."""
    sizes = [5, 300, 40, 1, 2000, 7, 7, 7]
    first = batch_to_json(pa.record_batch({"s": ["x" * n for n in sizes[:5]]}))
    second = batch_to_json(pa.record_batch({"s": ["x" * n for n in sizes[5:]]}))
    texts = [b'["' + b"x" * n + b'"]' for n in sizes]
    queue = RowQueue()
    queue.append(first)
    queue.append(second)

    def best(count: int, nbytes: int) -> int:
        fit = max(k for k in range(count + 1) if len(b",".join(texts[:k])) <= nbytes)
        return max(1, fit)

    for nbytes in (1, 8, 9, 320, 321, 400, 2400, 2440, 10_000):
        for count in (1, 3, 5, 8):
            assert queue.within_bytes(count, nbytes) == best(count, nbytes), (count, nbytes)
    queue.take(2)  # from the middle of the first chunk on
    texts = texts[2:]
    for nbytes in (1, 50, 2100, 10_000):
        assert queue.within_bytes(6, nbytes) == best(6, nbytes), nbytes


def test_column_pages_of_numbers_strings_and_nulls() -> None:
    """The columns layout: one array per column, numbers from numpy, strings quoted, nulls as null."""
    batch = pa.record_batch([pa.array([1, -2, 2**63 - 1] * 20), pa.array([0.5, 3.0, -0.0] * 20),
                             pa.array(["a", 'q"', None] * 20), pa.array([None, 1.5, float("nan")] * 20)],
                            names=["i", "x", "s", "n"])
    check_json_text.check(batch)
    chunk = batch_to_json(batch, "columns")
    text = orjson.dumps(columns_value([chunk.slice(0, 3)], 4))
    assert text == b'[[1,-2,9223372036854775807],[0.5,3.0,-0.0],["a","q\\"",null],[null,1.5,"NaN"]]'
    assert orjson.dumps(columns_value([], 4)) == b"[[],[],[],[]]"


def test_column_pages_join_pieces_of_several_batches() -> None:
    """A page cut across batch boundaries holds, per column, the pieces' values in order."""
    first = batch_to_json(pa.record_batch({"i": list(range(100)), "s": [f"r{i}" for i in range(100)]}), "columns")
    second = batch_to_json(pa.record_batch({"i": [100, 101], "s": ["r100", None]}), "columns")
    value = columns_value([first.slice(98, 100), second], 2)
    assert len(value) == 2
    assert orjson.loads(orjson.dumps(value)) == [[98, 99, 100, 101], ["r98", "r99", "r100", None]]
    rows = rows_value([batch_to_json(pa.record_batch({"i": [1], "s": ["x"]}))])
    assert orjson.dumps(rows) == b'[[1,"x"]]' and len(rows) == 1


def test_column_pages_cut_anywhere_in_segmented_number_columns() -> None:
    """Number columns are written in segments: any slice (across segment ends, empty, whole)
    has the reference values, its size counts its text and a comma per value, and a byte
    budget cuts it where the values' text stops fitting."""
    import itertools
    import random

    from spark_gateway.json_text import NumberText

    rng = random.Random(7)
    count = 3 * NumberText.SEGMENT + 17
    ints = [rng.randrange(-(10**rng.randrange(1, 19)), 10**rng.randrange(1, 19)) for _ in range(count)]
    doubles = [rng.uniform(-1e6, 1e6) * rng.choice([1, 1e-9, 1e12]) for _ in range(count)]
    chunk = batch_to_json(pa.record_batch({"i": ints, "x": doubles}), "columns")
    for start, stop in [(0, count), (0, 0), (5, 5), (0, 1), (1023, 1025), (1024, 2048), (1000, 3100),
                        (count - 1, count), *((a, a + rng.randrange(0, 2500)) for a in rng.sample(range(count), 25))]:
        piece = chunk.slice(start, stop)
        stop = min(stop, count)
        value = orjson.loads(orjson.dumps(columns_value([piece], 2)))
        assert value == ([ints[start:stop], doubles[start:stop]] if stop > start else [[], []])
        for column, expected in zip(piece.columns, (ints, doubles), strict=True):
            # sizes[k]: the first k values' text with a comma after each
            sizes = [0, *itertools.accumulate(len(orjson.dumps(v)) + 1 for v in expected[start:stop])]
            assert column.size() == sizes[-1]
            assert list(column.sizes()) == sizes
            budget = sizes[-1] // 2
            fits = column.rows_within(budget)
            assert sizes[fits] <= budget + 1 and (fits == stop - start or sizes[fits + 1] > budget + 1)


def test_a_column_page_stops_before_its_json_text_passes_the_byte_limit() -> None:
    """RowQueue.within_bytes on column chunks: the most leading rows whose values' text, over all
    columns and commas between values included, fits the limit; at least one row."""
    sizes = [5, 300, 40, 1, 2000, 7, 7, 7]
    ids = list(range(len(sizes)))
    chunks = [batch_to_json(pa.record_batch({"i": ids[a:b], "s": ["x" * n for n in sizes[a:b]]}), "columns")
              for a, b in ((0, 5), (5, 8))]
    queue = RowQueue()
    for chunk in chunks:
        queue.append(chunk)

    def page_text(k: int) -> int:  # the two columns' values joined by commas, brackets left to the envelope
        return len(b",".join(b"%d" % i for i in ids[:k])) + len(b",".join(b'"' + b"x" * n + b'"' for n in sizes[:k]))

    def best(count: int, nbytes: int) -> int:
        return max(1, max(k for k in range(count + 1) if page_text(k) <= nbytes))

    for nbytes in (1, 8, 12, 320, 330, 400, 2400, 2460, 10_000):
        for count in (1, 3, 5, 8):
            assert queue.within_bytes(count, nbytes) == best(count, nbytes), (count, nbytes)


def test_string_columns_of_every_string_type_cut_anywhere() -> None:
    """Strings with nothing to escape are joined as Arrow holds them (string: 32-bit offsets,
    large_string, string_view cast first), their outer quotes added by the page's join:
    any slice, of a batch or of an array that starts at an offset, has the reference
    values, its size counts its text and a comma per value, and a byte budget cuts it
    where the values' text stops fitting."""
    import itertools
    import random

    from spark_gateway.json_pages import QuotedText

    rng = random.Random(11)
    values = [rng.choice(["", "a", "row-12345", "é中文🎉", "x" * rng.randrange(50), "a,b", "[1]"]) for _ in range(700)]
    for arrow_type in (pa.string(), pa.large_string(), pa.string_view()):
        for offset in (0, 3):
            strings = pa.array(["skip"] * offset + values, arrow_type).slice(offset)
            chunk = batch_to_json(pa.record_batch({"s": strings}), "columns")
            column = chunk.columns[0]
            assert isinstance(column, QuotedText), arrow_type
            assert orjson.loads(orjson.dumps(columns_value([chunk], 1))) == [values]
            for start, stop in [(0, 700), (0, 0), (0, 1), (699, 700), (5, 5),
                                *((a, a + rng.randrange(0, 300)) for a in rng.sample(range(700), 20))]:
                piece = column.slice(start, stop)
                stop = min(stop, 700)
                assert piece.values() == values[start:stop]
                sizes = [0, *itertools.accumulate(len(orjson.dumps(v)) + 1 for v in values[start:stop])]
                assert piece.size() == sizes[-1]
                assert list(piece.sizes()) == sizes
                assert len(piece.text()) == max(sizes[-1] - 1, 0)
                budget = sizes[-1] // 2
                fits = piece.rows_within(budget)
                assert sizes[fits] <= budget + 1 and (fits == stop - start or sizes[fits + 1] > budget + 1)
            pages = [chunk.slice(0, 250), chunk.slice(250, 251), chunk.slice(251, 700)]
            assert orjson.loads(orjson.dumps(columns_value(pages, 1))) == [values]
