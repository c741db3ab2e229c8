"""`userprofile reprocess`: a delivery rejected by a wrong mapping is redone after the fix,
replacing exactly its rows in bronze, quarantine and silver and nothing else."""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path
from typing import Any

import pytest
from chispa import assert_df_equality
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from tests.conftest import SettingsFactory
from tests.ingest.raw_events import CASES, event, write_landing
from userprofile.config import Settings
from userprofile.errors import ConfigError, MissingInputError, UserProfileError
from userprofile.ingest.privacy import pseudonym as pseudonymous_key
from userprofile.ingest.privacy import pseudonym_key
from userprofile.ingest.reprocess import (
    LandingFile,
    choose_files,
    journal_folder,
    plan_reprocess,
    remove_previous_output,
    run_reprocess,
)
from userprofile.ingest.step import INGEST_LOG_SCHEMA, run_ingest
from userprofile.io import tables
from userprofile.io.context import RunContext
from userprofile.ops.erase import SUPPRESSION_SCHEMA

ORDER_COLUMNS = ["order_ref", "ts", "customer", "sku", "amount"]
ORDER_LINES = [
    "A1,2026-01-05 10:00:00,U1,P1,12.50",
    "A2,2026-01-05 11:30:00,U2,P2,3.00",
    "A2,2026-01-05 11:30:00,U2,P2,3.00",  # delivered twice: bronze twice, silver once
    "A3,2026-01-06 09:15:00,U1,P3,-4.00",  # NEGATIVE_PRICE once the timestamps parse
]
MARCH_LINES = ["B1,2026-03-02 08:00:00,U3,P1,20.00"]


def orders(timestamp_format: str) -> dict[str, Any]:
    return {
        "format": "csv",
        "path": "orders",
        "csv": {"columns": ORDER_COLUMNS},
        "fields": {
            "event_id": "order_ref",
            "event_ts": "ts",
            "user_id": "customer",
            "event_type": "'purchase'",
            "product_id": "sku",
            "price": "amount",
        },
        "timestamp_format": timestamp_format,
    }


BROKEN = "M/d/yyyy H:mm"  # the mapping as first written: not the files' format
FIXED = "yyyy-MM-dd HH:mm:ss"


def write_orders(landing: Path, name: str, lines: list[str]) -> None:
    (landing / "orders").mkdir(parents=True, exist_ok=True)
    (landing / "orders" / name).write_text("\n".join([",".join(ORDER_COLUMNS), *lines]) + "\n")


def settings_with(make_settings: SettingsFactory, **sources: dict[str, Any]) -> Settings:
    return make_settings(ingest={"max_reject_share": 1.0, "sources": sources})


def frozen(spark: SparkSession, frame: DataFrame) -> DataFrame:
    """The rows as they are now (a Delta read would see later commits)."""
    return spark.createDataFrame(frame.collect(), frame.schema)


def contents(spark: SparkSession, ctx: RunContext, source: str | None = None) -> dict[str, Any]:
    """Bronze, quarantine and silver without the write times, as frozen frames."""
    frames = {
        "bronze_events": ctx.read("bronze_events").drop("_ingested_at"),
        "bronze_quarantine": ctx.read("bronze_quarantine").drop(
            "_ingested_at", "ingest_date", "run_id"
        ),
        "silver_events": ctx.read("silver_events"),
    }
    if source is not None:
        frames = {k: f.where(F.col("source") == source) for k, f in frames.items()}
    return {k: frozen(spark, f) for k, f in frames.items()}


def assert_same(actual: dict[str, Any], expected: dict[str, Any]) -> None:
    for key, frame in expected.items():
        assert_df_equality(actual[key], frame, ignore_row_order=True, ignore_nullable=True)


