"""Reads that several stages share, each written once: snapshots by date, stitched events."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from userprofile.errors import MissingInputError
from userprofile.ingest.identity import stitched
from userprofile.io import tables
from userprofile.io.context import RunContext

SNAPSHOT = "snapshot_date"


def newest_date(
    frame: DataFrame,
    *,
    on_or_before: dt.date | None = None,
    before: dt.date | None = None,
    column: str = SNAPSHOT,
) -> dt.date | None:
    """The largest ``column`` on or before / strictly before a date (or overall); None if none.

    One aggregate row reaches the driver.
    """
    if on_or_before is not None:
        frame = frame.where(F.col(column) <= F.lit(on_or_before))
    if before is not None:
        frame = frame.where(F.col(column) < F.lit(before))
    row = frame.agg(F.max(column)).first()
    return row[0] if row is not None else None


def snapshot(frame: DataFrame, day: dt.date, column: str = SNAPSHOT) -> DataFrame:
    """One snapshot's rows (a partition filter, so other snapshots are not read)."""
    return frame.where(F.col(column) == F.lit(day))


def snapshot_on_or_before(ctx: RunContext, key: str, as_of: dt.date) -> tuple[dt.date, DataFrame]:
    """The newest snapshot of table ``key`` on or before ``as_of``, and its rows."""
    table = ctx.read(key)
    day = newest_date(table, on_or_before=as_of)
    if day is None:
        raise MissingInputError(f"no {key} snapshot on or before {as_of}")
    return day, snapshot(table, day)


def stored_features(ctx: RunContext, day: dt.date) -> DataFrame:
    """The ``user_features`` rows of one snapshot; a clear error if that snapshot is missing."""
    features = snapshot(ctx.read("user_features"), day)
    if features.limit(1).count() == 0:
        raise MissingInputError(
            f"user_features has no rows for snapshot {day}: "
            f"run `userprofile features --as-of {day}` first"
        )
    return features


def stitched_events(ctx: RunContext, known_before: dt.date) -> DataFrame:
    """Silver events with anonymous activity attributed to users who logged in before a date."""
    events = ctx.read("silver_events")
    identities = ctx.table("silver_identities")
    if not tables.exists(ctx.spark, identities):
        return events
    return events.transform(stitched(tables.read(ctx.spark, identities), known_before))
