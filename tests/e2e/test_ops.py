"""Audiences and lookups on the shared run."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from tests.e2e.shared import AS_OF, PipelineRun
from tests.helpers import TEST_KEY, write_conf
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


def exporting_conf(pipeline_run: PipelineRun, root: Path) -> Path:
    """The shared run's config with exports and their manifest under ``root`` (the shared
    run is only read)."""
    document = {
        "extends": str(pipeline_run.conf),
        "storage": {"exports": str(root / "exports")},
        "tables": {"export_manifest": str(root / "export_manifest")},
    }
    return write_conf(root / "exports.yaml", document)


def test_export_an_audience_with_and_without_raw_ids(
    spark: SparkSession,
    pipeline_run: PipelineRun,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
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
    out = tmp_path / "exports" / "audience"  # --out audience: a name under storage.exports
    audience = ["--lifecycle", "active", "--lifecycle", "new", "--min-decile", "6"]
    conf = str(exporting_conf(pipeline_run, tmp_path))
    args = ["export", "--conf", conf, "--as-of", AS_OF.isoformat(), "--out", "audience"]
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
    # Both are listed for erase, which rewrites them without an erased user.
    manifest = spark.read.format("delta").load(str(tmp_path / "export_manifest"))
    listed = sorted((r.format, r.raw_ids, r.users, r.location) for r in manifest.collect())
    assert listed == [("csv", False, expected, str(out)), ("parquet", True, expected, str(out))]
    # Anywhere else is refused: erase could not find it.
    capsys.readouterr()
    elsewhere = ["--out", str(tmp_path / "elsewhere")]
    assert main([*args[:-2], *elsewhere, *audience]) == 2
    assert "not inside storage.exports" in capsys.readouterr().err
    assert not (tmp_path / "elsewhere").exists()


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
