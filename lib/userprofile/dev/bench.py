"""`userprofile bench`: figures, not tests.

Generates events at chosen sizes once into a cache folder, then measures in one
run, side by side: the floor (one Spark scan parsing every field of the raw
JSON), each pipeline step into a fresh warehouse (ingest, features, train,
profile) and their sum, the peers on the same data (pandas + scikit-learn from
the raw JSON; DuckDB and Polars computing the core features from the silver
Parquet files), each peer's features checked against the product's, and an
incremental day (~1% new events: ingest, features, profile, with the week-old
model reused). With ``--history-days``, the same incremental day on top of
histories of those lengths. Prints a table (seconds, events/s, peak memory,
share of the pipeline), the checks, and the ratios against their targets, and
writes the same as JSON. Short measurements are repeated and their median reported.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from userprofile.config import Settings
from userprofile.dev.bench_daily import incremental_day, run_history
from userprofile.dev.bench_data import BENCH_DAYS, bench_settings, cached_landing, size_config
from userprofile.dev.bench_figures import (
    FLOOR,
    HEADER,
    PIPELINE,
    PIPELINE_STEPS,
    BenchRow,
    PeakMemory,
    measure,
    parse_size,
    print_quality,
    print_ratios,
    write_json,
)
from userprofile.dev.bench_peers import run_peers
from userprofile.dev.evaluate import run_evaluate
from userprofile.dev.generator import EVENT_LOG_SCHEMA
from userprofile.errors import ConfigError
from userprofile.features.step import run_features
from userprofile.ingest.step import run_ingest
from userprofile.io.context import RunContext, StepReport
from userprofile.pipeline import train
from userprofile.profile.step import run_profile

DEFAULT_SIZES = "1M,10M"


def run_bench(
    spark: SparkSession,
    settings: Settings,
    sizes: list[str],
    root: Path,
    history_days: list[int] | None = None,
) -> tuple[list[BenchRow], dict[str, dict[str, int | float | str]]]:
    """Timings per size and step, and the models' quality per size; rows print as they come."""
    rows: list[BenchRow] = []
    quality: dict[str, dict[str, int | float | str]] = {}
    memory = PeakMemory(spark)
    print(HEADER, flush=True)
    for size in sizes:
        rows += _bench_size(spark, settings, size, root, memory, quality)
    if history_days:
        rows += run_history(spark, settings, history_days, root, memory)
    print_ratios(rows)
    return rows, quality


def _bench_size(
    spark: SparkSession,
    settings: Settings,
    size: str,
    root: Path,
    memory: PeakMemory,
    quality: dict[str, dict[str, int | float | str]],
) -> list[BenchRow]:
    cfg = size_config(settings, parse_size(size))
    landing = cached_landing(spark, cfg, root / "cache" / size)
    events = spark.read.text(str(landing / "events")).count()
    # A warehouse (and MLflow store) per size: a store deleted under MLflow breaks its cache.
    ctx = RunContext(spark, bench_settings(settings, landing, root / "run" / size))
    as_of = settings.generator.start_date + dt.timedelta(days=BENCH_DAYS)
    rows: list[BenchRow] = []

    def timed(step: str, run: Callable[[], object], repeat: bool = False) -> BenchRow:
        row = measure(size, step, events, run, memory, repeat)
        rows.append(row)
        print(row.line(), flush=True)
        return row

    timed(FLOOR, lambda: _floor_scan(spark, landing), repeat=True)
    timed("ingest", lambda: run_ingest(ctx))
    timed("features", lambda: run_features(ctx, as_of), repeat=True)
    timed("train", lambda: train(ctx, as_of))
    timed("profile", lambda: run_profile(ctx, as_of), repeat=True)
    pipeline = sum(r.seconds or 0.0 for r in rows if r.step in PIPELINE_STEPS)
    rows.append(BenchRow(size, PIPELINE, events, round(pipeline, 2)))
    print(rows[-1].line(), flush=True)
    rows += run_peers(ctx, size, events, as_of, root / "run" / size / "peers")
    quality[size] = run_evaluate(ctx, as_of).rows
    rows += incremental_day(ctx, size, cfg, as_of, memory)
    print_quality(size, quality[size])
    return rows


def _floor_scan(spark: SparkSession, landing: Path) -> None:
    """A bare scan: Spark's JSON reader with the schema given, every field counted once."""
    typed = EVENT_LOG_SCHEMA.replace("event_ts string", "event_ts timestamp")
    raw = spark.read.schema(typed).json(str(landing / "events"))
    raw.agg(*[F.count(c) for c in raw.columns]).collect()


def _listed(text: str, option: str, parse: Callable[[str], object]) -> list[str]:
    items = [s.strip() for s in text.split(",") if s.strip()]
    try:
        [parse(s) for s in items]
    except ValueError as exc:
        raise ConfigError(f"{option}: {exc}") from None
    return items


def _days(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"{text!r} is not a number of days such as 60 or 360")
    return int(text)


def run_bench_command(
    ctx: RunContext, sizes_text: str | None, out: str, history_text: str | None = None
) -> StepReport:
    """`userprofile bench [--sizes ...] [--history-days ...] --out ...`: measure, print, and
    write results.json. Without --sizes: 1M,10M, unless only --history-days is asked for."""
    if sizes_text is None:
        sizes_text = "" if history_text else DEFAULT_SIZES
    sizes = _listed(sizes_text, "--sizes", parse_size)
    history = [int(d) for d in _listed(history_text or "", "--history-days", _days)]
    if not sizes and not history:
        raise ConfigError("--sizes: name at least one size (or --history-days)")
    rows, quality = run_bench(ctx.spark, ctx.settings, sizes, Path(out), sorted(set(history)))
    results = Path(out) / "results.json"
    write_json(rows, quality, results)
    return StepReport("bench", {"results": str(results)})
