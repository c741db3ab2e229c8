"""Where a Spark application's time went: stage durations from its event log, by call site.

Enable the log for a run (e.g. in the config's ``spark.conf``:
``spark.eventLog.enabled: "true"``, ``spark.eventLog.dir: file:///tmp/spark-events``),
then: ``python scripts/event_log_summary.py /tmp/spark-events/local-...`` prints the
stages that took longest (wall seconds, executor CPU seconds, tasks, input and shuffle
bytes, the plan operators the stage ran) and the total per call site (the line of our
code that triggered the job; inside a streaming ``foreachBatch`` that is the stream's
batch, so the operators tell the stages apart). Executor CPU leaves out Python workers
(pandas UDFs); on a shared machine it varies less than wall time.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Stage:
    stage_id: int
    name: str
    seconds: float
    tasks: int
    input_mb: float
    shuffle_read_mb: float
    shuffle_write_mb: float
    call_site: str
    cpu_seconds: float = 0.0
    operators: str = ""


# Plan operators that say nothing about what a stage did.
_PLUMBING = ("WholeStageCodegen", "map", "mapPartitions", "mapPartitionsInternal", "parallelize")


def events(path: Path) -> Iterator[dict[str, Any]]:
    """Events of a log file, or of a rolling log folder (``eventlog_v2_*/events_<n>_*``)."""
    if path.is_dir():
        parts = sorted(path.glob("events_*"), key=lambda p: int(p.name.split("_")[1]))
    else:
        parts = [path]
    for part in parts:
        for line in _text(part).splitlines():
            if line.strip():
                yield json.loads(line)


def _text(part: Path) -> str:
    """A log file's text; Spark 4 compresses logs with zstd by default."""
    if part.suffix != ".zstd":
        return part.read_text(encoding="utf-8")
    if shutil.which("zstd") is None:
        raise SystemExit(f"{part}: needs the zstd tool, or spark.eventLog.compress=false")
    done = subprocess.run(["zstd", "-dcq", str(part)], capture_output=True, check=False)
    return done.stdout.decode("utf-8", errors="replace")


def stages(path: Path) -> list[Stage]:
    """Completed stages, each with the call site of the job that ran it."""
    site_of_stage: dict[int, str] = {}
    found: list[Stage] = []
    for event in events(path):
        kind = event.get("Event")
        if kind == "SparkListenerJobStart":
            props = event.get("Properties") or {}
            site = props.get("callSite.short") or props.get("spark.job.description") or "?"
            site = " ".join(str(site).split())  # a stream's description spans lines
            for stage_id in event.get("Stage IDs", []):
                site_of_stage[stage_id] = site
        elif kind == "SparkListenerStageCompleted":
            info = event["Stage Info"]
            found.append(_stage(info, site_of_stage.get(info["Stage ID"], "?")))
    return found


def _stage(info: dict[str, Any], call_site: str) -> Stage:
    accumulables = {a.get("Name"): a.get("Value") for a in info.get("Accumulables", [])}

    def mb(name: str) -> float:
        return float(accumulables.get(name) or 0) / 1e6

    start, end = info.get("Submission Time") or 0, info.get("Completion Time") or 0
    operators: list[str] = []
    for rdd in info.get("RDD Info", []):
        name = str(json.loads(rdd["Scope"]).get("name", "")) if rdd.get("Scope") else ""
        if name and not name.startswith(_PLUMBING) and name.strip() not in operators:
            operators.append(name.strip())
    return Stage(
        stage_id=info["Stage ID"],
        name=info.get("Stage Name", ""),
        seconds=(end - start) / 1000,
        tasks=info.get("Number of Tasks", 0),
        input_mb=mb("internal.metrics.input.bytesRead"),
        shuffle_read_mb=mb("internal.metrics.shuffle.read.remoteBytesRead")
        + mb("internal.metrics.shuffle.read.localBytesRead"),
        shuffle_write_mb=mb("internal.metrics.shuffle.write.bytesWritten"),
        call_site=call_site,
        cpu_seconds=float(accumulables.get("internal.metrics.executorCpuTime") or 0) / 1e9,
        operators=", ".join(sorted(operators)),
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("event_log", type=Path)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args(argv)
    found = stages(args.event_log)
    total = sum(s.seconds for s in found)
    cpu = sum(s.cpu_seconds for s in found)
    print(f"{len(found)} stages, {total:,.0f} s of stage wall time, {cpu:,.0f} s executor CPU\n")
    header = (
        f"{'seconds':>8} {'cpu s':>6} {'tasks':>6} {'input MB':>9} {'shuf rd':>8} {'shuf wr':>8}"
    )
    print(f"{header}  stage: operators / call site")
    for s in sorted(found, key=lambda s: -s.seconds)[: args.top]:
        print(
            f"{s.seconds:>8.1f} {s.cpu_seconds:>6.1f} {s.tasks:>6} {s.input_mb:>9.0f} "
            f"{s.shuffle_read_mb:>8.0f} {s.shuffle_write_mb:>8.0f}  {s.stage_id}: "
            f"{(s.operators or s.name)[:70]} / {s.call_site[:50]}"
        )
    by_site: dict[str, float] = defaultdict(float)
    for s in found:
        by_site[s.call_site] += s.seconds
    print("\nby call site:")
    for site, seconds in sorted(by_site.items(), key=lambda kv: -kv[1])[: args.top]:
        print(f"{seconds:>8.1f}  {site}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
