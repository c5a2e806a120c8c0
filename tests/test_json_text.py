"""The gateway's streaming JSON text is byte for byte the reference mapping's JSON.

``protocol.arrow_json.batch_to_json`` (Arrow kernels, orjson over numpy) writes the pages
of every JSON result with more than a few rows; ``batch_to_rows`` + ``orjson.dumps`` is
the mapping tests/test_type_mapping.py checks against real Spark results. The randomized
batches of bench/check_json_text.py cover every way the text is made (the row join by
``take``, numbers without nulls written from numpy with their comma or closing bracket,
small batches row by row) and slices.
"""

from __future__ import annotations

import pyarrow as pa

from bench import check_json_text


def test_randomized_batches_match_the_reference_mapping() -> None:
    """bench/check_json_text.py's randomized batches all match the reference mapping byte for byte."""
    before = check_json_text.checked["batches"]
    assert check_json_text.main() == 0
    assert check_json_text.checked["batches"] - before > 900


def test_numbers_without_nulls_before_the_last_column() -> None:
    """The numpy path: values keep their comma, and the row join adds no separator after them."""
    batch = pa.record_batch([pa.array([1, -2, 2**63 - 1] * 20), pa.array([0.5, 3.0, -0.0] * 20),
                             pa.array([True, False, True] * 20), pa.array(["a", "b,c", "d"] * 20)],
                            names=["i", "x", "b", "s"])
    check_json_text.check(batch)
    text = bytes(check_json_text.arrow_json.batch_to_json(batch).text())
    assert text.startswith(b'[1,0.5,true,"a"],[-2,3.0,false,"b,c"],[9223372036854775807,-0.0,true,"d"],')


def test_numbers_without_nulls_in_the_last_column() -> None:
    """The numpy path for the last column: values keep the row's closing bracket."""
    batch = pa.record_batch([pa.array(["a", "b"] * 20), pa.array([1, -2] * 20), pa.array([0.25, 1e300] * 20)],
                            names=["s", "i", "x"])
    check_json_text.check(batch)
    text = bytes(check_json_text.arrow_json.batch_to_json(batch).text())
    assert text.startswith(b'["a",1,0.25],["b",-2,1e+300],["a",1,0.25],')
    assert text.endswith(b'["b",-2,1e+300]')


def test_take_plans_stay_within_their_memory_budget() -> None:
    """Batches of many sizes (byte-limited Arrow batches vary) do not pile up take plans."""
    arrow_json = check_json_text.arrow_json
    for count in range(50_000, 60_000, 97):
        batch = pa.record_batch([pa.array(range(count)), pa.array(["x"] * count)], names=["i", "s"])
        assert arrow_json.batch_to_json(batch).text()[:8] == b'[0,"x"],'
    held = sum(indices.nbytes for _, indices, _ in arrow_json._PLANS.values())
    assert 0 < held <= arrow_json._PLANS_BUDGET


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
        text = bytes(check_json_text.arrow_json.batch_to_json(part).text())
        assert text.startswith(b"[%d," % start)


def test_a_page_stops_before_its_json_text_passes_the_byte_limit() -> None:
    """RowQueue.within_bytes: the most leading rows (across chunks) whose JSON text, commas
    included, fits the limit; never fewer than one row, never more than asked."""
    from spark_gateway.cursor import RowQueue
    from spark_gateway_protocol.arrow_json import batch_to_json

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
