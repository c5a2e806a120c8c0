"""``RowBatch``: one JSON page as the gateway sent it, in columns, with its rows built on demand.

The client asks for the ``columns`` page layout (docs/protocol.md, ``rows``): parsing a
page then makes one list per column instead of one per row, several times cheaper for
the parser and the garbage collector. A ``RowBatch`` is a read-only sequence of rows
(lists, values as in docs/type-mapping.md) that keeps those columns; a row exists only
once it is indexed or iterated, so code that wants columns (``batch.columns``) or only
counts rows (``len(batch)``) never pays for rows.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, overload

from spark_gateway_protocol.messages import Rows

from .errors import GatewayConnectionError

Row = list[Any]


class RowBatch(Sequence[Row]):
    """The rows of one page: ``len()``, indexing and iteration give rows as lists;
    ``columns`` holds one list of values per column, in the result's column order."""

    __slots__ = ("columns", "num_rows")

    def __init__(self, columns: list[list[Any]], num_rows: int) -> None:
        self.columns = columns
        self.num_rows = num_rows

    def __len__(self) -> int:
        return self.num_rows

    @overload
    def __getitem__(self, index: int) -> Row: ...

    @overload
    def __getitem__(self, index: slice) -> list[Row]: ...

    def __getitem__(self, index: int | slice) -> Row | list[Row]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self.num_rows))]
        if index < 0:
            index += self.num_rows
        if not 0 <= index < self.num_rows:
            raise IndexError("row index out of range")
        return [column[index] for column in self.columns]

    def __iter__(self) -> Iterator[Row]:
        if not self.columns:
            return iter([[] for _ in range(self.num_rows)])
        return map(list, zip(*self.columns, strict=True))

    def rows(self) -> list[Row]:
        """Every row, as lists."""
        return list(self)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, RowBatch):
            return self.num_rows == other.num_rows and self.columns == other.columns
        if isinstance(other, Sequence) and not isinstance(other, (str, bytes)):
            return len(other) == self.num_rows and all(a == b for a, b in zip(self, other, strict=False))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<RowBatch of {self.num_rows} rows, {len(self.columns)} columns>"


def page_batch(page: Rows) -> tuple[int, RowBatch | list[Row]]:
    """One ``rows`` page's row count and rows: a ``RowBatch`` for a ``columns`` page, the rows
    list as the parser built it otherwise.

    This is the hot path of JSON results (pages of thousands of rows): no copy, nothing done
    per row (one length check per column).
    """
    if page.columns is not None:
        count = page.num_rows
        if any(len(column) != count for column in page.columns):
            raise GatewayConnectionError(f"protocol violation: the rows page at offset {page.offset} "
                                         f"has columns of other than its count of {count} values")
        return count, RowBatch(page.columns, count)
    rows: list[Row] = page.rows  # type: ignore[assignment]  # exactly one of rows/columns is set
    return len(rows), rows
