// What the editor knows about the data: completions and documentation from the gateway
// (`complete` and `inspect`, through lookups.js) and, where the gateway cannot complete (an
// older gateway without these messages, or no connection), a local completion: the
// language's keywords and functions and the names already in the cell.

import { activateHover, closeHoverTooltips, hasHoverTooltips, hoverTooltip, syntaxTree } from "../vendor/codemirror.js";
import { Kind } from "./protocol.js";
import { PYTHON_WORDS, SQL_WORDS } from "./spark-sql.js";

const KINDS = new Set(Object.values(Kind));
const WORD = /[\w$]+/;
const CONTINUES_WORD = /^[\w$]*$/;
const IDENTIFIERS = /[A-Za-z_][\w$]*/g;
const COMMENT = /Comment/;
const STRING = /String/;
const MAX_SCANNED = 200_000;  // characters of a cell scanned for its names (local completion)
const MAX_COLUMNS_SHOWN = 40;  // in a documentation tooltip

/**
 * The editor's completion source: asks the gateway, or completes locally when it cannot.
 * @param {{language: string, lookups: import("./lookups.js").Lookups|null}} editor
 */
export function completionSource(editor) {
  return async (context) => {
    const word = context.matchBefore(WORD);
    const from = word ? word.from : context.pos;
    const afterDot = context.state.sliceDoc(from - 1, from) === ".";
    const node = syntaxTree(context.state).resolveInner(context.pos, -1).name;
    if (!context.explicit && (COMMENT.test(node) || (!word && !afterDot))) return null;
    const lookups = editor.lookups;
    let askAgain = false;
    if (lookups && lookups.supported !== false) {
      try {
        const answer = await lookups.complete(editor.language, context.state.doc.toString(), context.pos);
        return context.aborted ? null : fromGateway(answer, context.pos);
      } catch {
        // Never (unknown_type: lookups remembers it) or not this time (offline, a timeout, a
        // Spark error): either way the local words help now, and in the second case the next
        // keystroke asks the gateway again.
        if (context.aborted) return null;
        askAgain = lookups.supported !== false;
      }
    }
    if (afterDot || STRING.test(node)) return null;  // members and strings: only the gateway knows
    const result = localCompletion(context.state, editor.language, from, context.pos);
    if (askAgain) delete result.validFor;
    return result;
  };
}

function fromGateway(answer, pos) {
  if (!answer.items.length) return null;
  const count = answer.items.length;
  const options = answer.items.map((item, index) => ({
    label: item.label,
    type: KINDS.has(item.kind) ? item.kind : "text",
    detail: item.detail || undefined,
    apply: item.insert || undefined,
    info: item.doc || undefined,
    // The gateway sends the best first; the editor ranks by how well the typed text matches,
    // and this keeps the gateway's order among equally good matches.
    boost: Math.round((30 * (count - index)) / count),
  }));
  const from = Math.min(answer.from, pos);
  return { from, to: Math.max(answer.to, pos), options, validFor: CONTINUES_WORD };
}

/** Keywords, functions and the names in the cell (the word being typed left out). */
export function localCompletion(state, language, from, to) {
  const words = language === "python" ? PYTHON_WORDS : SQL_WORDS;
  const fold = (word) => (language === "python" ? word : word.toLowerCase());  // SQL ignores case
  const options = [];
  const seen = new Set();
  const add = (label, type) => {
    if (seen.has(fold(label))) return;
    seen.add(fold(label));
    options.push({ label, type });
  };
  const text = state.sliceDoc(0, Math.min(from, MAX_SCANNED)) + " " + state.sliceDoc(to, to + MAX_SCANNED);
  for (const [name] of text.matchAll(IDENTIFIERS)) if (name.length > 1) add(name, Kind.VARIABLE);
  for (const name of words.variables ?? []) add(name, Kind.VARIABLE);
  for (const name of words.functions) add(name, Kind.FUNCTION);
  for (const name of words.types ?? []) add(name, "type");
  for (const name of words.keywords) add(name, Kind.KEYWORD);
  // Names seen in the cell come out as variables, keywords typed in it too: put those back.
  const keywords = new Set(words.keywords.map(fold));
  for (const option of options) if (option.type === Kind.VARIABLE && keywords.has(fold(option.label))) option.type = Kind.KEYWORD;
  return { from, options, validFor: CONTINUES_WORD };
}

