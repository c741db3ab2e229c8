"""Two runs of the same date started together end as one clean run: the loser says why."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from pyspark.sql import SparkSession

from tests.e2e.shared import PipelineRun, copy_run
from tests.faults.runs import AS_OF, assert_same_rows, assert_same_tables, contents
from tests.helpers import TEST_KEY

# Both runs may train: each trained version is registered, with equal metrics and segments.
PER_RUN = ("model_metrics", "segment_summary", "pipeline_runs")


def started(run: PipelineRun) -> subprocess.Popen[str]:
    env = {**os.environ, "USERPROFILE_PSEUDONYM_KEY": TEST_KEY}
    command = [sys.executable, "-m", "userprofile.cli", *run.args("pipeline")]
    return subprocess.Popen(
        [*command, "--as-of", AS_OF.isoformat()],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_runs_of_one_date_started_together_leave_what_one_run_leaves(
    spark: SparkSession, base: PipelineRun, clean: PipelineRun, tmp_path: Path
) -> None:
    run = copy_run(base, tmp_path / "run")
    runs = [started(run), started(run)]
    # communicate, not wait: a full stderr pipe would stall the run.
    finished = [(p, p.communicate(timeout=900)[1]) for p in runs]
    outcomes = [(p.returncode, stderr) for p, stderr in finished]
    codes = sorted(code for code, _ in outcomes)
    assert codes[0] == 0, f"neither run succeeded: {outcomes}"
    for code, stderr in outcomes:
        if code != 0:
            last = stderr.strip().splitlines()[-1]
            assert last.startswith("userprofile: error: another run wrote"), last
    assert_same_tables(spark, run, clean, but=PER_RUN)
    for key in PER_RUN:
        ours, theirs = contents(spark, run, key), contents(spark, clean, key)
        assert ours is not None
        assert theirs is not None
        succeeded = (
            ours.where("status IS NULL OR status LIKE 'succeeded%'")
            if key == "pipeline_runs"
            else ours
        )
        assert_same_rows(succeeded.distinct(), theirs.distinct())
