"""The report step's reads that need no pipeline run: ingest totals from the ingest log."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import SparkSession

from tests.conftest import SettingsFactory
from userprofile.io import tables
from userprofile.io.context import RunContext
from userprofile.report.step import _ingest_totals

AT = dt.datetime(2026, 1, 5)
OLD_LOG = (
    "run_id string, source string, batch_id long, accepted long, quarantined long, "
    "suppressed long, changed_dates array<date>, logged_at timestamp"
)


def test_a_reprocess_replaces_what_its_files_counted_before(
    spark: SparkSession, make_settings: SettingsFactory
) -> None:
    ctx = RunContext(spark, make_settings())
    # Run 1 quarantined a whole file (5 lines) next to 10 good ones; run 2 redid that file.
    ingest = spark.createDataFrame([("r1", "s", 0, 10, 5, 0, [], AT)], OLD_LOG)
    tables.append(ingest, ctx.table("ingest_log"))
    assert _ingest_totals(ctx)["quarantined"] == 5  # a log from before reprocess existed
    redo = spark.createDataFrame(
        [("r2", "s", None, 4, 1, 0, [], AT, "reprocess", 1, 0, 5)],
        OLD_LOG + ", command string, files long, accepted_removed long, quarantined_removed long",
    )
    tables.append(redo, ctx.table("ingest_log"), add_columns=True)
    assert _ingest_totals(ctx) == {
        "accepted into bronze": 14,
        "quarantined": 1,
        "dropped by an erasure request": 0,
        "ingest runs": 2,
    }
