"""The DuckDB peer: ``CORE_COLUMNS`` in SQL over the silver tables' Parquet files.

The same definitions as ``userprofile.features.build`` (see ``peers``): events
before the snapshot, stitched through the identity map, rolled up per session
(its start date places it in the windows), then per user, then joined with the
CRM users signed up before the snapshot. The whole result is materialised
(``CREATE TABLE``) inside the timed section: a ``count(*)`` over the query would
let DuckDB drop every aggregate the count does not need.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

from userprofile.dev.peers import COUNTED, SUFFIXES, WINDOWED, WINDOWS, _timed


def _parquet(files: Sequence[str]) -> str:
    listed = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
    return f"read_parquet([{listed}], union_by_name = true)"


def duckdb_features_sql(
    events: Sequence[str],
    as_of: dt.date,
    identities: Sequence[str] = (),
    users: Sequence[str] = (),
    has_order_id: bool = True,
) -> str:
    """The core features in DuckDB SQL (run with ``SET TimeZone = 'UTC'``)."""
    cutoff = f"TIMESTAMPTZ '{as_of} 00:00:00+00'"
    day0 = f"DATE '{as_of}'"
    logins = (
        f"SELECT anonymous_key, user_key FROM {_parquet(identities)} WHERE first_seen < {cutoff}"
        if identities
        else "SELECT NULL::VARCHAR AS anonymous_key, NULL::VARCHAR AS user_key WHERE FALSE"
    )
    known = (
        f"SELECT user_key, signup_date FROM {_parquet(users)} WHERE signup_date < {day0}"
        if users
        else "SELECT NULL::VARCHAR AS user_key, NULL::DATE AS signup_date WHERE FALSE"
    )
    order = "coalesce(e.order_id, '')" if has_order_id else "''"
    line = "e.price * coalesce(e.quantity, 1)"
    per_session = [
        "CAST(min(e.event_ts) AS DATE) AS day",
        *[
            f"count(*) FILTER (WHERE e.event_type = '{t}') AS {m}" if t else f"count(*) AS {m}"
            for m, t in COUNTED.items()
        ],
        f"count(DISTINCT {order}) FILTER (WHERE e.event_type = 'purchase') AS orders",
        f"coalesce(sum(CASE WHEN e.event_type = 'purchase' THEN {line} "
        f"WHEN e.event_type = 'cancel' THEN -{line} END), 0) AS revenue",
    ]
    per_user = ["count(*) AS sessions_total", "count(DISTINCT day) AS active_days_total"]
    per_user += ["min(day) AS first_day", "max(day) AS last_day"]
    finished = []
    for measure in WINDOWED:
        for window, suffix in zip((*WINDOWS, None), SUFFIXES, strict=True):
            name = f"{measure}_{suffix}"
            within = "" if window is None else f" FILTER (WHERE day >= {_day(as_of, window)})"
            per_user.append(f"sum({measure}){within} AS {name}")
            total = f"coalesce(b.{name}, 0)"
            finished.append(
                f"round({total}, 2) AS {name}"
                if measure == "revenue"
                else f"CAST({total} AS BIGINT) AS {name}"
            )
    finished += [
        *[
            f"CAST(coalesce(b.{c}, 0) AS BIGINT) AS {c}"
            for c in ("sessions_total", "active_days_total")
        ],
        f"date_diff('day', b.last_day, {day0}) AS recency_days",
        f"date_diff('day', least(k.signup_date, b.first_day), {day0}) AS tenure_days",
        "round(round(coalesce(b.revenue_total, 0), 2) / nullif(b.orders_total, 0), 2)"
        " AS avg_order_value",
    ]
    return f"""
WITH logins AS ({logins}),
known AS ({known}),
sessions AS (
  SELECT coalesce(e.user_key, i.user_key) AS user_key, e.session_id, {", ".join(per_session)}
  FROM {_parquet(events)} e LEFT JOIN logins i ON e.anonymous_key = i.anonymous_key
  WHERE e.event_ts < {cutoff} AND coalesce(e.user_key, i.user_key) IS NOT NULL
  GROUP BY 1, 2
),
behaviour AS (SELECT user_key, {", ".join(per_user)} FROM sessions GROUP BY user_key)
SELECT coalesce(b.user_key, k.user_key) AS user_key, {", ".join(finished)}
FROM behaviour b FULL JOIN known k ON b.user_key = k.user_key
"""


def _day(as_of: dt.date, days: int) -> str:
    return f"DATE '{as_of - dt.timedelta(days=days)}'"


def duckdb_peer(
    events: list[str], identities: list[str], users: list[str], as_of: dt.date, out: Path
) -> dict[str, float]:
    """DuckDB computing and materialising the core features, then writing them to ``out``."""
    import duckdb

    phases: dict[str, float] = {}
    with duckdb.connect() as db:
        db.execute("SET TimeZone = 'UTC'")
        columns = {
            r[0] for r in db.execute(f"DESCRIBE SELECT * FROM {_parquet(events)}").fetchall()
        }
        sql = duckdb_features_sql(events, as_of, identities, users, "order_id" in columns)
        _timed(phases, "features", lambda: db.execute(f"CREATE TABLE feats AS {sql}"))
        row = db.execute("SELECT count(*) FROM feats").fetchone()
        copy = f"COPY feats TO '{out}' (FORMAT parquet)"
        _timed(phases, "write", lambda: db.execute(copy))
    phases["users"] = float(row[0]) if row else 0.0
    return phases
