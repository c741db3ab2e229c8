"""A Spark standalone cluster on 127.0.0.1 (one master, two workers) from pip's pyspark.

    python scripts/standalone_cluster.py start --dir /tmp/sa   # prints the master URL
    spark-submit --master spark://127.0.0.1:7077 ...
    python scripts/standalone_cluster.py stop --dir /tmp/sa

The pyspark wheel ships ``bin/spark-class`` but not ``sbin/start-master.sh``, so the
daemons are started here directly: each in its own session (so its own process group,
which also holds the executors and Python workers it forks) and its own working directory
``--dir/cwd/<name>``, logging to ``--dir/logs``, with pids recorded in ``--dir/cluster.json``.
A worker's executors run in ``--dir/<worker>/<app id>/<executor id>`` (its work dir), not in
the worker's working directory. ``stop`` signals only those groups
(SIGTERM, then SIGKILL after a grace period), never other Java processes.
The master takes port 7077 (web UI 8080) when free, else a free port, and says so.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
MASTER_PORT = 7077
WEBUI_PORT = 8080
STATE_FILE = "cluster.json"
MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"

log = logging.getLogger(__name__)


class ClusterError(RuntimeError):
    """The cluster did not come up (the message carries the daemons' log tails)."""


@dataclass(frozen=True)
class Daemon:
    """One started daemon. Its pid is also its session and process-group id."""

    name: str
    pid: int
    start_ticks: int | None  # /proc/<pid>/stat start time: tells it from a reused pid
    log: str
    cwd: str = ""  # its working directory (empty in a state file written before it was kept)


@dataclass(frozen=True)
class Cluster:
    directory: Path
    master_port: int
    webui_port: int
    daemons: tuple[Daemon, ...]
    worker_dirs: tuple[Path, ...]

    @property
    def master_url(self) -> str:
        return f"spark://{HOST}:{self.master_port}"

    @property
    def webui_url(self) -> str:
        return f"http://{HOST}:{self.webui_port}"

    def state(self, timeout: float = 5.0) -> dict[str, Any]:
        """The master's JSON status (workers, active and completed applications)."""
        with urllib.request.urlopen(f"{self.webui_url}/json/", timeout=timeout) as response:
            document: dict[str, Any] = json.load(response)
        return document

    def logs_tail(self, lines: int = 30) -> str:
        return "\n".join(
            f"--- {d.name} ({d.log}) ---\n{tail(Path(d.log), lines)}" for d in self.daemons
        )

    def save(self) -> None:
        document = {
            "directory": str(self.directory),
            "master_port": self.master_port,
            "webui_port": self.webui_port,
            "daemons": [asdict(d) for d in self.daemons],
            "worker_dirs": [str(p) for p in self.worker_dirs],
        }
        (self.directory / STATE_FILE).write_text(json.dumps(document, indent=2), encoding="utf-8")

    @classmethod
    def load(cls, directory: Path) -> Cluster:
        document = json.loads((directory / STATE_FILE).read_text(encoding="utf-8"))
        return cls(
            directory=Path(document["directory"]),
            master_port=int(document["master_port"]),
            webui_port=int(document["webui_port"]),
            daemons=tuple(Daemon(**d) for d in document["daemons"]),
            worker_dirs=tuple(Path(p) for p in document["worker_dirs"]),
        )


def spark_home() -> Path:
    """The pip-installed pyspark's folder (it holds bin/spark-class and jars/)."""
    spec = importlib.util.find_spec("pyspark")
    if spec is None or not spec.submodule_search_locations:
        raise ClusterError("pyspark is not installed in this Python environment")
    return Path(next(iter(spec.submodule_search_locations)))


def spark_env(directory: Path, python: str | None = None) -> dict[str, str]:
    """Environment for the daemons (and for spark-submit against them): all under directory."""
    conf_dir = directory / "conf"  # empty: no user spark-defaults.conf or spark-env.sh
    for sub in ("conf", "local", "logs", "pids"):
        (directory / sub).mkdir(parents=True, exist_ok=True)
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"PYSPARK_GATEWAY_PORT", "PYSPARK_GATEWAY_SECRET", "PYSPARK_DRIVER_PYTHON"}
    }
    env.update(
        SPARK_HOME=str(spark_home()),
        SPARK_CONF_DIR=str(conf_dir),
        SPARK_LOCAL_IP=HOST,
        SPARK_LOCAL_DIRS=str(directory / "local"),
        SPARK_LOG_DIR=str(directory / "logs"),
        SPARK_PID_DIR=str(directory / "pids"),
        SPARK_WORKER_DIR=str(directory / "work"),
        SPARK_DAEMON_MEMORY="512m",
        # Master and workers idle most of the time: no parallel GC threads, no C2 compiler.
        SPARK_DAEMON_JAVA_OPTS="-XX:+UseSerialGC -XX:TieredStopAtLevel=1",
        PYSPARK_PYTHON=python or sys.executable,
    )
    return env


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Spark's servers do
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
    return port


