"""The train step on generated data with a known truth: segments, propensity, stability, leaks."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from pyspark.ml import PipelineModel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from tests.helpers import conf_document, write_conf
from userprofile.cli import main
from userprofile.config import Settings, load_settings
from userprofile.dev.evaluate import run_evaluate
from userprofile.errors import LeakageError
from userprofile.features.catalog import CENTRE_COLUMNS
from userprofile.features.step import compute_features
from userprofile.io.context import RunContext
from userprofile.models.naming import COMPARATIVES, TYPICAL, WORDS
from userprofile.models.registry import latest_model_version, model_path
from userprofile.models.segmentation import STATUS_KEPT, STATUS_NEW
from userprofile.models.step import run_train

USERS = 500
AS_OF = dt.date(2026, 4, 11)  # 100 generated days from 2026-01-01
NEXT_DAY = AS_OF + dt.timedelta(days=1)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    root = tmp_path_factory.mktemp("training")
    conf = write_conf(
        root / "training.yaml",
        conf_document(
            root,
            generator={"users": USERS, "days": 100, "start_date": "2026-01-01", "seed": 5},
            # A narrower search than the defaults keeps the test short; the code path is the same.
            segmentation={"k_min": 4, "k_max": 6},
            propensity={"reg_params": [0.003, 0.03], "elastic_net_params": [0.0, 0.5]},
        ),
    )
    for step in ("generate", "ingest"):
        assert main([step, "--conf", str(conf)]) == 0
    # Trained on AS_OF, then retrained on the next day (the stability test compares the two).
    for day in (AS_OF, NEXT_DAY):
        for step in ("features", "train"):
            assert main([step, "--conf", str(conf), "--as-of", day.isoformat()]) == 0
    return load_settings(conf)


def version_on(spark: SparkSession, settings: Settings, day: dt.date) -> str:
    return latest_model_version(RunContext(spark, settings), day)


def read(spark: SparkSession, settings: Settings, key: str) -> DataFrame:
    return spark.read.format("delta").load(str(Path(settings.storage.warehouse) / key))


def metrics(
    spark: SparkSession, settings: Settings, version: str
) -> dict[tuple[str, str, str], float]:
    rows = read(spark, settings, "gold/model_metrics").where(F.col("run_id") == version).collect()
    return {(r.model, r.metric, r.slice): r.value for r in rows}


def test_metrics_cover_the_evaluation(spark: SparkSession, settings: Settings) -> None:
    m = metrics(spark, settings, version_on(spark, settings, AS_OF))
    for metric in ("auc_roc", "auc_pr", "accuracy", "precision", "recall", "f1", "brier"):
        assert 0 <= m[("propensity", metric, "")] <= 1, metric
    assert m[("propensity", "auc_roc", "")] > 0.75
    assert m[("propensity", "auc_roc", "")] > m[("baseline", "auc_roc", "")] - 0.02
    assert ("propensity_hybrid", "auc_roc", "") in m
    lifts = [m[("propensity", "lift", f"decile={d}")] for d in range(1, 11)]
    assert lifts[-1] > 1.5 > lifts[0]  # the top decile buys far more often than the bottom
    users = sum(m[("propensity", "decile_users", f"decile={d}")] for d in range(1, 11))
    assert users == m[("propensity", "rows", "")]
    k = int(m[("segmentation", "k", "")])
    assert 4 <= k <= 6
    assert {s for (model, metric, s) in m if metric == "silhouette"} == {
        f"k={i}" for i in range(4, 7)
    }
    assert len([s for (model, metric, s) in m if metric == "validation_auc_pr"]) == 4
    coefficients = {s for (model, metric, s) in m if metric == "coefficient"}
    assert {"prop_log_orders_30d", "prop_log_recency_days"} <= coefficients
    groups = {s for (model, metric, s) in m if model == "group_lift" and metric == "lift"}
    assert {f"segment={i}" for i in range(k)} <= groups
    assert any(g.startswith("tag=") for g in groups)
    assert m[("group_lift", "users", "all")] > 0


def test_segment_summary_in_original_units(spark: SparkSession, settings: Settings) -> None:
    version = version_on(spark, settings, AS_OF)
    summary = (
        read(spark, settings, "gold/segment_summary")
        .where(F.col("model_version") == version)
        .collect()
    )
    k = len(summary)
    assert sorted(r.segment_id for r in summary) == list(range(k))
    assert {r.status for r in summary} == {STATUS_NEW}
    assert sum(r.users for r in summary) == USERS
    assert sum(r.share for r in summary) == pytest.approx(1.0)
    # Named in the naming vocabulary (no overrides in base.yaml), unique, without numbers.
    vocabulary = {
        TYPICAL,
        *(w for ws in (*WORDS.values(), *COMPARATIVES.values()) for w in ws if w),
    }
    names = [r.segment_name for r in summary]
    assert len(set(names)) == len(names)
    assert all(set(name.split(", ")) <= vocabulary for name in names), names
    # The centre is the median of the segment's users, as the profile assigns them.
    model = PipelineModel.load(model_path(settings, "segmentation", version))
    features = read(spark, settings, "gold/user_features").where(F.col("snapshot_date") == AS_OF)
    assigned = model.transform(features)
    largest = max(summary, key=lambda r: r.users)
    recency = sorted(
        r.recency_days
        for r in assigned.where(F.col("segment_id") == largest.segment_id).collect()
        if r.recency_days is not None
    )
    assert set(largest.centre) == set(CENTRE_COLUMNS)
    assert largest.centre["recency_days"] == recency[(len(recency) - 1) // 2]


def test_segments_and_propensity_match_the_planted_truth(
    spark: SparkSession, settings: Settings
) -> None:
    report = run_evaluate(RunContext(spark, settings), AS_OF).rows
    assert float(report["segments vs personas (ARI)"]) > 0.6
    model_auc = float(report["propensity AUC-ROC"])
    best_auc = float(report["true-probability AUC-ROC"])
    assert best_auc - 0.1 < model_auc <= best_auc + 0.05
    assert model_auc > float(report["baseline AUC-ROC"]) - 0.02


def test_retraining_next_day_keeps_segment_ids_and_names(
    spark: SparkSession, settings: Settings
) -> None:
    first_version = version_on(spark, settings, AS_OF)
    summary = read(spark, settings, "gold/segment_summary")
    first = {
        r.segment_id: r.segment_name
        for r in summary.where(F.col("model_version") == first_version).collect()
    }
    second_version = version_on(spark, settings, NEXT_DAY)
    assert second_version != first_version
    rows = read(spark, settings, "gold/segment_summary").where(
        F.col("model_version") == second_version
    )
    second = {r.segment_id: (r.segment_name, r.status) for r in rows.collect()}
    assert second == {i: (name, STATUS_KEPT) for i, name in first.items()}
    # The same users land in the same segment under both models.
    features = read(spark, settings, "gold/user_features").where(F.col("snapshot_date") == NEXT_DAY)
    ids = [
        PipelineModel.load(model_path(settings, "segmentation", v))
        .transform(features)
        .select("user_key", F.col("segment_id").alias(v))
        for v in (first_version, second_version)
    ]
    joined = ids[0].join(ids[1], "user_key")
    same = joined.where(F.col(first_version) == F.col(second_version)).count()
    assert same / joined.count() > 0.95


def test_a_planted_leak_is_caught(spark: SparkSession, settings: Settings) -> None:
    """Training features computed over the label window must stop the training."""
    label_days = settings.propensity.label_days
    ctx = RunContext(spark, settings)

    def leaky(as_of: dt.date) -> DataFrame:
        return compute_features(ctx, as_of + dt.timedelta(days=label_days)).withColumn(
            "snapshot_date", F.lit(as_of)
        )

    with pytest.raises(LeakageError, match="days_since_last_purchase"):
        run_train(ctx, AS_OF, features_of=leaky)


def test_mlflow_gets_the_run(spark: SparkSession, settings: Settings) -> None:
    import mlflow

    store = Path(settings.storage.models) / "mlruns"
    mlflow.set_tracking_uri(f"file://{store.resolve()}")
    runs = mlflow.search_runs(experiment_names=[settings.spark.app_name], output_format="list")
    version = version_on(spark, settings, NEXT_DAY)
    (run,) = [r for r in runs if r.data.params["model_version"] == version]
    assert run.data.metrics["propensity.auc_roc"] == pytest.approx(
        metrics(spark, settings, version)[("propensity", "auc_roc", "")]
    )
    artifacts = mlflow.MlflowClient().list_artifacts(run.info.run_id)
    assert {a.path for a in artifacts} == {"segmentation", "propensity"}
