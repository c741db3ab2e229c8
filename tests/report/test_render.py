"""The HTML report on inline data: every figure embedded as PNG, names escaped, self-contained."""

from __future__ import annotations

import base64
import datetime as dt
import io
import re

import matplotlib.image
import pandas as pd

from userprofile.report import drift
from userprofile.report.render import ReportData, render

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


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
