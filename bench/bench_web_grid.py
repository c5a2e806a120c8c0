#!/usr/bin/env python
"""The notebook's grid and chart in Chromium: sort and filter 100,000 loaded rows, chart 10,000.

    .venv/bin/python bench/bench_web_grid.py [--rows 100000] [--chart-rows 10000] [--reps 5]

Serves clients/web from a local HTTP server, opens it in Debian's ``chromium`` (Playwright,
``executable_path``), and builds a ResultTable (js/table.js, the page's own module) fed with
``rows`` pages in the columns layout, 1,000 rows a page, as the gateway sends them: an id
(bigint), a decimal(12,2) amount (strings, as on the wire), a double, a date, a product name.
No gateway or Spark: what is timed is the page's own work once the rows are loaded.

Times (median of ``--reps``, in ms, each including the grid's re-render):
- sort: click-equivalent ``sortBy`` on the decimal column (ascending), the date, the double;
- filter: the global text filter (``laptop``), a column filter (``>500`` on the decimal);
- load more under a sort and a filter: one more 1,000-row page merged into the view;
- chart: opening the Chart view the first time (loads vendor/plot.js), then a scatter and a bar
  of ``--chart-rows`` rows (draw only).
Prints a markdown table to stdout.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import statistics
import threading
from pathlib import Path

from playwright.sync_api import sync_playwright

WEB = Path(__file__).resolve().parent.parent / "clients" / "web"
CHROMIUM = "/usr/bin/chromium"

SETUP = """
async ([rows]) => {
  const { ResultTable } = await import("/js/table.js");
  const products = ["Laptop", "Monitor", "Keyboard", "Mouse", "Headphones", "Webcam", "Desk lamp", "Chair"];
  const schema = [{name: "id", type: "bigint", nullable: false},
                  {name: "amount", type: "decimal(12,2)", nullable: true},
                  {name: "x", type: "double", nullable: true}, {name: "day", type: "date", nullable: true},
                  {name: "product", type: "string", nullable: true}];
  const host = { pageSize: 1000, requestMore: () => true, download: () => {} };
  const table = new ResultTable({ id: "bench", result: 0, schema }, host);
  document.body.append(table.element);
  let seed = 42;
  const rand = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648;
  window.page = (start, n) => {
    const cols = [[], [], [], [], []];
    for (let r = start; r < start + n; r++) {
      cols[0].push(r);
      cols[1].push(r % 97 === 0 ? null : (rand() * 2000).toFixed(2));
      cols[2].push(rand() * 1e6 - 5e5);
      const d = new Date(Date.UTC(2020, 0, 1) + Math.floor(rand() * 1500) * 86400000);
      cols[3].push(d.toISOString().slice(0, 10));
      cols[4].push(products[Math.floor(rand() * products.length)]);
    }
    return { type: "rows", id: "bench", result: 0, offset: start, count: n, columns: cols, last: false };
  };
  for (let s = 0; s < rows; s += 1000) table.addRows(window.page(s, Math.min(1000, rows - s)));
  window.table = table;
  return table.size;
}
"""

TIME = """
async (code) => {
  const t0 = performance.now();
  await (new Function("table", "return (async () => {" + code + "})()"))(window.table);
  await new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)));  // the frame it caused
  return performance.now() - t0;
}
"""

RESET = (
    "table.sortBy(0, 'none'); table.filterBox.value = '';"
    " table.columnFilterBoxes.forEach((b) => b.value = ''); table._applyFilters();"
)


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        """No line per request."""


def serve() -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = functools.partial(QuietHandler, directory=str(WEB))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--chart-rows", type=int, default=10_000)
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()
    server, url = serve()
    cases = {
        "sort decimal ▲": "table.sortBy(1, 'ascending');",
        "sort date ▼": "table.sortBy(3, 'descending');",
        "sort double ▲": "table.sortBy(2, 'ascending');",
        "filter all columns 'laptop'": "table.filterBox.value = 'laptop'; table._applyFilters();",
        "filter amount '>500'": "table.columnFilterBoxes[1].value = '>500'; table._applyFilters();",
        "sort ▲ + filter, 1,000 rows more": None,  # set up below: load a page into a sorted, filtered view
    }
    results: dict[str, list[float]] = {k: [] for k in cases}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        # An empty page of the notebook's origin (the modules and the vendored bundles load from it).
        page.route(
            url + "bench.html",
            lambda route: route.fulfill(
                content_type="text/html",
                body="<html><head><link rel=stylesheet href='/css/app.css'></head><body></body></html>",
            ),
        )
        page.goto(url + "bench.html")
        loaded = page.evaluate(SETUP, [args.rows])
        for _ in range(args.reps):
            for name, code in cases.items():
                page.evaluate(f"async () => {{ {RESET} }}")
                if code is None:
                    page.evaluate(
                        "async () => { table.sortBy(1, 'ascending'); table.filterBox.value = 'o';"
                        " table._applyFilters(); }"
                    )
                    code = "table.addRows(window.page(table.size, 1000));"
                results[name].append(page.evaluate(TIME, code))
        page.evaluate(f"async () => {{ {RESET} }}")
        size = page.evaluate("table.size")
        # Charts: the first `--chart-rows` rows (a filter on id keeps them).
        page.evaluate(
            f"async () => {{ table.toggleColumnFilters(true); table.columnFilterBoxes[0].value = '<{args.chart_rows}';"
            " table._applyFilters(); }"
        )
        first_open = page.evaluate(TIME, "table.showView('chart'); await table._chartLoading; table.chart.draw();")
        chart: dict[str, list[float]] = {"scatter": [], "bar": [], "line": []}
        for _ in range(args.reps):
            for kind in chart:
                chart[kind].append(
                    page.evaluate(
                        TIME,
                        f"table.chart.typeSelect.select.value = '{kind}'; table.chart.xSelect.select.value = "
                        f"'{3 if kind == 'line' else 0 if kind == 'scatter' else 4}'; table.chart._readControls();",
                    )
                )
        marks = page.evaluate("table.chart.figure.querySelectorAll('g[aria-label=line] path, rect, circle').length")
        browser.close()
    server.shutdown()
    print(f"Chromium ({CHROMIUM}), {loaded:,} rows loaded ({size:,} at the end), median of {args.reps} (ms)\n")
    print("| operation | median ms | min ms |\n|---|---:|---:|")
    for name, times in results.items():
        print(f"| {name} | {statistics.median(times):.1f} | {min(times):.1f} |")
    print(f"| chart: first open (loads plot.js) + draw, {args.chart_rows:,} rows | {first_open:.1f} | |")
    for kind, times in chart.items():
        print(f"| chart: {kind} of {args.chart_rows:,} rows | {statistics.median(times):.1f} | {min(times):.1f} |")
    print(f"\n(last chart: {marks} marks)")


if __name__ == "__main__":
    main()
