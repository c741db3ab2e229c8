"""Raw records -> bronze, quarantine (with reasons) and silver; exactly once per file."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from tests.conftest import SettingsFactory
from tests.helpers import TEST_KEY
from userprofile import tables
from userprofile.config import EventSource
from userprofile.errors import DataQualityError
from userprofile.ingest import (
    REJECT_REASONS,
    classify,
    new_identities,
    stitched,
    to_bronze,
    to_quarantine,
    to_silver_events,
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
JSON_SOURCE = EventSource(path="events")


def event(**changes: Any) -> str:
    record = {**GOOD, **changes}
    return json.dumps({k: v for k, v in record.items() if v is not None})


CASES = {
    "MALFORMED_RECORD": '{"event_id": "e1", "event_ts": "2026-01',
    "MISSING_EVENT_ID": event(event_id=None),
    "MISSING_USER": event(event_id="e3", user_id=None, anonymous_id=None),
    "BAD_FIELD_TYPE": event(event_id="e3b", price="twelve"),
    "BAD_TIMESTAMP": event(event_id="e4", event_ts="31/02/2026 25:61"),
    "FUTURE_TIMESTAMP": event(event_id="e5", event_ts="2099-01-01T00:00:00Z"),
    "UNKNOWN_EVENT_TYPE": event(event_id="e6", event_type="teleport"),
    "NEGATIVE_PRICE": event(event_id="e7", price=-3.0),
    "ABSURD_PRICE": event(event_id="e7b", price=5e6),
    "BAD_QUANTITY": event(event_id="e8", quantity=0),
    "MISSING_PRICE": event(event_id="e9", price=None),
}


def lines_frame(spark: SparkSession, lines: list[str]) -> DataFrame:
    return spark.createDataFrame(
        [(line, "file:/landing/x.json") for line in lines], "value string, _source_file string"
    )


def classified(
    spark: SparkSession, lines: list[str], source: EventSource = JSON_SOURCE
) -> DataFrame:
    return lines_frame(spark, lines).transform(classify(source, 24, 100_000.0))


def test_every_reason_has_a_case() -> None:
    assert set(CASES) == set(REJECT_REASONS)


def test_each_kind_of_bad_record_gets_its_reason(spark: SparkSession) -> None:
    rows = classified(spark, [*CASES.values(), event()])
    quarantine = to_quarantine(rows, "events", TEST_KEY.encode()).collect()
    assert {r.raw_record: r.reason_code for r in quarantine} == {v: k for k, v in CASES.items()}
    assert all(r.reason == REJECT_REASONS[r.reason_code] for r in quarantine)
    assert {r._source_file for r in quarantine} == {"file:/landing/x.json"}
    bronze = to_bronze(rows, "events").collect()
    assert [(r.event_id, r.source, r.price, r.quantity) for r in bronze] == [
        ("e-good", "events", 12.5, 2)
    ]
    assert bronze[0].event_ts == dt.datetime(2026, 1, 5, 10, 0)


def test_unknown_fields_are_rescued_not_lost(spark: SparkSession) -> None:
    line = event(coupon="WELCOME10", experiment={"arm": "b"})
    bronze = to_bronze(classified(spark, [line]), "events").first()
    assert bronze is not None
    assert json.loads(bronze._rescued_data) == {"coupon": "WELCOME10", "experiment": '{"arm":"b"}'}


def test_blank_ids_are_missing_ids(spark: SparkSession) -> None:
    lines = [event(event_id="blank", user_id="  ", anonymous_id=""), event(event_id=" ")]
    reasons = sorted(r.reason_code for r in classified(spark, lines).collect())
    assert reasons == ["MISSING_EVENT_ID", "MISSING_USER"]


def test_anonymous_rows_are_kept_unless_the_source_requires_a_user(spark: SparkSession) -> None:
    line = event(event_id="anon", user_id=None, event_type="page_view", price=None, quantity=None)
    assert to_bronze(classified(spark, [line]), "events").count() == 1
    strict = EventSource(path="events", require_user_id=True)
    assert [r.reason_code for r in classified(spark, [line], strict).collect()] == ["MISSING_USER"]


def test_silver_is_pseudonymous_and_deduplicated(spark: SparkSession) -> None:
    bronze = to_bronze(classified(spark, [event(), event(), event(event_id="e2")]), "events")
    silver = bronze.transform(to_silver_events(TEST_KEY.encode(), 30))
    assert silver.count() == 2
    assert not {"email", "ip", "user_id", "anonymous_id"} & set(silver.columns)
    keys = {r.user_key for r in silver.collect()}
    assert len(keys) == 1
    assert "U1" not in keys
    assert len(next(iter(keys))) == 64


def test_missing_sessions_are_cut_at_the_inactivity_gap(spark: SparkSession) -> None:
    times = ["2026-01-05T10:00:00Z", "2026-01-05T10:20:00Z", "2026-01-05T11:05:00Z"]
    lines = [event(event_id=f"e{i}", event_ts=t, session_id=None) for i, t in enumerate(times)]
    lines.append(event(event_id="other", user_id="U2", session_id=None))
    bronze = to_bronze(classified(spark, lines), "events")
    silver = {
        r.event_id: r.session_id
        for r in bronze.transform(to_silver_events(b"k" * 16, 30)).collect()
    }
    assert silver["e0"] == silver["e1"]
    assert silver["e2"] != silver["e1"]
    assert silver["other"] not in {silver["e0"], silver["e2"]}
    assert all(s.startswith("s-") for s in silver.values())


def test_anonymous_activity_is_stitched_to_the_login(spark: SparkSession) -> None:
    lines = [
        event(event_id="before", user_id=None, event_type="page_view", price=None, quantity=None),
        event(event_id="login", event_ts="2026-01-05T10:05:00Z"),
        event(
            event_id="stranger",
            user_id=None,
            anonymous_id="anon-9",
            event_type="search",
            price=None,
            quantity=None,
        ),
    ]
    silver = to_bronze(classified(spark, lines), "events").transform(
        to_silver_events(b"k" * 16, 30)
    )
    identities = new_identities(silver)
    resolved = {r.event_id: r.user_key for r in silver.transform(stitched(identities)).collect()}
    assert resolved["before"] == resolved["login"]
    assert resolved["before"] is not None
    assert resolved["stranger"] is None
    # A snapshot before the login day must not learn the identity from its future.
    early = silver.transform(stitched(identities, known_before=dt.date(2026, 1, 5)))
    assert {r.event_id: r.user_key for r in early.collect()}["before"] is None


def write_landing(
    landing: Path, name: str, lines: list[str], folder: str = "events", day: str = "2026-01-05"
) -> None:
    target = landing / folder / f"landing_date={day}"
    target.mkdir(parents=True, exist_ok=True)
    (target / name).write_text("\n".join(lines) + "\n")


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

    # A new file with one new event and one already delivered in the first file.
    write_landing(landing, "b.json", [event(event_id="b1"), event(event_id="a1")])
    assert run_ingest(ctx).rows["events accepted"] == 2
    assert len(table_rows(spark, ctx, "bronze_events")) == 4  # bronze keeps what arrived
    silver = tables.read(spark, ctx.table("silver_events"))
    assert sorted(r.event_id for r in silver.collect()) == ["a1", "a2", "b1"]  # stored once


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
    late = [
        event(event_id="l1", event_ts="2026-01-12T09:00:00Z"),
        event(event_id="l2", event_ts="2026-01-14T09:00:00Z"),
    ]
    write_landing(landing, "late.json", late, day="2026-01-21")
    assert run_ingest(ctx).rows["event dates changed"] == "2026-01-12 .. 2026-01-14 (2 dates)"
    silver = tables.read(spark, ctx.table("silver_events"))
    assert {r.event_id: r.event_date for r in silver.collect()} == {
        "t1": dt.date(2026, 1, 20),
        "l1": dt.date(2026, 1, 12),
        "l2": dt.date(2026, 1, 14),
    }
    log = tables.read(spark, ctx.table("ingest_log")).orderBy("logged_at").collect()
    assert [r.changed_dates for r in log] == [
        [dt.date(2026, 1, 20)],
        [dt.date(2026, 1, 12), dt.date(2026, 1, 14)],
    ]


def test_too_many_rejects_fail_the_run(spark: SparkSession, make_settings: SettingsFactory) -> None:
    settings = make_settings(ingest={"max_reject_share": 0.1})
    write_landing(
        Path(settings.storage.landing), "bad.json", [event(event_id="ok"), *CASES.values()]
    )
    with pytest.raises(DataQualityError, match=r"91\.7% of 12 event records were quarantined"):
        run_ingest(RunContext(spark, settings))
    ctx = RunContext(spark, settings)  # the evidence is kept
    assert len(table_rows(spark, ctx, "bronze_quarantine")) == 11
    assert len(table_rows(spark, ctx, "bronze_events")) == 1


def test_quarantine_keeps_the_raw_line_and_file(
    spark: SparkSession, make_settings: SettingsFactory
) -> None:
    settings = make_settings(ingest={"max_reject_share": 1.0})
    write_landing(Path(settings.storage.landing), "q.json", [CASES["BAD_TIMESTAMP"]])
    ctx = RunContext(spark, settings)
    run_ingest(ctx)
    row = tables.read(spark, ctx.table("bronze_quarantine")).first()
    assert row is not None
    assert (row.raw_record, row.reason_code, row.source) == (
        CASES["BAD_TIMESTAMP"],
        "BAD_TIMESTAMP",
        "events",
    )
    assert row._source_file.endswith("landing_date=2026-01-05/q.json")
    assert tables.read(spark, ctx.table("bronze_events")).where(F.lit(True)).count() == 0


def test_gzip_files_are_read(spark: SparkSession, make_settings: SettingsFactory) -> None:
    settings = make_settings()
    folder = Path(settings.storage.landing) / "events" / "landing_date=2026-01-05"
    folder.mkdir(parents=True)
    with gzip.open(folder / "part-0.json.gz", "wt") as packed:
        packed.write("\n".join(event(event_id=f"gz{i}") for i in range(3)) + "\n")
    ctx = RunContext(spark, settings)
    assert run_ingest(ctx).rows["events accepted"] == 3
    silver = tables.read(spark, ctx.table("silver_events"))
    assert sorted(r.event_id for r in silver.collect()) == ["gz0", "gz1", "gz2"]
