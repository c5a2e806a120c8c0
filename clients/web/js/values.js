// How result values look: in the table (faithful, typed) and in CSV (exact text).
//
// Wire mapping (protocol/arrow_json.py): SQL NULL is JSON null and nothing else is;
// integers keep every digit (BigInt beyond 2^53, see protocol.js); decimals are strings
// with their scale; NaN/Infinity are strings; dates and timestamps are ISO strings;
// binary is base64; arrays, maps and structs are JSON arrays/objects.

import { toJSONText } from "./protocol.js";

const NUMERIC = /^(tinyint|smallint|int|bigint|float|double|decimal(\(.*\))?|byte|short|integer|long)$/;
const FLOATING = /^(float|double)$/;
const NESTED = /^(array|map|struct)</;

/** How a column of Spark type `type` is rendered. */
export function columnKind(type) {
  const t = String(type).toLowerCase();
  if (NUMERIC.test(t)) return FLOATING.test(t) ? "float" : "number";
  if (t === "boolean") return "boolean";
  if (t === "binary") return "binary";
  if (NESTED.test(t) || t === "variant") return "nested";
  if (t.startsWith("timestamp") || t === "date") return "temporal";
  return "text";
}

/** A double as Spark prints it: integral values keep ".0" (3.0, not 3). */
function formatFloat(value) {
  if (typeof value === "string") return value;  // "NaN", "Infinity", "-Infinity"
  const text = String(value);
  return Number.isInteger(value) && !/e/i.test(text) ? text + ".0" : text;
}

function base64ToHex(text) {
  try {
    const bytes = atob(text);
    let out = "";
    for (let i = 0; i < bytes.length; i++) out += bytes.charCodeAt(i).toString(16).padStart(2, "0") + " ";
    return "[" + out.trimEnd() + "]";
  } catch {
    return text;
  }
}

/**
 * Display text of a non-null value, and a CSS class for special values.
 * @returns {{text: string, cls: string}}
 */
export function displayValue(value, kind) {
  switch (kind) {
    case "float":
      if (typeof value === "string") return { text: value, cls: "special" };
      return { text: formatFloat(value), cls: "" };
    case "number":
      return { text: typeof value === "string" ? value : String(value), cls: "" };
    case "boolean":
      return { text: String(value), cls: "bool" };
    case "binary":
      return { text: base64ToHex(value), cls: "" };
    case "nested":
      return { text: typeof value === "string" ? value : toJSONText(value), cls: "json" };
    default:
      return { text: typeof value === "string" ? value : toJSONText(value), cls: "" };
  }
}

const INTEGER_FORMAT = new Intl.NumberFormat("en-US");

/** 12345 → "12,345" (the page's fixed number style, whatever the browser locale). */
export function count(n) {
  return INTEGER_FORMAT.format(n);
}

/** Milliseconds → "850 ms", "3.2 s", "2 min 5 s". */
export function duration(ms) {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 60)} min ${s % 60} s`;
}

/**
 * The whole text of one value, for the value panel: strings as they are (line breaks and
 * all), nested values as indented JSON (exact: BigInt digits kept), the rest as in a cell.
 */
export function fullValueText(value, kind) {
  if (value === null || value === undefined) return "NULL";
  if (kind === "nested" && typeof value === "object") return prettyJSON(value, "");
  return displayValue(value, kind).text;
}

function prettyJSON(value, indent) {
  if (value === null || typeof value !== "object") return toJSONText(value);
  const inner = indent + "  ";
  const items = Array.isArray(value)
    ? value.map((v) => inner + prettyJSON(v, inner))
    : Object.entries(value).map(([k, v]) => `${inner}${JSON.stringify(k)}: ${prettyJSON(v, inner)}`);
  if (!items.length) return Array.isArray(value) ? "[]" : "{}";
  const [open, close] = Array.isArray(value) ? ["[", "]"] : ["{", "}"];
  return `${open}\n${items.join(",\n")}\n${indent}${close}`;
}

/** `text` made safe to put into HTML. */
export function escapeHtml(text) {
  return text.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c]));
}
