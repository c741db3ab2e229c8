"""The ingest step: landing files -> bronze, quarantine and silver exactly once per file,
late events reported, CSV exports through a mapping in conf, and a killed run resumed."""

from __future__ import annotations

import datetime as dt
import gzip
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from chispa import assert_df_equality
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from tests.conftest import SettingsFactory
from tests.helpers import REPO, TEST_KEY, conf_document, storage_under, write_conf
from tests.ingest.raw_events import CASES, event, write_landing
from userprofile.config import load_settings
from userprofile.errors import DataQualityError
from userprofile.ingest.counts import IngestCounts, check_reject_share
from userprofile.ingest.step import BatchWriter, run_ingest
from userprofile.io import tables
from userprofile.io.context import RunContext

FILES = 6

# Verbatim lines of real-world CSV exports.
CLICKSTREAM = """event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session
2019-10-01 00:00:00 UTC,view,44600062,2103807459595387724,,shiseido,35.79,541312140,72d76fde-8bb3
2019-10-01 00:00:05 UTC,cart,3900821,2053013552326770905,appliances.environment.water_heater,aqua,33.20,554748717,9333dfbd-b87a
2019-10-01 00:00:07 UTC,purchase,3900821,2053013552326770905,appliances.environment.water_heater,aqua,33.20,554748717,9333dfbd-b87a
2019-10-01 00:00:07 UTC,purchase,3900821,2053013552326770905,appliances.environment.water_heater,aqua,33.20,554748717,9333dfbd-b87a
2019-10-01 00:00:09 UTC,wishlist,1004237,2053013555631882655,electronics.smartphone,apple,1081.98,535871217,c6bd7419-2748
2019-10-01 00:00:11 UTC,view,1480613,2053013561092866779,computers.desktop,pulser,908.62,,4d3b30da-a5e4
not,enough,columns
"""

ORDERS = """InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country
536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,12/1/2010 8:26,2.55,17850,United Kingdom
536365,71053,WHITE METAL LANTERN,6,12/1/2010 8:26,3.39,17850,United Kingdom
C536379,D,Discount,-1,12/1/2010 9:41,27.5,14527,United Kingdom
536414,22139,,56,6/1/2011 11:52,0,,United Kingdom
536500,22633,HAND WARMER UNION JACK,-12,6/1/2011 12:00,2.10,13047,United Kingdom
536501,22633,HAND WARMER UNION JACK,3,6/1/2011 12:05,abc,13047,United Kingdom
"""


def table_rows(spark: SparkSession, ctx: RunContext, key: str) -> list[tuple[Any, ...]]:
    frame = tables.read(spark, ctx.table(key)).drop("_ingested_at", "ingest_date")
    return sorted((tuple(r) for r in frame.collect()), key=repr)


def versions(spark: SparkSession, ctx: RunContext, key: str) -> int:
    from delta.tables import DeltaTable

    return DeltaTable.forPath(spark, ctx.table(key).path).history().count()


def test_reruns_change_nothing_and_new_files_are_picked_up(
    spark: SparkSession, make_settings: SettingsFactory
) -> None:
    settings = make_settings(ingest={"max_reject_share": 0.5})
    landing = Path(settings.storage.landing)
    write_landing(
        landing, "a.json", [event(event_id="a1"), event(event_id="a2"), CASES["NEGATIVE_PRICE"]]
    )
    ctx = RunContext(spark, settings)
    first = run_ingest(ctx)
    assert first.rows["events accepted"] == 2
    assert first.rows["quarantined NEGATIVE_PRICE"] == 1
    keys = ("bronze_events", "bronze_quarantine", "silver_events", "ingest_log")
    snapshot = {k: (table_rows(spark, ctx, k), versions(spark, ctx, k)) for k in keys}

    for _ in range(3):  # same files: identical tables, no new commits
        assert run_ingest(ctx).rows["events accepted"] == 0
    assert {k: (table_rows(spark, ctx, k), versions(spark, ctx, k)) for k in keys} == snapshot

    # A new file with one new event (of a new date) and one already delivered in the first file.
    b1 = event(event_id="b1", event_ts="2026-01-06T10:00:00Z")
    write_landing(landing, "b.json", [b1, event(event_id="a1")])
    assert run_ingest(ctx).rows["events accepted"] == 2
    assert len(table_rows(spark, ctx, "bronze_events")) == 4  # bronze keeps what arrived
    silver = tables.read(spark, ctx.table("silver_events")).select("event_id")
    stored_once = spark.createDataFrame([("a1",), ("a2",), ("b1",)], "event_id string")
    assert_df_equality(silver, stored_once, ignore_row_order=True, ignore_nullable=True)


