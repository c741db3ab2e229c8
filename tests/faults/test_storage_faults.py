"""The warehouse disk fills up, or turns read-only, in the middle of a run.

The warehouse lives on a small tmpfs mounted for the test (skipped, with the reason,
where the machine forbids mounts). The run must fail with a plain message, leave every
table at a committed version, and a re-run on a healthy disk must equal a clean run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from pyspark.sql import SparkSession

from tests.e2e.shared import PipelineRun, copy_run
from tests.faults.runs import AS_OF, assert_same_rows, assert_same_tables, contents, run_pipeline
from tests.helpers import TEST_KEY, write_conf
from userprofile.config import load_settings
from userprofile.ingest.step import PAUSE_ENV

HEADROOM = 256 * 1024  # bytes free on the small disk: the run fills it part way


def mount(folder: Path, options: str) -> None:
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], check=True)


def remount(folder: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(folder)], check=True)


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    """An empty tmpfs of 256 MB, unmounted afterwards."""
    folder = tmp_path / "disk"
    folder.mkdir()
    try:
        mount(folder, "size=256m")
    except (OSError, subprocess.CalledProcessError) as refused:
        pytest.skip(f"this machine forbids mounting a tmpfs ({refused}): storage faults untested")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def on_disk(run: PipelineRun, disk: Path) -> PipelineRun:
    """The run with its warehouse moved onto ``disk``."""
    shutil.copytree(run.warehouse, disk / "warehouse")
    shutil.rmtree(run.warehouse)
    document = yaml.safe_load(run.conf.read_text(encoding="utf-8"))
    document["storage"]["warehouse"] = str(disk / "warehouse")
    conf = write_conf(run.conf, document)
    return PipelineRun(conf, load_settings(conf))


def pipeline(run: PipelineRun, **env: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "userprofile.cli", *run.args("pipeline")]
    return subprocess.Popen(
        [*command, "--as-of", AS_OF.isoformat()],
        env={**os.environ, "USERPROFILE_PSEUDONYM_KEY": TEST_KEY, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def failure(process: subprocess.Popen[str]) -> str:
    """The last line a failed run printed (the run is killed if it is still going at 15 min)."""
    try:
        _, stderr = process.communicate(timeout=900)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 1, f"the run did not fail as it should: {stderr[-3000:]}"
    return stderr.strip().splitlines()[-1]


def assert_each_table_committed(
    spark: SparkSession, run: PipelineRun, base: PipelineRun, clean: PipelineRun
) -> None:
    """Every table reads as it was before the run, or as a clean run leaves it: no torn one."""
    for key in run.settings.tables.model_dump():
        now = contents(spark, run, key)
        if now is None:
            continue
        before, after = contents(spark, base, key), contents(spark, clean, key)
        matches = []
        for good in (before, after):
            try:
                if good is not None:
                    assert_same_rows(now, good)
                    matches.append(good)
            except AssertionError:
                pass
        assert matches, f"{key} is neither at its last good version nor at a clean run's"


def test_a_full_disk_fails_the_run_plainly_and_a_rerun_recovers(
    spark: SparkSession, base: PipelineRun, clean: PipelineRun, tmp_path: Path, disk: Path
) -> None:
    run = on_disk(copy_run(base, tmp_path / "run"), disk)
    used = shutil.disk_usage(disk).used
    remount(disk, f"size={used + HEADROOM}")
    line = failure(pipeline(run))
    assert line.startswith("userprofile: error: the storage is full (No space left on device)")
    assert_each_table_committed(spark, run, base, clean)
    remount(disk, "size=256m")
    run_pipeline(run)
    assert_same_tables(spark, run, clean)


def test_a_disk_turned_read_only_mid_ingest_fails_plainly_and_a_rerun_recovers(
    spark: SparkSession, base: PipelineRun, clean: PipelineRun, tmp_path: Path, disk: Path
) -> None:
    run = on_disk(copy_run(base, tmp_path / "run"), disk)
    release = tmp_path / "release"
    victim = pipeline(run, **{PAUSE_ENV: str(release)})
    reached = Path(f"{release}.reached")
    deadline = time.monotonic() + 300
    while not reached.exists() and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    try:
        assert reached.exists(), "ingest never reached its first write"
        remount(disk, "ro")  # after the batch read its inputs, before it wrote anything
    except BaseException:
        victim.kill()  # not left running against the disk the fixture unmounts
        victim.communicate()
        raise
    release.touch()
    line = failure(victim)
    assert line.startswith("userprofile: error: the storage refused a write (Read-only file")
    assert_each_table_committed(spark, run, base, clean)
    remount(disk, "rw")
    run_pipeline(run)
    assert_same_tables(spark, run, clean)
