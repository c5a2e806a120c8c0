// The notebook: an ordered list of cells, each with an editor, a language, an optional
// row limit, and the output of its latest run. Cells are kept in localStorage, so a
// reload (or a dropped connection) loses no code.

import { CodeEditor } from "./editor.js";
import { DEFAULT_PAGE_SIZE } from "./protocol.js";
import { RunView } from "./run.js";
import { TextCell } from "./textcell.js";

export const STORAGE_KEY = "spark-gateway.notebook.v1";

// The first notebook a visitor sees. The first two cells use the sample tables and Python;
// welcomeCells() swaps them for cells that need neither when the gateway has no sample
// tables or runs SQL only, so that "Run all" on a fresh page never fails.
export const WELCOME_CELLS = [
  {
    language: "sql",
    code: `-- Top cities by revenue: the sample tables \`sales\` and \`consumers\`, joined.
SELECT c.city,
       count(DISTINCT c.id) AS customers,
       count(*)             AS orders,
       sum(s.amount)        AS revenue
FROM sales s
JOIN consumers c ON s.consumer_id = c.id
GROUP BY c.city
ORDER BY revenue DESC`,
  },
  {
    language: "python",
    code: `# Python cells share the session: \`spark\` is ready, print() goes to the output,
# and a trailing DataFrame becomes a result table (display(df) shows more than one).
sales = spark.table("sales")
print("sales rows:", sales.count())
(sales.groupBy("product")
      .sum("amount", "quantity")
      .withColumnRenamed("sum(amount)", "revenue")
      .withColumnRenamed("sum(quantity)", "units")
      .orderBy("revenue", ascending=False))`,
  },
  {
    language: "sql",
    code: `-- Values arrive exactly: big integers, decimals with their scale, NULL vs the text 'null'.
SELECT 9007199254740993                   AS big_int,
       CAST(12.3 AS DECIMAL(10, 3))       AS price,
       NULL                               AS nothing,
       'null'                             AS text_null,
       double('NaN')                      AS not_a_number,
       TIMESTAMP'2024-01-02 03:04:05.123456' AS ts,
       array(1, 2, 3)                     AS arr,
       named_struct('x', 1, 'y', 'two')   AS pair`,
  },
  {
    language: "sql",
    code: `-- Page through a large result: scroll to the bottom of the table or press "Load more".
SELECT id, id * id AS square, sha2(CAST(id AS STRING), 256) AS hash FROM range(100000)`,
  },
];

const WITHOUT_SAMPLE_TABLES = {
  sql: {
    language: "sql",
    code: `-- Ten million generated rows, aggregated by Spark (this gateway has no sample tables:
-- start it with --sample-data for \`sales\` and \`consumers\`).
SELECT id % 10 AS last_digit, count(*) AS n, sum(id) AS total
FROM range(10000000)
GROUP BY last_digit
ORDER BY last_digit`,
  },
  python: {
    language: "python",
    code: `# Python cells share the session: \`spark\` is ready, print() goes to the output,
# and a trailing DataFrame becomes a result table (display(df) shows more than one).
df = spark.range(1000000).selectExpr("id", "id % 7 AS weekday")
print("rows:", df.count())
df.groupBy("weekday").count().orderBy("weekday")`,
  },
};

/** The welcome cells for a gateway offering `languages` and the temp views `sampleTables`. */
export function welcomeCells(languages, sampleTables) {
  const samples = ["sales", "consumers"].every((t) => sampleTables.includes(t));
  const [sql, python, ...rest] = WELCOME_CELLS;
  const first = samples ? [sql, python] : [WITHOUT_SAMPLE_TABLES.sql, WITHOUT_SAMPLE_TABLES.python];
  return [...first, ...rest].filter((spec) => languages.includes(spec.language));
}

const ALL_LANGUAGES = ["sql", "python"];

/** A cell for `spec`: markdown and raw cells (from .ipynb files) are text, kept but not run. */
function makeCell(notebook, spec) {
  return TextCell.kinds.includes(spec?.language) ? new TextCell(notebook, spec) : new Cell(notebook, spec);
}

let cellCounter = 0;
const FOREIGN_WAIT_MS = 1000;  // how long another tab's run waits for its cell in the saved notebook

export class Cell {
  constructor(notebook, { language = "sql", code = "", limit = null, ipynb = null, execution = null } = {}) {
    this.notebook = notebook;
    this.id = `c${++cellCounter}`;
    this.run = null;
    // The id of this cell's latest execution, saved with the cell: a reloaded page (or another
    // tab) joining the session finds the cell of each execution by it.
    this.executionId = typeof execution === "string" ? execution : null;
    this.ipynb = ipynb;  // what an opened .ipynb file said of this cell (id, metadata, magic), written back
    this._build(language, code, limit);
  }

