"""Every subcommand through a real Spark Connect server, as Databricks serverless runs it.

The server is pyspark's own (tests/connect_server.py: the ``spark-connect`` jar of the
wheel, Delta configured on the server, its own process group and port, stopped at the
end). The client is the ``userprofile`` command with ``--remote``, in a process of its
own: no classic SparkContext can exist in it. The pipeline reads the shared run's
landing files with storage given as ``file://`` URIs, and its profile must equal the
shared (classic session) run's, apart from run ids and times.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from chispa import assert_approx_df_equality
from deltalake import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from tests.connect_server import connect_server
from tests.e2e.shared import AS_OF, PipelineRun, profile_snapshot
from tests.helpers import TEST_KEY, write_conf
from userprofile.ingest.privacy import pseudonym as pseudonymous_key

pytestmark = pytest.mark.e2e

USERPROFILE = Path(sys.executable).with_name("userprofile")
COMMAND_TIMEOUT = 900
FAST_DELTA = {  # as userprofile.io.session sets them for local sessions
    "spark.databricks.delta.snapshotPartitions": "2",
    "spark.sql.sources.parallelPartitionDiscovery.parallelism": "8",
}


@dataclass(frozen=True)
class RemoteRun:
    url: str
    conf: Path
    root: Path
    # The profile's Delta version after the pipeline: erase (another test) adds versions.
    profile_version: int = -1

    def run(self, step: str, *more: str, via_env: bool = False) -> subprocess.CompletedProcess[str]:
        """``userprofile STEP --conf ... --remote URL ...`` in a fresh process; ``via_env``:
        the URL in the standard ``SPARK_REMOTE`` instead of ``--remote``."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SPARK_", "PYSPARK_"))}
        env["USERPROFILE_PSEUDONYM_KEY"] = TEST_KEY
        # No Spark to launch here: a command that started a local session would fail.
        env["SPARK_HOME"] = str(self.root / "no-spark-here")
        command = [str(USERPROFILE), step, "--conf", str(self.conf)]
        if via_env:
            env["SPARK_REMOTE"] = self.url
        else:
            command += ["--remote", self.url]
        return subprocess.run(
            [*command, *more],
            env=env,
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
        )

    def uri(self, name: str) -> str:
        return (self.root / name).as_uri()


@pytest.fixture(scope="module")
def remote_run(
    pipeline_run: PipelineRun, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RemoteRun]:
    """The server, and the shared run's config with its own storage as ``file://`` URIs."""
    root = tmp_path_factory.mktemp("connect-run")
    document = yaml.safe_load(pipeline_run.conf.read_text(encoding="utf-8"))
    for name in ("warehouse", "models", "checkpoints", "exports"):
        document["storage"][name] = (root / name).as_uri()
    document["storage"]["landing"] = Path(document["storage"]["landing"]).as_uri()
    document["storage"]["reports"] = str(root / "reports")
    conf = write_conf(root / "connect.yaml", document)
    with connect_server(root / "server", FAST_DELTA) as url:
        run = RemoteRun(url, conf, root)
        finished = run.run("pipeline", "--as-of", AS_OF.isoformat())
        assert finished.returncode == 0, finished.stderr[-3000:]
        version = DeltaTable(run.uri("warehouse/gold/user_profile")).version()
        yield RemoteRun(url, conf, root, version)


def test_the_pipeline_over_connect_equals_the_classic_run(
    spark: SparkSession, pipeline_run: PipelineRun, remote_run: RemoteRun
) -> None:
    over_connect = profile_snapshot(
        spark, remote_run.uri("warehouse/gold/user_profile"), version=remote_run.profile_version
    )
    classic = profile_snapshot(spark, pipeline_run.profile_path)
    assert over_connect.count() == classic.count() > 0
    # Ordered here: chispa's ignore_row_order sorts on every column, and maps cannot be sorted.
    assert_approx_df_equality(over_connect.orderBy("user_key"), classic.orderBy("user_key"), 1e-9)


def test_tables_are_at_their_uris_and_nothing_under_the_working_directory(
    remote_run: RemoteRun,
) -> None:
    table = DeltaTable(remote_run.uri("warehouse/gold/user_profile"))
    assert table.metadata().partition_columns == ["snapshot_date"]
    # The server's and the client's working directories hold no table (the old join of a
    # URI to a warehouse made `<cwd>/file:/...`).
    stray = [str(p) for p in remote_run.root.rglob("_delta_log") if "file:" in str(p)]
    stray += [str(p) for p in (remote_run.root / "server").rglob("_delta_log")]
    assert stray == []


def test_report_lookup_evaluate_and_export_over_connect(remote_run: RemoteRun) -> None:
    as_of = AS_OF.isoformat()
    report = remote_run.run("report", "--as-of", as_of)
    assert report.returncode == 0, report.stderr[-3000:]
    assert (remote_run.root / "reports" / f"user_profile_report_{as_of}.html").is_file()
    evaluated = remote_run.run("evaluate", "--as-of", as_of, via_env=True)
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert "segments vs personas (ARI)" in evaluated.stdout
    out = remote_run.root / "exports" / "audience"
    exported = remote_run.run("export", "--as-of", as_of, "--out", "audience")
    assert exported.returncode == 0, exported.stderr[-3000:]
    assert list(out.glob("part-*.csv"))
    user = first_exported_user(out)
    looked_up = remote_run.run("lookup", "--as-of", as_of, "--pseudonymous", user)
    assert looked_up.returncode == 0, looked_up.stderr[-3000:]
    assert user in looked_up.stdout


def test_erase_over_connect_removes_the_user(
    spark: SparkSession, pipeline_run: PipelineRun, remote_run: RemoteRun
) -> None:
    crm = Path(pipeline_run.settings.storage.landing) / "users"
    user_id = str(spark.read.option("header", "true").csv(str(crm)).first()["user_id"])  # type: ignore[index]
    user_key = pseudonymous_key(TEST_KEY.encode(), user_id)
    tables = [remote_run.uri(f"warehouse/{t}") for t in ("gold/user_profile", "silver/events")]
    assert all(rows_of(spark, t, user_key) > 0 for t in tables)
    # History kept: the comparison with the classic run reads the profile by time travel.
    erased = remote_run.run("erase", "--user-id", user_id, "--vacuum-hours", "168")
    assert erased.returncode == 0, erased.stderr[-3000:]
    assert [rows_of(spark, t, user_key) for t in tables] == [0, 0]


def rows_of(spark: SparkSession, table: str, user_key: str) -> int:
    return spark.read.format("delta").load(table).where(F.col("user_key") == user_key).count()


def first_exported_user(folder: Path) -> str:
    part = sorted(folder.glob("part-*.csv"))[0]
    header, first = part.read_text(encoding="utf-8").splitlines()[:2]
    return first.split(",")[header.split(",").index("user_key")]
