// The websocket to the gateway: connect, keep alive, and reconnect with backoff.
//
// States: "connecting" (first attempt), "connected", "reconnecting" (lost, retrying
// soon), "disconnected" (lost for a while or the browser is offline; still retrying,
// slowly; or stopped, when the session was taken over). Frames are handed over as text;
// decoding happens in client.js, which also says, for each new socket, which query to add
// (`?resume=<session>&last_seq=<n>` to resume a session) and, when a socket drops, how soon
// to try again. The token never goes into the URL: it stays in the subprotocol (auth.js).

import { subprotocols, tokenFor } from "./auth.js";
import { Close, SUBPROTOCOL, ping } from "./protocol.js";

const BACKOFF_MS = [500, 1000, 2000, 4000, 8000];
const SLOW_RETRY_MS = 15000;
const PING_EVERY_MS = 15000;
const PONG_TIMEOUT_MS = 10000;
// Handshakes failed in a row, with the gateway answering HTTP, before we say "refused".
const REFUSALS_BEFORE_NOTICE = 2;

export function defaultUrl() {
  const override = new URLSearchParams(location.search).get("ws");
  if (override) return override;
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  return `${scheme}://${location.host}/ws`;
}

/** `url` with `params` added to its query. */
export function withQuery(url, params) {
  const target = new URL(url);
  for (const [key, value] of Object.entries(params)) target.searchParams.set(key, String(value));
  return target.href;
}

export class Connection {
  /**
   * @param {string} url
   * @param {{onFrame: (text: string) => void, onOpen: () => void,
   *          onDrop: (close: {code: number, reason: string}) => ("backoff"|"now"|"stop"|undefined),
   *          query?: () => (object|null),
   *          onState: (state: string, detail: object) => void}} handlers
   */
  constructor(url, handlers) {
    this.url = url;
    this.handlers = handlers;
    this.socket = null;
    this.state = "connecting";
    this.attempt = 0;  // failed attempts since the last good connection
    this.retryAt = 0;
    this._retryTimer = 0;
    this._pingTimer = 0;
    this._lastHeard = 0;
    this._everConnected = false;
    this._handshakeFailures = 0;  // sockets that closed before opening, in a row
    this._refusalShown = false;
    this.stopped = false;  // no automatic retry (the session was taken over); retryNow() goes on
    window.addEventListener("online", () => { if (!this.socket && !this.stopped) this.retryNow(); });
    window.addEventListener("offline", () => { if (this.socket) this.abandon(); });
  }

  start() {
    this._open();
  }

  /** Send one request; false when there is no open socket (the caller says so). */
  send(message) {
    if (!this.socket || this.socket.readyState !== WebSocket.OPEN || this.state !== "connected") return false;
    this.socket.send(JSON.stringify(message));
    return true;
  }

  get connected() {
    return this.state === "connected";
  }

  retryNow() {
    clearTimeout(this._retryTimer);
    this._retryTimer = 0;
    this.stopped = false;
    if (!this.socket) this._open();
  }

  _setState(state, detail = {}) {
    this.state = state;
    this.handlers.onState(state, { attempt: this.attempt, retryAt: this.retryAt, ...detail });
  }

