// Protocol v1 of spark-gateway, as the web client speaks it.
// The gateway's protocol/messages.py and protocol/schema/*.json are the reference;
// every message type name used by the client is defined here and nowhere else.

export const SUBPROTOCOL = "spark-gateway.v1";

/** Requests, client → gateway. */
export const Req = Object.freeze({
  EXECUTE: "execute",
  INTERRUPT: "interrupt",
  STREAM_ROWS: "stream-rows",
  CLOSE_RESULT: "close-result",
  PING: "ping",
});

/** Events, gateway → client (each carries `seq`, increasing by one per connection). */
export const Evt = Object.freeze({
  SESSION: "session",
  ACCEPTED: "accepted",
  STARTED: "started",
  PROGRESS: "progress",
  STDOUT: "stdout",
  STDERR: "stderr",
  RESULT: "result",
  ROWS: "rows",
  RESULT_CLOSED: "result-closed",
  VALUE: "value",
  ERROR: "error",
  FINISHED: "finished",
  PONG: "pong",
});

/** Terminal statuses carried by `finished`. */
export const Status = Object.freeze({ OK: "ok", ERROR: "error", INTERRUPTED: "interrupted" });

/** Shapes of a JSON `rows` page (`execute`'s `layout`): one array per row, or one per column. */
export const Layout = Object.freeze({ ROWS: "rows", COLUMNS: "columns" });

export const DEFAULT_PAGE_SIZE = 1000;

// ------------------------------------------------------------------ requests

export function execute(id, code, language, { pageSize = DEFAULT_PAGE_SIZE, limit = null, layout = Layout.ROWS } = {}) {
  const msg = { type: Req.EXECUTE, id, code, language, page_size: pageSize };
  if (limit !== null && limit !== undefined) msg.limit = limit;
  if (layout !== Layout.ROWS) msg.layout = layout;
  return msg;
}

export function interrupt(id = null) {
  return id === null ? { type: Req.INTERRUPT } : { type: Req.INTERRUPT, id };
}

export function streamRows(id, result, maxRows) {
  return { type: Req.STREAM_ROWS, id, result, max_rows: maxRows };
}

export function closeResult(id, result) {
  return { type: Req.CLOSE_RESULT, id, result };
}

export function ping(data) {
  return { type: Req.PING, data };
}

// ------------------------------------------------------------------ decoding

/** Rows in a `rows` page, in either layout. */
export function pageCount(msg) {
  return msg.columns ? msg.count : msg.rows.length;
}

/** A `rows` page's values as one array per column (`width` columns), in either layout. */
export function pageColumns(msg, width) {
  if (msg.columns) return msg.columns;
  const columns = Array.from({ length: width }, () => new Array(msg.rows.length));
  msg.rows.forEach((row, r) => { for (let c = 0; c < width; c++) columns[c][r] = row[c]; });
  return columns;
}

// An integer literal outside ±(2^53 - 1) cannot be a JS number without losing digits.
// JSON.parse's reviver receives the literal's source text (context.source, Chromium
// 114+, Firefox 135+, Safari 18.4+), so such integers become BigInt, exactly.
const INTEGER_LITERAL = /^-?\d+$/;
// Only frames holding a run of 16+ digits can contain an unsafe integer; the others
// skip the (slower) reviver pass.
const LONG_DIGIT_RUN = /\d{16}/;

function bigIntReviver(_key, value, context) {
  if (typeof value === "number" && !Number.isSafeInteger(value) && context && typeof context.source === "string"
      && INTEGER_LITERAL.test(context.source)) {
    return BigInt(context.source);
  }
  return value;
}

export const losslessParseSupported = (() => {
  try {
    return JSON.parse("[9007199254740993]", bigIntReviver)[0] === 9007199254740993n;
  } catch {
    return false;
  }
})();

/** Parse one gateway frame; integers beyond 2^53 come back as BigInt, exactly. */
export function decode(text) {
  if (LONG_DIGIT_RUN.test(text)) return JSON.parse(text, bigIntReviver);
  return JSON.parse(text);
}

/** JSON text of a decoded value (BigInt written as its digits). */
export function toJSONText(value) {
  if (value === null || value === undefined) return "null";
  switch (typeof value) {
    case "bigint": return value.toString();
    case "number": return Number.isFinite(value) ? String(value) : JSON.stringify(String(value));
    case "string": return JSON.stringify(value);
    case "boolean": return value ? "true" : "false";
    default: break;
  }
  if (Array.isArray(value)) return "[" + value.map(toJSONText).join(",") + "]";
  return "{" + Object.entries(value).map(([k, v]) => JSON.stringify(k) + ":" + toJSONText(v)).join(",") + "}";
}
