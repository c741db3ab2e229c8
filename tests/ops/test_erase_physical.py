"""Erasure is physical: with deletion vectors on, no data file, table version, Delta log
file or export holds the erased user afterwards, and other users' rows are intact.

The suppression list and the audit table hold the erased user's pseudonymous key by
design (they keep the user out and record the request); they hold no raw id.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq  # type: ignore[import-untyped]
import pytest
from chispa import assert_df_equality
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import MapType

from tests.conftest import SettingsFactory
from tests.helpers import TEST_KEY
from tests.ingest.raw_events import CASES, anonymous_view, event, write_landing
from userprofile.config import Settings
from userprofile.errors import ConfigError
from userprofile.ingest.privacy import RAW_COLUMNS
from userprofile.ingest.privacy import pseudonym as hmac_key
from userprofile.ingest.step import run_ingest
from userprofile.io import table_stats, tables
from userprofile.io.context import RunContext
from userprofile.ops.audience import AudienceFilter, export_location, read_export, run_export
from userprofile.ops.erase import run_erase

KEY = TEST_KEY.encode()
U1_KEY = hmac_key(KEY, "U1")
# The raw id as a whole token: not inside U10, nor the event id u1-login (case matters).
U1_TOKEN = re.compile(r"(?<![A-Za-z0-9_-])U1(?![A-Za-z0-9_-])")
DELETION_VECTORS = "spark.databricks.delta.properties.defaults.enableDeletionVectors"
SNAPSHOT = dt.date(2026, 2, 1)
# Tables that hold the user's key by design (no raw id).
KEYED_BY_DESIGN = ("ops/erasure_suppression", "ops/erasure_requests")
EXPORTS = {"plain": ("csv", False), "crm_csv": ("csv", True), "crm_parquet": ("parquet", True)}
# Each table's rows of U1 (the shared-device row of U3 is U3's).
U1_ROWS = {
    "bronze_events": "user_id = 'U1' OR event_id = 'u1-anon'",
    "bronze_quarantine": f"user_key = '{U1_KEY}'",
    "silver_events": f"user_key = '{U1_KEY}' OR event_id = 'u1-anon'",
    "silver_user_day": f"user_key = '{U1_KEY}' OR anonymous_key = '{hmac_key(KEY, 'anon-u1')}'",
    "silver_identities": f"user_key = '{U1_KEY}'",
    "silver_users": f"user_key = '{U1_KEY}'",
    "user_features": f"user_key = '{U1_KEY}'",
    "user_profile": f"user_key = '{U1_KEY}'",
}


@pytest.fixture
def deletion_vectors(spark: SparkSession) -> Iterator[None]:
    """New tables get deletion vectors (a session default: restored for the next test)."""
    before = spark.conf.get(DELETION_VECTORS, None)
    spark.conf.set(DELETION_VECTORS, "true")
    yield
    if before is None:
        spark.conf.unset(DELETION_VECTORS)
    else:
        spark.conf.set(DELETION_VECTORS, before)


def others_lines() -> list[str]:
    return [
        event(event_id="u2", user_id="U2", anonymous_id="anon-u2"),
        event(event_id="u10", user_id="U10", anonymous_id="anon-u10"),  # not U1
        CASES["MALFORMED_RECORD"],
    ]


def u1_lines() -> list[str]:
    return [
        anonymous_view("u1-anon", "anon-u1"),
        event(event_id="u1-login", user_id="U1", anonymous_id="anon-u1"),
        event(event_id="u1-bad", user_id="U1", quantity=0),  # quarantined, mentions U1
        # In the same file as U1's rows: deleting those needs a deletion vector.
        event(event_id="u2-again", user_id="U2", anonymous_id="anon-u2"),
        # Someone else later logs in on U1's device: their rows are theirs.
        event(
            event_id="u3-shared",
            user_id="U3",
            anonymous_id="anon-u1",
            event_ts="2026-01-06T10:00:00Z",
        ),
    ]


def write_crm(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["user_id,email,phone,age,gender,region,signup_date"]
    lines += [f"{u},{u.lower()}@example.com,,30,f,north,2025-12-01" for u in ("U1", "U2", "U10")]
    (folder / "crm.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def write_gold(spark: SparkSession, ctx: RunContext) -> None:
    """Features and a profile with every exported column, for U1, U2 and U10."""
    rows = [
        (hmac_key(KEY, u), SNAPSHOT, i, f"segment {i}", "active", "loyal", ["vip", u.lower()],
         0.5, 9, 100.0 + i, [] if u == "U2" else ["books"])  # an empty list too, in CSV
        for i, u in enumerate(("U1", "U2", "U10"))
    ]  # fmt: skip
    profile = spark.createDataFrame(
        rows,
        "user_key string, snapshot_date date, segment_id int, segment_name string, "
        "lifecycle_stage string, rfm_segment string, tags array<string>, "
        "purchase_propensity_30d double, propensity_decile int, predicted_value double, "
        "next_best_categories array<string>",
    )
    tables.append(profile, ctx.table("user_profile"), ["snapshot_date"])
    features = profile.select("user_key", "snapshot_date", "propensity_decile")
    tables.append(features, ctx.table("user_features"), ["snapshot_date"])


def build(spark: SparkSession, settings: Settings) -> RunContext:
    """Tables as erase finds them: bronze created by an ingest of others (without
    statistics of its raw columns), U1 arriving afterwards; gold; three exports."""
    landing = Path(settings.storage.landing)
    ctx = RunContext(spark, settings)
    write_landing(landing, "a.json", others_lines())
    run_ingest(ctx)
    write_landing(landing, "b.json", u1_lines(), day="2026-01-06")
    crm = write_crm(landing / settings.ingest.users_path)
    run_ingest(ctx)
    write_gold(spark, ctx)
    for name, (output_format, raw_ids) in EXPORTS.items():
        crm_path = str(crm) if raw_ids else None
        run_export(ctx, SNAPSHOT, AudienceFilter(), name, output_format, crm_path)
    return ctx


def frozen(spark: SparkSession, frame: DataFrame) -> DataFrame:
    """A copy that no later write changes."""
    return spark.createDataFrame(frame.collect(), frame.schema)


def sortable(frame: DataFrame) -> DataFrame:
    """Maps as sorted arrays of entries: chispa sorts rows by every column, and Spark
    cannot order by a map."""
    maps = [f.name for f in frame.schema.fields if isinstance(f.dataType, MapType)]
    if not maps:
        return frame
    return frame.withColumns({c: F.array_sort(F.map_entries(c)) for c in maps})


def values_in(path: Path) -> str:
    """Every value of a parquet file, as text (pyarrow: compression does not hide a value)."""
    return repr(pq.read_table(path).to_pylist())


def text_of(path: Path) -> str:
    if path.suffix == ".parquet":
        return values_in(path)
    return path.read_bytes().decode("utf-8", errors="replace")


def holds_u1(text: str, keys_too: bool = True) -> bool:
    return bool(U1_TOKEN.search(text)) or (keys_too and U1_KEY in text)


def data_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*.parquet") if "_delta_log" not in p.parts]


def log_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and "_delta_log" in p.parts]


def properties(spark: SparkSession, ref: tables.TableRef) -> dict[str, str]:
    shown = spark.sql(f"SHOW TBLPROPERTIES {tables.sql_name(ref)}").collect()
    return {r.key: r.value for r in shown}


def dv_commits(spark: SparkSession, ref: tables.TableRef, metric: str = "Added") -> int:
    """Commits of the table that added (DELETE or MERGE) or removed (REORG) deletion vectors."""
    history = spark.sql(f"DESCRIBE HISTORY {tables.sql_name(ref)}").collect()
    suffix = f"DeletionVectors{metric}"
    return sum(
        1
        for h in history
        if any(int(v) for m, v in h.operationMetrics.items() if m.endswith(suffix))
    )


def versions_with_u1(spark: SparkSession, ref: tables.TableRef, u1_rows: str) -> list[int]:
    """Versions time travel can still read U1's rows from (a vacuumed file fails the read)."""
    history = spark.sql(f"DESCRIBE HISTORY {tables.sql_name(ref)}").collect()
    readable = []
    for version in sorted(h.version for h in history):
        old = spark.read.format("delta").option("versionAsOf", version).load(ref.path)
        try:
            found = old.where(u1_rows).count()
        except Exception as error:  # the JVM's error type differs between sessions
            found = 0 if re.search("FILE_NOT_EXIST|does not exist", str(error)) else -1
        if found:
            readable.append(version)
    return readable


