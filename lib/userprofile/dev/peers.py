"""The bench's peers: what a user might run instead, on the same data, in a child process.

* ``pandas``: the seed documents' single-machine approach. Read the raw JSON
  lines with the standard library, keep the events ingest would accept (its
  checks that JSON events can fail, once per event id), per-user features with
  pandas, then scikit-learn's StandardScaler, KMeans and LogisticRegression
  (label: a purchase in the 30 days after the training snapshot, as the pipeline's).
  Unlike ingest, it does not sessionise events without a session id (the
  generator's all have one) and takes an anonymous id's first login over all
  deliveries (silver's identity map keeps the first delivery's).
* ``duckdb`` (``peer_duckdb``) and ``polars`` (``peer_polars``): the same features
  from the silver tables the pipeline wrote (the Parquet files of the Delta
  tables' current versions: the Spark features step's columnar input).

Every peer computes ``CORE_COLUMNS`` with the product's definitions
(``userprofile.features.build``): events before the snapshot, anonymous events
attributed through logins seen before it, windows by the session's start date
(``session_date >= as_of - w``), orders as distinct order ids per session,
revenue net of cancels, tenure from the CRM signup date when earlier, and a row
for every CRM user signed up before the snapshot. Each peer materialises every
feature inside its timed section and writes them to ``--out`` (Parquet) after
it, so the bench can check them against the product's ``user_features``. The
Spark step computes ~50 more (trends, rates, habits, category and channel maps).
Run as ``python -m userprofile.dev.peers pandas|duckdb|polars ...``; prints one
JSON line of phase timings.
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

from userprofile.ingest.fields import EVENT_TYPES

WINDOWS = (7, 30, 90)
# measure -> event type counted per session (None: every event).
COUNTED = {
    "events": None,
    "product_views": "product_view",
    "searches": "search",
    "carts": "add_to_cart",
}
# Plus orders (distinct order ids of a session's purchases; lines without one are one order)
# and revenue (purchases' price x coalesce(quantity, 1), less cancelled lines').
WINDOWED = (*COUNTED, "orders", "revenue")
SUFFIXES = (*[f"{w}d" for w in WINDOWS], "total")
CORE_COLUMNS = (
    "user_key",
    *[f"{m}_{s}" for m in WINDOWED for s in SUFFIXES],
    "sessions_total",
    "active_days_total",
    "recency_days",
    "tenure_days",
    "avg_order_value",
)
# Rounded to cents by every engine (Spark rounds half up, numpy and DuckDB may differ at .005).
MONEY_COLUMNS = (*[f"revenue_{s}" for s in SUFFIXES], "avg_order_value")
# ingest.records' limits on a valid event (the defaults of conf/base.yaml).
MAX_PRICE = 100_000.0
MAX_QUANTITY = 1000
FUTURE_TOLERANCE = dt.timedelta(hours=24)
RAW_FIELDS = (
    "event_id",
    "user_id",
    "anonymous_id",
    "session_id",
    "order_id",
    "event_type",
    "event_ts",
    "price",
    "quantity",
)
ID_FIELDS = ("event_id", "user_id", "anonymous_id", "session_id", "order_id")
LABEL_DAYS = 30


# ---------------------------------------------------------------- pandas


def _lines(landing: Path) -> Iterator[str]:
    for path in sorted((landing / "events").rglob("part-*")):
        with path.open(encoding="utf-8") as handle:
            yield from handle


def read_raw_events(landing: Path) -> Any:
    """Raw JSON lines -> the events ingest accepts (see ``valid_events``), as pandas."""
    import pandas as pd

    rows = []
    for line in _lines(landing):
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            rows.append(tuple(record.get(f) for f in RAW_FIELDS))
    return valid_events(pd.DataFrame.from_records(rows, columns=list(RAW_FIELDS)))


def valid_events(frame: Any) -> Any:
    """Rows that pass ingest's checks (a blank id is none), one per event id and date."""
    import pandas as pd

    for column in ID_FIELDS:
        text = frame[column].where(frame[column].isna(), frame[column].astype(str).str.strip())
        frame[column] = text.where(text != "")
    ts = pd.to_datetime(frame["event_ts"], errors="coerce", utc=True, format="ISO8601")
    price = pd.to_numeric(frame["price"], errors="coerce")
    quantity = pd.to_numeric(frame["quantity"], errors="coerce")
    bad_number = (frame["price"].notna() & price.isna()) | (
        frame["quantity"].notna() & quantity.isna()
    )
    horizon = pd.Timestamp.now(tz="UTC") + FUTURE_TOLERANCE
    priced_type = frame["event_type"].isin(["add_to_cart", "purchase", "cancel"])
    valid = (
        frame["event_id"].notna()
        & (frame["user_id"].notna() | frame["anonymous_id"].notna())
        & ~bad_number
        & ts.notna()
        & (ts <= horizon)
        & frame["event_type"].isin(EVENT_TYPES)
        & ~(price < 0)
        & ~(price > MAX_PRICE)
        & ~((quantity < 1) | (quantity > MAX_QUANTITY))
        & ~(priced_type & price.isna())
    )
    out = frame.assign(event_ts=ts, price=price, quantity=quantity)[valid]
    out = out.assign(event_date=out["event_ts"].dt.floor("D"))
    return out.drop_duplicates(subset=["event_id", "event_date"]).drop(columns="event_date")


