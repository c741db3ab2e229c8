"""Render a snapshot's report: PNG figures (matplotlib, no display) inside one HTML file.

Everything here works on small, already aggregated pandas frames that
``steps/report.py`` gathers with Spark; nothing in this module touches Spark.
The HTML embeds each PNG as a data URI, so the file can be mailed or opened
from a volume without its neighbours.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
from dataclasses import dataclass, field

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from userprofile.report.drift import FeatureDrift

# Figures are built without pyplot: no global backend or figure registry to leak, and a
# notebook that shows a returned Figure is not affected by the report's rendering.
PALETTE = matplotlib.colormaps["tab10"]
LIFECYCLE_ORDER = (
    "(not yet a user)",
    "prospect",
    "new",
    "active",
    "reactivated",
    "at_risk",
    "churned",
    "(no longer a user)",
)


@dataclass
class ReportData:
    """What the report shows; every frame is small (aggregates or a bounded sample)."""

    as_of: dt.date
    previous: dt.date | None
    overview: dict[str, str]
    # segment_id, segment_name, users, share, then one column per centre feature.
    segments: pd.DataFrame
    # x, y, segment_id: a sample of users projected on two principal components.
    projection: pd.DataFrame
    explained_variance: tuple[float, float]
    roc: pd.DataFrame  # fpr, tpr
    lift: pd.DataFrame  # decile, users, purchasers, lift
    model_quality: dict[str, float]
    transitions: pd.DataFrame  # from_stage, to_stage, users
    tags: pd.DataFrame  # tag, users, share
    quarantine: pd.DataFrame  # reason_code, reason, rows
    ingest_totals: dict[str, int]
    daily_events: pd.DataFrame  # event_date, events
    drift: list[FeatureDrift] = field(default_factory=list)
    # dimension (segment, lifecycle stage, tag), value, previous share, current share
    share_shifts: pd.DataFrame = field(default_factory=pd.DataFrame)


def png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return buffer.getvalue()


def segments_figure(segments: pd.DataFrame) -> Figure:
    """Sizes as bars, centres as a heatmap (colour = z-score across segments, text = value)."""
    centre = segments.drop(columns=["segment_id", "segment_name", "users", "share"])
    labels = [
        f"{i} {n}" for i, n in zip(segments["segment_id"], segments["segment_name"], strict=True)
    ]
    values = centre.to_numpy(dtype=float)
    spread = np.nanstd(values, axis=0)
    z = (values - np.nanmean(values, axis=0)) / np.where(spread > 0, spread, 1.0)
    fig = Figure(figsize=(14, 0.55 * len(labels) + 2.5))
    bars, heat = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 4]})
    bars.barh(labels, segments["users"], color=[PALETTE(i % 10) for i in segments["segment_id"]])
    bars.invert_yaxis()
    bars.set_xlabel("users")
    bars.set_title("segment sizes")
    heat.imshow(z, cmap="RdBu_r", vmin=-2, vmax=2, aspect="auto")
    heat.set_xticks(range(len(centre.columns)), centre.columns, rotation=40, ha="right")
    heat.set_yticks(range(len(labels)), [""] * len(labels))
    for (row, col), value in np.ndenumerate(values):
        colour = "white" if abs(z[row, col]) > 1.3 else "black"
        heat.text(col, row, _short(value), ha="center", va="center", fontsize=8, color=colour)
    heat.set_title("segment centres (medians; colour: above/below the other segments)")
    return fig


def projection_figure(
    points: pd.DataFrame, names: dict[int, str], explained: tuple[float, float]
) -> Figure:
    """The seed's cluster scatter, on two principal components of the scaled inputs."""
    fig = Figure(figsize=(8, 6))
    ax = fig.subplots()
    for segment_id, group in points.groupby("segment_id"):
        colour = PALETTE(int(segment_id) % 10)
        label = f"{segment_id} {names.get(int(segment_id), '')}"
        ax.scatter(group["x"], group["y"], s=6, alpha=0.5, color=colour, label=label)
        ax.scatter(
            group["x"].mean(), group["y"].mean(), s=160, marker="s", color=colour, edgecolor="black"
        )
    ax.set_xlabel(f"component 1 ({explained[0]:.0%} of variance)")
    ax.set_ylabel(f"component 2 ({explained[1]:.0%} of variance)")
    ax.set_title(f"{len(points):,} sampled users by segment (squares: segment means)")
    ax.legend(markerscale=3, fontsize=8, loc="best")
    return fig


