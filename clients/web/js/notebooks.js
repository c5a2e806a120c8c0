// Several named notebooks in this browser, and notebooks as .ipynb files.
//
// The list (names, which one is open) is kept in localStorage beside each notebook's cells.
// The first notebook, "Welcome", keeps its cells where the page always kept them, so a visitor
// from before finds their cells in it; a first visit sees the welcome cells there. The open
// notebook is remembered across reloads.
//
// Files: "Open notebook…" reads an .ipynb into a new notebook of the list (the open one is never
// overwritten); "Save as .ipynb" (Ctrl/⌘+S) downloads the open one, with its outputs if asked.
// Saving goes to the browser's downloads only: the gateway has no place of its own to keep
// files, and a route that writes to its disk would be one more thing to secure.

import { saveBlob } from "./csv.js";
import { NotebookFileError, readIpynb, writeIpynb } from "./ipynb.js";
import { STORAGE_KEY, WELCOME_CELLS } from "./notebook.js";

const LIST_KEY = "spark-gateway.notebooks.v1";
const OUTPUTS_KEY = "spark-gateway.ipynb-outputs";
const WELCOME_ID = "default";

/** Where notebook `id`'s cells are kept. */
function cellsKey(id) {
  return id === WELCOME_ID ? STORAGE_KEY : `${STORAGE_KEY}:${id}`;
}

function readCells(id) {
  try {
    const saved = JSON.parse(localStorage.getItem(cellsKey(id)) || "null");
    return Array.isArray(saved?.cells) ? saved.cells : [];
  } catch {
    return [];
  }
}

function writeCells(id, cells) {
  localStorage.setItem(cellsKey(id), JSON.stringify({ cells }));
}

export class NotebookLibrary {
  /**
   * @param {import("./notebook.js").Notebook} notebook the page's notebook
   * @param {{notify: Function, announce: Function}} page
   */
  constructor(notebook, { notify, announce }) {
    this.notebook = notebook;
    this.notify = notify;
    this.announce = announce;
    this.list = [];
    this.current = WELCOME_ID;
    this._readList();
  }

  get currentName() {
    return this.list.find((n) => n.id === this.current)?.name ?? "Notebook";
  }

  _readList() {
    let saved = null;
    try {
      saved = JSON.parse(localStorage.getItem(LIST_KEY) || "null");
    } catch {
      saved = null;
    }
    const list = Array.isArray(saved?.notebooks) ? saved.notebooks.filter((n) => n && typeof n.id === "string") : [];
    if (!list.some((n) => n.id === WELCOME_ID) && !list.length) list.push({ id: WELCOME_ID, name: "Welcome" });
    this.list = list;
    this.current = list.some((n) => n.id === saved?.current) ? saved.current : list[0].id;
  }

  _writeList() {
    try {
      localStorage.setItem(LIST_KEY, JSON.stringify({ current: this.current, notebooks: this.list }));
    } catch (err) {
      this.notify("error", `Cannot keep the list of notebooks in this browser: ${err.message}`);
    }
    this.onChange?.();
  }

  /** Show the notebook that was open last (the welcome notebook on a first visit). */
  start() {
    this._show(this.current);
    this._writeList();
  }

  switchTo(id) {
    if (id === this.current || !this.list.some((n) => n.id === id)) return;
    const left = this.currentName;
    const open = this.notebook.cells.filter((cell) => cell.run?.open).length;
    this.notebook.flush();
    this.current = id;
    this._show(id);  // the cells left are closed: their runs stop, their open results are released
    this._writeList();
    this.announce(`Opened the notebook ${this.currentName}.`);
    if (open) {
      this.notify("info", `${open === 1 ? "A run" : `${open} runs`} of “${left}” still going or holding rows `
        + "on the gateway stopped when you left it (its code is kept; the History has the runs).");
    }
  }