def pick_port(preferred: int, what: str) -> int:
    if port_is_free(preferred):
        return preferred
    port = free_port()
    log.warning("port %d for the %s is busy; using %d instead", preferred, what, port)
    return port


def tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def start(
    directory: Path,
    workers: int = 2,
    cores: int = 1,
    memory: str = "1500m",
    master_port: int | None = None,
    timeout: float = 120.0,
) -> Cluster:
    """Start a master and ``workers`` workers; return once all workers are registered."""
    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    if (directory / STATE_FILE).exists() and alive(Cluster.load(directory)):
        raise ClusterError(f"a cluster started from {directory} is still running; stop it first")
    env = spark_env(directory)
    spark_class = str(spark_home() / "bin" / "spark-class")
    if master_port is not None and not port_is_free(master_port):
        raise ClusterError(f"port {master_port} on {HOST} is busy; choose another --port")
    port = master_port or pick_port(MASTER_PORT, "master")
    webui = pick_port(WEBUI_PORT, "master web UI")
    master_args = ["--host", HOST, "--port", str(port), "--webui-port", str(webui)]
    cluster = Cluster(directory, port, webui, (), ())
    try:
        master = _launch("master", [spark_class, MASTER_CLASS, *master_args], directory, env)
        cluster = Cluster(directory, port, webui, (master,), ())
        cluster.save()
        deadline = time.monotonic() + timeout
        _wait(cluster, deadline, lambda s: s.get("status") == "ALIVE", "the master to be ALIVE")
        for n in range(1, workers + 1):
            work_dir = directory / f"worker-{n}"
            work_dir.mkdir(exist_ok=True)
            worker_args = [
                *(cluster.master_url, "--host", HOST, "--cores", str(cores)),
                *("--memory", memory, "--work-dir", str(work_dir)),
                *("--webui-port", str(free_port())),
            ]
            worker = _launch(
                f"worker-{n}", [spark_class, WORKER_CLASS, *worker_args], directory, env
            )
            cluster = Cluster(
                directory,
                port,
                webui,
                (*cluster.daemons, worker),
                (*cluster.worker_dirs, work_dir),
            )
            cluster.save()
        _wait(
            cluster,
            deadline,
            lambda s: alive_workers(s) >= workers,
            f"{workers} workers to register with the master",
        )
    except BaseException:
        stop(cluster)
        raise
    return cluster


def alive_workers(state: dict[str, Any]) -> int:
    return sum(1 for w in state.get("workers", []) if w.get("state") == "ALIVE")


def _launch(name: str, command: Sequence[str], directory: Path, env: dict[str, str]) -> Daemon:
    log_path = directory / "logs" / f"{name}.log"
    cwd = directory / "cwd" / name  # its own: what a daemon writes there is told apart
    cwd.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as out:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env={**env, "PWD": str(cwd)},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own session and process group: stop signals only it
        )
    log.info("started %s (pid %d), log %s", name, process.pid, log_path)
    return Daemon(name, process.pid, _start_ticks(process.pid), str(log_path), str(cwd))


