// The session as the page sees it: one connection, one dispatch of gateway events to
// the executions that asked for them, and the session FIFO's queue positions.
//
// An execution "sink" is any object with these methods (all optional but `lost`):
//   accepted(position) queued(position) started() progress(msg) output(stream, text)
//   result(msg) rows(msg) resultClosed(msg) value(msg) error(msg) refused(msg)
//   finished(msg) codeDone() lost()
// notebook.js (a cell's run) and csv.js (an export) are the two kinds of sinks.

import { Connection, defaultUrl } from "./connection.js";
import * as P from "./protocol.js";

const { Evt } = P;

export class GatewayClient {
  /**
   * @param {{onState: Function, onSession: Function, onDrop: Function, onNotice: Function}} ui
   */
  constructor(ui, url = defaultUrl()) {
    this.ui = ui;
    this.session = null;  // the `session` event of the current connection
    this.sessions = 0;    // sessions seen since the page loaded
    this.executions = new Map();  // id → sink, until `finished` (or a refused execute)
    this.queue = [];      // ids accepted and not started yet, in FIFO order
    this.running = null;  // id of the execution whose code runs now (as far as we know)
    this.expectedSeq = 1;
    this.nextId = 1;
    this.connection = new Connection(url, {
      onFrame: (text) => this._onFrame(text),
      onOpen: () => { this.expectedSeq = 1; },
      onDrop: () => this._onDrop(),
      onState: (state, detail) => this.ui.onState(state, detail),
    });
  }

  start() {
    this.connection.start();
  }

  get connected() {
    return this.connection.connected && this.session !== null;
  }

  get pageSizeLimit() {
    return this.session?.limits?.max_page_size ?? 100000;
  }

  /** A fresh execution id, unique for the page's lifetime (so also per session). */
  newId(prefix) {
    return `${prefix}-${this.nextId++}`;
  }

  /** Queue `code` in the session; returns false (and sends nothing) when offline. */
  execute(sink, id, code, language, options) {
    if (!this.connected) return false;
    this.executions.set(id, sink);
    if (!this.connection.send(P.execute(id, code, language, options))) {
      this.executions.delete(id);
      return false;
    }
    return true;
  }

  interrupt(id = null) {
    return this.connection.send(P.interrupt(id));
  }

  /**
   * Stop everything in the session. The queued executions are cancelled one by one,
   * newest first, before the catch-all interrupt: the gateway handles requests in order,
   * and a queued execution must not start while the running one is being stopped.
   */
  interruptAll() {
    for (const id of [...this.queue].reverse()) this.connection.send(P.interrupt(id));
    return this.connection.send(P.interrupt(null));
  }

  streamRows(id, result, maxRows) {
    return this.connection.send(P.streamRows(id, result, maxRows));
  }

  closeResult(id, result) {
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
      case Evt.SESSION:
        this.session = msg;
        this.sessions += 1;
        this.ui.onSession(msg, this.sessions > 1);
        break;
      case Evt.ACCEPTED:
        if (msg.queue_position > 0) this.queue.push(msg.id);
        sink?.accepted?.(msg.queue_position);
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
      case Evt.RESULT:
        sink?.result?.(msg);
        break;
      case Evt.ROWS:
        sink?.rows?.(msg);
        break;
      case Evt.RESULT_CLOSED:
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
        this._dequeue(msg.id);
        if (this.running === msg.id) this.running = null;
        this._announcePositions();
        sink?.finished?.(msg);
        break;
      case Evt.PONG:
        break;  // liveness only; the connection counts every frame
      default:
        console.warn("spark-gateway: unknown message", msg);
        this.ui.onNotice("warning", `Unknown message type ${JSON.stringify(msg.type)} from the gateway (ignored).`);
    }
  }

  _onError(msg, sink) {
    if (sink && msg.request) {
      // A request of this execution was refused (e.g. stream-rows on an ended result).
      if (msg.request === P.Req.EXECUTE) {
        this.executions.delete(msg.id);
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

  _onDrop() {
    const sinks = [...this.executions.values()];
    this.executions.clear();
    this.queue = [];
    this.running = null;
    this.session = null;
    for (const sink of sinks) sink.lost();
    this.ui.onDrop();
  }
}
