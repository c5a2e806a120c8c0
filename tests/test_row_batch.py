"""The Python client's JSON pages in the columns layout (``RowBatch``), and its file writers fed by them.

Fast tier: no gateway. The pages here are decoded the way the client's reader decodes a
frame; tests/test_python_client.py and tests/test_cli.py drive the same code through the
real gateway.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from spark_gateway_client import RowBatch, cli
from spark_gateway_client.batch import page_batch
from spark_gateway_client.errors import GatewayConnectionError
from spark_gateway_protocol import decode_event
from spark_gateway_protocol.messages import Rows

COLUMNS_PAGE = ('{"type":"rows","seq":9,"id":"q","result":0,"offset":0,"count":3,'
                '"columns":[[1,2,null],["a","b,c",null],[[1],{"k":"v"},"NaN"]],"last":true,"truncated":false}')
ROWS = [[1, "a", [1]], [2, "b,c", {"k": "v"}], [None, None, "NaN"]]


def test_a_column_page_is_a_sequence_of_its_rows() -> None:
    """len, indexing, slicing and iteration give the rows (lists) that the columns hold; columns stay as they came."""
    count, batch = page_batch(decode_event(COLUMNS_PAGE)[0])
    assert count == 3 and isinstance(batch, RowBatch)
    assert len(batch) == 3 and batch.columns[1] == ["a", "b,c", None]
    assert list(batch) == ROWS and batch.rows() == ROWS
    assert batch[0] == [1, "a", [1]] and batch[-1] == [None, None, "NaN"] and batch[1:] == ROWS[1:]
    assert batch == ROWS and batch != ROWS[:2]
    with pytest.raises(IndexError):
        batch[3]


def test_a_row_page_stays_a_list_and_a_bad_column_page_is_refused() -> None:
    """A page in the rows layout is passed on as it came; columns of the wrong length are a protocol violation."""
    assert page_batch(Rows("q", 0, 0, ROWS, True)) == (3, ROWS)
    with pytest.raises(GatewayConnectionError, match="count of 3"):
        page_batch(Rows("q", 0, 0, None, True, columns=[[1, 2]], count=3))
    assert list(RowBatch([], 2)) == [[], []]


class _Stream:
    """Stands in for a ResultStream: the column names and the pages, as the client yields them."""

    def __init__(self, names: list[str], pages: list[str]) -> None:
        self.names = names
        self._pages = pages

    async def batches(self) -> AsyncIterator[Any]:
        for page in self._pages:
            yield page_batch(decode_event(page)[0])[1]


async def test_csv_and_jsonl_from_column_pages_equal_those_from_row_pages() -> None:
    """write_csv and write_jsonl write the same file from a columns page as from the same rows in the rows layout."""
    rows_page = orjson.dumps({"type": "rows", "seq": 1, "id": "q", "result": 0, "offset": 0, "rows": ROWS,
                              "last": True}).decode()
    files = []
    for page in (COLUMNS_PAGE, rows_page):
        text, data = io.StringIO(), io.BytesIO()
        assert await cli.write_csv(_Stream(["n", "s", "v"], [page]), text) == 3  # type: ignore[arg-type]
        assert await cli.write_jsonl(_Stream(["n", "s", "v"], [page]), data) == 3  # type: ignore[arg-type]
        files.append((text.getvalue(), data.getvalue()))
    assert files[0] == files[1]
    assert files[0][0] == 'n,s,v\r\n1,a,[1]\r\n2,"b,c","{""k"":""v""}"\r\n,,NaN\r\n'
    assert files[0][1].splitlines()[2] == b'{"n":null,"s":null,"v":"NaN"}'
