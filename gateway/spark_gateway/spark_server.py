"""The embedded Spark Connect server: a local JVM started from the pyspark wheel.

Not ``remote("local")``: that variant shares one process-wide auth token and is shut
down for everyone by any session's ``stop()``. This is a separate ``spark-submit``
process on a free loopback port, with driver limits that make an oversized result fail
cleanly instead of killing the server, stopped by pid.

It requires a token (Spark's pre-shared ``spark.connect.authenticate.token``): a loopback
port is open to every local process, and without it any of them could run code on Spark
past the gateway's own tokens. The token is random, made once per server object (a restart
keeps it, so sessions keep their URL), and reaches the JVM through its environment
(``SPARK_CONNECT_AUTHENTICATE_TOKEN``), never its command line, which ``ps`` shows to
every user. :attr:`EmbeddedSparkServer.url` carries it (``sc://127.0.0.1:P/;token=...``).
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .errors import SparkServerError

# How much of the end of the server's log death_cause reads (its last minutes, not hours of INFO).
_LOG_END_BYTES = 512 * 1024


def free_port(host: str = "127.0.0.1", avoid: Iterable[int] = ()) -> int:
    """A port nothing listens on now, other than those in ``avoid``.

    Two binds to port 0 one after the other may get the same port (the first socket is
    closed before the second binds): the Spark UI once took the gRPC port this way, and
    that Spark Connect server never answered. Ports one process picks for several
    listeners go in ``avoid``.
    """
    avoid = set(avoid)
    held: list[socket.socket] = []
    try:
        while True:
            s = socket.socket()
            held.append(s)  # held open while looking: the OS cannot hand out the same port again
            s.bind((host, 0))
            port = int(s.getsockname()[1])
            if port not in avoid:
                return port
    finally:
        for s in held:
            s.close()


TOKEN_ENV = "SPARK_CONNECT_AUTHENTICATE_TOKEN"  # Spark 4's server reads its pre-shared token from here


def spark_home() -> Path:
    import pyspark  # only to locate the wheel's jars and scripts

    return Path(pyspark.__file__).parent


def generate_token() -> str:
    """A fresh secret for a Spark Connect server (256 bits; URL-safe, so it needs no quoting in sc://)."""
    return secrets.token_urlsafe(32)


def udf_python() -> str:
    """The Python that Spark's Python workers (UDFs) run: this environment's, with pandas and pyarrow.

    Spark Connect takes it from the server's ``PYSPARK_PYTHON`` (else ``python3`` on the
    PATH, which lacks them when the gateway runs from a venv that is not activated).
    """
    return os.environ.get("PYSPARK_PYTHON") or sys.executable


def leaf_parallelism(master: str) -> int:
    """Partitions of a scan that names no count: four per core of a ``local[N]`` master, at least 32."""
    found = re.fullmatch(r"local\[(\d+|\*)(?:,\s*\d+)?\]", master.strip())
    if found is None:  # local (one core), or a cluster whose cores are not known here
        return 32
    cores = (os.cpu_count() or 1) if found.group(1) == "*" else int(found.group(1))
    return max(32, 4 * cores)


def port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


@dataclass
class EmbeddedSparkServer:
    """A ``SparkConnectServer`` JVM owned by this process.

    ``home`` and ``python`` pick another pyspark install (a Spark of another version, see
    ``tests/spark_versions.py``); by default, this environment's pyspark and Python.
    """

    master: str = "local[*]"
    driver_memory: str = "2g"
    max_result_size: str = "1g"
    host: str = "127.0.0.1"
    port: int = 0
    ui: bool = True
    ui_port: int = 0
    extra_conf: dict[str, str] = field(default_factory=dict)
    home: Path | None = None  # SPARK_HOME: a pyspark package dir; None: this environment's
    python: str | None = None  # the Python of Spark's Python workers (UDFs); None: udf_python()
    token: str | None = field(default=None, repr=False)  # None: generated at the first start
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    # Counts stop() calls: a start() that a stop() overtook (the gateway stopping while its
    # supervisor restarts Spark) must not leave a JVM behind, in a session of its own.
    _stops: int = field(default=0, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def url(self) -> str:
        """The sc:// URL clients connect with, the token included (treat it as a secret)."""
        base = f"sc://{self.host}:{self.port}"
        return f"{base}/;token={self.token}" if self.token else base

    @property
    def spark_home(self) -> Path:
        return self.home or spark_home()

    @property
    def ui_url(self) -> str | None:
        return f"http://{self.host}:{self.ui_port}" if self.ui else None

    def command(self) -> list[str]:
        conf = {
            "spark.connect.grpc.binding.address": self.host,
            "spark.connect.grpc.binding.port": str(self.port),
            "spark.driver.maxResultSize": self.max_result_size,
            "spark.ui.enabled": "true" if self.ui else "false",
            "spark.ui.port": str(self.ui_port),
            "spark.driver.bindAddress": self.host,
            "spark.driver.host": self.host,
            # Small partitions: first rows come early and no single task result is huge.
            "spark.sql.shuffle.partitions": "8",
            # The same for scans with no partition count of their own (range(n), local data):
            # Spark's default is one per core, and a task's result is held in the driver whole,
            # several times over while it is serialised and fetched. Ten 620 MB results of two
            # partitions each ended a 2g driver in 34 s; at 32 partitions they streamed with
            # at most ~0.6 GiB of heap in use (bench/README.md, "Driver memory").
            "spark.sql.leafNodeDefaultParallelism": str(leaf_parallelism(self.master)),
            **self.extra_conf,
        }
        cmd = [
            str(self.spark_home / "bin" / "spark-submit"),
            "--class", "org.apache.spark.sql.connect.service.SparkConnectServer",
            "--name", "spark-gateway embedded Spark Connect",
            "--master", self.master,
            "--driver-memory", self.driver_memory,
        ]
        for key, value in conf.items():
            cmd += ["--conf", f"{key}={value}"]
        return cmd

    def environment(self) -> dict[str, str]:
        """The JVM's environment: this process's, with the token, and without client-side settings."""
        self.token = self.token or generate_token()
        env = {**os.environ, "SPARK_HOME": str(self.spark_home), "SPARK_LOCAL_IP": self.host,
               "PYSPARK_PYTHON": self.python or udf_python(), TOKEN_ENV: self.token}
        for name in ("SPARK_REMOTE", "SPARK_CONNECT_MODE_ENABLED", "SPARK_LOCAL_REMOTE"):
            env.pop(name, None)  # a client-side setting must not turn this JVM into something else
        return env

    def pick_ports(self, avoid: Iterable[int] = ()) -> None:
        """Free ports for gRPC and the UI where none were given: distinct, none in ``avoid``."""
        avoid = set(avoid)
        self.port = self.port or free_port(self.host, avoid)
        self.ui_port = self.ui_port or free_port(self.host, {*avoid, self.port})

    def start(self, timeout: float = 120.0) -> str:
        """Start the JVM and wait until its gRPC port listens; returns the sc:// URL (with the token)."""
        if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
            raise SparkServerError(
                "Java was not found: the embedded Spark Connect server needs Java 17 "
                "(Debian: apt-get install -y openjdk-17-jre-headless), or pass --remote sc://host:port"
            )
        self.pick_ports()
        log_dir = Path(tempfile.mkdtemp(prefix="spark-gateway-"))
        self.log_path = log_dir / "spark-connect.log"
        env = self.environment()
        stops = self._stops
        with self._lock, open(self.log_path, "wb") as log:
            if self._stops != stops:
                raise SparkServerError("the embedded Spark Connect server was stopped while starting")
            proc = self.process = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=env, cwd=log_dir, start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while not port_open(self.host, self.port):
            if proc.poll() is not None:
                if self._stops != stops:
                    raise SparkServerError("the embedded Spark Connect server was stopped while starting")
                raise SparkServerError(
                    f"Spark Connect server exited with code {proc.returncode}; "
                    f"log: {self.log_path}\n{self._log_tail()}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise SparkServerError(
                    f"Spark Connect server did not listen within {timeout:.0f}s; log: {self.log_path}")
            time.sleep(0.1)
        return self.url

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the JVM's process group (shutdown hooks clean its temp dirs), then SIGKILL."""
        with self._lock:
            self._stops += 1
            proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        except ProcessLookupError:
            pass

    def running(self) -> bool:
        """Whether the server process is there (started, not stopped, not ended)."""
        return self.process is not None and self.process.poll() is None

    def death_cause(self) -> str:
        """Why the process is not running, as far as its exit code and the end of its log tell."""
        if self.process is None:
            return "it was not started, or did not start in time"
        cause = f"exit code {self.process.poll()}"
        if self.log_path is not None and self.log_path.exists():
            with open(self.log_path, "rb") as log:
                log.seek(max(0, log.seek(0, os.SEEK_END) - _LOG_END_BYTES))
                end = log.read().decode(errors="replace")
            fatal = re.findall(r"java\.lang\.OutOfMemoryError[^\n]*", end)
            if fatal:  # what a query too big for the driver's memory does (see README, Known limits)
                cause = f"{fatal[-1].strip()}, {cause}"
        return cause

    def _log_tail(self, lines: int = 20) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
