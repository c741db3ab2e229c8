"""`userprofile features`: silver -> ``user_features`` for one snapshot date."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from userprofile import tables
from userprofile.features import user_features
from userprofile.ingest import stitched
from userprofile.steps.common import RunContext, StepReport, Stopwatch


def stitched_events(ctx: RunContext, known_before: dt.date) -> DataFrame:
    """Silver events with anonymous activity attributed to users who logged in before a date."""
    events = ctx.read("silver_events")
    identities = ctx.table("silver_identities")
    if not tables.exists(ctx.spark, identities):
        return events
    return events.transform(stitched(tables.read(ctx.spark, identities), known_before))


def compute_features(ctx: RunContext, as_of: dt.date) -> DataFrame:
    """Features as of ``as_of`` from silver, without writing them."""
    cfg = ctx.settings.features
    build = user_features(as_of, cfg.windows_days, cfg.night_hours, cfg.affinity_top_n)
    return build(stitched_events(ctx, as_of), ctx.read("silver_users"))


def run_features(ctx: RunContext, as_of: dt.date) -> StepReport:
    clock = Stopwatch()
    target = ctx.table("user_features")
    # A release that adds features adds columns; older snapshots read them as null.
    tables.replace_partition(
        compute_features(ctx, as_of), target, "snapshot_date", as_of, add_columns=True
    )
    written = tables.read(ctx.spark, target).where(f"snapshot_date = DATE'{as_of}'")
    # Rows in: the events behind the features (lifetime counts), from the small output.
    row = written.agg(F.count(F.lit(1)).alias("users"), F.sum("events_total")).first()
    users, events = (int(row[0]), int(row[1] or 0)) if row is not None else (0, 0)
    return StepReport(
        "features", {"user_features rows": users}, clock.seconds(), rows_in=events, rows_out=users
    )
