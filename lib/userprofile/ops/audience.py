"""`userprofile export` and `userprofile lookup`: the profile for people who don't use Spark.

export: an audience (filters on tags, segments, lifecycle, propensity decile) as
CSV or Parquet for a marketing tool, keyed by the pseudonymous ``user_key``;
raw ids only when the caller supplies the CRM export to re-identify against.
Exports are written under ``storage.exports`` and listed in the export manifest,
so that ``userprofile erase`` can find them and rewrite them without the erased.

lookup: one user's profile with the reasons: which rule produced each tag,
why the lifecycle stage, what the segment's centre looks like.
"""

from __future__ import annotations

import datetime as dt
import os
import posixpath
import uuid
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from pyspark.sql import Column, DataFrame, Row, SparkSession
from pyspark.sql import functions as F

from userprofile.config import Settings
from userprofile.config.rules import referenced_columns
from userprofile.errors import ConfigError, MissingInputError
from userprofile.ingest.privacy import hmac_sha256_hex, pseudonym, pseudonym_key
from userprofile.io import locations, tables
from userprofile.io.context import RunContext, StepReport, Stopwatch, utc_now
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
MANIFEST_SCHEMA = (
    "export_id string, location string, format string, snapshot_date date, "
    "raw_ids boolean, users bigint, exported_at timestamp, run_id string"
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
    location = export_location(ctx.settings, out)  # refused before anything is read
    day, snapshot = snapshot_on_or_before(ctx, "user_profile", as_of)
    chosen = snapshot.where(audience.condition()).select(*EXPORT_COLUMNS)
    if reidentify_from is not None:
        chosen = chosen.join(_raw_ids(ctx, reidentify_from), "user_key", "left")
    if output_format == "csv":  # CSV has no arrays: lists are joined with |
        chosen = chosen.withColumns(
            {c: F.concat_ws("|", c) for c in ("tags", "next_best_categories")}
        )
    users = chosen.count()
    # Listed before it is written: erase finds an export even if the write stops half way.
    export_id = uuid.uuid4().hex
    listed = (export_id, location, output_format, day, reidentify_from is not None, users)
    manifest = ctx.spark.createDataFrame([(*listed, utc_now(), ctx.run_id)], MANIFEST_SCHEMA)
    tables.append(manifest, ctx.table("export_manifest"))
    write_export(chosen, output_format, location)
    rows: dict[str, int | float | str] = {
        "snapshot": str(day),
        "users": users,
        "written to": location,
        "export id": export_id,
    }
    if reidentify_from is not None:
        rows["raw user ids"] = "included (re-identified from " + reidentify_from + ")"
    return StepReport("export", rows, clock.seconds())


def export_location(settings: Settings, out: str) -> str:
    """Where ``export --out`` writes: a relative ``out`` under ``storage.exports``; an
    absolute path or URI only if it lies inside that folder."""
    root = settings.storage.exports
    location = locations.join(root, out)
    if not _inside(location, root):
        raise ConfigError(
            f"--out {out}: not inside storage.exports ({root}). Give a name under that "
            "folder: erase rewrites the exports it lists there, and cannot find one elsewhere"
        )
    return location


def _inside(location: str, root: str) -> bool:
    """Whether ``location`` lies strictly below ``root``, on the same file system."""
    (place, path), (root_place, root_path) = _canonical(location), _canonical(root)
    return place == root_place and path.startswith(root_path.rstrip("/") + "/")


def _canonical(location: str) -> tuple[str, str]:
    """(file system, normalised path): a local path and its ``file:`` URI are one place."""
    local = locations.local_path(location)
    if local is not None:
        return "", os.path.normpath(local)
    parts = urlsplit(location)
    return f"{parts.scheme.lower()}://{parts.netloc}", posixpath.normpath(parts.path or "/")


def write_export(frame: DataFrame, output_format: str, location: str) -> None:
    """One file in ``location`` (replacing what was there), as a marketing tool reads it."""
    writer = frame.coalesce(1).write.mode("overwrite")
    if output_format == "csv":
        writer.option("header", "true").csv(location)
    else:
        writer.parquet(location)


def read_export(spark: SparkSession, output_format: str, location: str) -> DataFrame:
    if output_format == "csv":
        return spark.read.option("header", "true").csv(location)
    return spark.read.parquet(location)


def scrub_exports(ctx: RunContext, key: bytes, user_keys: list[str]) -> list[str]:
    """Rewrite every listed export that still exists and holds rows of these users,
    without those rows; return the ids of the exports rewritten."""
    ref = ctx.table("export_manifest")
    if not user_keys or not tables.exists(ctx.spark, ref):
        return []
    rewritten = []
    for export in _latest_exports(tables.read(ctx.spark, ref)):
        if _scrub(ctx.spark, key, user_keys, export):
            rewritten.append(str(export["export_id"]))
    return rewritten


def _latest_exports(manifest: DataFrame) -> list[Row]:
    """The newest manifest row per location: a later export to a place replaced the former."""
    newest: dict[tuple[str, str], Row] = {}
    for row in manifest.orderBy("exported_at").collect():  # one row per export run
        newest[_canonical(row["location"])] = row
    return list(newest.values())


def _scrub(spark: SparkSession, key: bytes, user_keys: list[str], export: Row) -> bool:
    """Rewrite one export without the users' rows; whether it held any."""
    location, output_format = str(export["location"]), str(export["format"])
    if not tables.path_exists(spark, location):
        return False  # deleted by its owner since
    frame = read_export(spark, output_format, location)
    if "user_key" not in frame.columns:
        return False  # not an export any more (another format was written there)
    erased = F.col("user_key").isin(user_keys)
    if "user_id" in frame.columns:
        # A raw id is compared by its key, so no raw id enters the query plan.
        erased = erased | hmac_sha256_hex(key, F.col("user_id")).isin(user_keys)
    erased = F.coalesce(erased, F.lit(False))
    if frame.where(erased).limit(1).count() == 0:
        return False
    # Materialised first: the rewrite replaces the very files it reads.
    write_export(frame.where(~erased).localCheckpoint(), output_format, location)
    return True


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
    # Hashed here, so the query holds the key, not the raw id.
    user_key = user if pseudonymous else pseudonym(pseudonym_key(ctx.settings), user)
    profile = profiles.where(F.col("user_key") == F.lit(user_key)).first()
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
