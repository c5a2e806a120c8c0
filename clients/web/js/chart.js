// A result's Chart view: bar, line, area, scatter or pie of the rows the grid shows (loaded rows,
// after its filter and sort), drawn with Observable Plot (vendor/plot.js). table.js imports this
// module only when a Chart view first opens, so the chart library costs nothing until then.

import * as Plot from "../vendor/plot.js";
import { CHART_TYPES, ChartType, categoryScheme, chartDefaults, chartPoints, pieProblem, pieSlices, slicePath, xScaleType } from "./chartdata.js";
import { saveBlob } from "./csv.js";
import { count } from "./values.js";

const HEIGHT = 360;
const TYPE_LABELS = { bar: "Bar", line: "Line", area: "Area", scatter: "Scatter", pie: "Pie" };
const MAX_BAND_TICKS = 30;  // beyond, a band axis labels every k-th category only

export class ChartView {
  /**
   * @param {import("./table.js").ResultTable} table
   * @param {HTMLElement} panel
   */
  constructor(table, panel) {
    this.table = table;
    this.panel = panel;
    this.spec = chartDefaults(table.columns, table.kinds);
    this._frame = 0;
    this._build();
  }

  _build() {
    const t = this.table;
    const controls = document.createElement("div");
    controls.className = "chart-controls";
    this.typeSelect = select("Chart type", CHART_TYPES.map((v) => [v, TYPE_LABELS[v]]), this.spec.type);
    this.xSelect = select("X", t.columns.map((c, i) => [String(i), c.name]), String(this.spec.x));
    this.seriesSelect = select("Series", [["", "(none)"], ...t.columns.map((c, i) => [String(i), c.name])], "");
    const ys = document.createElement("fieldset");
    ys.className = "chart-ys";
    const legend = document.createElement("legend");
    legend.textContent = "Y";
    ys.append(legend);
    this.yBoxes = t.columns.map((c, i) => {
      const label = document.createElement("label");
      const box = document.createElement("input");
      box.type = "checkbox";
      box.value = String(i);
      box.checked = this.spec.ys.includes(i);
      box.addEventListener("change", () => this._readControls());
      label.append(box, document.createTextNode(c.name));
      // Only numbers can be a y: other columns are listed (so the choice is visible) but off.
      if (!["number", "float"].includes(t.kinds[i])) {
        box.disabled = true;
        label.title = `${c.name} (${c.type}) is not a number`;
        label.classList.add("off");
      }
      ys.append(label);
      return box;
    });
    for (const s of [this.typeSelect, this.xSelect, this.seriesSelect]) s.select.addEventListener("change", () => this._readControls());
    const spacer = document.createElement("span");
    spacer.className = "spacer";
    this.pngButton = button("Download PNG", "chart-png", () => this.download("png"));
    this.svgButton = button("Download SVG", "chart-svg", () => this.download("svg"));
    controls.append(this.typeSelect.label, this.xSelect.label, ys, this.seriesSelect.label);

    const head = document.createElement("div");
    head.className = "chart-head";
    this.caption = document.createElement("span");
    this.caption.className = "chart-caption";
    this.caption.setAttribute("aria-live", "polite");
    head.append(this.caption, spacer, this.pngButton, this.svgButton);
    this.figure = document.createElement("div");
    this.figure.className = "chart-figure";
    this.figure.setAttribute("role", "img");
    this.panel.append(controls, head, this.figure);
    this._resize = new ResizeObserver(() => this.changed());
    this._resize.observe(this.panel);
  }

  _readControls() {
    this.spec = {
      type: this.typeSelect.select.value,
      x: Number(this.xSelect.select.value),
      ys: this.yBoxes.filter((b) => b.checked).map((b) => Number(b.value)),
      series: this.seriesSelect.select.value === "" ? null : Number(this.seriesSelect.select.value),
    };
    this.draw();
  }

  /** The rows or the view changed: redraw (once per frame, and only while the chart shows). */
  changed() {
    if (this._frame || this.panel.hidden) return;
    this._frame = requestAnimationFrame(() => {
      this._frame = 0;
      this.draw();
    });
  }

