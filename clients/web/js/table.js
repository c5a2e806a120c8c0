// One result of an execution as a table that pages through any number of rows.
//
// The first page arrives unasked; more pages come only after `stream-rows` credit,
// which the "Load more" button and scrolling to the bottom grant. Only the rows in view
// are in the DOM (fixed row height, spacer rows above and below), so a table of a
// million loaded rows scrolls as fast as one of ten. Pages are kept as they came, column
// arrays (the `columns` layout: no array per row is ever made), and cells are read from them.
//
// Above the grid, a toolbar: Table/Chart, a filter over the loaded rows, column filters, Copy.
// Sorting (a click on a column's name) and filtering reorder and hide loaded rows only; the
// toolbar always says how many rows were loaded, so a view is never taken for the whole result.

import { FORMATS as DOWNLOADS } from "./download.js";
import { pageColumns, pageCount } from "./protocol.js";
import { RowView, tsvText } from "./rowview.js";
import { columnKind, count, displayValue, fullValueText } from "./values.js";

const OVERSCAN = 12;
const AUTOLOAD_MARGIN_ROWS = 8;
const MIN_COLUMN_PX = 48;
const RESIZE_STEP_PX = 16;  // one arrow key on a column's resize handle (Shift: four)
const SORT_NEXT = { none: "ascending", ascending: "descending", descending: "none" };
// Rows held in the page per result; beyond it, "Download CSV" is the way to the rest.
export const MAX_ROWS_IN_PAGE = 1_000_000;

export class ResultTable {
  /**
   * @param {object} msg the `result` event
   * @param {{pageSize: number, requestMore: (table: ResultTable, n: number) => boolean,
   *          download: (table: ResultTable) => void}} host
   */
  constructor(msg, host) {
    this.id = msg.id;
    this.number = msg.result;
    this.columns = msg.schema;
    this.limit = msg.limit ?? null;
    this.kinds = this.columns.map((c) => columnKind(c.type));
    this.host = host;
    this.pages = [];  // loaded pages: {start, count, columns: one array of values per column}
    this.size = 0;    // rows loaded
    this._page = null;  // the page of the latest cell read (rendering reads rows in order)
    this.requested = host.pageSize;  // the first page is granted by `execute` itself
    this.end = null;  // null while streaming; "last", "closed", "interrupted", "error", "lost", "gap"
    this.missing = null;  // [from, to) row offsets lost in a reconnection (end "gap")
    this.truncated = false;
    this.rowHeight = 0;
    this._window = [-1, -1];
    this._frame = 0;
    this.view = new RowView(this);
    this.selection = null;  // {rows: [from, to], columns: [from, to]}: view positions and column indices, inclusive
    this._anchor = null;    // the cell (view position, column) a shift-click extends from
    this.chart = null;      // the Chart view, made when first opened
    this._build();
  }

  get loading() {
    return this.end === null && this.size < this.requested;
  }

  /** Every row of the result is in the page. */
  get complete() {
    return this.end === "last";
  }

  get streaming() {
    return this.end === null;
  }

  // ---------------------------------------------------------------- rows

  /** Every loaded row as an array (made on each call: for tests and exports, never for rendering). */
  get rows() {
    const rows = [];
    for (let r = 0; r < this.size; r++) rows.push(this.row(r));
    return rows;
  }

  /** Row `index`'s values. */
  row(index) {
    return this.columns.map((_, column) => this.value(index, column));
  }

  /** The value of row `index`, column `column` (rows must be loaded). */
  value(index, column) {
    let page = this._page;
    if (!page || index < page.start || index >= page.start + page.count) {
      let lo = 0;
      let hi = this.pages.length - 1;
      while (lo < hi) {  // the last page starting at or before `index`
        const mid = (lo + hi + 1) >> 1;
        if (this.pages[mid].start <= index) lo = mid; else hi = mid - 1;
      }
      page = this._page = this.pages[lo];
    }
    return page.columns[column][index - page.start];
  }

  // ---------------------------------------------------------------- events

