// The schema browser: catalogs → databases → tables and views → columns with their types,
// read lazily from the gateway (`catalog`, one level per request) as the user opens them.
// A click on a name (Enter from the keyboard) inserts it at the cursor of the cell focused
// last; with Shift, its full name. The tree follows the WAI-ARIA tree pattern: one tab stop,
// arrows to move, open and close, Home/End, and typing a letter jumps to the next name.

import { LookupError } from "./lookups.js";
import { ErrorCode, Kind } from "./protocol.js";

const CONTAINERS = new Set([Kind.CATALOG, Kind.DATABASE, Kind.TABLE, Kind.VIEW]);
const PLAIN_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const TEMPORARY = "TEMPORARY";  // a table type: a session's temporary view, in no database
// Errors that another try will not mend; others (a timeout of a cold catalog, a lost answer) are
// tried again, twice, a second apart.
const FINAL_ERRORS = new Set([ErrorCode.UNKNOWN_TYPE, ErrorCode.SPARK_ERROR, ErrorCode.BAD_MESSAGE]);
const TRIES = 3;
const RETRY_MS = 1000;

/** `name` as Spark SQL reads it: backquoted unless it is a plain identifier. */
export function sqlName(name) {
  return PLAIN_NAME.test(name) ? name : "`" + name.replaceAll("`", "``") + "`";
}

class TreeNode {
  constructor(entry, path, level) {
    this.entry = entry;  // {name, kind, type?, comment?}; null for the root
    this.path = path;    // the catalog path of this entry (its own name last)
    this.level = level;
    this.children = null;  // loaded children, or null
    this.loading = null;   // the pending load, if any
    this.item = null;      // its <li role="treeitem">
    this.group = null;     // its <ul role="group"> (the tree itself for the root)
  }

  get key() {
    return this.path.join("\u0000");
  }

  get expandable() {
    return this.entry === null || CONTAINERS.has(this.entry.kind);
  }
}

export class SchemaBrowser {
  /**
   * @param {HTMLElement} panel the <aside> holding .schema-tree, .schema-note and #schema-refresh
   * @param {{lookups: import("./lookups.js").Lookups,
   *          insert: (parts: string[], how: {focusEditor: boolean}) => void}} options
   */
  constructor(panel, options) {
    this.panel = panel;
    this.options = options;
    this.tree = panel.querySelector(".schema-tree");
    this.note = panel.querySelector(".schema-note");
    this.expanded = new Set();  // keys of open nodes, kept across refreshes
    this.firstLoad = true;
    this.root = null;
    this.tree.addEventListener("click", (event) => this._click(event));
    this.tree.addEventListener("keydown", (event) => this._keydown(event));
    panel.querySelector("#schema-refresh")?.addEventListener("click", () => this.reload());
    options.lookups.onSupportChange((supported) => {
      if (supported === false) this._unsupported();
    });
  }

  /** Load the catalogs again; the nodes that were open open again. */
  reload() {
    this.root = new TreeNode(null, [], 0);
    this.root.group = this.tree;
    this.tree.replaceChildren();
    this.tree.removeAttribute("aria-busy");
    return this._load(this.root);
  }

  // ---------------------------------------------------------------- loading

  async _load(node) {
    if (node.loading) return node.loading;
    node.loading = this._fetch(node);
    try {
      await node.loading;
    } finally {
      node.loading = null;
    }
    return undefined;
  }

  async _fetch(node) {
    const busy = node.item ?? this.tree;
    busy.setAttribute("aria-busy", "true");
    if (node === this.root) this._say("Loading…");
    let answer;
    try {
      answer = await this._catalog(node.path);
    } catch (err) {
      if (this._stale(node)) return;
      if (node.level > 0) this._showChildren(node, [], { error: err.message });
      else if (this.options.lookups.supported === false) this._unsupported();
      else this._say(`Could not read the catalog: ${err.message}. Refresh to try again.`, "error");
      return;
    } finally {
      busy.removeAttribute("aria-busy");
    }
    if (this._stale(node)) return;
    const entries = Array.isArray(answer.entries) ? answer.entries : [];
    node.children = entries.map((entry) => new TreeNode(entry, [...node.path, entry.name], node.level + 1));
    if (node === this.root) this._say(entries.length ? "" : "No catalogs.");
    this._showChildren(node, node.children, { truncated: answer.truncated === true });
    await this._reopen(node);
  }

