// Page bootstrap: the header (connection state, Spark UI link, theme), notices, and the
// notebook wired to one gateway session.

import { takeTokenFromUrl } from "./auth.js";
import { GatewayClient } from "./client.js";
import { defaultUrl } from "./connection.js";
import { Notebook } from "./notebook.js";
import { losslessParseSupported } from "./protocol.js";

const THEME_KEY = "spark-gateway.theme";

const $ = (selector) => document.querySelector(selector);

// ------------------------------------------------------------------ theme

function systemTheme() {
  return matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
}

function applyTheme(theme) {
  document.documentElement.dataset.theme = theme;
  const button = $("#theme-toggle");
  const next = theme === "dark" ? "light" : "dark";
  button.setAttribute("aria-label", `Switch to ${next} mode`);
  button.title = `Switch to ${next} mode`;
  button.dataset.theme = theme;
}

function initTheme() {
  const stored = localStorage.getItem(THEME_KEY);
  applyTheme(stored === "light" || stored === "dark" ? stored : systemTheme());
  matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => {
    if (!localStorage.getItem(THEME_KEY)) applyTheme(systemTheme());
  });
  $("#theme-toggle").addEventListener("click", () => {
    const theme = document.documentElement.dataset.theme === "dark" ? "light" : "dark";
    localStorage.setItem(THEME_KEY, theme);
    applyTheme(theme);
  });
}

// ------------------------------------------------------------------ notices

function notify(kind, text, { action = null, onAction = null, timeout = 6000, tag = null } = {}) {
  const box = document.createElement("div");
  box.className = `toast ${kind}`;
  if (tag) box.dataset.tag = tag;  // a notice that stops being true together with others of its tag
  box.setAttribute("role", kind === "error" ? "alert" : "status");
  const span = document.createElement("span");
  span.textContent = text;
  box.append(span);
  if (action) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "btn small";
    b.textContent = action;
    b.addEventListener("click", () => { onAction(); box.remove(); });
    box.append(b);
  }
  const close = document.createElement("button");
  close.type = "button";
  close.className = "btn small ghost close";
  close.setAttribute("aria-label", "Dismiss");
  close.textContent = "×";
  close.addEventListener("click", () => box.remove());
  box.append(close);
  const toasts = $("#toasts");
  toasts.append(box);
  while (toasts.children.length > 3) toasts.firstElementChild.remove();
  if (timeout) setTimeout(() => box.remove(), timeout);
}

function showBanner(kind, html) {
  const banner = $("#banner");
  banner.className = `banner ${kind}`;
  $("#banner-text").innerHTML = html;
  banner.hidden = false;
}

// ------------------------------------------------------------------ connection state

const STATE_TEXT = {
  connecting: "Connecting…",
  connected: "Connected",
  reconnecting: "Reconnecting…",
  disconnected: "Disconnected",
};

let countdown = 0;

function showConnection(state, detail, client) {
  // The socket is open, but the session is usable only once its `session` (or, when
  // resuming, its `resumed`) frame is in.
  if (state === "connected" && !client.connected) state = client.resuming ? "reconnecting" : "connecting";
  const box = $("#connection");
  box.dataset.state = state;
  const text = $("#connection-text");
  clearInterval(countdown);
  const render = () => {
    let label = STATE_TEXT[state] ?? state;
    if (state === "connected" && client.session) {
      label = client.session.spark_version ? `Connected · Spark ${client.session.spark_version}` : "Connected";
    }
    if ((state === "reconnecting" || state === "disconnected") && detail.retryAt) {
      const s = Math.ceil((detail.retryAt - Date.now()) / 1000);
      label += s > 0 ? ` retrying in ${s} s` : " retrying…";
    }
    text.textContent = label;
  };
  render();
  if (state === "connected") {
    for (const stale of document.querySelectorAll('#toasts .toast[data-tag="offline"]')) stale.remove();
  }
  if (state === "reconnecting" || state === "disconnected") countdown = setInterval(render, 500);
  $("#retry-now").hidden = !(state === "reconnecting" || state === "disconnected");
  document.body.dataset.connection = state;
  if (refusedWithToken !== null && state !== "connected") {
    showRefused(refusedWithToken);
  } else if (detail.stopped) {
    showBanner("warning", "<strong>This session was taken over by another connection</strong> (it resumed "
      + "the same session). This page stopped reconnecting; <em>Retry now</em> opens a new Spark session.");
  } else if (state === "disconnected" || state === "reconnecting") {
    const keep = client.resuming
      ? " Your Spark session is kept on the gateway for a while: running cells go on and nothing is lost if the connection comes back in time."
      : "";
    showBanner("warning", state === "disconnected"
      ? `<strong>Disconnected from the gateway.</strong> Still trying to reconnect; your cells are kept in this browser.${keep}`
      : `<strong>Connection lost.</strong> Reconnecting…${keep}`);
  }
}