  addRows(msg) {
    if (msg.offset !== this.size) {
      console.warn(`spark-gateway: rows at offset ${msg.offset}, expected ${this.size}`);
    }
    const n = pageCount(msg);
    if (n) this.pages.push({ start: this.size, count: n, columns: pageColumns(msg, this.columns.length) });
    this.size += n;
    if (n && this.view.active) {
      this.view.update();
      if (this.view.sort) this._clearSelection();  // new rows may land anywhere in a sorted view
    }
    if (msg.last) {
      this.end = "last";
      this.truncated = Boolean(msg.truncated);
    }
    this._refresh();
    this.chart?.changed();  // a chart shows the loaded rows: new ones join it
    if (!this.end) this._maybeAutoload();
  }

  closed(reason) {
    if (this.end === null) this.end = reason;
    this._refresh();
  }

  /** Rows [from, to) were lost in a reconnection: the table keeps what came before and stops. */
  gap(from, to) {
    if (this.end !== null) return;
    this.end = "gap";
    this.missing = [from, to];
    this._refresh();
  }

  // ---------------------------------------------------------------- DOM

  _build() {
    const root = document.createElement("div");
    root.className = "result";
    root.dataset.result = String(this.number);
    this.element = root;

    const scroll = document.createElement("div");
    scroll.className = "table-scroll";
    scroll.tabIndex = 0;
    scroll.setAttribute("role", "region");
    scroll.setAttribute("aria-label", `Result ${this.number + 1}`);
    this.scroll = scroll;

    const table = document.createElement("table");
    table.className = "grid";
    const colgroup = document.createElement("colgroup");
    const thead = document.createElement("thead");
    const headRow = document.createElement("tr");
    const corner = document.createElement("th");
    corner.className = "rownum";
    corner.textContent = "#";
    headRow.append(corner);
    colgroup.append(col("rownum"));
    this.headers = this.columns.map((c, i) => {
      const th = document.createElement("th");
      th.className = `k-${this.kinds[i]}`;
      th.title = `${c.name}: ${c.type}${c.nullable ? "" : " not null"}\nClick the name to sort the loaded rows`;
      th.setAttribute("aria-sort", "none");
      // The name is a button: a click, Enter or Space sorts by the column (ascending, descending, off).
      const sort = document.createElement("button");
      sort.type = "button";
      sort.className = "col-sort";
      const name = document.createElement("span");
      name.className = "col-name";
      name.textContent = c.name;
      const arrow = document.createElement("span");
      arrow.className = "sort-arrow";
      arrow.setAttribute("aria-hidden", "true");
      sort.append(name, arrow);
      sort.addEventListener("click", () => this.sortBy(i));
      const type = document.createElement("span");
      type.className = "col-type";
      type.textContent = c.type;
      th.append(sort, type, this._resizeHandle(i, c.name));
      headRow.append(th);
      colgroup.append(col());
      return th;
    });
    // A last, empty column takes the width the data columns leave, so the grid fills the box.
    const fill = document.createElement("th");
    fill.className = "filler";
    fill.setAttribute("aria-hidden", "true");
    headRow.append(fill);
    colgroup.append(col("filler"));
    thead.append(headRow, this._buildFilterRow());
    this.tbody = document.createElement("tbody");
    this.colgroup = colgroup;
    table.append(colgroup, thead, this.tbody);
    this.table = table;
    scroll.append(table);

    const footer = document.createElement("div");
    footer.className = "result-footer";
    this.counter = document.createElement("span");
    this.counter.className = "row-counter";
    this.counter.setAttribute("aria-live", "polite");
    this.truncMark = document.createElement("span");
    this.truncMark.className = "truncated-mark";
    this.truncMark.hidden = true;
    this.moreButton = button("Load more", "load-more", () => this.loadMore());
    // Whole-result downloads, streamed by the gateway (download.js): CSV, Parquet, Arrow.
    // One group, "Download [CSV] [Parquet] [Arrow]": each button's accessible name is the whole action.
    this.downloadButtons = DOWNLOADS.map(({ format, short, label, title }) => {
      const b = button(short, `download-${format}`, () => this.host.download(this, format));
      b.title = title;
      b.setAttribute("aria-label", label);
      return b;
    });
    this.downloadButton = this.downloadButtons[0];
    const downloads = document.createElement("span");
    downloads.className = "download-group";
    downloads.setAttribute("role", "group");
    downloads.setAttribute("aria-label", "Download the whole result");
    const caption = document.createElement("span");
    caption.className = "download-caption";
    caption.textContent = "Download";
    downloads.append(caption, ...this.downloadButtons);
    this.downloadGroup = downloads;
    this.exportStatus = document.createElement("span");
    this.exportStatus.className = "export-status";
    const spacer = document.createElement("span");
    spacer.className = "spacer";
    footer.append(this.counter, this.truncMark, this.moreButton, spacer, this.exportStatus, downloads);
    this.detail = this._buildDetail();
    this.gridPanel = document.createElement("div");
    this.gridPanel.className = "grid-panel";
    this.gridPanel.append(scroll, this.detail);
    this.chartPanel = document.createElement("div");
    this.chartPanel.className = "chart-panel";
    this.chartPanel.hidden = true;
    root.append(this._buildToolbar(), this.gridPanel, this.chartPanel, footer);
    this.footer = footer;
    // A cell shows one line, cut to its column; a click shows the whole value below the grid.
    // A click on a row number selects the row; Shift extends a selection (rows, or a block of cells).
    this.tbody.addEventListener("click", (event) => {
      const td = event.target.closest("td");
      const tr = td?.parentElement;
      if (!tr?.dataset.row || td.cellIndex > this.columns.length) return;
      const position = Number(tr.dataset.position);
      if (td.cellIndex === 0) {
        this._selectRows(event.shiftKey && this._anchor ? this._anchor.position : position, position);
        if (!event.shiftKey) this._anchor = { position, column: 0 };
        return;
      }
      const column = td.cellIndex - 1;
      if (event.shiftKey && this._anchor) {
        window.getSelection()?.removeAllRanges();
        this._select(this._anchor.position, position, this._anchor.column, column);
        return;
      }
      this._anchor = { position, column };
      this._clearSelection();
      this.showValue(Number(tr.dataset.row), column);
    });
    scroll.addEventListener("keydown", (event) => this._gridKey(event));

    scroll.addEventListener("scroll", () => this._schedule(), { passive: true });
    this._resize = new ResizeObserver(() => this._schedule());
    this._resize.observe(scroll);
    this._sizeColumns();
    this._refresh();
  }

