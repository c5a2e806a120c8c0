// Printed output shown as a terminal (and Jupyter) shows it.
//
// Code prints progress bars with "\r" (tqdm, `print(..., end="\r")`) and colours with ANSI
// escapes (logging handlers, rich, pytest). Shown raw, the first becomes every state of the
// bar glued together and the second `\x1b[31m` litter. Here "\r" starts the line over (the
// text after it replaces the line, as in Jupyter; "\r\n" is a plain line end), SGR escapes
// (`ESC [ … m`) set colour and weight, and other escape sequences (cursor moves, erase,
// OSC titles and links) are dropped. stdout and stderr interleave in one <pre>; stderr keeps
// its own colour unless an escape sets one.
//
// Output arrives in chunks cut anywhere (an escape or a "\r\n" may straddle two), so the
// renderer keeps the unfinished escape and the pending "\r" between writes. Finished lines
// are appended once; only the open last line is ever rewritten.

// An escape that may still be incomplete at the end of a chunk (kept for the next one).
const PARTIAL_ESCAPE = /\x1b(?:\[[0-9;:?<=>]*|\][^\x07\x1b]*|[()]|)$/;
const MAX_CARRY = 4096;  // a longer "escape" is not one: show it as text
// CSI (SGR when it ends in m), OSC up to BEL or ST, charset and two-character escapes,
// line ends, runs of text, a lone ESC.
const TOKEN = /\x1b\[([0-9;:?<=>]*)([@-~])|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[()][0-9A-Za-z]|\x1b[@-Z\\-_]|\r\n|\r|\n|[^\x1b\r\n]+|\x1b/g;

const DRAW_INTERVAL_MS = 50;
const PLAIN = Object.freeze({ fg: null, bg: null, bold: false, dim: false, italic: false, underline: false, inverse: false });

export class TerminalText {
  /** @param {HTMLElement} pre the element the output goes into */
  constructor(pre) {
    this.pre = pre;
    this.openLine = document.createElement("span");  // the line still being written
    this.openLine.className = "open-line";
    pre.append(this.openLine);
    this.open = [];  // its pieces: {cls, css, text}
    this.style = PLAIN;
    this.carry = "";
    this.carriageReturn = false;  // a "\r" came: the next text starts the line over
    this.lastDone = null;  // the last span of finished lines (appended to while the look is the same)
    this.queue = [];  // [stream, text] written and not drawn yet
    this.timer = null;
  }

  /**
   * Show `text` printed to `stream` ("stdout" or "stderr"). Writes are gathered and drawn
   * together a few times a second: each change makes the browser lay the block out again,
   * and code printing line by line sends thousands of small events.
   */
  write(stream, text) {
    const last = this.queue[this.queue.length - 1];
    if (last && last[0] === stream) last[1] += text;
    else this.queue.push([stream, text]);
    this.timer ??= setTimeout(() => this.flush(), DRAW_INTERVAL_MS);
  }

  /** Draw what was written since the last time (at once, e.g. before the cell is read). */
  flush() {
    clearTimeout(this.timer);
    this.timer = null;
    const queue = this.queue;
    this.queue = [];
    for (const [stream, text] of queue) this._draw(stream, text);
  }

  _draw(stream, text) {
    text = this.carry + text;
    this.carry = "";
    const partial = PARTIAL_ESCAPE.exec(text);
    if (partial && partial[0].length <= MAX_CARRY) {
      this.carry = partial[0];
      text = text.slice(0, partial.index);
    }
    const done = [];  // pieces of the lines finished by this write
    for (const match of text.matchAll(TOKEN)) {
      const token = match[0];
      if (token === "\n" || token === "\r\n") {
        this.carriageReturn = false;
        // A line end looks like nothing: it joins the line's last piece (half the spans).
        const lastPiece = this.open[this.open.length - 1];
        if (lastPiece) lastPiece.text += "\n";
        else this._add(this.open, stream, "\n");
        for (const piece of this.open) addPiece(done, piece);
        this.open = [];
      } else if (token === "\r") {
        this.carriageReturn = true;
      } else if (token.charCodeAt(0) === 0x1b) {
        if (match[2] === "m") this.style = applySgr(this.style, match[1]);
        // any other escape (cursor moves, erase, OSC) has no meaning in a page: dropped
      } else {
        if (this.carriageReturn) {
          this.carriageReturn = false;
          this.open = [];
        }
        this._add(this.open, stream, token);
      }
    }
    this._appendDone(done);
    if (this.open.length || this.openLine.firstChild) this.openLine.replaceChildren(...this.open.map(pieceSpan));
  }

  _add(pieces, stream, text) {
    addPiece(pieces, { ...look(stream, this.style), text });
  }

  /** Finished lines go in once, before the open line; the same look continues the last span. */
  _appendDone(pieces) {
    if (!pieces.length) return;
    const frag = document.createDocumentFragment();
    for (const piece of pieces) {
      const last = this.lastDone;
      if (last && last.className === piece.cls && last.dataset.css === piece.css) {
        last.append(piece.text);  // a new text node: no copy of what the span holds
      } else {
        this.lastDone = pieceSpan(piece);
        frag.append(this.lastDone);
      }
    }
    this.pre.insertBefore(frag, this.openLine);
  }
}

function addPiece(pieces, piece) {
  const last = pieces[pieces.length - 1];
  if (last && last.cls === piece.cls && last.css === piece.css) last.text += piece.text;
  else pieces.push({ ...piece });
}

function pieceSpan(piece) {
  const span = document.createElement("span");
  span.className = piece.cls;
  span.dataset.css = piece.css;
  if (piece.css) span.style.cssText = piece.css;
  span.append(piece.text);
  return span;
}

/** Classes and inline style of text printed to `stream` with SGR state `style`. */
function look(stream, style) {
  let cls = stream;
  let css = "";
  let { fg, bg } = style;
  if (style.inverse) [fg, bg] = [bg ?? "default-bg", fg ?? "default-fg"];
  for (const [value, prop] of [[fg, "color"], [bg, "background-color"]]) {
    if (value === null) continue;
    if (typeof value === "number") cls += ` ansi-${prop === "color" ? "fg" : "bg"}-${value}`;
    else if (value === "default-fg") css += `${prop}: var(--fg);`;
    else if (value === "default-bg") css += `${prop}: var(--surface-2);`;
    else css += `${prop}: ${value};`;
  }
  if (style.bold) cls += " ansi-bold";
  if (style.dim) cls += " ansi-dim";
  if (style.italic) cls += " ansi-italic";
  if (style.underline) cls += " ansi-underline";
  return { cls, css };
}

/** The SGR state after `ESC [ params m`. */
function applySgr(style, params) {
  const codes = params === "" ? [0] : params.split(/[;:]/).map((p) => (p === "" ? 0 : Number(p)));
  const next = { ...style };
  for (let i = 0; i < codes.length; i++) {
    const code = codes[i];
    if (code === 0) Object.assign(next, PLAIN);
    else if (code === 1) next.bold = true;
    else if (code === 2) next.dim = true;
    else if (code === 3) next.italic = true;
    else if (code === 4) next.underline = true;
    else if (code === 7) next.inverse = true;
    else if (code === 22) next.bold = next.dim = false;
    else if (code === 23) next.italic = false;
    else if (code === 24) next.underline = false;
    else if (code === 27) next.inverse = false;
    else if (code >= 30 && code <= 37) next.fg = code - 30;
    else if (code >= 90 && code <= 97) next.fg = code - 90 + 8;
    else if (code === 39) next.fg = null;
    else if (code >= 40 && code <= 47) next.bg = code - 40;
    else if (code >= 100 && code <= 107) next.bg = code - 100 + 8;
    else if (code === 49) next.bg = null;
    else if (code === 38 || code === 48) {
      const [color, used] = extendedColor(codes, i + 1);
      if (code === 38) next.fg = color;
      else next.bg = color;
      i += used;
    }
  }
  return Object.freeze(next);
}

/** `5;n` (256 colours) or `2;r;g;b` after 38/48: the colour and how many codes it took. */
function extendedColor(codes, at) {
  if (codes[at] === 5 && at + 1 < codes.length) {
    const n = codes[at + 1];
    return [n < 16 ? n : css256(n), 2];
  }
  if (codes[at] === 2 && at + 3 < codes.length) {
    const [r, g, b] = codes.slice(at + 1, at + 4).map((v) => Math.max(0, Math.min(255, v)));
    return [`rgb(${r}, ${g}, ${b})`, 4];
  }
  return [null, codes.length - at];  // malformed: ignore the rest
}

function css256(n) {
  if (n >= 232) {
    const v = 8 + (n - 232) * 10;
    return `rgb(${v}, ${v}, ${v})`;
  }
  const i = n - 16;
  const level = (x) => (x === 0 ? 0 : 55 + x * 40);
  return `rgb(${level(Math.floor(i / 36))}, ${level(Math.floor(i / 6) % 6)}, ${level(i % 6)})`;
}
