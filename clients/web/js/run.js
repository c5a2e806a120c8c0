// One execution of a cell, as shown under the cell: status, progress, output, results
// and errors. It is the execution's sink for the events client.js dispatches.

import { saveBlob } from "./csv.js";
import { downloadResult } from "./download.js";
import { ErrorCode, Evt, ExecutionState, Language, Layout, pageCount, Req, Status } from "./protocol.js";
import { ResultTable } from "./table.js";
import { TerminalText } from "./terminal.js";
import { count, duration, escapeHtml } from "./values.js";

const MAX_STREAM_CHARS = 500_000;  // printed output shown under a cell; the rest is downloadable
const MAX_KEPT_CHARS = 100_000_000;  // printed output kept for "Download all output"
const KEPT_PART_CHARS = 1_000_000;  // kept output moves into a Blob part every this many characters

export class RunView {
  /**
   * @param {object} cell the notebook cell (editor, element, notify)
   * @param {import("./client.js").GatewayClient} client
   * @param {{code: string, language: string, limit: number|null, pageSize: number, id?: string}} request
   *   `id`: an execution already in the session (a joined page attaches to it; nothing is sent)
   */
  constructor(cell, client, request) {
    this.cell = cell;
    this.client = client;
    this.request = request;
    this.id = request.id ?? client.newId(cell.id);
    this.credited = new Map();  // result → rows it may stream to (a joined run: credit granted before)
    this.state = "sending";
    this.tables = new Map();
    this.streamChars = 0;
    this.outputCut = false;  // printed output passed MAX_STREAM_CHARS: the rest is only kept for download
    this.kept = { parts: [], buffer: "", chars: 0 };  // everything printed, for "Download all output"
    this.startedAt = 0;
    this.readyAfter = null;  // ms from start until every result's first page was in
    this.elapsedMs = null;
    this.gatewayElapsedMs = null;
    this.position = 0;
    this.codeReturned = false;
    this.lostNote = null;  // what a reconnection could not bring back, when anything
    this._released = new Set();  // results closed because their `result` event was lost
    this._headless = new Set();  // results whose rows came without their `result` event
    this.lostNoteEl = null;
    this._showInCode = [];  // "Show in code" buttons: they point into the code as it ran
    this._ticker = 0;
    this.joinedStart = null;  // performance.now() of its start, for a run this page joined
    delete cell.element.dataset.lost;  // a mark of the previous run's losses
    this._build();
  }

  /** The page size the client counts credit in (for a run another page started). */
  get pageSize() {
    return this.request.pageSize;
  }

  /**
   * This page joined the session while the execution existed: `replayed` when its events come
   * again from its `accepted` on; otherwise only its status is known, and what it printed before
   * is no longer on the gateway (said plainly).
   */
  joined(execution, replayed) {
    for (const r of execution.results ?? []) if (r.open && r.until !== null) this.credited.set(r.result, r.until);
    // The clock shows time since the run started, not since this page joined.
    const since = execution.started_at ? Date.now() - Date.parse(execution.started_at) : NaN;
    if (Number.isFinite(since)) this.joinedStart = performance.now() - Math.max(0, since);
    if (replayed) return;
    const note = document.createElement("div");
    note.className = "note warning lost-events";
    note.textContent = "This page joined the session after the gateway had dropped the start of this run: "
      + "what it printed and the rows sent before are not shown.";
    this.outputs.append(note);
    this.cell.element.dataset.lost = "true";
    if (execution.status === ExecutionState.QUEUED) this.accepted(1);
    else if (execution.status === ExecutionState.RUNNING || execution.status === ExecutionState.DRAINING) this.started();
    else this._setState({ ok: "ok", error: "error", interrupted: "interrupted" }[execution.status] ?? "error");
  }

  /** Send the execute request; false when not connected. */
  submit() {
    const { code, language, limit, pageSize } = this.request;
    // Column pages: the grid reads cells from them, and no array per row is parsed or kept.
    if (!this.client.execute(this, this.id, code, language, { pageSize, limit, layout: Layout.COLUMNS })) {
      this._setState("lost", "not connected");
      return false;
    }
    this._render();
    return true;
  }

  /** Queued or running: Stop makes sense. */
  get active() {
    return this.state === "sending" || this.state === "queued" || this.state === "running";
  }

  /** Not finished yet (maybe only because a result is still open for more rows). */
  get open() {
    return this.active || this.state === "ready";
  }

  stop() {
    if (this.active) this.client.interrupt(this.id);
  }