  _buildDetail() {
    const panel = document.createElement("div");
    panel.className = "value-detail";
    panel.hidden = true;
    panel.setAttribute("role", "region");
    panel.setAttribute("aria-label", "Value");
    const head = document.createElement("div");
    head.className = "value-detail-head";
    this.detailWhere = document.createElement("span");
    this.detailWhere.className = "value-detail-where";
    this.detailSize = document.createElement("span");
    this.detailSize.className = "value-detail-size";
    const spacer = document.createElement("span");
    spacer.className = "spacer";
    const copy = button("Copy", "value-copy", () => navigator.clipboard.writeText(this.detailText.textContent));
    copy.hidden = !navigator.clipboard;  // none outside a secure context (http:// to another host)
    const close = button("Close", "value-close", () => this.hideValue());
    head.append(this.detailWhere, this.detailSize, spacer, copy, close);
    this.detailText = document.createElement("pre");
    this.detailText.className = "value-detail-text";
    this.detailText.tabIndex = 0;
    panel.append(head, this.detailText);
    panel.addEventListener("keydown", (event) => { if (event.key === "Escape") this.hideValue(); });
    return panel;
  }

  /** Show row `index`'s value of column `column` whole, in the panel under the grid. */
  showValue(index, column) {
    const c = this.columns[column];
    const text = fullValueText(this.value(index, column), this.kinds[column]);
    this.detailWhere.textContent = `Row ${count(index + 1)} · ${c.name} (${c.type})`;
    const lines = text.split("\n").length;
    this.detailSize.textContent = `${count(text.length)} characters` + (lines > 1 ? `, ${count(lines)} lines` : "");
    this.detailText.textContent = text;
    this.detail.hidden = false;
    this.detailText.focus({ preventScroll: true });
  }

