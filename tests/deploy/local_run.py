"""The deterministic tables of a cluster run, computed again here without the cluster.

``userprofile ingest`` then ``userprofile features --as-of`` run in this process, on the
test run's local Spark session, over the cluster run's landing folder (read only) with the
same settings but every other storage folder under a folder of their own (plain paths).
What the two runs wrote is then compared without the columns that name a run or a time.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import yaml
from chispa import assert_approx_df_equality
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import MapType

from tests.helpers import storage_under, write_conf
from userprofile.cli import main
from userprofile.config import Settings, load_settings
from userprofile.io import locations, tables

# Columns that say which run wrote a row, or when; everything else is deterministic.
RUN_COLUMNS = ("run_id", "_ingested_at", "_updated_at", "computed_at")
# The tables compared (user_features at the snapshot only).
COMPARED = ("silver_events", "silver_users", "silver_user_day", "user_features")
# Money is summed exactly (as decimals), so money columns agree to the cent and beyond;
# the tolerance covers the ratios computed from them in doubles.
PRECISION = 1e-9


def assert_same_table(
    spark: SparkSession, actual: Settings, expected: Settings, key: str, as_of: dt.date
) -> None:
    """Table ``key`` as the ``actual`` run wrote it holds the ``expected`` run's rows."""
    found, wanted = (comparable(spark, s, key, as_of) for s in (actual, expected))
    assert wanted.count() > 0, f"{key}: the expected table is empty"
    same = {"ignore_row_order": True, "ignore_nullable": True, "allow_nan_equality": True}
    assert_approx_df_equality(found, wanted, PRECISION, **same)


def run_locally(cluster_conf: Path, root: Path, as_of: dt.date) -> Settings:
    """Ingest and features as of ``as_of``, locally, on the landing of ``cluster_conf``."""
    landing = locations.local_path(load_settings(cluster_conf).storage.landing)
    assert landing is not None, "the cluster run's landing is not on the local file system"
    document = yaml.safe_load(cluster_conf.read_text(encoding="utf-8"))
    document["storage"] = {**storage_under(root), "landing": str(landing)}
    conf = write_conf(root / "local.yaml", document)
    assert main(["ingest", "--conf", str(conf)]) == 0
    assert main(["features", "--conf", str(conf), "--as-of", as_of.isoformat()]) == 0
    return load_settings(conf)


def comparable(spark: SparkSession, settings: Settings, key: str, as_of: dt.date) -> DataFrame:
    """A table as written by a run, without its run columns (user_features: one snapshot)."""
    frame = tables.read(spark, tables.resolve(settings, key))
    if key == "user_features":
        frame = frame.where(F.col("snapshot_date") == F.lit(as_of))
    frame = frame.drop(*RUN_COLUMNS)
    # Maps become their entries in key order: rows are sorted (by hash) to be compared, and
    # Spark cannot hash a map.
    maps = [f.name for f in frame.schema.fields if isinstance(f.dataType, MapType)]
    return frame.withColumns({c: F.array_sort(F.map_entries(c)) for c in maps})