def not_u1(table_key: str) -> Column:
    return ~F.coalesce(F.expr(U1_ROWS[table_key]), F.lit(False))


def test_erase_leaves_nothing_of_the_user(
    spark: SparkSession, make_settings: SettingsFactory, tmp_path: Path, deletion_vectors: None
) -> None:
    exports = tmp_path / "exports"
    settings = make_settings(ingest={"max_reject_share": 1.0}, storage={"exports": str(exports)})
    ctx = build(spark, settings)
    refs = {t: ctx.table(t) for t in U1_ROWS}
    before = {t: tables.read(spark, r) for t, r in refs.items()}
    assert all(frame.where(U1_ROWS[t]).count() > 0 for t, frame in before.items())
    expected = {t: frozen(spark, frame.where(not_u1(t))) for t, frame in before.items()}
    exported = {n: read_export(spark, f, str(exports / n)) for n, (f, _) in EXPORTS.items()}
    assert all(e.where(F.col("user_key") == U1_KEY).count() == 1 for e in exported.values())
    assert {r.user_id for r in exported["crm_parquet"].collect()} == {"U1", "U2", "U10"}
    kept_exports = {
        n: frozen(spark, e.where(F.col("user_key") != U1_KEY)) for n, e in exported.items()
    }
    # Every table has deletion vectors on; bronze keeps no statistics of raw id columns.
    assert all(properties(spark, r)["delta.enableDeletionVectors"] == "true" for r in refs.values())
    with_stats = properties(spark, refs["bronze_events"])["delta.dataSkippingStatsColumns"]
    assert "event_ts" in with_stats.split(",")
    assert not set(with_stats.split(",")) & set(RAW_COLUMNS["bronze_events"])

    report = run_erase(ctx, ["U1"])

    warehouse = Path(settings.storage.warehouse)
    # The deletes went through deletion vectors, which the purge then rewrote away (VACUUM
    # LITE may leave the unreferenced bitmaps: row positions, no values).
    assert dv_commits(spark, refs["bronze_events"]) > 0
    assert dv_commits(spark, refs["bronze_events"], "Removed") > 0
    assert report.rows["deleted from bronze_events"] == 2  # the login and the anonymous view
    assert report.rows["deleted from bronze_quarantine"] == 1
    assert report.rows["exports rewritten"] == len(EXPORTS)

    # Other users' rows are intact, in every table and every export.
    for table_key, ref in refs.items():
        assert_df_equality(
            sortable(tables.read(spark, ref)),
            sortable(expected[table_key]),
            ignore_row_order=True,
            ignore_nullable=True,
        )
    for name, (output_format, _) in EXPORTS.items():
        assert_df_equality(
            read_export(spark, output_format, str(exports / name)),
            kept_exports[name],
            ignore_row_order=True,
            ignore_nullable=True,
        )

    # No data file of any table holds the raw id, nor the key (bar the two keyed tables).
    files = data_files(warehouse)
    assert files
    for path in files:
        keyed = any(part in path.as_posix() for part in KEYED_BY_DESIGN)
        assert not holds_u1(values_in(path), keys_too=not keyed), path
    # No version from before the erasure can be read back.
    for table_key, ref in refs.items():
        assert versions_with_u1(spark, ref, U1_ROWS[table_key]) == [], table_key
    # No Delta log file holds the raw id (conditions, statistics, checksums, checkpoints).
    logs = log_files(warehouse)
    assert any(p.suffix == ".json" for p in logs)
    assert [p for p in logs if holds_u1(text_of(p), keys_too=False)] == []
    # No export file holds the raw id or the key.
    export_files = [
        p for p in exports.rglob("*") if p.is_file() and p.suffix in (".csv", ".parquet")
    ]
    assert len(export_files) >= len(EXPORTS)
    assert [p for p in export_files if holds_u1(text_of(p))] == []


