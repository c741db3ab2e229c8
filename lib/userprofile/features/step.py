"""`userprofile features`: the daily roll-up (``silver/user_day``) -> ``user_features`` for one
snapshot date. Events are not read: the roll-up holds every measure per day and session."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from userprofile.features.build import USER_SCHEMA, features_from_user_days
from userprofile.ingest.identity import stitched
from userprofile.ingest.user_days import stored_user_days
from userprofile.io import tables
from userprofile.io.context import RunContext, StepReport, Stopwatch
from userprofile.io.faults import kill_point
from userprofile.io.queries import snapshot


def compute_features(ctx: RunContext, as_of: dt.date) -> DataFrame:
    """Features as of ``as_of`` from the roll-up, without writing them."""
    cfg = ctx.settings.features
    date_only = tuple(
        name
        for name, source in ctx.settings.ingest.sources.items()
        if source.timestamp_precision == "date"
    )
    build = features_from_user_days(
        as_of, cfg.windows_days, cfg.night_hours, cfg.affinity_top_n, date_only
    )
    return build(stitched_user_days(ctx, as_of), crm_users(ctx))


def stitched_user_days(ctx: RunContext, known_before: dt.date) -> DataFrame:
    """The roll-up with devices attributed to users who logged in before a date."""
    days = stored_user_days(ctx)
    identities = ctx.table("silver_identities")
    if not tables.exists(ctx.spark, identities):
        return days
    return days.transform(stitched(tables.read(ctx.spark, identities), known_before))


def crm_users(ctx: RunContext) -> DataFrame:
    """Silver users; none when no CRM export was ever ingested (the attributes stay null)."""
    users = ctx.table("silver_users")
    if tables.exists(ctx.spark, users):
        return tables.read(ctx.spark, users)
    return ctx.spark.createDataFrame([], USER_SCHEMA)


def run_features(ctx: RunContext, as_of: dt.date) -> StepReport:
    clock = Stopwatch()
    target = ctx.table("user_features")
    # A release that adds features adds columns; older snapshots read them as null.
    tables.replace_partition(
        compute_features(ctx, as_of), target, "snapshot_date", as_of, add_columns=True
    )
    kill_point("features.after_write")
    written = snapshot(tables.read(ctx.spark, target), as_of)
    # Rows in: the events behind the features (lifetime counts), from the small output.
    row = written.agg(F.count(F.lit(1)).alias("users"), F.sum("events_total")).first()
    users, events = (int(row[0]), int(row[1] or 0)) if row is not None else (0, 0)
    return StepReport(
        "features", {"user_features rows": users}, clock.seconds(), rows_in=events, rows_out=users
    )


def stored_or_built(ctx: RunContext, as_of: dt.date) -> DataFrame:
    """The stored features of a snapshot, computed and stored first if there are none."""
    target = ctx.table("user_features")
    if tables.exists(ctx.spark, target):
        stored = snapshot(tables.read(ctx.spark, target), as_of)
        if stored.limit(1).count() > 0:
            return stored
    run_features(ctx, as_of)
    return snapshot(tables.read(ctx.spark, target), as_of)