  /** Release what this run still holds on the gateway (open result streams). */
  release() {
    if (this.active) {
      this.client.interrupt(this.id);
    } else if (this.state === "ready") {
      for (const table of this.tables.values()) if (table.streaming) this.client.closeResult(this.id, table.number);
    }
  }

  /** The cell's code was edited: "Show in code" can only point into the code as it ran. */
  codeChanged(code) {
    const changed = code !== this.request.code;
    for (const button of this._showInCode) {
      button.disabled = changed;
      button.title = changed ? "The code has changed since this run: run it again to locate the error" : "";
    }
  }

  destroy() {
    clearInterval(this._ticker);
    for (const table of this.tables.values()) table.destroy();
  }

  // ---------------------------------------------------------------- DOM

  _build() {
    const root = document.createElement("div");
    root.className = "run";
    root.dataset.executionId = this.id;
    const head = document.createElement("div");
    head.className = "run-status";
    this.badge = document.createElement("span");
    this.badge.className = "status-badge";
    this.badge.setAttribute("role", "status");
    this.elapsed = document.createElement("span");
    this.elapsed.className = "elapsed";
    this.progressEl = document.createElement("div");
    this.progressEl.className = "progress";
    this.progressEl.hidden = true;
    this.progressEl.setAttribute("role", "progressbar");
    this.progressEl.setAttribute("aria-label", "Spark tasks done");
    this.progressEl.setAttribute("aria-valuemin", "0");
    this.bar = document.createElement("div");
    this.bar.className = "bar";
    this.progressEl.append(this.bar);
    this.progressText = document.createElement("span");
    this.progressText.className = "progress-text";
    head.append(this.badge, this.elapsed, this.progressEl, this.progressText);
    this.outputs = document.createElement("div");
    this.outputs.className = "outputs";
    root.append(head, this.outputs);
    this.element = root;
  }

  _setState(state, detail = "") {
    this.state = state;
    this.detail = detail;
    if (state !== "running") clearInterval(this._ticker);
    this._render();
    this.cell.runStateChanged(this);
  }

  _render() {
    const labels = {
      sending: "sending…",
      queued: this.position > 0 ? `queued (position ${this.position})` : "queued",
      running: "running",
      ready: "done · more rows on demand",
      ok: "done",
      error: "error",
      interrupted: "interrupted",
      lost: "connection lost",
    };
    this.element.dataset.status = this.state;
    this.badge.textContent = this.detail ? `${labels[this.state]} — ${this.detail}` : labels[this.state];
    this.badge.className = `status-badge s-${this.state}`;
    const ms = this._elapsedNow();
    this.elapsed.textContent = ms === null ? "" : duration(ms);
    if (this.gatewayElapsedMs !== null) {
      this.elapsed.title = `Gateway: ${this.gatewayElapsedMs.toFixed(1)} ms from start to finished`
        + (this.readyAfter !== null ? " (includes time waiting for you to load the remaining rows)" : "");
    }
  }

  _elapsedNow() {
    if (this.elapsedMs !== null) return this.elapsedMs;
    if (this.state === "running") return performance.now() - this.startedAt;
    return null;
  }

  _appendBlock(el) {
    this.outputs.append(el);
  }

  // ---------------------------------------------------------------- sink

  accepted(position) {
    this.position = position;
    if (this.state === "sending") this._setState("queued");
  }

  queued(position) {
    this.position = position;
    if (this.state === "queued") this._render();
  }

  started() {
    this.startedAt = this.joinedStart ?? performance.now();
    this._setState("running");
    this._ticker = setInterval(() => this._render(), 100);
  }

  codeDone() {
    this.codeReturned = true;
    this._checkReady();
  }

  progress(msg) {
    // Only while the code runs: once the first pages are in, Spark's remaining work waits
    // for the user (no credit, no fetching), and a stalled bar would only mislead.
    if (this.state !== "running") return;
    const total = msg.tasks_total;
    const done = msg.tasks_done;
    this.progressEl.hidden = false;
    const pct = total > 0 ? Math.min(100, (100 * done) / total) : 0;
    this.bar.style.width = `${pct}%`;
    this.progressEl.setAttribute("aria-valuemax", String(total));
    this.progressEl.setAttribute("aria-valuenow", String(done));
    const running = msg.stages.filter((s) => !s.done).length;
    let text = `${count(done)} / ${count(total)} tasks`;
    if (msg.inflight_tasks) text += ` · ${count(msg.inflight_tasks)} running`;
    if (running) text += ` · ${running} stage${running === 1 ? "" : "s"} active`;
    this.progressText.textContent = text;
    this.progressEl.title = msg.stages.map((s) => `stage ${s.stage_id}: ${s.tasks_done}/${s.tasks_total}${s.done ? " done" : ""}`).join("\n");
  }

