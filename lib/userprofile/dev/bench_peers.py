"""The bench's peers, each in a child process: wall time, peak memory, and a check that
the features it computed are the product's (``peer_check``)."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

from userprofile.dev.bench_figures import DUCKDB, BenchRow, vm_hwm_mb
from userprofile.dev.peer_check import (
    FeatureCheck,
    check_features,
    product_feature_files,
    pseudonymised,
)
from userprofile.ingest.privacy import pseudonym_key
from userprofile.io.context import RunContext

PEER_TIMEOUT_SECONDS = 3600.0
PEER_MEMORY_LIMIT_MB = 16_000
# peer -> its row's step
PEERS = {
    "duckdb": DUCKDB,
    "polars": "peer: polars core features",
    "pandas": "peer: pandas+sklearn",
}


def run_peers(
    ctx: RunContext, size: str, events: int, as_of: dt.date, scratch: Path
) -> list[BenchRow]:
    """Every peer on this warehouse's data; each row printed with its check as it comes."""
    paths = {k: ctx.table(k).path for k in ("silver_events", "silver_identities", "silver_users")}
    product = ctx.table("user_features").path
    if product is None or None in paths.values():
        return [
            BenchRow(size, s, events, None, status="not run: catalog tables")
            for s in PEERS.values()
        ]
    landing = Path(ctx.settings.storage.landing)
    inputs = {
        "silver": [
            *("--events", str(paths["silver_events"])),
            *("--identities", str(paths["silver_identities"])),
            *("--users", str(paths["silver_users"])),
        ],
        "raw": ["--landing", str(landing), "--crm", str(landing / ctx.settings.ingest.users_path)],
    }
    scratch.mkdir(parents=True, exist_ok=True)
    rows = []
    for peer, step in PEERS.items():
        out = scratch / f"{peer}.parquet"
        out.unlink(missing_ok=True)
        if importlib.util.find_spec(peer) is None:
            rows.append(BenchRow(size, step, events, None, status=f"not run: {peer} not installed"))
            print(rows[-1].line(), flush=True)
            continue
        flags = inputs["raw" if peer == "pandas" else "silver"]
        row = _peer(size, step, events, [peer, *flags, "--as-of", str(as_of), "--out", str(out)])
        print(row.line(), flush=True)
        if row.status == "ok":
            check = _check(ctx, peer, Path(product), as_of, out)
            row.check = check.summary()
            for line in check.lines():
                print(line, flush=True)
        rows.append(row)
    return rows


def _check(ctx: RunContext, peer: str, product: Path, as_of: dt.date, out: Path) -> FeatureCheck:
    try:
        files = product_feature_files(product, as_of)
        features = pseudonymised(out, pseudonym_key(ctx.settings)) if peer == "pandas" else out
        return check_features(peer, files, features)
    except Exception as exc:  # a failed check is reported in the figures, not fatal to the bench
        return FeatureCheck(peer, error=f"{type(exc).__name__}: {str(exc)[:200]}")


def _peer(size: str, step: str, events: int, arguments: list[str]) -> BenchRow:
    """A peer in a child process: wall time, its peak memory, and how it ended."""
    command = [sys.executable, "-m", "userprofile.dev.peers", *arguments]
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
