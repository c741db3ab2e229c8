"""Audiences and lookups on the shared run."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from tests.e2e.shared import AS_OF, PipelineRun
from tests.helpers import TEST_KEY
from userprofile.cli import main
from userprofile.ingest.privacy import hmac_sha256_hex

pytestmark = pytest.mark.e2e


def _key(spark: SparkSession, user_id: str) -> str:
    row = (
        spark.createDataFrame([(user_id,)], "id string")
        .select(hmac_sha256_hex(TEST_KEY.encode(), F.col("id")).alias("k"))
        .first()
    )
    assert row is not None
    return str(row.k)


def test_export_an_audience_with_and_without_raw_ids(
    spark: SparkSession, pipeline_run: PipelineRun, tmp_path: Path
) -> None:
    settings = pipeline_run.settings
    snapshot = (
        spark.read.format("delta")
        .load(pipeline_run.profile_path)
        .where(F.col("snapshot_date") == AS_OF)
    )
    expected = snapshot.where(
        F.col("lifecycle_stage").isin("active", "new") & (F.col("propensity_decile") >= 6)
    ).count()
    assert expected > 0
    out = tmp_path / "audience"
    audience = ["--lifecycle", "active", "--lifecycle", "new", "--min-decile", "6"]
    args = [
        "export",
        "--conf",
        str(pipeline_run.conf),
        "--as-of",
        AS_OF.isoformat(),
        "--out",
        str(out),
    ]
    assert main([*args, *audience]) == 0
    exported = spark.read.option("header", "true").csv(str(out))
    assert exported.count() == expected
    assert "user_id" not in exported.columns
    assert {r.lifecycle_stage for r in exported.collect()} <= {"active", "new"}
    crm = str(Path(settings.storage.landing) / "users")
    assert main([*args, *audience, "--format", "parquet", "--reidentify-from", crm]) == 0
    identified = spark.read.parquet(str(out))
    assert identified.count() == expected
    assert all(r.user_key == _key(spark, r.user_id) for r in identified.limit(3).collect())


def test_lookup_explains_a_profile(
    spark: SparkSession, pipeline_run: PipelineRun, capsys: pytest.CaptureFixture[str]
) -> None:
    key = _key(spark, "U000000007")
    row = (
        spark.read.format("delta")
        .load(pipeline_run.profile_path)
        .where((F.col("snapshot_date") == AS_OF) & (F.col("user_key") == key))
        .first()
    )
    assert row is not None
    capsys.readouterr()
    assert (
        main(
            [
                "lookup",
                "U000000007",
                "--conf",
                str(pipeline_run.conf),
                "--as-of",
                AS_OF.isoformat(),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert re.search(rf"lifecycle\s+{row.lifecycle_stage}:", printed)
    for tag in pipeline_run.settings.tags:
        verdict = "yes" if tag.name in row.tags else "no"
        assert f"tag {tag.name}" in printed
        assert f"{verdict}: {tag.rule}" in printed
    assert (
        main(
            [
                "lookup",
                "nobody",
                "--conf",
                str(pipeline_run.conf),
                "--as-of",
                AS_OF.isoformat(),
            ]
        )
        == 1
    )