def propensity_figure(roc: pd.DataFrame, lift: pd.DataFrame, quality: dict[str, float]) -> Figure:
    fig = Figure(figsize=(12, 4.8))
    left, right = fig.subplots(1, 2)
    left.plot(
        roc["fpr"], roc["tpr"], label=f"model (AUC {quality.get('auc_roc', float('nan')):.3f})"
    )
    left.plot([0, 1], [0, 1], linestyle="--", color="grey", label="random")
    left.set_xlabel("false positive rate")
    left.set_ylabel("true positive rate")
    baseline = quality.get("baseline_auc_roc")
    title = "ROC on held-out users"
    left.set_title(
        title if baseline is None else f"{title} (recency/frequency baseline {baseline:.3f})"
    )
    left.legend(loc="lower right")
    ordered = lift.sort_values("decile", ascending=False)
    right.bar(ordered["decile"].astype(str), ordered["lift"], color=PALETTE(0))
    right.axhline(1.0, color="grey", linestyle="--")
    right.set_xlabel("propensity decile (10 = highest scores)")
    right.set_ylabel("purchase rate / average rate")
    right.set_title("lift by decile")
    return fig


def lifecycle_figure(transitions: pd.DataFrame) -> Figure:
    """Users moving from each stage (rows, previous snapshot) to each stage (columns)."""
    before, after = _stages(transitions["from_stage"]), _stages(transitions["to_stage"])
    matrix = (
        transitions.pivot_table(
            index="from_stage", columns="to_stage", values="users", aggfunc="sum"
        )
        .reindex(index=before, columns=after)
        .fillna(0)
        .to_numpy()
    )
    shade = np.log1p(matrix)
    fig = Figure(figsize=(8, 0.6 * len(before) + 2.5))
    ax = fig.subplots()
    ax.imshow(shade, cmap="Blues", aspect="auto")
    ax.set_xticks(range(len(after)), after, rotation=35, ha="right")
    ax.set_yticks(range(len(before)), before)
    for (row, col), value in np.ndenumerate(matrix):
        if value:
            colour = "white" if shade[row, col] > 0.6 * shade.max() else "black"
            ax.text(col, row, f"{int(value):,}", ha="center", va="center", fontsize=8, color=colour)
    ax.set_xlabel("stage now")
    ax.set_ylabel("stage at the previous snapshot")
    ax.set_title("lifecycle flows")
    return fig


def _stages(values: pd.Series) -> list[str]:
    """Stages present, in lifecycle order (unknown ones last)."""
    present = set(values)
    return [s for s in LIFECYCLE_ORDER if s in present] + sorted(present - set(LIFECYCLE_ORDER))


def bars_figure(labels: list[str], values: list[float], title: str, xlabel: str) -> Figure:
    fig = Figure(figsize=(9, 0.35 * len(labels) + 1.5))
    ax = fig.subplots()
    ax.barh(labels, values, color=PALETTE(0))
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    return fig


def daily_events_figure(daily: pd.DataFrame) -> Figure:
    fig = Figure(figsize=(10, 3.2))
    ax = fig.subplots()
    ax.plot(pd.to_datetime(daily["event_date"]), daily["events"], color=PALETTE(0))
    ax.set_ylabel("events (silver)")
    ax.set_title("events per day before the snapshot (a gap or a spike is worth a look)")
    fig.autofmt_xdate()
    return fig


def drift_figure(drift: list[FeatureDrift]) -> Figure:
    ordered = sorted(drift, key=lambda d: d.psi, reverse=True)
    fig = bars_figure(
        [d.feature for d in ordered], [d.psi for d in ordered], "feature drift (PSI)", "PSI"
    )
    ax = fig.axes[0]
    ax.axvline(0.1, color="orange", linestyle="--", label="moderate (0.1)")
    ax.axvline(0.25, color="red", linestyle="--", label="significant (0.25)")
    ax.legend(loc="lower right")
    return fig


