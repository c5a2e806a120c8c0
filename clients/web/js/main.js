// Page bootstrap: the header (connection state, Spark UI link, theme), notices, and the
// notebook wired to one gateway session.

import { takeTokenFromUrl } from "./auth.js";
import { GatewayClient } from "./client.js";
import { defaultUrl } from "./connection.js";
import { HistoryPanel, RunHistory } from "./history.js";
import { Notebook } from "./notebook.js";
import { NotebookLibrary, NotebooksPanel } from "./notebooks.js";
import { losslessParseSupported } from "./protocol.js";
import { SchemaBrowser, sqlName } from "./schema.js";

const THEME_KEY = "spark-gateway.theme";
const SCHEMA_KEY = "spark-gateway.schema";  // "open" or "closed", once the user chose
const SCHEMA_OPEN_FROM = 1100;  // px of window width from which the schema browser starts open

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

// ------------------------------------------------------------------ screen readers

/** Say `text` to screen readers only (what a sighted user sees happen elsewhere). */
function announce(text) {
  const box = $("#announcer");
  box.textContent = "";
  requestAnimationFrame(() => { box.textContent = text; });  // a change, even for the same words
}

// ------------------------------------------------------------------ schema browser

/** The schema panel: open or closed (remembered), loaded when first shown in a session. */
function initSchema(notebook, lookups) {
  const panel = $("#schema");
  const toggle = $("#schema-toggle");
  let loadedFor = null;  // the session whose catalog the panel shows
  const browser = new SchemaBrowser(panel, {
    lookups,
    insert: (parts, { focusEditor }) => {
      const text = (language) => (language === "python" ? parts.join(".") : parts.map(sqlName).join("."));
      const cell = notebook.insertAtCursor(text);
      if (focusEditor) cell.focus();
      announce(`Inserted ${parts.join(".")} into cell ${notebook.cells.indexOf(cell) + 1}.`);
    },
  });
  const load = (sessionId) => {
    if (panel.hidden || sessionId === null || loadedFor === sessionId) return;
    loadedFor = sessionId;
    browser.reload();
  };
  let sessionId = null;
  const show = (open, remember) => {
    panel.hidden = !open;
    toggle.setAttribute("aria-expanded", String(open));
    document.body.classList.toggle("schema-open", open);
    if (remember) localStorage.setItem(SCHEMA_KEY, open ? "open" : "closed");
    load(sessionId);
  };
  const stored = localStorage.getItem(SCHEMA_KEY);
  show(stored ? stored === "open" : window.innerWidth >= SCHEMA_OPEN_FROM, false);
  toggle.addEventListener("click", () => {
    show(panel.hidden, true);
    if (!panel.hidden) (panel.querySelector('[role="treeitem"][tabindex="0"]') ?? $("#schema-refresh")).focus();
  });
  $("#schema-close").addEventListener("click", () => { show(false, true); toggle.focus(); });
  panel.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && window.innerWidth < SCHEMA_OPEN_FROM) { show(false, true); toggle.focus(); }
  });
  // The panel sits under the sticky top bar, whose height depends on the window's width.
  new ResizeObserver(([entry]) => {
    document.documentElement.style.setProperty("--topbar-h", `${Math.ceil(entry.borderBoxSize[0].blockSize)}px`);
  }).observe($(".topbar"));
  return {
    /** A session began (new or after a lost one): its catalog is read when the panel shows. */
    sessionStarted(session) {
      sessionId = session.session_id;
      load(sessionId);
    },
  };
}

// ------------------------------------------------------------------ notebooks, files, history

