// Protocol v1 of spark-gateway, as the web client speaks it.
// The gateway's protocol/ package (messages.py, errors.py, close_codes.py) and
// protocol/schema/*.json are the reference; every protocol constant the page uses (message
// types, error codes, statuses, close codes, limits) is defined here and nowhere else.
// tests/test_js_protocol.py checks that these match the Python protocol.

export const SUBPROTOCOL = "spark-gateway.v1";

/** Requests, client → gateway. */
export const Req = Object.freeze({
  EXECUTE: "execute",
  INTERRUPT: "interrupt",
  STREAM_ROWS: "stream-rows",
  CLOSE_RESULT: "close-result",
  PING: "ping",
  // editor requests: answered beside the executions, ids of their own space
  COMPLETE: "complete",
  INSPECT: "inspect",
  CATALOG: "catalog",
  DOWNLOAD: "download",  // a signed link to a whole-result file (download.js)
  LIST_EXECUTIONS: "list-executions",  // answered by `executions`
});

/** Events, gateway → client (each carries `seq`, increasing by one per connection). */
export const Evt = Object.freeze({
  SESSION: "session",
  RESUMED: "resumed",  // seq 0: the first frame of a resumed connection
  ACCEPTED: "accepted",
  STARTED: "started",
  PROGRESS: "progress",
  STDOUT: "stdout",
  STDERR: "stderr",
  RESULT: "result",
  ROWS: "rows",
  ARROW_ROWS: "arrow-rows",  // binary frames, only for format "arrow" (the page asks for JSON)
  RESULT_CLOSED: "result-closed",
  VALUE: "value",
  ERROR: "error",
  FINISHED: "finished",
  PONG: "pong",
  COMPLETIONS: "completions",  // answers complete
  INSPECTION: "inspection",  // answers inspect
  CATALOG_ENTRIES: "catalog-entries",  // answers catalog
  DOWNLOAD_LINK: "download-link",  // answers download
  SESSION_STATE: "session-state",  // seq 0: the first frame of a joined connection
  EXECUTIONS: "executions",  // answers list-executions
});

/** An execution's `status` in `session-state` / `executions` while it has not ended. */
export const ExecutionState = Object.freeze({
  QUEUED: "queued",
  RUNNING: "running",
  DRAINING: "draining",  // its code is done, results still streaming
});

/** Terminal statuses carried by `finished`. */
export const Status = Object.freeze({ OK: "ok", ERROR: "error", INTERRUPTED: "interrupted" });

/** The `code` of an `error` event (protocol/errors.py explains each). */
export const ErrorCode = Object.freeze({
  BAD_MESSAGE: "bad_message",
  UNKNOWN_TYPE: "unknown_type",
  MESSAGE_TOO_LARGE: "message_too_large",
  DUPLICATE_ID: "duplicate_id",
  UNKNOWN_EXECUTION: "unknown_execution",
  UNKNOWN_RESULT: "unknown_result",
  INVALID_STATE: "invalid_state",
  UNSUPPORTED: "unsupported",
  LIMIT_EXCEEDED: "limit_exceeded",
  SPARK_ERROR: "spark_error",
  PYTHON_ERROR: "python_error",
  SPARK_UNAVAILABLE: "spark_unavailable",
  SPARK_SESSION_RESET: "spark_session_reset",
  SHUTTING_DOWN: "shutting_down",
  TIMEOUT: "timeout",
  RESUME_FAILED: "resume_failed",
  IDLE_TIMEOUT: "idle_timeout",
  INTERNAL: "internal",
  // bodies of refused HTTP downloads (GET /download)
  UNAUTHORIZED: "unauthorized",
  FORBIDDEN: "forbidden",
  LINK_EXPIRED: "link_expired",
  UNKNOWN_SESSION: "unknown_session",
});

/** WebSocket close codes (protocol/close_codes.py says what each tells the peer). */
export const Close = Object.freeze({
  // sent by the gateway
  SESSION_ENDED: 1000,
  GOING_AWAY: 1001,
  REFUSED: 1008,
  MESSAGE_TOO_BIG: 1009,
  TRY_AGAIN: 1013,
  TAKEN_OVER: 4001,
  TOO_SLOW: 4002,  // this connection fell too far behind: join again from the last seq received
  // sent by a client
  PROTOCOL_ERROR: 1002,
  ABANDONED: 4000,  // the page gave up on a dead path and will resume (any 4000-4999 keeps the session)
  // never sent: what a peer reports when the connection dropped without a close frame
  ABNORMAL: 1006,
});

/** After one of these close codes the session cannot go on over a new connection. */
export const FINAL_CLOSES = new Set([
  Close.SESSION_ENDED, Close.GOING_AWAY, Close.REFUSED, Close.TRY_AGAIN, Close.TAKEN_OVER,
]);

/** Languages and row formats of `execute`. */
export const Language = Object.freeze({ SQL: "sql", PYTHON: "python" });
export const Format = Object.freeze({ JSON: "json", ARROW: "arrow" });

/** Shapes of a JSON `rows` page (`execute`'s `layout`): one array per row, or one per column. */
export const Layout = Object.freeze({ ROWS: "rows", COLUMNS: "columns" });

/** How `cursor`, `from` and `to` of editor requests count: JavaScript strings are UTF-16. */
export const Units = Object.freeze({ CODE_POINTS: "code_points", UTF16: "utf-16" });

/** The `kind` of a completion item, a catalog entry or an inspected name. */
export const Kind = Object.freeze({
  KEYWORD: "keyword",
  FUNCTION: "function",
  CATALOG: "catalog",
  DATABASE: "database",
  TABLE: "table",
  VIEW: "view",
  COLUMN: "column",
  ALIAS: "alias",
  VARIABLE: "variable",
  METHOD: "method",
  CLASS: "class",
  MODULE: "module",
  PROPERTY: "property",
  PARAMETER: "parameter",
});

export const DEFAULT_PAGE_SIZE = 1000;
export const MAX_PAGE_SIZE = 100000;  // the largest page_size of the protocol (a gateway's limits.max_page_size may be lower)

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

/** `cursor` counts Unicode code points, the protocol's default `units` (lookups.js converts
 * from JavaScript's UTF-16 offsets, and the answers' from/to back). */
export function complete(id, code, cursor, language) {
  return { type: Req.COMPLETE, id, code, cursor, language };
}

export function inspect(id, code, cursor, language) {
  return { type: Req.INSPECT, id, code, cursor, language };
}

/** `path`: [], [catalog], [catalog, database] or [catalog, database, table]. */
export function catalog(id, path = []) {
  return { type: Req.CATALOG, id, path };
}

/** A signed link to download result `result` of execution `id` as a `format` file. */
export function download(id, result, format) {
  return { type: Req.DOWNLOAD, id, result, format };
}

/** File formats of a whole-result download. */
export const DownloadFormat = Object.freeze({ CSV: "csv", PARQUET: "parquet", ARROW: "arrow" });

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
