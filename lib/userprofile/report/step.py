"""`userprofile report`: one self-contained HTML file describing a profile snapshot.

Spark aggregates every input (segment sizes, metrics, transitions, tag counts,
quarantine counts, events per day, drift bins) and samples at most
``PROJECTION_SAMPLE`` users for the 2-D scatter; only those small results
reach the driver, where matplotlib draws them.
"""

from __future__ import annotations

import datetime as dt
import os
from typing import cast

import pandas as pd
from pyspark.ml.feature import PCA
from pyspark.ml.functions import vector_to_array
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from userprofile.errors import ConfigError, MissingInputError
from userprofile.features.catalog import CENTRE_COLUMNS
from userprofile.io import locations
from userprofile.io.context import RunContext, StepReport, Stopwatch
from userprofile.io.queries import newest_date, snapshot
from userprofile.models.registry import load_model
from userprofile.models.segmentation import PREFIX
from userprofile.report import drift
from userprofile.report.render import ReportData, render

PROJECTION_SAMPLE = 3000
DAILY_EVENTS_DAYS = 90


def run_report(ctx: RunContext, as_of: dt.date, out: str | None = None) -> StepReport:
    clock = Stopwatch()
    folder = _output_folder(ctx, out)
    data = report_data(ctx, as_of)
    path = os.path.join(folder, f"user_profile_report_{as_of}.html")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(render(data))
    significant = [d.feature for d in data.drift if d.verdict == "significant"]
    return StepReport(
        "report",
        {
            "users": data.overview["users"],
            "segments": len(data.segments),
            "compared with": str(data.previous or "no earlier snapshot"),
            "drifted features (PSI > 0.25)": ", ".join(significant) or "none",
            "report": path,
        },
        clock.seconds(),
    )


def report_data(ctx: RunContext, as_of: dt.date) -> ReportData:
    """Everything the report (or a notebook) shows about a snapshot, aggregated by Spark."""
    profiles = ctx.read("user_profile")
    current = snapshot(profiles, as_of)
    overview = _overview(current, as_of)
    previous_date = newest_date(profiles, before=as_of)
    features = ctx.read("user_features")
    current_features = snapshot(features, as_of)
    segments = _segments(ctx, current, overview["segmentation model version"])
    # The profile has a row per user of the features snapshot: its size sets the sample.
    x_y, explained = _projection(
        ctx, current_features, overview["segmentation model version"], int(segments.users.sum())
    )
    metrics = _model_metrics(ctx, overview["propensity model version"])
    data = ReportData(
        as_of=as_of,
        previous=previous_date,
        overview={**overview, "previous snapshot": str(previous_date or "none")},
        segments=segments,
        projection=x_y,
        explained_variance=explained,
        roc=_roc(metrics),
        lift=_lift(metrics),
        model_quality=_quality(metrics),
        transitions=_snapshot_rows(
            ctx, "lifecycle_transitions", as_of, ["from_stage", "to_stage", "users"]
        ),
        tags=_snapshot_rows(ctx, "tag_counts", as_of, ["tag", "users", "share"]),
        quarantine=_quarantine(ctx),
        ingest_totals=_ingest_totals(ctx),
        daily_events=_daily_events(ctx, as_of),
    )
    if previous_date is not None:
        previous = snapshot(profiles, previous_date)
        previous_features = snapshot(features, previous_date)
        data.drift = drift.feature_drift(previous_features, current_features, list(CENTRE_COLUMNS))
        data.share_shifts = _share_shifts(ctx, previous, current, previous_date, as_of)
    return data


def small(frame: DataFrame) -> pd.DataFrame:
    """Bring an aggregate (or a bounded sample) to the driver as pandas."""
    return cast(pd.DataFrame, frame.toPandas())


def _output_folder(ctx: RunContext, out: str | None) -> str:
    chosen = out or ctx.settings.storage.reports
    folder = locations.local_path(chosen)
    if folder is None:
        raise ConfigError(
            f"report folder {chosen!r} must be a local or mounted path "
            "(e.g. /Volumes/..., /dbfs/..., file:///...), not an object-store URI: "
            "set storage.reports or --out"
        )
    os.makedirs(folder, exist_ok=True)
    return folder


