"""Where trained models live and which one serves a snapshot.

A model version is the run id of the training run. Both models of a version are
saved under ``storage.models/<model>/<version>``; ``model_metrics`` records every
version with its snapshot date, and ``segment_summary`` its segments.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass

from pyspark.ml import PipelineModel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from userprofile.config import Settings
from userprofile.errors import MissingInputError
from userprofile.io import locations, tables
from userprofile.io.context import RunContext
from userprofile.models import segmentation as seg

MODELS = ("segmentation", "propensity")


def model_path(settings: Settings, model: str, version: str) -> str:
    return locations.join(settings.storage.models, f"{model}/{version}")


def load_model(ctx: RunContext, model: str, version: str) -> PipelineModel:
    return PipelineModel.load(model_path(ctx.settings, model, version))


def save_model(ctx: RunContext, model: str, fitted: PipelineModel) -> None:
    fitted.write().overwrite().save(model_path(ctx.settings, model, ctx.run_id))


def config_hash(settings: Settings) -> str:
    """Hash of the settings that shape the models (features, segmentation, propensity)."""
    relevant = {
        "features": settings.features.model_dump(),
        "segmentation": settings.segmentation.model_dump(),
        "propensity": settings.propensity.model_dump(),
    }
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


def newest_model(ctx: RunContext, as_of: dt.date) -> tuple[str, dt.date] | None:
    """(version, snapshot date) of the newest training run for a snapshot on or before ``as_of``."""
    if not tables.exists(ctx.spark, ctx.table("model_metrics")):
        return None
    newest = (
        ctx.read("model_metrics")
        .where(F.col("snapshot_date") <= F.lit(as_of))
        .orderBy(F.col("snapshot_date").desc(), F.col("trained_at").desc())
        .select("run_id", "snapshot_date")
        .limit(1)
        .collect()
    )
    return (str(newest[0]["run_id"]), newest[0]["snapshot_date"]) if newest else None


def latest_model_version(ctx: RunContext, as_of: dt.date) -> str:
    """The newest training run for a snapshot on or before ``as_of``; an error if none."""
    newest = newest_model(ctx, as_of)
    if newest is None:
        raise MissingInputError(
            f"no trained models for a snapshot on or before {as_of}: run `userprofile train` first"
        )
    return newest[0]


@dataclass(frozen=True)
class History:
    """Days of events behind a snapshot, against the days that training on it needs.

    The propensity model trains on the snapshot ``label_days`` before ``as_of``, and
    that snapshot needs events before it: at least ``label_days + 1`` days from the
    first event to ``as_of``. With fewer, no model can be trained yet.
    """

    as_of: dt.date
    first_event: dt.date | None
    needed_days: int

    @property
    def days(self) -> int:
        return 0 if self.first_event is None else (self.as_of - self.first_event).days

    @property
    def enough(self) -> bool:
        return self.days >= self.needed_days

    @property
    def first_trainable(self) -> dt.date | None:
        """The first snapshot date with enough history (None without events)."""
        if self.first_event is None:
            return None
        return self.first_event + dt.timedelta(days=self.needed_days)

    def shortfall(self) -> str:
        """What is missing and when it will not be, for a message."""
        needs = f"training needs {self.needed_days} days of history"
        if self.first_event is None:
            return f"{needs} and there are no events yet"
        return (
            f"{needs}, there are {self.days} (first event {self.first_event}), "
            f"enough from --as-of {self.first_trainable}"
        )


def history(settings: Settings, features: DataFrame, as_of: dt.date) -> History:
    """The history behind a snapshot, from its features (one aggregate row)."""
    row = features.agg(F.max("days_since_first_event")).first()
    oldest = row[0] if row is not None else None
    first = None if oldest is None else as_of - dt.timedelta(days=int(oldest))
    return History(as_of, first, settings.propensity.label_days + 1)


def recent_model(
    ctx: RunContext, as_of: dt.date, retrain_after_days: int
) -> tuple[str, dt.date] | None:
    """The newest model if it is younger than ``retrain_after_days`` at ``as_of``."""
    if retrain_after_days <= 0:
        return None
    newest = newest_model(ctx, as_of)
    if newest is None or is_due(newest[1], as_of, retrain_after_days):
        return None
    return newest


def is_due(trained_on: dt.date, as_of: dt.date, retrain_after_days: int) -> bool:
    """Whether a model trained on ``trained_on`` should be replaced at ``as_of``."""
    return retrain_after_days <= 0 or (as_of - trained_on).days >= retrain_after_days


def registered_versions(ctx: RunContext) -> list[str]:
    """Every model version ``model_metrics`` records (a few per week of training)."""
    if not tables.exists(ctx.spark, ctx.table("model_metrics")):
        return []
    rows = ctx.read("model_metrics").select("model_version").distinct().collect()
    return [str(r["model_version"]) for r in rows]


def forget_unregistered_summaries(ctx: RunContext) -> int:
    """Delete ``segment_summary`` rows of versions ``model_metrics`` never registered (a
    training run killed between the two writes); how many rows were deleted."""
    summary = ctx.table("segment_summary")
    if not tables.exists(ctx.spark, summary):
        return 0
    registered = registered_versions(ctx)
    if not registered:
        return tables.delete_where(ctx.spark, summary, "true")
    condition = "NOT array_contains(:registered, model_version)"
    return tables.delete_where(ctx.spark, summary, condition, {"registered": registered})


def previous_segments(ctx: RunContext) -> list[seg.Segment]:
    """The live segments of the newest model in ``segment_summary`` (none on a first run)."""
    ref = ctx.table("segment_summary")
    if not tables.exists(ctx.spark, ref):
        return []
    summary = tables.read(ctx.spark, ref)
    newest = summary.orderBy(F.col("trained_at").desc()).select("model_version").limit(1).collect()
    if not newest:
        return []
    rows = (
        summary.where(F.col("model_version") == newest[0]["model_version"])
        .where(F.col("status") != seg.STATUS_RETIRED)
        .collect()  # one row per segment
    )
    if any(list(r["input_names"]) != seg.segment_inputs() for r in rows):
        return []  # the inputs changed: centres are not comparable, start afresh
    return [
        seg.Segment(r["segment_id"], r["segment_name"], tuple(r["centre_inputs"])) for r in rows
    ]