  get language() {
    return this.langSelect.value;
  }

  get limit() {
    const text = this.limitInput.value.trim();
    if (!text) return null;
    const n = Number(text);
    return Number.isInteger(n) && n >= 0 ? n : null;
  }

  toJSON() {
    const spec = { language: this.language, code: this.editor.value, limit: this.limit };
    if (this.ipynb) spec.ipynb = this.ipynb;
    if (this.executionId) spec.execution = this.executionId;
    return spec;
  }

  _build(language, code, limit) {
    const el = document.createElement("section");
    el.className = "cell";
    el.tabIndex = -1;
    el.dataset.cellId = this.id;
    el.setAttribute("aria-label", "Cell");
    this.element = el;

    const bar = document.createElement("div");
    bar.className = "cell-toolbar";
    this.runButton = iconButton("run", "Run", "Run (Ctrl+Enter)", () => this.execute());
    this.runButton.classList.add("primary");
    this.stopButton = iconButton("stop", "Stop", "Stop this execution on the cluster", () => this.stop());
    this.stopButton.hidden = true;

    this.langSelect = document.createElement("select");
    this.langSelect.className = "lang";
    this.langSelect.setAttribute("aria-label", "Language");
    for (const [value, label] of [["sql", "SQL"], ["python", "Python"]]) {
      const opt = document.createElement("option");
      opt.value = value;
      opt.textContent = label;
      this.langSelect.append(opt);
    }
    this.langSelect.value = language;
    this.langSelect.addEventListener("change", () => {
      this.editor.language = this.language;
      el.dataset.language = this.language;
      this.notebook.save();
    });

    const limitLabel = document.createElement("label");
    limitLabel.className = "limit";
    limitLabel.title = "Stream at most this many rows of each result (empty: all)";
    this.limitInput = document.createElement("input");
    this.limitInput.type = "number";
    this.limitInput.min = "0";
    this.limitInput.step = "1";
    this.limitInput.placeholder = "all";
    this.limitInput.className = "limit-input";
    if (limit !== null && limit !== undefined) this.limitInput.value = String(limit);
    this.limitInput.addEventListener("input", () => this.notebook.save());
    this.limitInput.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); this.execute(); }
    });
    limitLabel.append("Limit", this.limitInput);

    this.statusDot = document.createElement("span");
    this.statusDot.className = "cell-state";
    const spacer = document.createElement("span");
    spacer.className = "spacer";
    this.upButton = iconButton("up", "", "Move cell up", () => this.notebook.move(this, -1));
    this.downButton = iconButton("down", "", "Move cell down", () => this.notebook.move(this, 1));
    const del = iconButton("delete", "", "Delete cell", () => this.notebook.remove(this));
    bar.append(this.runButton, this.stopButton, this.langSelect, limitLabel, this.statusDot, spacer,
      this.upButton, this.downButton, del);

    this.editor = new CodeEditor({
      value: code,
      language,
      label: "Cell code",
      lookups: this.notebook.client.lookups,
      announce: this.notebook.announce,
      onChange: () => { this.notebook.save(); this.run?.codeChanged(this.editor.value); },
      onRun: () => this.execute(),
      onRunAdvance: () => { this.execute(); this.notebook.focusNext(this); },
      onEscape: () => el.focus(),
    });
    this.output = document.createElement("div");
    this.output.className = "cell-output";
    el.dataset.language = language;
    el.append(bar, this.editor.element, this.output);

    // The schema browser inserts names where the user was last typing.
    el.addEventListener("focusin", () => { this.notebook.activeCell = this; });
    el.addEventListener("keydown", (e) => {
      if (e.target !== el) return;
      if (e.key === "Enter") { e.preventDefault(); this.editor.focus(); }
      else if (e.key === "ArrowDown" || e.key === "j") { e.preventDefault(); this.notebook.focusNext(this, false); }
      else if (e.key === "ArrowUp" || e.key === "k") { e.preventDefault(); this.notebook.focusPrevious(this); }
    });
  }

  focus() {
    this.editor.focus();
  }

  selectRange(start, end) {
    this.editor.select(start, end);
  }

  /** Grey out the languages this gateway does not run (a cell keeps its own, and says so when run). */
  offerLanguages(languages) {
    for (const opt of this.langSelect.options) {
      opt.disabled = !languages.includes(opt.value);
      opt.title = opt.disabled ? "This gateway does not run this language" : "";
    }
  }

  execute() {
    const code = this.editor.value;
    if (!code.trim()) return;
    this.notebook.pristine = false;
    if (!this.notebook.client.connected) {
      this.notebook.notify("warning", "Not connected to the gateway — this cell did not run. Run it again once the "
        + "connection is back.", { tag: "offline", timeout: 0 });
      return;
    }
    this.editor.clearMarks();
    if (this.run) {
      this.run.release();
      this.run.destroy();
    }
    const run = new RunView(this, this.notebook.client, {
      code, language: this.language, limit: this.limit, pageSize: DEFAULT_PAGE_SIZE,
    });
    this.run = run;
    this.executionId = run.id;
    this.notebook.save();
    this.notebook.flush();  // now: another tab of the session looks the execution up in the saved cells
    this.output.replaceChildren(run.element);
    run.submit();
    this.runStateChanged(run);
  }

  /** Show execution `id` of the session (already there: a joined page) as this cell's run. */
  attach(id, { code = this.editor.value, language = this.language, pageSize = DEFAULT_PAGE_SIZE } = {}) {
    if (this.run) this.run.destroy();
    const run = new RunView(this, this.notebook.client, { id, code, language, limit: this.limit, pageSize });
    this.run = run;
    this.executionId = id;
    this.output.replaceChildren(run.element);
    run._render();
    this.runStateChanged(run);
    return run;
  }

  stop() {
    this.run?.stop();
  }

  runStateChanged(run) {
    if (run !== this.run) return;
    this.stopButton.hidden = !run.active;
    this.element.dataset.status = run.state;
    this.notebook.refreshControls();
    this.notebook.onRunState(this, run);
  }

  destroy() {
    if (this.run) {
      this.run.release();
      this.run.destroy();
    }
    this.editor.destroy();
  }
}