def test_a_delivery_quarantined_by_a_wrong_timestamp_format_is_redone_after_the_fix(
    spark: SparkSession, make_settings: SettingsFactory, tmp_path: Path
) -> None:
    broken = settings_with(make_settings, orders=orders(BROKEN))
    landing = Path(broken.storage.landing)
    write_orders(landing, "jan.csv", ORDER_LINES)
    write_orders(landing, "mar.csv", MARCH_LINES)
    write_landing(landing, "e.json", [event(event_id="x1"), CASES["NEGATIVE_PRICE"]])
    ctx = RunContext(spark, broken)
    # An ingest log from before the log had `command`: the new columns are added to it.
    old_log = spark.createDataFrame(
        [("old-run", "events", 0, 5, 0, 0, [], dt.datetime(2025, 12, 1))],
        INGEST_LOG_SCHEMA.split(", command")[0],
    )
    tables.append(old_log, ctx.table("ingest_log"))
    assert run_ingest(ctx).rows["quarantined BAD_TIMESTAMP"] == 5  # every order line
    other_source = contents(spark, ctx, "events")

    fixed = settings_with(make_settings, orders=orders(FIXED))
    ctx = RunContext(spark, fixed)
    report = run_reprocess(ctx, "orders")

    assert report.rows == {
        "source": "orders",
        "files reprocessed": 2,
        "removed from bronze_events": 0,
        "removed from bronze_quarantine": 5,
        "removed from silver_events": 0,
        "events accepted": 4,
        "quarantined NEGATIVE_PRICE": 1,
        "event dates changed": "2026-01-05 .. 2026-03-02 (2 dates)",
    }
    after = contents(spark, ctx)
    # Every input line once: bronze + quarantine = the 5 order lines, no stale row left.
    counted = {k: after[k].where(F.col("source") == "orders").count() for k in after}
    assert counted == {"bronze_events": 4, "bronze_quarantine": 1, "silver_events": 3}
    assert_same(contents(spark, ctx, "events"), other_source)
    log = ctx.read("ingest_log").where(F.col("command") == "reprocess")
    expected_log = spark.createDataFrame(
        [("orders", None, 4, 1, 0, 2, 0, 5, ctx.run_id)],
        "source string, batch_id long, accepted long, quarantined long, suppressed long, "
        "files long, accepted_removed long, quarantined_removed long, run_id string",
    )
    assert_df_equality(log.select(*expected_log.columns), expected_log, ignore_nullable=True)
    commands = {r[0]: r[1] for r in ctx.read("ingest_log").groupBy("command").count().collect()}
    assert commands == {None: 1, "ingest": 2, "reprocess": 1}

    # The same as a clean ingest of the same landing files with the fixed mapping.
    elsewhere = {"warehouse": str(tmp_path / "clean"), "checkpoints": str(tmp_path / "clean-ck")}
    clean = make_settings(
        storage=elsewhere, ingest={"max_reject_share": 1.0, "sources": {"orders": orders(FIXED)}}
    )
    run_ingest(RunContext(spark, clean))
    assert_same(after, contents(spark, RunContext(spark, clean)))

    # Again: the same rows (new write times), one more log row that replaced the first run's.
    second = run_reprocess(ctx, "orders")
    assert (second.rows["removed from bronze_events"], second.rows["events accepted"]) == (4, 4)
    assert second.rows["removed from silver_events"] == 3
    assert_same(contents(spark, ctx), after)
    assert ctx.read("ingest_log").where(F.col("command") == "reprocess").count() == 2


def shop(timezone: str | None) -> dict[str, Any]:
    return {"path": "shop", **({"timezone": timezone} if timezone else {})}


