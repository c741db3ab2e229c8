"""Kill one executor of a running application of the standalone cluster (SIGKILL), mid-job.

``ExecutorKiller`` is a thread started before a submission: it waits for the driver's log
to name the application id, then for one of the application's executors to have finished
``after_tasks`` tasks (``Finished task`` lines in its ``stderr``, in
``<worker work dir>/<app id>/<executor id>``) and to be running one (a ``Running task`` line
without its ``Finished task``), finds that executor's JVM in /proc (the
``CoarseGrainedExecutorBackend`` command line with the app and executor ids) and sends it
SIGKILL. Only a process in the session of one of the cluster's daemons is ever signalled,
so nothing this test did not start. What it killed is kept as a ``Kill``.
"""

from __future__ import annotations

import itertools
import os
import re
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from scripts.standalone_cluster import Cluster

from tests.deploy.submission import app_id_in

EXECUTOR_CLASS = "org.apache.spark.executor.CoarseGrainedExecutorBackend"
TASK = re.compile(r"\b(Running|Finished) task \S+ in stage \S+ \(TID (\d+)\)")


@dataclass(frozen=True)
class Kill:
    app_id: str
    executor_id: str
    worker: str  # the worker work dir's name, e.g. worker-1
    pid: int
    finished_tasks: int  # "Finished task" lines in its stderr when it was killed
    running: tuple[int, ...]  # the task ids (TID) it was running then, by its log
    seconds: float  # after the watcher started (about when spark-submit started)


def tasks(stderr: Path) -> tuple[set[int], set[int]]:
    """The task ids an executor's log says it finished, and those it is still running."""
    try:
        text = stderr.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return set(), set()
    seen: dict[str, set[int]] = {"Running": set(), "Finished": set()}
    for what, tid in TASK.findall(text):
        seen[what].add(int(tid))
    return seen["Finished"], seen["Running"] - seen["Finished"]


def finished_tasks(stderr: Path) -> int:
    return len(tasks(stderr)[0])


def executor_pid(cluster: Cluster, app_id: str, executor_id: str) -> int | None:
    """The live executor JVM of app_id/executor_id in one of the cluster daemons' sessions."""
    sessions = {d.pid for d in cluster.daemons}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
            stat = (entry / "stat").read_text(encoding="ascii", errors="replace")
        except OSError:
            continue
        if EXECUTOR_CLASS not in argv or not _has(argv, "--app-id", app_id):
            continue
        if not _has(argv, "--executor-id", executor_id):
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z" and int(fields[3]) in sessions:
            return int(entry.name)
    return None


def _has(argv: list[str], option: str, value: str) -> bool:
    return any(a == option and b == value for a, b in itertools.pairwise(argv))


class ExecutorKiller(threading.Thread):
    """SIGKILL the first executor of the driver's app that has finished ``after_tasks``
    tasks, while it runs another."""

    def __init__(self, cluster: Cluster, driver_log: Path, after_tasks: int) -> None:
        super().__init__(name="executor-killer", daemon=True)
        self.cluster, self.driver_log, self.after_tasks = cluster, driver_log, after_tasks
        self.done = threading.Event()  # set by the caller once the submission has ended
        self.killed: Kill | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.killed = self._watch()
        except BaseException as error:  # reported by stop(), not lost in the thread
            self.error = error

    def stop(self) -> Kill | None:
        self.done.set()
        self.join(timeout=30)
        if self.error is not None:
            raise self.error
        return self.killed

    def _watch(self) -> Kill | None:
        began = time.monotonic()
        app_id = None
        while not self.done.wait(0.2):
            app_id = app_id or app_id_in(self.driver_log)
            if app_id is None:
                continue
            for worker_dir in self.cluster.worker_dirs:
                for stderr in sorted(worker_dir.glob(f"{app_id}/*/stderr")):
                    finished, running = tasks(stderr)
                    if len(finished) < self.after_tasks or not running:
                        continue
                    executor_id = stderr.parent.name
                    pid = executor_pid(self.cluster, app_id, executor_id)
                    if pid is None:
                        continue  # already gone: try another executor
                    os.kill(pid, signal.SIGKILL)
                    seconds = time.monotonic() - began
                    return Kill(
                        app_id,
                        executor_id,
                        worker_dir.name,
                        pid,
                        len(finished),
                        tuple(sorted(running)),
                        seconds,
                    )
        return None