export class Notebook {
  constructor(container, client, notify, announce = () => {}) {
    this.container = container;
    this.client = client;
    this.notify = notify;
    this.announce = announce;  // a message for screen readers only
    this.cells = [];
    this.activeCell = null;  // the cell focused last: where the schema browser inserts
    this._saveTimer = 0;
    this.languages = ALL_LANGUAGES;
    this.pristine = false; // showing the welcome cells, untouched: the session may swap them
    this.storageKey = STORAGE_KEY;  // where the cells are kept (notebooks.js names other notebooks)
    this._dirty = false;
    this.awaitingCode = new Map();  // execution id → the new cell waiting for its code (foreign())
    this.onRunState = () => {};  // (cell, run) on each change of a run's state: the history listens
  }

  load() {
    let saved = null;
    try {
      saved = JSON.parse(localStorage.getItem(this.storageKey) || "null");
    } catch {
      saved = null;
    }
    const restored = Array.isArray(saved?.cells) && saved.cells.length;
    for (const spec of restored ? saved.cells : WELCOME_CELLS) this.add(spec, { save: false });
    this.pristine = !restored;
    this._renderAdders();
    if (this.pristine && this.session) this.applySession(this.session);  // welcome cells fit for this gateway
  }

  /** What the gateway's `session` event says it offers: languages, sample tables. */
  applySession(session) {
    this.session = session;
    this.languages = Array.isArray(session.languages) ? session.languages : ALL_LANGUAGES;
    if (this.pristine) {
      const welcome = welcomeCells(this.languages, session.sample_tables || []);
      const same = JSON.stringify(welcome.map((s) => [s.language, s.code]))
        === JSON.stringify(this.cells.map((c) => [c.language, c.editor.value]));
      if (!same) {
        for (const cell of this.cells) cell.destroy();
        this.cells = welcome.map((spec) => makeCell(this, spec));
      }
    }
    for (const cell of this.cells) cell.offerLanguages(this.languages);
    document.querySelector("#add-python")?.toggleAttribute("hidden", !this.languages.includes("python"));
    this._place();
  }

  /**
   * Show the cells `specs`, kept from now on under `storageKey` (another notebook, a file opened);
   * `specs` null: the cells kept there, or the welcome cells when none are.
   */
  show(specs, storageKey) {
    this.flush();
    for (const cell of this.cells) {
      cell.destroy();
      cell.element.remove();
    }
    this.storageKey = storageKey;
    this.pristine = false;
    this.activeCell = null;
    this.cells = [];
    if (specs === null) {
      this.load();
      return;
    }
    this.cells = specs.map((spec) => makeCell(this, spec));
    for (const cell of this.cells) cell.offerLanguages(this.languages);
    this._place();
  }