function showSession(session, isNew, lostReason, client) {
  refusedWithToken = null;
  const box = $("#connection");
  box.title = `Session ${session.session_id}\nGateway ${session.gateway_version} · protocol ${session.protocol}`
    + (session.spark_version ? `\nSpark ${session.spark_version}` : "");
  showConnection("connected", {}, client);
  const ui = $("#spark-ui");
  if (session.spark_ui) {
    ui.href = session.spark_ui;
    ui.hidden = false;
  } else {
    ui.hidden = true;
  }
  if (isNew) {
    const why = lostReason ? ` (${escapeText(lostReason)})` : "";
    showBanner("warning", `<strong>The Spark session was lost</strong>${why}. `
      + "Reconnected — this is a new Spark session: state from before (temporary views, cached tables, "
      + "Python variables) is gone, and runs that were still open are marked <em>connection lost</em>; "
      + "re-run the cells you need.");
  } else {
    $("#banner").hidden = true;
  }
}

function showResumed(msg, affected, client) {
  showConnection("connected", {}, client);
  if (affected.length) {
    $("#banner").hidden = true;
    notify("warning", `Reconnected — but events ${msg.lost.from_seq}–${msg.lost.to_seq} had left the gateway's `
      + `replay buffer and are lost: the ${affected.length === 1 ? "cell concerned is" : `${affected.length} cells concerned are`} `
      + "marked, with the rows that are missing.", { timeout: 0 });
  } else {
    $("#banner").hidden = true;
    notify("info", "Reconnected — nothing lost.", { timeout: 4000 });
  }
}

function escapeText(text) {
  const span = document.createElement("span");
  span.textContent = text;
  return span.innerHTML;
}

// ------------------------------------------------------------------ start

// null, or (once the gateway refused our websocket) whether we had presented a token.
let refusedWithToken = null;

function showRefused(hadToken) {
  refusedWithToken = hadToken;
  showBanner("warning", hadToken
    ? "<strong>The gateway refused this page's token.</strong> Open the URL that spark-gateway printed at start "
      + "(<code>http://host:port/#token=…</code>) again; if the token is right, this page's origin is not "
      + "allowed (<code>--allowed-origins</code>)."
    : "<strong>Authentication required:</strong> open the URL with <code>?token=…</code> (or "
      + "<code>#token=…</code>) that spark-gateway printed when it started.");
}

function start() {
  takeTokenFromUrl(defaultUrl());  // first: the token leaves the address bar before anything else runs
  initTheme();
  window.addEventListener("spark-gateway:refused", (event) => showRefused(event.detail.hadToken));
  if (!losslessParseSupported) {
    notify("warning", "This browser cannot read integers beyond 2^53 exactly; such values may lose digits.", { timeout: 0 });
  }
  let notebook;
  const client = new GatewayClient({
    onState: (state, detail) => showConnection(state, detail, client),
    onSession: (session, isNew, lostReason) => {
      showSession(session, isNew, lostReason, client);
      notebook.applySession(session);
    },
    onResumed: (msg, affected) => showResumed(msg, affected, client),
    onDrop: () => {},
    onNotice: (kind, text) => notify(kind, text),
  });
  notebook = new Notebook($("#cells"), client, notify);
  notebook.load();

  $("#run-all").addEventListener("click", () => notebook.runAll());
  $("#stop-all").addEventListener("click", () => notebook.stopAll());
  $("#add-sql").addEventListener("click", () => notebook.add({ language: "sql" }, { focus: true }));
  $("#add-python").addEventListener("click", () => notebook.add({ language: "python" }, { focus: true }));
  $("#retry-now").addEventListener("click", () => client.connection.retryNow());
  $("#banner-close").addEventListener("click", () => { $("#banner").hidden = true; });

  // For people poking at the page from the console, and for the browser tests.
  window.sparkGateway = { client, notebook };
  client.start();
}

start();
