"""Prometheus metrics of one gateway process, rendered in the text exposition format.

Small on purpose: counters, gauges and one histogram are all the gateway needs, and
every update happens on the event loop, so no locking.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)


@dataclass
class Metrics:
    """The gateway's counters; ``render()`` is what ``GET /metrics`` returns."""

    sessions: int = 0
    sessions_total: int = 0
    sessions_away: int = 0
    resumes_total: int = 0
    joins_total: int = 0
    queued: int = 0
    running: int = 0
    rows_streamed: int = 0
    bytes_sent: int = 0
    spark_restarts: int = 0
    sessions_by_user: dict[str, int] = field(default_factory=dict)  # open sessions per user, set at render
    sessions_opened_by_user: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    executions: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    latency_buckets: list[int] = field(default_factory=lambda: [0] * len(LATENCY_BUCKETS))
    latency_sum: float = 0.0
    latency_count: int = 0
    # Whole-result downloads (GET /download): (format, "started"|"completed"|"failed") -> count.
    downloads: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    downloads_refused: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # by error code
    download_bytes: int = 0

    def download_started(self, fmt: str) -> None:
        self.downloads[fmt, "started"] += 1

    def download_finished(self, fmt: str, outcome: str) -> None:
        self.downloads[fmt, outcome] += 1

    def download_refused(self, code: str) -> None:
        self.downloads_refused[code] += 1

    def execution_finished(self, status: str, seconds: float) -> None:
        self.executions[status] += 1
        self.latency_sum += seconds
        self.latency_count += 1
        for i, bound in enumerate(LATENCY_BUCKETS):
            if seconds <= bound:
                self.latency_buckets[i] += 1

    def error(self, code: str) -> None:
        self.errors[code] += 1

    def render(self) -> str:
        lines: list[str] = []

        def metric(name: str, kind: str, help_text: str, samples: list[tuple[str, float]]) -> None:
            lines.append(f"# HELP spark_gateway_{name} {help_text}")
            lines.append(f"# TYPE spark_gateway_{name} {kind}")
            lines.extend(f"spark_gateway_{name}{labels} {value:g}" for labels, value in samples)

        metric("sessions", "gauge", "Open client sessions.", [("", self.sessions)])
        metric("sessions_away", "gauge", "Sessions whose client is away, kept for a resume.",
               [("", self.sessions_away)])
        metric("resumes_total", "counter", "Resume attempts since start.", [("", self.resumes_total)])
        metric("joins_total", "counter", "Join attempts (?join=) since start.", [("", self.joins_total)])
        metric("sessions_opened_total", "counter", "Sessions opened since start.", [("", self.sessions_total)])
        metric("user_sessions", "gauge", "Open client sessions by user (the Spark Connect user_id).",
               [(f'{{user="{_label(u)}"}}', n) for u, n in sorted(self.sessions_by_user.items())])
        metric("user_sessions_opened_total", "counter", "Sessions opened since start, by user.",
               [(f'{{user="{_label(u)}"}}', n) for u, n in sorted(self.sessions_opened_by_user.items())])
        metric("queued_executions", "gauge", "Executions waiting for their session's worker.", [("", self.queued)])
        metric("running_executions", "gauge", "Executions running or streaming results.", [("", self.running)])
        metric("executions_total", "counter", "Finished executions by status.",
               [(f'{{status="{s}"}}', n) for s, n in sorted(self.executions.items())])
        metric("errors_total", "counter", "Error events sent, by code.",
               [(f'{{code="{c}"}}', n) for c, n in sorted(self.errors.items())])
        metric("rows_streamed_total", "counter", "Result rows sent to clients.", [("", self.rows_streamed)])
        metric("bytes_sent_total", "counter", "Bytes of frames sent to clients.", [("", self.bytes_sent)])
        metric("spark_restarts_total", "counter", "Restarts of the embedded Spark Connect server after it ended.",
               [("", self.spark_restarts)])
        metric("downloads_total", "counter", "Whole-result downloads, by format and outcome (started, "
               "completed, failed: cut short after it started).",
               [(f'{{format="{f}",outcome="{o}"}}', n) for (f, o), n in sorted(self.downloads.items())])
        metric("downloads_refused_total", "counter", "Downloads refused before any byte, by error code.",
               [(f'{{code="{c}"}}', n) for c, n in sorted(self.downloads_refused.items())])
        metric("download_bytes_total", "counter", "Bytes of downloaded files sent.", [("", self.download_bytes)])
        cumulative = [(f'{{le="{b:g}"}}', n) for b, n in zip(LATENCY_BUCKETS, self.latency_buckets, strict=True)]
        cumulative.append(('{le="+Inf"}', self.latency_count))
        lines.append("# HELP spark_gateway_execution_seconds Execution time from start to finished.")
        lines.append("# TYPE spark_gateway_execution_seconds histogram")
        lines.extend(f"spark_gateway_execution_seconds_bucket{labels} {value:g}" for labels, value in cumulative)
        lines.append(f"spark_gateway_execution_seconds_sum {self.latency_sum:g}")
        lines.append(f"spark_gateway_execution_seconds_count {self.latency_count}")
        return "\n".join(lines) + "\n"


def _label(value: str) -> str:
    """A label value in the exposition format (a user_id from the sc:// URL may hold any character)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
