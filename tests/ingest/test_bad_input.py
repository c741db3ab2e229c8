"""Bad input through the real ingest: a corpus of nasty files (tests/data/bad_input) and
generated deliveries. Every record ends as a bronze row or a quarantine row with a reason,
silver stores each event once (input records = bronze + quarantine, bronze = silver +
duplicates), and ingest never crashes on data. Records are counted in Python from the
bytes written, never from the product's own counts.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import tempfile
from collections import Counter
from pathlib import Path

import pytest
from chispa import assert_df_equality
from hypothesis import HealthCheck, Phase, given, settings
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from tests.helpers import conf_document, write_conf
from tests.ingest.bad_input import (
    CORPUS,
    corpus_files,
    expected_counts,
    land_corpus,
    records_of,
    settings_under,
)
from tests.ingest.bad_lines import LandingFile, deliveries, valid_ids, write_delivery
from tests.ingest.raw_events import event
from userprofile.config import Settings, load_settings
from userprofile.errors import UserProfileError, scrubbed
from userprofile.ingest.records import REJECT_REASONS
from userprofile.ingest.step import run_ingest
from userprofile.io import tables
from userprofile.io.context import RunContext

KEY = ["source", "event_id"]
TEXT_FIELDS = ["event_id", "user_id", "anonymous_id", "session_id", "order_id", "product_id"]
TEXT_FIELDS += ["category", "device", "channel", "email", "ip"]
CUT_EVENTS = 400  # events in the whole of truncated/cut.json.gz


@pytest.fixture(scope="module")
def corpus_run(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> RunContext:
    """The whole corpus ingested once; ingest must not raise."""
    settings = settings_under(tmp_path_factory.mktemp("bad_input"))
    land_corpus(Path(settings.storage.landing))
    ctx = RunContext(spark, settings)
    run_ingest(ctx)
    return ctx


def table(ctx: RunContext, key: str) -> DataFrame | None:
    """A table's rows; None when ingest never created it (nothing was written)."""
    return ctx.read(key) if tables.exists(ctx.spark, ctx.table(key)) else None


def landed_as(path_parts: int) -> Column:
    """``_source_file`` as its last ``path_parts`` path segments, e.g. `events/bom.json`."""
    return F.regexp_extract("_source_file", r"([^/]+" + r"/[^/]+" * (path_parts - 1) + ")$", 1)


def rows_per_file(frame: DataFrame | None, path_parts: int) -> dict[str, int]:
    if frame is None:
        return {}
    counted = frame.groupBy(landed_as(path_parts)).count().collect()
    return {str(r[0]): int(r[1]) for r in counted}


# -- the corpus ------------------------------------------------------------------------


def test_the_readme_lists_every_corpus_file_with_counts_that_add_up() -> None:
    expected = expected_counts()
    assert sorted(expected) == corpus_files()
    for file, counts in expected.items():
        assert counts.records == records_of(file), file
        assert counts.bronze + counts.quarantine == counts.records, file
        assert sum(counts.reasons.values()) == counts.quarantine, file
        assert set(counts.reasons) <= set(REJECT_REASONS), file


def test_each_file_ends_as_the_readmes_bronze_quarantine_and_duplicate_rows(
    spark: SparkSession, corpus_run: RunContext
) -> None:
    bronze = corpus_run.read("bronze_events").withColumn("file", landed_as(2))
    quarantine = corpus_run.read("bronze_quarantine").withColumn("file", landed_as(2))
    files = spark.createDataFrame([(f,) for f in corpus_files()], "file string")
    per_file = bronze.groupBy("file").agg(
        F.count(F.lit(1)).alias("bronze"),
        (F.count(F.lit(1)) - F.count_distinct(*KEY)).alias("duplicates"),
    )
    quarantined = quarantine.groupBy("file").agg(F.count(F.lit(1)).alias("quarantine"))
    actual = (
        files.join(per_file, "file", "left")
        .join(quarantined, "file", "left")
        .select("file", "bronze", "quarantine", "duplicates")
        .fillna(0)
    )
    expected = spark.createDataFrame(
        [(e.file, e.bronze, e.quarantine, e.duplicates) for e in expected_counts().values()],
        "file string, bronze long, quarantine long, duplicates long",
    )
    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)


