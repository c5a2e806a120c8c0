"""The grid's sort, filter and copy logic (js/rowview.js) and the chart's data (js/chartdata.js), run by node.

Fast tier: both are pure ES modules (no DOM); node loads them with the page's own values.js and
protocol.js and runs each case below; no browser, no gateway.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

JS = Path(__file__).resolve().parent.parent / "clients" / "web" / "js"

# Each case: kinds, columns (values as the wire decodes them: "big:" marks a BigInt), then what to do.
HARNESS = """
const R = await import(process.argv[1]);
const C = await import(process.argv[2]);
const decode = (v) => typeof v === "string" && v.startsWith("big:") ? BigInt(v.slice(4)) : v;
const out = (v) => typeof v === "bigint" ? "big:" + v : v;
const results = [];
for (const c of JSON.parse(process.argv[3])) {
  const cols = c.columns.map((col) => col.map(decode));
  const source = { kinds: c.kinds, size: cols[0].length, columns: c.kinds.map((_, i) => ({ name: "c" + i })),
                   value: (r, k) => cols[k][r] };
  if (c.chart) {
    const spec = c.chart.spec ?? C.chartDefaults(source.columns, c.kinds);
    const { points, skipped } = C.chartPoints(source, [...Array(source.size).keys()], spec);
    results.push({ spec, points: points.map((p) => [p.x instanceof Date ? p.x.toISOString() : p.x, p.y, p.series]),
                   skipped, pie: C.pieProblem(spec, points) });
    continue;
  }
  const view = new R.RowView(source);
  const errors = view.setFilters(c.global ?? "", c.filters ?? []);
  if (c.sort) view.setSort(c.sort[0], c.sort[1]);
  const rows = [...Array(view.length).keys()].map((p) => view.rowAt(p));
  results.push({ rows, values: rows.map((r) => out(source.value(r, c.sort ? c.sort[0] : 0))), errors,
                 tsv: R.tsvText(source, rows, c.kinds.map((_, i) => i)) });
}
console.log(JSON.stringify(results));
"""


def run(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    done = subprocess.run(
        [
            node,
            "--input-type=module",
            "-e",
            HARNESS,
            (JS / "rowview.js").as_uri(),
            (JS / "chartdata.js").as_uri(),
            json.dumps(cases),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return list(json.loads(done.stdout))


def sort(kind: str, values: list[Any], direction: str = "ascending") -> list[Any]:
    return run([{"kinds": [kind], "columns": [values], "sort": [0, direction]}])[0]["values"]  # type: ignore[no-any-return]


def test_decimals_sort_exactly_with_null_first() -> None:
    values = [
        "10.50",
        "-2.00",
        None,
        "9.99",
        "100.00",
        "-10.00",
        "0.00",
        "99999999999999999999.99",
        "99999999999999999999.98",
    ]
    assert sort("number", values) == [
        None,
        "-10.00",
        "-2.00",
        "0.00",
        "9.99",
        "10.50",
        "100.00",
        "99999999999999999999.98",
        "99999999999999999999.99",
    ]
    assert sort("number", values, "descending")[-1] is None


def test_integers_beyond_2_53_sort_exactly() -> None:
    assert sort("number", ["big:9007199254740993", 9007199254740992, 1, None, "big:-5"]) == [
        None,
        "big:-5",
        1,
        9007199254740992,
        "big:9007199254740993",
    ]


def test_doubles_put_nan_above_infinity() -> None:
    assert sort("float", [1.5, "NaN", "-Infinity", "Infinity", -3, None]) == [
        None,
        "-Infinity",
        -3,
        1.5,
        "Infinity",
        "NaN",
    ]


def test_dates_and_timestamps_sort_by_time_whatever_the_year_width() -> None:
    values = [
        "2024-01-05T10:00:00.000000Z",
        "-0001-01-01T00:00:00.000000Z",
        "+10000-01-01T00:00:00.000000Z",
        "2024-01-05T09:59:59.999999Z",
        None,
    ]
    assert sort("temporal", values) == [None, values[1], values[3], values[0], values[2]]


def test_ties_keep_the_loaded_order_both_ways() -> None:
    case = {"kinds": ["number", "text"], "columns": [[1, 2, 1, 2], ["a", "b", "c", "d"]]}
    up, down = run([{**case, "sort": [0, "ascending"]}, {**case, "sort": [0, "descending"]}])
    assert up["rows"] == [0, 2, 1, 3] and down["rows"] == [1, 3, 0, 2]


FILTER_CASES = [
    ("number", ["10.50", "-2.00", None, "9.99", "100.00"], ">9.99", [0, 4]),
    ("number", ["10.50", "-2.00", None, "9.99", "100.00"], ">=9.99", [0, 3, 4]),
    ("number", ["10.50", "-2.00", None, "9.99", "100.00"], "-2..10", [1, 3]),
    ("number", ["10.50", "-2.00", None, "9.99", "100.00"], "=10.5", [0]),
    ("number", ["10.50", "-2.00", None, "9.99", "100.00"], "!=10.5", [1, 3, 4]),
    ("number", ["10.50", "-2.00", None, "9.99", "100.00"], "null", [2]),
    ("number", ["10.50", "-2.00", None, "9.99", "100.00"], "!null", [0, 1, 3, 4]),
    ("number", ["10.50", "-2.00", None, "9.99", "100.00"], "10", [0, 4]),  # text contains
    ("number", ["big:9007199254740993", 9007199254740992], ">9007199254740992", [0]),
    ("float", [1.5, "NaN", "Infinity", -3.0], "<2", [0, 3]),
    ("temporal", ["2024-03-01", "2024-02-29", "2024-04-01", None], "=2024-03", [0]),
    ("temporal", ["2024-03-01", "2024-02-29", "2024-04-01", None], ">2024-03", [2]),
    ("temporal", ["2024-03-01", "2024-02-29", "2024-04-01", None], "<=2024-03", [0, 1]),
    ("temporal", ["2024-03-01T10:00:00.000000Z", "2024-03-02T00:00:00.000000Z"], "2024-03-01..2024-03-01", [0]),
    ("text", ["Laptop", "laptop bag", "Mouse", None], "LAPTOP", [0, 1]),
    ("text", ["Laptop", "laptop bag", "Mouse", None], "!laptop", [2]),
    ("text", ["Laptop", "laptop bag", "Mouse", None], "=Laptop", [0]),
    ("boolean", [True, False, None], "=true", [0]),
]


def test_column_filters() -> None:
    """Each (kind, values, filter text) shows the expected rows (one node run for all of them)."""
    got = run([{"kinds": [kind], "columns": [values], "filters": [text]} for kind, values, text, _ in FILTER_CASES])
    for (kind, _, text, expected), res in zip(FILTER_CASES, got, strict=True):
        assert res["rows"] == expected, (kind, text)


def test_a_filter_that_cannot_apply_is_reported_and_hides_nothing() -> None:
    [res] = run(
        [
            {
                "kinds": ["number", "temporal"],
                "columns": [[1, 2], ["2024-01-01", "2024-01-02"]],
                "filters": ["> lots", ">yesterday"],
            }
        ]
    )
    assert res["rows"] == [0, 1]
    assert res["errors"] == ['"lots" is not a number', '"yesterday" is not a date or time (YYYY-MM-DD[ HH:MM:SS])']


def test_the_global_filter_matches_any_column_as_shown() -> None:
    [res] = run(
        [
            {
                "kinds": ["text", "float", "nested"],
                "columns": [["a", "b", "c"], [3.0, 1.5, None], [[1, 2], {"k": "needle"}, None]],
                "global": "3.0",
            }
        ]
    )
    assert res["rows"] == [0]  # a double shows as Spark prints it: 3.0
    [res] = run([{"kinds": ["text", "nested"], "columns": [["a", "b"], [[1, 2], {"k": "Needle"}]], "global": "needle"}])
    assert res["rows"] == [1]


def test_copy_is_tab_separated_with_quoting_and_empty_null() -> None:
    [res] = run(
        [
            {
                "kinds": ["text", "number", "float"],
                "columns": [["a\tb", 'q"x', "line\nbreak"], [None, "big:9007199254740993", "1.50"], [3.0, "NaN", None]],
            }
        ]
    )
    assert res["tsv"] == ('c0\tc1\tc2\n"a\tb"\t\t3.0\n"q""x"\t9007199254740993\tNaN\n"line\nbreak"\t1.50\t\n')


def test_chart_defaults_follow_the_column_types() -> None:
    by_city, by_day, numbers, text_only = run(
        [
            {"kinds": ["text", "number", "number"], "columns": [["a", "b"], [1, 2], ["1.50", "2.50"]], "chart": {}},
            {
                "kinds": ["number", "temporal", "float"],
                "columns": [[1, 2], ["2024-01-02", "2024-01-01"], [1.0, 2.0]],
                "chart": {},
            },
            {"kinds": ["number", "float"], "columns": [[2, 1], [0.5, None]], "chart": {}},
            {"kinds": ["text"], "columns": [["a"]], "chart": {}},
        ]
    )
    assert by_city["spec"] == {"type": "bar", "x": 0, "ys": [1], "series": None}
    assert by_city["points"] == [["a", 1, None], ["b", 2, None]]
    assert by_day["spec"] == {"type": "line", "x": 1, "ys": [0], "series": None}
    # Lines run left to right in time, whatever the rows' order.
    assert by_day["points"] == [["2024-01-01T00:00:00.000Z", 2, None], ["2024-01-02T00:00:00.000Z", 1, None]]
    assert numbers["spec"]["type"] == "scatter" and numbers["skipped"] == 1
    assert text_only["spec"]["ys"] == []


def test_chart_series_and_pie_limits() -> None:
    two_ys, series, negative = run(
        [
            {
                "kinds": ["text", "number", "number"],
                "columns": [["a", "b"], [1, 2], ["3.5", None]],
                "chart": {"spec": {"type": "bar", "x": 0, "ys": [1, 2], "series": None}},
            },
            {
                "kinds": ["text", "text", "number"],
                "columns": [["a", "a"], ["s", None], [1, 2]],
                "chart": {"spec": {"type": "bar", "x": 0, "ys": [2], "series": 1}},
            },
            {
                "kinds": ["text", "number"],
                "columns": [["a", "b"], [1, -2]],
                "chart": {"spec": {"type": "pie", "x": 0, "ys": [1], "series": None}},
            },
        ]
    )
    assert two_ys["points"] == [["a", 1, "c1"], ["a", 3.5, "c2"], ["b", 2, "c1"]] and two_ys["skipped"] == 1
    assert two_ys["pie"] == "a pie shows one y column and no series"
    assert series["points"] == [["a", 1, "s"], ["a", 2, "NULL"]]
    assert negative["pie"] == "a pie cannot show negative values"