def test_an_export_goes_under_storage_exports_only(
    spark: SparkSession, make_settings: SettingsFactory, tmp_path: Path
) -> None:
    exports = tmp_path / "exports"
    ctx = RunContext(spark, make_settings(storage={"exports": str(exports)}))
    for out in (str(tmp_path / "elsewhere"), "../escaped", str(exports), exports.as_uri()):
        with pytest.raises(ConfigError, match=r"--out .*storage\.exports") as refused:
            run_export(ctx, SNAPSHOT, AudienceFilter(), out, "csv", None)
        assert "erase" in str(refused.value)
    assert not (tmp_path / "elsewhere").exists()
    assert not (tmp_path / "escaped").exists()
    # A name is a folder under storage.exports; a path or URI inside it is taken as it is.
    assert export_location(ctx.settings, "team/high_value") == str(exports / "team" / "high_value")
    inside = (exports / "x").as_uri()
    assert export_location(ctx.settings, inside) == inside


def test_a_table_created_with_stats_properties_logs_no_raw_id(
    spark: SparkSession, tmp_path: Path
) -> None:
    rows = spark.createDataFrame(
        [("U1", "e1", dt.date(2026, 1, 5)), ("U2", "e2", dt.date(2026, 1, 5))],
        "user_id string, event_id string, event_date date",
    )
    ref = tables.TableRef(key="bronze_events", path=str(tmp_path / "bronze"))
    properties = table_stats.stats_properties(rows.schema, ["user_id"], ["event_date"])
    assert properties == {"delta.dataSkippingStatsColumns": "event_id"}
    table_stats.create_if_missing(spark, ref, rows.schema, ["event_date"], properties)
    table_stats.create_if_missing(spark, ref, rows.schema, ["event_date"], properties)  # no-op
    tables.append(rows, ref, ["event_date"])
    assert tables.read(spark, ref).count() == 2
    logs = log_files(tmp_path / "bronze")
    assert logs
    assert [p for p in logs if holds_u1(text_of(p), keys_too=False)] == []