def test_every_quarantined_record_keeps_its_text_and_a_known_reason(
    spark: SparkSession, corpus_run: RunContext
) -> None:
    quarantine = corpus_run.read("bronze_quarantine")
    actual = quarantine.groupBy(
        landed_as(2).alias("file"),
        "reason_code",
        "reason",
        F.col("raw_record").isNotNull().alias("raw_kept"),
    ).agg(F.count(F.lit(1)).alias("n"))
    expected = spark.createDataFrame(
        [
            (e.file, code, REJECT_REASONS[code], True, n)
            for e in expected_counts().values()
            for code, n in e.reasons.items()
        ],
        "file string, reason_code string, reason string, raw_kept boolean, n long",
    )
    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)


def test_silver_stores_each_event_of_bronze_once(corpus_run: RunContext) -> None:
    bronze_events = corpus_run.read("bronze_events").select(*KEY).distinct()
    silver = corpus_run.read("silver_events").select(*KEY)
    assert_df_equality(silver, bronze_events, ignore_row_order=True, ignore_nullable=True)
    expected = expected_counts().values()
    stored = sum(e.bronze - e.duplicates for e in expected)
    assert sum(e.records for e in expected) == silver.count() + sum(
        e.quarantine + e.duplicates for e in expected
    )
    assert silver.count() == stored


def test_sql_and_html_looking_text_is_stored_verbatim(
    spark: SparkSession, corpus_run: RunContext
) -> None:
    lines = (CORPUS / "events" / "injection.json").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    rejected = {"inj-sql-event_type", "inj-html-event_type", "inj-sql-event_ts", "inj-sql-price"}
    expected = spark.createDataFrame(
        [tuple(r.get(f) for f in TEXT_FIELDS) for r in records if r["event_id"] not in rejected],
        ", ".join(f"{f} string" for f in TEXT_FIELDS),
    )
    bronze = corpus_run.read("bronze_events").where(landed_as(2) == "events/injection.json")
    assert_df_equality(
        bronze.select(*TEXT_FIELDS), expected, ignore_row_order=True, ignore_nullable=True
    )


def zoned_instants(ctx: RunContext, file: str) -> DataFrame:
    return ctx.read("bronze_events").where(landed_as(2) == file).select("event_id", "event_ts")


def test_london_times_at_the_dst_changes_become_the_instants_meant(
    spark: SparkSession, corpus_run: RunContext
) -> None:
    at = dt.datetime
    expected = spark.createDataFrame(
        [
            ("dst-before-gap", at(2026, 3, 29, 0, 59, 59)),  # GMT
            ("dst-in-gap", at(2026, 3, 29, 1, 30)),  # 01:30 does not exist: read as 02:30 BST
            ("dst-after-gap", at(2026, 3, 29, 1, 0)),  # 02:00 BST
            ("dst-fold", at(2026, 10, 25, 0, 30)),  # 01:30 happens twice: the first, BST
            ("dst-after-fold", at(2026, 10, 25, 2, 0)),  # GMT again
        ],
        "event_id string, event_ts timestamp",
    )
    actual = zoned_instants(corpus_run, "zoned/dst_edges.json")
    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)


def test_an_offset_in_the_text_wins_over_the_sources_time_zone(
    spark: SparkSession, corpus_run: RunContext
) -> None:
    expected = spark.createDataFrame(
        [
            ("off-plus", dt.datetime(2026, 7, 5, 4, 30)),
            ("off-z", dt.datetime(2026, 7, 5, 10, 0)),
            ("off-utc-name", dt.datetime(2026, 7, 5, 10, 0)),
            ("off-none", dt.datetime(2026, 7, 5, 9, 0)),  # London local time, BST
        ],
        "event_id string, event_ts timestamp",
    )
    actual = zoned_instants(corpus_run, "zoned/offsets.json")
    assert_df_equality(actual, expected, ignore_row_order=True, ignore_nullable=True)


# -- a gzip file cut short -------------------------------------------------------------


def events_settings(root: Path) -> Settings:
    document = conf_document(root, ingest={"max_reject_share": 1.0})
    return load_settings(write_conf(root / "conf.yaml", document))


def land_cut_gzip(settings: Settings) -> Path:
    """truncated/cut.json.gz in landing; returns its folder."""
    folder = Path(settings.storage.landing) / "events" / "landing_date=2026-01-05"
    folder.mkdir(parents=True)
    (folder / "cut.json.gz").write_bytes((CORPUS / "truncated" / "cut.json.gz").read_bytes())
    return folder


