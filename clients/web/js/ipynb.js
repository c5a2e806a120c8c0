// Notebooks as Jupyter files: the cells to and from nbformat 4 (`.ipynb`).
//
// A SQL cell is saved as a code cell whose first line is `%%sql`, which is exactly how the
// gateway's Jupyter kernel (spark_gateway_kernel/cells.py) recognises a SQL cell; a Python cell
// is plain code. The metadata names that kernel (kernelspec `spark-gateway`), so Jupyter, VS Code
// and nbclient run the file on the gateway. Markdown and raw cells are kept as they are: the
// notebook shows them as text cells, and writes them back unchanged.
//
// Opening reads what nbformat and Jupyter write: sources as a string or a list of lines,
// markdown, raw and code cells, `%%sql` with options (kept, and written back). Nothing in the
// file is dropped silently: what cannot be kept is listed in the returned `notes`.

import { columnKind, displayValue } from "./values.js";

// The gateway's kernel, as `spark-gateway kernel install` names it (spark_gateway_kernel/kernelspec.py).
export const KERNELSPEC = Object.freeze({ name: "spark-gateway", display_name: "Spark (gateway)", language: "python" });
// As the kernel's own `language_info` (spark_gateway_kernel/kernel.py), less the version it learns from the gateway.
export const LANGUAGE_INFO = Object.freeze({
  name: "python",
  mimetype: "text/x-python",
  file_extension: ".py",
  pygments_lexer: "ipython3",
  codemirror_mode: { name: "ipython", version: 3 },
  nbconvert_exporter: "python",
});

// A cell is SQL when its first line is the `%%sql` cell magic (the kernel's own test:
// `%%(\S*)[ \t]*(.*)` on the first line, the magic's name being `sql`).
const SQL_MAGIC = /^%%sql(?:[ \t]+(.*))?$/;
export const MAX_SAVED_ROWS = 1000;  // rows of a result written into a saved output (the note says so)
const TABLE_SCHEMA_TYPES = [
  [/^interval/, "duration"], [/^(tinyint|smallint|int|bigint|byte|short|long)/, "integer"],
  [/^(float|double|decimal|real)/, "number"], [/^boolean$/, "boolean"], [/^date$/, "date"],
  [/^timestamp/, "datetime"], [/^array</, "array"], [/^(struct<|map<string,)/, "object"], [/^map</, "array"],
  [/^(string|char|varchar|variant|binary)/, "string"],
];

// ---------------------------------------------------------------- reading

export class NotebookFileError extends Error {}

/**
 * The cells of an `.ipynb` file's text: `{cells, notes}`, each cell a spec the notebook builds
 * (`{language, code, limit, ipynb}`, language "sql", "python", "markdown" or "raw").
 */
export function readIpynb(text) {
  let nb;
  try {
    nb = JSON.parse(text);
  } catch (err) {
    throw new NotebookFileError(`not a notebook: the file is not JSON (${err.message})`);
  }
  if (!nb || typeof nb !== "object" || !Array.isArray(nb.cells)) {
    throw new NotebookFileError(Array.isArray(nb?.worksheets)
      ? "this notebook is in nbformat 3: open and save it once in Jupyter (nbformat 4) first"
      : "not a notebook: the file has no \"cells\" list");
  }
  if (nb.nbformat !== undefined && nb.nbformat !== 4) {
    throw new NotebookFileError(`nbformat ${nb.nbformat} is not supported (nbformat 4 is)`);
  }
  const notes = [];
  let outputs = 0;
  const cells = nb.cells.map((cell, i) => {
    const source = sourceText(cell?.source);
    const kept = { id: typeof cell?.id === "string" ? cell.id : undefined, metadata: cell?.metadata ?? {} };
    if (cell?.attachments) kept.attachments = cell.attachments;
    if (cell?.cell_type === "code") {
      if (Array.isArray(cell.outputs) && cell.outputs.length) outputs++;
      const limit = Number.isInteger(cell.metadata?.spark_gateway?.limit) ? cell.metadata.spark_gateway.limit : null;
      const newline = source.indexOf("\n");
      const first = (newline < 0 ? source : source.slice(0, newline)).replace(/[ \t]+$/, "");
      const magic = SQL_MAGIC.exec(first);
      if (magic) {
        if (magic[1]) kept.magic = first;  // `%%sql -o df`: the kernel's options, written back as they were
        return { language: "sql", code: newline < 0 ? "" : source.slice(newline + 1), limit, ipynb: kept };
      }
      if (/^\s*%/m.test(source)) {
        notes.push(`cell ${i + 1} has IPython magics (lines starting with %): the gateway's Jupyter kernel runs `
          + "%sql lines, this notebook runs the cell as plain Python");
      }
      return { language: "python", code: source, limit, ipynb: kept };
    }
    if (cell?.cell_type === "markdown" || cell?.cell_type === "raw") {
      return { language: cell.cell_type, code: source, ipynb: kept };
    }
    notes.push(`cell ${i + 1} has the unknown type ${JSON.stringify(cell?.cell_type)}: kept as a raw cell`);
    return { language: "raw", code: source, ipynb: kept };
  });
  if (outputs) {
    notes.push(`the outputs saved in the file (${outputs} cell${outputs === 1 ? "" : "s"}) are not shown: run the cells`);
  }
  return { cells, notes, metadata: nb.metadata ?? {} };
}

