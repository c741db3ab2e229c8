"""Identity stitching: anonymous activity joins the login that follows it, never earlier."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import SparkSession

from tests.ingest.raw_events import classified, event
from userprofile.ingest.identity import new_identities, stitched
from userprofile.ingest.records import to_bronze
from userprofile.ingest.silver import to_silver_events


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
