"""The pipeline through spark-submit on a real Spark standalone cluster on 127.0.0.1.

A master and two workers (1 core, 1500m each) start from pip's pyspark
(scripts/standalone_cluster.py). The package is built into a wheel from this checkout
and shipped with ``--py-files``; the driver and the executors run a Python that has every
dependency but not the checkout's editable install, so ``userprofile`` can only be
imported from the shipped archive. Two submissions: tests/deploy/cluster_generate.py (reports
where the driver and each executor import ``userprofile`` from, then generates a small
dataset) and jobs/pipeline.py.

The archive is the wheel under a ``.zip`` name: PySpark puts only ``.zip``, ``.egg`` and
``.jar`` py-files on the executors' ``sys.path`` (``SparkContext.PACKAGE_EXTENSIONS``);
a ``.whl`` would reach the driver only. A pure-Python wheel is a zip, so this is enough.

Every process shares this machine's disk, so a table written at the wrong path would still
be found by every process. To tell a correct path from a shared disk, every storage folder
of the config is a ``file://`` URI, and the master, each worker and each spark-submit driver
start in a working directory of their own (executors run in their worker's work dir,
``<worker>/<app id>/<executor id>``). The tests then check that each table the pipeline
writes is a Delta table exactly at its configured URI, and that nothing but Spark's own
files (executor logs, jars and py-files) appeared in any of those working directories:
joining ``gold/user_profile`` to ``file:///…/warehouse`` with ``os.path.abspath`` would put
the table under the driver's working directory.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path, PurePath
from typing import Any

import pytest
from deltalake import DeltaTable
from pyspark.sql import SparkSession
from scripts.standalone_cluster import Cluster, spark_env, spark_home, start, stop, tail

from tests.helpers import REPO, TEST_KEY, conf_document, storage_under, write_conf
from userprofile.config import Settings, load_settings
from userprofile.io import locations, tables

pytestmark = pytest.mark.cluster

USERS = 160
DAYS = 70  # events 2026-01-01 .. 2026-03-11
AS_OF = dt.date(2026, 3, 12)  # training snapshot 2026-02-10: 40 days of history before it
DELTA_PACKAGE = "io.delta:delta-spark_2.13:4.0.1"
DELTA_CATALOG = "org.apache.spark.sql.delta.catalog.DeltaCatalog"
SUBMIT_TIMEOUT = 480.0
LIGHT_JVM = "-XX:+UseSerialGC -XX:TieredStopAtLevel=1"
# Written by `userprofile erase` only; the pipeline writes every other table.
NOT_WRITTEN_BY_THE_PIPELINE = frozenset(
    {
        "erasure_requests",
        "erasure_suppression",
        "export_manifest",
        "blocked_deliveries",
        "delivery_releases",
    }
)
# What Spark itself puts in an executor's folder: its logs, the app's jars and py-files.
EXECUTOR_FILES = ("app-*/*/stdout", "app-*/*/stderr", "app-*/*/*.jar", "app-*/*/*.zip")
# Created empty in the driver's working directory by Spark's catalog when spark-submit is
# given no spark.sql.warehouse.dir (path tables never use it; a table in it is reported).
DRIVER_FILES = ("spark-warehouse",)


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
        marker = "Connected to Spark cluster with app ID "
        for line in self.stderr.read_text(encoding="utf-8", errors="replace").splitlines():
            if marker in line:
                return line.split(marker, 1)[1].split()[0]
        raise AssertionError(f"{self.name}: no app id in {self.stderr}")


@dataclass(frozen=True)
class Run:
    cluster: Cluster
    archive: Path
    conf: Path
    generate: Submitted
    pipeline: Submitted
    master_state: dict[str, Any]


def explain(cluster: Cluster, *runs: Submitted) -> str:
    """What to read when an assertion fails: spark-submit's stderr and the daemon logs."""
    parts = [
        f"--- {r.name}: exit {r.returncode} after {r.seconds:.0f} s, stderr {r.stderr} ---\n"
        f"{tail(r.stderr, 60)}"
        for r in runs
    ]
    return "\n".join([*parts, cluster.logs_tail(20)])


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    started = start(tmp_path_factory.mktemp("standalone"), workers=2, cores=1, memory="1500m")
    try:
        yield started
    finally:
        stop(started)


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from a copy of this checkout (the build never writes into it)."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", *(p.name for p in REPO.glob("LICEN[CS]E*"))):
        shutil.copy2(REPO / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO / "lib" / "userprofile", source / "lib" / "userprofile", ignore=ignore)
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(root / "dist")]
    done = subprocess.run([*build, str(source)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"wheel build failed:\n{done.stdout}\n{done.stderr}"
    (wheel,) = (root / "dist").glob("userprofile-*.whl")
    return wheel.rename(wheel.with_suffix(".zip"))


@pytest.fixture(scope="module")
def python_without_checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Python with this venv's dependencies but without the editable userprofile.

    A .pth line adds the venv's site-packages to sys.path; .pth files inside it (the
    editable install's among them) are not processed for directories added that way.
    """
    env_dir = tmp_path_factory.mktemp("python") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True)
    python = env_dir / "bin" / "python"
    query = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    own = subprocess.run([python, "-c", query], capture_output=True, text=True, check=True)
    parent = subprocess.run(
        [sys.executable, "-c", query], capture_output=True, text=True, check=True
    )
    (Path(own.stdout.strip()) / "parent-venv.pth").write_text(parent.stdout, encoding="utf-8")
    checks = {"import pyspark, pandas, scipy, yaml, pydantic": 0, "import userprofile": 1}
    for code, expected in checks.items():
        done = subprocess.run([python, "-c", code], capture_output=True, text=True, env={})
        # userprofile importable here means a non-editable install: use `pip install -e .`
        assert done.returncode == expected, f"{python} -c '{code}':\n{done.stderr}"
    return python


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
    stdout_path, stderr_path = out / f"{name}.out", out / f"{name}.err"
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


@pytest.fixture(scope="module")
def run(
    cluster: Cluster,
    archive: Path,
    python_without_checkout: Path,
    tmp_path_factory: pytest.TempPathFactory,
    spark: SparkSession,
) -> Run:
    """Generate the logs, then run the pipeline, both through spark-submit.

    (``spark``: the local session fetches the Delta jars under the test run's start lock,
    so spark-submit's own resolution never races another worker's download.)
    """
    root = tmp_path_factory.mktemp("cluster-data")
    # file:///…/data/warehouse and so on: URIs, which no process may read as relative paths.
    storage = {name: Path(path).as_uri() for name, path in storage_under(root / "data").items()}
    conf = write_conf(
        root / "cluster.yaml",
        conf_document(
            root,
            storage=storage,
            spark={"shuffle_partitions": 4},
            generator={"users": USERS, "days": DAYS, "start_date": "2026-01-01", "seed": 21},
            # Few iterations: the test checks the path through the cluster, not model quality.
            segmentation={"k_min": 3, "k_max": 3, "restarts": 1, "max_iter": 10},
            propensity={"reg_params": [0.01], "elastic_net_params": [0.0], "max_iter": 20},
        ),
    )
    key_env = load_settings(conf).privacy.pseudonym_key_env
    submit = Submitter(cluster, python_without_checkout, archive, root, key_env)
    # Generates the logs and reports where the driver and the executors import userprofile.
    generate = submit(REPO / "tests" / "deploy" / "cluster_generate.py", ["--conf", str(conf)])
    assert generate.returncode == 0, explain(cluster, generate)
    delta = [
        *("--packages", DELTA_PACKAGE),
        *("--conf", "spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension"),
        *("--conf", f"spark.sql.catalog.spark_catalog={DELTA_CATALOG}"),
        *("--conf", "spark.databricks.delta.snapshotPartitions=2"),
    ]
    pipeline_args = ["--conf", str(conf), "--as-of", AS_OF.isoformat(), "--verbose"]
    pipeline = submit(REPO / "jobs" / "pipeline.py", pipeline_args, extra=delta)
    state = master_state_once_finished(cluster, [s.app_id() for s in (generate, pipeline)])
    return Run(cluster, archive, conf, generate, pipeline, state)


def master_state_once_finished(cluster: Cluster, app_ids: list[str]) -> dict[str, Any]:
    """The master's JSON once it lists the apps as completed (a driver's goodbye is async)."""
    deadline = time.monotonic() + 30
    while True:
        state = cluster.state()
        completed = {a["id"] for a in state["completedapps"]}
        if set(app_ids) <= completed or time.monotonic() > deadline:
            return state
        time.sleep(0.5)


def table_uri(settings: Settings, key: str) -> str:
    path = tables.resolve(settings, key).path
    assert path is not None, key
    return path


def test_pipeline_on_the_cluster_writes_the_profile(run: Run) -> None:
    assert run.pipeline.returncode == 0, explain(run.cluster, run.pipeline)
    settings = load_settings(run.conf)
    profile = DeltaTable(table_uri(settings, "user_profile")).to_pandas(
        filters=[("snapshot_date", "=", AS_OF)]
    )
    silver_users = DeltaTable(table_uri(settings, "silver_users")).to_pandas()
    assert len(profile) == USERS, explain(run.cluster, run.pipeline)
    assert profile.user_key.nunique() == USERS
    assert set(profile.user_key) == set(silver_users.user_key)
    runs = DeltaTable(table_uri(settings, "pipeline_runs")).to_pandas()
    mine = runs[runs.as_of == AS_OF]
    assert list(mine.status) == ["succeeded"], mine.to_string()
    assert list(mine.iloc[0].steps) == ["ingest", "features", "train", "profile"]


def local(location: str) -> Path:
    """The local folder behind a ``file://`` URI (or a local path)."""
    path = locations.local_path(location)
    assert path is not None, f"{location} is not on the local file system"
    return Path(path)


def test_every_table_is_a_delta_table_at_its_configured_uri(run: Run) -> None:
    assert run.pipeline.returncode == 0, explain(run.cluster, run.pipeline)
    settings = load_settings(run.conf)
    warehouse = settings.storage.warehouse
    assert warehouse.startswith("file:///"), warehouse
    written = set()
    for key, name in settings.tables.model_dump().items():
        uri = table_uri(settings, key)
        assert uri == f"{warehouse}/{name}", key
        if key in NOT_WRITTEN_BY_THE_PIPELINE:
            assert not local(uri).exists(), uri
            continue
        assert (local(uri) / "_delta_log").is_dir(), f"{key}: no Delta table at {uri}"
        written.add(local(uri))
        data_files = [local(f) for f in DeltaTable(uri).file_uris()]
        assert data_files, f"{key}: no data files in {uri}"
        elsewhere = [f for f in data_files if local(uri) not in f.parents or not f.is_file()]
        assert elsewhere == [], f"{key} at {uri}: data files elsewhere or missing"
    # No other Delta table anywhere under the storage folders (a table folder misplaced).
    storage = local(warehouse).parent
    assert {log.parent for log in storage.rglob("_delta_log")} == written
    for folder in ("landing", "models", "checkpoints", "ground_truth"):
        path = local(getattr(settings.storage, folder))
        assert path.is_dir(), f"storage.{folder}: no folder {path}"
        assert any(path.iterdir()), f"storage.{folder}: nothing in {path}"


def matches(relative: PurePath, pattern: str) -> bool:
    """``pattern``'s parts match ``relative``'s one for one (``*`` never crosses a ``/``)."""
    parts = pattern.split("/")
    return len(relative.parts) == len(parts) and all(map(fnmatch, relative.parts, parts))


def unexpected_files(directory: Path, allowed: Sequence[str] = ()) -> list[str]:
    """Files and empty folders under directory that match none of the allowed patterns."""
    found = []
    for path in sorted(directory.rglob("*")):
        if path.is_dir() and any(path.iterdir()):
            continue  # reported through what it holds
        relative = path.relative_to(directory)
        if not any(matches(relative, pattern) for pattern in allowed):
            found.append(relative.as_posix() + ("/" if path.is_dir() else ""))
    return found


def assert_nothing_written_under(directories: dict[Path, Sequence[str]], shown: int = 20) -> None:
    """No directory holds anything but what its allowed patterns name."""
    stray = {
        d: found for d, allowed in directories.items() if (found := unexpected_files(d, allowed))
    }
    lines = ["written under working directories, not at the storage URIs of the config:"]
    for directory, found in stray.items():
        logs = sorted({f.rpartition("_delta_log/")[0] or "." for f in found if "_delta_log/" in f})
        lines += [f"{directory}/ ({len(found)} unexpected):", *(f"  Delta table {t}" for t in logs)]
        lines += [*(f"  {f}" for f in found[:shown]), *(["  ..."] if len(found) > shown else [])]
    assert not stray, "\n".join(lines)


def test_nothing_is_written_under_a_working_directory(run: Run) -> None:
    drivers = [s.cwd for s in (run.generate, run.pipeline)]
    daemons = [Path(d.cwd) for d in run.cluster.daemons]  # master and workers
    assert len({*drivers, *daemons, *run.cluster.worker_dirs}) == 7  # each process its own
    assert_nothing_written_under(
        {
            **dict.fromkeys(drivers, DRIVER_FILES),
            **dict.fromkeys(daemons, ()),
            # The executors': <worker work dir>/<app id>/<executor id>.
            **dict.fromkeys(run.cluster.worker_dirs, EXECUTOR_FILES),
        }
    )


def executor_logs(cluster: Cluster, app_id: str) -> dict[str, list[Path]]:
    """Per worker, the stderr files of the app's executors in the worker's work dir."""
    return {d.name: sorted(d.glob(f"{app_id}/*/stderr")) for d in cluster.worker_dirs}


def test_executors_on_both_workers_ran_the_tasks(run: Run) -> None:
    completed = {a["id"]: a for a in run.master_state["completedapps"]}
    assert completed[run.pipeline.app_id()]["name"] == load_settings(run.conf).spark.app_name
    for submitted in (run.generate, run.pipeline):
        app_id = submitted.app_id()
        assert completed[app_id]["state"] == "FINISHED", completed.get(app_id)
        logs = executor_logs(run.cluster, app_id)
        assert all(logs.values()), f"{app_id}: executor logs {logs}\n{explain(run.cluster)}"
        for worker, files in logs.items():
            text = "".join(f.read_text(encoding="utf-8", errors="replace") for f in files)
            assert "Finished task" in text, f"{submitted.name}: {worker} ran no task\n{files}"


def test_driver_and_executors_import_the_shipped_archive(run: Run) -> None:
    assert run.generate.returncode == 0, explain(run.cluster, run.generate)
    (line,) = [x for x in run.generate.stdout.splitlines() if x.startswith("PROBE ")]
    found = json.loads(line.removeprefix("PROBE "))
    inside = f"{run.archive.name}/userprofile/__init__.py"
    assert found["driver"] == str(run.archive / "userprofile" / "__init__.py")
    assert found["driver_cwd"] == str(run.generate.cwd)
    assert {Path(t["file"]).as_posix().endswith(inside) for t in found["tasks"]} == {True}, found
    # Each task ran in its executor's folder, <worker work dir>/<app id>/<executor id>.
    executors = {Path(t["cwd"]).parent for t in found["tasks"]}
    app_id = run.generate.app_id()
    assert executors == {d / app_id for d in run.cluster.worker_dirs}, found


def session_members(session_ids: set[int]) -> list[int]:
    """Pids of live processes whose session is one of session_ids (Linux /proc)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text(encoding="ascii", errors="replace")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z" and int(fields[3]) in session_ids:
            members.append(int(entry.name))
    return members


def test_stop_ends_only_what_start_started(run: Run) -> None:
    cluster = run.cluster
    sessions = {d.pid for d in cluster.daemons}
    assert set(session_members(sessions)) >= sessions  # the daemons lead their sessions
    bystander = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        assert sorted(stop(cluster)) == ["master", "worker-1", "worker-2"]
        assert session_members(sessions) == []
        for daemon in cluster.daemons:
            with pytest.raises(ProcessLookupError):
                os.killpg(daemon.pid, 0)
        assert bystander.poll() is None  # a process it did not start is untouched
        assert stop(cluster) == []  # stopping again is a no-op
    finally:
        bystander.kill()
        bystander.wait()