  /** Draw the chart of the rows the grid shows now. */
  draw() {
    const t = this.table;
    const rows = [];
    for (let p = 0; p < t.view.length; p++) rows.push(t.view.rowAt(p));
    const { points, skipped } = chartPoints(t, rows, this.spec);
    this._caption(rows.length, skipped);
    this.figure.replaceChildren();
    this.svg = null;
    const problem = this._problem(points);
    this.pngButton.disabled = this.svgButton.disabled = Boolean(problem);
    if (problem) {
      const note = document.createElement("p");
      note.className = "chart-note";
      note.textContent = problem;
      this.figure.append(note);
      this.figure.setAttribute("aria-label", problem);
      return;
    }
    const width = Math.max(320, this.panel.clientWidth - 24);
    const chart = this.spec.type === ChartType.PIE ? this._pie(points, width) : this._plot(points, width);
    this.figure.append(chart.legend ?? "", chart.svg);
    this.svg = chart.svg;
    this.legendItems = chart.items;
    const y = this.spec.ys.map((c) => t.columns[c].name).join(", ");
    this.figure.setAttribute("aria-label", `${TYPE_LABELS[this.spec.type]} chart of ${y} by ${t.columns[this.spec.x].name}, ${count(rows.length)} rows`);
  }

  _caption(shown, skipped) {
    const t = this.table;
    const loaded = `${count(t.size)} ${t.size === 1 ? "row" : "rows"} loaded`;
    let text = t.view.filtering ? `Chart of the ${count(shown)} rows that match the filter, of the ${loaded}`
      : `Chart of the ${loaded}`;
    text += t.complete ? " (all of the result)" : " (the result has more: Load more in the table adds them)";
    if (skipped) text += ` · ${count(skipped)} ${skipped === 1 ? "row" : "rows"} with no value for x or y left out`;
    this.caption.textContent = text;
  }

  _problem(points) {
    if (!this.spec.ys.length) {
      return this.yBoxes.some((b) => !b.disabled) ? "Choose a y column to chart."
        : "Nothing to chart: the result has no number column for y.";
    }
    if (!points.length) return "No row has values for both x and y.";
    if (this.spec.type === ChartType.PIE) {
      const why = pieProblem(this.spec, points);
      if (why) return `No pie: ${why}.`;
    }
    return null;
  }

  /** Bar, line, area or scatter, by Observable Plot. */
  _plot(points, width) {
    const t = this.table;
    const { type } = this.spec;
    const xKind = t.kinds[this.spec.x];
    const xType = xScaleType(xKind, type);
    const hasSeries = points.some((p) => p.series !== null);
    const marks = [Plot.ruleY([0])];
    const channels = { x: "x", y: "y" };
    let grouped = false;  // bars side by side per x (several series), else stacked
    if (type === ChartType.BAR) {
      const keys = new Set(points.map((p) => p.series));
      grouped = hasSeries && keys.size > 1 && new Set(points.map((p) => String(p.x))).size <= 40;
      marks.push(Plot.barY(points, grouped ? { fx: "x", x: "series", y: "y", fill: "series", title: tip(t, this.spec) }
        : { ...channels, fill: hasSeries ? "series" : "var(--chart-1)", title: tip(t, this.spec) }));
    } else if (type === ChartType.LINE) {
      marks.push(Plot.lineY(points, { ...channels, z: hasSeries ? "series" : null, stroke: hasSeries ? "series" : "var(--chart-1)" }));
      if (points.length <= 200) marks.push(Plot.dot(points, { ...channels, r: 2.5, fill: hasSeries ? "series" : "var(--chart-1)", title: tip(t, this.spec) }));
    } else if (type === ChartType.AREA) {
      const z = hasSeries ? "series" : null;
      marks.push(Plot.areaY(points, { x: "x", y1: 0, y2: "y", z, fill: hasSeries ? "series" : "var(--chart-1)", fillOpacity: 0.25 }));
      marks.push(Plot.lineY(points, { ...channels, z, stroke: hasSeries ? "series" : "var(--chart-1)" }));
    } else {
      marks.push(Plot.dot(points, { ...channels, r: 3, fill: hasSeries ? "series" : "var(--chart-1)", fillOpacity: 0.75, title: tip(t, this.spec) }));
    }
    const xOptions = { label: t.columns[this.spec.x].name, type: grouped ? undefined : xType };
    if (xType === "band" && !grouped) {
      // Categories in the grid's order (sort the grid by revenue: the bars follow).
      const domain = [...new Set(points.map((p) => p.x))];
      xOptions.domain = domain;
      if (domain.length > MAX_BAND_TICKS) {
        const step = Math.ceil(domain.length / MAX_BAND_TICKS);
        xOptions.ticks = domain.filter((_, i) => i % step === 0);
      }
      if (domain.some((d) => String(d).length > 8)) xOptions.tickRotate = -30;
    }
    const svg = Plot.plot({
      width,
      height: HEIGHT,
      marginLeft: 64,
      marginBottom: xOptions.tickRotate ? 72 : 40,
      style: { fontSize: "11px", background: "transparent" },
      x: grouped ? { axis: null } : xOptions,
      fx: grouped ? { label: t.columns[this.spec.x].name, padding: 0.1, domain: [...new Set(points.map((p) => p.x))] } : undefined,
      y: { label: this.spec.ys.map((c) => t.columns[c].name).join(", "), grid: true },
      color: hasSeries ? { legend: false, type: "ordinal", scheme: categoryScheme(new Set(points.map((p) => p.series)).size) } : undefined,
      marks,
    });
    const scale = hasSeries ? svg.scale("color") : null;
    const items = scale ? scale.domain.map((key) => ({ key: String(key), color: scale.apply(key) })) : [];
    return { svg, items, legend: items.length ? htmlLegend(items) : null };
  }

