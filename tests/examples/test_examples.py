"""Each worked example in conf/examples/ runs end to end on lines in its layout.

The history is shorter than the training window, so each run also shows a profile
written without models. Every input line ends in bronze or in the quarantine, and
the planted users' features are the ones computed by hand in ``exports``.
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import pytest
from chispa import assert_approx_df_equality
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from tests.examples.exports import EXPORTS, Export
from tests.helpers import REPO, TEST_KEY, storage_under, write_conf
from userprofile.cli import main
from userprofile.config import load_settings
from userprofile.io import tables
from userprofile.io.context import RunContext
from userprofile.io.queries import snapshot


def pseudonym(user_id: str) -> str:
    """What the pipeline's HMAC gives: Python's hmac with the same key."""
    return hmac.new(TEST_KEY.encode(), user_id.encode(), hashlib.sha256).hexdigest()


def land(export: Export, landing: Path) -> None:
    folder = landing / export.folder / "landing_date=2026-11-01"
    folder.mkdir(parents=True)
    for name, lines in export.files.items():
        (folder / name).write_text("\n".join(lines) + "\n", encoding="utf-8")


def run_example(export: Export, root: Path) -> RunContext:
    document = {
        "extends": str(REPO / "conf" / "examples" / f"{export.example}.yaml"),
        "environment": "test",
        "spark": {"master": "local[2]", "shuffle_partitions": 2},
        "storage": storage_under(root),
    }
    conf = write_conf(root / "example.yaml", document)
    land(export, root / "landing")
    assert main(["pipeline", "--conf", str(conf), "--as-of", export.as_of.isoformat()]) == 0
    return RunContext(SparkSession.getActiveSession(), load_settings(conf))  # type: ignore[arg-type]


def planted_rows(features: DataFrame, export: Export) -> tuple[DataFrame, DataFrame]:
    """(actual, expected) rows of the planted users over the columns the export names."""
    columns = sorted({c for facts in export.planted.values() for c in facts})
    actual = features.where(F.col("user_key").isin(*[pseudonym(u) for u in export.planted])).select(
        "user_key", *columns
    )
    expected = features.sparkSession.createDataFrame(
        [(pseudonym(u), *[facts[c] for c in columns]) for u, facts in export.planted.items()],
        actual.schema,
    )
    return actual, expected


@pytest.mark.parametrize("example", sorted(EXPORTS))
def test_the_example_runs_end_to_end(spark: SparkSession, example: str, tmp_path: Path) -> None:
    export = EXPORTS[example]
    ctx = run_example(export, tmp_path)

    lines = sum(len(f) for f in export.files.values()) - export.header_lines
    bronze = tables.read(spark, ctx.table("bronze_events"))
    quarantine = tables.read(spark, ctx.table("bronze_quarantine"))
    assert bronze.count() + quarantine.count() == lines
    reasons = {
        r["reason_code"]: r["count"] for r in quarantine.groupBy("reason_code").count().collect()
    }
    assert reasons == export.rejected

    profile = snapshot(tables.read(spark, ctx.table("user_profile")), export.as_of).cache()
    users = bronze.where(F.col("user_id").isNotNull()).select("user_id").distinct()
    assert profile.count() == users.count()
    features = snapshot(tables.read(spark, ctx.table("user_features")), export.as_of)
    actual, expected = planted_rows(features, export)
    assert_approx_df_equality(actual, expected, 1e-6, ignore_row_order=True, ignore_nullable=True)
    # Too little history to train: the model columns are empty, everything else is there.
    assert profile.where(F.col("purchase_propensity_30d").isNotNull()).count() == 0
    assert profile.where(F.col("lifecycle_stage").isNull()).count() == 0
    profile.unpersist()

    # Personal data (the access log's client address) reaches silver only as a pseudonym.
    silver = tables.read(spark, ctx.table("silver_events"))
    text = silver.select(F.to_json(F.struct(*silver.columns)).alias("row"))
    for raw, rows in export.pseudonymised.items():
        assert text.where(F.col("row").contains(raw)).count() == 0
        assert silver.where(F.col("anonymous_key") == pseudonym(raw)).count() == rows
