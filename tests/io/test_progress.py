"""Run output: the per-step log lines, Spark progress for long steps, the summary table."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import pytest
from pyspark.sql import SparkSession

from userprofile.io.context import StepReport
from userprofile.io.progress import SparkProgress, logged, summary_table


@pytest.fixture
def progress_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    # The CLI stops `userprofile` records from reaching the root logger: listen directly.
    logger = logging.getLogger("userprofile")
    propagate, level = logger.propagate, logger.level
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(caplog.handler)
    yield caplog
    logger.removeHandler(caplog.handler)
    logger.propagate = propagate
    logger.setLevel(level)


def test_summary_table_has_a_line_per_step_and_a_total() -> None:
    reports = [
        StepReport("ingest", seconds=60.25, rows_in=1200, rows_out=1100, quarantined=100),
        StepReport("train", seconds=30.0, rows_in=50),
    ]
    lines = summary_table(reports)
    assert lines[0].split() == ["step", "seconds", "rows", "in", "rows", "out", "quarantined"]
    assert lines[1].split() == ["ingest", "60.2", "1,200", "1,100", "100"]
    assert lines[2].split() == ["train", "30.0", "50", "-", "-"]
    assert lines[3].split() == ["total", "90.2"]


def test_a_step_logs_its_start_and_counts(
    spark: SparkSession, progress_log: pytest.LogCaptureFixture
) -> None:
    report = logged(spark, "features", lambda: StepReport("features", seconds=1.5, rows_out=7))
    assert report.rows_out == 7
    assert progress_log.messages == ["features: started", "features: done in 1.5 s (rows out 7)"]


def test_a_long_step_logs_spark_task_progress(
    spark: SparkSession, progress_log: pytest.LogCaptureFixture
) -> None:
    def slow(rows):  # type: ignore[no-untyped-def]
        for row in rows:
            time.sleep(0.3)
            yield row

    with SparkProgress(spark, "train", every=0.5):
        spark.sparkContext.parallelize(range(8), 4).mapPartitions(slow).count()
    progress = [m for m in progress_log.messages if m.startswith("train: running")]
    assert progress, progress_log.messages
    assert any("tasks " in m and "/4" in m for m in progress)