  /** A pie: Plot has none, so it is drawn here, coloured by Plot's ordinal scheme. */
  _pie(points, width) {
    const ns = "http://www.w3.org/2000/svg";
    const slices = pieSlices(points);
    const scale = Plot.scale({ color: { type: "ordinal", scheme: categoryScheme(slices.length), domain: slices.map((s) => String(s.x)) } });
    const r = HEIGHT / 2 - 16;
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("width", String(width));
    svg.setAttribute("height", String(HEIGHT));
    svg.setAttribute("viewBox", `0 0 ${width} ${HEIGHT}`);
    svg.setAttribute("class", "pie");
    const g = document.createElementNS(ns, "g");
    g.setAttribute("aria-label", "pie");
    g.setAttribute("transform", `translate(${width / 2},${HEIGHT / 2})`);
    const xName = this.table.columns[this.spec.x].name;
    const yName = this.table.columns[this.spec.ys[0]].name;
    for (const s of slices) {
      const path = document.createElementNS(ns, "path");
      path.setAttribute("class", "slice");
      path.setAttribute("d", slicePath(s.start, s.end, r));
      path.setAttribute("fill", scale.apply(String(s.x)));
      path.setAttribute("stroke", "white");
      const title = document.createElementNS(ns, "title");
      title.textContent = `${xName}: ${s.x}\n${yName}: ${s.y} (${(s.share * 100).toFixed(1)}%)`;
      path.append(title);
      g.append(path);
    }
    svg.append(g);
    const items = slices.map((s) => ({ key: `${s.x} (${(s.share * 100).toFixed(1)}%)`, color: scale.apply(String(s.x)) }));
    return { svg, items, legend: htmlLegend(items) };
  }

  // ---------------------------------------------------------------- export

