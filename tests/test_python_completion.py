"""Python completion over a live namespace with jedi, and a DataFrame's columns from its schema (no JVM)."""

from __future__ import annotations

from typing import Any

from spark_gateway.python_completion import complete, inspect
from spark_gateway_protocol.messages import CatalogEntry


class Frame:
    """Stands in for a DataFrame: methods, and columns only `columns_of` knows."""

    def groupBy(self, *cols: str) -> Frame:  # noqa: N802 - pyspark's name
        """Groups the rows by the given columns."""
        return self

    @property
    def boom(self) -> int:
        raise AssertionError("completion ran a property")


def columns_of(value: Any) -> list[CatalogEntry] | None:
    if not isinstance(value, Frame):
        return None
    return [CatalogEntry("amount", "column", "decimal(10,2)"), CatalogEntry("product", "column", "string"),
            CatalogEntry("order date", "column", "date")]


def namespace() -> dict[str, Any]:
    def total(values: list[int], start: int = 0) -> int:
        """Adds the values up."""
        return sum(values, start)

    return {"sales": Frame(), "answer": 42, "total": total, "__name__": "__main__"}


def test_names_from_earlier_cells_complete() -> None:
    """A variable bound by an earlier cell completes, with its type."""
    code = "ans"
    result = complete(namespace(), code, len(code), columns_of)
    item = next(i for i in result.items if i.label == "answer")
    assert (item.kind, item.detail) == ("variable", "int") and (result.start, result.end) == (0, 3)


def test_methods_and_columns_of_a_dataframe_complete_after_its_dot() -> None:
    """`sales.` offers the columns (typed, first) and the methods; no property runs."""
    code = "sales."
    items = complete(namespace(), code, len(code), columns_of).items
    assert [(i.label, i.detail) for i in items[:2]] == [("amount", "decimal(10,2)"), ("product", "string")]
    assert any(i.label == "groupBy" and i.kind == "function" for i in items)
    assert "order date" not in [i.label for i in items]  # not an attribute name
    typed = complete(namespace(), "sales.gro", 9, columns_of)
    assert [i.label for i in typed.items] == ["groupBy"] and typed.start == 6


def test_columns_complete_inside_a_subscript_string() -> None:
    """`sales["am` offers the column amount, replacing what is typed inside the quotes."""
    code = 'sales["am'
    result = complete(namespace(), code, len(code), columns_of)
    assert [(i.label, i.kind) for i in result.items] == [("amount", "column")]
    assert (result.start, result.end) == (7, 9)
    everything = complete(namespace(), "sales['", 7, columns_of)
    assert [i.label for i in everything.items] == ["amount", "product", "order date"]


def test_inspecting_a_function_and_a_dataframe() -> None:
    """inspect gives a function's signature and docstring, and a DataFrame's columns."""
    found = inspect(namespace(), "total([1])", 2, columns_of)
    assert found is not None and found.kind == "function"
    assert found.signature is not None and found.signature.startswith("total(values")
    assert found.doc == "Adds the values up." and (found.start, found.end) == (0, 5)
    frame = inspect(namespace(), "sales", 3, columns_of)
    assert frame is not None and frame.data_type == "DataFrame" and len(frame.columns) == 3
    assert inspect(namespace(), "  ", 1, columns_of) is None
