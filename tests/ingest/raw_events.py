"""Raw event lines as they arrive in landing: a good record, one bad record per reject
reason, and helpers to classify lines or drop them into a landing folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession

from userprofile.config import EventSource
from userprofile.ingest.records import classify

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


def anonymous_view(event_id: str, anonymous_id: str) -> str:
    """A page view of someone not logged in: no user id, price or quantity."""
    return event(
        event_id=event_id,
        user_id=None,
        anonymous_id=anonymous_id,
        event_type="page_view",
        price=None,
        quantity=None,
    )


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


def write_landing(
    landing: Path, name: str, lines: list[str], folder: str = "events", day: str = "2026-01-05"
) -> None:
    target = landing / folder / f"landing_date={day}"
    target.mkdir(parents=True, exist_ok=True)
    (target / name).write_text("\n".join(lines) + "\n")
