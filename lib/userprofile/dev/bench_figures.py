"""The bench's figures: a row per measurement, peak memory, ratios, and how they are shown."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pyspark.sql import SparkSession

from userprofile.io.session import is_connect

PIPELINE_STEPS = ("ingest", "features", "train", "profile")
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)([kKmM]?)$")


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


def ratios(rows: list[BenchRow]) -> dict[str, float]:
    """The figures the targets are stated in, per size and between consecutive sizes."""
    by = {(r.size, r.step): r.seconds for r in rows if r.seconds is not None}
    sizes = list(dict.fromkeys(r.size for r in rows))
    events = {r.size: r.events for r in rows if r.step == "ingest"}
    result: dict[str, float] = {}
    for size in sizes:
        floor, pipeline = (
            by.get((size, "floor: parse raw JSON")),
            by.get((size, "pipeline (sum of steps)")),
        )
        features, duck = by.get((size, "features")), by.get((size, "peer: duckdb core features"))
        daily = by.get((size, "incremental day (sum)"))
        if floor and pipeline:
            result[f"{size} pipeline / floor"] = round(pipeline / floor, 2)
        if features and duck:
            result[f"{size} features / duckdb features"] = round(features / duck, 2)
        if daily and pipeline:
            result[f"{size} incremental day / full pipeline"] = round(daily / pipeline, 3)
    for small, large in itertools.pairwise(sizes):
        small_time, large_time = (
            by.get((small, "pipeline (sum of steps)")),
            by.get((large, "pipeline (sum of steps)")),
        )
        if small_time and large_time and events.get(small):
            result[f"{large} / {small} pipeline time"] = round(large_time / small_time, 2)
            result[f"{large} / {small} events"] = round(events[large] / events[small], 2)
    return result


def print_ratios(rows: list[BenchRow]) -> None:
    print("\nratios:")
    for name, value in ratios(rows).items():
        print(f"  {name:<44} {value}")
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
    document = {"steps": records, "ratios": ratios(rows), "quality": quality}
    path.write_text(json.dumps(document, indent=2))
