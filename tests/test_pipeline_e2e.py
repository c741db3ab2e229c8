"""The whole path, as a user runs it: generate, pipeline, read the profile without Spark."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pandas as pd
import pytest
from deltalake import DeltaTable
from matplotlib.figure import Figure
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from tests.helpers import REPO, TEST_KEY, conf_document, write_conf
from tests.notebooks import run_notebook
from userprofile.cli import main
from userprofile.config import load_settings
from userprofile.contract import PROFILE_COLUMNS
from userprofile.privacy import hmac_sha256_hex
from userprofile.publish import GONE

USERS = 300
AS_OF = dt.date(2026, 3, 17)  # 75 generated days from 2026-01-01
EARLIER = dt.date(2026, 3, 10)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def conf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("e2e")
    return write_conf(
        root / "e2e.yaml",
        conf_document(
            root,
            generator={"users": USERS, "days": 75, "start_date": "2026-01-01", "seed": 21},
            segmentation={"k_min": 4, "k_max": 4},
            propensity={"reg_params": [0.01], "elastic_net_params": [0.0, 0.5]},
        ),
    )


@pytest.fixture(scope="module")
def profile_path(spark: SparkSession, conf: Path) -> str:
    assert main(["generate", "--conf", str(conf)]) == 0
    assert main(["pipeline", "--conf", str(conf), "--as-of", AS_OF.isoformat()]) == 0
    return str(Path(load_settings(conf).storage.warehouse) / "gold" / "user_profile")


def snapshot_rows(path: str, day: dt.date) -> int:
    table = DeltaTable(path).to_pyarrow_table(filters=[("snapshot_date", "=", day)])
    return table.num_rows


def test_profile_is_readable_without_spark(profile_path: str) -> None:
    table = DeltaTable(profile_path)
    assert table.metadata().partition_columns == ["snapshot_date"]
    assert [f.name for f in table.schema().fields] == [c.name for c in PROFILE_COLUMNS]
    assert snapshot_rows(profile_path, AS_OF) == USERS  # every generated user, once


def test_consumer_view_matches_spark(spark: SparkSession, profile_path: str) -> None:
    frame = DeltaTable(profile_path).to_pandas(filters=[("snapshot_date", "=", AS_OF)])
    spark_rows = (
        spark.read.format("delta").load(profile_path).where(F.col("snapshot_date") == AS_OF)
    )
    expected = {r.user_key: (r.segment_id, r.lifecycle_stage) for r in spark_rows.collect()}
    got = {
        k: (s, stage)
        for k, s, stage in zip(frame.user_key, frame.segment_id, frame.lifecycle_stage, strict=True)
    }
    assert got == expected
    assert frame.purchase_propensity_30d.between(0, 1).all()
    assert set(frame.propensity_decile) == set(range(1, 11))
    assert set(frame.segment_id) == {0, 1, 2, 3}
    assert frame.run_id.nunique() == 1
    buyers = frame.days_since_last_purchase.notna()
    assert buyers.any()
    assert (~buyers).any()
    for column in ("r_score", "f_score", "m_score"):
        assert set(frame[column][buyers]) <= {1, 2, 3, 4, 5}
        assert frame[column][~buyers].isna().all()
    assert frame.predicted_purchases[buyers].gt(0).all()
    assert frame.probability_alive[buyers].between(0, 1).all()
    assert frame.predicted_value[~buyers].isna().all()
    assert frame.rfm_segment[buyers].notna().all()


def test_profile_rerun_is_identical_one_replace_and_time_travel(
    spark: SparkSession, profile_path: str, conf: Path
) -> None:
    provenance = {"run_id", "computed_at"}
    table = DeltaTable(profile_path)
    before = table.version()
    first = table.to_pandas(filters=[("snapshot_date", "=", AS_OF)])
    assert main(["profile", "--conf", str(conf), "--as-of", AS_OF.isoformat()]) == 0
    table = DeltaTable(profile_path)
    assert table.version() == before + 1  # one commit per run
    (commit,) = [h for h in table.history() if h["version"] == before + 1]
    assert commit["operation"] == "WRITE"
    assert "snapshot_date" in commit["operationParameters"]["predicate"]
    second = table.to_pandas(filters=[("snapshot_date", "=", AS_OF)])
    columns = [c for c in first.columns if c not in provenance]
    ordered = [f.sort_values("user_key").reset_index(drop=True)[columns] for f in (first, second)]
    assert ordered[0].astype(str).equals(ordered[1].astype(str))
    assert set(first.run_id) != set(second.run_id)
    # Time travel: the previous version still has the first run.
    old = spark.read.format("delta").option("versionAsOf", before).load(profile_path)
    assert {r.run_id for r in old.select("run_id").distinct().collect()} == set(first.run_id)
    properties = table.metadata().configuration
    assert properties["userprofile.contract_version"] == "1"


def test_rerun_same_date_replaces_only_that_snapshot(
    spark: SparkSession, profile_path: str, conf: Path
) -> None:
    truth = spark.read.parquet(str(Path(load_settings(conf).storage.ground_truth) / "users"))
    # New users sign up during the generated range: the earlier snapshot knows fewer of them.
    signed_up_earlier = truth.where(F.col("signup_date") < EARLIER).count()
    assert signed_up_earlier < USERS
    versions_before = DeltaTable(profile_path).version()
    # (Re-running AS_OF itself is test_profile_rerun_is_identical_one_replace_and_time_travel.)
    assert main(["pipeline", "--conf", str(conf), "--as-of", EARLIER.isoformat()]) == 0
    table = DeltaTable(profile_path)
    assert table.version() > versions_before
    assert snapshot_rows(profile_path, AS_OF) == USERS
    assert snapshot_rows(profile_path, EARLIER) == signed_up_earlier
    dates = set(
        table.to_pyarrow_table(columns=["snapshot_date"]).column("snapshot_date").to_pylist()
    )
    assert dates == {AS_OF, EARLIER}
    warehouse = Path(load_settings(conf).storage.warehouse) / "gold"
    flows = DeltaTable(str(warehouse / "lifecycle_transitions")).to_pandas()
    for day, users in ((AS_OF, USERS), (EARLIER, signed_up_earlier)):
        arrived = flows[(flows.snapshot_date == day) & (flows.to_stage != GONE)]
        assert arrived.users.sum() == users
    dictionary = DeltaTable(str(warehouse / "tag_dictionary")).to_pandas()
    assert set(dictionary.name) == {t.name for t in load_settings(conf).tags}


def test_every_input_line_is_accounted_for(
    spark: SparkSession, profile_path: str, conf: Path
) -> None:
    """input lines = bronze rows + quarantined rows; duplicates stay in bronze, once in silver."""
    settings = load_settings(conf)
    lines = spark.read.text(str(Path(settings.storage.landing) / "events")).count()
    warehouse = Path(settings.storage.warehouse)
    bronze = spark.read.format("delta").load(str(warehouse / "bronze/events"))
    quarantine = spark.read.format("delta").load(str(warehouse / "bronze/quarantine"))
    assert bronze.count() + quarantine.count() == lines
    silver = spark.read.format("delta").load(str(warehouse / "silver/events"))
    assert silver.count() == bronze.select("event_id").distinct().count()
    assert silver.count() < bronze.count()  # the generator plants duplicates
    reasons = {r.reason_code for r in quarantine.select("reason_code").distinct().collect()}
    assert reasons == {
        "MALFORMED_RECORD",
        "MISSING_EVENT_ID",
        "MISSING_USER",
        "BAD_TIMESTAMP",
        "FUTURE_TIMESTAMP",
        "NEGATIVE_PRICE",
    }


def test_no_personal_data_beyond_bronze(spark: SparkSession, profile_path: str, conf: Path) -> None:
    warehouse = Path(load_settings(conf).storage.warehouse)
    for table in ("silver/events", "silver/users", "gold/user_features", "gold/user_profile"):
        columns = set(DeltaTable(str(warehouse / table)).schema().to_arrow().names)
        assert not columns & {"user_id", "anonymous_id", "email", "ip", "phone"}, table
    for table in (
        "silver/events",
        "silver/users",
        "silver/identities",
        "gold/user_features",
        "gold/user_profile",
    ):
        frame = spark.read.format("delta").load(str(warehouse / table))
        text = F.concat_ws("|", *[F.col(c).cast("string") for c in frame.columns])
        # No e-mail, no IPv4 address, no raw user or anonymous id in any value.
        leaks = frame.where(text.rlike(r"@|\b\d{1,3}(\.\d{1,3}){3}\b|\bU\d{9}\b|anon-"))
        assert leaks.count() == 0, table
    keys = (
        DeltaTable(profile_path)
        .to_pyarrow_table(columns=["user_key"])
        .column("user_key")
        .to_pylist()
    )
    assert not any(k.startswith("U0") for k in keys)
    expected = (
        spark.createDataFrame([("U000000007",)], "id string")
        .select(hmac_sha256_hex(TEST_KEY.encode(), F.col("id")).alias("k"))
        .first()
    )
    assert expected is not None
    assert expected.k in keys


def test_propensity_tracks_the_planted_truth(
    spark: SparkSession, profile_path: str, conf: Path
) -> None:
    """The model's scores rank users like the generator's true odds (evaluation-only data)."""
    truth = spark.read.parquet(str(Path(load_settings(conf).storage.ground_truth) / "users"))
    from userprofile.generator import true_purchase_probability

    planted = true_purchase_probability(truth, AS_OF, 30).select(
        hmac_sha256_hex(TEST_KEY.encode(), F.col("user_id")).alias("user_key"), "true_probability"
    )
    scored = spark.read.format("delta").load(profile_path).where(F.col("snapshot_date") == AS_OF)
    joined = scored.join(planted, "user_key").select(
        F.percent_rank().over(_order("purchase_propensity_30d")).alias("a"),
        F.percent_rank().over(_order("true_probability")).alias("b"),
    )
    rank_correlation = joined.stat.corr("a", "b")
    assert rank_correlation > 0.4


def _order(column: str):  # type: ignore[no-untyped-def]
    from pyspark.sql import Window

    return Window.orderBy(column)


def test_training_without_history_is_refused(
    profile_path: str, conf: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    train = ["train", "--conf", str(conf), "--as-of", "2026-01-20"]
    assert main(train) == 1
    assert "run `userprofile features --as-of 2026-01-20` first" in capsys.readouterr().err
    assert main(["features", "--conf", str(conf), "--as-of", "2026-01-20"]) == 0
    # The training snapshot 30 days before 2026-01-20 precedes every generated event.
    assert main(train) == 1
    assert "no events before 2025-12-21" in capsys.readouterr().err


def test_export_an_audience_with_and_without_raw_ids(
    spark: SparkSession, profile_path: str, conf: Path, tmp_path: Path
) -> None:
    settings = load_settings(conf)
    snapshot = spark.read.format("delta").load(profile_path).where(F.col("snapshot_date") == AS_OF)
    expected = snapshot.where(
        F.col("lifecycle_stage").isin("active", "new") & (F.col("propensity_decile") >= 6)
    ).count()
    assert expected > 0
    out = tmp_path / "audience"
    audience = ["--lifecycle", "active", "--lifecycle", "new", "--min-decile", "6"]
    args = ["export", "--conf", str(conf), "--as-of", AS_OF.isoformat(), "--out", str(out)]
    assert main([*args, *audience]) == 0
    exported = spark.read.option("header", "true").csv(str(out))
    assert exported.count() == expected
    assert "user_id" not in exported.columns
    assert {r.lifecycle_stage for r in exported.collect()} <= {"active", "new"}
    crm = str(Path(settings.storage.landing) / "users")
    assert main([*args, *audience, "--format", "parquet", "--reidentify-from", crm]) == 0
    identified = spark.read.parquet(str(out))
    assert identified.count() == expected
    assert all(r.user_key == _key(spark, r.user_id) for r in identified.limit(3).collect())


def _key(spark: SparkSession, user_id: str) -> str:
    row = (
        spark.createDataFrame([(user_id,)], "id string")
        .select(hmac_sha256_hex(TEST_KEY.encode(), F.col("id")).alias("k"))
        .first()
    )
    assert row is not None
    return str(row.k)


def test_lookup_explains_a_profile(
    spark: SparkSession, profile_path: str, conf: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = _key(spark, "U000000007")
    row = (
        spark.read.format("delta")
        .load(profile_path)
        .where((F.col("snapshot_date") == AS_OF) & (F.col("user_key") == key))
        .first()
    )
    assert row is not None
    capsys.readouterr()
    assert main(["lookup", "U000000007", "--conf", str(conf), "--as-of", AS_OF.isoformat()]) == 0
    printed = capsys.readouterr().out
    assert re.search(rf"lifecycle\s+{row.lifecycle_stage}:", printed)
    for tag in load_settings(conf).tags:
        verdict = "yes" if tag.name in row.tags else "no"
        assert f"tag {tag.name}" in printed
        assert f"{verdict}: {tag.rule}" in printed
    assert main(["lookup", "nobody", "--conf", str(conf), "--as-of", AS_OF.isoformat()]) == 1


def _runs(conf: Path) -> pd.DataFrame:
    path = Path(load_settings(conf).storage.warehouse) / "ops" / "pipeline_runs"
    return DeltaTable(str(path)).to_pandas()


def test_backfill_skips_completed_dates(
    profile_path: str, conf: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    day_before = AS_OF - dt.timedelta(days=1)
    succeeded = _runs(conf)
    assert AS_OF in set(succeeded[succeeded.status == "succeeded"].as_of)
    backfill = ["pipeline", "--conf", str(conf), "--from", day_before.isoformat()]
    backfill += ["--retrain-after-days", "7"]  # the newest model (EARLIER's) is 6 days old
    assert main([*backfill, "--to", AS_OF.isoformat()]) == 0
    assert f"already complete (use --force)  {AS_OF}" in capsys.readouterr().out
    runs = _runs(conf)
    (new,) = runs[runs.as_of == day_before].itertuples()
    assert new.status == "succeeded"
    assert list(new.steps) == ["ingest", "features", "train", "profile"]
    assert {step for step, _ in new.step_seconds} == set(new.steps)
    assert main([*backfill, "--to", AS_OF.isoformat()]) == 0
    assert len(_runs(conf)) == len(runs)  # nothing left to do: nothing recorded


def test_a_failed_run_is_recorded(profile_path: str, conf: Path) -> None:
    # No history 30 days before 2026-01-20: training refuses, after features succeeded.
    assert main(["pipeline", "--conf", str(conf), "--as-of", "2026-01-20"]) == 1
    runs = _runs(conf)
    (failed,) = runs[runs.as_of == dt.date(2026, 1, 20)].itertuples()
    assert failed.status == "failed"
    assert list(failed.steps) == ["ingest", "features"]
    assert "no events before 2025-12-21" in failed.error


def _section(page: str, anchor: str) -> str:
    match = re.search(rf'<section id="{anchor}">(.*?)</section>', page, re.S)
    assert match, f"report has no section {anchor!r}"
    return match.group(1)


def _table_rows(section: str) -> list[list[str]]:
    rows = re.findall(r"<tr>(.*?)</tr>", section, re.S)
    return [re.findall(r"<td>(.*?)</td>", row, re.S) for row in rows if "<td>" in row]


def test_report_shows_the_snapshot_and_its_drift(profile_path: str, conf: Path) -> None:
    # An earlier snapshot to compare with (a no-op if an earlier test already made it).
    backfill = ["pipeline", "--conf", str(conf), "--from", EARLIER.isoformat()]
    assert main([*backfill, "--to", EARLIER.isoformat()]) == 0
    assert main(["report", "--conf", str(conf), "--as-of", AS_OF.isoformat()]) == 0
    settings = load_settings(conf)
    page = (Path(settings.storage.reports) / f"user_profile_report_{AS_OF}.html").read_text()

    profile = DeltaTable(profile_path).to_pandas()
    current = profile[profile.snapshot_date == AS_OF]
    segments = {
        int(r[0]): int(r[2].replace(",", "")) for r in _table_rows(_section(page, "segments"))
    }
    assert segments == current.segment_id.value_counts().to_dict()

    tags = DeltaTable(str(Path(profile_path).parent / "tag_counts")).to_pandas()
    expected_tags = tags[tags.snapshot_date == AS_OF].set_index("tag").users.to_dict()
    shown_tags = {r[0]: int(r[1].replace(",", "")) for r in _table_rows(_section(page, "tags"))}
    assert shown_tags == expected_tags

    warehouse = Path(settings.storage.warehouse)
    quarantine = DeltaTable(str(warehouse / "bronze" / "quarantine")).to_pandas()
    quality = _section(page, "data-quality")
    for code, rows in quarantine.reason_code.value_counts().items():
        assert f"<td>{code}</td>" in quality
        assert any(r[0] == code and r[-1] == f"{rows:,}" for r in _table_rows(quality))

    previous = max(d for d in profile.snapshot_date if d < AS_OF)
    assert f"Compared with snapshot {previous}" in _section(page, "drift")
    assert len(re.findall(r'<img alt="[^"]+" src="data:image/png;base64,', page)) == 8
    assert not re.search(r'(src|href)="(http|//)', page)  # self-contained: opens offline


def test_training_is_skipped_while_the_model_is_recent(
    profile_path: str, conf: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    metrics = Path(profile_path).parent / "model_metrics"
    runs_before = set(DeltaTable(str(metrics)).to_pandas().run_id)
    train = ["train", "--conf", str(conf), "--as-of", AS_OF.isoformat()]
    assert main([*train, "--retrain-after-days", "7"]) == 0
    assert "reused model version" in capsys.readouterr().out
    assert set(DeltaTable(str(metrics)).to_pandas().run_id) == runs_before


# Notebooks run last: the pipeline notebook adds a snapshot after AS_OF.
NOTEBOOKS = REPO / "notebooks"


def test_explore_notebook_draws_the_snapshot(profile_path: str, conf: Path) -> None:
    ns = run_notebook(
        NOTEBOOKS / "explore_segments.py", {"conf": str(conf), "snapshot_date": str(AS_OF)}
    )
    assert ns["as_of"] == AS_OF
    profile = DeltaTable(profile_path).to_pandas()
    counts = profile[profile.snapshot_date == AS_OF].segment_id.value_counts()
    shown = ns["data"].segments.set_index("segment_id").users
    assert shown.to_dict() == counts.to_dict()
    for name in ("segments_figure", "projection_figure", "propensity_figure", "lifecycle_figure"):
        assert isinstance(ns[name], Figure), name
    # One scatter per segment plus its mean marker.
    assert len(ns["projection_figure"].axes[0].collections) == 2 * len(counts)
    assert ns["drift_table"], "an earlier snapshot exists, so drift is computed"


def test_lookup_notebook_explains_a_user(
    profile_path: str, conf: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    widgets = {"conf": str(conf), "snapshot_date": str(AS_OF), "user": "U000000007"}
    run_notebook(NOTEBOOKS / "profile_lookup.py", widgets)
    printed = capsys.readouterr().out
    assert all(f"tag {tag.name}" in printed for tag in load_settings(conf).tags)
    with pytest.raises(AssertionError, match="lookup failed"):
        run_notebook(NOTEBOOKS / "profile_lookup.py", {**widgets, "user": "nobody"})


def test_pipeline_notebook_runs_a_new_date(profile_path: str, conf: Path) -> None:
    day = AS_OF + dt.timedelta(days=1)
    widgets = {"conf": str(conf), "as_of": str(day), "retrain_after_days": "7"}
    ns = run_notebook(NOTEBOOKS / "run_pipeline.py", widgets)
    assert ns["latest_run"].status == "succeeded"
    assert list(ns["latest_run"].steps) == ["ingest", "features", "train", "profile"]
    assert "reused model version" in ns["latest_run"].step_rows["train"]
    assert snapshot_rows(profile_path, day) == USERS
