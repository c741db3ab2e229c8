"""One base warehouse and one clean run of AS_OF per test worker, both only read."""

from __future__ import annotations

import pytest
from pyspark.sql import SparkSession

from tests.e2e.shared import PipelineRun, copy_run
from tests.faults.runs import base_run, run_pipeline


@pytest.fixture(scope="session")
def base(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> PipelineRun:
    return base_run(tmp_path_factory.mktemp("base"))


@pytest.fixture(scope="session")
def clean(base: PipelineRun, tmp_path_factory: pytest.TempPathFactory) -> PipelineRun:
    """The base warehouse after an uninterrupted run of AS_OF: what every recovery must equal."""
    run = copy_run(base, tmp_path_factory.mktemp("clean") / "run")
    run_pipeline(run)
    return run