def _wait(cluster: Cluster, deadline: float, ready: Any, what: str) -> None:
    last_error = ""
    while time.monotonic() < deadline:
        dead = [d.name for d in cluster.daemons if not _group_alive(d.pid)]
        if dead:
            raise ClusterError(
                f"{', '.join(dead)} exited while waiting for {what}\n{cluster.logs_tail()}"
            )
        try:
            if ready(cluster.state(timeout=2.0)):
                return
        except (OSError, ValueError) as error:  # not listening yet, or half-written JSON
            last_error = str(error)
        time.sleep(0.5)
    raise ClusterError(
        f"timed out waiting for {what} ({cluster.webui_url}/json/; last error: {last_error})\n"
        f"{cluster.logs_tail()}"
    )


def stop(cluster: Cluster, grace: float = 15.0) -> list[str]:
    """Stop the daemons this cluster started (and everything in their process groups).

    SIGTERM to each group still ours, SIGKILL to what is left after ``grace`` seconds.
    Returns the names of the daemons that were signalled.
    """
    ours = [d for d in reversed(cluster.daemons) if _is_ours(d)]  # workers first
    for daemon in ours:
        _signal_group(daemon.pid, signal.SIGTERM)
    left = _wait_gone(ours, grace)
    for daemon in left:
        log.warning("%s (pid %d) ignored SIGTERM; sending SIGKILL", daemon.name, daemon.pid)
        _signal_group(daemon.pid, signal.SIGKILL)
    left = _wait_gone(left, 10.0)
    if left:
        names = ", ".join(f"{d.name} (pid {d.pid})" for d in left)
        raise ClusterError(f"still running after SIGKILL: {names}")
    return [d.name for d in ours]


def alive(cluster: Cluster) -> list[Daemon]:
    """The cluster's daemons whose process groups still exist."""
    return [d for d in cluster.daemons if _is_ours(d)]


def _wait_gone(daemons: Iterable[Daemon], seconds: float) -> list[Daemon]:
    deadline = time.monotonic() + seconds
    left = list(daemons)
    while left:
        left = [d for d in left if _group_alive(d.pid)]
        if not left or time.monotonic() >= deadline:
            break
        time.sleep(0.2)
    return left


def _is_ours(daemon: Daemon) -> bool:
    """Whether the daemon's process group still exists and is the one we started.

    Linux does not hand out a pid that is still some group's id, so a live group whose
    leader has exited is still ours; a live leader must have our recorded start time.
    """
    if not _group_alive(daemon.pid):
        return False
    ticks = _start_ticks(daemon.pid)
    return ticks is None or daemon.start_ticks is None or ticks == daemon.start_ticks


def _group_alive(pgid: int) -> bool:
    with contextlib.suppress(ChildProcessError):  # reap our own exited child (zombie)
        os.waitpid(pgid, os.WNOHANG)
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's group: not ours
        return False
    return True


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def _start_ticks(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat (start time since boot), or None without /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    start_cmd = sub.add_parser("start", help="start a master and workers on 127.0.0.1")
    stop_cmd = sub.add_parser("stop", help="stop the daemons started from --dir")
    for cmd in (start_cmd, stop_cmd):
        cmd.add_argument("--dir", type=Path, required=True, help="logs, pids and work dirs")
    start_cmd.add_argument("--workers", type=int, default=2)
    start_cmd.add_argument("--cores", type=int, default=1, help="cores per worker")
    start_cmd.add_argument("--memory", default="1500m", help="memory per worker")
    start_cmd.add_argument("--port", type=int, default=None, help="master port (default 7077)")
    start_cmd.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.command == "start":
            cluster = start(
                args.dir, args.workers, args.cores, args.memory, args.port, args.timeout
            )
            print(f"master {cluster.master_url}  web UI {cluster.webui_url}")
            print(f"stop with: python {sys.argv[0]} stop --dir {cluster.directory}")
        else:
            if not (args.dir / STATE_FILE).exists():
                print(f"no cluster recorded in {args.dir}", file=sys.stderr)
                return 1
            stopped = stop(Cluster.load(args.dir.resolve()))
            print(f"stopped: {', '.join(stopped) or 'nothing was running'}")
    except ClusterError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
