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

Faults: mid-job, one executor of the pipeline is killed with SIGKILL (tests/deploy/
executor_kill.py), so every test here checks a run that lost one. The master replaces it,
the job still succeeds, and what it wrote (silver tables, the snapshot's features) equals
what ``ingest`` and ``features`` compute in this process from the same landing folder.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path, PurePath
from typing import Any

import pytest
from deltalake import DeltaTable
from pyspark.sql import SparkSession
from scripts.standalone_cluster import Cluster, start, stop

from tests.deploy.executor_kill import ExecutorKiller, Kill, finished_tasks
from tests.deploy.local_run import COMPARED, assert_same_table, run_locally
from tests.deploy.submission import Submitted, Submitter, explain, master_state_once_finished
from tests.helpers import REPO, conf_document, storage_under, write_conf
from userprofile.config import Settings, load_settings
from userprofile.io import locations, tables

pytestmark = pytest.mark.cluster

USERS = 160
DAYS = 70  # events 2026-01-01 .. 2026-03-11
AS_OF = dt.date(2026, 3, 12)  # training snapshot 2026-02-10: 40 days of history before it
DELTA_PACKAGE = "io.delta:delta-spark_2.13:4.0.1"
DELTA_CATALOG = "org.apache.spark.sql.delta.catalog.DeltaCatalog"
# One executor of the pipeline is killed once it has finished this many tasks (mid-job).
KILL_AFTER_TASKS = 30
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
class Run:
    cluster: Cluster
    archive: Path
    conf: Path
    generate: Submitted
    pipeline: Submitted
    master_state: dict[str, Any]
    kill: Kill | None  # the pipeline's executor killed mid-job


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    started = start(tmp_path_factory.mktemp("standalone"), workers=2, cores=1, memory="1500m")
    try:
        yield started
    finally:
        stop(started)


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
    script = REPO / "jobs" / "pipeline.py"
    killer = ExecutorKiller(cluster, submit.driver_log(script), KILL_AFTER_TASKS)
    killer.start()
    try:
        pipeline = submit(script, pipeline_args, extra=delta)
    finally:
        kill = killer.stop()
    state = master_state_once_finished(cluster, [s.app_id() for s in (generate, pipeline)])
    return Run(cluster, archive, conf, generate, pipeline, state, kill)


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


def executor_dirs(cluster: Cluster, app_id: str) -> dict[str, Path]:
    """The app's executors, ``worker/id``, and their folders ``<worker dir>/<app id>/<id>``."""
    return {f"{d.name}/{e.name}": e for d in cluster.worker_dirs for e in d.glob(f"{app_id}/*")}


def test_an_executor_killed_mid_job_is_replaced_and_the_job_finishes(run: Run) -> None:
    kill, app_id = run.kill, run.pipeline.app_id()
    why = explain(run.cluster, run.pipeline)
    assert kill is not None, f"no executor finished {KILL_AFTER_TASKS} tasks to be killed\n{why}"
    assert kill.app_id == app_id
    assert kill.finished_tasks >= KILL_AFTER_TASKS
    driver_log = run.pipeline.stderr.read_text(encoding="utf-8", errors="replace")
    # The driver saw it go (a SIGKILLed JVM exits with 128 + 9) and finished all the same.
    assert f"Lost executor {kill.executor_id} on " in driver_log, why
    assert "exited with code 137" in driver_log, why
    assert run.pipeline.returncode == 0, why
    completed = {a["id"]: a for a in run.master_state["completedapps"]}
    assert completed[app_id]["state"] == "FINISHED", completed.get(app_id)
    # The master launched a replacement: more executors than workers, and one on the
    # killed executor's worker (the only one with a free core) ran tasks after the kill.
    executors = executor_dirs(run.cluster, app_id)
    killed = f"{kill.worker}/{kill.executor_id}"
    assert killed in executors, executors
    assert len(executors) > len(run.cluster.worker_dirs), executors
    replacements = [p for e, p in executors.items() if e.startswith(f"{kill.worker}/")]
    assert any(finished_tasks(p / "stderr") for p in replacements if p != executors[killed])


@pytest.fixture(scope="module")
def computed_here(
    run: Run, spark: SparkSession, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    """Ingest and features of the cluster run's landing, computed in this process."""
    assert run.pipeline.returncode == 0, explain(run.cluster, run.pipeline)
    return run_locally(run.conf, tmp_path_factory.mktemp("computed-here"), AS_OF)


@pytest.mark.parametrize("key", COMPARED)
def test_the_killed_run_wrote_what_a_local_run_computes(
    run: Run, computed_here: Settings, spark: SparkSession, key: str
) -> None:
    assert_same_table(spark, load_settings(run.conf), computed_here, key, AS_OF)


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