  output(stream, text) {
    this._keepOutput(text);
    if (this.outputCut) return;
    // The cut is decided by text beyond the limit, so output ending exactly at it is not cut,
    // and output going on past it always gets the note.
    const room = MAX_STREAM_CHARS - this.streamChars;
    let chunk = text;
    if (text.length > room) {
      this.outputCut = true;
      chunk = text.slice(0, room) +
        "\n… output cut here (more than 500,000 characters): “Download all output” has all of it\n";
      queueMicrotask(() => this._offerAllOutput());  // after the text below, in its own block
    }
    this.streamChars += Math.min(text.length, room);
    const pre = this.outputs.lastElementChild;
    if (!pre || !pre.classList.contains("stream") || this.terminal?.pre !== pre) {
      const block = document.createElement("pre");
      block.className = "stream";
      this._appendBlock(block);
      this.terminal = new TerminalText(block);  // "\r" and ANSI colours as a terminal shows them
    }
    this.terminal.write(stream, chunk);
  }

  _keepOutput(text) {
    const kept = this.kept;
    if (kept.chars >= MAX_KEPT_CHARS) return;
    const room = MAX_KEPT_CHARS - kept.chars;
    kept.buffer += text.length > room
      ? text.slice(0, room) + "\n… (the notebook keeps the first 100,000,000 characters of output)\n"
      : text;
    kept.chars += Math.min(text.length, room);
    if (kept.buffer.length >= KEPT_PART_CHARS) {
      kept.parts.push(new Blob([kept.buffer]));
      kept.buffer = "";
    }
  }

  _offerAllOutput() {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "btn small download-output";
    button.textContent = "Download all output";
    button.title = "Everything the code printed (so far), as a text file";
    button.addEventListener("click", () => {
      const blob = new Blob([...this.kept.parts, this.kept.buffer], { type: "text/plain;charset=utf-8" });
      saveBlob(blob, `${this.id}-output.txt`);
    });
    this._appendBlock(button);
  }

  result(msg) {
    const table = new ResultTable(msg, {
      pageSize: this.request.pageSize,
      requestMore: (t, n) => this.client.streamRows(this.id, t.number, n),
      download: (t, format) => this._download(t, format),
    });
    // A joined run: the credit granted before (by this page before a reload, or another tab).
    const until = this.credited.get(msg.result);
    if (until !== undefined && until > table.requested) table.requested = until;
    this.tables.set(msg.result, table);
    this._appendBlock(table.element);
  }

  rows(msg) {
    const table = this.tables.get(msg.result);
    if (!table) {
      // A result whose `result` event (its columns) was lost in a reconnection: its rows cannot
      // be shown; say so once, and release it if it is still streaming.
      if (pageCount(msg) && !this._headless.has(msg.result)) {
        this._headless.add(msg.result);
        if (this.lostNoteEl) {
          this.lostNoteEl.textContent += ` Result ${msg.result + 1} lost its columns: its rows cannot be shown.`;
          this.lostNote = this.lostNoteEl.textContent;
        }
      }
      if (!msg.last && !this._released.has(msg.result)) {
        this._released.add(msg.result);
        this.client.closeResult(this.id, msg.result);
      }
      return;
    }
    if (table.end === "gap") return;  // rows after the missing ones: the table stopped at the gap
    table.addRows(msg);
    this._checkReady();
  }

  resultClosed(msg) {
    this.tables.get(msg.result)?.closed(msg.reason);
  }

  value(msg) {
    const box = document.createElement("div");
    box.className = "value-out";
    const type = document.createElement("span");
    type.className = "value-type";
    type.textContent = msg.python_type;
    const pre = document.createElement("pre");
    pre.textContent = msg.text;
    box.append(type, pre);
    if (msg.truncated) {
      const note = document.createElement("div");
      note.className = "note warning value-truncated";
      note.textContent = `Showing the first ${msg.text.length.toLocaleString()} of ${msg.length.toLocaleString()} characters of this value.`;
      box.append(note);
    }
    this._appendBlock(box);
  }

  error(msg) {
    this._appendBlock(this._errorBox(msg));
    this._markInEditor(msg);
  }

  refused(msg) {
    if (msg.request === Req.EXECUTE) {
      this.error(msg);
      this._setState("error", "refused");
      return;
    }
    const note = document.createElement("div");
    note.className = "note warning";
    note.textContent = `The gateway refused ${msg.request}: ${msg.message}`;
    this._appendBlock(note);
  }

