"""Report pieces on inline data: drift, ROC points, retraining cadence, HTML rendering."""

from __future__ import annotations

import base64
import datetime as dt
import io
import itertools
import re

import matplotlib.image
import pandas as pd
import pytest
from pyspark.ml.evaluation import BinaryClassificationEvaluator
from pyspark.sql import SparkSession

from userprofile import drift
from userprofile.cli import build_parser
from userprofile.propensity import LABEL, roc_points
from userprofile.report import ReportData, render
from userprofile.steps.train import is_due

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_psi_is_zero_for_equal_shares_and_large_for_a_shift() -> None:
    assert drift.psi([10, 20, 30], [100, 200, 300]) == pytest.approx(0.0)
    # Shares 0.5/0.5 -> 0.9/0.1: (0.4 ln 1.8) + (-0.4 ln 0.2) = 0.879
    assert drift.psi([50, 50], [90, 10]) == pytest.approx(0.4 * 0.5878 + 0.4 * 1.6094, abs=1e-3)


def test_feature_drift_flags_only_the_shifted_feature(spark: SparkSession) -> None:
    previous = spark.createDataFrame(
        [(float(i % 100), float(i % 50)) for i in range(2000)], "steady double, moving double"
    )
    current = spark.createDataFrame(
        [(float(i % 100), float(i % 50) + 30.0) for i in range(2000)],
        "steady double, moving double",
    )
    result = {d.feature: d for d in drift.feature_drift(previous, current, ["steady", "moving"])}
    assert result["steady"].psi == pytest.approx(0.0, abs=0.01)
    assert result["steady"].verdict == "stable"
    assert result["moving"].verdict == "significant"
    assert result["moving"].current_median == pytest.approx(
        result["moving"].previous_median + 30, abs=1
    )


def test_share_shift_lists_values_of_both_snapshots(spark: SparkSession) -> None:
    previous = spark.createDataFrame([("a",), ("a",), ("b",), (None,)], "stage string")
    current = spark.createDataFrame([("a",), ("c",)], "stage string")
    assert drift.share_shift(previous, current, "stage") == [
        ("(none)", 0.25, 0.0),
        ("a", 0.5, 0.5),
        ("b", 0.25, 0.0),
        ("c", 0.0, 0.5),
    ]


def test_roc_points_by_hand_and_against_mllib(spark: SparkSession) -> None:
    rows = [(0.95, 1.0), (0.85, 0.0), (0.75, 1.0), (0.15, 0.0)]
    scored = spark.createDataFrame(rows, f"score double, {LABEL} double")
    # Cuts from the top: 0.95 (tp 1), 0.85 (fp 1), 0.75 (tp 2), 0.15 (fp 2).
    assert roc_points(scored, "score", bins=10) == [
        (0.0, 0.0),
        (0.0, 0.5),
        (0.5, 0.5),
        (0.5, 1.0),
        (1.0, 1.0),
    ]
    many = spark.createDataFrame(
        [((i * 37 % 101) / 101, float((i * 37 % 101) / 101 > (i % 7) / 7)) for i in range(700)],
        f"score double, {LABEL} double",
    )
    points = roc_points(many, "score", bins=1000)
    trapezoid = sum((x2 - x1) * (y1 + y2) / 2 for (x1, y1), (x2, y2) in itertools.pairwise(points))
    mllib = BinaryClassificationEvaluator(labelCol=LABEL, rawPredictionCol="score").evaluate(many)
    assert trapezoid == pytest.approx(mllib, abs=0.01)


@pytest.mark.parametrize(
    ("trained_on", "as_of", "every", "due"),
    [
        (dt.date(2026, 5, 1), dt.date(2026, 5, 7), 7, False),
        (dt.date(2026, 5, 1), dt.date(2026, 5, 8), 7, True),
        (dt.date(2026, 5, 1), dt.date(2026, 5, 1), 0, True),
        (dt.date(2026, 5, 1), dt.date(2026, 5, 2), 1, True),
    ],
)
def test_retraining_is_due_after_the_configured_days(
    trained_on: dt.date, as_of: dt.date, every: int, due: bool
) -> None:
    assert is_due(trained_on, as_of, every) is due


def _report_data(previous: dt.date | None) -> ReportData:
    centre = {"orders_90d": [0.0, 4.0], "recency_days": [40.0, 3.0]}
    return ReportData(
        as_of=dt.date(2026, 5, 1),
        previous=previous,
        overview={"users": "30"},
        segments=pd.DataFrame(
            {"segment_id": [0, 1], "segment_name": ["dormant", "loyal <b>"], "users": [20, 10]}
            | {"share": [0.6667, 0.3333]}
            | centre
        ),
        projection=pd.DataFrame(
            {"x": [0.0, 1.0, 2.0], "y": [1.0, 0.0, 2.0], "segment_id": [0, 1, 1]}
        ),
        explained_variance=(0.5, 0.3),
        roc=pd.DataFrame({"fpr": [0.0, 0.2, 1.0], "tpr": [0.0, 0.7, 1.0]}),
        lift=pd.DataFrame(
            {"decile": [1, 2], "users": [15, 15], "purchasers": [2, 8], "lift": [0.4, 1.6]}
        ),
        model_quality={"auc_roc": 0.81, "baseline_auc_roc": 0.7},
        transitions=pd.DataFrame(
            {
                "from_stage": ["new", "(not yet a user)"],
                "to_stage": ["active", "new"],
                "users": [5, 25],
            }
        ),
        tags=pd.DataFrame({"tag": ["big_spender"], "users": [7], "share": [0.2333]}),
        quarantine=pd.DataFrame({"reason_code": ["BAD_TIMESTAMP"], "reason": ["x"], "rows": [3]}),
        ingest_totals={"accepted into bronze": 1000, "quarantined": 3},
        daily_events=pd.DataFrame(
            {"event_date": [dt.date(2026, 4, 29), dt.date(2026, 4, 30)], "events": [5, 6]}
        ),
        drift=[drift.FeatureDrift("orders_90d", 0.3, 1.0, 2.0)],
        share_shifts=pd.DataFrame(
            {"dimension": ["segment"], "value": ["dormant"], "change": [0.1]}
        ),
    )


def _images(page: str) -> list[bytes]:
    return [base64.b64decode(b) for b in re.findall(r'src="data:image/png;base64,([^"]+)"', page)]


def test_render_embeds_every_figure_as_png_and_escapes_names() -> None:
    page = render(_report_data(previous=dt.date(2026, 4, 30)))
    images = _images(page)
    # segments, projection, propensity, lifecycle, tags, quarantine, events per day, drift
    assert len(images) == 8
    for image in images:
        assert image.startswith(PNG_SIGNATURE)
        height, width, _ = matplotlib.image.imread(io.BytesIO(image)).shape
        assert height > 100
        assert width > 100
    assert "loyal &lt;b&gt;" in page
    assert "loyal <b>" not in page
    assert "Compared with snapshot 2026-04-30" in page
    assert "significant" in page
    assert not re.search(r'(src|href)="(http|//)', page)  # self-contained


def test_render_without_a_previous_snapshot_says_so() -> None:
    page = render(_report_data(previous=None))
    assert "No earlier snapshot to compare with." in page
    assert len(_images(page)) == 7


@pytest.mark.parametrize("value", ["-1", "seven"])
def test_retrain_after_days_must_be_a_whole_number_of_days(value: str) -> None:
    with pytest.raises(SystemExit) as stopped:
        build_parser().parse_args(["train", "--retrain-after-days", value])
    assert stopped.value.code == 2
