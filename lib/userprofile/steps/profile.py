"""`userprofile profile`: score a snapshot's features and write its ``user_profile`` partition."""

from __future__ import annotations

import datetime as dt

from pyspark.ml import PipelineModel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from userprofile import tables
from userprofile.config import TagRule
from userprofile.contract import PROFILE_PARTITION_COLUMN
from userprofile.errors import ConfigError, MissingInputError
from userprofile.models import score_propensity, score_segments
from userprofile.profile import assemble_profile, with_deciles
from userprofile.steps.common import RunContext, StepReport, Stopwatch
from userprofile.steps.train import latest_model_version, model_path

DECILE_RELATIVE_ERROR = 0.001


def check_tag_rules(spark: SparkSession, features: DataFrame, rules: list[TagRule]) -> None:
    """Analyse every rule against the features' schema (no data is read)."""
    empty = spark.createDataFrame([], features.schema)
    for rule in rules:
        try:
            empty.select(F.expr(rule.rule).cast("boolean")).schema  # noqa: B018 - forces analysis
        except Exception as exc:  # parse and analysis errors both land here
            first_line = str(exc).strip().splitlines()[0]
            raise ConfigError(
                f"tags: rule of tag '{rule.name}' is not a valid expression over "
                f"user features: {first_line}"
            ) from None


def run_profile(ctx: RunContext, as_of: dt.date) -> StepReport:
    clock = Stopwatch()
    settings = ctx.settings
    features = ctx.read("user_features").where(F.col("snapshot_date") == F.lit(as_of))
    check_tag_rules(ctx.spark, features, settings.tags)
    version = latest_model_version(ctx, as_of)
    segmentation = PipelineModel.load(model_path(ctx, "segmentation", version))
    propensity = PipelineModel.load(model_path(ctx, "propensity", version))
    scored = score_propensity(propensity, score_segments(segmentation, features)).cache()
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
    tables.replace_partition(profile, target, PROFILE_PARTITION_COLUMN, as_of)
    scored.unpersist()
    written = tables.read(ctx.spark, target).where(F.col(PROFILE_PARTITION_COLUMN) == F.lit(as_of))
    report = StepReport("profile", {"user_profile rows": written.count()}, clock.seconds())
    for row in written.groupBy("segment_id").count().orderBy("segment_id").collect():  # k rows
        report.rows[f"segment {row['segment_id']}"] = row["count"]
    for row in written.groupBy("lifecycle_stage").count().orderBy("lifecycle_stage").collect():
        report.rows[f"lifecycle {row['lifecycle_stage']}"] = row["count"]
    return report
