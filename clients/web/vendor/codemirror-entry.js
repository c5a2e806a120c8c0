// What the notebook uses of CodeMirror 6: the entry point scripts/build-vendor.sh bundles
// (with esbuild) into codemirror.js. Add an export here, rebuild, and commit both files.

export {
  Compartment, EditorSelection, EditorState, Prec, RangeSet, StateEffect, StateField,
} from "@codemirror/state";
export {
  Decoration, EditorView, GutterMarker, activateHover, closeHoverTooltips, drawSelection, dropCursor,
  hasHoverTooltips, highlightSpecialChars, hoverTooltip, keymap, lineNumberMarkers, lineNumbers,
} from "@codemirror/view";
export {
  defaultKeymap, history, historyKeymap, indentLess, indentMore, insertNewlineAndIndent,
  toggleComment,
} from "@codemirror/commands";
export {
  HighlightStyle, bracketMatching, indentOnInput, indentUnit, syntaxHighlighting, syntaxTree,
} from "@codemirror/language";
export {
  acceptCompletion, autocompletion, closeCompletion, completionKeymap, completionStatus,
  startCompletion,
} from "@codemirror/autocomplete";
export { highlightSelectionMatches, openSearchPanel, search, searchKeymap } from "@codemirror/search";
export { SQLDialect, keywordCompletionSource, sql } from "@codemirror/lang-sql";
export { python } from "@codemirror/lang-python";
export { tags } from "@lezer/highlight";