  /** A new notebook named `name` holding `cells` (one empty SQL cell by default); it becomes the open one. */
  create(name = this._freeName("Untitled"), cells = [{ language: "sql", code: "" }]) {
    const id = `n${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
    writeCells(id, cells);
    this.list.push({ id, name: this._freeName(name) });
    this.switchTo(id);
    return id;
  }

  /** Show notebook `id`'s cells; the welcome notebook shows the welcome cells until it is changed. */
  _show(id) {
    this.notebook.show(id === WELCOME_ID ? null : readCells(id), cellsKey(id));
  }

  rename(id, name) {
    const entry = this.list.find((n) => n.id === id);
    name = name.trim();
    if (!entry || !name || name === entry.name) return;
    entry.name = this._freeName(name, id);
    this._writeList();
  }

  duplicate(id) {
    const source = this.list.find((n) => n.id === id);
    let cells = id === this.current ? this.notebook.cells.map((c) => c.toJSON()) : readCells(id);
    if (!cells.length && id === WELCOME_ID) cells = WELCOME_CELLS;  // never changed: its cells are the welcome cells
    return this.create(`${source.name} (copy)`, cells);
  }

  /** Delete notebook `id` and its cells (never the last one). */
  remove(id) {
    if (this.list.length < 2) return;
    const at = this.list.findIndex((n) => n.id === id);
    if (at < 0) return;
    const [gone] = this.list.splice(at, 1);
    if (id === this.current) {
      this.notebook._dirty = false;  // its cells are going: nothing to write
      this.current = this.list[Math.min(at, this.list.length - 1)].id;
      this._show(this.current);
    }
    localStorage.removeItem(cellsKey(id));
    this._writeList();
    this.announce(`Deleted the notebook ${gone.name}.`);
  }

  _freeName(base, self = null) {
    const taken = new Set(this.list.filter((n) => n.id !== self).map((n) => n.name));
    if (!taken.has(base) && base !== "Untitled") return base;
    for (let i = base === "Untitled" ? 1 : 2; ; i++) {
      const name = base === "Untitled" ? `Untitled ${i}` : `${base} (${i})`;
      if (!taken.has(name)) return name;
    }
  }

  // ---------------------------------------------------------------- files

  /** Read an .ipynb file into a new notebook named after it. */
  async openFile(file) {
    let parsed;
    try {
      parsed = readIpynb(await file.text());
    } catch (err) {
      const why = err instanceof NotebookFileError ? err.message : `cannot read it (${err.message})`;
      this.notify("error", `${file.name}: ${why}.`, { timeout: 0 });
      return;
    }
    const name = file.name.replace(/\.ipynb$/i, "") || "Imported";
    const cells = parsed.cells.length ? parsed.cells : [{ language: "sql", code: "" }];
    this.create(name, cells);
    const n = parsed.cells.length;
    const text = [`Opened ${file.name}: ${n} cell${n === 1 ? "" : "s"}.`, ...parsed.notes.map((s) => `${s[0].toUpperCase()}${s.slice(1)}.`)];
    this.notify(parsed.notes.length ? "warning" : "info", text.join(" "), { timeout: parsed.notes.length ? 0 : 6000 });
  }

  get saveWithOutputs() {
    return localStorage.getItem(OUTPUTS_KEY) === "true";
  }

  set saveWithOutputs(on) {
    localStorage.setItem(OUTPUTS_KEY, String(on));
  }

  /** Download the open notebook as `<name>.ipynb`. */
  save() {
    const name = this.currentName;
    const text = writeIpynb(this.notebook.cells, { outputs: this.saveWithOutputs, title: name });
    const file = `${name.replace(/[\\/:*?"<>|\u0000-\u001f]+/g, "_").trim() || "notebook"}.ipynb`;
    saveBlob(new Blob([text], { type: "application/x-ipynb+json" }), file);
    this.announce(`Saved ${file}${this.saveWithOutputs ? " with outputs" : ""}.`);
    return file;
  }
}

// ---------------------------------------------------------------- the dialog

/** The "Notebooks" dialog: the list (open, rename, duplicate, delete), new, open a file, save. */
export class NotebooksPanel {
  constructor(library, toggle) {
    this.library = library;
    this.toggle = toggle;  // the header's button: it shows the open notebook's name
    this._build();
    library.onChange = () => this._refresh();
    this._refresh();
  }

  _build() {
    const dialog = document.createElement("dialog");
    dialog.className = "panel-dialog notebooks";
    dialog.id = "notebooks";
    dialog.setAttribute("aria-labelledby", "notebooks-title");
    dialog.innerHTML = `
      <div class="panel-head">
        <h2 id="notebooks-title">Notebooks</h2>
        <span class="spacer"></span>
        <button type="button" class="btn small ghost" data-act="close" aria-label="Close">×</button>
      </div>
      <div class="panel-tools">
        <button type="button" class="btn small" data-act="new">New notebook</button>
        <button type="button" class="btn small" data-act="open-file">Open notebook…</button>
        <button type="button" class="btn small" data-act="save" title="Download the open notebook as a Jupyter file (Ctrl+S)">Save as .ipynb</button>
        <label class="check"><input type="checkbox" data-act="outputs"> Save with outputs</label>
        <input type="file" accept=".ipynb,application/x-ipynb+json" hidden aria-label="Notebook file to open">
      </div>
      <p class="panel-note">Kept in this browser. Jupyter files (.ipynb) open as new notebooks; “Save as .ipynb”
        downloads the open one for Jupyter or VS Code (SQL cells as <code>%%sql</code>, the gateway's kernel).</p>
      <ul class="notebook-list" aria-label="Notebooks in this browser"></ul>`;
    document.body.append(dialog);
    this.dialog = dialog;
    this.listEl = dialog.querySelector(".notebook-list");
    this.fileInput = dialog.querySelector("input[type=file]");
    this.outputs = dialog.querySelector("[data-act=outputs]");
    this.fileInput.addEventListener("change", async () => {
      const [file] = this.fileInput.files;
      this.fileInput.value = "";
      if (!file) return;
      dialog.close();
      await this.library.openFile(file);
      this.library.notebook.cells[0]?.element.focus();
    });
    this.outputs.addEventListener("change", () => { this.library.saveWithOutputs = this.outputs.checked; });
    dialog.addEventListener("click", (e) => {
      if (e.target === dialog) { dialog.close(); return; }  // a click on the backdrop
      const button = e.target.closest("button[data-act]");
      if (!button) return;
      const id = button.closest("li")?.dataset.id;
      switch (button.dataset.act) {
        case "close": dialog.close(); break;
        case "new": this.library.create(); dialog.close(); this.library.notebook.cells[0]?.focus(); break;
        case "open-file": this.fileInput.click(); break;
        case "save": this.library.save(); break;
        case "switch": this.library.switchTo(id); dialog.close(); break;
        case "rename": this._editName(button.closest("li")); break;
        case "duplicate": this.library.duplicate(id); this._focusRow(this.library.current); break;
        case "delete": this._confirmDelete(button.closest("li")); break;
        case "delete-yes": this.library.remove(id); this._focusRow(this.library.current); break;
        case "delete-no": this._refresh(); this._focusRow(id, "delete"); break;
        default: break;
      }
    });
    dialog.addEventListener("close", () => this.toggle.focus());
  }

  show() {
    this.outputs.checked = this.library.saveWithOutputs;
    this._refresh();
    this.dialog.showModal();
    this._focusRow(this.library.current);
  }

  openFilePicker() {
    this.fileInput.click();
  }

  _refresh() {
    const lib = this.library;
    this.toggle.querySelector(".notebook-name-text").textContent = lib.currentName;
    this.toggle.setAttribute("aria-label", `Notebooks (open: ${lib.currentName})`);
    document.title = `${lib.currentName} · Spark notebook`;
    this.listEl.replaceChildren(...lib.list.map((entry) => this._row(entry)));
  }

  _row(entry) {
    const li = document.createElement("li");
    li.dataset.id = entry.id;
    const current = entry.id === this.library.current;
    const open = button(entry.name, "switch", current ? `${entry.name} (open)` : `Open ${entry.name}`);
    open.classList.add("notebook-open");
    if (current) {
      open.setAttribute("aria-current", "true");
      li.classList.add("current");
    }
    const alone = this.library.list.length < 2;
    const del = button("Delete", "delete", alone ? "The only notebook cannot be deleted" : `Delete ${entry.name}`);
    del.disabled = alone;
    li.append(open,
      button("Rename", "rename", `Rename ${entry.name}`),
      button("Duplicate", "duplicate", `Duplicate ${entry.name}`),
      del);
    return li;
  }

  _focusRow(id, act = "switch") {
    this.listEl.querySelector(`li[data-id="${CSS.escape(id)}"] [data-act="${act}"]`)?.focus();
  }

  /** Rename in place: Enter keeps the name, Escape (or leaving the field) cancels. */
  _editName(li) {
    const id = li.dataset.id;
    const entry = this.library.list.find((n) => n.id === id);
    const input = document.createElement("input");
    input.type = "text";
    input.className = "notebook-rename";
    input.value = entry.name;
    input.setAttribute("aria-label", `New name for ${entry.name}`);
    let done = false;
    const finish = (keep) => {
      if (done) return;
      done = true;
      if (keep) this.library.rename(id, input.value); else this._refresh();
      this._focusRow(id, "rename");
    };
    input.addEventListener("keydown", (e) => {
      if (e.key === "Enter") { e.preventDefault(); finish(true); }
      else if (e.key === "Escape") { e.preventDefault(); e.stopPropagation(); finish(false); }
    });
    input.addEventListener("blur", () => finish(true));
    li.replaceChildren(input);
    input.focus();
    input.select();
  }

  _confirmDelete(li) {
    const name = this.library.list.find((n) => n.id === li.dataset.id).name;
    const text = document.createElement("span");
    text.className = "confirm-text";
    text.textContent = `Delete “${name}” and its cells? This cannot be undone.`;
    const yes = button("Delete", "delete-yes", `Delete ${name} for good`);
    yes.classList.add("danger");
    li.replaceChildren(text, yes, button("Cancel", "delete-no", "Keep it"));
    li.setAttribute("role", "group");
    li.setAttribute("aria-label", `Confirm deleting ${name}`);
    li.querySelector("[data-act=delete-no]").focus();
  }
}

function button(text, act, label) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = "btn small";
  b.dataset.act = act;
  b.textContent = text;
  if (label && label !== text) b.setAttribute("aria-label", label);
  return b;
}