// ------------------------------------------------------------------ documentation

/**
 * Documentation from `inspect`: a tooltip on hover, and on demand (`show`, Shift+Tab) at the
 * cursor. `announce(text)` reads what was shown on demand to screen readers.
 */
export function documentation(editor, announce) {
  let onDemand = null;  // the position asked for with the keyboard, whose tooltip is announced
  const extension = hoverTooltip(async (view, pos) => {
    const lookups = editor.lookups;
    const asked = onDemand === pos;
    onDemand = null;
    if (!lookups || lookups.supported === false) return null;
    const word = view.state.wordAt(pos);
    if (!word && !asked) return null;  // the pointer rests on blanks or punctuation
    let answer = null;
    let failure = null;
    try {
      answer = await lookups.inspect(editor.language, view.state.doc.toString(), pos);
    } catch (err) {
      failure = err;  // said only when asked for (Shift+Tab): a hover just shows nothing
    }
    if (!answer?.found && !asked) return null;
    const from = answer?.from ?? word?.from ?? pos;
    return {
      pos: from,
      end: answer?.to ?? word?.to ?? pos,
      above: true,
      create: () => {
        const dom = renderInspection(answer, word ? view.state.sliceDoc(word.from, word.to) : "", failure);
        if (asked) announce(dom.textContent);
        return { dom };
      },
    };
  }, { hoverTime: 400, hideOnChange: true });

  return {
    extension,
    /** Show what the name at the cursor is; false when there is nothing to ask about. */
    show(view) {
      const pos = view.state.selection.main.head;
      onDemand = pos;
      activateHover(view, pos, -1, { until: (tr) => tr.docChanged || tr.selection !== undefined });
      return true;
    },
    /** Close an open documentation tooltip (Escape); false when none is open. */
    close(view) {
      if (!hasHoverTooltips(view.state)) return false;
      view.dispatch({ effects: closeHoverTooltips });
      return true;
    },
  };
}

/** The tooltip's content: name, kind and type, signature, text, and a table's columns. */
export function renderInspection(answer, word, failure = null) {
  const box = element("div", "cm-doc");
  box.setAttribute("role", "tooltip");
  if (failure) {
    box.append(element("div", "cm-doc-none", `The gateway did not say what ${word || "this"} is: ${failure.message}`));
    return box;
  }
  if (!answer?.found) {
    box.append(element("div", "cm-doc-none", word ? `Nothing known about ${word}.` : "Nothing known here."));
    return box;
  }
  const head = element("div", "cm-doc-head");
  const kind = KINDS.has(answer.kind) ? answer.kind : "text";
  const icon = element("span", `kind-icon kind-${kind}`);
  icon.setAttribute("aria-hidden", "true");
  head.append(icon, element("code", "cm-doc-name", answer.name || word));
  if (answer.kind) head.append(element("span", "cm-doc-kind", answer.kind));
  if (answer.data_type) head.append(element("code", "cm-doc-type", answer.data_type));
  box.append(head);
  if (answer.signature) box.append(element("pre", "cm-doc-signature", answer.signature));
  if (answer.doc) box.append(element("div", "cm-doc-text", answer.doc));
  const columns = Array.isArray(answer.columns) ? answer.columns : [];
  if (columns.length) {
    const table = element("table", "cm-doc-columns");
    const caption = element("caption", "", `${columns.length} column${columns.length === 1 ? "" : "s"}`);
    table.append(caption);
    for (const column of columns.slice(0, MAX_COLUMNS_SHOWN)) {
      const row = table.insertRow();
      row.insertCell().textContent = column.name;
      row.insertCell().textContent = column.type ?? "";
    }
    box.append(table);
    if (columns.length > MAX_COLUMNS_SHOWN) {
      box.append(element("div", "cm-doc-more", `and ${columns.length - MAX_COLUMNS_SHOWN} more`));
    }
  }
  return box;
}

function element(tag, className, text = null) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== null) node.textContent = text;
  return node;
}
