// What a chart of a result draws: the default choice of chart from the column types, and the
// loaded rows turned into points. Pure (no DOM, no chart library), so node tests it.
//
// Charts are pictures: decimals and big integers become JS numbers here (exact values stay in
// the grid and the downloads). Rows whose x or y is NULL, NaN or infinite have no point; the
// chart says how many were left out.

/** The chart types the Chart view draws (the `type` of a chart spec). */
export const ChartType = Object.freeze({ BAR: "bar", LINE: "line", AREA: "area", SCATTER: "scatter", PIE: "pie" });
export const CHART_TYPES = Object.values(ChartType);
export const MAX_PIE_SLICES = 24;
const CATEGORY_SCHEME_SIZE = 10;

/** Plot's colour scheme for `n` categories: Tableau's 10, or evenly spread hues beyond. */
export function categoryScheme(n) {
  return n <= CATEGORY_SCHEME_SIZE ? "tableau10" : "sinebow";
}

const MEASURE = new Set(["number", "float"]);
const CATEGORY = new Set(["text", "boolean"]);

/** The chart a result gets when its Chart view first opens, from its column kinds (values.js). */
export function chartDefaults(columns, kinds) {
  const first = (pred) => kinds.findIndex(pred);
  let x = first((k) => k === "temporal");
  if (x < 0) x = first((k) => CATEGORY.has(k));
  if (x < 0) x = first((k) => MEASURE.has(k));
  if (x < 0) x = 0;
  const y = kinds.findIndex((k, i) => i !== x && MEASURE.has(k));
  const ys = y >= 0 ? [y] : [];
  const type = kinds[x] === "temporal" ? ChartType.LINE : MEASURE.has(kinds[x]) ? ChartType.SCATTER : ChartType.BAR;
  return { type, x, ys, series: null };
}

/** A value as a chart draws it: a number, a Date, a string, or null for no point. */
export function chartValue(value, kind) {
  if (value === null || value === undefined) return null;
  switch (kind) {
    case "number": {
      const n = Number(value);
      return Number.isFinite(n) ? n : null;
    }
    case "float":
      return typeof value === "number" && Number.isFinite(value) ? value : null;
    case "temporal": {
      const text = String(value);
      // Timestamps without a zone (timestamp_ntz) are drawn as they read, as UTC wall time.
      const iso = /T/.test(text) ? (/Z$/.test(text) ? text : text + "Z") : text + "T00:00:00Z";
      const t = Date.parse(iso.replace(/^\+(\d{5,})/, (_, y) => "+" + y.padStart(6, "0")));
      return Number.isNaN(t) ? null : new Date(t);
    }
    case "boolean":
      return String(value);
    case "nested":
    case "binary":
      return typeof value === "string" ? value : JSON.stringify(value, (_k, v) => (typeof v === "bigint" ? String(v) : v));
    default:
      return String(value);
  }
}

/** How the x column is scaled: "time", "linear" or "band" (categories; bars always use bands). */
export function xScaleType(kind, type) {
  if (type === ChartType.BAR || type === ChartType.PIE) return "band";
  if (kind === "temporal") return "time";
  if (MEASURE.has(kind)) return "linear";
  return "band";
}

/**
 * The points of a chart: one per row and y column, {x, y, series, row}, in the order of `rows`
 * (sorted by x for lines and areas over a time or number axis, which are drawn from left to right).
 * @param {{columns: {name: string}[], kinds: string[], value: (row: number, column: number) => any}} source
 * @param {number[]} rows the source rows to draw, in view order
 * @param {{type: string, x: number, ys: number[], series: number|null}} spec
 * @returns {{points: object[], skipped: number}} skipped: rows with no point for some y
 */
export function chartPoints(source, rows, spec) {
  const points = [];
  let skipped = 0;
  const xKind = source.kinds[spec.x];
  const names = spec.ys.map((c) => source.columns[c].name);
  for (const row of rows) {
    const x = chartValue(source.value(row, spec.x), xKind);
    const series = spec.series === null ? null : chartValue(source.value(row, spec.series), source.kinds[spec.series]);
    let missing = x === null;
    for (let i = 0; i < spec.ys.length; i++) {
      const y = chartValue(source.value(row, spec.ys[i]), source.kinds[spec.ys[i]]);
      if (y === null || typeof y !== "number" || x === null) {
        missing = true;
        continue;
      }
      const name = spec.series !== null ? (spec.ys.length > 1 ? `${series ?? "NULL"} · ${names[i]}` : String(series ?? "NULL"))
        : spec.ys.length > 1 ? names[i] : null;
      points.push({ x, y, series: name, row });
    }
    if (missing) skipped++;
  }
  // Lines over a time or number axis run left to right; categories keep the grid's order.
  if ((spec.type === ChartType.LINE || spec.type === ChartType.AREA) && xScaleType(xKind, spec.type) !== "band") points.sort((a, b) => compareX(a.x, b.x) || a.row - b.row);
  return { points, skipped };
}

function compareX(a, b) {
  const va = a instanceof Date ? a.getTime() : a;
  const vb = b instanceof Date ? b.getTime() : b;
  return va < vb ? -1 : va > vb ? 1 : 0;
}

/** Why a pie cannot show these points (null when it can): one y, few slices, none negative. */
export function pieProblem(spec, points) {
  if (spec.ys.length !== 1 || spec.series !== null) return "a pie shows one y column and no series";
  if (points.length > MAX_PIE_SLICES) return `a pie shows at most ${MAX_PIE_SLICES} slices (here ${points.length})`;
  if (points.some((p) => p.y < 0)) return "a pie cannot show negative values";
  if (!points.some((p) => p.y > 0)) return "a pie needs a positive value";
  return null;
}

/** The slices of a pie: start and end angles (radians, clockwise from 12 o'clock) of each point. */
export function pieSlices(points) {
  const total = points.reduce((sum, p) => sum + p.y, 0);
  let angle = 0;
  return points.map((p) => {
    const start = angle;
    angle += (p.y / total) * 2 * Math.PI;
    return { ...p, start, end: angle, share: p.y / total };
  });
}

/** An SVG path for a slice of a circle of radius `r` around (0, 0). */
export function slicePath(start, end, r) {
  const point = (a) => `${(r * Math.sin(a)).toFixed(2)},${(-r * Math.cos(a)).toFixed(2)}`;
  if (end - start >= 2 * Math.PI - 1e-9) {  // a whole circle: two half arcs
    return `M0,${-r}A${r},${r},0,1,1,0,${r}A${r},${r},0,1,1,0,${-r}Z`;
  }
  const large = end - start > Math.PI ? 1 : 0;
  return `M0,0L${point(start)}A${r},${r},0,${large},1,${point(end)}Z`;
}
