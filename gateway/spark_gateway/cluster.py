"""A real Spark standalone cluster on 127.0.0.1 from the pip wheel, without Docker.

A master, N workers (each with its own work dir) and a Spark Connect server attached to the
master, each its own JVM in its own process group. ``spark-gateway cluster up|down|status``
(also ``python -m spark_gateway.cluster``) for people; :class:`LocalCluster` for tests.
Everything is stopped by the pids recorded in ``<state-dir>/cluster.json``, never by name.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import ClusterError
from .spark_server import EmbeddedSparkServer, free_port, spark_home, udf_python

STATE_FILE = "cluster.json"
MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"
CONNECT_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
EXECUTOR_CLASS = "org.apache.spark.executor.CoarseGrainedExecutorBackend"


@dataclass
class Component:
    """One JVM of the cluster, as recorded in the state file."""

    name: str  # "master", "worker-1", ..., "connect"
    main_class: str  # what its command line must contain before we signal the pid
    pid: int
    log: str
    url: str | None = None
    ui: str | None = None


@dataclass
class LocalCluster:
    """Master + workers + Connect server on loopback; ``with LocalCluster(...) as c: c.connect_url``."""

    state_dir: Path = field(default_factory=lambda: Path(".spark-cluster"))
    workers: int = 2
    worker_cores: int = 1
    worker_memory: str = "1g"
    executor_memory: str = "1g"
    driver_memory: str = "1g"
    max_result_size: str = "1g"
    daemon_memory: str = "512m"  # heap of the master and worker JVMs (they only do bookkeeping)
    host: str = "127.0.0.1"
    master_port: int = 0
    master_ui_port: int = 0
    connect_port: int = 0
    connect_ui_port: int = 0
    components: list[Component] = field(default_factory=list)
    _processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.state_dir = Path(self.state_dir).resolve()

    # ------------------------------------------------------------ addresses

    @property
    def master_url(self) -> str:
        return f"spark://{self.host}:{self.master_port}"

    @property
    def master_ui_url(self) -> str:
        return f"http://{self.host}:{self.master_ui_port}"

    @property
    def connect_url(self) -> str:
        return f"sc://{self.host}:{self.connect_port}"

    @property
    def connect_ui_url(self) -> str:
        return f"http://{self.host}:{self.connect_ui_port}"

    @property
    def state_path(self) -> Path:
        return self.state_dir / STATE_FILE

    def pid_of(self, name: str) -> int:
        return next(c.pid for c in self.components if c.name == name)

    # ------------------------------------------------------------ start

    def __enter__(self) -> LocalCluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout: float = 180.0) -> str:
        """Start every JVM and wait until all executors are registered; returns the sc:// URL."""
        if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
            raise ClusterError("Java was not found: Spark needs Java 17 "
                               "(Debian: apt-get install -y openjdk-17-jre-headless)")
        running = [c.name for c in read_state(self.state_dir) if is_running(c)]
        if running:
            raise ClusterError(f"{self.state_dir} already has a running cluster ({', '.join(running)}); "
                               "stop it first with: spark-gateway cluster down")
        self._prepare_dirs()
        for attr in ("master_port", "master_ui_port", "connect_port", "connect_ui_port"):
            setattr(self, attr, getattr(self, attr) or free_port(self.host))
        deadline = time.monotonic() + timeout
        try:
            self._launch("master", MASTER_CLASS, self._master_command(), url=self.master_url,
                         ui=self.master_ui_url)
            # Workers and the driver register with the master with back-offs of 10-20 s when
            # it is not there yet, so start them once it listens rather than all at once.
            self._wait("the master to listen", deadline,
                       lambda: _master_state(self.master_ui_url) is not None)
            for n in range(1, self.workers + 1):
                self._launch(f"worker-{n}", WORKER_CLASS, self._worker_command(n))
            self._launch("connect", CONNECT_CLASS, self._connect_command(), url=self.connect_url,
                         ui=self.connect_ui_url)
            self._write_state()
            self._wait(f"{self.workers} workers to register", deadline, self._workers_alive)
            self._wait(f"{self.workers} executors to register with the Connect server", deadline,
                       lambda: len(self.executor_ids()) >= self.workers)
        except BaseException:
            self.stop()
            raise
        return self.connect_url

    def _prepare_dirs(self) -> None:
        # Old executor work dirs and logs belong to a cluster that is gone.
        for sub in ("work", "logs"):
            shutil.rmtree(self.state_dir / sub, ignore_errors=True)
            (self.state_dir / sub).mkdir(parents=True)

    def _env(self) -> dict[str, str]:
        env = {**os.environ, "SPARK_HOME": str(spark_home()), "SPARK_LOCAL_IP": self.host,
               "SPARK_DAEMON_MEMORY": self.daemon_memory, "PYSPARK_PYTHON": udf_python()}
        for name in ("SPARK_REMOTE", "SPARK_CONNECT_MODE_ENABLED", "SPARK_LOCAL_REMOTE"):
            env.pop(name, None)  # a client-side setting must not turn these JVMs into something else
        return env

    def _master_command(self) -> list[str]:
        return [str(spark_home() / "bin" / "spark-class"), MASTER_CLASS, "--host", self.host,
                "--port", str(self.master_port), "--webui-port", str(self.master_ui_port)]

    def _worker_command(self, n: int) -> list[str]:
        # Always a work dir of our own: the default is $SPARK_HOME/work, inside site-packages.
        work = self.state_dir / "work" / f"worker-{n}"
        work.mkdir(parents=True, exist_ok=True)
        return [str(spark_home() / "bin" / "spark-class"), WORKER_CLASS, "--host", self.host,
                "--cores", str(self.worker_cores), "--memory", self.worker_memory,
                "--webui-port", str(free_port(self.host)), "--work-dir", str(work), self.master_url]

    def _connect_command(self) -> list[str]:
        server = EmbeddedSparkServer(
            master=self.master_url, driver_memory=self.driver_memory, max_result_size=self.max_result_size,
            host=self.host, port=self.connect_port, ui=True, ui_port=self.connect_ui_port,
            extra_conf={
                "spark.executor.cores": str(self.worker_cores),
                "spark.executor.memory": self.executor_memory,
                "spark.cores.max": str(self.workers * self.worker_cores),
                "spark.ui.showConsoleProgress": "false",
            })
        command = server.command()
        command[command.index("--name") + 1] = "spark-gateway cluster Spark Connect"
        return command

    def _launch(self, name: str, main_class: str, command: list[str], url: str | None = None,
                ui: str | None = None) -> None:
        log = self.state_dir / "logs" / f"{name}.log"
        with open(log, "wb") as out:
            # Own session: Ctrl-C in the terminal that ran `up` does not reach the cluster, and
            # the whole group (a worker and its executors) can be signalled together.
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, env=self._env(), cwd=self.state_dir,
                                       start_new_session=True)
        self._processes[name] = process  # spark-class execs java: this pid is the JVM's
        self.components.append(Component(name, main_class, process.pid, str(log), url, ui))

    def _wait(self, what: str, deadline: float, ready: Callable[[], bool]) -> None:
        while not ready():
            for c in self.components:
                # poll(), not is_running(): until exec the child's cmdline is still this Python's.
                if self._processes[c.name].poll() is not None:
                    raise ClusterError(f"{c.name} exited while waiting for {what}; "
                                       f"log {c.log}:\n{_tail(c.log)}")
            if time.monotonic() > deadline:
                raise ClusterError(f"timed out waiting for {what}; logs in {self.state_dir / 'logs'}")
            time.sleep(0.25)

    def _workers_alive(self) -> bool:
        state = _master_state(self.master_ui_url)
        return state is not None and int(state.get("aliveworkers", 0)) >= self.workers

    def _write_state(self) -> None:
        state = {"master_url": self.master_url, "master_ui": self.master_ui_url,
                 "connect_url": self.connect_url, "connect_ui": self.connect_ui_url,
                 "components": [asdict(c) for c in self.components]}
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2) + "\n")
        tmp.replace(self.state_path)

    # ------------------------------------------------------------ inspect

    def executors(self) -> list[dict[str, Any]]:
        """The live executors registered with the Connect server's driver, from its REST API."""
        apps = _get_json(f"{self.connect_ui_url}/api/v1/applications")
        if not apps:
            return []
        executors = _get_json(f"{self.connect_ui_url}/api/v1/applications/{apps[0]['id']}/executors") or []
        return [e for e in executors if e["id"] != "driver" and e.get("isActive", True)]

    def executor_ids(self) -> list[str]:
        return [e["id"] for e in self.executors()]

    def executor_pids(self) -> set[int]:
        """Pids of the executor JVMs, which the workers start as their children."""
        workers = {c.pid for c in self.components if c.main_class == WORKER_CLASS}
        return {pid for pid, ppid, _ in _processes() if ppid in workers and EXECUTOR_CLASS in _cmdline(pid)}

    # ------------------------------------------------------------ stop

    def stop(self, timeout: float = 20.0) -> None:
        """Connect server first (the workers then kill its executors), then workers, then master."""
        stop_components(self.components, timeout, self._processes)
        for process in self._processes.values():
            if process.poll() is None:  # not a Spark JVM (yet?), so not signalled above
                process.kill()
            process.wait()
        self._processes.clear()
        self.components = []
        self.state_path.unlink(missing_ok=True)