  hideValue() {
    this.detail.hidden = true;
    this.scroll.focus({ preventScroll: true });
  }

  // ---------------------------------------------------------------- toolbar: view, filter, copy

  _buildToolbar() {
    const bar = document.createElement("div");
    bar.className = "result-toolbar";
    bar.setAttribute("role", "group");
    bar.setAttribute("aria-label", `Result ${this.number + 1} tools`);
    const views = document.createElement("div");
    views.className = "view-switch";
    views.setAttribute("role", "group");
    views.setAttribute("aria-label", "View");
    this.tableButton = button("Table", "view-table", () => this.showView("table"));
    this.chartButton = button("Chart", "view-chart", () => this.showView("chart"));
    this.tableButton.setAttribute("aria-pressed", "true");
    this.chartButton.setAttribute("aria-pressed", "false");
    this.chartButton.title = "Chart the loaded rows";
    views.append(this.tableButton, this.chartButton);

    this.filterBox = document.createElement("input");
    this.filterBox.type = "search";
    this.filterBox.className = "grid-filter";
    this.filterBox.setAttribute("aria-label", "Filter the loaded rows");
    this.filterBox.addEventListener("input", () => this._applyFilters());
    this.columnFiltersButton = button("Column filters", "column-filters", () => this.toggleColumnFilters());
    this.columnFiltersButton.setAttribute("aria-pressed", "false");
    this.columnFiltersButton.title = "A filter under each column's name: text, or >10, <=2024-03-01, 1..5, null, !null";
    this.copyButton = button("Copy", "copy-rows", () => this.copySelection());
    this.copyButton.title = "Copy the selected cells, or else every row shown, as tab-separated text";
    this.viewStatus = document.createElement("span");
    this.viewStatus.className = "view-status";
    this.viewStatus.setAttribute("aria-live", "polite");
    this.gridTools = document.createElement("div");
    this.gridTools.className = "grid-tools";
    this.gridTools.append(this.filterBox, this.columnFiltersButton, this.copyButton);
    bar.append(views, this.gridTools, this.viewStatus);
    return bar;
  }

  /** A second header row: one filter box per column, shown by "Column filters". */
  _buildFilterRow() {
    const tr = document.createElement("tr");
    tr.className = "filter-row";
    tr.hidden = true;
    const corner = document.createElement("th");
    corner.className = "rownum";
    tr.append(corner);
    this.columnFilterBoxes = this.columns.map((c, i) => {
      const th = document.createElement("th");
      th.className = `k-${this.kinds[i]}`;
      const input = document.createElement("input");
      input.type = "search";
      input.className = "column-filter";
      input.setAttribute("aria-label", `Filter ${c.name}`);
      const kind = this.kinds[i];
      input.placeholder = kind === "temporal" ? "e.g. >2024-03" : kind === "number" || kind === "float" ? "e.g. >10" : "contains…";
      input.addEventListener("input", () => this._applyFilters());
      th.append(input);
      tr.append(th);
      return input;
    });
    const fill = document.createElement("th");
    fill.className = "filler";
    tr.append(fill);
    this.filterRow = tr;
    return tr;
  }

  toggleColumnFilters(show = this.filterRow.hidden) {
    this.filterRow.hidden = !show;
    this.columnFiltersButton.setAttribute("aria-pressed", String(show));
    if (show) this.columnFilterBoxes[0]?.focus();
    else if (this.columnFilterBoxes.some((b) => b.value)) {
      // Hidden filters would hide rows with no sign of why: closing the row clears them.
      for (const b of this.columnFilterBoxes) b.value = "";
      this._applyFilters();
    }
  }

