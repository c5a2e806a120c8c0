// Syntax colouring for the editor's overlay: a small tokenizer per language and an
// HTML renderer that can also mark character ranges (an error's failing fragment).

const SQL_KEYWORDS = new Set(`
  add all alter analyze and anti any array as asc between both by cache case cast change cluster
  collate column columns comment create cross cube current current_date current_timestamp database
  databases delete desc describe distinct distribute div drop else end escape except exists explain
  extended external false fetch filter first following for from full function functions global grant
  group grouping having if ilike in inner insert intersect interval into is join last lateral
  leading left like limit map minus natural not null nulls of offset on only or order outer over
  overwrite partition partitioned pivot preceding qualify range recursive replace right rlike rollup
  row rows schema select semi set show some sort struct table tables tablesample temp temporary then
  to trailing true truncate unbounded union unpivot update use using values view views when where
  window with`.trim().split(/\s+/));

const PY_KEYWORDS = new Set(`
  and as assert async await break class continue def del elif else except finally for from global
  if import in is lambda nonlocal not or pass raise return try while with yield match case`.trim().split(/\s+/));
const PY_CONSTANTS = new Set(["True", "False", "None"]);
const PY_BUILTINS = new Set(`
  abs all any bool dict dir display enumerate filter float format getattr hasattr int isinstance
  len list map max min next open print range repr reversed round set sorted spark str sum super
  tuple type zip`.trim().split(/\s+/));

const SQL_TOKEN = new RegExp([
  /(--[^\n]*|\/\*[\s\S]*?(?:\*\/|$))/.source,                      // 1 comment
  /('(?:[^'\\]|\\[\s\S])*(?:'|$)|"(?:[^"\\]|\\[\s\S])*(?:"|$))/.source,  // 2 string
  /(`[^`]*(?:`|$))/.source,                                        // 3 quoted identifier
  /(\b\d+(?:\.\d*)?(?:[eE][+-]?\d+)?(?:BD|[LSYDF])?\b|\.\d+\b)/.source,  // 4 number
  /([A-Za-z_][A-Za-z0-9_]*)/.source,                               // 5 word
].join("|"), "gy");

const PY_TOKEN = new RegExp([
  /(#[^\n]*)/.source,                                              // 1 comment
  /((?:[rRbBuUfF]{1,2})?(?:'''[\s\S]*?(?:'''|$)|"""[\s\S]*?(?:"""|$)|'(?:[^'\\\n]|\\[\s\S])*(?:'|$)|"(?:[^"\\\n]|\\[\s\S])*(?:"|$)))/.source,  // 2 string
  /(@[A-Za-z_][\w.]*)/.source,                                      // 3 decorator
  /(\b(?:0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+|\d[\d_]*(?:\.[\d_]*)?(?:[eE][+-]?\d+)?j?)\b|\.\d+\b)/.source,  // 4 number
  /([A-Za-z_][A-Za-z0-9_]*)/.source,                               // 5 word
].join("|"), "gy");

/**
 * Tokens of `code` as [start, end, cls] triples (gaps are plain text).
 * @returns {Array<[number, number, string]>}
 */
export function tokenize(code, language) {
  const re = language === "python" ? PY_TOKEN : SQL_TOKEN;
  const out = [];
  let pos = 0;
  while (pos < code.length) {
    re.lastIndex = pos;
    const m = re.exec(code);
    if (!m || m[0].length === 0) {
      pos += 1;
      continue;
    }
    const end = pos + m[0].length;
    let cls = null;
    if (m[1] !== undefined) cls = "tok-comment";
    else if (m[2] !== undefined) cls = "tok-string";
    else if (m[3] !== undefined) cls = language === "python" ? "tok-decorator" : "tok-ident";
    else if (m[4] !== undefined) cls = "tok-number";
    else if (m[5] !== undefined) cls = wordClass(m[5], language, code, end);
    if (cls) out.push([pos, end, cls]);
    pos = end;
  }
  return out;
}

function wordClass(word, language, code, end) {
  if (language === "python") {
    if (PY_KEYWORDS.has(word)) return "tok-keyword";
    if (PY_CONSTANTS.has(word)) return "tok-constant";
    if (PY_BUILTINS.has(word)) return "tok-builtin";
    return nextNonSpace(code, end) === "(" ? "tok-function" : null;
  }
  const lower = word.toLowerCase();
  if (lower === "null" || lower === "true" || lower === "false") return "tok-constant";
  if (SQL_KEYWORDS.has(lower)) return "tok-keyword";
  return nextNonSpace(code, end) === "(" ? "tok-function" : null;
}

function nextNonSpace(code, at) {
  while (at < code.length && (code[at] === " " || code[at] === "\t")) at++;
  return code[at];
}

export function escapeHtml(text) {
  return text.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c]));
}

/**
 * HTML of `code` with token colours, and `marks` ([start, endExclusive] ranges) wrapped in
 * <mark class="error-fragment">. Token spans are split at mark edges so tags nest.
 */
export function renderHighlighted(code, language, marks = []) {
  const tokens = tokenize(code, language);
  const ranges = mergeRanges(marks.map(([a, b]) => [Math.max(0, a), Math.min(code.length, b)]).filter(([a, b]) => b > a));
  const cuts = new Set([0, code.length]);
  for (const [a, b] of tokens) { cuts.add(a); cuts.add(b); }
  for (const [a, b] of ranges) { cuts.add(a); cuts.add(b); }
  const points = [...cuts].sort((x, y) => x - y);
  let html = "";
  let ti = 0;
  let mi = 0;
  let open = false;
  for (let i = 0; i + 1 < points.length; i++) {
    const a = points[i];
    const b = points[i + 1];
    while (ti < tokens.length && tokens[ti][1] <= a) ti++;
    while (mi < ranges.length && ranges[mi][1] <= a) mi++;
    const inMark = mi < ranges.length && ranges[mi][0] <= a;
    if (inMark && !open) { html += '<mark class="error-fragment">'; open = true; }
    if (!inMark && open) { html += "</mark>"; open = false; }
    const text = escapeHtml(code.slice(a, b));
    const token = ti < tokens.length && tokens[ti][0] <= a ? tokens[ti][2] : null;
    html += token ? `<span class="${token}">${text}</span>` : text;
  }
  if (open) html += "</mark>";
  return html;
}

function mergeRanges(ranges) {
  const sorted = ranges.slice().sort((x, y) => x[0] - y[0]);
  const out = [];
  for (const r of sorted) {
    const last = out[out.length - 1];
    if (last && r[0] <= last[1]) last[1] = Math.max(last[1], r[1]);
    else out.push([r[0], r[1]]);
  }
  return out;
}