def _overview(current: DataFrame, as_of: dt.date) -> dict[str, str]:
    row = current.agg(
        F.count(F.lit(1)).alias("users"),
        F.first("segmentation_model_version").alias("seg"),
        F.first("propensity_model_version").alias("prop"),
        F.first("run_id").alias("run_id"),
        F.avg("purchase_propensity_30d").alias("propensity"),
        F.sum("predicted_value").alias("value"),
    ).first()
    if row is None or not row["users"]:
        raise MissingInputError(
            f"user_profile has no rows for snapshot {as_of}: "
            f"run `userprofile profile --as-of {as_of}` first"
        )
    if row["seg"] is None:
        raise MissingInputError(
            f"the snapshot {as_of} was profiled without models (too little history to "
            "train), and the report shows the models: report a snapshot from the first "
            "date with enough history on; the profile's other columns are in the table"
        )
    return {
        "snapshot": str(as_of),
        "users": f"{row['users']:,}",
        "profile run": str(row["run_id"]),
        "segmentation model version": str(row["seg"]),
        "propensity model version": str(row["prop"]),
        "mean 30-day purchase propensity": f"{row['propensity'] or 0:.3f}",
        "predicted value, all users": f"{row['value'] or 0:,.0f}",
        "report written at": f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC",
    }


def newest_snapshot(ctx: RunContext) -> dt.date:
    """The latest snapshot date of the profile table."""
    newest = newest_date(ctx.read("user_profile"))
    if newest is None:
        raise MissingInputError("user_profile has no snapshots yet: run `userprofile pipeline`")
    return newest


def _segments(ctx: RunContext, current: DataFrame, version: str) -> pd.DataFrame:
    """Users per segment in this snapshot with the trained centre (medians) of each."""
    sizes = current.groupBy("segment_id", "segment_name").agg(F.count(F.lit(1)).alias("users"))
    summary = (
        ctx.read("segment_summary")
        .where(F.col("model_version") == F.lit(version))
        .select("segment_id", *[F.col("centre")[c].alias(c) for c in CENTRE_COLUMNS])
    )
    frame = small(sizes.join(summary, "segment_id", "left").orderBy("segment_id"))
    frame.insert(3, "share", (frame["users"] / frame["users"].sum()).round(4))
    return frame


def _projection(
    ctx: RunContext, features: DataFrame, version: str, users: int
) -> tuple[pd.DataFrame, tuple[float, float]]:
    """A bounded sample of users on two principal components of the segmentation inputs."""
    if users == 0:
        return pd.DataFrame(columns=["x", "y", "segment_id"]), (0.0, 0.0)
    sample = features.sample(fraction=min(1.0, PROJECTION_SAMPLE / users), seed=7)
    model = load_model(ctx, "segmentation", version)
    scaled = model.transform(sample).select(f"{PREFIX}_scaled", "segment_id").cache()
    pca = PCA(k=2, inputCol=f"{PREFIX}_scaled", outputCol="pc").fit(scaled)
    points = small(
        pca.transform(scaled)
        .select(vector_to_array(F.col("pc")).alias("pc"), "segment_id")
        .select(F.col("pc")[0].alias("x"), F.col("pc")[1].alias("y"), "segment_id")
        .limit(PROJECTION_SAMPLE)
    )
    scaled.unpersist()
    variance = pca.explainedVariance.toArray()
    return points, (float(variance[0]), float(variance[1]))


def _model_metrics(ctx: RunContext, version: str) -> pd.DataFrame:
    # A few hundred rows: one training run's metrics.
    return small(
        ctx.read("model_metrics")
        .where((F.col("run_id") == F.lit(version)) & F.col("model").isin("propensity", "baseline"))
        .select("model", "metric", "slice", "value")
    )


def _roc(metrics: pd.DataFrame) -> pd.DataFrame:
    points = metrics[metrics["metric"].isin(["roc_fpr", "roc_tpr"])]
    if points.empty:
        return pd.DataFrame({"fpr": [0.0, 1.0], "tpr": [0.0, 1.0]})
    wide = points.pivot_table(index="slice", columns="metric", values="value").sort_index()
    return wide.rename(columns={"roc_fpr": "fpr", "roc_tpr": "tpr"}).reset_index(drop=True)