  finished(msg) {
    this.terminal?.flush();  // the output is complete when the run says it is done
    this.gatewayElapsedMs = msg.elapsed_ms;
    if (this.elapsedMs === null) this.elapsedMs = this.readyAfter ?? msg.elapsed_ms;
    for (const table of this.tables.values()) if (table.streaming) table.closed("closed");
    this.progressEl.hidden = true;
    this.progressText.textContent = "";
    const state = { [Status.OK]: "ok", [Status.ERROR]: "error", [Status.INTERRUPTED]: "interrupted" }[msg.status] ?? "error";
    this._setState(state);
  }

  /**
   * Events of this execution were lost in a reconnection (they had left the gateway's replay
   * buffer): say exactly what is missing, stop each result at its gap, and mark the cell.
   * @param {{id: string, messages: Object<string, number>, results: {result: number, from_offset: number, to_offset: number}[]}} item
   */
  lostEvents(item, lost) {
    if (item.messages?.[Evt.ACCEPTED] && this.state === "sending") this.accepted(0);
    if (item.messages?.[Evt.STARTED] && (this.state === "sending" || this.state === "queued")) this.started();
    const parts = [];
    for (const r of item.results ?? []) {
      const table = this.tables.get(r.result);
      const range = `rows ${count(r.from_offset + 1)}–${count(r.to_offset)} of result ${r.result + 1}`;
      parts.push(range);
      if (table && table.streaming) {
        table.gap(r.from_offset, r.to_offset);
        this.client.closeResult(this.id, r.result);  // the rest cannot be shown in place: release it
      } else if (!table) {
        this._released.add(r.result);
        this.client.closeResult(this.id, r.result);
      }
    }
    const others = Object.entries(item.messages ?? {})
      .filter(([kind]) => ![Evt.PROGRESS, Evt.ROWS, Evt.ACCEPTED, Evt.STARTED].includes(kind))
      .map(([kind, n]) => `${n} ${kind} event${n === 1 ? "" : "s"}`);
    if (others.length) parts.push(others.join(", "));
    if (!(item.results ?? []).length && Object.keys(item.messages ?? {}).every(
      (kind) => kind === Evt.PROGRESS || kind === Evt.ACCEPTED || kind === Evt.STARTED)) return;
    const note = document.createElement("div");
    note.className = "note warning lost-events";
    note.setAttribute("role", "alert");
    note.textContent = `Lost in a reconnection (events ${lost.from_seq}–${lost.to_seq} had left the gateway's replay buffer): `
      + `${parts.join("; ")}.`;
    this.lostNote = note.textContent;
    this.lostNoteEl = note;
    this.element.dataset.lost = "true";
    this.cell.element.dataset.lost = "true";
    this.outputs.append(note);
    if (item.messages?.[Evt.FINISHED]) {  // its end never comes: stop here
      if (this.state === "running") this.elapsedMs = performance.now() - this.startedAt;
      for (const table of this.tables.values()) if (table.streaming) table.closed("lost");
      this.progressEl.hidden = true;
      this.progressText.textContent = "";
      if (this.open) this._setState("lost", "events lost in a reconnection");
    }
  }

  lost() {
    if (this.state === "running") this.elapsedMs = performance.now() - this.startedAt;
    for (const table of this.tables.values()) if (table.streaming) table.closed("lost");
    this.progressEl.hidden = true;
    this.progressText.textContent = "";
    if (this.open) this._setState("lost", this.state === "ready" ? "results kept" : "did not finish");
  }

  /** Running, but nothing more is coming until the user asks for more rows. */
  _checkReady() {
    if (this.state !== "running" || this.tables.size === 0) return;
    const codeDone = this.request.language === Language.SQL || this.codeReturned;
    if (!codeDone) return;
    for (const table of this.tables.values()) if (table.loading) return;
    this.readyAfter = performance.now() - this.startedAt;
    this.elapsedMs = this.readyAfter;
    this.progressEl.hidden = true;
    this.progressText.textContent = "";
    this._setState("ready");
  }

  // ---------------------------------------------------------------- errors