def test_late_events_land_in_their_own_date_and_are_reported(
    spark: SparkSession, make_settings: SettingsFactory
) -> None:
    settings = make_settings()
    landing = Path(settings.storage.landing)
    write_landing(
        landing,
        "today.json",
        [event(event_id="t1", event_ts="2026-01-20T09:00:00Z")],
        day="2026-01-20",
    )
    ctx = RunContext(spark, settings)
    assert run_ingest(ctx).rows["event dates changed"] == "2026-01-20"
    # Silver's MERGE reads only the batch's dates: the files of 2026-01-20 are not needed.
    day = Path(str(ctx.table("silver_events").path), "event_date=2026-01-20")
    day.rename(day.with_name("hidden"))
    late = [
        event(event_id="l1", event_ts="2026-01-12T09:00:00Z"),
        event(event_id="l2", event_ts="2026-01-14T09:00:00Z"),
    ]
    write_landing(landing, "late.json", late, day="2026-01-21")
    assert run_ingest(ctx).rows["event dates changed"] == "2026-01-12 .. 2026-01-14 (2 dates)"
    day.with_name("hidden").rename(day)
    silver = tables.read(spark, ctx.table("silver_events")).select("event_id", "event_date")
    expected_dates = spark.createDataFrame(
        [
            ("t1", dt.date(2026, 1, 20)),
            ("l1", dt.date(2026, 1, 12)),
            ("l2", dt.date(2026, 1, 14)),
        ],
        "event_id string, event_date date",
    )
    assert_df_equality(silver, expected_dates, ignore_row_order=True, ignore_nullable=True)
    # In the order of the runs: the row order is part of what is checked.
    log = tables.read(spark, ctx.table("ingest_log")).orderBy("logged_at").select("changed_dates")
    expected_log = spark.createDataFrame(
        [([dt.date(2026, 1, 20)],), ([dt.date(2026, 1, 12), dt.date(2026, 1, 14)],)],
        "changed_dates array<date>",
    )
    assert_df_equality(log, expected_log, ignore_nullable=True)


def test_quarantine_keeps_the_raw_line_and_file(
    spark: SparkSession, make_settings: SettingsFactory
) -> None:
    settings = make_settings(ingest={"max_reject_share": 1.0})
    write_landing(Path(settings.storage.landing), "q.json", [CASES["BAD_TIMESTAMP"]])
    ctx = RunContext(spark, settings)
    run_ingest(ctx)
    quarantine = tables.read(spark, ctx.table("bronze_quarantine"))
    expected = spark.createDataFrame(
        [(CASES["BAD_TIMESTAMP"], "BAD_TIMESTAMP", "events", True)],
        "raw_record string, reason_code string, source string, from_the_file boolean",
    )
    assert_df_equality(
        quarantine.select(
            "raw_record",
            "reason_code",
            "source",
            F.col("_source_file").endswith("landing_date=2026-01-05/q.json").alias("from_the_file"),
        ),
        expected,
        ignore_row_order=True,
        ignore_nullable=True,
    )
    assert tables.read(spark, ctx.table("bronze_events")).where(F.lit(True)).count() == 0


def test_gzip_files_are_read(spark: SparkSession, make_settings: SettingsFactory) -> None:
    settings = make_settings()
    folder = Path(settings.storage.landing) / "events" / "landing_date=2026-01-05"
    folder.mkdir(parents=True)
    with gzip.open(folder / "part-0.json.gz", "wt") as packed:
        packed.write("\n".join(event(event_id=f"gz{i}") for i in range(3)) + "\n")
    ctx = RunContext(spark, settings)
    assert run_ingest(ctx).rows["events accepted"] == 3
    silver = tables.read(spark, ctx.table("silver_events")).select("event_id")
    expected = spark.createDataFrame([("gz0",), ("gz1",), ("gz2",)], "event_id string")
    assert_df_equality(silver, expected, ignore_row_order=True, ignore_nullable=True)