def test_files_redoes_one_of_two_files_and_keeps_events_the_other_one_delivered(
    spark: SparkSession, make_settings: SettingsFactory
) -> None:
    # A wrong zone shifts every event by -9 hours, and some onto the day before.
    broken = settings_with(make_settings, shop=shop("Asia/Tokyo"))
    landing = Path(broken.storage.landing)
    at_3, at_12 = "2026-01-05T03:00:00", "2026-01-05T12:00:00"  # no zone of their own
    a = [
        event(event_id="e1", event_ts=at_3),
        event(event_id="e2", event_ts=at_12),
        event(event_id="e9", event_ts=at_12, user_id="U9"),  # a user erased before the fix
    ]
    b = [
        event(event_id="e2", event_ts=at_12),
        event(event_id="e3", event_ts="2026-01-06T05:00:00"),
    ]
    write_landing(landing, "a.json", a, folder="shop", day="2026-01-05")
    write_landing(landing, "b.json", b, folder="shop", day="2026-01-06")
    ctx = RunContext(spark, broken)
    run_ingest(ctx)
    of_b = F.col("_source_file").endswith("/b.json")
    bronze_of_b = frozen(spark, ctx.read("bronze_events").where(of_b))

    ctx = RunContext(spark, settings_with(make_settings, shop=shop(None)))
    erased = (pseudonymous_key(pseudonym_key(broken), "U9"), "user", "r1", dt.datetime(2026, 2, 1))
    tables.append(
        spark.createDataFrame([erased], SUPPRESSION_SCHEMA), ctx.table("erasure_suppression")
    )
    with pytest.raises(ConfigError, match=r"--files 'landing_date=2026-02\*/\*' matches none"):
        run_reprocess(ctx, "shop", files="landing_date=2026-02*/*")
    report = run_reprocess(ctx, "shop", files="landing_date=2026-01-05/*")

    assert report.rows["files reprocessed"] == 1
    assert report.rows["removed from bronze_events"] == 3
    # e1 (on 2026-01-04) and e9 came from a.json only; e2 came from b.json too: it stays.
    assert report.rows["removed from silver_events"] == 2
    assert report.rows["dropped (erased users)"] == 1  # e9 does not come back
    assert report.rows["event dates changed"] == "2026-01-04 .. 2026-01-05 (2 dates)"
    assert_df_equality(ctx.read("bronze_events").where(of_b), bronze_of_b, ignore_row_order=True)
    silver = ctx.read("silver_events").select("event_id", "event_ts", "event_date")
    day = dt.date(2026, 1, 5)
    expected = spark.createDataFrame(
        [
            ("e1", dt.datetime(2026, 1, 5, 3), day),  # corrected
            ("e2", dt.datetime(2026, 1, 5, 3), day),  # b.json's row, b.json not redone
            ("e3", dt.datetime(2026, 1, 5, 20), day),  # b.json's row
        ],
        "event_id string, event_ts timestamp, event_date date",
    )
    assert_df_equality(silver, expected, ignore_row_order=True, ignore_nullable=True)
    fixed_a = ctx.read("bronze_events").where(~of_b).select("event_id", "event_ts")
    expected_a = spark.createDataFrame(
        [("e1", dt.datetime(2026, 1, 5, 3)), ("e2", dt.datetime(2026, 1, 5, 12))],
        "event_id string, event_ts timestamp",
    )
    assert_df_equality(fixed_a, expected_a, ignore_row_order=True, ignore_nullable=True)


def touch(path: Path, at: dt.datetime) -> None:
    seconds = at.replace(tzinfo=dt.timezone.utc).timestamp()
    os.utime(path, (seconds, seconds))


def app(timestamp_format: str | None) -> dict[str, Any]:
    return {"path": "app", **({"timestamp_format": timestamp_format} if timestamp_format else {})}


def test_since_takes_files_modified_on_the_date_and_leaves_new_files_to_ingest(
    spark: SparkSession, make_settings: SettingsFactory
) -> None:
    broken = settings_with(make_settings, app=app("dd/MM/yyyy HH:mm"))
    landing = Path(broken.storage.landing)
    at = "2026-01-20T10:00:00Z"
    write_landing(landing, "on.json", [event(event_id="on", event_ts=at)], "app", "2026-02-01")
    write_landing(landing, "before.json", [event(event_id="bf", event_ts=at)], "app", "2026-01-31")
    touch(landing / "app/landing_date=2026-02-01/on.json", dt.datetime(2026, 2, 1))
    touch(landing / "app/landing_date=2026-01-31/before.json", dt.datetime(2026, 1, 31, 23, 59, 59))
    run_ingest(RunContext(spark, broken))
    # Delivered after that ingest: not ingested yet, so not reprocessed.
    write_landing(landing, "new.json", [event(event_id="new", event_ts=at)], "app", "2026-02-02")

    ctx = RunContext(spark, settings_with(make_settings, app=app(None)))
    report = run_reprocess(ctx, "app", since=dt.date(2026, 2, 1))

    assert (report.rows["files reprocessed"], report.rows["events accepted"]) == (1, 1)
    assert [r.event_id for r in ctx.read("bronze_events").collect()] == ["on"]
    stale = ctx.read("bronze_quarantine").select(F.element_at(F.split("_source_file", "/"), -1))
    assert [r[0] for r in stale.collect()] == ["before.json"]
    with pytest.raises(ConfigError, match=r"--since 2026-02-02: none of the 2 ingested files"):
        run_reprocess(ctx, "app", since=dt.date(2026, 2, 2))
    assert run_ingest(ctx).rows["events accepted"] == 1  # new.json, once
    assert sorted(r.event_id for r in ctx.read("bronze_events").collect()) == ["new", "on"]