def read_crm(folder: Path | None) -> Any:
    """The CRM export's ``user_id, signup_date`` (the newest file wins per user)."""
    import pandas as pd

    files = sorted(folder.rglob("*.csv")) if folder is not None and folder.exists() else []
    parts = [pd.read_csv(f, usecols=["user_id", "signup_date"], dtype=str) for f in files]
    if not parts:
        return pd.DataFrame({"user_id": [], "signup_date": []})
    crm = pd.concat(parts).dropna(subset=["user_id"]).drop_duplicates("user_id", keep="last")
    crm["signup_date"] = pd.to_datetime(crm["signup_date"], errors="coerce").dt.date
    return crm


def pandas_features(events: Any, as_of: dt.date, crm: Any = None) -> Any:
    """``CORE_COLUMNS`` per user (indexed by raw ``user_id``) as of ``as_of``, with pandas."""
    import numpy as np
    import pandas as pd

    cutoff = pd.Timestamp(as_of, tz="UTC")
    # Identity stitching: an anonymous id's first login (before the snapshot) names its user.
    both = events[events["user_id"].notna() & events["anonymous_id"].notna()]
    logins = both.sort_values("event_ts", kind="stable").drop_duplicates("anonymous_id")
    logins = logins[logins["event_ts"] < cutoff].set_index("anonymous_id")["user_id"]
    user = events["user_id"].fillna(events["anonymous_id"].map(logins))
    before = events.assign(user=user)[(events["event_ts"] < cutoff) & user.notna()]
    kind = before["event_type"]
    line = before["price"] * before["quantity"].fillna(1)
    sessions = before.assign(
        **{m: (kind == t) if t else 1 for m, t in COUNTED.items()},
        order=before["order_id"].fillna("").where(kind == "purchase"),
        revenue=np.where(kind == "purchase", line, np.where(kind == "cancel", -line, np.nan)),
    ).groupby(["user", "session_id"], dropna=False, sort=False)
    per_session = sessions.agg(
        start=("event_ts", "min"),
        **{m: (m, "sum") for m in COUNTED},
        orders=("order", "nunique"),
        revenue=("revenue", "sum"),
    ).reset_index()
    per_session["day"] = per_session["start"].dt.tz_convert("UTC").dt.date
    users = per_session.groupby("user")
    out = pd.DataFrame(
        {
            "sessions_total": users.size(),
            "active_days_total": users["day"].nunique(),
            "first_day": users["day"].min(),
            "last_day": users["day"].max(),
        }
    )
    for window in (*WINDOWS, None):
        rows = per_session
        if window is not None:
            rows = per_session[per_session["day"] >= as_of - dt.timedelta(days=window)]
        suffix = "total" if window is None else f"{window}d"
        sums = rows.groupby("user")[list(WINDOWED)].sum()
        for measure in WINDOWED:
            out[f"{measure}_{suffix}"] = sums[measure]
    return _finish_pandas(out, _known_users(crm, as_of), as_of)


def _known_users(crm: Any, as_of: dt.date) -> Any:
    import pandas as pd

    if crm is None or len(crm) == 0:
        return pd.Series([], dtype=object, name="signup_date")
    known = crm[crm["signup_date"].notna() & (crm["signup_date"] < as_of)]
    return known.set_index("user_id")["signup_date"]


