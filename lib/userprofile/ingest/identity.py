"""Identity stitching: anonymous activity attributed to the user who later logged in."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from pyspark.sql import DataFrame
from pyspark.sql import functions as F


def new_identities(silver_events: DataFrame) -> DataFrame:
    """anonymous_key -> user_key pairs seen on the same event (a login), first seen first."""
    pairs = silver_events.where(F.col("user_key").isNotNull() & F.col("anonymous_key").isNotNull())
    return pairs.groupBy("anonymous_key").agg(
        F.min_by("user_key", "event_ts").alias("user_key"), F.min("event_ts").alias("first_seen")
    )


def stitched(
    identities: DataFrame, known_before: dt.date | None = None
) -> Callable[[DataFrame], DataFrame]:
    """Events with ``user_key`` filled from the identity map where only the anonymous key is known.

    Applied when silver is read (not by rewriting silver), so a late login costs
    one join at read time rather than an UPDATE over all history. With
    ``known_before``, only logins seen before that date count, so a snapshot
    does not learn identities from its future.
    """

    def transform(events: DataFrame) -> DataFrame:
        usable = identities
        if known_before is not None:
            usable = identities.where(F.col("first_seen") < F.lit(known_before))
        known = usable.select("anonymous_key", F.col("user_key").alias("_stitched_key"))
        return (
            events.join(known, "anonymous_key", "left")
            .withColumn("user_key", F.coalesce("user_key", "_stitched_key"))
            .drop("_stitched_key")
        )

    return transform
