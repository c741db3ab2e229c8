"""Lifecycle stages: the rule, its explanation for one user, and flows between snapshots."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame, Row
from pyspark.sql import functions as F

from userprofile.config import LifecycleConfig

# Lifecycle stage of a user absent from one of the two snapshots.
NOT_YET = "(not yet a user)"
GONE = "(no longer a user)"
LIFECYCLE_STAGES = ("prospect", "new", "reactivated", "active", "at_risk", "churned")


def lifecycle_stage(cfg: LifecycleConfig) -> Column:
    """The first matching stage, in the order of ``LIFECYCLE_STAGES``.

    reactivated: bought within ``active_days`` after a gap: the purchase before
    that window was more than ``churn_days`` before the snapshot.
    """
    last = F.col("days_since_last_purchase")
    first = F.col("days_since_first_purchase")
    previous = F.col("days_since_purchase_before_30d")
    return (
        F.when(last.isNull(), F.lit("prospect"))
        .when(first <= cfg.new_days, F.lit("new"))
        .when((last <= cfg.active_days) & (previous > cfg.churn_days), F.lit("reactivated"))
        .when(last <= cfg.active_days, F.lit("active"))
        .when(last <= cfg.churn_days, F.lit("at_risk"))
        .otherwise(F.lit("churned"))
    )


def explain_lifecycle(cfg: LifecycleConfig, features: Row) -> str:
    """Why ``lifecycle_stage`` is what it is, in the words of its rule (see ``lifecycle_stage``)."""
    last = features["days_since_last_purchase"]
    first = features["days_since_first_purchase"]
    before = features["days_since_purchase_before_30d"]
    if last is None:
        return "prospect: never purchased"
    if first <= cfg.new_days:
        return f"new: first purchase {first} days ago (new within {cfg.new_days})"
    if last <= cfg.active_days and before is not None and before > cfg.churn_days:
        return (
            f"reactivated: bought {last} days ago after a gap (the purchase before that was "
            f"{before} days ago, more than churn_days {cfg.churn_days})"
        )
    if last <= cfg.active_days:
        return f"active: last purchase {last} days ago (active within {cfg.active_days})"
    if last <= cfg.churn_days:
        return (
            f"at_risk: last purchase {last} days ago (more than active_days {cfg.active_days}, "
            f"not more than churn_days {cfg.churn_days})"
        )
    return f"churned: last purchase {last} days ago (more than churn_days {cfg.churn_days})"


def lifecycle_transitions(
    current: DataFrame, previous: DataFrame | None, as_of: dt.date, previous_date: dt.date | None
) -> DataFrame:
    """(from stage, to stage, users) between the previous snapshot and this one.

    Users only in one of the two appear as coming from ``NOT_YET`` or going to
    ``GONE``; on the first snapshot every user comes from ``NOT_YET``.
    """
    now = current.select("user_key", F.col("lifecycle_stage").alias("to_stage"))
    if previous is None:
        flows = now.withColumn("from_stage", F.lit(NOT_YET))
    else:
        before = previous.select("user_key", F.col("lifecycle_stage").alias("from_stage"))
        flows = before.join(now, "user_key", "full").select(
            F.coalesce("from_stage", F.lit(NOT_YET)).alias("from_stage"),
            F.coalesce("to_stage", F.lit(GONE)).alias("to_stage"),
        )
    return (
        flows.groupBy("from_stage", "to_stage")
        .agg(F.count(F.lit(1)).alias("users"))
        .select(
            F.lit(as_of).alias("snapshot_date"),
            F.lit(previous_date).cast("date").alias("previous_snapshot_date"),
            "from_stage",
            "to_stage",
            "users",
        )
    )