/** nbformat's multiline string: a string, or a list of strings to join. */
function sourceText(source) {
  if (Array.isArray(source)) return source.join("");
  return typeof source === "string" ? source : "";
}

// ---------------------------------------------------------------- writing

/**
 * The `.ipynb` text of `cells` (the notebook's cells); with `outputs`, each code cell's latest
 * run is saved as Jupyter outputs (tables as HTML, text and a Table Schema with the rows).
 */
export function writeIpynb(cells, { outputs = false, title = "" } = {}) {
  let count = 0;
  const nbCells = cells.map((cell) => {
    const spec = cell.toJSON();
    const kept = spec.ipynb ?? {};
    const base = { id: validId(kept.id) ? kept.id : newCellId(), metadata: { ...(kept.metadata ?? {}) } };
    if (spec.language === "markdown" || spec.language === "raw") {
      const out = { cell_type: spec.language, ...base, source: lines(spec.code) };
      if (kept.attachments) out.attachments = kept.attachments;
      return out;
    }
    const gateway = { ...(base.metadata.spark_gateway ?? {}) };
    if (spec.limit !== null && spec.limit !== undefined) gateway.limit = spec.limit; else delete gateway.limit;
    if (Object.keys(gateway).length) base.metadata.spark_gateway = gateway; else delete base.metadata.spark_gateway;
    const code = spec.language === "sql" ? `${kept.magic ?? "%%sql"}\n${spec.code}` : spec.code;
    const saved = outputs && cell.run ? runOutputs(cell.run) : [];
    const executionCount = saved.length ? ++count : null;
    for (const o of saved) if (o.output_type === "execute_result") o.execution_count = executionCount;
    return { cell_type: "code", ...base, execution_count: executionCount, outputs: saved, source: lines(code) };
  });
  const metadata = { kernelspec: { ...KERNELSPEC }, language_info: { ...LANGUAGE_INFO } };
  if (title) metadata.title = title;
  return JSON.stringify({ cells: nbCells, metadata, nbformat: 4, nbformat_minor: 5 }, null, 1) + "\n";
}

/** Source as Jupyter writes it: a list of lines, each but the last ending in "\n". */
function lines(text) {
  return text.split(/(?<=\n)/).filter((line) => line !== "");
}

function validId(id) {
  return typeof id === "string" && /^[a-zA-Z0-9-_]{1,64}$/.test(id);
}