  /**
   * A joined page: the sink of `execution` (from `session-state`) in the cell it ran in, or null
   * when this notebook has no such cell (an older run, or another notebook's).
   */
  attach(execution) {
    const cell = this.cells.find((c) => c instanceof Cell && c.executionId === execution.id);
    if (!cell) return null;
    const pageSize = execution.results?.[0]?.page_size ?? DEFAULT_PAGE_SIZE;
    return cell.attach(execution.id, { language: execution.language, pageSize });
  }

  /**
   * An execution another tab started in the session: shown live in its cell. The other tab saved
   * the notebook (with the execution id) before sending it, so the cell is found by its place in
   * the saved cells; when it is not in this notebook, a new cell at the end shows it (its code
   * comes from `list-executions`): a run of the session is never hidden.
   */
  foreign(id) {
    const found = this._savedCellOf(id);
    if (found) return found;
    // The other tab's save may reach this tab's storage a moment after its `accepted`: the run's
    // events wait (in order) until the cell is found, for at most FOREIGN_WAIT_MS.
    const waiting = [];
    let target = null;
    const sink = new Proxy({}, {
      get: (_, name) => {
        if (target) return typeof target[name] === "function" ? target[name].bind(target) : target[name];
        if (name === "pageSize") return DEFAULT_PAGE_SIZE;
        return (...args) => { waiting.push([name, args]); };
      },
    });
    const started = performance.now();
    const settle = () => {
      target = this._savedCellOf(id);
      if (!target && performance.now() - started < FOREIGN_WAIT_MS) {
        setTimeout(settle, 50);
        return;
      }
      if (!target) {  // not in this notebook: a new cell at the end, its code from list-executions
        const cell = this.add({ language: "python", code: "" });
        this.awaitingCode.set(id, cell);
        this.client.listExecutions(`code-${id}`);
        target = cell.attach(id);
      }
      for (const [name, args] of waiting) target[name]?.(...args);
    };
    setTimeout(settle, 50);
    return sink;
  }

  /** The run of execution `id` in the cell the saved notebook gives it, or null. */
  _savedCellOf(id) {
    let saved = null;
    try {
      saved = JSON.parse(localStorage.getItem(this.storageKey) || "null");
    } catch {
      saved = null;
    }
    const at = Array.isArray(saved?.cells) ? saved.cells.findIndex((c) => c?.execution === id) : -1;
    const cell = at >= 0 ? this.cells[at] : null;
    if (!(cell instanceof Cell)) return null;
    const spec = saved.cells[at];
    const savedCode = spec.code;
    if (typeof savedCode === "string" && savedCode !== cell.editor.value) cell.editor.value = savedCode;
    if (spec.language && spec.language !== cell.language) {
      cell.langSelect.value = spec.language;
      cell.editor.language = spec.language;
      cell.element.dataset.language = spec.language;
    }
    return cell.attach(id, { code: cell.editor.value, language: cell.language });
  }

  /** The answer to list-executions: the code of the runs shown in new cells. */
  executionsListed(msg) {
    for (const execution of msg.executions ?? []) {
      const cell = this.awaitingCode.get(execution.id);
      if (!cell) continue;
      this.awaitingCode.delete(execution.id);
      cell.langSelect.value = execution.language;
      cell.editor.language = execution.language;
      cell.element.dataset.language = execution.language;
      cell.editor.value = execution.code;
      if (cell.run) cell.run.request = { ...cell.run.request, code: execution.code, language: execution.language };
      if (execution.code_length > [...execution.code].length) {
        this.notify("info", `A run of another tab is shown in a new cell: its code was longer than the first `
          + `${[...execution.code].length} characters shown.`);
      }
    }
    this.save();
  }

  add(spec, { after = null, focus = false, save = true } = {}) {
    const cell = makeCell(this, spec);
    cell.offerLanguages(this.languages);
    const at = after ? this.cells.indexOf(after) + 1 : this.cells.length;
    this.cells.splice(at, 0, cell);
    this._place();
    if (focus) cell.focus();
    if (save) this.save();
    return cell;
  }

  remove(cell) {
    const at = this.cells.indexOf(cell);
    if (at < 0) return;
    const spec = cell.toJSON();
    cell.destroy();
    cell.element.remove();
    this.cells.splice(at, 1);
    this._place();
    this.save();
    const next = this.cells[Math.min(at, this.cells.length - 1)];
    if (next) next.element.focus();
    this.notify("info", "Cell deleted.", {
      action: "Undo",
      onAction: () => {
        const restored = makeCell(this, spec);
        restored.offerLanguages(this.languages);
        this.cells.splice(Math.min(at, this.cells.length), 0, restored);
        this._place();
        restored.focus();
        this.save();
      },
    });
  }

