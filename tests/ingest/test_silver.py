"""Bronze -> silver events: pseudonymous, deduplicated, sessions cut at the inactivity gap."""

from __future__ import annotations

from pyspark.sql import SparkSession

from tests.helpers import TEST_KEY
from tests.ingest.raw_events import classified, event
from userprofile.ingest.records import to_bronze
from userprofile.ingest.silver import to_silver_events


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