  _applyFilters() {
    const errors = this.view.setFilters(this.filterBox.value, this.columnFilterBoxes.map((b) => b.value));
    errors.forEach((error, i) => {
      const box = this.columnFilterBoxes[i];
      box.setAttribute("aria-invalid", String(Boolean(error)));
      box.title = error ? `${error}: this filter is off` : "";
    });
    this._viewChanged();
  }

  /** Sort by column `column`: the next of ascending, descending, loaded order (or `direction`). */
  sortBy(column, direction) {
    const current = this.view.sort?.column === column ? this.view.sort.direction : "none";
    const next = direction ?? SORT_NEXT[current];
    this.view.setSort(next === "none" ? null : column, next === "none" ? null : next);
    this.headers.forEach((th, i) => {
      const state = i === column ? next : "none";
      th.setAttribute("aria-sort", state);
      th.querySelector(".sort-arrow").textContent = state === "ascending" ? "▲" : state === "descending" ? "▼" : "";
    });
    this._viewChanged();
  }

  _viewChanged() {
    this._clearSelection();
    this.scroll.scrollTop = 0;
    this._renderWindow(true);
    this._refreshToolbar();
    this.chart?.changed();
  }

  /** The toolbar's line: how many rows show, of how many loaded; never the size of the whole result. */
  _refreshToolbar() {
    if (!this.viewStatus) return;
    const n = this.size;
    const loaded = `${count(n)} ${n === 1 ? "row" : "rows"} loaded${this.complete ? " (all of the result)" : ""}`;
    const parts = [this.view.filtering ? `${count(this.view.length)} of the ${loaded} match the filter` : loaded];
    if (this.view.sort) {
      const s = this.view.sort;
      parts.push(`sorted by ${this.columns[s.column].name} ${s.direction === "ascending" ? "▲" : "▼"}`);
    }
    if (this.selection) {
      const rows = this.selection.rows[1] - this.selection.rows[0] + 1;
      const cols = this.selection.columns[1] - this.selection.columns[0] + 1;
      parts.push(`${count(rows)} × ${cols} selected`);
    }
    this.viewStatus.textContent = parts.join(" · ");
    this.filterBox.placeholder = `Filter the ${count(n)} rows loaded…`;
    this.copyButton.textContent = this.selection ? "Copy selection" : "Copy rows";
    this.copyButton.disabled = this.view.length === 0;
  }

  showView(which) {
    const chart = which === "chart";
    this.tableButton.setAttribute("aria-pressed", String(!chart));
    this.chartButton.setAttribute("aria-pressed", String(chart));
    this.gridPanel.hidden = chart;
    this.gridTools.hidden = chart;
    this.chartPanel.hidden = !chart;
    this.element.dataset.view = which;
    if (chart) {
      if (!this.chart) {
        this.chartPanel.textContent = "Loading the chart library…";
        this._chartLoading ??= import("./chart.js").then(({ ChartView }) => {
          this.chartPanel.textContent = "";
          this.chart = new ChartView(this, this.chartPanel);
          this.chart.changed();
        }).catch((error) => {
          this.chartPanel.textContent = `The chart library did not load: ${error.message}`;
          this._chartLoading = null;
        });
      } else {
        this.chart.changed();
      }
    } else {
      this._schedule();
    }
  }

  // ---------------------------------------------------------------- selection and copy

  _select(fromRow, toRow, fromColumn, toColumn) {
    this.selection = {
      rows: [Math.min(fromRow, toRow), Math.max(fromRow, toRow)],
      columns: [Math.min(fromColumn, toColumn), Math.max(fromColumn, toColumn)],
    };
    this._renderWindow(true);
    this._refreshToolbar();
  }

  _selectRows(from, to) {
    this._select(from, to, 0, this.columns.length - 1);
  }

  _clearSelection() {
    if (!this.selection) return;
    this.selection = null;
    this._renderWindow(true);
    this._refreshToolbar();
  }

