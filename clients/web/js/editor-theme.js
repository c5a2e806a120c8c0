// The editor's look: one CodeMirror theme and one highlight style, both in app.css's colour
// variables, so that the light and dark themes (data-theme on <html>) apply to the editor,
// its completion popup, its tooltips and its search panel without a reconfiguration.

import { EditorView, HighlightStyle, tags as t } from "../vendor/codemirror.js";

export const highlightStyle = HighlightStyle.define([
  { tag: [t.keyword, t.controlKeyword, t.definitionKeyword, t.moduleKeyword, t.operatorKeyword, t.modifier, t.self],
    color: "var(--tok-keyword)", fontWeight: "600" },
  { tag: [t.string, t.special(t.string)], color: "var(--tok-string)" },
  { tag: [t.number, t.escape], color: "var(--tok-number)" },
  { tag: [t.bool, t.null], color: "var(--tok-constant)" },
  { tag: [t.lineComment, t.blockComment], color: "var(--tok-comment)", fontStyle: "italic" },
  { tag: [t.function(t.variableName), t.function(t.propertyName), t.function(t.definition(t.variableName)),
    t.standard(t.name), t.definition(t.className)], color: "var(--tok-function)" },
  { tag: [t.typeName, t.meta], color: "var(--tok-builtin)" },
  { tag: t.invalid, color: "var(--err)" },
]);

const panelControl = {
  height: "26px", border: "1px solid var(--border-strong)", borderRadius: "6px",
  background: "var(--surface)", color: "var(--fg)", font: "inherit", fontSize: "12.5px",
};

export const editorTheme = EditorView.theme({
  "&": { backgroundColor: "var(--surface)", color: "var(--fg)", fontSize: "var(--code-size)" },
  "&.cm-focused": { outline: "none" },
  ".cm-scroller": { fontFamily: "var(--font-code)", lineHeight: "var(--code-line)" },
  ".cm-content": { padding: "10px 0", caretColor: "var(--fg)" },
  ".cm-line": { padding: "0 14px" },
  ".cm-cursor, .cm-dropCursor": { borderLeftColor: "var(--fg)", borderLeftWidth: "1.5px" },
  "&.cm-focused > .cm-scroller > .cm-selectionLayer .cm-selectionBackground, .cm-selectionBackground, .cm-content ::selection":
    { backgroundColor: "var(--selection)" },
  ".cm-gutters": {
    backgroundColor: "var(--surface)", color: "color-mix(in srgb, var(--muted) 75%, var(--surface))",
    borderRight: "1px solid var(--border)",
  },
  ".cm-lineNumbers .cm-gutterElement": { minWidth: "30px", padding: "0 10px 0 6px", fontVariantNumeric: "tabular-nums" },
  ".cm-lineNumbers .cm-gutterElement.error": {
    color: "var(--err)", fontWeight: "700", backgroundColor: "var(--err-soft)", borderRadius: "3px 0 0 3px",
  },
  ".cm-error-line": { backgroundColor: "color-mix(in srgb, var(--err-soft) 60%, transparent)" },
  "mark.error-fragment": {
    color: "inherit", backgroundColor: "var(--err-soft)", borderRadius: "2px",
    textDecoration: "underline wavy var(--err)", textDecorationSkipInk: "none", textUnderlineOffset: "3px",
    boxShadow: "0 0 0 1px color-mix(in srgb, var(--err) 55%, transparent)",
  },
  "&.cm-focused .cm-matchingBracket, .cm-matchingBracket": {
    backgroundColor: "color-mix(in srgb, var(--info) 18%, transparent)",
    outline: "1px solid color-mix(in srgb, var(--info) 45%, transparent)",
  },
  "&.cm-focused .cm-nonmatchingBracket, .cm-nonmatchingBracket": { color: "var(--err)", backgroundColor: "var(--err-soft)" },
  ".cm-selectionMatch": { backgroundColor: "color-mix(in srgb, var(--info) 14%, transparent)" },
  ".cm-searchMatch": {
    backgroundColor: "var(--warn-soft)", outline: "1px solid color-mix(in srgb, var(--warn) 60%, transparent)",
  },
  ".cm-searchMatch.cm-searchMatch-selected": { backgroundColor: "color-mix(in srgb, var(--warn) 35%, transparent)" },

  // The search panel (Ctrl+F), in the page's own controls.
  ".cm-panels": { backgroundColor: "var(--surface-2)", color: "var(--fg)" },
  ".cm-panels.cm-panels-top": { borderBottom: "1px solid var(--border)" },
  ".cm-panels.cm-panels-bottom": { borderTop: "1px solid var(--border)" },
  ".cm-panel.cm-search": { padding: "6px 34px 6px 10px", fontFamily: "var(--font-ui)", fontSize: "12.5px" },
  ".cm-panel.cm-search label": { fontSize: "12.5px", color: "var(--muted)" },
  ".cm-panel.cm-search input[type=checkbox]": { accentColor: "var(--focus)" },
  ".cm-textfield": { ...panelControl, padding: "0 6px" },
  ".cm-button": { ...panelControl, padding: "0 10px", backgroundImage: "none", cursor: "pointer" },
  ".cm-button:hover": { backgroundColor: "var(--surface-2)", borderColor: "var(--muted)" },
  ".cm-panel.cm-search [name=close]": { color: "var(--muted)", fontSize: "18px", top: "6px", right: "8px" },

  // Tooltips: the completion popup and the documentation.
  ".cm-tooltip": {
    backgroundColor: "var(--surface)", color: "var(--fg)", border: "1px solid var(--border-strong)",
    borderRadius: "6px", boxShadow: "0 6px 24px rgba(0, 0, 0, 0.18)", overflow: "hidden",
  },
  ".cm-tooltip.cm-tooltip-autocomplete > ul": { fontFamily: "var(--font-code)", maxHeight: "16.5em", minWidth: "220px" },
  ".cm-tooltip.cm-tooltip-autocomplete > ul > li": {
    display: "flex", alignItems: "center", gap: "6px", padding: "2px 10px 2px 6px", lineHeight: "20px",
  },
  ".cm-tooltip.cm-tooltip-autocomplete > ul > li[aria-selected]": {
    backgroundColor: "color-mix(in srgb, var(--focus) 20%, var(--surface))", color: "var(--fg)",
  },
  ".cm-completionLabel": { flex: "1" },
  ".cm-completionMatchedText": { textDecoration: "none", fontWeight: "700", color: "var(--accent)" },
  ".cm-completionDetail": {
    marginLeft: "1.5em", color: "var(--muted)", fontStyle: "normal", fontSize: "11.5px",
    maxWidth: "22em", overflow: "hidden", textOverflow: "ellipsis", whiteSpace: "nowrap",
  },
  ".cm-tooltip.cm-completionInfo": {
    padding: "8px 10px", maxWidth: "420px", whiteSpace: "pre-wrap", fontSize: "12px", lineHeight: "1.45",
  },
  ".cm-tooltip-hover": { maxWidth: "min(560px, 90vw)" },
  ".cm-tooltip .cm-tooltip-arrow:before": { borderTopColor: "var(--border-strong)", borderBottomColor: "var(--border-strong)" },
  ".cm-tooltip .cm-tooltip-arrow:after": { borderTopColor: "var(--surface)", borderBottomColor: "var(--surface)" },
});
