"""The bench's peers: what a user might run instead, on the same data, in a child process.

* ``pandas``: the seed documents' single-machine approach. Read the raw JSON
  lines with the standard library (a broken line is skipped, as ``read_json``
  would fail on it), per-user features with pandas, then scikit-learn's
  StandardScaler, KMeans and LogisticRegression (label: a purchase in the 30
  days after the training snapshot, as the pipeline's).
* ``duckdb``: the same per-user features in SQL, from the silver events the
  pipeline wrote (the same columnar input as the Spark features step).

Both compute the same core feature set (``CORE_MEASURES`` over each window, and
recency, tenure, average order value); the Spark step computes these and ~50
more (trends, rates, habits, category and channel maps). Run as
``python -m userprofile.dev.peers pandas|duckdb ...``; prints one JSON line of phase timings.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

WINDOWS = (7, 30, 90)
# measure -> event type counted (None: every event); revenue sums price x quantity of purchases.
CORE_MEASURES = {
    "events": None,
    "product_views": "product_view",
    "searches": "search",
    "carts": "add_to_cart",
    "orders": "purchase",
}
FIELDS = ("user_id", "session_id", "event_type", "event_ts", "price", "quantity")
LABEL_DAYS = 30


def _lines(landing: Path) -> Iterator[str]:
    for path in sorted((landing / "events").rglob("part-*")):
        with path.open(encoding="utf-8") as handle:
            yield from handle


def read_raw_events(landing: Path) -> Any:
    """Raw JSON lines -> a pandas frame of the fields the features need."""
    import pandas as pd

    rows = []
    for line in _lines(landing):
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("user_id"):
            rows.append(tuple(record.get(f) for f in FIELDS))
    frame = pd.DataFrame.from_records(rows, columns=list(FIELDS))
    frame["event_ts"] = pd.to_datetime(frame["event_ts"], errors="coerce", utc=True)
    for column in ("price", "quantity"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    return frame.dropna(subset=["event_ts"])


def pandas_features(events: Any, as_of: dt.date) -> Any:
    """Core per-user features of events before ``as_of`` (pandas)."""
    import numpy as np
    import pandas as pd

    cutoff = pd.Timestamp(as_of, tz="UTC")
    before = events[events["event_ts"] < cutoff].copy()
    # Calendar days before the snapshot (1 = the day before), as the Spark features count.
    before["age_days"] = (cutoff - before["event_ts"].dt.floor("D")).dt.days
    before["revenue"] = np.where(
        before["event_type"] == "purchase", before["price"] * before["quantity"], 0.0
    )
    before["day"] = before["event_ts"].dt.floor("D")
    users = before.groupby("user_id")
    out = pd.DataFrame(
        {
            "recency_days": users["age_days"].min(),
            "tenure_days": users["age_days"].max(),
            "sessions_total": users["session_id"].nunique(),
            "active_days_total": users["day"].nunique(),
            "revenue_total": users["revenue"].sum(),
        }
    )
    for window in (*WINDOWS, None):
        rows = before if window is None else before[before["age_days"] <= window]
        suffix = "total" if window is None else f"{window}d"
        for measure, event_type in CORE_MEASURES.items():
            chosen = rows if event_type is None else rows[rows["event_type"] == event_type]
            out[f"{measure}_{suffix}"] = chosen.groupby("user_id").size()
        if window is not None:
            out[f"revenue_{suffix}"] = rows.groupby("user_id")["revenue"].sum()
    out = out.fillna(0.0)
    out["avg_order_value"] = out["revenue_total"] / out["orders_total"].where(
        out["orders_total"] > 0
    )
    return out.fillna(0.0)


def pandas_peer(landing: Path, as_of: dt.date) -> dict[str, float]:
    """Read, features at the snapshot and 30 days before, KMeans and LogisticRegression."""
    from sklearn.cluster import KMeans
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    phases: dict[str, float] = {}
    events = _timed(phases, "read", lambda: read_raw_events(landing))
    current = _timed(phases, "features", lambda: pandas_features(events, as_of))
    train_date = as_of - dt.timedelta(days=LABEL_DAYS)

    def fit() -> None:
        scaled = StandardScaler().fit_transform(current.to_numpy())
        KMeans(n_clusters=5, n_init=3, random_state=7).fit(scaled)
        past = pandas_features(events, train_date)
        future = events[
            (events["event_type"] == "purchase")
            & (events["event_ts"] >= str(train_date))
            & (events["event_ts"] < str(as_of))
        ]
        label = past.index.isin(future["user_id"].unique())
        inputs = StandardScaler().fit_transform(past.to_numpy())
        LogisticRegression(max_iter=200, class_weight="balanced").fit(inputs, label)

    _timed(phases, "models", fit)
    phases["users"] = float(len(current))
    return phases


def duckdb_features_sql(files: Sequence[str], as_of: dt.date) -> str:
    """The core features in DuckDB SQL over the silver events' Parquet files."""
    cutoff = f"TIMESTAMPTZ '{as_of} 00:00:00+00'"
    age = f"date_diff('day', CAST(event_ts AS DATE), DATE '{as_of}')"
    revenue = "CASE WHEN event_type = 'purchase' THEN price * quantity ELSE 0 END"
    columns = [
        f"min({age}) AS recency_days",
        f"max({age}) AS tenure_days",
        "count(DISTINCT session_id) AS sessions_total",
        "count(DISTINCT CAST(event_ts AS DATE)) AS active_days_total",
        f"sum({revenue}) AS revenue_total",
    ]
    for window in (*WINDOWS, None):
        suffix = "total" if window is None else f"{window}d"
        within = "TRUE" if window is None else f"{age} <= {window}"
        for measure, event_type in CORE_MEASURES.items():
            test = within if event_type is None else f"{within} AND event_type = '{event_type}'"
            columns.append(f"count(*) FILTER (WHERE {test}) AS {measure}_{suffix}")
        if window is not None:
            columns.append(f"sum({revenue}) FILTER (WHERE {within}) AS revenue_{suffix}")
    columns.append(
        "sum(" + revenue + ") / nullif(count(*) FILTER (WHERE event_type = 'purchase'), 0)"
        " AS avg_order_value"
    )
    listed = ", ".join(f"'{f}'" for f in files)
    return (
        f"SELECT user_key, {', '.join(columns)} FROM read_parquet([{listed}]) "
        f"WHERE event_ts < {cutoff} AND user_key IS NOT NULL GROUP BY user_key"
    )


