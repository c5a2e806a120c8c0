// The session as the page sees it: one connection at a time, one dispatch of gateway events
// to the executions that asked for them, and the session FIFO's queue positions.
//
// The session outlives its connection (docs/protocol.md, "Resume"): when the socket drops
// (a network failure, a sleeping laptop; not a close of the gateway's), the next connection
// asks for `?resume=<session_id>&last_seq=<last seq seen>`, its first frame is `resumed`,
// and every event after that seq follows exactly once. Requests the gateway may not have
// received are sent again from what this file tracks: executes not yet accepted, interrupts,
// close-results, and the credit of results still streaming. Only when the gateway refuses
// the resume (the session ended, or stayed away longer than its grace period) does the page
// fall back to a new session, marking what was still open as lost.
//
// Joins (docs/protocol.md, "Join"): the session is kept per browser and gateway URL in
// localStorage, so a reloaded page or a second tab joins it with `?join=<session>&last_seq=0`
// instead of opening a new one. Its first frame, `session-state`, lists the session's
// executions; the page attaches a sink to each it shows (ui.onAttach) before the replay of the
// whole stream (from seq 1, as far as the gateway still has it) rebuilds their output once
// and in order, then everything goes on live. An execution another connection starts is
// offered to ui.onForeign on its `accepted`. A joined connection that drops (or is closed as
// too slow, 4002) joins again from its last seq; it never resumes, which would close the
// connection that opened the session.
//
// An execution "sink" is any object with these methods (all optional but `lost`):
//   accepted(position) queued(position) started() progress(msg) output(stream, text)
//   result(msg) rows(msg) resultClosed(msg) value(msg) error(msg) refused(msg)
//   finished(msg) codeDone() lost() lostEvents(item) joined(execution, replayed)
// notebook.js (a cell's run) is the kind of sink.

import { Connection, defaultUrl } from "./connection.js";
import { DownloadLinks } from "./download.js";
import { Lookups } from "./lookups.js";
import * as P from "./protocol.js";

const { Close, ErrorCode, Evt, Req } = P;

// Refusals of our own stream-rows / close-result / interrupt that only mean "it had ended already".
const RACE_CODES = new Set([ErrorCode.INVALID_STATE, ErrorCode.UNKNOWN_RESULT, ErrorCode.UNKNOWN_EXECUTION]);
// Lost events of these types only delay a run's status: nothing of its output is missing.
const STATUS_ONLY = new Set([Evt.ACCEPTED, Evt.STARTED]);
const SESSION_KEY = "spark-gateway.session:";  // + gateway URL → the session this browser joins
// Execution ids are unique per page: two tabs of one session must not pick the same ones.
const PAGE_TOKEN = Math.random().toString(36).slice(2, 8);

/** The session this browser works in at `url`, or null. */
export function storedSession(url) {
  try {
    return localStorage.getItem(SESSION_KEY + url);
  } catch {
    return null;
  }
}

function storeSession(url, sessionId) {
  try {
    if (sessionId) localStorage.setItem(SESSION_KEY + url, sessionId);
    else localStorage.removeItem(SESSION_KEY + url);
  } catch { /* storage full or denied: the next page opens a new session */ }
}