  /** Ctrl/Cmd+A selects every row shown, Ctrl/Cmd+C copies the selection, Escape drops it. */
  _gridKey(event) {
    if (event.target !== this.scroll) return;
    const mod = event.ctrlKey || event.metaKey;
    if (mod && event.key === "a" && this.view.length) {
      event.preventDefault();
      this._selectRows(0, this.view.length - 1);
    } else if (mod && event.key === "c" && this.selection) {
      event.preventDefault();
      this.copySelection();
    } else if (event.key === "Escape" && this.selection) {
      this._clearSelection();
    }
  }

  /** Tab-separated text of the selection (or of every row shown, in view order), header first. */
  selectionText() {
    const sel = this.selection;
    const [r0, r1] = sel ? sel.rows : [0, this.view.length - 1];
    const [c0, c1] = sel ? sel.columns : [0, this.columns.length - 1];
    const rows = [];
    for (let p = r0; p <= r1; p++) rows.push(this.view.rowAt(p));
    const columns = [];
    for (let c = c0; c <= c1; c++) columns.push(c);
    return tsvText(this, rows, columns);
  }

  async copySelection() {
    const text = this.selectionText();
    const rows = text.split("\n").length - 2;
    const done = (ok) => {
      this.exportStatus.textContent = ok ? `Copied ${count(rows)} ${rows === 1 ? "row" : "rows"} as tab-separated text`
        : "Copying failed: the browser gave no clipboard";
      this.exportStatus.dataset.state = ok ? "done" : "error";
    };
    try {
      await navigator.clipboard.writeText(text);
      done(true);
    } catch {
      // No async clipboard (http:// to another host): the old way, through a hidden text area.
      const area = document.createElement("textarea");
      area.value = text;
      area.style.position = "fixed";
      area.style.opacity = "0";
      document.body.append(area);
      area.select();
      const ok = document.execCommand("copy");
      area.remove();
      done(ok);
    }
  }

  // ---------------------------------------------------------------- column resize

  /** The handle at a header's right edge: drag it, or focus it and press ←/→ (Shift: bigger steps). */
  _resizeHandle(column, name) {
    const handle = document.createElement("span");
    handle.className = "col-resize";
    handle.tabIndex = 0;
    handle.setAttribute("role", "separator");
    handle.setAttribute("aria-orientation", "vertical");
    handle.setAttribute("aria-label", `Resize column ${name}`);
    handle.setAttribute("aria-valuemin", String(MIN_COLUMN_PX));
    handle.addEventListener("pointerdown", (event) => {
      event.preventDefault();
      handle.setPointerCapture(event.pointerId);
      const startX = event.clientX;
      const startWidth = this._columnWidth(column);
      const move = (e) => this.resizeColumn(column, startWidth + e.clientX - startX);
      const up = () => {
        handle.removeEventListener("pointermove", move);
        handle.removeEventListener("pointerup", up);
      };
      handle.addEventListener("pointermove", move);
      handle.addEventListener("pointerup", up);
    });
    handle.addEventListener("click", (event) => event.stopPropagation());
    handle.addEventListener("keydown", (event) => {
      const step = event.shiftKey ? RESIZE_STEP_PX * 4 : RESIZE_STEP_PX;
      if (event.key === "ArrowLeft" || event.key === "ArrowRight") {
        event.preventDefault();
        this.resizeColumn(column, this._columnWidth(column) + (event.key === "ArrowRight" ? step : -step));
      }
    });
    return handle;
  }

  _columnWidth(column) {
    return this.headers[column].getBoundingClientRect().width;
  }

  /** Set column `column` to `px` pixels wide (the automatic sizing leaves it so from then on). */
  resizeColumn(column, px) {
    const width = Math.max(MIN_COLUMN_PX, Math.round(px));
    const c = this.colgroup.children[column + 1];
    c.style.width = `${width}px`;
    c.dataset.resized = "true";
    const handle = this.headers[column].querySelector(".col-resize");
    handle.setAttribute("aria-valuenow", String(width));
  }