  _errorBox(msg) {
    const box = document.createElement("div");
    box.className = "error-box";
    box.setAttribute("role", "alert");
    if (msg.code === ErrorCode.SPARK_SESSION_RESET) {
      // A notice, not a failure: the cell ran (or runs) on a new Spark session.
      box.classList.add("notice");
      box.setAttribute("role", "status");
    }
    const head = document.createElement("div");
    head.className = "error-head";
    const cls = document.createElement("span");
    cls.className = "error-class";
    cls.textContent = msg.error_class || msg.exception || msg.code;
    head.append(cls);
    if (msg.sql_state) {
      const state = document.createElement("span");
      state.className = "sql-state";
      state.textContent = `SQLSTATE ${msg.sql_state}`;
      head.append(state);
    }
    if (msg.exception && msg.error_class) {
      const exc = document.createElement("span");
      exc.className = "exception";
      exc.textContent = msg.exception;
      head.append(exc);
    }
    if (msg.result !== null && msg.result !== undefined) {
      const r = document.createElement("span");
      r.className = "exception";
      r.textContent = `while streaming result ${msg.result + 1}`;
      head.append(r);
    }
    box.append(head);

    let text = msg.message || "";
    const prefix = msg.error_class ? `[${msg.error_class}] ` : "";
    if (prefix && text.startsWith(prefix)) text = text.slice(prefix.length);
    const message = document.createElement("pre");
    message.className = "error-message";
    message.textContent = text;
    box.append(message);

    const code = this.request.code;
    for (const range of this._fragmentRanges(msg)) {
      const where = document.createElement("div");
      where.className = "error-where";
      const before = code.slice(0, range[0]);
      const line = before.split("\n").length;
      const column = range[0] - before.lastIndexOf("\n");
      const lineStart = before.lastIndexOf("\n") + 1;
      let lineEnd = code.indexOf("\n", range[1]);
      if (lineEnd < 0) lineEnd = code.length;
      const excerpt = `${escapeHtml(code.slice(lineStart, range[0]))}<mark>${escapeHtml(code.slice(range[0], range[1]))}</mark>${escapeHtml(code.slice(range[1], lineEnd))}`;
      where.innerHTML = `<span class="where-label">line ${line}, column ${column}</span><code class="error-excerpt">${excerpt}</code>`;
      const show = document.createElement("button");
      show.type = "button";
      show.className = "btn small link";
      show.textContent = "Show in code";
      show.addEventListener("click", () => this.cell.selectRange(range[0], range[1]));
      this._showInCode.push(show);
      where.append(show);
      box.append(where);
    }

    if (msg.traceback) {
      const details = document.createElement("details");
      details.className = "traceback";
      details.open = true;
      const summary = document.createElement("summary");
      summary.textContent = "Traceback";
      const pre = document.createElement("pre");
      pre.textContent = msg.traceback;
      details.append(summary, pre);
      box.append(details);
    }
    return box;
  }

  /**
   * The error's fragments as [start, endExclusive] ranges in the code that ran. Context
   * offsets are trusted when the code there is the fragment; otherwise (e.g. a SQL error
   * raised from spark.sql("...") in a Python cell, whose offsets are into that string) the
   * fragment is looked up in the code and used when it occurs exactly once.
   */
  _fragmentRanges(msg) {
    const code = this.request.code;
    const out = [];
    for (const ctx of msg.context || []) {
      if (!ctx.fragment) continue;
      // In a Python cell the SQL ran from a string inside the code, and positions may be
      // relative to that string: only a fragment the error's message quotes is trusted.
      if (this.request.language === Language.PYTHON && !(msg.message || "").includes(ctx.fragment)) continue;
      if (code.slice(ctx.start, ctx.stop + 1) === ctx.fragment) {
        out.push([ctx.start, ctx.stop + 1]);
        continue;
      }
      const at = code.indexOf(ctx.fragment);
      if (at >= 0 && code.indexOf(ctx.fragment, at + 1) < 0) out.push([at, at + ctx.fragment.length]);
    }
    return out;
  }

  _markInEditor(msg) {
    const ranges = this._fragmentRanges(msg);
    const lines = [];
    if (msg.traceback) {
      const re = new RegExp(`File "<cell ${escapeRe(this.id)}>", line (\\d+)`, "g");
      let m;
      let last = null;
      while ((m = re.exec(msg.traceback)) !== null) last = Number(m[1]);
      if (last !== null) lines.push(last);
    }
    if ((ranges.length || lines.length) && this.cell.editor.value === this.request.code) {
      this.cell.editor.markError(ranges, lines);
    }
  }

  // ---------------------------------------------------------------- downloads

  _download(table, format) {
    const report = (text, state) => {
      table.exportStatus.textContent = text;
      table.exportStatus.dataset.state = state;
    };
    downloadResult(this.client, this.id, table, format, report);
  }
}

function escapeRe(text) {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
