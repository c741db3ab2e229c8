"""A run killed mid-way and re-run ends with exactly the expected rows."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from pyspark.sql import SparkSession

from tests.helpers import TEST_KEY, conf_document, write_conf
from tests.test_ingest import CASES, event, write_landing
from userprofile import tables
from userprofile.config import load_settings
from userprofile.steps.common import RunContext
from userprofile.steps.ingest import run_ingest

FILES = 6


def test_killed_ingest_resumes_exactly_once(spark: SparkSession, tmp_path: Path) -> None:
    conf = write_conf(
        tmp_path / "crash.yaml",
        # One file per micro-batch, so the kill lands between batches or inside one.
        conf_document(tmp_path, ingest={"max_files_per_batch": 1, "max_reject_share": 1.0}),
    )
    settings = load_settings(conf)
    landing = Path(settings.storage.landing)
    expected_ids = set()
    for i in range(FILES):
        ids = [f"f{i}-{j}" for j in range(3)]
        expected_ids.update(ids)
        # Each file repeats an event of the previous one, and has one bad line.
        repeat = [event(event_id=f"f{i - 1}-0")] if i else []
        write_landing(
            landing,
            f"part-{i:03d}.json",
            [*(event(event_id=x) for x in ids), *repeat, CASES["BAD_QUANTITY"]],
        )

    env = {**os.environ, "USERPROFILE_PSEUDONYM_KEY": TEST_KEY}
    victim = subprocess.Popen(
        [sys.executable, "-m", "userprofile.cli", "ingest", "--conf", str(conf)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    first_commit = (
        Path(settings.storage.warehouse) / "bronze/events/_delta_log/00000000000000000000.json"
    )
    deadline = time.monotonic() + 240
    while not first_commit.exists() and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    assert victim.wait(timeout=60) == -signal.SIGKILL, (
        "the ingest finished before it could be killed"
    )

    ctx = RunContext(spark, settings)
    run_ingest(ctx)
    bronze = [r.event_id for r in tables.read(spark, ctx.table("bronze_events")).collect()]
    assert len(bronze) == FILES * 3 + (FILES - 1)  # every valid line once, repeats included
    assert set(bronze) == expected_ids
    silver = [r.event_id for r in tables.read(spark, ctx.table("silver_events")).collect()]
    assert sorted(silver) == sorted(expected_ids)
    assert tables.read(spark, ctx.table("bronze_quarantine")).count() == FILES
