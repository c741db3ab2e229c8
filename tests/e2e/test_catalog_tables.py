"""Every table as a catalog name, as ``conf/databricks.yaml`` addresses Unity Catalog.

The shared run's landing files go through the pipeline with each table configured as
``spark_catalog.<schema>.<table>`` on the session catalog, with deletion vectors on
for new tables (the default of many Databricks workspaces). The profile must equal the
path-based shared run's, apart from run ids and times, and nothing may be written as a
path table under the warehouse.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from chispa import assert_approx_df_equality
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from tests.e2e.shared import AS_OF, PipelineRun, profile_snapshot
from tests.helpers import TEST_KEY, write_conf
from userprofile.cli import main
from userprofile.config.schema import TablesConfig
from userprofile.ingest.privacy import pseudonym as pseudonymous_key

pytestmark = pytest.mark.e2e

SCHEMA = "spark_catalog.userprofile_catalog_test"
DELETION_VECTORS = "spark.databricks.delta.properties.defaults.enableDeletionVectors"
# What one pipeline run writes (the erasure tables come with `erase`).
# Written only by erase, export or a held-back delivery, not by a pipeline run.
NOT_BY_PIPELINE = {
    "erasure_requests",
    "erasure_suppression",
    "export_manifest",
    "blocked_deliveries",
    "delivery_releases",
}
WRITTEN = sorted(set(TablesConfig.model_fields) - NOT_BY_PIPELINE)


@dataclass(frozen=True)
class CatalogRun:
    conf: Path
    # The profile's Delta version after the pipeline: erase (another test) adds versions.
    profile_version: int


@pytest.fixture(scope="module")
def catalog_run(
    spark: SparkSession, pipeline_run: PipelineRun, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CatalogRun]:
    root = tmp_path_factory.mktemp("catalog-run")
    document = yaml.safe_load(pipeline_run.conf.read_text(encoding="utf-8"))
    for name in ("warehouse", "models", "checkpoints", "reports"):
        document["storage"][name] = str(root / name)
    document["tables"] = {key: f"{SCHEMA}.{key}" for key in TablesConfig.model_fields}
    conf = write_conf(root / "catalog.yaml", document)
    spark.sql(f"CREATE SCHEMA {SCHEMA}")
    spark.conf.set(DELETION_VECTORS, "true")
    try:
        assert main(["pipeline", "--conf", str(conf), "--as-of", AS_OF.isoformat()]) == 0
    finally:
        spark.conf.unset(DELETION_VECTORS)
    history = spark.sql(f"DESCRIBE HISTORY {SCHEMA}.user_profile LIMIT 1").first()
    assert history is not None
    yield CatalogRun(conf, int(history["version"]))
    spark.sql(f"DROP SCHEMA {SCHEMA} CASCADE")


def test_the_pipeline_on_catalog_tables_equals_the_path_run(
    spark: SparkSession, pipeline_run: PipelineRun, catalog_run: CatalogRun
) -> None:
    by_name = profile_snapshot(spark, f"{SCHEMA}.user_profile", version=catalog_run.profile_version)
    by_path = profile_snapshot(spark, pipeline_run.profile_path)
    assert by_name.count() == by_path.count() > 0
    # Ordered here: chispa's ignore_row_order sorts on every column, and maps cannot be sorted.
    assert_approx_df_equality(by_name.orderBy("user_key"), by_path.orderBy("user_key"), 1e-9)


def test_every_table_is_in_the_catalog_and_none_under_the_warehouse(
    spark: SparkSession, catalog_run: CatalogRun
) -> None:
    missing = [t for t in WRITTEN if not spark.catalog.tableExists(f"{SCHEMA}.{t}")]
    assert missing == []
    warehouse = catalog_run.conf.parent / "warehouse"
    assert sorted(str(p) for p in warehouse.rglob("_delta_log")) == []


def test_erase_deletes_from_catalog_tables_with_deletion_vectors(
    spark: SparkSession, pipeline_run: PipelineRun, catalog_run: CatalogRun
) -> None:
    properties = spark.sql(f"SHOW TBLPROPERTIES {SCHEMA}.user_profile").collect()
    assert {"delta.enableDeletionVectors": "true"}.items() <= {
        r["key"]: r["value"] for r in properties
    }.items()
    crm = Path(pipeline_run.settings.storage.landing) / "users"
    user_id = str(spark.read.option("header", "true").csv(str(crm)).first()["user_id"])  # type: ignore[index]
    user_key = pseudonymous_key(TEST_KEY.encode(), user_id)

    def rows(table: str) -> int:
        return spark.read.table(f"{SCHEMA}.{table}").where(F.col("user_key") == user_key).count()

    assert rows("user_profile") > 0
    # History kept: the comparison with the path-based run reads the profile by time travel.
    conf = str(catalog_run.conf)
    assert main(["erase", "--conf", conf, "--user-id", user_id, "--vacuum-hours", "168"]) == 0
    assert [rows(t) for t in ("user_profile", "silver_events", "user_features")] == [0, 0, 0]
