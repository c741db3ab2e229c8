"""When a landing file is complete: the rule ingest follows, and what a cut file leaves.

A file is read once it appears under its final name. A name that starts with ``.`` or
``_``, or ends with ``._COPYING_`` (what ``hdfs dfs -put`` and ``gsutil`` write while
copying), is a file still being written: ingest skips it and reads it on the run after
it is renamed. An object store shows an object only once its upload completes.
"""

from __future__ import annotations

from pathlib import Path

from chispa import assert_df_equality
from pyspark.sql import SparkSession

from tests.conftest import SettingsFactory
from tests.ingest.raw_events import event, write_landing
from userprofile.ingest.step import run_ingest
from userprofile.io import tables
from userprofile.io.context import RunContext

IN_PROGRESS = (".part-1.json", "_part-2.json", "part-3.json._COPYING_")


def event_ids(spark: SparkSession, ctx: RunContext, key: str) -> list[str]:
    return sorted(r["event_id"] for r in tables.read(spark, ctx.table(key)).collect())


def test_files_still_being_written_are_read_once_renamed(
    spark: SparkSession, make_settings: SettingsFactory
) -> None:
    settings = make_settings(ingest={"max_reject_share": 1.0})
    landing = Path(settings.storage.landing)
    write_landing(landing, "done.json", [event(event_id="d1")])
    for i, name in enumerate(IN_PROGRESS):
        # Half written: the last line stops mid-record.
        write_landing(landing, name, [event(event_id=f"p{i}"), event(event_id=f"q{i}")[:25]])
    ctx = RunContext(spark, settings)
    run_ingest(ctx)
    assert event_ids(spark, ctx, "bronze_events") == ["d1"]
    assert not tables.exists(spark, ctx.table("bronze_quarantine")) or (
        tables.read(spark, ctx.table("bronze_quarantine")).isEmpty()
    )
    folder = landing / "events" / "landing_date=2026-01-05"
    for i, name in enumerate(IN_PROGRESS):
        (folder / name).write_text(f"{event(event_id=f'p{i}')}\n{event(event_id=f'q{i}')}\n")
        (folder / name).rename(folder / f"final-{i}.json")
    run_ingest(ctx)
    expected = sorted(["d1", "p0", "q0", "p1", "q1", "p2", "q2"])
    assert event_ids(spark, ctx, "bronze_events") == expected
    assert event_ids(spark, ctx, "silver_events") == expected


def test_a_file_cut_mid_line_keeps_its_whole_lines_and_quarantines_the_cut_one(
    spark: SparkSession, make_settings: SettingsFactory
) -> None:
    settings = make_settings(ingest={"max_reject_share": 1.0})
    landing = Path(settings.storage.landing)
    whole = [event(event_id="c1"), event(event_id="c2")]
    cut = event(event_id="c3")[:40]
    folder = landing / "events" / "landing_date=2026-01-05"
    folder.mkdir(parents=True)
    (folder / "cut.json").write_text("\n".join([*whole, cut]))  # no final newline either
    ctx = RunContext(spark, settings)
    run_ingest(ctx)
    assert event_ids(spark, ctx, "bronze_events") == ["c1", "c2"]
    quarantine = tables.read(spark, ctx.table("bronze_quarantine")).select(
        "raw_record", "reason_code"
    )
    expected = spark.createDataFrame(
        [(cut, "MALFORMED_RECORD")], "raw_record string, reason_code string"
    )
    assert_df_equality(quarantine, expected, ignore_nullable=True)
    # The producer re-delivers the whole file under a new name: silver keeps each event once.
    write_landing(landing, "cut-again.json", [*whole, event(event_id="c3")])
    run_ingest(ctx)
    assert event_ids(spark, ctx, "silver_events") == ["c1", "c2", "c3"]
    # Bronze keeps every delivered line: c1 and c2 twice (the documented duplicates).
    assert event_ids(spark, ctx, "bronze_events") == ["c1", "c1", "c2", "c2", "c3"]
