"""`userprofile bench`: figures, not tests.

Generates events at chosen sizes once into a cache folder, then measures in one
run, side by side: the floor (one Spark scan parsing every field of the raw
JSON), each pipeline step into a fresh warehouse (ingest, features, train,
profile) and their sum, the peers on the same data (pandas + scikit-learn from
the raw JSON; DuckDB computing the core features from the silver Parquet
files), and an incremental day (~1% new events: ingest, features, profile,
with the week-old model reused). Prints a table (seconds, events/s, peak
memory, share of the pipeline) and the ratios, and writes the same as JSON.
Short measurements are repeated and their median reported.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from userprofile.config import EventSource, Settings
from userprofile.dev.bench_figures import (
    HEADER,
    PIPELINE_STEPS,
    BenchRow,
    PeakMemory,
    parse_size,
    print_quality,
    print_ratios,
    vm_hwm_mb,
    write_json,
)
from userprofile.dev.evaluate import run_evaluate
from userprofile.dev.generator import (
    EVENT_LOG_SCHEMA,
    crm_users,
    generate_events,
    generate_users,
    ground_truth,
)
from userprofile.errors import ConfigError
from userprofile.features.step import run_features
from userprofile.ingest.step import run_ingest
from userprofile.io.context import RunContext, StepReport
from userprofile.pipeline import train
from userprofile.profile.step import run_profile

# Events per user over the generator's default 120 days (measured: 464,823 / 2,000).
EVENTS_PER_USER_120_DAYS = 232
BENCH_DAYS = 120
# A measurement shorter than this is repeated (up to REPEATS runs) and the median kept.
SHORT_SECONDS = 30.0
REPEATS = 3
PEER_TIMEOUT_SECONDS = 3600.0
PEER_MEMORY_LIMIT_MB = 16_000


# ---------------------------------------------------------------- the run


def run_bench(
    spark: SparkSession, settings: Settings, sizes: list[str], root: Path
) -> tuple[list[BenchRow], dict[str, dict[str, int | float | str]]]:
    """Timings per size and step, and the models' quality per size; rows print as they come."""
    rows: list[BenchRow] = []
    quality: dict[str, dict[str, int | float | str]] = {}
    memory = PeakMemory(spark)
    print(HEADER, flush=True)
    for size in sizes:
        rows += _bench_size(spark, settings, size, root, memory, quality)
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
    landing = _cached_landing(spark, settings, parse_size(size), root / "cache" / size)
    events = spark.read.text(str(landing / "events")).count()
    # A warehouse (and MLflow store) per size: a store deleted under MLflow breaks its cache.
    ctx = RunContext(spark, _bench_settings(settings, landing, root / "run" / size))
    as_of = settings.generator.start_date + dt.timedelta(days=BENCH_DAYS)
    rows: list[BenchRow] = []

    def measure(step: str, run: Callable[[], object], repeat: bool = False) -> BenchRow:
        row = _measure(size, step, events, run, memory, repeat)
        rows.append(row)
        print(row.line(), flush=True)
        return row

    measure("floor: parse raw JSON", lambda: _floor_scan(spark, landing), repeat=True)
    measure("ingest", lambda: run_ingest(ctx))
    measure("features", lambda: run_features(ctx, as_of), repeat=True)
    measure("train", lambda: train(ctx, as_of))
    measure("profile", lambda: run_profile(ctx, as_of), repeat=True)
    pipeline = sum(r.seconds or 0.0 for r in rows if r.step in PIPELINE_STEPS)
    rows.append(BenchRow(size, "pipeline (sum of steps)", events, round(pipeline, 2)))
    print(rows[-1].line(), flush=True)
    silver = Path(ctx.settings.storage.warehouse) / ctx.settings.tables.silver_events
    rows.append(_peer(size, "peer: duckdb core features", events, "duckdb", silver, as_of))
    print(rows[-1].line(), flush=True)
    rows.append(_peer(size, "peer: pandas+sklearn", events, "pandas", landing, as_of))
    print(rows[-1].line(), flush=True)
    quality[size] = run_evaluate(ctx, as_of).rows
    rows += _incremental_day(spark, ctx, size, landing, as_of, memory)
    print_quality(size, quality[size])
    return rows