  move(cell, delta) {
    const at = this.cells.indexOf(cell);
    const to = at + delta;
    if (at < 0 || to < 0 || to >= this.cells.length) return;
    this.cells.splice(at, 1);
    this.cells.splice(to, 0, cell);
    this._place();
    cell.element.focus();
    this.save();
  }

  focusNext(cell, createIfLast = true) {
    const at = this.cells.indexOf(cell);
    if (at + 1 < this.cells.length) this.cells[at + 1].focus();
    else if (createIfLast) this.add({ language: cell.language, code: "" }, { after: cell, focus: true });
  }

  focusPrevious(cell) {
    const at = this.cells.indexOf(cell);
    if (at > 0) this.cells[at - 1].element.focus();
  }

  /**
   * Insert text at the cursor of the cell focused last (else the last cell): `textFor(language)`
   * says what, in that cell's language. Returns the cell.
   */
  insertAtCursor(textFor) {
    let cell = this.cells.includes(this.activeCell) ? this.activeCell : this.cells[this.cells.length - 1];
    if (!cell) cell = this.add({ language: "sql", code: "" });
    cell.editor.insert(textFor(cell.language));
    return cell;
  }

  runAll() {
    for (const cell of this.cells) cell.execute();
  }

  stopAll() {
    this.client.interruptAll();
  }

  /** Stop all only while a cell runs or waits: otherwise it has nothing to stop. */
  refreshControls() {
    const stopAll = document.querySelector("#stop-all");
    if (stopAll) stopAll.disabled = !this.cells.some((cell) => cell.run?.active);
  }

  save() {
    this.pristine = false;
    this._dirty = true;
    clearTimeout(this._saveTimer);
    this._saveTimer = setTimeout(() => this.flush(), 250);
  }

  /** Write a pending change now (before the cells are replaced, or the page goes). */
  flush() {
    clearTimeout(this._saveTimer);
    if (!this._dirty) return;
    this._dirty = false;
    try {
      localStorage.setItem(this.storageKey, JSON.stringify({ cells: this.cells.map((c) => c.toJSON()) }));
    } catch (err) {
      console.warn("spark-gateway: cannot save the notebook", err);
    }
  }

  _place() {
    const nodes = [];
    this.cells.forEach((cell, i) => {
      cell.element.dataset.index = String(i + 1);
      // The first cell cannot go up, the last cannot go down: greyed, so the toolbar keeps its shape.
      cell.upButton.disabled = i === 0;
      cell.downButton.disabled = i === this.cells.length - 1;
      nodes.push(cell.element, this._adder(cell));
    });
    this.container.replaceChildren(...nodes);
    if (!this.cells.length) this.container.append(this._adder(null));
    this.refreshControls();  // a deleted cell may have been the one running
  }

  _adder(after) {
    const bar = document.createElement("div");
    bar.className = "adder";
    const sql = document.createElement("button");
    sql.type = "button";
    sql.className = "btn small ghost";
    sql.textContent = "+ SQL";
    sql.title = "Add a SQL cell here";
    sql.addEventListener("click", () => this.add({ language: "sql" }, { after, focus: true }));
    const py = document.createElement("button");
    py.type = "button";
    py.className = "btn small ghost";
    py.textContent = "+ Python";
    py.title = "Add a Python cell here";
    py.addEventListener("click", () => this.add({ language: "python" }, { after, focus: true }));
    bar.append(sql);
    if (this.languages.includes("python")) bar.append(py);
    return bar;
  }

  _renderAdders() {
    this._place();
  }
}

const ICONS = {
  run: '<path d="M4 2.5v11l9-5.5z"/>',
  stop: '<rect x="3.5" y="3.5" width="9" height="9" rx="1"/>',
  up: '<path d="M8 3.5l-5 5h3.2V13h3.6V8.5H13z"/>',
  down: '<path d="M8 12.5l5-5H9.8V3H6.2v4.5H3z"/>',
  delete: '<path d="M5.5 2h5l.5 1.5H14V5H2V3.5h3zM3.5 6h9l-.7 8.5H4.2z"/>',
};

export function iconButton(icon, label, title, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = `btn small icon-${icon}`;
  b.title = title;
  b.setAttribute("aria-label", label || title);
  b.innerHTML = `<svg viewBox="0 0 16 16" width="14" height="14" aria-hidden="true" fill="currentColor">${ICONS[icon]}</svg>`;
  if (label) b.append(document.createTextNode(label));
  b.addEventListener("click", onClick);
  return b;
}
