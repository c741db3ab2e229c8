"""The profile table as consumers read it: with and without Spark, after re-runs, with no
personal data, every input line accounted for."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from deltalake import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from tests.e2e.shared import AS_OF, EARLIER, USERS, PipelineRun
from tests.helpers import TEST_KEY
from userprofile.cli import main
from userprofile.ingest.privacy import hmac_sha256_hex
from userprofile.profile.contract import PROFILE_COLUMNS
from userprofile.profile.lifecycle import GONE

pytestmark = pytest.mark.e2e


def snapshot_rows(path: str, day: dt.date) -> int:
    table = DeltaTable(path).to_pyarrow_table(filters=[("snapshot_date", "=", day)])
    return table.num_rows


def test_profile_is_readable_without_spark(pipeline_run: PipelineRun) -> None:
    table = DeltaTable(pipeline_run.profile_path)
    assert table.metadata().partition_columns == ["snapshot_date"]
    assert [f.name for f in table.schema().fields] == [c.name for c in PROFILE_COLUMNS]
    assert snapshot_rows(pipeline_run.profile_path, AS_OF) == USERS  # every generated user, once


def test_consumer_view_matches_spark(spark: SparkSession, pipeline_run: PipelineRun) -> None:
    frame = DeltaTable(pipeline_run.profile_path).to_pandas(filters=[("snapshot_date", "=", AS_OF)])
    spark_rows = (
        spark.read.format("delta")
        .load(pipeline_run.profile_path)
        .where(F.col("snapshot_date") == AS_OF)
    )
    expected = {r.user_key: (r.segment_id, r.lifecycle_stage) for r in spark_rows.collect()}
    got = {
        k: (s, stage)
        for k, s, stage in zip(frame.user_key, frame.segment_id, frame.lifecycle_stage, strict=True)
    }
    assert got == expected
    assert frame.purchase_propensity_30d.between(0, 1).all()
    assert set(frame.propensity_decile) == set(range(1, 11))
    assert set(frame.segment_id) == {0, 1, 2, 3}
    assert frame.run_id.nunique() == 1
    buyers = frame.days_since_last_purchase.notna()
    assert buyers.any()
    assert (~buyers).any()
    for column in ("r_score", "f_score", "m_score"):
        assert set(frame[column][buyers]) <= {1, 2, 3, 4, 5}
        assert frame[column][~buyers].isna().all()
    assert frame.predicted_purchases[buyers].gt(0).all()
    assert frame.probability_alive[buyers].between(0, 1).all()
    assert frame.predicted_value[~buyers].isna().all()
    assert frame.rfm_segment[buyers].notna().all()


def test_profile_rerun_is_identical_one_replace_and_time_travel(
    spark: SparkSession, own_run: PipelineRun
) -> None:
    provenance = {"run_id", "computed_at"}
    table = DeltaTable(own_run.profile_path)
    before = table.version()
    first = table.to_pandas(filters=[("snapshot_date", "=", AS_OF)])
    assert main(["profile", "--conf", str(own_run.conf), "--as-of", AS_OF.isoformat()]) == 0
    table = DeltaTable(own_run.profile_path)
    assert table.version() == before + 1  # one commit per run
    (commit,) = [h for h in table.history() if h["version"] == before + 1]
    assert commit["operation"] == "WRITE"
    assert "snapshot_date" in commit["operationParameters"]["predicate"]
    second = table.to_pandas(filters=[("snapshot_date", "=", AS_OF)])
    columns = [c for c in first.columns if c not in provenance]
    ordered = [f.sort_values("user_key").reset_index(drop=True)[columns] for f in (first, second)]
    assert ordered[0].astype(str).equals(ordered[1].astype(str))
    assert set(first.run_id) != set(second.run_id)
    # Time travel: the previous version still has the first run.
    old = spark.read.format("delta").option("versionAsOf", before).load(own_run.profile_path)
    old_snapshot = old.where(F.col("snapshot_date") == AS_OF).select("run_id").distinct()
    assert {r.run_id for r in old_snapshot.collect()} == set(first.run_id)
    properties = table.metadata().configuration
    assert properties["userprofile.contract_version"] == "1"


def test_rerun_same_date_replaces_only_that_snapshot(
    spark: SparkSession, own_run: PipelineRun
) -> None:
    truth = spark.read.parquet(str(Path(own_run.settings.storage.ground_truth) / "users"))
    # New users sign up during the generated range: the earlier snapshot knows fewer of them.
    signed_up_earlier = truth.where(F.col("signup_date") < EARLIER).count()
    assert signed_up_earlier < USERS
    versions_before = DeltaTable(own_run.profile_path).version()
    # (Re-running AS_OF itself is test_profile_rerun_is_identical_one_replace_and_time_travel.)
    assert main(["pipeline", "--conf", str(own_run.conf), "--as-of", EARLIER.isoformat()]) == 0
    table = DeltaTable(own_run.profile_path)
    assert table.version() > versions_before
    assert snapshot_rows(own_run.profile_path, AS_OF) == USERS
    assert snapshot_rows(own_run.profile_path, EARLIER) == signed_up_earlier
    dates = set(
        table.to_pyarrow_table(columns=["snapshot_date"]).column("snapshot_date").to_pylist()
    )
    assert dates == {AS_OF, EARLIER}
    warehouse = Path(own_run.settings.storage.warehouse) / "gold"
    flows = DeltaTable(str(warehouse / "lifecycle_transitions")).to_pandas()
    for day, users in ((AS_OF, USERS), (EARLIER, signed_up_earlier)):
        arrived = flows[(flows.snapshot_date == day) & (flows.to_stage != GONE)]
        assert arrived.users.sum() == users
    dictionary = DeltaTable(str(warehouse / "tag_dictionary")).to_pandas()
    assert set(dictionary.name) == {t.name for t in own_run.settings.tags}


def test_every_input_line_is_accounted_for(spark: SparkSession, pipeline_run: PipelineRun) -> None:
    """input lines = bronze rows + quarantined rows; duplicates stay in bronze, once in silver."""
    settings = pipeline_run.settings
    lines = spark.read.text(str(Path(settings.storage.landing) / "events")).count()
    warehouse = Path(settings.storage.warehouse)
    bronze = spark.read.format("delta").load(str(warehouse / "bronze/events"))
    quarantine = spark.read.format("delta").load(str(warehouse / "bronze/quarantine"))
    assert bronze.count() + quarantine.count() == lines
    silver = spark.read.format("delta").load(str(warehouse / "silver/events"))
    assert silver.count() == bronze.select("event_id").distinct().count()
    assert silver.count() < bronze.count()  # the generator plants duplicates
    reasons = {r.reason_code for r in quarantine.select("reason_code").distinct().collect()}
    assert reasons == {
        "MALFORMED_RECORD",
        "MISSING_EVENT_ID",
        "MISSING_USER",
        "BAD_TIMESTAMP",
        "FUTURE_TIMESTAMP",
        "NEGATIVE_PRICE",
    }


def test_no_personal_data_beyond_bronze(spark: SparkSession, pipeline_run: PipelineRun) -> None:
    warehouse = Path(pipeline_run.settings.storage.warehouse)
    for table in ("silver/events", "silver/users", "gold/user_features", "gold/user_profile"):
        columns = set(DeltaTable(str(warehouse / table)).schema().to_arrow().names)
        assert not columns & {"user_id", "anonymous_id", "email", "ip", "phone"}, table
    for table in (
        "silver/events",
        "silver/users",
        "silver/identities",
        "silver/user_day",
        "gold/user_features",
        "gold/user_profile",
    ):
        frame = spark.read.format("delta").load(str(warehouse / table))
        text = F.concat_ws("|", *[F.col(c).cast("string") for c in frame.columns])
        # No e-mail, no IPv4 address, no raw user or anonymous id in any value.
        leaks = frame.where(text.rlike(r"@|\b\d{1,3}(\.\d{1,3}){3}\b|\bU\d{9}\b|anon-"))
        assert leaks.count() == 0, table
    keys = (
        DeltaTable(pipeline_run.profile_path)
        .to_pyarrow_table(columns=["user_key"])
        .column("user_key")
        .to_pylist()
    )
    assert not any(k.startswith("U0") for k in keys)
    expected = (
        spark.createDataFrame([("U000000007",)], "id string")
        .select(hmac_sha256_hex(TEST_KEY.encode(), F.col("id")).alias("k"))
        .first()
    )
    assert expected is not None
    assert expected.k in keys


def test_propensity_tracks_the_planted_truth(
    spark: SparkSession, pipeline_run: PipelineRun
) -> None:
    """The model's scores rank users like the generator's true odds (evaluation-only data)."""
    truth = spark.read.parquet(str(Path(pipeline_run.settings.storage.ground_truth) / "users"))
    from userprofile.dev.generator import true_purchase_probability

    planted = true_purchase_probability(truth, AS_OF, 30).select(
        hmac_sha256_hex(TEST_KEY.encode(), F.col("user_id")).alias("user_key"), "true_probability"
    )
    scored = (
        spark.read.format("delta")
        .load(pipeline_run.profile_path)
        .where(F.col("snapshot_date") == AS_OF)
    )
    joined = scored.join(planted, "user_key").select(
        F.percent_rank().over(_order("purchase_propensity_30d")).alias("a"),
        F.percent_rank().over(_order("true_probability")).alias("b"),
    )
    rank_correlation = joined.stat.corr("a", "b")
    assert rank_correlation > 0.4


def _order(column: str):  # type: ignore[no-untyped-def]
    from pyspark.sql import Window

    return Window.orderBy(column)
