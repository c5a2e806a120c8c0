// Sort and filter over the rows a result table has loaded: pure logic (no DOM), so node tests it.
//
// Order is exact for every type the gateway sends (values.js says how they come): integers
// beyond 2^53 are BigInt, decimals are strings with their scale, doubles may be "NaN" or
// "Infinity", dates and timestamps are fixed-width ISO text (years outside 0..9999 signed).
// SQL NULL sorts first ascending and last descending, as Spark's ORDER BY does; ties keep the
// order the rows came in. Filters apply to the loaded rows only: the caller says so on screen.

import { displayValue } from "./values.js";

// ------------------------------------------------------------------ keys and order

/** An exact decimal as {sign, exp, digits}: value = sign * 0.digits * 10^exp (digits without zeros at either end). */
export function decimalKey(text) {
  const m = /^\s*([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?\s*$/.exec(String(text));
  if (!m || (m[2] === "" && !m[3])) return null;
  let digits = m[2] + (m[3] ?? "");
  let exp = m[2].length + Number(m[4] ?? 0);
  const lead = digits.search(/[^0]/);
  if (lead < 0) return { sign: 0, exp: 0, digits: "" };
  digits = digits.slice(lead).replace(/0+$/, "");
  exp -= lead;
  return { sign: m[1] === "-" ? -1 : 1, exp, digits };
}

function compareDecimal(a, b) {
  if (a.sign !== b.sign) return a.sign < b.sign ? -1 : 1;
  if (a.sign === 0) return 0;
  let c = a.exp !== b.exp ? (a.exp < b.exp ? -1 : 1) : a.digits < b.digits ? -1 : a.digits > b.digits ? 1 : 0;
  return c * a.sign;
}

/** Compare two exact numbers: JS numbers, BigInts (compared exactly with each other by `<`) or decimal keys. */
export function compareNumeric(a, b) {
  if (typeof a !== "object" && typeof b !== "object") return a < b ? -1 : a > b ? 1 : 0;
  const da = typeof a === "object" ? a : decimalKey(typeof a === "number" ? numberText(a) : String(a));
  const db = typeof b === "object" ? b : decimalKey(typeof b === "number" ? numberText(b) : String(b));
  return compareDecimal(da, db);
}

/** A double's exact shortest text, which decimalKey reads (String() may use an exponent: fine). */
function numberText(n) {
  return Number.isFinite(n) ? String(n) : n > 0 ? "1e999999" : "-1e999999";
}

/** Doubles: -Infinity < numbers < Infinity < NaN (Spark puts NaN above every other double). */
function compareFloat(a, b) {
  const an = Number.isNaN(a);
  const bn = Number.isNaN(b);
  if (an || bn) return an === bn ? 0 : an ? 1 : -1;
  return a < b ? -1 : a > b ? 1 : 0;
}

function compareText(a, b) {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Dates and timestamps: the year as a fixed-width number, then the rest as text (fixed width too). */
export function temporalKey(text) {
  const m = /^([+-]?\d+)(.*)$/.exec(String(text));
  if (!m) return String(text);
  return String(Number(m[1]) + 5_000_000).padStart(8, "0") + m[2].replace(" ", "T");
}

/** The sort key of a non-null value of a column of `kind` (columnKind in values.js). */
export function sortKey(value, kind) {
  switch (kind) {
    case "number":
      return typeof value === "string" ? (decimalKey(value) ?? { sign: 0, exp: 0, digits: "" }) : value;
    case "float":
      if (typeof value === "string") return value === "NaN" ? NaN : value.startsWith("-") ? -Infinity : Infinity;
      return value;
    case "boolean": return value ? 1 : 0;
    case "temporal": return temporalKey(value);
    case "binary": try { return atob(value); } catch { return String(value); }
    default: return displayValue(value, kind).text;
  }
}

/** The comparator of two sort keys of `kind`. */
export function keyComparator(kind) {
  if (kind === "number") return compareNumeric;
  if (kind === "float") return compareFloat;
  return compareText;
}

// ------------------------------------------------------------------ filters

const OPERATOR = /^(>=|<=|<>|!=|>|<|=)\s*(.*)$/s;
const RANGE = /^(.+?)\s*\.\.\s*(.+)$/s;
const TEMPORAL_OPERAND = /^[+-]?\d{4,}(-\d\d(-\d\d([T ]\d\d(:\d\d(:\d\d(\.\d{1,9})?)?)?)?Z?)?)?$/;

/** The key a filter compares with, from what the user typed, or an error message. */
function operandKey(text, kind) {
  const t = text.trim();
  switch (kind) {
    case "number": {
      const d = decimalKey(t);
      return d ? { key: d } : { error: `"${t}" is not a number` };
    }
    case "float": {
      if (/^(nan|[+-]?infinity)$/i.test(t)) return { key: sortKey(t.toLowerCase() === "nan" ? "NaN" : t.startsWith("-") ? "-Infinity" : "Infinity", kind) };
      const d = decimalKey(t);
      return d ? { key: Number(t) } : { error: `"${t}" is not a number` };
    }
    case "temporal":
      return TEMPORAL_OPERAND.test(t) ? { key: temporalKey(t) } : { error: `"${t}" is not a date or time (YYYY-MM-DD[ HH:MM:SS])` };
    case "boolean":
      return /^(true|false)$/i.test(t) ? { key: /^true$/i.test(t) ? 1 : 0 } : { error: `"${t}" is not true or false` };
    default:
      return { key: t };
  }
}

/**
 * A column filter from its text, for a column of `kind`:
 *   `text` rows whose shown value contains it (any case)   `!text` rows whose value does not
 *   `>10` `>=10` `<10` `<=10` `=10` `!=10` (or `<>`)        `10..20` from 10 to 20, both included
 *   `null` rows where it is NULL                            `!null` rows where it is not
 * Comparisons are exact, in the column's own order (numbers as numbers, dates as dates; `=` on a
 * date or timestamp matches a prefix: `=2024-03` is all of March). Text is never trimmed of meaning.
 * @returns {null | {error: string} | {test: (key: any, lowerText: () => string, isNull: boolean) => boolean, needs: "key"|"text"|"none"}}
 */
export function parseFilter(text, kind) {
  const raw = String(text ?? "");
  const t = raw.trim();
  if (!t) return null;
  const lower = t.toLowerCase();
  if (lower === "null" || lower === "is null") return { needs: "none", test: (_k, _t, isNull) => isNull };
  if (["!null", "not null", "is not null"].includes(lower)) return { needs: "none", test: (_k, _t, isNull) => !isNull };
  const cmp = keyComparator(kind);
  const range = kind !== "text" && kind !== "nested" && kind !== "binary" ? RANGE.exec(t) : null;
  if (range && !OPERATOR.test(t)) {
    const lo = operandKey(range[1], kind);
    const hi = operandKey(range[2], kind);
    if (lo.error || hi.error) return { error: lo.error ?? hi.error };
    const upper = kind === "temporal" ? hi.key + "\uffff" : hi.key;  // to 2024-03 is to the end of March
    return { needs: "key", test: (k, _t, isNull) => !isNull && cmp(k, lo.key) >= 0 && cmp(k, upper) <= 0 };
  }
  const op = OPERATOR.exec(t);
  if (op && op[2].trim() !== "") {
    const operand = operandKey(op[2], kind);
    if (operand.error) return { error: operand.error };
    const key = operand.key;
    const prefix = kind === "temporal";
    const equal = (k) => (prefix ? k.startsWith(key) : cmp(k, key) === 0);
    const tests = {
      "=": (k) => equal(k),
      "!=": (k) => !equal(k),
      "<>": (k) => !equal(k),
      ">": (k) => cmp(k, key) > 0 && !equal(k),
      ">=": (k) => cmp(k, key) >= 0,
      "<": (k) => cmp(k, key) < 0,
      "<=": (k) => cmp(k, key) <= 0 || equal(k),
    };
    const test = tests[op[1]];
    return { needs: "key", test: (k, _t, isNull) => !isNull && test(k) };
  }
  if (t.startsWith("!") && t.length > 1) {
    const needle = t.slice(1).toLowerCase();
    return { needs: "text", test: (_k, text, isNull) => !isNull && !text().includes(needle) };
  }
  const needle = lower;
  return { needs: "text", test: (_k, text, isNull) => !isNull && text().includes(needle) };
}

// ------------------------------------------------------------------ the view

/**
 * Which loaded rows show, in which order: the indices of the source's rows that pass the
 * filters, sorted. `source` is {kinds, size, value(row, column)} (a ResultTable).
 */
export class RowView {
  constructor(source) {
    this.source = source;
    this.sort = null;         // {column, direction: "ascending"|"descending"}
    this.globalText = "";
    this.columnTexts = [];    // filter text per column
    this.errors = [];         // filter error per column (null when fine)
    this._filters = [];
    this._keys = [];          // per column: sort keys of rows [0, length), made on first use
    this._texts = [];         // per column: lower-case shown text of rows, made on first use
    this.indices = null;      // null: every loaded row, in order; else a plain array of row indices
    this._covered = 0;        // rows of the source the view has looked at
  }

  /** Any sort or filter in force (else the view is every loaded row in order). */
  get active() {
    return Boolean(this.sort) || this.filtering;
  }

  /** A filter (global or per column) in force: the view may show fewer rows than are loaded. */
  get filtering() {
    return Boolean(this.globalText.trim()) || this._filters.some(Boolean);
  }

  get length() {
    return this.indices ? this.indices.length : this.source.size;
  }

  /** The source row shown at position `i`. */
  rowAt(i) {
    return this.indices ? this.indices[i] : i;
  }

  setSort(column, direction) {
    this.sort = column === null || !direction ? null : { column, direction };
    this.rebuild();
  }

  /** The global filter and the per-column filters (texts); returns the per-column errors. */
  setFilters(globalText, columnTexts) {
    this.globalText = String(globalText ?? "");
    this.columnTexts = [...(columnTexts ?? [])];
    const kinds = this.source.kinds;
    this._filters = kinds.map((kind, c) => parseFilter(this.columnTexts[c], kind));
    this.errors = this._filters.map((f) => (f && f.error) || null);
    this._filters = this._filters.map((f) => (f && !f.error ? f : null));
    this.rebuild();
    return this.errors;
  }

  /** Recompute from every loaded row. */
  rebuild() {
    this.indices = null;
    this._covered = 0;
    this.update();
  }

  /** Take in rows loaded since the last call: filtered, then merged into the order. */
  update() {
    const size = this.source.size;
    if (!this.active) {
      this.indices = null;
      this._covered = size;
      return;
    }
    const fresh = [];
    for (let r = this._covered; r < size; r++) if (this._passes(r)) fresh.push(r);
    this._covered = size;
    const before = this.indices ?? [];
    if (!this.sort) {
      this.indices = before.length ? before.concat(fresh) : fresh;
      return;
    }
    const cmp = this._rowComparator();
    fresh.sort(cmp);
    this.indices = before.length ? merge(before, fresh, cmp) : fresh;
  }

  _key(column, row) {
    const keys = (this._keys[column] ??= []);
    if (row < keys.length) return keys[row];
    const kind = this.source.kinds[column];
    for (let r = keys.length; r <= row; r++) {
      const v = this.source.value(r, column);
      keys.push(v === null || v === undefined ? null : sortKey(v, kind));
    }
    return keys[row];
  }

  _text(column, row) {
    const texts = (this._texts[column] ??= []);
    if (row < texts.length) return texts[row];
    const kind = this.source.kinds[column];
    for (let r = texts.length; r <= row; r++) {
      const v = this.source.value(r, column);
      texts.push(v === null || v === undefined ? null : displayValue(v, kind).text.toLowerCase());
    }
    return texts[row];
  }

  _passes(row) {
    const filters = this._filters;
    for (let c = 0; c < filters.length; c++) {
      const f = filters[c];
      if (!f) continue;
      const v = this.source.value(row, c);
      const isNull = v === null || v === undefined;
      const key = f.needs === "key" && !isNull ? this._key(c, row) : null;
      if (!f.test(key, () => this._text(c, row), isNull)) return false;
    }
    const needle = this.globalText.trim().toLowerCase();
    if (!needle) return true;
    for (let c = 0; c < this.source.kinds.length; c++) {
      const text = this._text(c, row);
      if (text !== null && text.includes(needle)) return true;
    }
    return false;
  }

  _rowComparator() {
    const { column, direction } = this.sort;
    const cmp = keyComparator(this.source.kinds[column]);
    const sign = direction === "descending" ? -1 : 1;
    // Fill the key cache once, so the comparator only reads.
    if (this.source.size) this._key(column, this.source.size - 1);
    const keys = this._keys[column];
    return (a, b) => {
      const ka = keys[a];
      const kb = keys[b];
      let c;
      if (ka === null || kb === null) c = ka === kb ? 0 : ka === null ? -1 : 1;  // NULL is the smallest
      else c = cmp(ka, kb);
      return c ? c * sign : a - b;  // ties: the order the rows came in
    };
  }
}

function merge(a, b, cmp) {
  const out = new Array(a.length + b.length);
  let i = 0;
  let j = 0;
  let k = 0;
  while (i < a.length && j < b.length) out[k++] = cmp(a[i], b[j]) <= 0 ? a[i++] : b[j++];
  while (i < a.length) out[k++] = a[i++];
  while (j < b.length) out[k++] = b[j++];
  return out;
}

// ------------------------------------------------------------------ copy

/** One field of tab-separated text: NULL is empty; a field with a tab, line break or quote is quoted. */
export function tsvField(value, kind) {
  if (value === null || value === undefined) return "";
  const text = displayValue(value, kind).text;
  return /[\t\r\n"]/.test(text) ? '"' + text.replace(/"/g, '""') + '"' : text;
}

/**
 * Tab-separated text of rows × columns of `source` (a header line of the column names first),
 * the way spreadsheets paste it.
 */
export function tsvText(source, rows, columns) {
  const lines = [columns.map((c) => tsvField(source.columns[c].name, "text")).join("\t")];
  for (const r of rows) lines.push(columns.map((c) => tsvField(source.value(r, c), source.kinds[c])).join("\t"));
  return lines.join("\n") + "\n";
}