def _measure(
    size: str,
    step: str,
    events: int,
    run: Callable[[], object],
    memory: PeakMemory,
    repeat: bool,
) -> BenchRow:
    timings: list[float] = []
    peaks: list[tuple[float | None, float | None]] = []
    while True:
        memory.reset()
        start = time.perf_counter()
        run()
        timings.append(round(time.perf_counter() - start, 2))
        peaks.append(memory.read())
        if not repeat or len(timings) >= REPEATS or timings[0] >= SHORT_SECONDS:
            break
    jvm = max((p[0] for p in peaks if p[0] is not None), default=None)
    python = max((p[1] for p in peaks if p[1] is not None), default=None)
    return BenchRow(size, step, events, statistics.median(timings), len(timings), jvm, python)


def _floor_scan(spark: SparkSession, landing: Path) -> None:
    """A bare scan: Spark's JSON reader with the schema given, every field counted once."""
    typed = EVENT_LOG_SCHEMA.replace("event_ts string", "event_ts timestamp")
    raw = spark.read.schema(typed).json(str(landing / "events"))
    raw.agg(*[F.count(c) for c in raw.columns]).collect()


def _peer(size: str, step: str, events: int, peer: str, data: Path, as_of: dt.date) -> BenchRow:
    """A peer in a child process: wall time, its peak memory, and how it ended."""
    flag = "--silver" if peer == "duckdb" else "--landing"
    command = [sys.executable, "-m", "userprofile.dev.peers", peer, flag, str(data)]
    command += ["--as-of", str(as_of)]
    start = time.perf_counter()
    try:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except OSError as exc:
        return BenchRow(size, step, events, None, status=f"failed: {exc}")
    status, peak_mb = _wait_within_limits(process)
    seconds = round(time.perf_counter() - start, 2)
    out, err = process.communicate()
    if status == "ok" and process.returncode != 0:
        last = (err.decode(errors="replace").strip().splitlines() or ["?"])[-1]
        status = f"failed: {last[:120]}"
    detail = json.loads(out.decode().strip().splitlines()[-1]) if status == "ok" else {}
    return BenchRow(
        size,
        step,
        events,
        seconds if status == "ok" else None,
        peak_python_mb=peak_mb,
        status=status,
        detail=detail,
    )


def _wait_within_limits(process: subprocess.Popen[bytes]) -> tuple[str, float | None]:
    """Poll the child's memory; stop it past the memory or time limit."""
    started, peak = time.perf_counter(), None
    while process.poll() is None:
        rss = vm_hwm_mb(process.pid)
        peak = max(peak or 0.0, rss or 0.0) or None
        if rss is not None and rss > PEER_MEMORY_LIMIT_MB:
            process.kill()
            return f"out of memory (> {PEER_MEMORY_LIMIT_MB:,} MB, stopped)", peak
        if time.perf_counter() - started > PEER_TIMEOUT_SECONDS:
            process.kill()
            return f"timed out (> {PEER_TIMEOUT_SECONDS:.0f} s)", peak
        time.sleep(0.2)
    return "ok", peak


# ---------------------------------------------------------------- incremental day


def _incremental_day(
    spark: SparkSession,
    ctx: RunContext,
    size: str,
    landing: Path,
    as_of: dt.date,
    memory: PeakMemory,
) -> list[BenchRow]:
    """One more day of events (~1%) as a new delivery, then the daily run of the next snapshot."""
    increment = Path(ctx.settings.storage.warehouse).parent / "increment"
    new_events = _write_next_day(spark, ctx.settings, landing, increment, as_of)
    sources = {
        **ctx.settings.ingest.sources,
        "events_next_day": EventSource(format="json", path=str(increment)),
    }
    daily = RunContext(
        spark,
        ctx.settings.model_copy(
            update={"ingest": ctx.settings.ingest.model_copy(update={"sources": sources})}
        ),
    )
    next_day = as_of + dt.timedelta(days=1)
    rows = []
    for step, run in (
        ("incremental: ingest", lambda: run_ingest(daily)),
        ("incremental: features", lambda: run_features(daily, next_day)),
        ("incremental: train (reused)", lambda: train(daily, next_day, 7)),
        ("incremental: profile", lambda: run_profile(daily, next_day)),
    ):
        rows.append(_measure(size, step, new_events, run, memory, repeat=False))
        print(rows[-1].line(), flush=True)
    total = round(sum(r.seconds or 0.0 for r in rows), 2)
    rows.append(BenchRow(size, "incremental day (sum)", new_events, total))
    print(rows[-1].line(), flush=True)
    return rows