  _open() {
    let socket;
    try {
      const query = this.handlers.query?.() ?? null;
      const target = query ? withQuery(this.url, query) : this.url;
      // The token is bound to the gateway's base URL and travels as a subprotocol entry only.
      socket = new WebSocket(target, subprotocols(SUBPROTOCOL, this.url));
    } catch (err) {
      console.error("spark-gateway: cannot open websocket", err);
      this._scheduleRetry();
      return;
    }
    this.socket = socket;
    let opened = false;
    socket.onopen = () => {
      opened = true;
      this._everConnected = true;
      this._handshakeFailures = 0;
      this._refusalShown = false;
      this._lastHeard = performance.now();
      this._setState("connected");
      this._startKeepalive();
      this.handlers.onOpen();
    };
    socket.onmessage = (event) => {
      this._lastHeard = performance.now();
      // A gateway that accepts and at once drops the socket must not defeat the backoff:
      // the attempts count as failed until the gateway has said something.
      this.attempt = 0;
      if (typeof event.data === "string") this.handlers.onFrame(event.data);
    };
    socket.onclose = (event) => {
      if (this.socket !== socket) return;
      this.socket = null;
      this._stopKeepalive();
      let plan = "backoff";
      if (opened) plan = this.handlers.onDrop({ code: event?.code ?? Close.ABNORMAL, reason: event?.reason ?? "" }) ?? "backoff";
      else this._handshakeFailed();
      if (plan === "stop") {
        this.stopped = true;
        clearTimeout(this._retryTimer);
        this._retryTimer = 0;
        this.retryAt = 0;
        this._setState("disconnected", { stopped: true });
      } else if (plan === "now") {
        this.attempt = 0;
        this.retryAt = Date.now();
        this._setState("reconnecting");
        clearTimeout(this._retryTimer);
        this._retryTimer = setTimeout(() => { this._retryTimer = 0; this._open(); }, 0);
      } else {
        this._scheduleRetry();
      }
    };
    socket.onerror = () => { /* onclose follows and handles it */ };
  }

  /**
   * A browser sees a 401/403 answer to the upgrade only as a failed connection. When that keeps
   * happening while the gateway answers plain HTTP, it is refusing us (token or origin): say so
   * with a `spark-gateway:refused` window event (main.js shows how to get in).
   */
  _handshakeFailed() {
    this._handshakeFailures += 1;
    if (this._handshakeFailures < REFUSALS_BEFORE_NOTICE || this._refusalShown) return;
    const health = new URL("/healthz", this.url.replace(/^ws/, "http"));
    fetch(health, { mode: "no-cors", cache: "no-store" }).then(() => {
      if (this._refusalShown || this.state === "connected") return;
      this._refusalShown = true;
      window.dispatchEvent(new CustomEvent("spark-gateway:refused", { detail: { hadToken: tokenFor(this.url) !== null } }));
    }, () => { /* the gateway is down, not refusing: the usual reconnect notice applies */ });
  }

  /**
   * Give up on the current socket now, without waiting for a close handshake (the path is
   * dead, or the browser went offline). The session stays on the gateway for a resume.
   */
  abandon() {
    const socket = this.socket;
    if (!socket) return;
    const onclose = socket.onclose;
    socket.onmessage = null;
    socket.onclose = null;
    // A 4xxx code, so that the gateway keeps the session for a resume (a closed tab's "going away" ends it).
    try { socket.close(Close.ABANDONED, "connection lost"); } catch { /* already closing */ }
    onclose({ code: Close.ABNORMAL, reason: "abandoned" });
  }

  _scheduleRetry() {
    const delay = this.attempt < BACKOFF_MS.length ? BACKOFF_MS[this.attempt] : SLOW_RETRY_MS;
    this.attempt += 1;
    const jitter = delay * (0.8 + Math.random() * 0.4);
    this.retryAt = Date.now() + jitter;
    const slow = this.attempt > BACKOFF_MS.length || !navigator.onLine;
    this._setState(slow ? "disconnected" : (this._everConnected ? "reconnecting" : "connecting"));
    clearTimeout(this._retryTimer);
    this._retryTimer = setTimeout(() => { this._retryTimer = 0; this._open(); }, jitter);
  }

  _startKeepalive() {
    this._stopKeepalive();
    this._pingTimer = setInterval(() => {
      const socket = this.socket;
      if (!socket || socket.readyState !== WebSocket.OPEN) return;
      const silent = performance.now() - this._lastHeard;
      if (silent > PING_EVERY_MS + PONG_TIMEOUT_MS) {
        // Nothing heard, not even our last pong: the path is dead even if TCP has not noticed.
        this.abandon();
        return;
      }
      if (silent > PING_EVERY_MS / 2) socket.send(JSON.stringify(ping(Date.now())));
    }, PING_EVERY_MS / 3);
  }

  _stopKeepalive() {
    clearInterval(this._pingTimer);
    this._pingTimer = 0;
  }
}