function newCellId() {
  const bytes = crypto.getRandomValues(new Uint8Array(6));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The outputs of a run, in the order they are shown under the cell. */
function runOutputs(run) {
  const tables = new Map([...run.tables.values()].map((t) => [t.element, t]));
  const out = [];
  for (const el of run.outputs.children) {
    if (el.matches("pre.stream")) out.push(...streamOutputs(el));
    else if (tables.has(el)) out.push(tableOutput(tables.get(el)));
    else if (el.matches(".value-out")) {
      out.push({ output_type: "execute_result", execution_count: null, metadata: {},
        data: { "text/plain": lines(el.querySelector("pre")?.textContent ?? "") } });
    } else if (el.matches(".error-box")) out.push(errorOutput(el));
    else if (el.matches(".note")) out.push({ output_type: "stream", name: "stderr", text: lines(`${el.textContent}\n`) });
  }
  return out;
}

/** Printed text, cut into stdout and stderr streams as it was printed. */
function streamOutputs(pre) {
  const out = [];
  for (const span of pre.querySelectorAll("span:not(.open-line)")) {
    const name = span.classList.contains("stderr") ? "stderr" : "stdout";
    const last = out[out.length - 1];
    if (last && last.name === name) last.text += span.textContent;
    else out.push({ output_type: "stream", name, text: span.textContent });
  }
  return out.filter((o) => o.text).map((o) => ({ ...o, text: lines(o.text) }));
}

function errorOutput(box) {
  const ename = box.querySelector(".error-class")?.textContent ?? "Error";
  const evalue = box.querySelector(".error-message")?.textContent ?? "";
  const traceback = box.querySelector(".traceback pre")?.textContent;
  return { output_type: "error", ename, evalue, traceback: traceback ? traceback.split("\n") : [`${ename}: ${evalue}`] };
}

/** A result as Jupyter shows one (the kernel's own three forms): HTML, text, and a Table Schema. */
function tableOutput(table) {
  const shown = Math.min(table.size, MAX_SAVED_ROWS);
  const rows = [];
  for (let r = 0; r < shown; r++) rows.push(table.row(r));
  const note = rowsNote(table, shown);
  const names = uniqueNames(table.columns.map((c) => c.name));
  return {
    output_type: "display_data",
    metadata: {},
    data: {
      "text/html": lines(htmlTable(table, rows, note)),
      "text/plain": lines(plainTable(table, rows, note)),
      "application/vnd.dataresource+json": {
        schema: { fields: table.columns.map((c, i) => ({ name: names[i], type: tableSchemaType(c.type), spark_type: c.type })) },
        data: rows.map((row) => Object.fromEntries(row.map((v, i) => [names[i], jsonValue(v)]))),
      },
    },
  };
}

/** How many rows the output holds, and that more exist when they do: never a silent cut. */
function rowsNote(table, shown) {
  const all = table.complete && !table.truncated;
  const s = (n) => `${n.toLocaleString("en-US")} row${n === 1 ? "" : "s"}`;
  if (all && shown === table.size) return s(shown);
  const more = all ? `of ${s(table.size)}` : `of the ${s(table.size)} loaded; the result has more rows`;
  return `first ${s(shown)} saved, ${more}`;
}

function text(value, kind) {
  return value === null || value === undefined ? "NULL" : displayValue(value, kind).text;
}

function htmlTable(table, rows, note) {
  const esc = (t) => t.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c]));
  const kinds = table.columns.map((c) => columnKind(c.type));
  const right = (k) => (k === "number" || k === "float" ? "right" : "left");
  const head = table.columns.map((c, i) => `<th style="text-align:${right(kinds[i])}" title="${esc(c.type)}">`
    + `${esc(c.name)}<br><small style="font-weight:normal;opacity:0.6">${esc(c.type)}</small></th>`).join("");
  const body = rows.map((row) => "<tr>" + row.map((v, i) => (v === null || v === undefined
    ? '<td><span style="opacity:0.5">NULL</span></td>'
    : `<td style="text-align:${right(kinds[i])}">${esc(text(v, kinds[i]))}</td>`)).join("") + "</tr>\n").join("");
  return `<div><table style="border-collapse:collapse"><thead><tr>${head}</tr></thead><tbody>\n${body}</tbody></table>`
    + `<p style="opacity:0.7;margin-top:0.3em">${esc(note)}</p></div>`;
}

function plainTable(table, rows, note) {
  const kinds = table.columns.map((c) => columnKind(c.type));
  const cells = [table.columns.map((c) => c.name), ...rows.map((row) => row.map((v, i) => text(v, kinds[i])))];
  const widths = table.columns.map((_, i) => Math.min(80, Math.max(...cells.map((r) => r[i].length))));
  const fit = (t, w) => (t.length > w ? `${t.slice(0, w - 1)}…` : t.padEnd(w));
  const line = (r) => r.map((t, i) => fit(t.replace(/\n/g, " "), widths[i])).join(" | ").trimEnd();
  const rule = widths.map((w) => "-".repeat(w)).join("-+-");
  return [line(cells[0]), rule, ...cells.slice(1).map(line), note].join("\n");
}

function tableSchemaType(sparkType) {
  const t = String(sparkType).toLowerCase();
  return TABLE_SCHEMA_TYPES.find(([re]) => re.test(t))?.[1] ?? "any";
}

/** A value as JSON holds it: integers beyond 2^53 (BigInt here) keep their digits as strings. */
function jsonValue(value) {
  if (typeof value === "bigint") return value.toString();
  if (Array.isArray(value)) return value.map(jsonValue);
  if (value !== null && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, jsonValue(v)]));
  }
  return value;
}

function uniqueNames(names) {
  const seen = new Map();
  return names.map((name) => {
    const n = seen.get(name) ?? 0;
    seen.set(name, n + 1);
    return n ? `${name}_${n + 1}` : name;
  });
}