export class GatewayClient {
  /**
   * @param {{onState: Function, onSession: (session: object, isNew: boolean, lostReason: string|null) => void,
   *          onResumed: (resumed: object, affected: string[]) => void, onDrop: Function,
   *          onNotice: Function, onTakenOver?: Function,
   *          onAttach?: (execution: object) => (object|null), onForeign?: (id: string) => (object|null),
   *          onJoined?: (state: object, affected: string[]) => void}} ui
   */
  constructor(ui, url = defaultUrl()) {
    this.ui = ui;
    this.session = null;  // the `session` event of the current session (kept while resuming)
    this.sessions = 0;    // sessions seen since the page loaded
    this.resumes = 0;     // times the session was resumed on a new connection
    this.lastResumed = null;  // the latest `resumed` frame
    this.resuming = false;  // the socket dropped: the next connection resumes `session`
    this.streaming = false;  // this socket delivers the session's stream (`session` or `resumed` came)
    this.lostReason = null;  // why the previous session was lost (said when the next one opens)
    this.endNotice = null;   // an `idle_timeout` / `shutting_down` error: the close that follows ends the session
    this.refused = false;    // this socket's resume was refused: open a new session at once
    this.executions = new Map();  // id → sink, until `finished` (or a refused execute)
    this.queue = [];      // ids accepted and not started yet, in FIFO order
    this.running = null;  // id of the execution whose code runs now (as far as we know)
    this.expectedSeq = 1;
    this.nextId = 1;
    // What a resume sends again (the gateway may not have received it before the drop):
    this.pending = new Map();    // id → its execute request, until `accepted`
    this.resent = new Set();     // ids whose execute was sent again (a duplicate_id answer is expected)
    this.interrupts = new Set(); // ids asked to stop
    this.closing = new Map();    // `${id}\n${result}` → [id, result]: close-result asked, result not ended yet
    this.credit = new Map();     // id → {pageSize, results: Map(result → {granted: rows asked with stream-rows})}
    this.url = url;
    // The join the next connection asks for: {id, lastSeq (null: from the snapshot on)}, or null.
    const stored = storedSession(url);
    this.joining = stored ? { id: stored, lastSeq: 0 } : null;
    this.joined = false;     // the current session came through a join (a drop joins again)
    this.joins = 0;          // session-state frames received
    this.lastState = null;   // the latest `session-state` frame
    this.joinNote = null;    // why the stored session could not be joined (said when the new one opens)
    this.fresh = false;      // "New session" asked: the close that follows opens a new one
    this.connection = new Connection(url, {
      onFrame: (text) => this._onFrame(text),
      onOpen: () => this._onOpen(),
      onDrop: (close) => this._onDrop(close),
      query: () => this._query(),
      onState: (state, detail) => this.ui.onState(state, detail),
    });
    // The editor's completions, documentation and catalog: requests of their own id space.
    this.lookups = new Lookups((message) => this.connected && this.connection.send(message));
    // Signed links to whole-result downloads (download.js): answered beside the executions.
    this.downloads = new DownloadLinks((message) => this.connected && this.connection.send(message));
  }

  /** A signed URL that downloads result `result` of execution `id` as a `format` file. */
  downloadLink(id, result, format) {
    return this.downloads.request(id, result, format);
  }

  start() {
    this.connection.start();
  }

  get connected() {
    return this.connection.connected && this.session !== null && this.streaming;
  }

  get pageSizeLimit() {
    return this.session?.limits?.max_page_size ?? P.MAX_PAGE_SIZE;
  }

  /** A fresh execution id, unique for the page's lifetime and among the session's tabs. */
  newId(prefix) {
    return `${prefix}-${PAGE_TOKEN}-${this.nextId++}`;
  }

  /** The query of the next socket: join the browser's session, resume ours, or none (a new session). */
  _query() {
    if (this.joining) {
      return this.joining.lastSeq === null ? { join: this.joining.id } : { join: this.joining.id, last_seq: this.joining.lastSeq };
    }
    if (this.resuming && this.session) return { resume: this.session.session_id, last_seq: this.expectedSeq - 1 };
    return null;
  }

  /** Leave this session (it goes on for other tabs joined to it) and open a new one. */
  newSession() {
    storeSession(this.url, null);
    this.joining = null;
    this.fresh = true;
    const socket = this.connection.socket;
    if (socket) socket.close(Close.SESSION_ENDED, "new session");  // a "done" close: this page leaves the session
    else {
      this._sessionLost("you started a new session");
      this.fresh = false;
      this.connection.retryNow();
    }
  }

  /** The page goes away (reload, tab closed): leave the session to a reload or the other tabs. */
  leave() {
    const socket = this.connection.socket;
    if (!socket) return;
    socket.onclose = null;
    // A 4xxx code: the gateway keeps the session (for resume_grace when no other tab has it).
    try { socket.close(Close.ABANDONED, "page closed"); } catch { /* closing already */ }
    this.connection.socket = null;
    this.streaming = false;
    if (this.session) {  // back from the back/forward cache: join again from the last event seen
      this.joined = true;
      this.joining = { id: this.session.session_id, lastSeq: this.expectedSeq - 1 };
    }
  }

  /** The page is shown again after leave() (the back/forward cache kept it): reconnect. */
  comeBack() {
    if (!this.connection.socket) this.connection.retryNow();
  }

  /** Ask the gateway for the session's executions (answered by an `executions` event). */
  listExecutions(id) {
    return this.connection.send({ type: Req.LIST_EXECUTIONS, id });
  }

