"""Keeping ``silver/user_day`` (``userprofile.features.user_day``) equal to the roll-up of
silver events: after each batch, the dates it touched are rebuilt from silver.

A date silver already held is rebuilt whole from silver, not patched with the batch's
rows: silver's MERGE already dropped re-sent events, so the rebuilt rows count every event
once, late data included. A date silver had no event of before the batch (a new day, the
usual case) holds exactly the batch's rows of that date, so those are rolled up from the
batch instead of read back from silver. The first refresh of a warehouse that has silver
but no roll-up (one written before the roll-up existed) builds it from all of silver.

Erasure: a rebuild reads silver, and ``userprofile erase`` may delete a user from silver
and from the roll-up between that read and the rebuild's commit. So after its commit a
rebuild reads the suppression list afresh and deletes the rebuilt rows of any key on it
(the argument of ``userprofile.ingest.erasures``: a user suppressed before that read is
removed here, one suppressed after it is removed by erase's own deletes, which follow).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass
from functools import reduce

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from userprofile.features.user_day import user_day_rows
from userprofile.io import tables
from userprofile.io.context import RunContext

USER_DAY = "silver_user_day"
# The roll-up's rows of an erased key (values are rows of a MERGE's source, as in erase).
_ERASED_ROWS = {
    "user": "t.user_key = s.value",
    "anonymous": "t.user_key IS NULL AND t.anonymous_key = s.value",
}


@dataclass(frozen=True)
class MergedBatch:
    """A batch's silver rows and what silver held before they were merged into it."""

    rows: DataFrame
    # Dates silver had no event of before the merge, all of whose ``rows`` it inserted:
    # silver's rows of them are ``rows``'.
    new_dates: frozenset[dt.date]
    # Silver did not exist before the merge: it holds exactly ``rows``.
    first: bool


def silver_before(ctx: RunContext, dates: Collection[dt.date]) -> tuple[frozenset[dt.date], bool]:
    """Called before a batch of ``dates`` is merged into silver: which of them silver has no
    event of, and whether silver does not exist at all."""
    silver = ctx.table("silver_events")
    if not tables.exists(ctx.spark, silver):
        return frozenset(dates), True
    # Only the partition column of the batch's dates: file metadata, no event is read.
    held = tables.read(ctx.spark, silver).where(F.col("event_date").isin(sorted(dates)))
    found = {r["event_date"] for r in held.select("event_date").distinct().collect()}
    return frozenset(set(dates) - found), False


def refresh_user_days(
    ctx: RunContext, dates: Collection[dt.date], batch: MergedBatch | None = None
) -> None:
    """Rebuild the roll-up rows of ``dates`` (all of them if there is no roll-up) from
    silver, or from ``batch`` (just merged into silver) where it holds all of a date."""
    silver, target = ctx.table("silver_events"), ctx.table(USER_DAY)
    if not tables.exists(ctx.spark, silver):
        return
    events = tables.read(ctx.spark, silver)
    if not tables.exists(ctx.spark, target):
        whole = batch.rows if batch is not None and batch.first else events
        tables.overwrite(user_day_rows(whole), target, ["event_date"])
        _remove_suppressed(ctx, tables.read(ctx.spark, target))
        return
    if not dates:
        return
    new = set(batch.new_dates) & set(dates) if batch is not None else set()
    sources = [events.where(F.col("event_date").isin(sorted(set(dates) - new)))]
    if batch is not None and new:
        sources.append(batch.rows.where(F.col("event_date").isin(sorted(new))))
    rows = reduce(DataFrame.unionByName, [user_day_rows(s) for s in sources])
    tables.replace_dates(rows, target, "event_date", dates)
    on_dates = F.col("event_date").isin(sorted(dates))
    _remove_suppressed(ctx, tables.read(ctx.spark, target).where(on_dates))


def stored_user_days(ctx: RunContext) -> DataFrame:
    """The roll-up, built from silver first if this warehouse has none yet."""
    target = ctx.table(USER_DAY)
    if not tables.exists(ctx.spark, target):
        refresh_user_days(ctx, ())
    if not tables.exists(ctx.spark, target):  # no silver either: no events yet
        return user_day_rows(ctx.spark.createDataFrame([], SILVER_SHAPE))
    return tables.read(ctx.spark, target)


# Silver's columns, for an empty roll-up when there are no events yet.
SILVER_SHAPE = (
    "event_id string, event_ts timestamp, event_date date, user_key string, "
    "anonymous_key string, session_id string, order_id string, event_type string, "
    "product_id string, category string, price double, quantity int, device string, "
    "channel string, source string"
)


def _remove_suppressed(ctx: RunContext, rebuilt: DataFrame) -> None:
    """Delete the rebuilt rows of keys on the suppression list (normally none)."""
    ref = ctx.table("erasure_suppression")
    if not tables.exists(ctx.spark, ref):
        return
    suppressed = tables.read(ctx.spark, ref).select(F.col("key").alias("value"), "kind")
    keys = F.coalesce("user_key", "anonymous_key")
    present = rebuilt.select(keys.alias("value")).distinct().join(suppressed, "value")
    found: dict[str, list[str]] = {}
    for row in present.collect():  # erased keys among the rebuilt rows: a handful at most
        found.setdefault(str(row["kind"]), []).append(str(row["value"]))
    if found:
        tables.delete_by_values(ctx.spark, ctx.table(USER_DAY), _ERASED_ROWS, found)
