// "Download CSV / Parquet / Arrow": the whole result as a file, streamed by the gateway.
//
// The page asks the gateway for a signed link over its websocket (`download` → `download-link`,
// docs/protocol.md), then hands the link to the browser as a plain navigation (<a download>):
// the browser's download manager receives the bytes straight from the gateway's GET /download,
// so the rows never pass through the page (no memory, no Blob), whatever the result's size.
// The link carries no token (the page's credential stays in the websocket handshake); it is
// valid for a few minutes and names this one result and format.
//
// The gateway runs the result's query again (the DataFrame the cell showed, not the cell's
// code: a Python cell is not re-run) on its own operation, beside the cell's own paging.
// A download that fails mid-way is cut short by the gateway, so the browser shows it failed.
// CSV goes the same way (it used to be written by the page from the rows it received): one
// path for every format, no second execution in the session's queue, nothing held in the page.

import { DownloadFormat, Evt, Req, download as downloadRequest } from "./protocol.js";

const LINK_TIMEOUT_MS = 30000;

export const FORMATS = [
  { format: DownloadFormat.CSV, short: "CSV", label: "Download CSV", title: "Download the whole result as a CSV file" },
  { format: DownloadFormat.PARQUET, short: "Parquet", label: "Download Parquet",
    title: "Download the whole result as a Parquet file (row groups of a million rows)" },
  { format: DownloadFormat.ARROW, short: "Arrow", label: "Download Arrow",
    title: "Download the whole result as an Arrow IPC stream (.arrows)" },
];

/** Download links asked of the gateway and not answered yet (one client's). */
export class DownloadLinks {
  /** @param {(message: object) => boolean} send sends a request; false when not connected */
  constructor(send) {
    this.send = send;
    this.pending = new Map();  // "id\nresult\nformat" -> {resolve, reject, timer}
  }

  /** The signed URL (relative to the gateway) for result `result` of execution `id` as `format`. */
  request(id, result, format) {
    const key = `${id}\n${result}\n${format}`;
    const waiting = this.pending.get(key);
    if (waiting) return waiting.promise;
    let entry;
    const promise = new Promise((resolve, reject) => {
      entry = { resolve, reject };
    });
    entry.promise = promise;
    if (!this.send(downloadRequest(id, result, format))) {
      return Promise.reject(new Error("not connected to the gateway"));
    }
    entry.timer = setTimeout(() => this._settle(key, null, new Error("the gateway did not answer")), LINK_TIMEOUT_MS);
    this.pending.set(key, entry);
    return promise;
  }

  /** Whether `msg` (an event) was the answer to one of these requests. */
  handle(msg) {
    if (msg.type === Evt.DOWNLOAD_LINK) {
      this._settle(`${msg.id}\n${msg.result}\n${msg.format}`, msg.url, null);
      return true;
    }
    if (msg.type === Evt.ERROR && msg.request === Req.DOWNLOAD) {
      for (const key of this.pending.keys()) {
        if (key.startsWith(`${msg.id}\n`)) this._settle(key, null, new Error(msg.message));
      }
      return true;
    }
    return false;
  }

  /** A resumed or joined connection: ask again for every link not answered yet (the request may
   * have been lost with the old connection; a second answer to one already settled is ignored). */
  resend() {
    for (const key of this.pending.keys()) {
      const [id, result, format] = key.split("\n");
      this.send(downloadRequest(id, Number(result), format));
    }
  }

  /** The session is gone: nobody will answer. */
  lost() {
    for (const key of [...this.pending.keys()]) this._settle(key, null, new Error("the connection was lost"));
  }

  _settle(key, url, err) {
    const entry = this.pending.get(key);
    if (!entry) return;
    this.pending.delete(key);
    clearTimeout(entry.timer);
    if (err) entry.reject(err);
    else entry.resolve(url);
  }
}

/** Let the browser download `url` (same origin) as a file: a navigation, so nothing passes through the page. */
export function navigate(url) {
  const a = document.createElement("a");
  a.href = new URL(url, window.location.href).href;
  a.download = "";  // the gateway's Content-Disposition names the file
  a.style.display = "none";
  document.body.append(a);
  a.click();
  a.remove();
}

/**
 * Download result `table.number` of execution `executionId` as `format`.
 * @param {import("./client.js").GatewayClient} client
 * @param {(text: string, state: string) => void} report status text for the result's footer
 */
export async function downloadResult(client, executionId, table, format, report) {
  const label = FORMATS.find((f) => f.format === format)?.short ?? format;
  report(`Preparing the ${label} download…`, "running");
  try {
    const url = await client.downloadLink(executionId, table.number, format);
    navigate(url);
    report(`${label} download started (see the browser's downloads)`, "done");
  } catch (err) {
    report(`Download failed: ${err.message}`, "error");
  }
}
