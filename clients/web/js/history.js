// The history of runs: every execution of the page's cells, with its code, language, start
// time, duration, status and row counts, newest first. Kept in localStorage across reloads,
// bounded to the last MAX_RUNS runs (the panel says so); "Open in new cell" brings a past
// run's code back into the notebook.

import { count, duration } from "./values.js";

const STORAGE_KEY = "spark-gateway.history.v1";
export const MAX_RUNS = 500;
const MAX_CODE_CHARS = 100_000;  // code kept per run; longer code is kept cut, and marked so
const FINAL = { ok: "finished", error: "error", interrupted: "interrupted", lost: "connection lost" };
const STATUS_TEXT = { ...FINAL, running: "running", ready: "finished", unknown: "unknown" };

export class RunHistory {
  constructor() {
    this.entries = readEntries();
    this.live = new Map();  // run → its entry, while it may still change
    this.listeners = new Set();
    this._timer = 0;
    // Runs a previous page left running: their end was never seen.
    let stale = false;
    for (const entry of this.entries) {
      if (entry.outcome === "running") { entry.outcome = "unknown"; entry.note = "the page closed before it ended"; stale = true; }
    }
    if (stale) this._write();
  }

  /** A run of `cell` changed state (the notebook calls this on each change). */
  track(cell, run, notebookName) {
    let entry = this.live.get(run);
    if (!entry) {
      // A run this page joined (after a reload, or another tab's): its entry is the one already kept.
      entry = this.entries.find((e) => e.id === run.id);
      if (entry) this.live.set(run, entry);
    }
    if (!entry) {
      if (run.state === "lost" && run.detail === "not connected") return;  // never sent: nothing ran
      const code = run.request.code;
      entry = {
        id: run.id,
        notebook: notebookName,
        language: run.request.language,
        source: code.length > MAX_CODE_CHARS ? code.slice(0, MAX_CODE_CHARS) : code,
        codeCut: code.length > MAX_CODE_CHARS ? code.length : undefined,
        startedAt: Date.now(),
        durationMs: null,
        outcome: "running",
        results: [],
      };
      this.live.set(run, entry);
      this.entries.unshift(entry);
      if (this.entries.length > MAX_RUNS) this.entries.length = MAX_RUNS;
    }
    entry.results = [...run.tables.values()].map((t) => ({
      rows: t.size, truncated: Boolean(t.truncated), more: t.end === null,
    }));
    if (run.state === "ready" || FINAL[run.state]) {
      entry.outcome = run.state;
      entry.durationMs = run.elapsedMs ?? run.gatewayElapsedMs ?? Date.now() - entry.startedAt;
      if (run.detail) entry.note = run.detail;
      const failure = run.element.querySelector(".error-box:not(.notice) .error-class")?.textContent;
      if (failure) entry.note = failure;  // what went wrong, in a word: the class of the error
    }
    if (FINAL[run.state]) this.live.delete(run);
    this._changed();
  }

  clear() {
    this.entries = [];
    this.live.clear();
    this._changed();
  }

  onChange(listener) {
    this.listeners.add(listener);
  }

  _changed() {
    for (const listener of this.listeners) listener();
    clearTimeout(this._timer);
    this._timer = setTimeout(() => this._write(), 200);
  }

  _write() {
    // A full storage drops the older half rather than the newest run.
    for (let keep = this.entries.length; keep >= 0; keep = keep ? Math.floor(keep / 2) : -1) {
      try {
        localStorage.setItem(STORAGE_KEY, JSON.stringify(this.entries.slice(0, keep)));
        if (keep < this.entries.length) this.entries.length = keep;
        return;
      } catch {
        // QuotaExceededError: try with fewer
      }
    }
  }
}

function readEntries() {
  try {
    const saved = JSON.parse(localStorage.getItem(STORAGE_KEY) || "[]");
    return Array.isArray(saved) ? saved.filter((e) => e && typeof e.source === "string").slice(0, MAX_RUNS) : [];
  } catch {
    return [];
  }
}

/** "3 rows", "1,000 rows + more", "2 results: 5 rows, 12 rows (limit reached)". */
export function rowsText(results) {
  const one = (r) => `${count(r.rows)} row${r.rows === 1 ? "" : "s"}${r.more ? " + more" : ""}${r.truncated ? " (limit reached)" : ""}`;
  if (!results?.length) return "no result";
  if (results.length === 1) return one(results[0]);
  return `${results.length} results: ${results.map(one).join(", ")}`;
}

// ---------------------------------------------------------------- the panel

/**
 * The History dialog: runs newest first, a search box, "Open in new cell". `open(entry)` puts a
 * past run's code into the notebook.
 */
export class HistoryPanel {
  constructor(history, { open }) {
    this.history = history;
    this.openEntry = open;
    this._build();
    history.onChange(() => { if (this.dialog.open) this.render(); });
  }

