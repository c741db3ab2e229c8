"""Raw records -> bronze and quarantine, each bad record with its reason."""

from __future__ import annotations

import datetime as dt
import json

from chispa import assert_df_equality
from pyspark.sql import SparkSession

from tests.helpers import REPO, TEST_KEY
from tests.ingest.raw_events import CASES, classified, event
from userprofile.config import EventSource
from userprofile.ingest.records import REJECT_REASONS, to_bronze, to_quarantine


def test_every_reason_has_a_case() -> None:
    assert set(CASES) == set(REJECT_REASONS)


def test_each_kind_of_bad_record_gets_its_reason(spark: SparkSession) -> None:
    rows = classified(spark, [*CASES.values(), event()])
    quarantine = to_quarantine(rows, "events", TEST_KEY.encode())
    expected_quarantine = spark.createDataFrame(
        [
            (line, code, REJECT_REASONS[code], "file:/landing/x.json")
            for code, line in CASES.items()
        ],
        "raw_record string, reason_code string, reason string, _source_file string",
    )
    assert_df_equality(
        quarantine.select("raw_record", "reason_code", "reason", "_source_file"),
        expected_quarantine,
        ignore_row_order=True,
        ignore_nullable=True,
    )
    bronze = to_bronze(rows, "events").select("event_id", "source", "price", "quantity", "event_ts")
    expected_bronze = spark.createDataFrame(
        [("e-good", "events", 12.5, 2, dt.datetime(2026, 1, 5, 10, 0))],
        "event_id string, source string, price double, quantity int, event_ts timestamp",
    )
    assert_df_equality(bronze, expected_bronze, ignore_row_order=True, ignore_nullable=True)


def test_unknown_fields_are_rescued_not_lost(spark: SparkSession) -> None:
    line = event(coupon="WELCOME10", experiment={"arm": "b"})
    bronze = to_bronze(classified(spark, [line]), "events").first()
    assert bronze is not None
    assert json.loads(bronze._rescued_data) == {"coupon": "WELCOME10", "experiment": '{"arm":"b"}'}


def test_blank_ids_are_missing_ids(spark: SparkSession) -> None:
    lines = [event(event_id="blank", user_id="  ", anonymous_id=""), event(event_id=" ")]
    expected = spark.createDataFrame(
        [("MISSING_EVENT_ID",), ("MISSING_USER",)], "reason_code string"
    )
    assert_df_equality(
        classified(spark, lines).select("reason_code"),
        expected,
        ignore_row_order=True,
        ignore_nullable=True,
    )


def test_anonymous_rows_are_kept_unless_the_source_requires_a_user(spark: SparkSession) -> None:
    line = event(event_id="anon", user_id=None, event_type="page_view", price=None, quantity=None)
    assert to_bronze(classified(spark, [line]), "events").count() == 1
    strict = EventSource(path="events", require_user_id=True)
    assert_df_equality(
        classified(spark, [line], strict).select("reason_code"),
        spark.createDataFrame([("MISSING_USER",)], "reason_code string"),
        ignore_row_order=True,
        ignore_nullable=True,
    )


def test_readme_lists_every_quarantine_reason() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    start = readme.index("<!-- reject-reasons:start -->")
    end = readme.index("<!-- reject-reasons:end -->")
    table = readme[start:end]
    assert all(f"| `{code}` | {reason} |" in table for code, reason in REJECT_REASONS.items())


def test_unknown_fields_are_rescued_beside_fields_set_to_null(spark: SparkSession) -> None:
    good = json.loads(event())
    beside_null = json.dumps({**good, "event_id": "n1", "session_id": None, "coupon": "X"})
    only_null = json.dumps({**good, "event_id": "n2", "session_id": None})
    rows = classified(spark, [beside_null, only_null]).collect()
    assert {r.event_id: r._rescued_data for r in rows} == {"n1": '{"coupon":"X"}', "n2": None}