  /** The chart as one standalone SVG document: colours and font fixed, the legend drawn in. */
  exportSvg() {
    const ns = "http://www.w3.org/2000/svg";
    const style = getComputedStyle(this.panel);
    const fg = style.color;
    const bg = getComputedStyle(this.table.element).backgroundColor;
    const chart = this.svg.cloneNode(true);
    const width = Number(chart.getAttribute("width"));
    const height = Number(chart.getAttribute("height"));
    const items = this.legendItems ?? [];
    const perRow = Math.max(1, Math.floor((width - 16) / 160));
    const legendHeight = items.length ? Math.ceil(items.length / perRow) * 18 + 8 : 0;
    const root = document.createElementNS(ns, "svg");
    root.setAttribute("xmlns", ns);
    root.setAttribute("width", String(width));
    root.setAttribute("height", String(height + legendHeight));
    root.setAttribute("viewBox", `0 0 ${width} ${height + legendHeight}`);
    root.setAttribute("style", `color: ${fg}; background: ${bg}; font: 11px system-ui, sans-serif;`);
    const back = document.createElementNS(ns, "rect");
    back.setAttribute("width", "100%");
    back.setAttribute("height", "100%");
    back.setAttribute("fill", bg);
    root.append(back);
    items.forEach((item, i) => {
      const g = document.createElementNS(ns, "g");
      g.setAttribute("transform", `translate(${8 + (i % perRow) * 160},${8 + Math.floor(i / perRow) * 18})`);
      const swatch = document.createElementNS(ns, "rect");
      swatch.setAttribute("width", "10");
      swatch.setAttribute("height", "10");
      swatch.setAttribute("fill", item.color);
      const label = document.createElementNS(ns, "text");
      label.setAttribute("x", "14");
      label.setAttribute("y", "9");
      label.setAttribute("fill", "currentColor");
      label.textContent = item.key;
      g.append(swatch, label);
      root.append(g);
    });
    chart.setAttribute("y", String(legendHeight));
    // var(--chart-1) is the page's; a file on its own needs the colour itself.
    const accent = style.getPropertyValue("--chart-1").trim() || "#4269d0";
    for (const el of chart.querySelectorAll("[fill='var(--chart-1)'], [stroke='var(--chart-1)']")) {
      if (el.getAttribute("fill") === "var(--chart-1)") el.setAttribute("fill", accent);
      if (el.getAttribute("stroke") === "var(--chart-1)") el.setAttribute("stroke", accent);
    }
    root.append(chart);
    return new XMLSerializer().serializeToString(root);
  }

  /** Save the chart as an SVG or PNG file (PNG drawn from the SVG at twice the size). */
  async download(format) {
    if (!this.svg) return;
    const text = this.exportSvg();
    const name = `result-${this.table.number + 1}-${this.spec.type}-chart.${format}`;
    const svgBlob = new Blob([text], { type: "image/svg+xml" });
    if (format === "svg") {
      saveBlob(svgBlob, name);
      return;
    }
    const url = URL.createObjectURL(svgBlob);
    try {
      const image = new Image();
      image.src = url;
      await image.decode();
      const canvas = document.createElement("canvas");
      canvas.width = image.width * 2;
      canvas.height = image.height * 2;
      const ctx = canvas.getContext("2d");
      ctx.scale(2, 2);
      ctx.drawImage(image, 0, 0);
      const png = await new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
      saveBlob(png, name);
    } finally {
      URL.revokeObjectURL(url);
    }
  }

  destroy() {
    this._resize.disconnect();
    cancelAnimationFrame(this._frame);
  }
}

/** A tooltip channel: the row's number and its x and y, as the grid shows them. */
function tip(table, spec) {
  return (p) => `row ${count(p.row + 1)}\n${table.columns[spec.x].name}: ${p.x instanceof Date ? p.x.toISOString() : p.x}\n`
    + `${p.series !== null ? p.series + ": " : ""}${p.y}`;
}

function htmlLegend(items) {
  const list = document.createElement("ul");
  list.className = "chart-legend";
  for (const item of items) {
    const li = document.createElement("li");
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = item.color;
    li.append(swatch, document.createTextNode(item.key));
    list.append(li);
  }
  return list;
}

function select(labelText, options, value) {
  const label = document.createElement("label");
  label.className = "chart-pick";
  const sel = document.createElement("select");
  for (const [v, text] of options) {
    const o = document.createElement("option");
    o.value = v;
    o.textContent = text;
    sel.append(o);
  }
  sel.value = value;
  sel.setAttribute("aria-label", labelText);  // the label's text would take the chosen option in too
  label.append(document.createTextNode(labelText + " "), sel);
  return { label, select: sel };
}

function button(text, cls, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = `btn small ${cls}`;
  b.textContent = text;
  b.addEventListener("click", onClick);
  return b;
}

