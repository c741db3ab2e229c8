"""A run killed (SIGKILL) at each commit boundary after ingest recovers to a clean run's tables:
in features, train, profile, and before the run is recorded."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from tests.e2e.shared import PipelineRun
from tests.faults.runs import check_kill
from userprofile.io.faults import KILL_POINTS


@pytest.mark.parametrize("point", [p for p in KILL_POINTS if not p.startswith("ingest.")])
def test_a_run_killed_after_ingest_recovers_exactly(
    spark: SparkSession, base: PipelineRun, clean: PipelineRun, point: str, tmp_path: Path
) -> None:
    check_kill(spark, base, clean, point, tmp_path / "run")
