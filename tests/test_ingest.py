"""Raw lines -> bronze, quarantine (with reasons) and silver; exactly once per file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import DataFrame, SparkSession

from tests.conftest import SettingsFactory
from tests.helpers import TEST_KEY
from userprofile import tables
from userprofile.errors import DataQualityError
from userprofile.ingest import (
    parse_event_lines,
    to_bronze,
    to_quarantine,
    to_silver_events,
    with_reject_reason,
)
from userprofile.steps.common import RunContext
from userprofile.steps.ingest import run_ingest

GOOD: dict[str, Any] = {
    "event_id": "e-good",
    "event_ts": "2026-01-05T10:00:00.000Z",
    "user_id": "U1",
    "anonymous_id": "anon-1",
    "session_id": "s1",
    "event_type": "purchase",
    "product_id": "P01-0001",
    "category": "books",
    "price": 12.5,
    "quantity": 2,
    "device": "mobile",
    "channel": "email",
    "email": "someone@example.com",
    "ip": "10.0.0.1",
}


def event(**changes: Any) -> str:
    record = {**GOOD, **changes}
    return json.dumps({k: v for k, v in record.items() if v is not None})


CASES = {
    "MALFORMED_RECORD": '{"event_id": "e1", "event_ts": "2026-01',
    "MISSING_EVENT_ID": event(event_id=None),
    "MISSING_USER": event(event_id="e3", user_id=None, anonymous_id=None),
    "BAD_TIMESTAMP": event(event_id="e4", event_ts="31/02/2026 25:61"),
    "FUTURE_TIMESTAMP": event(event_id="e5", event_ts="2099-01-01T00:00:00Z"),
    "UNKNOWN_EVENT_TYPE": event(event_id="e6", event_type="teleport"),
    "NEGATIVE_PRICE": event(event_id="e7", price=-3.0),
    "BAD_QUANTITY": event(event_id="e8", quantity=0),
    "MISSING_PRICE": event(event_id="e9", price=None),
}


def classify(spark: SparkSession, lines: list[str]) -> DataFrame:
    raw = spark.createDataFrame(
        [(line, "file:/landing/x.json") for line in lines], "value string, _source_file string"
    )
    return parse_event_lines(raw).transform(with_reject_reason(future_tolerance_hours=24))


def test_each_kind_of_bad_record_gets_its_reason(spark: SparkSession) -> None:
    classified = classify(spark, [*CASES.values(), event()])
    quarantine = to_quarantine(classified, "events")
    got = {r.raw_record: r.reason_code for r in quarantine.collect()}
    assert got == {line: code for code, line in CASES.items()}
    assert all(r.reason and r._source_file == "file:/landing/x.json" for r in quarantine.collect())
    assert [r.event_id for r in to_bronze(classified).collect()] == ["e-good"]


def test_anonymous_only_events_are_valid(spark: SparkSession) -> None:
    classified = classify(spark, [event(event_id="anon", user_id=None, event_type="page_view")])
    assert to_bronze(classified).count() == 1


def test_silver_is_pseudonymous_and_deduplicated(spark: SparkSession) -> None:
    bronze = to_bronze(classify(spark, [event(), event(), event(event_id="e2")]))
    silver = bronze.transform(to_silver_events(TEST_KEY.encode()))
    assert silver.count() == 2
    assert not {"email", "ip", "user_id", "anonymous_id"} & set(silver.columns)
    keys = {r.user_key for r in silver.collect()}
    assert len(keys) == 1
    assert "U1" not in keys
    assert len(next(iter(keys))) == 64


def write_landing(landing: Path, name: str, lines: list[str]) -> None:
    folder = landing / "events" / "landing_date=2026-01-05"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("\n".join(lines) + "\n")


def count(spark: SparkSession, ctx: RunContext, key: str) -> int:
    return tables.read(spark, ctx.table(key)).count()


def test_ingest_is_exactly_once_per_file(
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

    again = run_ingest(ctx)  # same files: nothing new
    assert again.rows["events accepted"] == 0
    assert (count(spark, ctx, "bronze_events"), count(spark, ctx, "silver_events")) == (2, 2)

    # A new file with one new event and one repeated from the first file.
    write_landing(landing, "b.json", [event(event_id="b1"), event(event_id="a1")])
    third = run_ingest(ctx)
    assert third.rows["events accepted"] == 2
    assert count(spark, ctx, "bronze_events") == 4  # bronze keeps what arrived
    silver_ids = sorted(
        r.event_id for r in tables.read(spark, ctx.table("silver_events")).collect()
    )
    assert silver_ids == ["a1", "a2", "b1"]  # silver stores each event once
    assert count(spark, ctx, "bronze_quarantine") == 1


def test_too_many_rejects_fail_the_run(spark: SparkSession, make_settings: SettingsFactory) -> None:
    settings = make_settings(ingest={"max_reject_share": 0.1})
    write_landing(
        Path(settings.storage.landing), "bad.json", [event(event_id="ok"), *CASES.values()]
    )
    with pytest.raises(DataQualityError, match=r"90\.0% of 10 event records were quarantined"):
        run_ingest(RunContext(spark, settings))
    # The evidence is kept: rejected rows are in quarantine, the valid one in bronze.
    ctx = RunContext(spark, settings)
    assert count(spark, ctx, "bronze_quarantine") == 9
    assert count(spark, ctx, "bronze_events") == 1