def _finish_pandas(out: Any, signup: Any, as_of: dt.date) -> Any:
    import pandas as pd

    out = out.join(signup, how="outer")
    counts = [f"{m}_{s}" for m in WINDOWED for s in SUFFIXES]
    out[[*counts, "sessions_total", "active_days_total"]] = out[
        [*counts, "sessions_total", "active_days_total"]
    ].fillna(0)
    for column in MONEY_COLUMNS[:-1]:
        out[column] = out[column].round(2)
    orders = out["orders_total"].where(out["orders_total"] > 0)
    out["avg_order_value"] = (out["revenue_total"] / orders).round(2)
    day = pd.Timestamp(as_of)
    first = pd.concat(
        [pd.to_datetime(out["first_day"]), pd.to_datetime(out["signup_date"])], axis=1
    ).min(axis=1)
    out["recency_days"] = (day - pd.to_datetime(out["last_day"])).dt.days
    out["tenure_days"] = (day - first).dt.days
    out.index.name = "user_id"
    return out[list(CORE_COLUMNS[1:])]


def pandas_peer(
    landing: Path, crm_folder: Path | None, as_of: dt.date, out: Path
) -> dict[str, float]:
    """Read, features at the snapshot and 30 days before, KMeans and LogisticRegression."""
    from sklearn.cluster import KMeans
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    phases: dict[str, float] = {}
    events, crm = _timed(phases, "read", lambda: (read_raw_events(landing), read_crm(crm_folder)))
    current = _timed(phases, "features", lambda: pandas_features(events, as_of, crm))
    train_date = as_of - dt.timedelta(days=LABEL_DAYS)

    def fit() -> None:
        scaled = StandardScaler().fit_transform(current.fillna(0.0).to_numpy())
        KMeans(n_clusters=5, n_init=3, random_state=7).fit(scaled)
        past = pandas_features(events, train_date, crm)
        future = events[
            (events["event_type"] == "purchase")
            & (events["event_ts"] >= str(train_date))
            & (events["event_ts"] < str(as_of))
        ]
        label = past.index.isin(future["user_id"].unique())
        inputs = StandardScaler().fit_transform(past.fillna(0.0).to_numpy())
        LogisticRegression(max_iter=200, class_weight="balanced").fit(inputs, label)

    _timed(phases, "models", fit)
    phases["users"] = float(len(current))
    current.reset_index().to_parquet(out, index=False)
    return phases


# ---------------------------------------------------------------- shared


def delta_files(table: Path | None) -> list[str]:
    """The Parquet files of a Delta table's current version (removed files are not listed);
    none for a missing table. Deletion vectors would hide rows the files still hold: refused."""
    from deltalake import DeltaTable

    if table is None or not (table / "_delta_log").exists():
        return []
    delta = DeltaTable(str(table))
    if "deletionVectors" in (delta.protocol().reader_features or []):
        raise ValueError(f"{table} uses deletion vectors: its files alone are not its rows")
    return list(delta.file_uris())


def _timed(phases: dict[str, float], name: str, run: Callable[[], Any]) -> Any:
    start = time.perf_counter()
    result = run()
    phases[name] = round(time.perf_counter() - start, 2)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m userprofile.dev.peers")
    parser.add_argument("peer", choices=("pandas", "duckdb", "polars"))
    parser.add_argument("--landing", type=Path, help="raw landing folder of events (pandas)")
    parser.add_argument("--crm", type=Path, help="CRM export folder (pandas)")
    parser.add_argument("--events", type=Path, help="silver events Delta table")
    parser.add_argument("--identities", type=Path, help="silver identities Delta table")
    parser.add_argument("--users", type=Path, help="silver users Delta table")
    parser.add_argument("--as-of", type=dt.date.fromisoformat, required=True)
    parser.add_argument("--out", type=Path, required=True, help="features written here (Parquet)")
    args = parser.parse_args(argv)
    phases: dict[str, float] = {}
    if args.peer == "pandas":
        phases = pandas_peer(args.landing, args.crm, args.as_of, args.out)
    else:
        silver = (args.events, args.identities, args.users)
        events, identities, users = _timed(
            phases, "list files", lambda: [delta_files(t) for t in silver]
        )
        if args.peer == "duckdb":
            from userprofile.dev.peer_duckdb import duckdb_peer as peer
        else:
            from userprofile.dev.peer_polars import polars_peer as peer
        phases.update(peer(events, identities, users, args.as_of, args.out))
    print(json.dumps(phases), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
