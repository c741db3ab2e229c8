"""`userprofile pipeline`: ingest -> features -> train -> profile, for a date or a range.

This is where the stages meet: no stage's step imports another's. Train gets
its training snapshot's features from the features stage (stored, or built and
stored when missing) through ``features_of``.

Every step is safe to repeat (exactly-once ingest, partitions replaced, models
versioned), so a failed run is simply run again. Each snapshot's run is
recorded in ``pipeline_runs`` (status, steps, row counts, durations, error),
so an operator sees what happened without reading logs; a range skips the
dates whose last run succeeded unless forced.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from functools import partial

from pyspark.sql import functions as F

from userprofile.features.step import run_features, stored_or_built
from userprofile.ingest.step import run_ingest
from userprofile.io import tables
from userprofile.io.context import RunContext, StepReport, utc_now
from userprofile.io.progress import log, logged
from userprofile.models.step import run_train
from userprofile.profile.step import run_profile

RUNS_COLUMNS = (
    "run_id string, as_of date, status string, steps array<string>, "
    "step_seconds map<string, double>, step_rows map<string, string>, error string, "
    "started_at timestamp, finished_at timestamp"
)
SUCCEEDED, FAILED = "succeeded", "failed"


def run_pipeline(ctx: RunContext, as_of: dt.date, retrain_after_days: int = 0) -> list[StepReport]:
    return run_range(ctx, as_of, as_of, force=True, retrain_after_days=retrain_after_days)


def run_range(
    ctx: RunContext,
    first: dt.date,
    last: dt.date,
    force: bool = False,
    retrain_after_days: int = 0,
) -> list[StepReport]:
    """Ingest once, then features, train and profile for each date in order."""
    done = set() if force else _succeeded_dates(ctx)
    dates = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
    todo = [d for d in dates if d not in done]
    reports: list[StepReport] = []
    skipped = sorted(done & set(dates))
    if skipped:
        listed = ", ".join(map(str, skipped))
        reports.append(StepReport("skipped", {"already complete (use --force)": listed}))
    for index, day in enumerate(todo):
        steps: list[tuple[str, Callable[[], StepReport]]] = [
            ("features", partial(run_features, ctx, day)),
            ("train", partial(train, ctx, day, retrain_after_days)),
            ("profile", partial(run_profile, ctx, day)),
        ]
        if index == 0:
            steps.insert(0, ("ingest", partial(run_ingest, ctx)))
        if len(todo) > 1:
            log.info("snapshot %s (%d of %d)", day, index + 1, len(todo))
        reports += _recorded(ctx, day, steps)
    return reports


def train(ctx: RunContext, as_of: dt.date, retrain_after_days: int = 0) -> StepReport:
    """The train step, with the training snapshot's features built by the features stage."""
    return run_train(ctx, as_of, retrain_after_days, features_of=partial(stored_or_built, ctx))


def _recorded(
    ctx: RunContext, day: dt.date, steps: list[tuple[str, Callable[[], StepReport]]]
) -> list[StepReport]:
    started = utc_now()
    reports: list[StepReport] = []
    try:
        for name, run in steps:
            reports.append(logged(ctx.spark, name, run))
    except Exception as exc:
        _record(ctx, day, reports, FAILED, started, f"{type(exc).__name__}: {exc}")
        raise
    _record(ctx, day, reports, SUCCEEDED, started, None)
    return reports


def _record(
    ctx: RunContext,
    day: dt.date,
    reports: list[StepReport],
    status: str,
    started: dt.datetime,
    error: str | None,
) -> None:
    row = (
        ctx.run_id,
        day,
        status,
        [r.step for r in reports],
        {r.step: float(r.seconds) for r in reports},
        {r.step: json.dumps(r.rows, default=str) for r in reports},
        (error or "").strip().splitlines()[0][:1000] if error else None,
        started,
        utc_now(),
    )
    frame = ctx.spark.createDataFrame([row], RUNS_COLUMNS)
    tables.append(frame, ctx.table("pipeline_runs"), add_columns=True)


def _succeeded_dates(ctx: RunContext) -> set[dt.date]:
    """Dates whose newest recorded run succeeded."""
    ref = ctx.table("pipeline_runs")
    if not tables.exists(ctx.spark, ref):
        return set()
    runs = tables.read(ctx.spark, ref)
    newest = runs.groupBy("as_of").agg(F.max_by("status", "finished_at").alias("status"))
    return {r["as_of"] for r in newest.where(F.col("status") == SUCCEEDED).collect()}
