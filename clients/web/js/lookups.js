// The editor's questions to the gateway: completions (`complete`), what a name is
// (`inspect`) and the catalog's entries (`catalog`). Each request has an id of its own space
// (not an execution's) and is answered by exactly one event: its answer, or an `error` that
// names the request. client.js hands both to this module.
//
// The protocol counts `cursor`, `from` and `to` in Unicode code points; JavaScript strings
// (and CodeMirror positions) count UTF-16 code units. The two differ only past U+FFFF
// (emoji, rare CJK), and the conversion happens here, at the edge, in both directions.
//
// A gateway older than these messages answers `unknown_type`: from then on (for that session)
// `supported` is false, nothing more is asked, and the editor falls back on local completion.

import * as P from "./protocol.js";

const { ErrorCode, Evt, Req } = P;

const ANSWERS = new Map([
  [Evt.COMPLETIONS, Req.COMPLETE], [Evt.INSPECTION, Req.INSPECT], [Evt.CATALOG_ENTRIES, Req.CATALOG],
]);
const ASKED = new Set(ANSWERS.values());
// The gateway answers within its own deadline (or says `timeout`); this only guards against
// an answer that never comes (e.g. lost with the session).
const GIVE_UP_MS = 20_000;

/** Why a lookup got no answer: `code` is the `error` event's code, or one of this side's below. */
export class LookupError extends Error {
  static OFFLINE = "offline";  // not connected, or the session ended before the answer
  static NO_ANSWER = "no_answer";  // nothing came back in GIVE_UP_MS

  constructor(code, message) {
    super(message);
    this.name = "LookupError";
    this.code = code;
  }
}

// ------------------------------------------------------------------ code points

const SURROGATE = /[\uD800-\uDFFF]/;

/** The code point offset of `offset`, a UTF-16 offset into `text`. */
export function toCodePoints(text, offset) {
  if (!SURROGATE.test(text)) return offset;
  let points = 0;
  for (let i = 0; i < offset; i++) {
    if (isPairAt(text, i) && i + 1 < offset) i++;
    points++;
  }
  return points;
}

/** The UTF-16 offset of `points`, a code point offset into `text` (clamped to its end). */
export function fromCodePoints(text, points) {
  if (!SURROGATE.test(text)) return Math.min(points, text.length);
  let i = 0;
  for (let n = 0; n < points && i < text.length; n++) i += isPairAt(text, i) ? 2 : 1;
  return i;
}

function isPairAt(text, i) {
  const high = text.charCodeAt(i);
  const low = text.charCodeAt(i + 1);
  return high >= 0xd800 && high < 0xdc00 && low >= 0xdc00 && low < 0xe000;
}

// ------------------------------------------------------------------ requests

export class Lookups {
  /** @param {(message: object) => boolean} send the connection's send (false when offline) */
  constructor(send) {
    this.send = send;
    this.supported = null;  // null: not known yet; false: the gateway answered unknown_type
    this.pending = new Map();  // id → {resolve, reject, timer, type}
    this.nextId = 1;
    // Every tab of a session gets every answer: ids unique per page keep them apart.
    this.prefix = `lookup-${Math.random().toString(36).slice(2, 8)}-`;
    this._listeners = new Set();
  }

  /** Call `listener(supported)` whenever `supported` changes; returns the unsubscribe function. */
  onSupportChange(listener) {
    this._listeners.add(listener);
    return () => this._listeners.delete(listener);
  }

  /**
   * Completions at `cursor` (a UTF-16 offset into `code`): {from, to, items, truncated},
   * `from`/`to` as UTF-16 offsets into `code`.
   */
  async complete(language, code, cursor) {
    const answer = await this._ask(Req.COMPLETE, (id) => P.complete(id, code, toCodePoints(code, cursor), language));
    return {
      ...answer,
      from: fromCodePoints(code, answer.from),
      to: fromCodePoints(code, answer.to),
      items: Array.isArray(answer.items) ? answer.items : [],
    };
  }

  /** What the name at `cursor` (a UTF-16 offset into `code`) is: the `inspection` event. */
  async inspect(language, code, cursor) {
    const answer = await this._ask(Req.INSPECT, (id) => P.inspect(id, code, toCodePoints(code, cursor), language));
    const span = Number.isInteger(answer.from) && Number.isInteger(answer.to)
      ? { from: fromCodePoints(code, answer.from), to: fromCodePoints(code, answer.to) } : { from: null, to: null };
    return { ...answer, ...span };
  }

  /** The entries under `path` ([], [catalog], [catalog, database], [catalog, database, table]). */
  catalog(path) {
    return this._ask(Req.CATALOG, (id) => P.catalog(id, path));
  }

  /** Send `build(id)` and wait for its answer (or its error). */
  _ask(type, build) {
    if (this.supported === false) {
      return Promise.reject(new LookupError(ErrorCode.UNKNOWN_TYPE, "not supported by this gateway"));
    }
    const id = `${this.prefix}${this.nextId++}`;
    return new Promise((resolve, reject) => {
      if (!this.send(build(id))) {
        reject(new LookupError(LookupError.OFFLINE, "not connected to the gateway"));
        return;
      }
      const giveUp = () => this._settle(id, null, new LookupError(LookupError.NO_ANSWER, "no answer from the gateway"));
      const timer = setTimeout(giveUp, GIVE_UP_MS);
      this.pending.set(id, { resolve, reject, timer, type });
    });
  }

  // ---------------------------------------------------------------- from client.js

  /** An answer event (completions, inspection, catalog-entries); true when it was one. */
  answered(msg) {
    if (!ANSWERS.has(msg.type)) return false;
    this._setSupported(true);
    this._settle(msg.id, msg, null);
    return true;
  }

  /** An `error` event; true when it refuses one of these requests (then it is dealt with here). */
  refused(msg) {
    if (!ASKED.has(msg.request)) return false;
    if (msg.code === ErrorCode.UNKNOWN_TYPE) this._setSupported(false);
    this._settle(msg.id, null, new LookupError(msg.code, msg.message || msg.code));
    return true;
  }

  /** A new session (perhaps another gateway version): what was asked is void, support unknown. */
  reset(reason = "the session ended") {
    for (const id of [...this.pending.keys()]) this._settle(id, null, new LookupError(LookupError.OFFLINE, reason));
    this._setSupported(null);
  }

  _settle(id, answer, error) {
    const waiting = this.pending.get(id);
    if (!waiting) return;  // answered after we gave up on it
    this.pending.delete(id);
    clearTimeout(waiting.timer);
    if (error) waiting.reject(error);
    else waiting.resolve(answer);
  }

  _setSupported(value) {
    if (this.supported === value) return;
    this.supported = value;
    for (const listener of this._listeners) listener(value);
  }
}