  _build() {
    const dialog = document.createElement("dialog");
    dialog.className = "panel-dialog history";
    dialog.id = "history";
    dialog.setAttribute("aria-labelledby", "history-title");
    dialog.innerHTML = `
      <div class="panel-head">
        <h2 id="history-title">History</h2>
        <span class="spacer"></span>
        <button type="button" class="btn small ghost" data-act="clear">Clear history</button>
        <button type="button" class="btn small ghost" data-act="close" aria-label="Close">×</button>
      </div>
      <div class="panel-tools">
        <input type="search" class="history-search" placeholder="Search code, language, status…" aria-label="Search history">
      </div>
      <p class="panel-note" role="status"></p>
      <div class="confirm" hidden role="group" aria-label="Confirm clearing the history">
        <span>Clear every run kept in this browser?</span>
        <button type="button" class="btn small danger" data-act="clear-yes">Clear</button>
        <button type="button" class="btn small" data-act="clear-no">Cancel</button>
      </div>
      <ol class="history-list" aria-label="Runs, newest first"></ol>`;
    document.body.append(dialog);
    this.dialog = dialog;
    this.search = dialog.querySelector(".history-search");
    this.list = dialog.querySelector(".history-list");
    this.note = dialog.querySelector(".panel-note");
    this.confirm = dialog.querySelector(".confirm");
    this.search.addEventListener("input", () => this.render());
    this.search.addEventListener("keydown", (e) => {
      if (e.key === "ArrowDown") { e.preventDefault(); this._buttons()[0]?.focus(); }
    });
    dialog.addEventListener("click", (e) => {
      if (e.target === dialog) { dialog.close(); return; }  // a click on the backdrop
      const act = e.target.closest("[data-act]")?.dataset.act;
      if (act === "close") dialog.close();
      else if (act === "clear") { this.confirm.hidden = false; this.confirm.querySelector("[data-act=clear-no]").focus(); }
      else if (act === "clear-no") { this.confirm.hidden = true; this.search.focus(); }
      else if (act === "clear-yes") { this.history.clear(); this.confirm.hidden = true; this.search.focus(); }
    });
    // Up and down move between the runs' buttons; Home/End to the first and last.
    this.list.addEventListener("keydown", (e) => {
      const buttons = this._buttons();
      const at = buttons.indexOf(document.activeElement);
      if (at < 0) return;
      const to = { ArrowDown: at + 1, ArrowUp: at - 1, Home: 0, End: buttons.length - 1 }[e.key];
      if (to === undefined) return;
      e.preventDefault();
      if (to < 0) this.search.focus();
      else buttons[Math.min(to, buttons.length - 1)].focus();
    });
  }

  _buttons() {
    return [...this.list.querySelectorAll("button.history-open")];
  }

  show() {
    this.confirm.hidden = true;
    this.render();
    this.dialog.showModal();
    this.search.focus();
    this.search.select();
  }

  render() {
    const words = this.search.value.trim().toLowerCase().split(/\s+/).filter(Boolean);
    const all = this.history.entries;
    const shown = all.filter((e) => {
      const hay = `${e.source}\n${e.language}\n${STATUS_TEXT[e.outcome] ?? e.outcome}\n${e.notebook ?? ""}`.toLowerCase();
      return words.every((w) => hay.includes(w));
    });
    const kept = `This browser keeps the last ${count(MAX_RUNS)} runs.`;
    this.note.textContent = words.length
      ? `${count(shown.length)} of ${count(all.length)} runs match. ${kept}`
      : `${count(all.length)} run${all.length === 1 ? "" : "s"}, newest first. ${kept}`;
    this.list.replaceChildren(...shown.map((entry) => this._item(entry)));
  }

  _item(entry) {
    const li = document.createElement("li");
    li.className = "history-item";
    li.dataset.status = entry.outcome;
    const meta = document.createElement("div");
    meta.className = "history-meta";
    const status = document.createElement("span");
    status.className = `status-badge s-${entry.outcome}`;
    status.textContent = STATUS_TEXT[entry.outcome] ?? entry.outcome;
    const lang = document.createElement("span");
    lang.className = "history-lang";
    lang.textContent = entry.language === "python" ? "Python" : "SQL";
    const when = document.createElement("time");
    when.dateTime = new Date(entry.startedAt).toISOString();
    when.textContent = new Date(entry.startedAt).toLocaleString();
    const facts = document.createElement("span");
    facts.className = "history-facts";
    const parts = [];
    if (entry.durationMs !== null && entry.durationMs !== undefined) parts.push(duration(entry.durationMs));
    if (entry.outcome !== "running") parts.push(rowsText(entry.results));
    if (entry.notebook) parts.push(`in “${entry.notebook}”`);
    if (entry.note) parts.push(entry.note);
    facts.textContent = parts.join(" · ");
    meta.append(status, lang, when, facts);

    const code = document.createElement("pre");
    code.className = "history-code";
    code.id = `history-code-${entry.id}-${entry.startedAt}`;
    const lines = entry.source.split("\n");
    code.textContent = lines.length > 8 ? `${lines.slice(0, 8).join("\n")}\n… (${count(lines.length - 8)} more lines)` : entry.source;
    if (entry.codeCut) code.textContent += `\n… (code cut: ${count(MAX_CODE_CHARS)} of ${count(entry.codeCut)} characters kept)`;

    const open = document.createElement("button");
    open.type = "button";
    open.className = "btn small history-open";
    open.textContent = "Open in new cell";
    open.setAttribute("aria-describedby", code.id);
    open.addEventListener("click", () => {
      this.dialog.close();
      this.openEntry(entry);
    });
    li.append(meta, code, open);
    return li;
  }
}