def test_a_reprocess_interrupted_after_its_deletes_is_finished_by_the_next_run(
    spark: SparkSession, make_settings: SettingsFactory
) -> None:
    broken = settings_with(make_settings, app=app("dd/MM/yyyy HH:mm"))
    ids = ["r1", "r2"]
    write_landing(Path(broken.storage.landing), "r.json", [event(event_id=i) for i in ids], "app")
    run_ingest(RunContext(spark, broken))
    fixed = settings_with(make_settings, app=app(None))
    ctx = RunContext(spark, fixed)
    # A run that died after deleting: the file is in neither bronze nor quarantine now.
    remove_previous_output(ctx, plan_reprocess(ctx, "app", None, None))
    assert ctx.read("bronze_quarantine").count() == 0

    report = run_reprocess(ctx, "app", files="*")

    assert report.rows["of them, from an unfinished reprocess"] == 1
    assert sorted(r.event_id for r in ctx.read("silver_events").collect()) == ids
    assert ctx.read("bronze_events").count() == 2
    # The journal is closed: no file is left to redo.
    assert tables.read(spark, journal_folder(fixed, "app")).count() == 0


def test_an_unknown_source_is_refused_naming_the_option(
    spark: SparkSession, make_settings: SettingsFactory
) -> None:
    ctx = RunContext(spark, make_settings())
    with pytest.raises(
        ConfigError, match=r"--source 'shops': no such source .*\(configured: events\)"
    ):
        run_reprocess(ctx, "shops")


def landed(relative: str, modified: dt.datetime) -> LandingFile:
    uri = f"file:/landing/app/{relative}"
    return LandingFile(uri, uri, relative, modified)


ON = landed("landing_date=2026-02-01/on.json", dt.datetime(2026, 2, 1))
BEFORE = landed("landing_date=2026-01-31/before.json", dt.datetime(2026, 1, 31, 23, 59, 59, 999))
NEVER = landed("landing_date=2026-02-02/new.json", dt.datetime(2026, 2, 2))
LANDING = [ON, BEFORE, NEVER]
INGESTED = {ON.uri, BEFORE.uri, "file:/landing/app/gone.json"}


@pytest.mark.parametrize(
    ("files", "since", "chosen"),
    [
        (None, None, [BEFORE, ON]),  # never-ingested new.json is left to ingest
        ("*/on.json", None, [ON]),
        ("*.json", None, [BEFORE, ON]),  # `*` crosses folders
        ("landing_date=2026-01-*", None, [BEFORE]),
        (None, dt.date(2026, 2, 1), [ON]),
        (None, dt.date(2026, 1, 31), [BEFORE, ON]),
    ],
)
def test_which_files_are_chosen(
    files: str | None, since: dt.date | None, chosen: list[LandingFile]
) -> None:
    selection = choose_files("app", LANDING, INGESTED, set(), files, since)
    assert selection.files == sorted(chosen, key=lambda f: f.uri)
    assert (selection.gone, selection.interrupted) == (1, 0)


def test_files_of_an_unfinished_reprocess_are_always_redone() -> None:
    selection = choose_files("app", LANDING, {ON.uri}, {BEFORE.uri}, "*/on.json", None)
    assert selection.files == [BEFORE, ON]
    assert selection.interrupted == 1


@pytest.mark.parametrize(
    ("ingested", "pending", "error", "message"),
    [
        (set(), set(), MissingInputError, "source 'app' has no ingested files to reprocess"),
        ({"file:/landing/app/gone.json"}, set(), MissingInputError, "none of the 1 ingested"),
        (set(), {"file:/landing/app/gone.json"}, UserProfileError, "needs 1 file(s) no longer"),
    ],
)
def test_nothing_to_reprocess_is_an_error(
    ingested: set[str], pending: set[str], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=re.escape(message)):
        choose_files("app", LANDING, ingested, pending, None, None)