  /** Queue `code` in the session; returns false (and sends nothing) when offline. */
  execute(sink, id, code, language, options) {
    if (!this.connected) return false;
    const request = P.execute(id, code, language, options);
    this.executions.set(id, sink);
    if (!this.connection.send(request)) {
      this.executions.delete(id);
      return false;
    }
    this.pending.set(id, request);
    this.credit.set(id, { pageSize: request.page_size, results: new Map() });
    return true;
  }

  interrupt(id = null) {
    if (id === null) for (const known of this.executions.keys()) this.interrupts.add(known);
    else if (this.executions.has(id)) this.interrupts.add(id);
    return this.connection.send(P.interrupt(id));
  }

  /**
   * Stop everything in the session. The queued executions are cancelled one by one,
   * newest first, before the catch-all interrupt: the gateway handles requests in order,
   * and a queued execution must not start while the running one is being stopped.
   */
  interruptAll() {
    for (const id of [...this.queue].reverse()) this.connection.send(P.interrupt(id));
    return this.interrupt(null);
  }

  streamRows(id, result, maxRows) {
    if (!this.connection.send(P.streamRows(id, result, maxRows))) return false;
    const stream = this.credit.get(id)?.results.get(result);
    if (stream) stream.granted += maxRows;
    return true;
  }

  /** Stop a result's stream (sent again after a resume until the result has ended). */
  closeResult(id, result) {
    if (this.credit.get(id)?.results.has(result)) this.closing.set(`${id}\n${result}`, [id, result]);
    return this.connection.send(P.closeResult(id, result));
  }

  // ---------------------------------------------------------------- events

  _onFrame(text) {
    let msg;
    try {
      msg = P.decode(text);
    } catch (err) {
      this.ui.onNotice("error", `Unreadable message from the gateway: ${err.message}`);
      return;
    }
    if (msg.seq === 0) {  // about this connection (resumed, or a refusal), not in the session's stream
      this._onConnectionFrame(msg);
      return;
    }
    if (typeof msg.seq === "number" && msg.seq < this.expectedSeq) {
      console.warn(`spark-gateway: event seq ${msg.seq} again (expected ${this.expectedSeq}); ignored`, msg);
      return;
    }
    if (msg.seq !== this.expectedSeq) {
      console.warn(`spark-gateway: event seq ${msg.seq}, expected ${this.expectedSeq}`, msg);
    }
    this.expectedSeq = (typeof msg.seq === "number" ? msg.seq : this.expectedSeq) + 1;
    this.dispatch(msg);
  }

  /** The one dispatch of gateway events. */
  dispatch(msg) {
    const sink = typeof msg.id === "string" ? this.executions.get(msg.id) : undefined;
    switch (msg.type) {
      case Evt.SESSION: {
        if (this.joined && this.session?.session_id === msg.session_id) {
          // The session's first event, replayed to a join: its limits and languages, not a new session.
          this.session = msg;
          this.ui.onSession(msg, false, null);
          break;
        }
        this.session = msg;
        this.joined = false;
        storeSession(this.url, msg.session_id);
        this.sessions += 1;
        this.streaming = true;
        const lostReason = this.lostReason;
        this.lostReason = null;
        this.lookups.reset("a new session began");  // maybe another gateway, with other features
        this.ui.onSession(msg, this.sessions > 1, lostReason);
        break;
      }
      case Evt.ACCEPTED:
        this.pending.delete(msg.id);
        if (!sink && !this.resent.has(msg.id) && !msg.attached) {
          // Another connection of the session (another tab) runs it: show it if the page can.
          const foreign = this.ui.onForeign?.(msg.id) ?? null;
          if (foreign) {
            this._adopt(msg.id, foreign, null);
            this.dispatch(msg);
          }
          break;
        }
        if (!sink) {
          // Accepted for an execution given up meanwhile (its execute was sent again): stop it.
          if (this.resent.has(msg.id)) this.connection.send(P.interrupt(msg.id));
          break;
        }
        if (msg.queue_position > 0) this.queue.push(msg.id);
        sink.accepted?.(msg.queue_position);
        break;
      case Evt.STARTED:
        this._dequeue(msg.id);
        // The worker took the next execution, so the previous one's code has returned
        // (its results may still be streaming): the protocol has no event of its own for this.
        if (this.running !== null && this.running !== msg.id) this.executions.get(this.running)?.codeDone?.();
        this.running = msg.id;
        this._announcePositions();
        sink?.started?.();
        break;
      case Evt.PROGRESS:
        sink?.progress?.(msg);
        break;
      case Evt.STDOUT:
      case Evt.STDERR:
        sink?.output?.(msg.type, msg.text);
        break;
      case Evt.RESULT: {
        const credit = this.credit.get(msg.id);
        if (credit && !credit.results.has(msg.result)) credit.results.set(msg.result, { granted: 0 });
        sink?.result?.(msg);
        break;
      }
      case Evt.ROWS:
        if (msg.last) this._resultEnded(msg.id, msg.result);
        sink?.rows?.(msg);
        break;
      case Evt.RESULT_CLOSED:
        this._resultEnded(msg.id, msg.result);
        sink?.resultClosed?.(msg);
        break;
      case Evt.VALUE:
        sink?.value?.(msg);
        break;
      case Evt.ERROR:
        this._onError(msg, sink);
        break;
      case Evt.FINISHED:
        this.executions.delete(msg.id);
        this._forget(msg.id);
        this._dequeue(msg.id);
        if (this.running === msg.id) this.running = null;
        this._announcePositions();
        sink?.finished?.(msg);
        break;
      case Evt.PONG:
        break;  // liveness only; the connection counts every frame
      case Evt.COMPLETIONS:
      case Evt.INSPECTION:
      case Evt.CATALOG_ENTRIES:
        this.lookups.answered(msg);
        break;
      case Evt.DOWNLOAD_LINK:
        this.downloads.handle(msg);
        break;
      case Evt.EXECUTIONS:
        this.ui.onExecutions?.(msg);
        break;
      case Evt.SESSION_STATE:
      case Evt.RESUMED:  // only as the first frame of a connection (seq 0), never in the stream
      case Evt.ARROW_ROWS:  // binary frames, for format "arrow", which the page never asks for
        console.warn(`spark-gateway: unexpected ${msg.type} event in the session's stream (ignored)`, msg);
        break;
      default:
        console.warn("spark-gateway: unknown message", msg);
        this.ui.onNotice("warning", `Unknown message type ${JSON.stringify(msg.type)} from the gateway (ignored).`);
    }
  }