# ---------------------------------------------------------------- pids and /proc


def read_state(state_dir: Path) -> list[Component]:
    path = Path(state_dir) / STATE_FILE
    if not path.exists():
        return []
    return [Component(**c) for c in json.loads(path.read_text())["components"]]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _processes() -> list[tuple[int, int, int]]:
    """(pid, ppid, pgid) of every process, from /proc (Linux)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # the command name may contain spaces
        if fields[0] != "Z":
            found.append((int(entry.name), int(fields[1]), int(fields[2])))
    return found


def is_running(component: Component) -> bool:
    """The pid is alive, not a zombie, and still the JVM we started (pids get reused)."""
    return component.main_class in _cmdline(component.pid) and _state_letter(component.pid) not in ("Z", "")


def _state_letter(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat[stat.rindex(")") + 2]


def _group_members(pgid: int) -> list[int]:
    """Spark JVMs still in a process group we created (a worker's executors outlive it briefly)."""
    return [pid for pid, _, group in _processes() if group == pgid and "org.apache.spark" in _cmdline(pid)]


def _signal(pids: list[int], sig: signal.Signals) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def stop_components(components: list[Component], timeout: float = 20.0,
                    children: dict[str, subprocess.Popen[bytes]] | None = None) -> list[str]:
    """SIGTERM each component's Spark JVMs (Connect, workers, master), SIGKILL after ``timeout``.

    Returns the names of the components that still had processes to stop.
    """
    stopped = []
    for main_class in (CONNECT_CLASS, WORKER_CLASS, MASTER_CLASS):
        # Each component leads its own process group (a worker's includes its executors); only
        # members that are Spark JVMs are signalled, so a reused pid is never hit.
        groups = {c.name: _group_members(c.pid) for c in components if c.main_class == main_class}
        targets = [pid for pids in groups.values() for pid in pids]
        _signal(targets, signal.SIGTERM)
        if not _wait_gone(targets, timeout, children):
            _signal([pid for pid in targets if pid_alive(pid)], signal.SIGKILL)
            _wait_gone(targets, 10.0, children)
        stopped += [name for name, pids in groups.items() if pids]
    return stopped


def pid_alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    return _state_letter(pid) not in ("Z", "")


def _wait_gone(pids: list[int], timeout: float, children: dict[str, subprocess.Popen[bytes]] | None) -> bool:
    deadline = time.monotonic() + timeout
    while any(pid_alive(pid) for pid in pids):
        if time.monotonic() > deadline:
            return False
        _reap(children)  # our own children stay zombies (alive to /proc) until reaped
        time.sleep(0.05)
    return True


def _reap(children: dict[str, subprocess.Popen[bytes]] | None) -> None:
    for process in (children or {}).values():
        process.poll()


# ---------------------------------------------------------------- HTTP


def _get_json(url: str) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return json.loads(response.read())
    except (OSError, ValueError):
        return None


def _master_state(master_ui: str) -> dict[str, Any] | None:
    state = _get_json(master_ui + "/json/")
    return state if isinstance(state, dict) else None


def _tail(path: str, lines: int = 25) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# ---------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="spark-gateway cluster",
                                     description="A Spark standalone cluster on 127.0.0.1 from the pip wheel")
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser(
        "up", help="start a master, workers and a Spark Connect server; print the sc:// URL")
    down = commands.add_parser("down", help="stop everything `up` started, by pid")
    status = commands.add_parser("status", help="show what is running")
    for sub in (up, down, status):
        sub.add_argument("--state-dir", type=Path, default=Path(".spark-cluster"),
                         help="pids, logs and worker dirs (default: .spark-cluster)")
    up.add_argument("--workers", type=int, default=2)
    up.add_argument("--worker-cores", type=int, default=1)
    up.add_argument("--executor-memory", default="1g")
    up.add_argument("--driver-memory", default="1g", help="Connect server (driver) heap")
    for port in ("master-port", "master-ui-port", "connect-port", "connect-ui-port"):
        up.add_argument(f"--{port}", type=int, default=0, help="default: a free port")
    up.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for the executors")
    down.add_argument("--timeout", type=float, default=20.0, help="seconds before SIGKILL")
    status.add_argument("--json", action="store_true", help="print the state file and liveness as JSON")
    args = parser.parse_args(argv)
    return {"up": _up, "down": _down, "status": _status}[args.command](args)


