"""A warehouse with one good snapshot and a new delivery waiting, to break and compare.

``base_run`` generates the sample logs, holds back the last landing days, runs the
pipeline for BASE, then puts the held-back days back: the warehouse a daily run starts
from. Each fault test copies it (``copy_run``; the landing is shared and only read),
breaks a run of AS_OF, recovers, and compares every table with a clean run's copy.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from chispa import assert_df_equality
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import MapType

from tests.e2e.shared import PipelineRun, copy_run
from tests.helpers import TEST_KEY, conf_document, write_conf
from userprofile.cli import main
from userprofile.config import load_settings
from userprofile.io import tables

START = dt.date(2026, 1, 1)
DAYS = 60
BASE = START + dt.timedelta(days=DAYS - 1)  # the warehouse's good snapshot
AS_OF = BASE + dt.timedelta(days=1)  # the run that is broken
# Columns that name a run, an attempt or a clock time: a re-run differs only in these.
VOLATILE = frozenset(
    {
        "run_id",
        "attempt",
        "logged_at",
        "computed_at",
        "trained_at",
        "started_at",
        "finished_at",
        "step_seconds",
        "step_rows",
        "model_version",
        "model_path",
        "segmentation_model_version",
        "propensity_model_version",
        "published_at",
        "_ingested_at",
        "_updated_at",
    }
)


def base_run(root: Path) -> PipelineRun:
    """Sample logs, the pipeline for BASE on all but the last landing day, that day put back."""
    conf = write_conf(
        root / "faults.yaml",
        conf_document(
            root,
            generator={"users": 200, "days": DAYS, "start_date": START.isoformat(), "seed": 5},
            segmentation={"k_min": 3, "k_max": 3},
            propensity={"reg_params": [0.01], "elastic_net_params": [0.0]},
            ingest={"max_files_per_batch": 20},
        ),
    )
    assert main(["generate", "--conf", str(conf)]) == 0
    settings = load_settings(conf)
    events = Path(settings.storage.landing) / "events"
    held = root / "held-back"
    held.mkdir()
    for folder in sorted(events.glob("landing_date=*")):
        if folder.name >= f"landing_date={BASE.isoformat()}":
            shutil.move(folder, held / folder.name)
    assert any(held.iterdir()), "no landing day after BASE to hold back"
    assert main(["pipeline", "--conf", str(conf), "--as-of", BASE.isoformat()]) == 0
    for folder in held.iterdir():
        shutil.move(folder, events / folder.name)
    return PipelineRun(conf, settings)


def run_pipeline(run: PipelineRun) -> None:
    assert main(["pipeline", "--conf", str(run.conf), "--as-of", AS_OF.isoformat()]) == 0


def killed_pipeline(run: PipelineRun, point: str) -> subprocess.CompletedProcess[str]:
    """`userprofile pipeline --as-of AS_OF` in its own process, told to SIGKILL itself at point."""
    env = {**os.environ, "USERPROFILE_PSEUDONYM_KEY": TEST_KEY, "USERPROFILE_TEST_KILL_AT": point}
    command = [sys.executable, "-m", "userprofile.cli", *run.args("pipeline")]
    return subprocess.run(
        [*command, "--as-of", AS_OF.isoformat()],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def contents(spark: SparkSession, run: PipelineRun, key: str) -> DataFrame | None:
    """A table of the run without its VOLATILE columns; None if it does not exist."""
    ref = tables.resolve(run.settings, key)
    if not tables.exists(spark, ref):
        return None
    frame = tables.read(spark, ref)
    kept = frame.drop(*(c for c in frame.columns if c in VOLATILE))
    # chispa sorts rows, and maps do not sort: compare a map as its entries, sorted.
    maps = [f.name for f in kept.schema.fields if isinstance(f.dataType, MapType)]
    return kept.withColumns({m: F.array_sort(F.map_entries(m)) for m in maps})


def assert_same_tables(
    spark: SparkSession, run: PipelineRun, clean: PipelineRun, but: tuple[str, ...] = ()
) -> None:
    """Every table of ``run`` (``but`` these) holds exactly the rows of ``clean``'s."""
    for key in run.settings.tables.model_dump():
        if key in but:
            continue
        actual, expected = contents(spark, run, key), contents(spark, clean, key)
        if expected is None:
            assert actual is None, f"{key}: exists after the recovered run, not after a clean one"
            continue
        assert actual is not None, f"{key}: missing after the recovered run"
        assert_same_rows(actual, expected, f"{key} after the re-run")


def assert_readers_see_good_snapshots(
    spark: SparkSession, run: PipelineRun, base: PipelineRun, clean: PipelineRun
) -> None:
    """What downstream reads while a run is down: BASE as it was, AS_OF absent or complete."""
    for key in ("user_features", "user_profile"):
        stored = contents(spark, run, key)
        assert stored is not None, f"{key}: the good snapshot of {BASE} is gone"
        before = contents(spark, base, key)
        after = contents(spark, clean, key)
        assert before is not None
        assert after is not None
        assert_same_rows(snapshot(stored, BASE), snapshot(before, BASE), f"{key} at {BASE}")
        now = snapshot(stored, AS_OF)
        if not now.isEmpty():
            assert_same_rows(now, snapshot(after, AS_OF), f"{key} at {AS_OF}, while down")


def snapshot(frame: DataFrame, day: dt.date) -> DataFrame:
    return frame.where(F.col("snapshot_date") == F.lit(day))


def assert_same_rows(actual: DataFrame, expected: DataFrame, what: str = "rows") -> None:
    if set(actual.columns) == set(expected.columns):  # first the differing rows, named
        aligned = expected.select(*actual.columns)
        extra, missing = actual.exceptAll(aligned), aligned.exceptAll(actual)
        same = extra.isEmpty() and missing.isEmpty()
        assert same, (
            f"{what}: {extra.count()} row(s) not in the expected, e.g. {extra.take(2)}; "
            f"{missing.count()} expected row(s) missing, e.g. {missing.take(2)}"
        )
    assert_df_equality(
        actual,
        expected,
        ignore_row_order=True,
        ignore_column_order=True,
        ignore_nullable=True,
        ignore_metadata=True,
        allow_nan_equality=True,
    )


def check_kill(
    spark: SparkSession, base: PipelineRun, clean: PipelineRun, point: str, root: Path
) -> None:
    """Kill a run of AS_OF at ``point``, read it while it is down, re-run it, compare."""
    run = copy_run(base, root)
    victim = killed_pipeline(run, point)
    assert victim.returncode == -signal.SIGKILL, (
        f"the run never reached {point} (exit {victim.returncode}): {victim.stderr[-3000:]}"
    )
    assert_readers_see_good_snapshots(spark, run, base, clean)
    run_pipeline(run)
    assert_same_tables(spark, run, clean)
