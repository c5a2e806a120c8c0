"""The notebook's download-link requests (js/download.js), run by node: asked again after a reconnection.

Fast tier: download.js is a pure ES module until a link is followed; node loads it with the
page's own protocol.js. No browser, no gateway.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

JS = Path(__file__).resolve().parent.parent / "clients" / "web" / "js"

HARNESS = """
const D = await import(process.argv[1]);
const sent = [];
const links = new D.DownloadLinks((message) => { sent.push(message); return true; });
const first = links.request("q1", 0, "arrow");
const other = links.request("q2", 1, "csv");
links.resend();  // the connection was resumed: both are asked again
const answered = links.handle({ type: "download-link", id: "q1", result: 0, format: "arrow", url: "/d?sig=1" });
const again = links.handle({ type: "download-link", id: "q1", result: 0, format: "arrow", url: "/d?sig=2" });
const refused = links.handle({ type: "error", id: "q2", request: "download", code: "unknown_result", message: "gone" });
const url = await first;
const error = await other.then(() => null, (e) => e.message);
console.log(JSON.stringify({ sent, answered, again, refused, url, error, pending: links.pending.size }));
"""


@pytest.fixture(scope="module")
def node() -> str:
    path = shutil.which("node")
    if path is None:
        pytest.skip("node is not installed")
    return path


def test_a_pending_download_link_is_asked_again_after_a_reconnection(node: str) -> None:
    """resend() repeats every unanswered request; the first answer settles it, a second is ignored."""
    out = subprocess.run([node, "--input-type=module", "-e", HARNESS, str(JS / "download.js")],
                         capture_output=True, text=True, timeout=30, check=True)
    got = json.loads(out.stdout)
    asked = [{"type": "download", "id": "q1", "result": 0, "format": "arrow"},
             {"type": "download", "id": "q2", "result": 1, "format": "csv"}]
    assert got["sent"] == asked + asked
    assert (got["answered"], got["again"], got["refused"]) == (True, True, True)
    assert got["url"] == "/d?sig=1" and got["error"] == "gone" and got["pending"] == 0
