// A cell's code editor: CodeMirror 6 (vendored, ../vendor/codemirror.js) with Spark SQL and
// Python, the notebook's keys (run, run and advance, indent, comment, leave), completion and
// documentation from the gateway (assist.js), search, bracket matching, and marks for an
// error's failing fragment and line.

import {
  Compartment, Decoration, EditorSelection, EditorState, EditorView, GutterMarker, Prec, RangeSet, StateEffect,
  StateField,
  acceptCompletion, autocompletion, bracketMatching, completionStatus, defaultKeymap, drawSelection,
  dropCursor, highlightSelectionMatches, highlightSpecialChars, history, historyKeymap, indentLess,
  indentMore, indentOnInput, indentUnit, insertNewlineAndIndent, keymap, lineNumberMarkers, lineNumbers,
  python, search, searchKeymap, sql, syntaxHighlighting,
} from "../vendor/codemirror.js";
import { completionSource, documentation } from "./assist.js";
import { editorTheme, highlightStyle } from "./editor-theme.js";
import { SPARK_SQL } from "./spark-sql.js";

const INDENT = { sql: "  ", python: "    " };
const WORD_CHAR = /[\w$]/;

// ------------------------------------------------------------------ error marks

const setErrorMarks = StateEffect.define();

class ErrorLineMarker extends GutterMarker {
  get elementClass() { return "error"; }
}
const errorLineMarker = new ErrorLineMarker();
const fragmentMark = Decoration.mark({ tagName: "mark", class: "error-fragment" });
const errorLine = Decoration.line({ class: "cm-error-line" });
const NO_MARKS = { decorations: Decoration.none, gutter: RangeSet.empty };

/** An error's fragments and lines, until the code is edited. */
const errorMarks = StateField.define({
  create: () => NO_MARKS,
  update(marks, tr) {
    for (const effect of tr.effects) if (effect.is(setErrorMarks)) return buildMarks(tr.state, effect.value);
    return tr.docChanged ? NO_MARKS : marks;
  },
  provide: (field) => [
    EditorView.decorations.from(field, (marks) => marks.decorations),
    lineNumberMarkers.from(field, (marks) => marks.gutter),
  ],
});

function buildMarks(state, { ranges, lines }) {
  const { doc } = state;
  const clamp = (pos) => Math.max(0, Math.min(doc.length, pos));
  const decorations = [];
  const lineStarts = new Set();
  for (const [start, end] of ranges) {
    const from = clamp(start);
    const to = clamp(end);
    if (to > from) decorations.push(fragmentMark.range(from, to));
    lineStarts.add(doc.lineAt(from).from);
  }
  for (const number of lines) if (number >= 1 && number <= doc.lines) lineStarts.add(doc.line(number).from);
  for (const from of lineStarts) decorations.push(errorLine.range(from));
  return {
    decorations: Decoration.set(decorations, true),
    gutter: RangeSet.of([...lineStarts].sort((a, b) => a - b).map((from) => errorLineMarker.range(from))),
  };
}

// ------------------------------------------------------------------ keys

/** Enter in SQL: a new line with the indentation of this one (SQL has no block structure to follow). */
function newlineKeepingIndent(view) {
  view.dispatch(view.state.changeByRange((range) => {
    const line = view.state.doc.lineAt(range.from);
    const indent = /^[ \t]*/.exec(line.text)[0].slice(0, range.from - line.from);
    const insert = "\n" + indent;
    const changes = { from: range.from, to: range.to, insert };
    return { changes, range: EditorSelection.cursor(range.from + insert.length) };
  }), { scrollIntoView: true, userEvent: "input" });
  return true;
}

function spansLines(state) {
  return state.selection.ranges.some((r) => state.doc.lineAt(r.from).number !== state.doc.lineAt(r.to).number);
}

/** Tab: accept the completion shown; indent the selected lines; else insert one indentation unit. */
function tab(view) {
  if (completionStatus(view.state) === "active") {
    acceptCompletion(view);  // refused in the popup's first 75 ms (a stray key); Tab still stays here
    return true;
  }
  if (spansLines(view.state)) return indentMore(view);
  const unit = view.state.facet(indentUnit);
  view.dispatch(view.state.replaceSelection(unit), { scrollIntoView: true, userEvent: "input" });
  return true;
}

let editors = 0;

export class CodeEditor {
  /**
   * @param {{value: string, language: string, label: string, lookups?: import("./lookups.js").Lookups|null,
   *          announce?: (text: string) => void, onChange?: Function, onRun?: Function, onRunAdvance?: Function,
   *          onEscape?: Function}} options
   */
  constructor(options) {
    this.options = options;
    this.lookups = options.lookups ?? null;
    this._language = options.language;
    this._languageConfig = new Compartment();
    this.docs = documentation(this, options.announce ?? (() => {}));
    this.element = document.createElement("div");
    this.element.className = "editor";
    this.element.id = `editor-${++editors}`;
    this.view = new EditorView({
      parent: this.element,
      state: EditorState.create({ doc: options.value, extensions: this._extensions(options) }),
    });
  }