  _onError(msg, sink) {
    if (this.lookups.refused(msg)) return;  // an editor request's error: its caller says what it means
    if (this.downloads.handle(msg)) return;  // a refused download: the result's footer says why
    if (!sink && msg.request && typeof msg.id === "string" && !msg.id.includes(PAGE_TOKEN)) {
      return;  // the answer to another connection's request (another tab of the session): not ours to say
    }
    if (msg.request === Req.EXECUTE && msg.code === ErrorCode.DUPLICATE_ID && this.resent.has(msg.id)) {
      this.resent.delete(msg.id);  // the execute sent again on a resume had arrived the first time
      return;
    }
    if (msg.request && msg.request !== Req.EXECUTE && RACE_CODES.has(msg.code)) {
      return;  // e.g. more rows asked for a result that had just ended: nothing to say
    }
    if (!sink && (msg.code === ErrorCode.IDLE_TIMEOUT || msg.code === ErrorCode.SHUTTING_DOWN)) {
      this.endNotice = msg.message;  // the close that follows ends the session
      this.ui.onNotice("warning", msg.message);
      return;
    }
    if (sink && msg.request) {
      // A request of this execution was refused (e.g. stream-rows on an ended result).
      if (msg.request === Req.EXECUTE) {
        this.executions.delete(msg.id);
        this._forget(msg.id);
        this._dequeue(msg.id);
      }
      sink.refused?.(msg);
    } else if (sink) {
      sink.error?.(msg);
    } else {
      const what = msg.request ? `The gateway refused a ${msg.request} request` : "Gateway error";
      this.ui.onNotice("error", `${what}: ${msg.message}`);
    }
  }

  _dequeue(id) {
    const at = this.queue.indexOf(id);
    if (at >= 0) this.queue.splice(at, 1);
  }

  _announcePositions() {
    const ahead = this.running !== null ? 1 : 0;
    this.queue.forEach((id, index) => this.executions.get(id)?.queued?.(index + ahead));
  }

  _resultEnded(id, result) {
    this.credit.get(id)?.results.delete(result);
    this.closing.delete(`${id}\n${result}`);
  }

  _forget(id) {
    this.pending.delete(id);
    this.interrupts.delete(id);
    const results = this.credit.get(id)?.results;
    if (results) for (const result of results.keys()) this.closing.delete(`${id}\n${result}`);
    this.credit.delete(id);
  }

  // ---------------------------------------------------------------- connections

