// Saving text the page holds (a cell's whole output, a notebook file) as a download.
// Whole results are downloaded by the gateway instead (download.js): never through the page.

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