def _write_next_day(
    spark: SparkSession, settings: Settings, landing: Path, folder: Path, as_of: dt.date
) -> int:
    """The generator's events of day ``as_of`` (the day after the cached range), as lines."""
    users = max(1, _cached_events(landing) // EVENTS_PER_USER_120_DAYS)
    cached = settings.generator.model_copy(update={"users": users, "days": BENCH_DAYS})
    # The cached users, active one day longer: their next day of events.
    people = generate_users(spark, cached)
    longer = cached.model_copy(update={"days": BENCH_DAYS + 1})
    lines = generate_events(people, longer).where(
        F.get_json_object("value", "$.event_ts").startswith(str(as_of))
    )
    shutil.rmtree(folder, ignore_errors=True)
    lines.select("value").coalesce(1).write.text(str(folder / f"landing_date={as_of}"))
    return spark.read.text(str(folder)).count()


# ---------------------------------------------------------------- data and settings


def _cached_events(landing: Path) -> int:
    return int((landing / "_SUCCESS_BENCH").read_text())


def _cached_landing(spark: SparkSession, settings: Settings, events: int, folder: Path) -> Path:
    """Events, CRM users and ground truth for ``events`` events, generated once per size."""
    users = max(1, events // EVENTS_PER_USER_120_DAYS)
    cfg = settings.generator.model_copy(update={"users": users, "days": BENCH_DAYS})
    people = generate_users(spark, cfg)
    if not (folder / "_SUCCESS_BENCH").exists():
        shutil.rmtree(folder, ignore_errors=True)
        lines = generate_events(people, cfg)
        lines.repartition("landing_date").write.partitionBy("landing_date").text(
            str(folder / "events")
        )
        (folder / "_SUCCESS_BENCH").write_text(str(events))
    # Users and truth are cheap and deterministic: added to caches made before they were.
    if not (folder / "users").exists():
        crm = crm_users(people).coalesce(1).write.option("header", "true")
        crm.csv(str(folder / "users"))
    if not (folder / "ground_truth").exists():
        ground_truth(people).write.parquet(str(folder / "ground_truth" / "users"))
    return folder


def _bench_settings(settings: Settings, landing: Path, run_root: Path) -> Settings:
    """Settings for a fresh warehouse under ``run_root`` reading the cached landing."""
    shutil.rmtree(run_root, ignore_errors=True)
    storage = settings.storage.model_copy(
        update={
            "landing": str(landing),
            "warehouse": str(run_root / "warehouse"),
            "checkpoints": str(run_root / "checkpoints"),
            "models": str(run_root / "models"),
            "ground_truth": str(landing / "ground_truth"),
        }
    )
    ingest = settings.ingest.model_copy(update={"max_reject_share": 1.0})
    return settings.model_copy(update={"storage": storage, "ingest": ingest})


def run_bench_command(ctx: RunContext, sizes_text: str, out: str) -> StepReport:
    """`userprofile bench --sizes ... --out ...`: measure, print, and write results.json."""
    sizes = [s.strip() for s in sizes_text.split(",") if s.strip()]
    try:
        [parse_size(s) for s in sizes]
    except ValueError as exc:
        raise ConfigError(f"--sizes: {exc}") from None
    rows, quality = run_bench(ctx.spark, ctx.settings, sizes, Path(out))
    results = Path(out) / "results.json"
    write_json(rows, quality, results)
    return StepReport("bench", {"results": str(results)})