  _onOpen() {
    this.streaming = false;
    this.refused = false;
    if (!this.resuming) this.expectedSeq = 1;
  }

  /** The dispatch of frames with seq 0: `resumed`, or the error refusing this connection. */
  _onConnectionFrame(msg) {
    switch (msg.type) {
      case Evt.RESUMED:
        this._onResumed(msg);
        break;
      case Evt.SESSION_STATE:
        this._onSessionState(msg);
        break;
      case Evt.ERROR:
        if (msg.code === ErrorCode.RESUME_FAILED && this.joining) {
          this._joinRefused(msg);
        } else if (msg.code === ErrorCode.RESUME_FAILED) {
          this.refused = true;
          this._sessionLost(`it could not be resumed: ${msg.message}`);
        } else {
          this.ui.onNotice("warning", `The gateway refused the connection: ${msg.message}`);
        }
        break;
      default:
        console.warn("spark-gateway: unexpected connection frame", msg);
    }
  }

  /**
   * A join was refused. From seq 0 it may only be too old to replay: join from the snapshot on.
   * Otherwise the session ended: forget it, and open a new one (saying so).
   */
  _joinRefused(msg) {
    this.refused = true;
    if (this.joining.lastSeq === 0 && !this.joined) {
      this.joining.lastSeq = null;
      return;
    }
    this.joining = null;
    storeSession(this.url, null);
    this.joinNote = `the session this browser was working in could not be joined: ${msg.message}`;
    this._sessionLost(this.joinNote);
  }

  /** Attach `sink` to execution `id` (one this page did not start), with its credit. */
  _adopt(id, sink, execution) {
    this.executions.set(id, sink);
    const results = new Map();
    let pageSize = sink.pageSize ?? P.DEFAULT_PAGE_SIZE ?? 1000;
    for (const r of execution?.results ?? []) {
      if (!r.open) continue;
      pageSize = r.page_size;
      results.set(r.result, { granted: Math.max(0, (r.until ?? r.page_size) - r.page_size) });
    }
    this.credit.set(id, { pageSize, results });
  }

  /**
   * The first frame of a joined connection: the session's executions. The page attaches its
   * sinks before the replay (the events from `next_seq` on) rebuilds their output.
   */
  _onSessionState(msg) {
    const rejoin = this.joined && this.session?.session_id === msg.session_id;
    this.joined = true;
    this.joining = null;
    this.resuming = false;
    this.streaming = true;
    this.joins += 1;
    this.lastState = msg;
    if (!rejoin) {
      this.sessions += 1;
      this.session = { type: Evt.SESSION, session_id: msg.session_id, spark_session_id: msg.spark_session_id, limits: {} };
      storeSession(this.url, msg.session_id);
      this.lookups.reset("joined a session");
    }
    this.expectedSeq = msg.next_seq;
    for (const execution of [...msg.executions].reverse()) {  // oldest first
      if (this.executions.has(execution.id)) continue;
      if (rejoin) continue;  // ours are known; the others ended before this page saw them
      const sink = this.ui.onAttach?.(execution) ?? null;
      if (!sink) continue;
      this._adopt(execution.id, sink, execution);
      const replayed = execution.first_seq !== null && execution.first_seq >= msg.next_seq;
      if (!replayed) {  // its beginning is not replayed: start from its status in the snapshot
        if (execution.status === P.ExecutionState.QUEUED) this.queue.push(execution.id);
        if (execution.status === P.ExecutionState.RUNNING) this.running = execution.id;
      }
      sink.joined?.(execution, replayed);
      if (!replayed && Object.values(P.Status).includes(execution.status)) {
        this.executions.delete(execution.id);
        this.credit.delete(execution.id);
      }
    }
    const affected = msg.lost ? this._applyLost(msg.lost) : [];
    if (rejoin) this._resendAfterResume(msg.credit ?? []);
    this.ui.onJoined?.(msg, affected);
  }

  _onResumed(msg) {
    if (!this.resuming || !this.session || msg.session_id !== this.session.session_id) {
      console.warn("spark-gateway: resumed frame for another session", msg);
      return;
    }
    this.resuming = false;
    this.streaming = true;
    this.resumes += 1;
    this.lastResumed = msg;  // for the console and the tests
    this.expectedSeq = msg.next_seq;
    const affected = msg.lost ? this._applyLost(msg.lost) : [];
    this._resendAfterResume(msg.credit ?? []);
    this.ui.onResumed(msg, affected);
  }

