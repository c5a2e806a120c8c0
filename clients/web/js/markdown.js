// A small Markdown reader for the text cells of .ipynb files: headings, paragraphs, emphasis,
// inline and fenced code, lists, quotes, rules and links. Everything is escaped first and only
// these few forms become HTML, so a notebook's text can never inject markup or script; links
// keep http(s) and mailto targets only. What it does not know (tables, HTML) shows as text.

import { escapeHtml } from "./values.js";

/** The HTML of `text` (Markdown). */
export function renderMarkdown(text) {
  const out = [];
  const lines = text.replace(/\r\n?/g, "\n").split("\n");
  let para = [];
  let list = null;  // {tag, items}
  const endPara = () => {
    if (para.length) out.push(`<p>${inline(para.join("\n"))}</p>`);
    para = [];
  };
  const endList = () => {
    if (list) out.push(`<${list.tag}>${list.items.map((i) => `<li>${inline(i)}</li>`).join("")}</${list.tag}>`);
    list = null;
  };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    const fence = /^\s*(```|~~~)/.exec(line);
    if (fence) {
      endPara(); endList();
      const code = [];
      for (i++; i < lines.length && !lines[i].trim().startsWith(fence[1]); i++) code.push(lines[i]);
      out.push(`<pre><code>${escapeHtml(code.join("\n"))}</code></pre>`);
      continue;
    }
    const heading = /^(#{1,6})\s+(.*?)\s*#*\s*$/.exec(line);
    const item = /^\s*([-*+]|\d+[.)])\s+(.*)$/.exec(line);
    if (heading) {
      endPara(); endList();
      out.push(`<h${heading[1].length}>${inline(heading[2])}</h${heading[1].length}>`);
    } else if (/^\s*([-*_])(\s*\1){2,}\s*$/.test(line)) {
      endPara(); endList();
      out.push("<hr>");
    } else if (item) {
      endPara();
      const tag = /\d/.test(item[1]) ? "ol" : "ul";
      if (list && list.tag !== tag) endList();
      list ??= { tag, items: [] };
      list.items.push(item[2]);
    } else if (/^>\s?/.test(line)) {
      endPara(); endList();
      out.push(`<blockquote>${inline(line.replace(/^>\s?/, ""))}</blockquote>`);
    } else if (!line.trim()) {
      endPara(); endList();
    } else if (list && /^\s+\S/.test(line)) {
      list.items[list.items.length - 1] += ` ${line.trim()}`;  // a list item's next line
    } else {
      endList();
      para.push(line);
    }
  }
  endPara(); endList();
  return out.join("\n");
}

/** Inline forms of one block: code spans first (nothing inside them is read), then the rest. */
function inline(text) {
  return text.split(/(`[^`]+`)/).map((part, i) => (i % 2
    ? `<code>${escapeHtml(part.slice(1, -1))}</code>`
    : escapeHtml(part)
      .replace(/\[([^\]]+)\]\(((?:https?:\/\/|mailto:)[^\s)]+)\)/g, '<a href="$2" target="_blank" rel="noopener noreferrer">$1</a>')
      .replace(/\*\*([^*]+)\*\*|__([^_]+)__/g, (_, a, b) => `<strong>${a ?? b}</strong>`)
      .replace(/(^|[^*])\*([^*\s][^*]*)\*/g, "$1<em>$2</em>")
      .replace(/(^|\W)_([^_\s][^_]*)_(?=\W|$)/g, "$1<em>$2</em>")
      .replace(/ {2,}\n|\\\n/g, "<br>"))).join("");
}
