"""The Polars peer: ``CORE_COLUMNS`` with a lazy scan of the silver tables' Parquet files.

The same definitions as ``userprofile.features.build`` (see ``peers``); the query
is planned lazily and ``collect()``, inside the timed section, materialises every
feature. Timestamps are compared by their UTC date (``event_ts < as_of 00:00 UTC``
is ``date(event_ts) < as_of``), whether the files store them with a zone or not.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

from userprofile.dev.peers import COUNTED, SUFFIXES, WINDOWED, WINDOWS, _timed

if TYPE_CHECKING:
    import polars as pl


def _scan(files: list[str]) -> pl.LazyFrame:
    import polars as pl

    # Files of an older schema lack the columns added since: read as null, as Delta does.
    return pl.scan_parquet(files, hive_partitioning=False, missing_columns="insert")


def polars_features(
    events: pl.LazyFrame,
    as_of: dt.date,
    identities: pl.LazyFrame | None = None,
    users: pl.LazyFrame | None = None,
) -> pl.LazyFrame:
    """The core features of silver ``events`` (with the identity map and CRM users) at ``as_of``."""
    import polars as pl

    before = events.filter(pl.col("event_ts").dt.date() < as_of)
    if identities is not None:
        logins = identities.filter(pl.col("first_seen").dt.date() < as_of).select(
            "anonymous_key", pl.col("user_key").alias("_stitched")
        )
        before = before.join(logins, on="anonymous_key", how="left").with_columns(
            pl.coalesce("user_key", "_stitched").alias("user_key")
        )
    before = before.filter(pl.col("user_key").is_not_null())
    kind = pl.col("event_type")
    has_order = "order_id" in events.collect_schema().names()
    order = pl.col("order_id").fill_null("") if has_order else pl.lit("")
    line = pl.col("price") * pl.col("quantity").fill_null(1)
    net = pl.when(kind == "purchase").then(line).when(kind == "cancel").then(-line)
    sessions = before.group_by("user_key", "session_id").agg(
        pl.col("event_ts").min().dt.date().alias("day"),
        *[
            ((kind == t).sum() if t else pl.len()).cast(pl.Int64).alias(m)
            for m, t in COUNTED.items()
        ],
        pl.when(kind == "purchase").then(order).drop_nulls().n_unique().alias("orders"),
        net.sum().alias("revenue"),
    )
    per_user = [
        pl.len().cast(pl.Int64).alias("sessions_total"),
        pl.col("day").n_unique().cast(pl.Int64).alias("active_days_total"),
        pl.col("day").min().alias("first_day"),
        pl.col("day").max().alias("last_day"),
    ]
    for window, suffix in zip((*WINDOWS, None), SUFFIXES, strict=True):
        for measure in WINDOWED:
            chosen = pl.col(measure)
            if window is not None:
                chosen = chosen.filter(pl.col("day") >= as_of - dt.timedelta(days=window))
            per_user.append(chosen.sum().alias(f"{measure}_{suffix}"))
    behaviour = sessions.group_by("user_key").agg(per_user)
    if users is not None:
        known = users.filter(pl.col("signup_date") < as_of).select("user_key", "signup_date")
        behaviour = behaviour.join(known, on="user_key", how="full", coalesce=True)
    else:
        behaviour = behaviour.with_columns(pl.lit(None, pl.Date).alias("signup_date"))
    return _finish(behaviour, as_of)


def _finish(behaviour: pl.LazyFrame, as_of: dt.date) -> pl.LazyFrame:
    import polars as pl

    # Spark's round is half up (away from zero); Polars' default is half to even.
    def cents(column: pl.Expr) -> pl.Expr:
        return column.round(2, mode="half_away_from_zero")

    counted = [f"{m}_{s}" for m in WINDOWED if m != "revenue" for s in SUFFIXES]
    revenue = [f"revenue_{s}" for s in SUFFIXES]
    day0 = pl.lit(as_of)
    return behaviour.with_columns(
        *[pl.col(c).fill_null(0).cast(pl.Int64) for c in counted],
        *[pl.col(c).fill_null(0) for c in ("sessions_total", "active_days_total")],
        *[cents(pl.col(c).fill_null(0.0).cast(pl.Float64)) for c in revenue],
    ).select(
        "user_key",
        *[f"{m}_{s}" for m in WINDOWED for s in SUFFIXES],
        "sessions_total",
        "active_days_total",
        (day0 - pl.col("last_day")).dt.total_days().alias("recency_days"),
        (day0 - pl.min_horizontal("signup_date", "first_day")).dt.total_days().alias("tenure_days"),
        cents(
            pl.when(pl.col("orders_total") > 0).then(
                pl.col("revenue_total") / pl.col("orders_total")
            )
        ).alias("avg_order_value"),
    )


def polars_peer(
    events: list[str], identities: list[str], users: list[str], as_of: dt.date, out: Path
) -> dict[str, float]:
    """Polars computing (``collect()``) the core features, then writing them to ``out``."""
    query = polars_features(
        _scan(events),
        as_of,
        _scan(identities) if identities else None,
        _scan(users) if users else None,
    )
    phases: dict[str, float] = {}
    result = _timed(phases, "features", query.collect)
    _timed(phases, "write", lambda: result.write_parquet(out))
    phases["users"] = float(result.height)
    return phases
