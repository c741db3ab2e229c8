"""`userprofile export` and `userprofile lookup`: the profile for people who don't use Spark.

export: an audience (filters on tags, segments, lifecycle, propensity decile) as
CSV or Parquet for a marketing tool, keyed by the pseudonymous ``user_key``;
raw ids only when the caller supplies the CRM export to re-identify against.

lookup: one user's profile with the reasons: which rule produced each tag,
why the lifecycle stage, what the segment's centre looks like.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from userprofile.config.rules import referenced_columns
from userprofile.errors import MissingInputError
from userprofile.ingest.privacy import hmac_sha256_hex, pseudonym_key
from userprofile.io.context import RunContext, StepReport, Stopwatch
from userprofile.io.queries import snapshot, snapshot_on_or_before
from userprofile.profile.lifecycle import explain_lifecycle

EXPORT_COLUMNS = (
    "user_key",
    "snapshot_date",
    "segment_id",
    "segment_name",
    "lifecycle_stage",
    "rfm_segment",
    "tags",
    "purchase_propensity_30d",
    "propensity_decile",
    "predicted_value",
    "next_best_categories",
)


@dataclass(frozen=True)
class AudienceFilter:
    """All given conditions must hold (tags: every listed tag)."""

    tags: list[str] = field(default_factory=list)
    segments: list[int] = field(default_factory=list)
    stages: list[str] = field(default_factory=list)
    min_decile: int | None = None

    def condition(self) -> Column:
        holds: Column = F.lit(True)
        for tag in self.tags:
            holds = holds & F.array_contains("tags", tag)
        if self.segments:
            holds = holds & F.col("segment_id").isin(*self.segments)
        if self.stages:
            holds = holds & F.col("lifecycle_stage").isin(*self.stages)
        if self.min_decile is not None:
            holds = holds & (F.col("propensity_decile") >= self.min_decile)
        return holds


def run_export(
    ctx: RunContext,
    as_of: dt.date,
    audience: AudienceFilter,
    out: str,
    output_format: str,
    reidentify_from: str | None,
) -> StepReport:
    clock = Stopwatch()
    day, snapshot = snapshot_on_or_before(ctx, "user_profile", as_of)
    chosen = snapshot.where(audience.condition()).select(*EXPORT_COLUMNS)
    if reidentify_from is not None:
        chosen = chosen.join(_raw_ids(ctx, reidentify_from), "user_key", "left")
    if output_format == "csv":  # CSV has no arrays: lists are joined with |
        chosen = chosen.withColumns(
            {c: F.concat_ws("|", c) for c in ("tags", "next_best_categories")}
        )
        writer = chosen.coalesce(1).write.mode("overwrite").option("header", "true")
        writer.csv(out)
    else:
        chosen.coalesce(1).write.mode("overwrite").parquet(out)
    users = ctx.spark.read.parquet(out).count() if output_format == "parquet" else None
    if users is None:
        users = ctx.spark.read.option("header", "true").csv(out).count()
    rows: dict[str, int | float | str] = {"snapshot": str(day), "users": users, "written to": out}
    if reidentify_from is not None:
        rows["raw user ids"] = "included (re-identified from " + reidentify_from + ")"
    return StepReport("export", rows, clock.seconds())


def _raw_ids(ctx: RunContext, crm_csv: str) -> DataFrame:
    """user_key -> user_id from a CRM export, with the pseudonymisation key."""
    key = pseudonym_key(ctx.settings)
    crm = ctx.spark.read.option("header", "true").csv(crm_csv)
    if "user_id" not in crm.columns:
        raise MissingInputError(f"{crm_csv}: no user_id column to re-identify with")
    return crm.select(hmac_sha256_hex(key, F.col("user_id")).alias("user_key"), "user_id")


# ---------------------------------------------------------------- lookup


def run_lookup(ctx: RunContext, as_of: dt.date, user: str, pseudonymous: bool) -> StepReport:
    clock = Stopwatch()
    day, profiles = snapshot_on_or_before(ctx, "user_profile", as_of)
    key_column = (
        F.lit(user) if pseudonymous else hmac_sha256_hex(pseudonym_key(ctx.settings), F.lit(user))
    )
    profile = profiles.where(F.col("user_key") == key_column).first()
    if profile is None:
        raise MissingInputError(f"user {user} is not in the profile of {day}")
    features = (
        snapshot(ctx.read("user_features"), day)
        .where(F.col("user_key") == profile["user_key"])
        .first()
    )
    if features is None:
        raise MissingInputError(f"user {user} has no user_features row for {day}")
    scored = profile["segmentation_model_version"] is not None
    no_model = "none: no model was trained on or before this snapshot"
    rows: dict[str, int | float | str] = {
        "user_key": profile["user_key"],
        "snapshot": str(day),
        "segment": f"{profile['segment_id']} {profile['segment_name']}" if scored else no_model,
        "lifecycle": explain_lifecycle(ctx.settings.lifecycle, features),
        "propensity (30 days)": f"{profile['purchase_propensity_30d']:.3f} "
        f"(decile {profile['propensity_decile']})"
        if profile["purchase_propensity_30d"] is not None
        else no_model,
        "RFM": f"r {profile['r_score']} f {profile['f_score']} m {profile['m_score']} "
        f"-> {profile['rfm_segment']}",
        "predicted value": str(profile["predicted_value"]),
        "next best categories": ", ".join(profile["next_best_categories"]),
        "tags": ", ".join(profile["tags"]) or "(none)",
    }
    values = {**features.asDict(), **profile.asDict()}
    for rule in ctx.settings.tags:
        used = ", ".join(f"{c} = {values.get(c)}" for c in sorted(referenced_columns(rule.rule)))
        verdict = "yes" if rule.name in profile["tags"] else "no"
        rows[f"tag {rule.name}"] = f"{verdict}: {rule.rule}  [{used}]"
    rows["model versions"] = (
        f"segmentation {profile['segmentation_model_version']}, "
        f"propensity {profile['propensity_model_version']}"
    )
    rows["computed"] = f"{profile['computed_at']} by run {profile['run_id']}"
    return StepReport("lookup", rows, clock.seconds())
