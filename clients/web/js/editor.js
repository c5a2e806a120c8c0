// A code editor from a <textarea>: line numbers, syntax colours (an overlay <pre> under a
// transparent textarea), Tab / Shift+Tab indentation, auto-indent, Ctrl+/ comments, and
// marks for an error's failing fragment. Edits go through execCommand("insertText") so
// the browser's own undo/redo keeps working.

import { renderHighlighted } from "./highlight.js";

const INDENT = { sql: "  ", python: "    " };
const COMMENT = { sql: "-- ", python: "# " };
const isMac = /Mac|iPhone|iPad/.test(navigator.platform);

let editors = 0;

export class CodeEditor {
  /**
   * @param {{value: string, language: string, label: string, onChange?: Function, onRun?: Function,
   *          onRunAdvance?: Function, onEscape?: Function}} options
   */
  constructor(options) {
    this.options = options;
    this._language = options.language;
    this._marks = [];
    this._errorLines = new Set();
    this._lineCount = 0;
    const id = `editor-${++editors}`;

    this.element = document.createElement("div");
    this.element.className = "editor";
    this.gutter = document.createElement("div");
    this.gutter.className = "gutter";
    this.gutter.setAttribute("aria-hidden", "true");
    const area = document.createElement("div");
    area.className = "code-area";
    this.area = area;
    this.layer = document.createElement("pre");
    this.layer.className = "code-layer";
    this.layer.setAttribute("aria-hidden", "true");
    this.input = document.createElement("textarea");
    this.input.className = "code-input";
    this.input.id = id;
    this.input.spellcheck = false;
    this.input.wrap = "off";
    this.input.setAttribute("autocapitalize", "off");
    this.input.setAttribute("autocomplete", "off");
    this.input.setAttribute("autocorrect", "off");
    this.input.setAttribute("aria-label", options.label);
    this.input.setAttribute("aria-multiline", "true");
    this.input.value = options.value;
    area.append(this.layer, this.input);
    this.element.append(this.gutter, area);

    this.input.addEventListener("input", () => this._changed());
    this.input.addEventListener("keydown", (e) => this._keydown(e));
    this.input.addEventListener("scroll", () => this._syncScroll());
    this._resizeObserver = new ResizeObserver(() => this._fitHeight());
    this._resizeObserver.observe(area);
    this._render();
  }

  get value() {
    return this.input.value;
  }

  set value(text) {
    this.input.value = text;
    this._changed();
  }

  get language() {
    return this._language;
  }

  set language(language) {
    this._language = language;
    this._render();
  }

  focus() {
    this.input.focus({ preventScroll: false });
  }

  /** Mark code ranges [start, endExclusive] and whole lines (1-based) as the error's place. */
  markError(ranges, lines = []) {
    this._marks = ranges;
    this._errorLines = new Set(lines);
    for (const [start] of ranges) this._errorLines.add(this.value.slice(0, start).split("\n").length);
    this._render();
  }

  clearMarks() {
    if (!this._marks.length && !this._errorLines.size) return;
    this._marks = [];
    this._errorLines = new Set();
    this._render();
  }

  destroy() {
    this._resizeObserver.disconnect();
  }

  // ---------------------------------------------------------------- rendering

  _changed() {
    this._marks = [];
    this._errorLines = new Set();
    this._render();
    this.options.onChange?.(this.value);
  }

  _render() {
    const code = this.value;
    // A trailing newline needs a following character to occupy a line in the <pre>.
    this.layer.innerHTML = renderHighlighted(code, this._language, this._marks) + "\n ";
    const lines = code.split("\n").length;
    if (lines !== this._lineCount || this._errorLines.size || this.gutter.querySelector(".error")) {
      this._lineCount = lines;
      const parts = [];
      for (let i = 1; i <= lines; i++) {
        parts.push(this._errorLines.has(i) ? `<div class="error">${i}</div>` : `<div>${i}</div>`);
      }
      this.gutter.innerHTML = parts.join("");
    }
    this._fitHeight();
    this._syncScroll();
  }

