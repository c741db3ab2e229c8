"""End-to-end fixtures: one shared pipeline run (read only) and a private copy per test."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from tests.e2e.shared import PipelineRun, copy_run, run_pipeline


@pytest.fixture(scope="session")
def pipeline_run(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> PipelineRun:
    """Generated logs through the whole pipeline; tests that use it only read it."""
    return run_pipeline(tmp_path_factory.mktemp("e2e"))


@pytest.fixture
def own_run(pipeline_run: PipelineRun, tmp_path: Path) -> PipelineRun:
    """A copy of the shared run for a test that writes (re-runs, backfills, failures)."""
    return copy_run(pipeline_run, tmp_path / "run")