def whole_cut_file() -> bytes:
    """The file truncated/cut.json.gz was cut from (the corpus README's recipe)."""
    lines = "\n".join(event(event_id=f"cut-{i}") for i in range(CUT_EVENTS)) + "\n"
    return gzip.compress(lines.encode(), mtime=0)


def test_a_gzip_file_cut_short_is_not_half_ingested_and_is_taken_whole_when_delivered_again(
    spark: SparkSession, tmp_path: Path
) -> None:
    whole = whole_cut_file()
    assert (CORPUS / "truncated" / "cut.json.gz").read_bytes() == whole[: len(whole) // 2]
    settings = events_settings(tmp_path)
    folder = land_cut_gzip(settings)
    (folder / "good.json").write_text(event(event_id="beside-the-cut") + "\n")
    ctx = RunContext(spark, settings)
    with pytest.raises(Exception, match=r"cut\.json\.gz"):
        run_ingest(ctx)
    for key in ("bronze_events", "bronze_quarantine", "silver_events"):
        assert rows_per_file(table(ctx, key), 1) == {}, key  # nothing of the delivery

    (folder / "cut.json.gz").write_bytes(whole)  # the upstream delivers it again, whole
    report = run_ingest(ctx)
    assert report.rows["events accepted"] == CUT_EVENTS + 1
    bronze = rows_per_file(table(ctx, "bronze_events"), 1)
    assert bronze == {"cut.json.gz": CUT_EVENTS, "good.json": 1}
    assert rows_per_file(table(ctx, "bronze_quarantine"), 1) == {}


def test_a_gzip_file_cut_short_fails_ingest_with_one_line_naming_the_file(
    spark: SparkSession, tmp_path: Path
) -> None:
    settings = events_settings(tmp_path)
    land_cut_gzip(settings)
    with pytest.raises(UserProfileError) as raised:
        run_ingest(RunContext(spark, settings))
    assert "cut.json.gz" in scrubbed(raised.value)  # the line the CLI prints


# -- generated deliveries --------------------------------------------------------------


def assert_every_record_accounted(
    ctx: RunContext, records: dict[str, int], valid: set[str]
) -> None:
    """records = bronze + quarantine per file; silver = bronze's distinct events, the
    valid ones among them; every quarantine row with a known reason."""
    bronze, quarantine = table(ctx, "bronze_events"), table(ctx, "bronze_quarantine")
    landed = Counter(rows_per_file(bronze, 1)) + Counter(rows_per_file(quarantine, 1))
    assert dict(landed) == {name: n for name, n in records.items() if n}
    silver = table(ctx, "silver_events")
    stored = set() if silver is None else {r.event_id for r in silver.select("event_id").collect()}
    arrived = set() if bronze is None else {r.event_id for r in bronze.select("event_id").collect()}
    assert stored == arrived  # nothing lost between bronze and silver, each event once
    assert valid <= stored
    if silver is not None:
        assert silver.count() == len(stored)
    if quarantine is not None:
        reasons = quarantine.select("reason_code", "reason").distinct().collect()
        assert {(r.reason_code, r.reason) for r in reasons} <= set(REJECT_REASONS.items())


@settings(
    max_examples=8,
    deadline=None,  # each example runs a Spark ingest: seconds, not milliseconds
    derandomize=True,  # the same examples on every run and machine
    database=None,  # no .hypothesis folder in the repository
    phases=[Phase.explicit, Phase.generate],  # no shrinking: every step is a Spark job
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,  # each example uses a fresh folder under tmp_path
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)
@given(files=deliveries)
def test_every_generated_record_ends_in_bronze_or_the_quarantine(
    spark: SparkSession, tmp_path: Path, files: list[LandingFile]
) -> None:
    root = Path(tempfile.mkdtemp(dir=tmp_path))
    settings = events_settings(root)
    folder = Path(settings.storage.landing) / "events" / "landing_date=2026-01-05"
    records = write_delivery(folder, files)
    ctx = RunContext(spark, settings)
    run_ingest(ctx)  # never raises on data
    assert_every_record_accounted(ctx, records, valid_ids(files))