  _fitHeight() {
    const style = getComputedStyle(this.input);
    const lineHeight = parseFloat(style.lineHeight) || 20;
    const padding = parseFloat(style.paddingTop) + parseFloat(style.paddingBottom);
    const scrollbar = this.input.scrollWidth > this.input.clientWidth + 1 ? 14 : 0;
    const height = Math.max(1, this._lineCount) * lineHeight + padding + scrollbar;
    this.area.style.height = `${Math.ceil(height)}px`;
  }

  _syncScroll() {
    this.layer.style.transform = `translate(${-this.input.scrollLeft}px, 0)`;
  }

  // ---------------------------------------------------------------- keys

  _keydown(e) {
    const mod = isMac ? e.metaKey : e.ctrlKey;
    if (e.key === "Enter" && mod) {
      e.preventDefault();
      this.options.onRun?.();
    } else if (e.key === "Enter" && e.shiftKey && !mod && !e.altKey) {
      e.preventDefault();
      this.options.onRunAdvance?.();
    } else if (e.key === "Enter" && !e.altKey && !e.metaKey && !e.ctrlKey) {
      e.preventDefault();
      this._newline();
    } else if (e.key === "Tab" && !mod && !e.altKey) {
      e.preventDefault();
      if (e.shiftKey) this._dedent();
      else this._indent();
    } else if (e.key === "Escape") {
      e.preventDefault();
      this.options.onEscape?.();
    } else if (e.key === "/" && mod) {
      e.preventDefault();
      this._toggleComment();
    }
  }

  _insert(text) {
    // execCommand keeps the edit on the undo stack; fall back where it is missing.
    if (!document.execCommand("insertText", false, text)) this.input.setRangeText(text, this.input.selectionStart, this.input.selectionEnd, "end");
    this._changed();
  }

  _lineRange() {
    const { value, selectionStart, selectionEnd } = this.input;
    const start = value.lastIndexOf("\n", selectionStart - 1) + 1;
    let end = value.indexOf("\n", selectionEnd > selectionStart && value[selectionEnd - 1] === "\n" ? selectionEnd - 1 : selectionEnd);
    if (end < 0) end = value.length;
    return [start, end];
  }

  /** Replace whole lines [start, end) by transform(lines) and select the result. */
  _editLines(transform) {
    const [start, end] = this._lineRange();
    const before = this.input.value.slice(start, end);
    const after = transform(before.split("\n")).join("\n");
    if (after === before) return;
    this.input.setSelectionRange(start, end);
    this._insert(after);
    this.input.setSelectionRange(start, start + after.length);
  }

  _indent() {
    const { value, selectionStart, selectionEnd } = this.input;
    const unit = INDENT[this._language] ?? "  ";
    if (!value.slice(selectionStart, selectionEnd).includes("\n")) {
      this._insert(unit);
      return;
    }
    this._editLines((lines) => lines.map((l) => (l.length ? unit + l : l)));
  }

  _dedent() {
    const unit = INDENT[this._language] ?? "  ";
    this._editLines((lines) => lines.map((l) => {
      let n = 0;
      while (n < unit.length && l[n] === " ") n++;
      if (n === 0 && l[0] === "\t") n = 1;
      return l.slice(n);
    }));
  }

  _newline() {
    const { value, selectionStart } = this.input;
    const lineStart = value.lastIndexOf("\n", selectionStart - 1) + 1;
    const line = value.slice(lineStart, selectionStart);
    let indent = /^[ \t]*/.exec(line)[0];
    if (this._language === "python" && /:\s*(#.*)?$/.test(line)) indent += INDENT.python;
    this._insert("\n" + indent);
  }

  _toggleComment() {
    const marker = COMMENT[this._language] ?? "-- ";
    const bare = marker.trim();
    this._editLines((lines) => {
      const code = lines.filter((l) => l.trim());
      const allCommented = code.length > 0 && code.every((l) => l.trimStart().startsWith(bare));
      return lines.map((l) => {
        if (!l.trim()) return l;
        const indent = /^\s*/.exec(l)[0];
        const rest = l.slice(indent.length);
        if (allCommented) return indent + rest.slice(rest.startsWith(marker) ? marker.length : bare.length);
        return indent + marker + rest;
      });
    });
  }
}