  /** Events that left the gateway's replay buffer: each sink concerned marks what it misses. */
  _applyLost(lost) {
    const affected = [];
    for (const item of lost.executions ?? []) {
      const sink = typeof item.id === "string" ? this.executions.get(item.id) : undefined;
      const kinds = Object.keys(item.messages ?? {}).filter((kind) => kind !== Evt.PROGRESS);
      if (!kinds.length) continue;  // progress snapshots only: nothing is missing
      if (!sink) {
        console.warn("spark-gateway: events lost in the reconnection", item);
        continue;
      }
      // A lost `accepted` or `started` only delays the run's status; anything else is missing output.
      if (kinds.some((kind) => !STATUS_ONLY.has(kind))) affected.push(item.id);
      if (item.messages[Evt.STARTED]) this._dequeue(item.id);
      if (item.messages[Evt.FINISHED]) {  // its end will never come
        this.executions.delete(item.id);
        this._forget(item.id);
        this._dequeue(item.id);
        if (this.running === item.id) this.running = null;
      }
      sink.lostEvents?.(item, lost);
    }
    return affected;
  }

  /**
   * Send again what the gateway may not have received before the connection dropped.
   * `credit` (from `resumed`) says how far each result still streaming may go: only the
   * credit granted beyond it was lost, so no page comes that was not asked for.
   */
  _resendAfterResume(credit) {
    const send = (message) => this.connection.send(message);
    for (const [id, request] of this.pending) {
      this.resent.add(id);
      send(request);
    }
    for (const id of [...this.interrupts].reverse()) send(P.interrupt(id));  // queued ones before the running one
    this.downloads.resend();
    for (const [id, result] of this.closing.values()) send(P.closeResult(id, result));
    const until = new Map(credit.map((c) => [`${c.id}\n${c.result}`, c.until]));
    for (const [id, { pageSize, results }] of this.credit) {
      for (const [result, stream] of results) {
        const key = `${id}\n${result}`;
        if (this.closing.has(key) || !until.has(key)) continue;  // closing, or it has ended
        const owed = pageSize + stream.granted - until.get(key);
        if (owed > 0) send(P.streamRows(id, result, owed));
      }
    }
  }

  /**
   * The socket closed after opening: resume the session, or (when it cannot be resumed) give
   * it up. Returns how soon the connection should try again.
   */
  _onDrop(close) {
    const streamed = this.streaming;
    this.streaming = false;
    if (this.refused) {  // the resume was refused: a new session, at once
      this.refused = false;
      return "now";
    }
    if (this.fresh) {  // "New session": this side closed the socket
      this.fresh = false;
      this._sessionLost("you started a new session");
      this.lostReason = null;
      return "now";
    }
    if (!streamed) return "backoff";  // closed before its first frame (busy, draining): same plan again
    if (this.joined && !P.FINAL_CLOSES.has(close.code) && this.endNotice === null) {
      // Join again from the last event seen (4002: we read too slowly; else a dropped network).
      this.joining = { id: this.session.session_id, lastSeq: this.expectedSeq - 1 };
      this.ui.onDrop();
      return close.code === Close.TOO_SLOW ? "now" : "backoff";
    }
    if (close.code === Close.TAKEN_OVER) {
      this._sessionLost("another connection resumed it");
      this.ui.onTakenOver?.();
      return "stop";
    }
    const grace = this.session?.limits?.resume_grace ?? 0;
    if (P.FINAL_CLOSES.has(close.code) || this.endNotice !== null || !(grace > 0)) {
      const why = this.endNotice ?? (close.code === Close.GOING_AWAY ? "the gateway shut down"
        : `the gateway closed the connection (${close.code}${close.reason ? `: ${close.reason}` : ""})`);
      this.endNotice = null;
      this._sessionLost(why);
      return "backoff";
    }
    this.resuming = true;
    this.ui.onDrop();
    return "backoff";
  }

  /** The session is gone: what was in flight is lost; the next connection opens a new session. */
  _sessionLost(reason) {
    const sinks = [...this.executions.values()];
    this.executions.clear();
    this.queue = [];
    this.running = null;
    this.session = null;
    this.joined = false;
    this.resuming = false;
    this.streaming = false;
    this.pending.clear();
    this.resent.clear();
    this.interrupts.clear();
    this.closing.clear();
    this.credit.clear();
    this.lostReason = reason;
    this.downloads.lost();
    for (const sink of sinks) sink.lost();
    this.ui.onDrop();
  }
}
