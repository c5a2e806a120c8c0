// "Download CSV": the whole result as a file, streamed, never held whole in the page.
//
// Where the rows come from:
//  * When the table already holds every row of the result (the stream ended with its
//    last page), they are written from memory: no second query.
//  * Otherwise the cell's code (as it was when it ran) is executed again as a new
//    execution with large pages, and each page is written as it arrives; credit for the
//    next page is granted when a page arrives, so at most two pages are in the page at
//    once. Re-running was chosen over draining the table's own stream so that the table
//    keeps paging independently of the download; the price is a second Spark job, and a
//    query that is not deterministic (no ORDER BY, rand(), now()) may give other rows.
//    A Python cell's code runs again too (what it prints is discarded).
//
// Where the rows go:
//  * With the File System Access API (Chromium), the user picks the file first and rows
//    are written to it through a FileSystemWritableFileStream as they arrive.
//  * Elsewhere, CSV text is cut into ~1 MB Blob parts as it is produced (a Blob's
//    bytes are owned by the browser, which may keep them on disk, not by JS strings), and
//    the final Blob, made of those parts, is downloaded through an object URL.

import { Req, Status } from "./protocol.js";
import { count, csvHeader, csvLine } from "./values.js";

const CHUNK_CHARS = 1 << 20;
const FROM_MEMORY_SLICE = 5000;