def _up(args: argparse.Namespace) -> int:
    memory = args.executor_memory
    cluster = LocalCluster(
        state_dir=args.state_dir, workers=args.workers, worker_cores=args.worker_cores, worker_memory=memory,
        executor_memory=memory, driver_memory=args.driver_memory, master_port=args.master_port,
        master_ui_port=args.master_ui_port, connect_port=args.connect_port,
        connect_ui_port=args.connect_ui_port)
    started = time.monotonic()
    try:
        url = cluster.start(args.timeout)
    except ClusterError as exc:
        print(f"spark-gateway cluster: {exc}", file=sys.stderr)
        return 1
    # The JVMs keep running after this process exits; `down` stops them by the recorded pids.
    print(f"cluster up in {time.monotonic() - started:.1f}s: master {cluster.master_url} "
          f"(UI {cluster.master_ui_url}), {args.workers} executors, Spark UI {cluster.connect_ui_url}; "
          f"state {cluster.state_path}", file=sys.stderr)
    print(url)  # alone on stdout: export SPARK_REMOTE=$(spark-gateway cluster up)
    return 0


def _down(args: argparse.Namespace) -> int:
    components = read_state(args.state_dir)
    if not components:
        print(f"no cluster recorded in {args.state_dir}", file=sys.stderr)
        return 0
    stopped = stop_components(components, args.timeout)
    (Path(args.state_dir) / STATE_FILE).unlink(missing_ok=True)
    print(f"stopped {', '.join(stopped) or 'nothing (already gone)'}", file=sys.stderr)
    return 0


def _status(args: argparse.Namespace) -> int:
    path = Path(args.state_dir) / STATE_FILE
    if not path.exists():
        print(f"no cluster recorded in {args.state_dir}")
        return 1
    state = json.loads(path.read_text())
    components = [Component(**c) for c in state["components"]]
    alive = {c.name: is_running(c) for c in components}
    master = _master_state(state["master_ui"]) or {}
    if args.json:
        print(json.dumps({**state, "running": alive, "alive_workers": master.get("aliveworkers"),
                          "active_apps": [a.get("name") for a in master.get("activeapps", [])]}, indent=2))
    else:
        for c in components:
            where = " ".join(x for x in (c.url, c.ui and f"UI {c.ui}") if x)
            print(f"{c.name:<10} pid {c.pid:<8} {'running' if alive[c.name] else 'STOPPED':<8} {where}")
        print(f"alive workers: {master.get('aliveworkers', '?')}; "
              f"apps: {', '.join(a.get('name', '?') for a in master.get('activeapps', [])) or 'none'}")
        print(f"Spark Connect: {state['connect_url']}")
    return 0 if all(alive.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
