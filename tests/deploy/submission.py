"""spark-submit in client mode against the standalone cluster of tests/deploy/test_cluster.py.

Each driver starts in an empty working directory of its own under the test's folder, with a
Python that has every dependency but not the checkout's editable install (``python``) and
the package shipped as ``--py-files`` (``archive``); its stdout and stderr go to files.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scripts.standalone_cluster import Cluster, spark_env, spark_home, tail

from tests.helpers import TEST_KEY

SUBMIT_TIMEOUT = 480.0
LIGHT_JVM = "-XX:+UseSerialGC -XX:TieredStopAtLevel=1"
APP_ID_MARKER = "Connected to Spark cluster with app ID "


@dataclass(frozen=True)
class Submitted:
    name: str
    returncode: int
    stdout: str
    stderr: Path
    seconds: float
    cwd: Path  # the driver's working directory (its own, empty when it started)

    def app_id(self) -> str:
        """The standalone application id, from the driver's log."""
        found = app_id_in(self.stderr)
        if found is None:
            raise AssertionError(f"{self.name}: no app id in {self.stderr}")
        return found


def app_id_in(driver_log: Path) -> str | None:
    """The application id a driver's log names once it has connected to the master."""
    try:
        text = driver_log.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return None
    for line in text.splitlines():
        if APP_ID_MARKER in line:
            return line.split(APP_ID_MARKER, 1)[1].split()[0]
    return None


def explain(cluster: Cluster, *runs: Submitted) -> str:
    """What to read when an assertion fails: spark-submit's stderr and the daemon logs."""
    parts = [
        f"--- {r.name}: exit {r.returncode} after {r.seconds:.0f} s, stderr {r.stderr} ---\n"
        f"{tail(r.stderr, 60)}"
        for r in runs
    ]
    return "\n".join([*parts, cluster.logs_tail(20)])


@dataclass(frozen=True)
class Submitter:
    """spark-submit in client mode against the cluster; output goes to files under out."""

    cluster: Cluster
    python: Path
    archive: Path
    out: Path
    key_env: str  # privacy.pseudonym_key_env

    def __call__(self, script: Path, args: Sequence[str], extra: Sequence[str] = ()) -> Submitted:
        return submit(self, script, args, extra)

    def driver_log(self, script: Path) -> Path:
        """Where the driver of ``script`` writes its stderr (known before it starts)."""
        return self.out / f"{script.stem}.err"


def submit(how: Submitter, script: Path, args: Sequence[str], extra: Sequence[str]) -> Submitted:
    cluster, out = how.cluster, how.out
    name = script.stem
    cwd = out / f"cwd-driver-{name}"
    cwd.mkdir()
    env = spark_env(cluster.directory, python=str(how.python))
    env.pop("PYTHONPATH", None)  # the archive must be the only source of userprofile
    env[how.key_env] = TEST_KEY
    env["PWD"] = str(cwd)
    command = [
        str(spark_home() / "bin" / "spark-submit"),
        *("--master", cluster.master_url, "--deploy-mode", "client"),
        *("--py-files", str(how.archive)),
        *("--driver-memory", "1g", "--executor-memory", "1g"),
        # Wait for both executors (2 cores) before the first job, so both workers run tasks.
        *("--conf", "spark.cores.max=2"),
        *("--conf", "spark.scheduler.minRegisteredResourcesRatio=1.0"),
        *("--conf", "spark.scheduler.maxRegisteredResourcesWaitingTime=60s"),
        *("--conf", "spark.sql.shuffle.partitions=4"),
        *("--conf", "spark.ui.enabled=false"),
        # Many small jobs on 2 shared cores: no waiting for a cached block's executor,
        # short-lived JVMs with light JIT and GC, few listing and Delta log-replay tasks.
        *("--conf", "spark.locality.wait=0s"),
        *("--conf", f"spark.driver.extraJavaOptions={LIGHT_JVM}"),
        *("--conf", f"spark.executor.extraJavaOptions={LIGHT_JVM}"),
        *("--conf", "spark.sql.sources.parallelPartitionDiscovery.parallelism=4"),
        *extra,
        str(script),
        *args,
    ]
    stdout_path, stderr_path = out / f"{name}.out", how.driver_log(script)
    began = time.monotonic()
    with stdout_path.open("wb") as stdout, stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,  # on a timeout, end the driver's Python with its JVM
        )
        try:
            returncode = process.wait(timeout=SUBMIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            returncode = process.wait()
    seconds = time.monotonic() - began
    text = stdout_path.read_text(encoding="utf-8", errors="replace")
    return Submitted(name, returncode, text, stderr_path, seconds, cwd)


def master_state_once_finished(cluster: Cluster, app_ids: list[str]) -> dict[str, Any]:
    """The master's JSON once it lists the apps as completed (a driver's goodbye is async)."""
    deadline = time.monotonic() + 30
    while True:
        state = cluster.state()
        completed = {a["id"] for a in state["completedapps"]}
        if set(app_ids) <= completed or time.monotonic() > deadline:
            return state
        time.sleep(0.5)