def render(data: ReportData) -> str:
    """The whole report as one HTML document."""
    names = dict(
        zip(data.segments["segment_id"].astype(int), data.segments["segment_name"], strict=True)
    )
    sections = [
        _section(
            "Overview", _table(pd.DataFrame(list(data.overview.items()), columns=["", "value"]))
        ),
        _section(
            "Segments",
            _figure(segments_figure(data.segments), "segment sizes and centres")
            + _table(data.segments[["segment_id", "segment_name", "users", "share"]]),
        ),
        _section(
            "Users by segment (2-D projection)",
            _figure(
                projection_figure(data.projection, names, data.explained_variance), "projection"
            )
            if len(data.projection)
            else "<p>No users to project.</p>",
        ),
        _section(
            "Purchase propensity",
            _figure(propensity_figure(data.roc, data.lift, data.model_quality), "ROC and lift")
            + _table(pd.DataFrame(sorted(data.model_quality.items()), columns=["metric", "value"])),
        ),
        _section(
            "Lifecycle flows",
            _figure(lifecycle_figure(data.transitions), "lifecycle flows")
            if len(data.transitions)
            else "<p>No lifecycle transitions for this snapshot.</p>",
        ),
        _tags_section(data.tags),
        _quality_section(data),
        _drift_section(data),
    ]
    title = f"User profiles, snapshot {data.as_of}"
    return HTML_PAGE.format(title=html.escape(title), body="\n".join(sections))


def _tags_section(tags: pd.DataFrame) -> str:
    if not len(tags):
        return _section("Tags", "<p>No user carries a tag in this snapshot.</p>")
    ordered = tags.sort_values("users", ascending=False)
    figure = bars_figure(list(ordered["tag"]), list(ordered["users"]), "users per tag", "users")
    return _section("Tags", _figure(figure, "tag counts") + _table(ordered))


def _quality_section(data: ReportData) -> str:
    totals = pd.DataFrame(list(data.ingest_totals.items()), columns=["ingested records", "rows"])
    parts = [_table(totals)]
    if len(data.quarantine):
        ordered = data.quarantine.sort_values("rows", ascending=False)
        figure = bars_figure(
            list(ordered["reason_code"]),
            list(ordered["rows"]),
            "quarantined rows by reason",
            "rows",
        )
        parts += [_figure(figure, "quarantine reasons"), _table(ordered)]
    else:
        parts.append("<p>No quarantined rows.</p>")
    if len(data.daily_events):
        parts.append(_figure(daily_events_figure(data.daily_events), "events per day"))
    return _section("Data quality", "".join(parts))


def _drift_section(data: ReportData) -> str:
    if data.previous is None:
        return _section("Drift", "<p>No earlier snapshot to compare with.</p>")
    rows = pd.DataFrame(
        [
            (d.feature, round(d.psi, 4), d.verdict, d.previous_median, d.current_median)
            for d in data.drift
        ],
        columns=["feature", "psi", "verdict", f"median {data.previous}", f"median {data.as_of}"],
    )
    intro = (
        f"<p>Compared with snapshot {data.previous}. "
        "PSI &lt; 0.1 stable, 0.1-0.25 moderate, &gt; 0.25 significant.</p>"
    )
    return _section(
        "Drift",
        intro
        + _figure(drift_figure(data.drift), "feature drift")
        + _table(rows)
        + _table(data.share_shifts),
    )


def _section(title: str, body: str) -> str:
    anchor = title.lower().split(" (")[0].replace(" ", "-")
    return f'<section id="{anchor}"><h2>{html.escape(title)}</h2>{body}</section>'


def _figure(figure: Figure, alt: str) -> str:
    encoded = base64.b64encode(png(figure)).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{encoded}">'


def _table(frame: pd.DataFrame) -> str:
    return str(frame.to_html(index=False, border=0, classes="data", float_format=_short, na_rep=""))


def _short(value: float) -> str:
    if value is None or not np.isfinite(value):
        return ""
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}"


HTML_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }}
h1 {{ font-size: 1.6em; }} h2 {{ border-bottom: 1px solid #ddd; padding-bottom: .2em; }}
img {{ max-width: 100%; display: block; margin: 1em 0; }}
table.data {{ border-collapse: collapse; font-size: .9em; margin: .5em 0 1.5em; }}
table.data td, table.data th {{ padding: .25em .8em; border-bottom: 1px solid #eee; }}
table.data td {{ text-align: right; }}
table.data td:first-child, table.data th:first-child {{ text-align: left; }}
</style>
</head>
<body>
<h1>{title}</h1>
{body}
</body>
</html>
"""