  _extensions(options) {
    const run = (callback) => () => { callback?.(); return true; };
    return [
      lineNumbers(),
      highlightSpecialChars(),
      history(),
      drawSelection(),
      dropCursor(),
      EditorState.allowMultipleSelections.of(true),
      indentOnInput(),
      syntaxHighlighting(highlightStyle),
      bracketMatching(),
      highlightSelectionMatches(),
      search({ top: true }),
      autocompletion({
        override: [completionSource(this)],
        icons: false,  // ours (kind-icon, shared with the schema browser) instead
        addToOptions: [{ render: (completion) => kindIcon(completion.type), position: 20 }],
        activateOnTypingDelay: 150,
        maxRenderedOptions: 200,
      }),
      this.docs.extension,
      errorMarks,
      this._languageConfig.of(languageExtensions(this._language)),
      Prec.highest(keymap.of([
        { key: "Mod-Enter", run: run(options.onRun) },
        { key: "Shift-Enter", run: run(options.onRunAdvance) },
      ])),
      keymap.of([
        { key: "Tab", run: tab },
        { key: "Shift-Tab", run: (view) => this._shiftTab(view) },
        ...searchKeymap,  // its Escape closes the search panel first
        { key: "Escape", run: (view) => this._escape(view) },
        ...historyKeymap,
        ...defaultKeymap,
      ]),
      EditorView.contentAttributes.of({ "aria-label": options.label }),
      EditorView.updateListener.of((update) => {
        if (update.docChanged) this.options.onChange?.(this.value);
      }),
      editorTheme,
    ];
  }

  get value() {
    return this.view.state.doc.toString();
  }

  set value(text) {
    this.view.dispatch({ changes: { from: 0, to: this.view.state.doc.length, insert: text } });
  }

  get language() {
    return this._language;
  }

  set language(language) {
    this._language = language;
    this.view.dispatch({ effects: this._languageConfig.reconfigure(languageExtensions(language)) });
  }

  focus() {
    this.view.focus();
  }

  /** Select [start, end) (UTF-16 offsets, as the code's string counts) and bring it into view. */
  select(start, end) {
    const length = this.view.state.doc.length;
    const clamp = (pos) => Math.max(0, Math.min(length, pos));
    this.view.dispatch({ selection: { anchor: clamp(start), head: clamp(end) }, scrollIntoView: true });
    this.view.focus();
  }

  /** Insert `text` at the cursor (in place of the selection), apart from a word it would touch. */
  insert(text) {
    const { state } = this.view;
    const { from, to } = state.selection.main;
    const before = state.sliceDoc(from - 1, from);
    const after = state.sliceDoc(to, to + 1);
    const insert = (WORD_CHAR.test(before) ? " " : "") + text + (WORD_CHAR.test(after) ? " " : "");
    this.view.dispatch({
      changes: { from, to, insert },
      selection: { anchor: from + insert.length },
      scrollIntoView: true,
      userEvent: "input",
    });
  }

  /** Mark code ranges [start, endExclusive] and whole lines (1-based) as the error's place. */
  markError(ranges, lines = []) {
    this.view.dispatch({ effects: setErrorMarks.of({ ranges, lines }) });
  }

  clearMarks() {
    if (this.view.state.field(errorMarks) === NO_MARKS) return;
    this.view.dispatch({ effects: setErrorMarks.of({ ranges: [], lines: [] }) });
  }

  destroy() {
    this.view.destroy();
  }

  /**
   * Shift+Tab: after a name, what it is (documentation from the gateway); in the indentation,
   * over a selection, or where the gateway cannot tell, dedent.
   */
  _shiftTab(view) {
    const { state } = view;
    const range = state.selection.main;
    const line = state.doc.lineAt(range.head);
    const inIndentation = !state.sliceDoc(line.from, range.head).trim();
    if (!range.empty || inIndentation || state.selection.ranges.length > 1 || spansLines(state)
        || !this.lookups || this.lookups.supported === false) {
      return indentLess(view);
    }
    return this.docs.show(view);
  }

  /** Escape: close the documentation; then leave the editor (the search panel and the completion popup close first). */
  _escape(view) {
    if (this.docs.close(view)) return true;
    if (view.state.selection.ranges.length > 1) return false;  // the default keymap keeps one cursor
    this.options.onEscape?.();
    return true;
  }
}

function languageExtensions(language) {
  const isPython = language === "python";
  return [
    isPython ? python() : sql({ dialect: SPARK_SQL, upperCaseKeywords: true }),
    indentUnit.of(INDENT[language] ?? "  "),
    keymap.of([{ key: "Enter", run: isPython ? insertNewlineAndIndent : newlineKeepingIndent }]),
  ];
}

/** The icon of a completion's kind (the same as the schema browser's). */
export function kindIcon(kind) {
  const icon = document.createElement("span");
  icon.className = `kind-icon kind-${kind || "text"}`;
  icon.setAttribute("aria-hidden", "true");
  return icon;
}
