"""Bronze -> silver events: pseudonymous, deduplicated, sessions cut at the inactivity gap."""

from __future__ import annotations

from functools import partial

import pytest
from pyspark.sql import SparkSession

from tests.helpers import TEST_KEY
from tests.ingest.raw_events import anonymous_view, classified, event
from userprofile.ingest import silver as silver_module
from userprofile.ingest.privacy import pseudonym
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


# Few ids are broadcast to the join, many shuffled: the same keys either way.
@pytest.mark.parametrize("broadcast_ids", [silver_module.BROADCAST_IDS, 0])
def test_each_id_gets_its_own_pseudonym_and_a_missing_id_none(
    spark: SparkSession, monkeypatch: pytest.MonkeyPatch, broadcast_ids: int
) -> None:
    monkeypatch.setattr(silver_module, "BROADCAST_IDS", broadcast_ids)
    lines = [
        event(event_id="e1", user_id="U1", anonymous_id="A1"),
        event(event_id="e2", user_id="U1", anonymous_id=None),
        anonymous_view("e3", "A2"),
        event(event_id="e4", user_id="A1", anonymous_id="U1"),  # ids in both columns
    ]
    bronze = to_bronze(classified(spark, lines), "events")
    rows = bronze.transform(to_silver_events(TEST_KEY.encode(), 30)).collect()
    got = {r.event_id: (r.user_key, r.anonymous_key) for r in rows}
    key = partial(pseudonym, TEST_KEY.encode())
    assert got == {
        "e1": (key("U1"), key("A1")),
        "e2": (key("U1"), None),
        "e3": (None, key("A2")),
        "e4": (key("A1"), key("U1")),
    }
