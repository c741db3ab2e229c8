"""The one generated pipeline run that the end-to-end tests read, and copies to change."""

from __future__ import annotations

import datetime as dt
import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from tests.helpers import conf_document, write_conf
from userprofile.cli import main
from userprofile.config import Settings, load_settings

USERS = 300
AS_OF = dt.date(2026, 3, 17)  # 75 generated days from 2026-01-01
EARLIER = dt.date(2026, 3, 10)
# What a run writes (copied for a test that changes it); landing and the ground truth are
# only read, so a copy shares them: the ingest checkpoint names the original landing files.
WRITTEN = ("warehouse", "models", "checkpoints", "reports")


@dataclass(frozen=True)
class PipelineRun:
    conf: Path
    settings: Settings

    @property
    def warehouse(self) -> Path:
        return Path(self.settings.storage.warehouse)

    @property
    def profile_path(self) -> str:
        return str(self.warehouse / "gold" / "user_profile")

    def args(self, step: str, *more: str) -> list[str]:
        return [step, "--conf", str(self.conf), *more]


def run_pipeline(root: Path) -> PipelineRun:
    """Generate the sample logs, then the pipeline for EARLIER and AS_OF (two snapshots)."""
    conf = write_conf(
        root / "e2e.yaml",
        conf_document(
            root,
            generator={"users": USERS, "days": 75, "start_date": "2026-01-01", "seed": 21},
            segmentation={"k_min": 4, "k_max": 4},
            propensity={"reg_params": [0.01], "elastic_net_params": [0.0, 0.5]},
        ),
    )
    assert main(["generate", "--conf", str(conf)]) == 0
    for day in (AS_OF, EARLIER):
        assert main(["pipeline", "--conf", str(conf), "--as-of", day.isoformat()]) == 0
    return PipelineRun(conf, load_settings(conf))


# Columns that name the run or its time: equal runs differ only in these.
RUN_COLUMNS = ("run_id", "computed_at", "segmentation_model_version", "propensity_model_version")


def profile_snapshot(
    spark: SparkSession, location: str, day: dt.date = AS_OF, version: int | None = None
) -> DataFrame:
    """One snapshot of a profile table (a path, URI or catalog name), without RUN_COLUMNS;
    ``version``: as Delta's time travel shows it then (before a test changed it)."""
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    frame = reader.load(location) if "/" in location else reader.table(location)
    return frame.where(F.col("snapshot_date") == F.lit(day)).drop(*RUN_COLUMNS)


def copy_run(run: PipelineRun, root: Path) -> PipelineRun:
    """The run's tables, models and checkpoints under ``root``, with a config pointing there."""
    document = yaml.safe_load(run.conf.read_text(encoding="utf-8"))
    for name in WRITTEN:
        source = Path(document["storage"][name])
        if source.exists():
            shutil.copytree(source, root / name)
        document["storage"][name] = str(root / name)
    conf = write_conf(root / "copy.yaml", document)
    return PipelineRun(conf, load_settings(conf))