  loadMore() {
    if (this.end !== null || this.loading) return;
    if (this.size >= MAX_ROWS_IN_PAGE) return;
    const n = this.host.pageSize;
    if (this.host.requestMore(this, n)) this.requested += n;
    this._refreshFooter();
  }

  _maybeAutoload() {
    if (this.end !== null || this.loading || !this.rowHeight) return;
    const { scrollTop, clientHeight, scrollHeight } = this.scroll;
    if (scrollHeight > clientHeight && scrollTop + clientHeight >= scrollHeight - AUTOLOAD_MARGIN_ROWS * this.rowHeight) {
      this.loadMore();
    }
  }

  _schedule() {
    if (this._frame) return;
    this._frame = requestAnimationFrame(() => {
      this._frame = 0;
      this._renderWindow(false);
      this._maybeAutoload();
    });
  }

  _refresh() {
    if (this.size && this.colgroup.dataset.sized !== "rows") this._sizeColumns();
    this._renderWindow(true);
    this._refreshFooter();
  }

  /** Column widths from the header and the first rows (table-layout: fixed keeps them). */
  _sizeColumns() {
    const sample = Math.min(this.size, 200);
    const cols = this.colgroup.children;
    const digits = String(Math.max(this.size, 1000)).length;
    cols[0].style.width = `${digits + 3}ch`;
    this.columns.forEach((c, i) => {
      // Widths in `ch` of the 12.5px monospace body font; the header's bold sans name and
      // 11px type need a little more and a little less per character.
      let width = Math.max(c.name.length * 1.15, c.type.length * 0.9);
      for (let r = 0; r < sample; r++) {
        const v = this.value(r, i);
        const text = v === null ? "NULL" : displayValue(v, this.kinds[i]).text;
        width = Math.max(width, Math.min(text.length, 60));
      }
      if (!cols[i + 1].dataset.resized) cols[i + 1].style.width = `${Math.min(Math.max(width + 3, 7), 48)}ch`;
    });
    if (sample) this.colgroup.dataset.sized = "rows";
  }

  _measureRowHeight() {
    const probe = this.tbody.querySelector("tr.row");
    if (probe) this.rowHeight = probe.getBoundingClientRect().height || this.rowHeight;
  }

  _renderWindow(force) {
    const total = this.view.length;
    if (!this.rowHeight && total) {
      this._fillRows(0, Math.min(total, 1), 0, 0);
      this._measureRowHeight();
      if (!this.rowHeight) this.rowHeight = 28;
    }
    const h = this.rowHeight || 28;
    const viewport = this.scroll.clientHeight || 400;
    const first = Math.max(0, Math.floor(this.scroll.scrollTop / h) - OVERSCAN);
    const last = Math.min(total, Math.ceil((this.scroll.scrollTop + viewport) / h) + OVERSCAN);
    if (!force && first === this._window[0] && last === this._window[1]) return;
    this._window = [first, last];
    this._fillRows(first, last, first * h, (total - last) * h);
    this.cornerDigits = String(total).length;
  }

  _fillRows(first, last, topPad, bottomPad) {
    const frag = document.createDocumentFragment();
    const width = this.columns.length + 2;
    if (topPad > 0) frag.append(spacer(topPad, width));
    for (let r = first; r < last; r++) frag.append(this._row(r));
    if (bottomPad > 0) frag.append(spacer(bottomPad, width));
    if (!this.view.length) {
      const tr = document.createElement("tr");
      tr.className = "empty";
      const td = document.createElement("td");
      td.colSpan = width;
      // "No rows" only for a result known to be empty; a stream that ended early may have had some.
      td.textContent = this.size ? `No row of the ${count(this.size)} loaded matches the filter`
        : this.end === null ? "…" : this.end === "last" ? "No rows" : "No rows arrived";
      tr.append(td);
      frag.append(tr);
    }
    this.tbody.replaceChildren(frag);
  }

