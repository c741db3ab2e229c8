"""`userprofile profile`: score a snapshot's features and write its ``user_profile`` partition."""

from __future__ import annotations

import datetime as dt

from pyspark.ml import PipelineModel
from pyspark.sql import functions as F

from userprofile import tables
from userprofile.contract import PROFILE_PARTITION_COLUMN
from userprofile.errors import MissingInputError
from userprofile.profile import assemble_profile, with_deciles
from userprofile.propensity import score_propensity
from userprofile.segmentation import score_segments
from userprofile.steps.common import RunContext, StepReport, Stopwatch
from userprofile.steps.tag_rules import check_tag_rules
from userprofile.steps.train import latest_model_version, model_path

DECILE_RELATIVE_ERROR = 0.001


def run_profile(ctx: RunContext, as_of: dt.date) -> StepReport:
    clock = Stopwatch()
    settings = ctx.settings
    features = ctx.read("user_features").where(F.col("snapshot_date") == F.lit(as_of))
    check_tag_rules(ctx.spark, features, settings.tags)
    version = latest_model_version(ctx, as_of)
    segmentation = PipelineModel.load(model_path(ctx, "segmentation", version))
    propensity = PipelineModel.load(model_path(ctx, "propensity", version))
    # Propensity first: a hybrid propensity model adds its own segment columns internally.
    scored = score_segments(segmentation, score_propensity(propensity, features)).cache()
    cutpoints = scored.approxQuantile(
        "purchase_propensity_30d", [i / 10 for i in range(1, 10)], DECILE_RELATIVE_ERROR
    )
    if not cutpoints:
        raise MissingInputError(
            f"user_features has no rows for snapshot {as_of}: run `userprofile features` first"
        )
    profile = scored.transform(with_deciles(cutpoints)).transform(
        assemble_profile(
            settings.lifecycle,
            settings.tags,
            run_id=ctx.run_id,
            segmentation_version=version,
            propensity_version=version,
            computed_at=dt.datetime.now(dt.timezone.utc).replace(tzinfo=None),
        )
    )
    target = ctx.table("user_profile")
    # Contract changes within a version are additive: new columns are added to the table.
    tables.replace_partition(profile, target, PROFILE_PARTITION_COLUMN, as_of, add_columns=True)
    scored.unpersist()
    written = tables.read(ctx.spark, target).where(F.col(PROFILE_PARTITION_COLUMN) == F.lit(as_of))
    report = StepReport("profile", {"user_profile rows": written.count()}, clock.seconds())
    segments = written.groupBy("segment_id", "segment_name").count().orderBy("segment_id")
    for row in segments.collect():  # k rows
        report.rows[f"segment {row['segment_id']} {row['segment_name']}"] = row["count"]
    for row in written.groupBy("lifecycle_stage").count().orderBy("lifecycle_stage").collect():
        report.rows[f"lifecycle {row['lifecycle_stage']}"] = row["count"]
    return report