def duckdb_peer(silver: Path, as_of: dt.date) -> dict[str, float]:
    """DuckDB computing the core features from the silver Delta table's current files."""
    import duckdb
    from deltalake import DeltaTable

    phases: dict[str, float] = {}
    files = _timed(phases, "list files", lambda: DeltaTable(str(silver)).file_uris())
    sql = duckdb_features_sql(files, as_of)
    with duckdb.connect() as db:
        db.execute("SET TimeZone = 'UTC'")
        users = _timed(
            phases, "features", lambda: db.execute(f"SELECT count(*) FROM ({sql})").fetchone()
        )
    phases["users"] = float(users[0]) if users else 0.0
    return phases


def _timed(phases: dict[str, float], name: str, run: Callable[[], Any]) -> Any:
    start = time.perf_counter()
    result = run()
    phases[name] = round(time.perf_counter() - start, 2)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m userprofile.dev.peers")
    parser.add_argument("peer", choices=("pandas", "duckdb"))
    parser.add_argument("--landing", type=Path, help="raw landing folder (pandas)")
    parser.add_argument("--silver", type=Path, help="silver events Delta table (duckdb)")
    parser.add_argument("--as-of", type=dt.date.fromisoformat, required=True)
    args = parser.parse_args(argv)
    if args.peer == "pandas":
        phases = pandas_peer(args.landing, args.as_of)
    else:
        phases = duckdb_peer(args.silver, args.as_of)
    print(json.dumps(phases), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
