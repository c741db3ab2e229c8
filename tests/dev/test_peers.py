"""The bench's peers compute the same core features: pandas and DuckDB agree on inline events."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from userprofile.dev.peers import duckdb_features_sql, pandas_features

AS_OF = dt.date(2026, 5, 1)


def _events() -> pd.DataFrame:
    rows = [
        ("u1", "s1", "product_view", "2026-04-30T10:00:00Z", None, None),
        ("u1", "s1", "purchase", "2026-04-30T10:05:00Z", 20.0, 2),
        ("u1", "s2", "search", "2026-04-10T09:00:00Z", None, None),
        ("u1", "s3", "purchase", "2026-01-15T09:00:00Z", 5.0, 1),
        ("u2", "s4", "add_to_cart", "2026-04-28T23:59:59Z", 7.5, 1),
        ("u2", "s4", "product_view", "2026-05-01T00:00:00Z", None, None),  # on the snapshot: out
    ]
    frame = pd.DataFrame(
        rows, columns=["user_id", "session_id", "event_type", "event_ts", "price", "quantity"]
    )
    frame["event_ts"] = pd.to_datetime(frame["event_ts"], utc=True)
    return frame


def test_pandas_features_by_hand() -> None:
    features = pandas_features(_events(), AS_OF)
    u1, u2 = features.loc["u1"], features.loc["u2"]
    assert u1.events_total == 4
    assert u1.events_7d == 2  # 7 calendar days before the snapshot, as the Spark features
    assert u1.orders_total == 2
    assert u1.revenue_30d == pytest.approx(40.0)
    assert u1.revenue_total == pytest.approx(45.0)
    assert u1.avg_order_value == pytest.approx(22.5)
    assert u1.sessions_total == 3
    assert u1.recency_days == 1
    assert u1.tenure_days == 106
    assert u2.events_total == 1  # the event at 00:00 on the snapshot is not before it
    assert u2.carts_7d == 1
    assert u2.recency_days == 3


def test_duckdb_computes_the_same_features(tmp_path: Path) -> None:
    events = _events().rename(columns={"user_id": "user_key"})
    events.to_parquet(tmp_path / "events.parquet")
    with duckdb.connect() as db:
        db.execute("SET TimeZone = 'UTC'")
        sql = duckdb_features_sql([str(tmp_path / "events.parquet")], AS_OF)
        duck = db.execute(sql).df().set_index("user_key").sort_index()
    expected = pandas_features(_events(), AS_OF).sort_index()
    duck = duck[expected.columns].fillna(0.0).astype(float)
    pd.testing.assert_frame_equal(duck, expected.astype(float), check_names=False)