  /** The row at view position `position` (its number is the row's place in the result, sorted or not). */
  _row(position) {
    const index = this.view.rowAt(position);
    const tr = document.createElement("tr");
    tr.className = "row";
    tr.dataset.row = String(index);
    tr.dataset.position = String(position);
    const sel = this.selection;
    const rowSelected = sel && position >= sel.rows[0] && position <= sel.rows[1];
    const num = document.createElement("td");
    num.className = "rownum";
    num.textContent = String(index + 1);
    tr.append(num);
    for (let i = 0; i < this.columns.length; i++) {
      const td = document.createElement("td");
      const v = this.value(index, i);
      const kind = this.kinds[i];
      if (v === null || v === undefined) {
        td.className = `k-${kind} null`;
        td.textContent = "NULL";
        td.title = "SQL NULL";
      } else {
        const { text, cls } = displayValue(v, kind);
        td.className = cls ? `k-${kind} ${cls}` : `k-${kind}`;
        td.textContent = text;
        if (text.length > 24) td.title = text;
      }
      if (rowSelected && i >= sel.columns[0] && i <= sel.columns[1]) td.classList.add("selected");
      tr.append(td);
    }
    const fill = document.createElement("td");
    fill.className = "filler";
    tr.append(fill);
    return tr;
  }

  _refreshFooter() {
    this._refreshToolbar();
    const n = this.size;
    let text;
    switch (this.end) {
      case "last": text = `${count(n)} ${n === 1 ? "row" : "rows"} (all)`; break;
      case null: text = n ? `${count(n)} ${n === 1 ? "row" : "rows"} loaded` : "Waiting for the first rows…"; break;
      case "lost": text = `${count(n)} rows loaded · connection lost, no more rows`; break;
      case "gap": text = `${count(n)} rows loaded · rows ${count(this.missing[0] + 1)}–${count(this.missing[1])} `
        + "were lost in a reconnection, no more rows"; break;
      default: text = n ? `${count(n)} rows loaded · stream ${this.end}`
        : `Stream ${this.end === "error" ? "failed" : this.end} before its first rows`;
    }
    const capped = n >= MAX_ROWS_IN_PAGE;
    if (capped && this.end === null) text += ` · the page holds ${count(MAX_ROWS_IN_PAGE)} rows at most: the downloads have them all`;
    this.counter.textContent = text;
    this.element.dataset.end = this.end ?? "streaming";
    this.truncMark.hidden = !this.truncated;
    if (this.truncated) {
      this.truncMark.textContent = this.limit !== null ? `truncated at limit ${count(this.limit)}` : "truncated";
      this.truncMark.title = "The result has more rows than the cell's limit; they were left out.";
    }
    // A control shows only when it can do something: Load more while the stream has rows left
    // that the page has room for; Download CSV once there are rows (with none, it could only
    // write a header: an empty result, or a stream that ended before its first rows).
    this.moreButton.hidden = this.end !== null || n === 0 || capped;
    this.downloadGroup.hidden = n === 0;
    this.moreButton.disabled = this.loading;  // a page is on its way
    this.moreButton.textContent = this.loading ? "Loading…" : `Load ${count(this.host.pageSize)} more`;
    if (this.size && this.colgroup.children[0]) {
      this.colgroup.children[0].style.width = `${String(Math.max(n, 1000)).length + 3}ch`;
    }
  }

  destroy() {
    this._resize.disconnect();
    cancelAnimationFrame(this._frame);
    this.chart?.destroy();
  }
}

function col(cls) {
  const c = document.createElement("col");
  if (cls) c.className = cls;
  return c;
}

function spacer(height, width) {
  const tr = document.createElement("tr");
  tr.className = "spacer";
  tr.setAttribute("aria-hidden", "true");
  const td = document.createElement("td");
  td.colSpan = width;
  td.style.height = `${height}px`;
  tr.append(td);
  return tr;
}

function button(label, cls, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = `btn small ${cls}`;
  b.textContent = label;
  b.addEventListener("click", onClick);
  return b;
}
