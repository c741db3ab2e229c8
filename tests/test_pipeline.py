"""The pipeline on a short history: train is skipped with its reason, the profile is still
written; from the first day with enough history on, models are trained and fill it."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from tests.helpers import TEST_KEY, conf_document, write_conf
from userprofile.cli import main
from userprofile.config import Settings, load_settings
from userprofile.errors import MissingInputError
from userprofile.features.step import run_features
from userprofile.io import tables
from userprofile.io.context import RunContext, StepReport
from userprofile.pipeline import SKIPPED, SUCCEEDED, SUCCEEDED_WITHOUT_MODELS, run_pipeline
from userprofile.profile.contract import PROFILE_COLUMNS
from userprofile.profile.step import run_profile

pytestmark = pytest.mark.e2e

USERS = 200
START = dt.date(2026, 1, 1)
# Training needs label_days + 1 = 31 days of history: its snapshot, 30 days back, needs events.
NEEDED_DAYS = 31
MODEL_COLUMNS = ("segment_id", "segment_name", "purchase_propensity_30d", "propensity_decile")


@dataclass(frozen=True)
class Generated:
    conf: Path
    settings: Settings


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Generated:
    """Exactly enough generated days of events for the last snapshot to train on."""
    root = tmp_path_factory.mktemp("short_pipeline")
    generator = {"users": USERS, "days": NEEDED_DAYS, "start_date": START.isoformat(), "seed": 8}
    conf = write_conf(
        root / "short.yaml",
        conf_document(
            root,
            generator=generator,
            # The narrowest search: the code path is the same.
            segmentation={"k_min": 3, "k_max": 3},
            propensity={"reg_params": [0.01], "elastic_net_params": [0.0]},
        ),
    )
    assert main(["generate", "--conf", str(conf)]) == 0
    return Generated(conf, load_settings(conf))


def day(days_of_history: int) -> dt.date:
    return START + dt.timedelta(days=days_of_history)


def by_step(reports: list[StepReport]) -> dict[str, StepReport]:
    return {r.step: r for r in reports}


def profile_of(spark: SparkSession, settings: Settings, as_of: dt.date) -> DataFrame:
    profile = tables.read(spark, RunContext(spark, settings).table("user_profile"))
    return profile.where(F.col("snapshot_date") == as_of)


def filled(frame: DataFrame, columns: tuple[str, ...]) -> dict[str, int]:
    return {c: frame.where(F.col(c).isNotNull()).count() for c in columns}


def runs_of(spark: SparkSession, settings: Settings, as_of: dt.date) -> list[dict[str, object]]:
    runs = tables.read(spark, RunContext(spark, settings).table("pipeline_runs"))
    return [r.asDict() for r in runs.where(F.col("as_of") == as_of).collect()]


def test_a_short_history_skips_train_and_still_profiles(
    spark: SparkSession, generated: Generated, capsys: pytest.CaptureFixture[str]
) -> None:
    settings, as_of = generated.settings, day(10)
    assert main(["pipeline", "--conf", str(generated.conf), "--as-of", str(as_of)]) == 0
    summary = capsys.readouterr().out.splitlines()
    reason = (
        "no events before 2025-12-12: the propensity model trains on the snapshot 30 days "
        "before --as-of; training needs 31 days of history, there are 10 (first event "
        "2026-01-01), enough from --as-of 2026-02-01"
    )
    assert [line.split()[0] for line in summary if reason in line] == [SKIPPED]
    why = f"none trained on or before {as_of}, segment and propensity columns are null"
    assert [line.split()[0] for line in summary if why in line] == ["models"]

    features = tables.read(spark, RunContext(spark, settings).table("user_features"))
    users = features.where(F.col("snapshot_date") == as_of).count()
    profile = profile_of(spark, settings, as_of).cache()
    assert profile.count() == users > 0
    assert [(f.name, f.dataType) for f in profile.schema.fields] == [
        (c.name, c.data_type) for c in PROFILE_COLUMNS
    ]
    assert filled(profile, MODEL_COLUMNS) == dict.fromkeys(MODEL_COLUMNS, 0)
    others = ("lifecycle_stage", "tags", "next_best_categories", "tenure_days")
    assert filled(profile, others) == dict.fromkeys(others, users)
    profile.unpersist()

    (run,) = runs_of(spark, settings, as_of)
    assert run["status"] == SUCCEEDED_WITHOUT_MODELS
    assert run["steps"] == ["ingest", "features", "train", "profile"]
    assert run["notes"] == f"train skipped: {reason}"
    assert json.loads(run["step_rows"]["train"]) == {SKIPPED: reason}  # no made-up metrics
    assert run["error"] is None


def test_lookup_and_report_on_a_profile_without_models(
    spark: SparkSession, generated: Generated, capsys: pytest.CaptureFixture[str]
) -> None:
    settings, as_of = generated.settings, day(12)
    options = ["--conf", str(generated.conf), "--as-of", str(as_of)]
    assert main(["pipeline", *options]) == 0
    keys = {r.user_key for r in profile_of(spark, settings, as_of).select("user_key").collect()}
    user = next(u for u in (f"U{i:09d}" for i in range(USERS)) if pseudonym(u) in keys)
    capsys.readouterr()
    assert main(["lookup", user, *options]) == 0
    out = capsys.readouterr().out
    assert "segment" in out
    assert out.count("none: no model was trained on or before this snapshot") == 2
    assert main(["report", *options]) == 1
    assert f"the snapshot {as_of} was profiled without models" in capsys.readouterr().err


def pseudonym(user_id: str) -> str:
    return hmac.new(TEST_KEY.encode(), user_id.encode(), hashlib.sha256).hexdigest()


def test_training_starts_on_the_first_day_with_enough_history(
    spark: SparkSession, generated: Generated
) -> None:
    settings = generated.settings
    ctx = RunContext(spark, settings)
    one_day_short, enough = day(NEEDED_DAYS - 1), day(NEEDED_DAYS)

    short = by_step(run_pipeline(ctx, one_day_short))
    assert list(short["train"].rows) == [SKIPPED]
    assert f"there are {NEEDED_DAYS - 1} (first event {START})" in str(short["train"].rows[SKIPPED])
    assert runs_of(spark, settings, one_day_short)[0]["status"] == SUCCEEDED_WITHOUT_MODELS

    # Enough history but no model yet: `profile` on its own stops, asking for train.
    run_features(ctx, enough)
    with pytest.raises(MissingInputError, match=f"run `userprofile train --as-of {enough}` first"):
        run_profile(ctx, enough)
    assert profile_of(spark, settings, enough).count() == 0  # nothing written

    trained = by_step(run_pipeline(ctx, enough))
    assert SKIPPED not in trained["train"].rows
    assert "propensity AUC-ROC" in trained["train"].rows
    assert "models" not in trained["profile"].rows
    assert filled(profile_of(spark, settings, enough), MODEL_COLUMNS) == dict.fromkeys(
        MODEL_COLUMNS, USERS
    )
    (run,) = runs_of(spark, settings, enough)
    assert (run["status"], run["notes"]) == (SUCCEEDED, None)
