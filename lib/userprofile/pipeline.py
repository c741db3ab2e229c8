"""`userprofile pipeline`: ingest -> features -> train -> profile, for a date or a range.

This is where the stages meet: no stage's step imports another's. Train gets
its training snapshot's features from the features stage (stored, or built and
stored when missing) through ``features_of``.

Every step is safe to repeat (exactly-once ingest, partitions replaced, models
versioned), so a failed run is simply run again. Each snapshot's run is
recorded in ``pipeline_runs`` (status, steps, row counts, durations, error),
so an operator sees what happened without reading logs; a range skips the
dates whose last run succeeded unless forced.

Too little history to train (``NotEnoughHistoryError``) does not stop a run: train
is recorded as skipped (its report row and ``notes`` give the reason), the profile
is written without the model columns, and the run's status is
``succeeded_without_models``. Such a date counts as done in a range: the same
events would give the same answer. ``userprofile train`` on its own still fails.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from pyspark.sql import functions as F

from userprofile.errors import NotEnoughHistoryError, scrubbed
from userprofile.features.step import run_features, stored_or_built
from userprofile.ingest.step import run_ingest
from userprofile.io import tables
from userprofile.io.context import RunContext, StepReport, Stopwatch, utc_now
from userprofile.io.faults import kill_point
from userprofile.io.progress import log, logged
from userprofile.models.registry import config_hash
from userprofile.models.step import run_train
from userprofile.profile.step import run_profile

RUNS_COLUMNS = (
    "run_id string, as_of date, status string, steps array<string>, "
    "step_seconds map<string, double>, step_rows map<string, string>, error string, "
    "started_at timestamp, finished_at timestamp, notes string"
)
SUCCEEDED, FAILED = "succeeded", "failed"
# The run wrote its profile, but no model could be trained yet (see the notes).
SUCCEEDED_WITHOUT_MODELS = "succeeded_without_models"
# The report row of a step that was skipped, with the reason.
SKIPPED = "skipped"


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
    ingested = Ingested()
    reports: list[StepReport] = []
    skipped = sorted(done & set(dates))
    if skipped:
        listed = ", ".join(map(str, skipped))
        reports.append(StepReport("skipped", {"already complete (use --force)": listed}))
    for index, day in enumerate(todo):
        steps: list[tuple[str, Callable[[], StepReport]]] = [
            ("features", partial(run_features, ctx, day)),
            ("train", partial(train_or_resume, ctx, day, retrain_after_days, ingested)),
            ("profile", partial(run_profile, ctx, day)),
        ]
        if index == 0:
            steps.insert(0, ("ingest", partial(ingested.run, ctx)))
        if len(todo) > 1:
            log.info("snapshot %s (%d of %d)", day, index + 1, len(todo))
        reports += _recorded(ctx, day, steps)
    return reports


def train(ctx: RunContext, as_of: dt.date, retrain_after_days: int = 0) -> StepReport:
    """The train step, with the training snapshot's features built by the features stage."""
    return run_train(ctx, as_of, retrain_after_days, features_of=partial(stored_or_built, ctx))


@dataclass
class Ingested:
    """The ingest step of this run, and how many landing lines it read (None before it ran)."""

    lines: int | None = None

    def run(self, ctx: RunContext) -> StepReport:
        report = run_ingest(ctx)
        self.lines = report.rows_in or 0
        return report


def train_or_resume(
    ctx: RunContext, as_of: dt.date, retrain_after_days: int, ingested: Ingested
) -> StepReport:
    """Train, unless a run of ``as_of`` that died after training left a model and no event
    arrived since: then that model is the one a clean run would have (a re-run resumes)."""
    left = unfinished_model(ctx, as_of) if ingested.lines == 0 else None
    if left is None:
        return train_unless_too_early(ctx, as_of, retrain_after_days)
    return StepReport("train", {"resumed model version": left, "trained by": "an unfinished run"})


def unfinished_model(ctx: RunContext, as_of: dt.date) -> str | None:
    """The newest model of snapshot ``as_of``, trained with today's model settings after the
    date's last successful run (so by a run that never finished); None if there is none."""
    metrics = ctx.table("model_metrics")
    if not tables.exists(ctx.spark, metrics):
        return None
    trained = (
        tables.read(ctx.spark, metrics)
        .where(F.col("snapshot_date") == F.lit(as_of))
        .where(F.col("config_hash") == F.lit(config_hash(ctx.settings)))
    )
    finished = _last_success(ctx, as_of)
    if finished is not None:
        trained = trained.where(F.col("trained_at") > F.lit(finished))
    newest = trained.orderBy(F.col("trained_at").desc()).select("model_version").first()
    return None if newest is None else str(newest["model_version"])


def _last_success(ctx: RunContext, as_of: dt.date) -> dt.datetime | None:
    ref = ctx.table("pipeline_runs")
    if not tables.exists(ctx.spark, ref):
        return None
    done = F.col("status").isin(SUCCEEDED, SUCCEEDED_WITHOUT_MODELS)
    runs = tables.read(ctx.spark, ref).where((F.col("as_of") == F.lit(as_of)) & done)
    row = runs.agg(F.max("finished_at").alias("finished")).first()
    return None if row is None else row["finished"]


def train_unless_too_early(
    ctx: RunContext, as_of: dt.date, retrain_after_days: int = 0
) -> StepReport:
    """The train step, skipped (with the reason) while the history is too short to train."""
    clock = Stopwatch()
    try:
        return train(ctx, as_of, retrain_after_days)
    except NotEnoughHistoryError as exc:
        log.info("train: skipped, %s", exc)
        return StepReport("train", {SKIPPED: str(exc)}, clock.seconds())


def _recorded(
    ctx: RunContext, day: dt.date, steps: list[tuple[str, Callable[[], StepReport]]]
) -> list[StepReport]:
    started = utc_now()
    reports: list[StepReport] = []
    try:
        for name, run in steps:
            reports.append(logged(ctx.spark, name, run))
    except Exception as exc:
        secret_vars = [ctx.settings.privacy.pseudonym_key_env]
        _record(ctx, day, reports, FAILED, started, scrubbed(exc, secret_vars))
        raise
    skipped = [f"{r.step} skipped: {r.rows[SKIPPED]}" for r in reports if SKIPPED in r.rows]
    status = SUCCEEDED_WITHOUT_MODELS if skipped else SUCCEEDED
    kill_point("pipeline.before_run_record")
    _record(ctx, day, reports, status, started, None, "; ".join(skipped) or None)
    return reports


def _record(
    ctx: RunContext,
    day: dt.date,
    reports: list[StepReport],
    status: str,
    started: dt.datetime,
    error: str | None,
    notes: str | None = None,
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
        notes,
    )
    frame = ctx.spark.createDataFrame([row], RUNS_COLUMNS)
    tables.append(frame, ctx.table("pipeline_runs"), add_columns=True)


def _succeeded_dates(ctx: RunContext) -> set[dt.date]:
    """Dates whose newest recorded run succeeded (with or without models)."""
    ref = ctx.table("pipeline_runs")
    if not tables.exists(ctx.spark, ref):
        return set()
    runs = tables.read(ctx.spark, ref)
    newest = runs.groupBy("as_of").agg(F.max_by("status", "finished_at").alias("status"))
    done = F.col("status").isin(SUCCEEDED, SUCCEEDED_WITHOUT_MODELS)
    return {r["as_of"] for r in newest.where(done).collect()}