  /** The tree was refreshed (or the node removed) while its entries were on their way. */
  _stale(node) {
    return node.level === 0 ? node !== this.root : !node.item?.isConnected;
  }

  async _catalog(path) {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.options.lookups.catalog(path);
      } catch (err) {
        if (attempt >= TRIES || FINAL_ERRORS.has(err.code) || err.code === LookupError.OFFLINE) throw err;
        await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
      }
    }
  }

  /** Open again what was open before a refresh; on the first load, the only catalog and its default database. */
  async _reopen(node) {
    const children = node.children ?? [];
    let open = children.filter((child) => this.expanded.has(child.key));
    if (this.firstLoad && node.level < 2) {
      const only = children.length === 1 ? children : children.filter((c) => c.entry.name === "default");
      open = only.filter((c) => c.expandable);
      if (node.level === 1 || !open.length) this.firstLoad = false;
    }
    await Promise.all(open.map((child) => this._expand(child)));
  }

  async _expand(node) {
    if (!node.expandable || !node.item) return;
    node.item.setAttribute("aria-expanded", "true");
    node.group.hidden = false;
    this.expanded.add(node.key);
    if (node.children === null) await this._load(node);
  }

  _collapse(node) {
    if (!node.item || node.item.getAttribute("aria-expanded") !== "true") return;
    node.item.setAttribute("aria-expanded", "false");
    node.group.hidden = true;
    this.expanded.delete(node.key);
  }

  // ---------------------------------------------------------------- rendering

  _showChildren(node, children, { truncated = false, error = null } = {}) {
    const items = children.map((child, index) => this._item(child, index + 1, children.length));
    if (error) items.push(this._message(node, `Could not list: ${error}. Enter: try again.`, "error", () => {
      node.children = null;
      this._load(node);
    }));
    if (truncated) {
      items.push(this._message(node, `Only the first ${children.length.toLocaleString("en-US")} are listed.`, "note"));
    }
    if (!children.length && !error) items.push(this._message(node, "Empty", "note"));
    node.group.replaceChildren(...items);
    if (!this.tree.querySelector('[role="treeitem"][tabindex="0"]')) this._focusable(this._items()[0]);
  }

  _item(node, position, size) {
    const { entry } = node;
    const li = document.createElement("li");
    li.setAttribute("role", "treeitem");
    li.setAttribute("aria-level", String(node.level));
    li.setAttribute("aria-posinset", String(position));
    li.setAttribute("aria-setsize", String(size));
    li.tabIndex = -1;
    li.dataset.kind = entry.kind;
    const type = entry.type ? (entry.kind === Kind.COLUMN ? entry.type : entry.type.toLowerCase()) : "";
    li.setAttribute("aria-label", [entry.name, entry.kind, type].filter(Boolean).join(", "));
    const row = document.createElement("div");
    row.className = "schema-row";
    row.style.setProperty("--level", String(node.level));
    row.title = [entry.comment, node.expandable ? "Click: insert the name · ▸: open" : "Click: insert the name",
      "Shift+click: its full name"].filter(Boolean).join("\n");
    const twisty = span("twisty");
    const icon = span(`kind-icon kind-${entry.kind}`);
    const name = span("schema-name", entry.name);
    row.append(twisty, icon, name);
    if (type) row.append(span("schema-type", type));
    li.append(row);
    if (node.expandable) {
      li.setAttribute("aria-expanded", "false");
      node.group = document.createElement("ul");
      node.group.setAttribute("role", "group");
      node.group.hidden = true;
      li.append(node.group);
    }
    li.treeNode = node;
    node.item = li;
    return li;
  }

  /** A line in place of entries (empty, cut, failed): an item, so that the keyboard reaches it. */
  _message(parent, text, kind, retry = null) {
    const li = document.createElement("li");
    li.setAttribute("role", "treeitem");
    li.setAttribute("aria-level", String(parent.level + 1));
    li.tabIndex = -1;
    li.className = `schema-message ${kind}`;
    const row = document.createElement("div");
    row.className = "schema-row";
    row.style.setProperty("--level", String(parent.level + 1));
    row.append(span("twisty"), span("schema-name", text));
    li.append(row);
    li.retry = retry;
    return li;
  }

  _say(text, kind = "") {
    this.note.textContent = text;
    this.note.dataset.kind = kind;
    this.note.hidden = !text;
  }

  _unsupported() {
    this.tree.replaceChildren();
    this._say("Not supported by this gateway: it does not answer catalog requests (update spark-gateway).",
      "unavailable");
  }

  // ---------------------------------------------------------------- actions

  _click(event) {
    const li = event.target.closest('[role="treeitem"]');
    if (!li || !this.tree.contains(li)) return;
    this._focus(li);
    if (li.retry) {
      li.retry();
    } else if (event.target.closest(".twisty")) {
      this._toggle(li.treeNode);
    } else if (li.treeNode) {
      this._insert(li.treeNode, event.shiftKey, true);
    }
  }

  _toggle(node) {
    if (!node?.expandable) return;
    if (node.item.getAttribute("aria-expanded") === "true") this._collapse(node);
    else this._expand(node);
  }

  _insert(node, full, fromPointer) {
    const parts = full ? this._fullName(node) : [node.entry.name];
    this.options.insert(parts, { focusEditor: fromPointer });
  }

  /** catalog.database.table (a temporary view: its name only); a column: table.column. */
  _fullName(node) {
    const { entry, path } = node;
    if (entry.kind === Kind.COLUMN) return path.slice(-2);
    if (entry.type && entry.type.toUpperCase() === TEMPORARY) return [entry.name];
    return path;
  }

  _items() {
    return [...this.tree.querySelectorAll('[role="treeitem"]')].filter((li) => !li.closest("[hidden]"));
  }

  _focusable(li) {
    for (const other of this.tree.querySelectorAll('[role="treeitem"][tabindex="0"]')) other.tabIndex = -1;
    if (li) li.tabIndex = 0;
  }

  _focus(li) {
    if (!li) return;
    this._focusable(li);
    li.focus();
  }

  _keydown(event) {
    const li = event.target.closest('[role="treeitem"]');
    if (!li || event.altKey || event.ctrlKey || event.metaKey) return;
    const node = li.treeNode;
    const items = this._items();
    const at = items.indexOf(li);
    const expanded = li.getAttribute("aria-expanded") === "true";
    const parentItem = li.parentElement.closest('[role="treeitem"]');
    let handled = true;
    switch (event.key) {
      case "ArrowDown": this._focus(items[at + 1]); break;
      case "ArrowUp": this._focus(items[at - 1]); break;
      case "Home": this._focus(items[0]); break;
      case "End": this._focus(items[items.length - 1]); break;
      case "ArrowRight":
        if (node?.expandable && !expanded) this._expand(node);
        else if (expanded) this._focus(node.group.querySelector('[role="treeitem"]'));
        break;
      case "ArrowLeft":
        if (expanded) this._collapse(node);
        else this._focus(parentItem);
        break;
      case "Enter":
        if (li.retry) li.retry();
        else if (node) this._insert(node, event.shiftKey, false);
        break;
      case " ":
        this._toggle(node);
        break;
      default:
        handled = event.key.length === 1 && /\S/.test(event.key) && this._jumpTo(event.key, items, at);
    }
    if (handled) event.preventDefault();
  }

  /** Typing a character moves to the next name starting with it. */
  _jumpTo(char, items, at) {
    const lower = char.toLowerCase();
    for (let step = 1; step <= items.length; step++) {
      const li = items[(at + step) % items.length];
      if (li.treeNode?.entry.name.toLowerCase().startsWith(lower)) {
        this._focus(li);
        return true;
      }
    }
    return false;
  }
}

function span(className, text = null) {
  const node = document.createElement("span");
  node.className = className;
  if (text !== null) node.textContent = text;
  if (text === null) node.setAttribute("aria-hidden", "true");
  return node;
}