def settings_for(example: str, tmp_path: Path, folder: str, text: str):  # type: ignore[no-untyped-def]
    storage = storage_under(tmp_path)
    conf = write_conf(
        tmp_path / "conf.yaml",
        {
            "extends": str(REPO / "conf" / "examples" / example),
            "storage": storage,
            "ingest": {"max_reject_share": 1.0},
        },
    )
    target = tmp_path / "landing" / folder
    target.mkdir(parents=True)
    (target / "export.csv").write_text(text)
    return load_settings(conf)


def test_clickstream_export(spark: SparkSession, tmp_path: Path) -> None:
    ctx = RunContext(
        spark, settings_for("clickstream_csv.yaml", tmp_path, "clickstream", CLICKSTREAM)
    )
    report = run_ingest(ctx)
    assert report.rows["events accepted"] == 4
    assert report.rows["quarantined UNKNOWN_EVENT_TYPE"] == 1  # wishlist has no mapping
    assert report.rows["quarantined MISSING_USER"] == 1  # require_user_id: true
    assert report.rows["quarantined MALFORMED_RECORD"] == 1
    columns = ("event_type", "user_id", "price", "quantity", "category", "event_ts", "session_id")
    bronze = tables.read(spark, ctx.table("bronze_events")).select(*columns)
    heater = "appliances.environment.water_heater"
    at = dt.datetime(2019, 10, 1, 0, 0)
    expected = spark.createDataFrame(
        [
            ("product_view", "541312140", 35.79, None, "2103807459595387724", at, "72d76fde-8bb3"),
            ("add_to_cart", "554748717", 33.2, 1, heater, at.replace(second=5), "9333dfbd-b87a"),
            ("purchase", "554748717", 33.2, 1, heater, at.replace(second=7), "9333dfbd-b87a"),
            # Bronze keeps what arrived: the repeated line too.
            ("purchase", "554748717", 33.2, 1, heater, at.replace(second=7), "9333dfbd-b87a"),
        ],
        "event_type string, user_id string, price double, quantity int, category string, "
        "event_ts timestamp, session_id string",
    )
    assert_df_equality(bronze, expected, ignore_row_order=True, ignore_nullable=True)
    # The repeated purchase line is a second purchase in the same file (line identity).
    assert tables.read(spark, ctx.table("silver_events")).count() == 4


def test_order_lines_export(spark: SparkSession, tmp_path: Path) -> None:
    ctx = RunContext(spark, settings_for("orders_csv.yaml", tmp_path, "orders", ORDERS))
    report = run_ingest(ctx)
    assert report.rows["events accepted"] == 4
    assert report.rows["quarantined BAD_QUANTITY"] == 1  # negative quantity, not a cancellation
    assert report.rows["quarantined BAD_FIELD_TYPE"] == 1  # price "abc"
    bronze = tables.read(spark, ctx.table("bronze_events")).select(
        F.col("order_id").alias("invoice"),
        "event_type",
        "quantity",
        "price",
        "event_ts",
        "user_id",
        "anonymous_id",
        "session_id",
    )
    # Europe/London in December is UTC+0, in June UTC+1.
    december, june = dt.datetime(2010, 12, 1, 8, 26), dt.datetime(2011, 6, 1, 10, 52)
    expected = spark.createDataFrame(
        [
            ("536365", "purchase", 6, 2.55, december, "17850", "invoice:536365", "536365"),
            ("536365", "purchase", 6, 3.39, december, "17850", "invoice:536365", "536365"),
            # A cancellation: positive quantity.
            (
                "C536379",
                "cancel",
                1,
                27.5,
                dt.datetime(2010, 12, 1, 9, 41),
                "14527",
                "invoice:C536379",
                "C536379",
            ),
            # No CustomerID: kept as anonymous, keyed by invoice.
            ("536414", "purchase", 56, 0.0, june, None, "invoice:536414", "536414"),
        ],
        "invoice string, event_type string, quantity int, price double, event_ts timestamp, "
        "user_id string, anonymous_id string, session_id string",
    )
    assert_df_equality(bronze, expected, ignore_row_order=True, ignore_nullable=True)