def _lift(metrics: pd.DataFrame) -> pd.DataFrame:
    wanted = {"lift": "lift", "decile_users": "users", "decile_purchasers": "purchasers"}
    rows = metrics[(metrics["model"] == "propensity") & metrics["metric"].isin(list(wanted))]
    wide = rows.pivot_table(index="slice", columns="metric", values="value").rename(columns=wanted)
    wide["decile"] = [int(s.split("=")[1]) for s in wide.index]
    return wide.reset_index(drop=True).sort_values("decile")


def _quality(metrics: pd.DataFrame) -> dict[str, float]:
    plain = metrics[metrics["slice"] == ""]
    values = {
        f"{'baseline_' if m == 'baseline' else ''}{k}": float(v)
        for m, k, v in zip(plain["model"], plain["metric"], plain["value"], strict=True)
    }
    shown = ("auc_roc", "auc_pr", "brier", "precision", "recall", "f1", "threshold")
    return {k: round(v, 4) for k, v in values.items() if k in shown or k.startswith("baseline_")}


def _snapshot_rows(ctx: RunContext, key: str, as_of: dt.date, columns: list[str]) -> pd.DataFrame:
    return small(snapshot(ctx.read(key), as_of).select(*columns))


def _quarantine(ctx: RunContext) -> pd.DataFrame:
    return small(  # one row per reason code
        ctx.read("bronze_quarantine")
        .groupBy("reason_code", "reason")
        .agg(F.count(F.lit(1)).alias("rows"))
    )


def _ingest_totals(ctx: RunContext) -> dict[str, int]:
    log = ctx.read("ingest_log")
    # A reprocess removes what its files produced before, then counts them again.
    removed = {
        c: F.coalesce(F.col(c), F.lit(0)) if c in log.columns else F.lit(0)
        for c in ("accepted_removed", "quarantined_removed")
    }
    row = log.agg(
        (F.sum("accepted") - F.sum(removed["accepted_removed"])).alias("accepted into bronze"),
        (F.sum("quarantined") - F.sum(removed["quarantined_removed"])).alias("quarantined"),
        F.sum("suppressed").alias("dropped by an erasure request"),
        F.countDistinct("run_id").alias("ingest runs"),
    ).first()
    return {k: int(v or 0) for k, v in (row.asDict() if row is not None else {}).items()}


def _daily_events(ctx: RunContext, as_of: dt.date) -> pd.DataFrame:
    first = as_of - dt.timedelta(days=DAILY_EVENTS_DAYS)
    return small(  # one row per day
        ctx.read("silver_events")
        .where((F.col("event_date") >= F.lit(first)) & (F.col("event_date") < F.lit(as_of)))
        .groupBy("event_date")
        .agg(F.count(F.lit(1)).alias("events"))
        .orderBy("event_date")
    )


def _share_shifts(
    ctx: RunContext,
    previous: DataFrame,
    current: DataFrame,
    previous_date: dt.date,
    as_of: dt.date,
) -> pd.DataFrame:
    rows = []
    for dimension, column in (("segment", "segment_name"), ("lifecycle stage", "lifecycle_stage")):
        for value, before, now in drift.share_shift(previous, current, column):
            rows.append((dimension, value, before, now))
    tags = small(
        ctx.read("tag_counts")
        .where(F.col("snapshot_date").isin(previous_date, as_of))
        .select("snapshot_date", "tag", "share")
    )
    for tag, group in tags.groupby("tag"):
        shares = dict(zip(group["snapshot_date"], group["share"], strict=True))
        rows.append(("tag", str(tag), shares.get(previous_date, 0.0), shares.get(as_of, 0.0)))
    frame = pd.DataFrame(
        rows, columns=["dimension", "value", f"share {previous_date}", f"share {as_of}"]
    )
    frame["change"] = frame[f"share {as_of}"] - frame[f"share {previous_date}"]
    return frame.round(4)