/** Hand ``blob`` to the browser as a download named ``filename``. */
export function saveBlob(blob, filename) {
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  a.style.display = "none";
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

class BlobSink {
  constructor(filename) {
    this.filename = filename;
    this.parts = [];
    this.buffer = "";
  }

  async write(text) {
    this.buffer += text;
    if (this.buffer.length >= CHUNK_CHARS) {
      this.parts.push(new Blob([this.buffer]));
      this.buffer = "";
    }
  }

  async close() {
    if (this.buffer) this.parts.push(new Blob([this.buffer]));
    const blob = new Blob(this.parts, { type: "text/csv;charset=utf-8" });
    this.parts = [];
    saveBlob(blob, this.filename);
  }

  async abort() {
    this.parts = [];
    this.buffer = "";
  }
}

class FileSink {
  constructor(writable) {
    this.writable = writable;
    this.buffer = "";
  }

  async write(text) {
    this.buffer += text;
    if (this.buffer.length >= CHUNK_CHARS / 4) {
      const chunk = this.buffer;
      this.buffer = "";
      await this.writable.write(chunk);
    }
  }

  async close() {
    if (this.buffer) await this.writable.write(this.buffer);
    await this.writable.close();
  }

  async abort() {
    await this.writable.abort().catch(() => {});
  }
}

/** Open where the CSV goes; null when the user cancelled the file picker. */
async function openSink(filename) {
  if (typeof window.showSaveFilePicker === "function") {
    try {
      const handle = await window.showSaveFilePicker({
        suggestedName: filename,
        types: [{ description: "CSV file", accept: { "text/csv": [".csv"] } }],
      });
      return new FileSink(await handle.createWritable());
    } catch (err) {
      if (err && err.name === "AbortError") return null;
      console.warn("spark-gateway: file picker unavailable, downloading through a Blob", err);
    }
  }
  return new BlobSink(filename);
}

function filenameFor(table) {
  const stamp = new Date().toISOString().slice(0, 19).replace(/[-:]/g, "").replace("T", "-");
  return `spark-result-${stamp}-${table.number + 1}.csv`;
}

/**
 * Export `table` (a ResultTable of `run`) to CSV.
 * @param {import("./client.js").GatewayClient} client
 * @param {{code: string, language: string, limit: number|null, cellId: string}} run
 * @param {import("./table.js").ResultTable} table
 * @param {(text: string, state: string) => void} report progress text for the footer
 * @returns {{cancel: () => void, done: Promise<number>}}
 */
export function exportCsv(client, run, table, report) {
  let cancelled = false;
  let cancelRun = () => {};
  const done = (async () => {
    const sink = await openSink(filenameFor(table));
    if (!sink) throw new CsvCancelled();
    try {
      let rows;
      if (table.complete) {
        rows = await writeFromMemory(sink, table, report, () => cancelled);
      } else {
        const exporter = new RerunExport(client, run, table, sink, report);
        cancelRun = () => exporter.cancel();
        if (cancelled) exporter.cancel();
        rows = await exporter.done;
      }
      if (cancelled) throw new CsvCancelled();
      await sink.close();
      return rows;
    } catch (err) {
      await sink.abort();
      throw err;
    }
  })();
  return {
    cancel: () => { cancelled = true; cancelRun(); },
    done,
  };
}

export class CsvCancelled extends Error {
  constructor() {
    super("download cancelled");
    this.name = "CsvCancelled";
  }
}

async function writeFromMemory(sink, table, report, isCancelled) {
  await sink.write(csvHeader(table.columns));
  const { size, kinds } = table;
  for (let i = 0; i < size; i += FROM_MEMORY_SLICE) {
    if (isCancelled()) throw new CsvCancelled();
    let text = "";
    const end = Math.min(size, i + FROM_MEMORY_SLICE);
    for (let r = i; r < end; r++) text += csvLine(table.row(r), kinds);
    await sink.write(text);
    report(`Writing… ${count(end)} rows`, "running");
    await new Promise((resolve) => setTimeout(resolve, 0));  // let the page breathe
  }
  return size;
}

/** A second execution of the cell's code whose result `table.number` goes to `sink`. */
class RerunExport {
  constructor(client, run, table, sink, report) {
    this.client = client;
    this.table = table;
    this.sink = sink;
    this.report = report;
    this.pageSize = Math.min(client.pageSizeLimit, 20000);
    this.written = 0;
    this.kinds = null;
    this.chain = Promise.resolve();
    this.settled = false;
    this.done = new Promise((resolve, reject) => { this._resolve = resolve; this._reject = reject; });
    this.id = client.newId(`${run.cellId}-csv`);
    report("Running the query again for the download…", "running");
    const ok = client.execute(this, this.id, run.code, run.language, { pageSize: this.pageSize, limit: run.limit });
    if (!ok) this._fail(new Error("not connected to the gateway"));
  }

  cancel() {
    if (this.settled) return;
    this.client.interrupt(this.id);
    this._fail(new CsvCancelled());
  }

  _fail(err) {
    if (this.settled) return;
    this.settled = true;
    this._reject(err);
  }

  _succeed() {
    if (this.settled) return;
    this.chain.then(() => {
      if (this.settled) return;
      this.settled = true;
      this._resolve(this.written);
    }, (err) => this._fail(err));
  }

  // ---- sink of the execution's events

  accepted(position) {
    if (position > 0) this.report(`Download queued (position ${position})…`, "running");
  }

  queued(position) {
    this.accepted(position);
  }

  result(msg) {
    if (msg.result !== this.table.number) {
      this.client.closeResult(this.id, msg.result);  // not the one being downloaded
      return;
    }
    this.kinds = this.table.kinds;
    this._enqueue(csvHeader(msg.schema));
  }

  rows(msg) {
    if (msg.result !== this.table.number || this.settled) return;
    if (!msg.last) this.client.streamRows(this.id, msg.result, this.pageSize);  // next page while we write
    const kinds = this.kinds;
    const page = msg.rows;
    this.chain = this.chain.then(async () => {
      let text = "";
      for (const row of page) text += csvLine(row, kinds);
      await this.sink.write(text);
      this.written += page.length;
      this.report(`Downloading… ${count(this.written)} rows`, "running");
    });
    this.chain.catch((err) => { this.client.interrupt(this.id); this._fail(err); });
    if (msg.last) this._succeed();
  }

  _enqueue(text) {
    this.chain = this.chain.then(() => this.sink.write(text));
  }

  resultClosed(msg) {
    if (msg.result === this.table.number) this._fail(new Error(`the result stream ended early (${msg.reason})`));
  }

  error(msg) {
    this._fail(new Error(msg.message));
  }

  refused(msg) {
    if (msg.request === Req.EXECUTE) this._fail(new Error(msg.message));
  }

  finished(msg) {
    if (!this.settled && msg.status !== Status.OK) this._fail(new Error(`the query ended: ${msg.status}`));
    else if (!this.settled && this.kinds === null) this._fail(new Error("running the code again gave no such result"));
  }

  lost() {
    this._fail(new Error("the connection to the gateway was lost"));
  }

  lostEvents() {
    this.client.interrupt(this.id);
    this._fail(new Error("rows were lost in a reconnection (beyond the gateway's replay buffer)"));
  }
}
