"""The bench's daily runs: an incremental day after a full run, and the same day's cost on
top of histories of different lengths (``--history-days``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

from pyspark.sql import SparkSession

from userprofile.config import EventSource, GeneratorConfig, Settings
from userprofile.dev.bench_data import bench_settings, cached_landing, write_day
from userprofile.dev.bench_figures import DAILY, PIPELINE, BenchRow, PeakMemory, measure
from userprofile.features.step import run_features
from userprofile.ingest.step import run_ingest
from userprofile.io.context import RunContext
from userprofile.pipeline import train
from userprofile.profile.step import run_profile

# Users of the `--history-days` runs: a fixed small size (~1,900 events a day).
HISTORY_USERS = 1000


def incremental_day(
    ctx: RunContext, size: str, increment: GeneratorConfig, day: dt.date, memory: PeakMemory
) -> list[BenchRow]:
    """The generator's events of ``day`` for the users of ``increment`` as a new delivery,
    then the daily run of the next snapshot (ingest, features, profile; the model reused)."""
    folder = Path(ctx.settings.storage.warehouse).parent / "increment"
    new_events = write_day(ctx.spark, increment, folder, day)
    sources = {
        **ctx.settings.ingest.sources,
        "events_next_day": EventSource(format="json", path=str(folder)),
    }
    daily = RunContext(
        ctx.spark,
        ctx.settings.model_copy(
            update={"ingest": ctx.settings.ingest.model_copy(update={"sources": sources})}
        ),
    )
    next_day = day + dt.timedelta(days=1)
    rows = []
    for step, run in (
        ("incremental: ingest", lambda: run_ingest(daily)),
        ("incremental: features", lambda: run_features(daily, next_day)),
        ("incremental: train (reused)", lambda: train(daily, next_day, 7)),
        ("incremental: profile", lambda: run_profile(daily, next_day)),
    ):
        rows.append(measure(size, step, new_events, run, memory))
        print(rows[-1].line(), flush=True)
    total = round(sum(r.seconds or 0.0 for r in rows), 2)
    rows.append(BenchRow(size, DAILY, new_events, total))
    print(rows[-1].line(), flush=True)
    return rows


def run_history(
    spark: SparkSession,
    settings: Settings,
    history_days: list[int],
    root: Path,
    memory: PeakMemory,
) -> list[BenchRow]:
    """For each length of history: ``HISTORY_USERS`` users' logs over that many days up to
    one day, the full run of that day, then the same incremental day on top (the same
    lines whatever the history: the next day of the shortest history's users)."""
    day = settings.generator.start_date + dt.timedelta(days=max(history_days))

    def config(days: int) -> GeneratorConfig:
        start = day - dt.timedelta(days=days)
        update = {"users": HISTORY_USERS, "start_date": start, "days": days}
        return settings.generator.model_copy(update=update)

    increment = config(min(history_days))
    rows: list[BenchRow] = []
    for days in history_days:
        folder = root / "cache" / f"history-{days}d-{HISTORY_USERS}u"
        landing = cached_landing(spark, config(days), folder)
        ctx = RunContext(spark, bench_settings(settings, landing, root / "run" / f"{days}d"))
        rows += _full_then_daily(ctx, f"{days}d", day, increment, memory)
    return rows


def _full_then_daily(
    ctx: RunContext, label: str, day: dt.date, increment: GeneratorConfig, memory: PeakMemory
) -> list[BenchRow]:
    events = ctx.spark.read.text(str(Path(ctx.settings.storage.landing) / "events")).count()
    steps: list[tuple[str, Callable[[], object]]] = [
        ("ingest", lambda: run_ingest(ctx)),
        ("features", lambda: run_features(ctx, day)),
        ("train", lambda: train(ctx, day)),
        ("profile", lambda: run_profile(ctx, day)),
    ]
    rows = []
    for step, run in steps:
        rows.append(measure(label, step, events, run, memory))
        print(rows[-1].line(), flush=True)
    pipeline = round(sum(r.seconds or 0.0 for r in rows), 2)
    rows.append(BenchRow(label, PIPELINE, events, pipeline))
    print(rows[-1].line(), flush=True)
    return rows + incremental_day(ctx, label, increment, day, memory)