def test_killed_ingest_resumes_exactly_once(spark: SparkSession, tmp_path: Path) -> None:
    conf = write_conf(
        tmp_path / "crash.yaml",
        # One file per micro-batch, so the kill lands between batches or inside one.
        conf_document(tmp_path, ingest={"max_files_per_batch": 1, "max_reject_share": 1.0}),
    )
    settings = load_settings(conf)
    landing = Path(settings.storage.landing)
    expected_ids = set()
    for i in range(FILES):
        ids = [f"f{i}-{j}" for j in range(3)]
        expected_ids.update(ids)
        # Each file repeats an event of the previous one, and has one bad line.
        repeat = [event(event_id=f"f{i - 1}-0")] if i else []
        write_landing(
            landing,
            f"part-{i:03d}.json",
            [*(event(event_id=x) for x in ids), *repeat, CASES["BAD_QUANTITY"]],
        )

    env = {**os.environ, "USERPROFILE_PSEUDONYM_KEY": TEST_KEY}
    victim = subprocess.Popen(
        [sys.executable, "-m", "userprofile.cli", "ingest", "--conf", str(conf)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    first_commit = (
        Path(settings.storage.warehouse) / "bronze/events/_delta_log/00000000000000000000.json"
    )
    deadline = time.monotonic() + 240
    while not first_commit.exists() and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    assert victim.wait(timeout=60) == -signal.SIGKILL, (
        "the ingest finished before it could be killed"
    )

    ctx = RunContext(spark, settings)
    run_ingest(ctx)
    bronze = [r.event_id for r in tables.read(spark, ctx.table("bronze_events")).collect()]
    assert len(bronze) == FILES * 3 + (FILES - 1)  # every valid line once, repeats included
    assert set(bronze) == expected_ids
    silver = [r.event_id for r in tables.read(spark, ctx.table("silver_events")).collect()]
    assert sorted(silver) == sorted(expected_ids)
    assert tables.read(spark, ctx.table("bronze_quarantine")).count() == FILES


def over_limit_counts() -> IngestCounts:
    return IngestCounts(
        accepted=6,
        rejected=Counter(
            {"BAD_TIMESTAMP": 5, "NEGATIVE_PRICE": 3, "MISSING_USER": 2, "BAD_QUANTITY": 1}
        ),
    )


def test_the_reprocess_error_names_the_top_reasons_on_one_line() -> None:
    with pytest.raises(DataQualityError) as raised:
        check_reject_share(over_limit_counts(), max_share=0.5)
    message = str(raised.value)
    assert message.startswith(
        "64.7% of 17 event records were quarantined (limit ingest.max_reject_share = 50.0%); "
        "top reasons: BAD_TIMESTAMP 5, NEGATIVE_PRICE 3, MISSING_USER 2. "
    )
    assert "BAD_QUANTITY" not in message  # top three only
    assert "userprofile reprocess --source NAME" in message
    assert "\n" not in message


def test_a_reject_share_at_the_limit_passes() -> None:
    check_reject_share(over_limit_counts(), max_share=11 / 17)
    with pytest.raises(DataQualityError):
        check_reject_share(over_limit_counts(), max_share=11 / 17 - 1e-9)


def test_tables_from_before_order_ids_gain_the_column(
    spark: SparkSession, make_settings: SettingsFactory
) -> None:
    settings = make_settings()
    ctx = RunContext(spark, settings)
    landing = Path(settings.storage.landing)
    write_landing(landing, "old.json", [event(event_id="old")])
    run_ingest(ctx)
    for name in ("bronze", "silver"):  # as an older release wrote them
        path = str(Path(settings.storage.warehouse) / name / "events")
        # Older releases set no statistics columns (bronze's list names order_id).
        spark.sql(
            f"ALTER TABLE delta.`{path}` UNSET TBLPROPERTIES IF EXISTS "
            "('delta.dataSkippingStatsColumns')"
        )
        old = spark.read.format("delta").load(path).drop("order_id")
        writer = old.write.format("delta").mode("overwrite").option("overwriteSchema", "true")
        writer.partitionBy("event_date").save(path)
    write_landing(landing, "new.json", [event(event_id="new", order_id="O-1")], day="2026-01-06")
    run_ingest(ctx)
    silver = tables.read(spark, ctx.table("silver_events")).select("event_id", "order_id")
    expected = spark.createDataFrame(
        [("old", None), ("new", "O-1")], "event_id string, order_id string"
    )
    assert_df_equality(silver, expected, ignore_row_order=True, ignore_nullable=True)


def test_the_batch_writer_never_shows_the_key(make_settings: SettingsFactory) -> None:
    settings = make_settings()
    source = settings.ingest.sources["events"]
    writer = BatchWriter(settings, "run", TEST_KEY.encode(), "events", source, "app", "attempt")
    assert TEST_KEY not in repr(writer)
