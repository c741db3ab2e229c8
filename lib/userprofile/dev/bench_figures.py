"""The bench's figures: a row per measurement, peak memory, ratios, and how they are shown."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession

from userprofile.io.session import is_connect

PIPELINE_STEPS = ("ingest", "features", "train", "profile")
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)([kKmM]?)$")
# Rows of `--history-days` runs are labelled with the days of history, e.g. "360d".
_HISTORY = re.compile(r"^\d+d$")
# A measurement shorter than this is repeated (up to REPEATS runs) and the median kept.
SHORT_SECONDS = 30.0
REPEATS = 3
FLOOR, PIPELINE = "floor: parse raw JSON", "pipeline (sum of steps)"
DUCKDB, DAILY = "peer: duckdb core features", "incremental day (sum)"
# The targets (issue 16), each an upper bound on a ratio of times.
PIPELINE_PER_FLOOR = 5.0
INGEST_PER_FLOOR = 3.0
FEATURES_PER_DUCKDB = 2.0
DAILY_PER_PIPELINE = 0.05
LONG_HISTORY_DAILY = 1.5


@dataclass
class BenchRow:
    size: str
    step: str
    events: int
    seconds: float | None
    runs: int = 1
    # Peak resident memory during the step: the JVM (driver and executors in local mode)
    # and the Python driver; for a peer, its process.
    peak_jvm_mb: float | None = None
    peak_python_mb: float | None = None
    status: str = "ok"
    detail: dict[str, float] = field(default_factory=dict)
    # A peer's features against the product's (peer_check.FeatureCheck.summary()).
    check: dict[str, Any] = field(default_factory=dict)

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0

    def line(self, pipeline_seconds: float | None = None) -> str:
        seconds = f"{self.seconds:>9.1f}" if self.seconds is not None else f"{'-':>9}"
        share = (
            f"{self.seconds / pipeline_seconds:>6.0%}"
            if self.seconds is not None and pipeline_seconds and self.step in PIPELINE_STEPS
            else f"{'':>6}"
        )
        memory = f"{_mb(self.peak_jvm_mb):>8} {_mb(self.peak_python_mb):>8}"
        runs = f" (median of {self.runs})" if self.runs > 1 else ""
        status = "" if self.status == "ok" else f"  {self.status}"
        return (
            f"{self.size:>6}  {self.step:<28} {self.events:>12,} {seconds} "
            f"{self.events_per_second:>11,.0f} {share} {memory}{runs}{status}"
        )


HEADER = (
    f"\n{'size':>6}  {'step':<28} {'events':>12} {'seconds':>9} {'events/s':>11} "
    f"{'share':>6} {'jvm MB':>8} {'py MB':>8}"
)


def _mb(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def parse_size(text: str) -> int:
    """'1M' -> 1_000_000, '250k' -> 250_000, '5000' -> 5000."""
    match = _SIZE.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a size such as 250k, 1M or 10M")
    scale = {"": 1, "k": 1_000, "m": 1_000_000}[match.group(2).lower()]
    return int(float(match.group(1)) * scale)


def measure(
    size: str,
    step: str,
    events: int,
    run: Callable[[], object],
    memory: PeakMemory,
    repeat: bool = False,
) -> BenchRow:
    """Time ``run`` with its peak memory; repeated (median kept) while it is short."""
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


# ---------------------------------------------------------------- memory


class PeakMemory:
    """Peak resident set (VmHWM) of this process and the JVM, reset before each step.

    Linux only (``/proc``); elsewhere the figures are left empty.
    """

    def __init__(self, spark: SparkSession) -> None:
        self.jvm_pid: int | None = None
        if not is_connect(spark):
            # Classic sessions only, a bench diagnostic: the in-process JVM's pid. Over
            # Spark Connect the JVM is the server's and its memory is not measured.
            jvm = spark.sparkContext._jvm
            self.jvm_pid = int(jvm.java.lang.ProcessHandle.current().pid()) if jvm else None

    def reset(self) -> None:
        for pid in (self.jvm_pid, os.getpid()):
            # "5" resets the peak resident set size (Linux 4.0+).
            with contextlib.suppress(OSError):
                Path(f"/proc/{pid}/clear_refs").write_text("5")

    def read(self) -> tuple[float | None, float | None]:
        return vm_hwm_mb(self.jvm_pid), vm_hwm_mb(os.getpid())


def vm_hwm_mb(pid: int | None) -> float | None:
    if pid is None:
        return None
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.M)
    return int(match.group(1)) / 1024 if match else None


@dataclass
class Ratio:
    """A ratio of times and its target: at most ``target``."""

    name: str
    value: float
    target: float

    @property
    def met(self) -> bool:
        return self.value <= self.target


def ratios(rows: list[BenchRow]) -> list[Ratio]:
    """The figures the targets are stated in: per size, between sizes, between histories."""
    by = {(r.size, r.step): r.seconds for r in rows if r.seconds}
    labels = list(dict.fromkeys(r.size for r in rows))
    sizes = [s for s in labels if not _HISTORY.match(s)]
    events = {r.size: r.events for r in rows if r.step == "ingest"}
    # The DuckDB peer's own work (list the files, compute, write), without its process start.
    duckdb_work = {
        r.size: sum(r.detail.get(p, 0.0) for p in ("list files", "features", "write"))
        for r in rows
        if r.step == DUCKDB and r.detail
    }
    result: list[Ratio] = []

    def add(name: str, numerator: float | None, denominator: float | None, target: float) -> None:
        if numerator and denominator:
            result.append(Ratio(name, round(numerator / denominator, 3), target))

    for size in sizes:
        floor, pipeline = by.get((size, FLOOR)), by.get((size, PIPELINE))
        add(f"{size} pipeline / floor", pipeline, floor, PIPELINE_PER_FLOOR)
        add(f"{size} ingest / floor", by.get((size, "ingest")), floor, INGEST_PER_FLOOR)
        features, duckdb = by.get((size, "features")), duckdb_work.get(size)
        add(f"{size} features / duckdb features", features, duckdb, FEATURES_PER_DUCKDB)
        add(
            f"{size} incremental day / pipeline",
            by.get((size, DAILY)),
            pipeline,
            DAILY_PER_PIPELINE,
        )
    for small, large in itertools.pairwise(sizes):
        if events.get(small) and events.get(large):
            # Linear scaling: 10x the events in at most 10x the time.
            scale = round(events[large] / events[small], 2)
            name = f"{large} / {small} pipeline time ({scale}x events)"
            add(name, by.get((large, PIPELINE)), by.get((small, PIPELINE)), scale)
    histories = sorted((s for s in labels if _HISTORY.match(s)), key=lambda s: int(s[:-1]))
    if len(histories) > 1:
        short, long = histories[0], histories[-1]
        name = f"incremental day {long} / {short} history"
        add(name, by.get((long, DAILY)), by.get((short, DAILY)), LONG_HISTORY_DAILY)
    return result


def print_ratios(rows: list[BenchRow]) -> None:
    print("\nratios (target: at most):")
    for ratio in ratios(rows):
        verdict = "met" if ratio.met else "MISSED"
        print(f"  {ratio.name:<48} {ratio.value:>9} {ratio.target:>6}  {verdict}")
    daily = [r for r in rows if _HISTORY.match(r.size) and r.step == DAILY]
    for row in daily:
        print(f"  incremental day on {row.size} of history: {row.seconds} s")
    print(flush=True)


def print_quality(size: str, figures: dict[str, int | float | str]) -> None:
    print(f"\nmodel quality at {size} (userprofile evaluate):")
    for key, value in figures.items():
        print(f"  {key:<34} {value}")
    print(flush=True)


def write_json(
    rows: list[BenchRow], quality: dict[str, dict[str, int | float | str]], path: Path
) -> None:
    os.makedirs(path.parent, exist_ok=True)
    records = [{**asdict(r), "events_per_second": round(r.events_per_second)} for r in rows]
    figures = [{**asdict(r), "met": r.met} for r in ratios(rows)]
    document = {"steps": records, "ratios": figures, "quality": quality}
    path.write_text(json.dumps(document, indent=2))
