"""Runs as an operator sees them: refused training, backfills, failures, model reuse."""

from __future__ import annotations

import datetime as dt
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from deltalake import DeltaTable

from tests.e2e.shared import AS_OF, PipelineRun
from userprofile.cli import main

pytestmark = pytest.mark.e2e


def _runs(run: PipelineRun) -> pd.DataFrame:
    return DeltaTable(str(run.warehouse / "ops" / "pipeline_runs")).to_pandas()


def test_training_without_history_is_refused(
    own_run: PipelineRun, capsys: pytest.CaptureFixture[str]
) -> None:
    train = ["train", "--conf", str(own_run.conf), "--as-of", "2026-01-20"]
    assert main(train) == 1
    assert "run `userprofile features --as-of 2026-01-20` first" in capsys.readouterr().err
    assert main(["features", "--conf", str(own_run.conf), "--as-of", "2026-01-20"]) == 0
    # The training snapshot 30 days before 2026-01-20 precedes every generated event.
    assert main(train) == 1
    assert "no events before 2025-12-21" in capsys.readouterr().err


def test_backfill_skips_completed_dates(
    own_run: PipelineRun, capsys: pytest.CaptureFixture[str]
) -> None:
    day_before = AS_OF - dt.timedelta(days=1)
    succeeded = _runs(own_run)
    assert AS_OF in set(succeeded[succeeded.status == "succeeded"].as_of)
    backfill = ["pipeline", "--conf", str(own_run.conf), "--from", day_before.isoformat()]
    backfill += ["--retrain-after-days", "7"]  # the newest model (EARLIER's) is 6 days old
    assert main([*backfill, "--to", AS_OF.isoformat()]) == 0
    # Keys are padded to the longest one in the summary (segment names are long).
    assert re.search(rf"already complete \(use --force\) +{AS_OF}", capsys.readouterr().out)
    runs = _runs(own_run)
    (new,) = runs[runs.as_of == day_before].itertuples()
    assert new.status == "succeeded"
    assert list(new.steps) == ["ingest", "features", "train", "profile"]
    assert {step for step, _ in new.step_seconds} == set(new.steps)
    assert main([*backfill, "--to", AS_OF.isoformat()]) == 0
    assert len(_runs(own_run)) == len(runs)  # nothing left to do: nothing recorded


def test_a_run_without_enough_history_is_recorded_without_models(own_run: PipelineRun) -> None:
    # No history 30 days before 2026-01-20: training is skipped, the profile is still written.
    assert main(["pipeline", "--conf", str(own_run.conf), "--as-of", "2026-01-20"]) == 0
    runs = _runs(own_run)
    (run,) = runs[runs.as_of == dt.date(2026, 1, 20)].itertuples()
    assert run.status == "succeeded_without_models"
    assert list(run.steps) == ["ingest", "features", "train", "profile"]
    assert run.notes.startswith("train skipped: no events before 2025-12-21")


def test_a_failed_run_is_recorded(own_run: PipelineRun) -> None:
    # The model the run reuses is gone: profile fails after features and train succeeded.
    shutil.rmtree(Path(own_run.settings.storage.models) / "segmentation")
    args = ["--conf", str(own_run.conf), "--as-of", AS_OF.isoformat(), "--retrain-after-days", "30"]
    assert main(["pipeline", *args]) == 1
    runs = _runs(own_run)
    failed = runs[runs.status == "failed"]
    assert len(failed) == 1
    (row,) = failed.itertuples()
    assert row.as_of == AS_OF
    assert list(row.steps) == ["ingest", "features", "train"]
    assert "segmentation" in row.error


def test_training_is_skipped_while_the_model_is_recent(
    own_run: PipelineRun, capsys: pytest.CaptureFixture[str]
) -> None:
    metrics = Path(own_run.profile_path).parent / "model_metrics"
    runs_before = set(DeltaTable(str(metrics)).to_pandas().run_id)
    train = ["train", "--conf", str(own_run.conf), "--as-of", AS_OF.isoformat()]
    assert main([*train, "--retrain-after-days", "7"]) == 0
    assert "reused model version" in capsys.readouterr().out
    assert set(DeltaTable(str(metrics)).to_pandas().run_id) == runs_before
