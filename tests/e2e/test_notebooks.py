"""The Databricks notebooks, executed cell by cell against the shared run."""

from __future__ import annotations

import datetime as dt

import pytest
from deltalake import DeltaTable
from matplotlib.figure import Figure

from tests.e2e.shared import AS_OF, USERS, PipelineRun
from tests.helpers import REPO
from tests.notebooks import run_notebook

pytestmark = pytest.mark.e2e
NOTEBOOKS = REPO / "notebooks"


def snapshot_rows(path: str, day: dt.date) -> int:
    table = DeltaTable(path).to_pyarrow_table(filters=[("snapshot_date", "=", day)])
    return table.num_rows


def test_explore_notebook_draws_the_snapshot(pipeline_run: PipelineRun) -> None:
    ns = run_notebook(
        NOTEBOOKS / "explore_segments.py",
        {"conf": str(pipeline_run.conf), "snapshot_date": str(AS_OF)},
    )
    assert ns["as_of"] == AS_OF
    profile = DeltaTable(pipeline_run.profile_path).to_pandas()
    counts = profile[profile.snapshot_date == AS_OF].segment_id.value_counts()
    shown = ns["data"].segments.set_index("segment_id").users
    assert shown.to_dict() == counts.to_dict()
    for name in ("segments_figure", "projection_figure", "propensity_figure", "lifecycle_figure"):
        assert isinstance(ns[name], Figure), name
    # One scatter per segment plus its mean marker.
    assert len(ns["projection_figure"].axes[0].collections) == 2 * len(counts)
    assert ns["drift_table"], "an earlier snapshot exists, so drift is computed"


def test_lookup_notebook_explains_a_user(
    pipeline_run: PipelineRun, capsys: pytest.CaptureFixture[str]
) -> None:
    widgets = {
        "conf": str(pipeline_run.conf),
        "snapshot_date": str(AS_OF),
        "user": "U000000007",
    }
    run_notebook(NOTEBOOKS / "profile_lookup.py", widgets)
    printed = capsys.readouterr().out
    assert all(f"tag {tag.name}" in printed for tag in pipeline_run.settings.tags)
    with pytest.raises(AssertionError, match="lookup failed"):
        run_notebook(NOTEBOOKS / "profile_lookup.py", {**widgets, "user": "nobody"})


def test_pipeline_notebook_runs_a_new_date(own_run: PipelineRun) -> None:
    day = AS_OF + dt.timedelta(days=1)
    widgets = {"conf": str(own_run.conf), "as_of": str(day), "retrain_after_days": "7"}
    ns = run_notebook(NOTEBOOKS / "run_pipeline.py", widgets)
    assert ns["latest_run"].status == "succeeded"
    assert list(ns["latest_run"].steps) == ["ingest", "features", "train", "profile"]
    assert "reused model version" in ns["latest_run"].step_rows["train"]
    assert snapshot_rows(own_run.profile_path, day) == USERS