/** Named notebooks, .ipynb open/save (Ctrl/⌘+S, Ctrl/⌘+O) and the history of runs. */
function initFilesAndHistory(notebook) {
  const library = new NotebookLibrary(notebook, { notify, announce });
  const history = new RunHistory();
  notebook.onRunState = (cell, run) => history.track(cell, run, library.currentName);
  library.start();
  const notebooks = new NotebooksPanel(library, $("#notebooks-toggle"));
  const panel = new HistoryPanel(history, {
    open: (entry) => {
      const after = notebook.cells.includes(notebook.activeCell) ? notebook.activeCell : null;
      const cell = notebook.add({ language: entry.language, code: entry.source }, { after, focus: true });
      announce(`The run's code is in the new cell ${notebook.cells.indexOf(cell) + 1}.`);
    },
  });
  $("#notebooks-toggle").addEventListener("click", () => notebooks.show());
  $("#history-toggle").addEventListener("click", () => panel.show());
  window.addEventListener("keydown", (event) => {
    if (!(event.ctrlKey || event.metaKey) || event.altKey || event.shiftKey) return;
    const key = event.key.toLowerCase();
    if (key === "s") { event.preventDefault(); library.save(); }
    else if (key === "o") { event.preventDefault(); notebooks.openFilePicker(); }
  }, true);
  window.addEventListener("pagehide", () => notebook.flush());
  return { library, history };
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
  if (!isNew && lostReason) {
    showBanner("warning", `<strong>A new Spark session</strong> (${escapeText(lostReason)}): state from before `
      + "(temporary views, Python variables) is gone; re-run the cells you need.");
  } else if (isNew) {
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

function showJoined(msg, affected, client) {
  showConnection("connected", {}, client);
  $("#banner").hidden = true;
  const box = $("#connection");
  box.title = `Session ${msg.session_id} (joined; ${msg.connections} connection${msg.connections === 1 ? "" : "s"})`;
  if (affected.length) {
    notify("warning", `Joined the session — but events ${msg.lost.from_seq}–${msg.lost.to_seq} had left the gateway's `
      + `replay buffer: the ${affected.length === 1 ? "cell concerned is" : `${affected.length} cells concerned are`} `
      + "marked, with what is missing.", { timeout: 0 });
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
  let schema;
  const client = new GatewayClient({
    onState: (state, detail) => showConnection(state, detail, client),
    onSession: (session, isNew, lostReason) => {
      showSession(session, isNew, lostReason, client);
      notebook.applySession(session);
      schema.sessionStarted(session);
    },
    onResumed: (msg, affected) => showResumed(msg, affected, client),
    onJoined: (msg, affected) => {
      showJoined(msg, affected, client);
      schema.sessionStarted(client.session);  // (its `session` event may no longer be replayed)
    },
    onAttach: (execution) => notebook.attach(execution),
    onForeign: (id) => notebook.foreign(id),
    onExecutions: (msg) => notebook.executionsListed(msg),
    onDrop: () => {},
    onNotice: (kind, text) => notify(kind, text),
  });
  notebook = new Notebook($("#cells"), client, notify, announce);
  const { library, history } = initFilesAndHistory(notebook);
  schema = initSchema(notebook, client.lookups);

  $("#run-all").addEventListener("click", () => notebook.runAll());
  $("#stop-all").addEventListener("click", () => notebook.stopAll());
  $("#add-sql").addEventListener("click", () => notebook.add({ language: "sql" }, { focus: true }));
  $("#add-python").addEventListener("click", () => notebook.add({ language: "python" }, { focus: true }));
  $("#retry-now").addEventListener("click", () => client.connection.retryNow());
  $("#new-session").addEventListener("click", () => {
    client.newSession();
    notify("info", "Starting a new Spark session…", { timeout: 4000 });
  });
  // A reload (or closing the tab) leaves the session on the gateway: the next page joins it.
  window.addEventListener("pagehide", () => client.leave());
  window.addEventListener("pageshow", (event) => { if (event.persisted) client.comeBack(); });
  $("#banner-close").addEventListener("click", () => { $("#banner").hidden = true; });

  // For people poking at the page from the console, and for the browser tests.
  window.sparkGateway = { client, notebook, library, history };
  client.start();
}

start();
