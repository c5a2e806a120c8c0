// A text cell: markdown or raw text from an .ipynb file. The gateway runs SQL and Python only,
// so these cells are never run; they are shown, editable, moved and saved back with the file
// (nothing a Jupyter notebook holds is dropped when it passes through this one).

import { renderMarkdown } from "./markdown.js";
import { iconButton } from "./notebook.js";

const LABELS = { markdown: "Markdown", raw: "Raw" };
let counter = 0;

export class TextCell {
  static kinds = ["markdown", "raw"];

  constructor(notebook, { language = "markdown", code = "", ipynb = null } = {}) {
    this.notebook = notebook;
    this.id = `t${++counter}`;
    this.run = null;
    this.kind = TextCell.kinds.includes(language) ? language : "raw";
    this.ipynb = ipynb;
    this._build(code);
  }

  get language() {
    return this.kind;
  }

  toJSON() {
    const spec = { language: this.kind, code: this.text.value };
    if (this.ipynb) spec.ipynb = this.ipynb;
    return spec;
  }

  _build(code) {
    const el = document.createElement("section");
    el.className = "cell text-cell";
    el.tabIndex = -1;
    el.dataset.cellId = this.id;
    el.dataset.language = this.kind;
    el.setAttribute("aria-label", `${LABELS[this.kind]} cell`);
    this.element = el;

    const bar = document.createElement("div");
    bar.className = "cell-toolbar";
    const badge = document.createElement("span");
    badge.className = "text-kind";
    badge.textContent = LABELS[this.kind];
    const note = document.createElement("span");
    note.className = "text-note";
    note.textContent = this.kind === "markdown"
      ? "shown as text, not run · kept in the .ipynb"
      : "raw cell, not run · saved back to the .ipynb";
    const spacer = document.createElement("span");
    spacer.className = "spacer";
    this.upButton = iconButton("up", "", "Move cell up", () => this.notebook.move(this, -1));
    this.downButton = iconButton("down", "", "Move cell down", () => this.notebook.move(this, 1));
    const del = iconButton("delete", "", "Delete cell", () => this.notebook.remove(this));
    bar.append(badge, note, spacer);
    if (this.kind === "markdown") {
      this.editButton = document.createElement("button");
      this.editButton.type = "button";
      this.editButton.className = "btn small";
      this.editButton.addEventListener("click", () => (this.editing ? this._view() : this._edit()));
      bar.append(this.editButton);
    }
    bar.append(this.upButton, this.downButton, del);

    this.text = document.createElement("textarea");
    this.text.className = "text-source";
    this.text.value = code;
    this.text.spellcheck = this.kind === "markdown";
    this.text.setAttribute("aria-label", `${LABELS[this.kind]} text`);
    this.text.addEventListener("input", () => { this._fit(); this.notebook.save(); });
    this.text.addEventListener("keydown", (e) => {
      if (e.key === "Escape") { e.preventDefault(); this._view(); el.focus(); }
    });
    el.append(bar, this.text);
    if (this.kind === "markdown") {
      // Shown as text, as Jupyter shows it; "Edit" (or a double click, or Enter on the cell) shows the source.
      this.view = document.createElement("div");
      this.view.className = "markdown-view";
      this.view.addEventListener("dblclick", () => this._edit());
      this.text.addEventListener("blur", (e) => { if (!el.contains(e.relatedTarget)) this._view(); });
      el.append(this.view);
      if (code.trim()) this._view(); else this._edit(false);
    }
    requestAnimationFrame(() => this._fit());

    // The same few calls as a code cell's editor, for the notebook and the schema browser.
    const text = this.text;
    this.editor = {
      get value() { return text.value; },
      insert: (words) => { text.setRangeText(words, text.selectionStart, text.selectionEnd, "end"); this._fit(); this.notebook.save(); },
      focus: () => this.focus(),
      select: (start, end) => { this.focus(); text.setSelectionRange(start, end); },
      destroy: () => {},
    };

    el.addEventListener("focusin", () => { this.notebook.activeCell = this; });
    el.addEventListener("keydown", (e) => {
      if (e.target !== el) return;
      if (e.key === "Enter") { e.preventDefault(); this.focus(); }
      else if (e.key === "ArrowDown" || e.key === "j") { e.preventDefault(); this.notebook.focusNext(this, false); }
      else if (e.key === "ArrowUp" || e.key === "k") { e.preventDefault(); this.notebook.focusPrevious(this); }
    });
  }

  get editing() {
    return !this.text.hidden;
  }

  _edit(focus = true) {
    if (!this.view) return;
    this.view.hidden = true;
    this.text.hidden = false;
    this.editButton.textContent = "Done";
    this.editButton.setAttribute("aria-label", "Show the Markdown as text");
    this._fit();
    if (focus) this.text.focus();
  }

  _view() {
    if (!this.view || !this.text.value.trim()) return;
    this.view.innerHTML = renderMarkdown(this.text.value);  // escaped first: see markdown.js
    this.view.hidden = false;
    this.text.hidden = true;
    this.editButton.textContent = "Edit";
    this.editButton.setAttribute("aria-label", "Edit the Markdown");
  }

  /** As tall as its text (no inner scroll bar for a paragraph). */
  _fit() {
    this.text.style.height = "auto";
    this.text.style.height = `${this.text.scrollHeight + 2}px`;
  }

  focus() {
    if (this.view && !this.editing) this._edit();
    this.text.focus();
  }

  selectRange(start, end) {
    this.editor.select(start, end);
  }

  offerLanguages() {}

  execute() {}  // "Run all" passes over text

  stop() {}

  destroy() {}
}
