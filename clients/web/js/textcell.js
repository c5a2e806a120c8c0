// A text cell: markdown or raw text from an .ipynb file. The gateway runs SQL and Python only,
// so these cells are never run; they are shown, editable, moved and saved back with the file
// (nothing a Jupyter notebook holds is dropped when it passes through this one).

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
      ? "text, not run here · saved back to the .ipynb"
      : "raw cell, not run · saved back to the .ipynb";
    const spacer = document.createElement("span");
    spacer.className = "spacer";
    this.upButton = iconButton("up", "", "Move cell up", () => this.notebook.move(this, -1));
    this.downButton = iconButton("down", "", "Move cell down", () => this.notebook.move(this, 1));
    const del = iconButton("delete", "", "Delete cell", () => this.notebook.remove(this));
    bar.append(badge, note, spacer, this.upButton, this.downButton, del);

    this.text = document.createElement("textarea");
    this.text.className = "text-source";
    this.text.value = code;
    this.text.spellcheck = this.kind === "markdown";
    this.text.setAttribute("aria-label", `${LABELS[this.kind]} text`);
    this.text.addEventListener("input", () => { this._fit(); this.notebook.save(); });
    this.text.addEventListener("keydown", (e) => {
      if (e.key === "Escape") { e.preventDefault(); el.focus(); }
    });
    el.append(bar, this.text);
    requestAnimationFrame(() => this._fit());

    // The same few calls as a code cell's editor, for the notebook and the schema browser.
    const text = this.text;
    this.editor = {
      get value() { return text.value; },
      insert: (words) => { text.setRangeText(words, text.selectionStart, text.selectionEnd, "end"); this._fit(); this.notebook.save(); },
      focus: () => text.focus(),
      select: (start, end) => { text.focus(); text.setSelectionRange(start, end); },
      destroy: () => {},
    };

    el.addEventListener("focusin", () => { this.notebook.activeCell = this; });
    el.addEventListener("keydown", (e) => {
      if (e.target !== el) return;
      if (e.key === "Enter") { e.preventDefault(); text.focus(); }
      else if (e.key === "ArrowDown" || e.key === "j") { e.preventDefault(); this.notebook.focusNext(this, false); }
      else if (e.key === "ArrowUp" || e.key === "k") { e.preventDefault(); this.notebook.focusPrevious(this); }
    });
  }

  /** As tall as its text (no inner scroll bar for a paragraph). */
  _fit() {
    this.text.style.height = "auto";
    this.text.style.height = `${this.text.scrollHeight + 2}px`;
  }

  focus() {
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
