"""The bench's peers compute the product's core features: whole frames equal to user_features.

Two data sets, each through the real features step (``run_features``) and each peer:
inline silver tables holding the edge cases of the definitions (window edges, a
session across midnight, order ids, cancels, stitching before and after the
snapshot, CRM-only users), and the generator's logs ingested by the real ingest.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest
from pyspark.sql import SparkSession

from tests.helpers import TEST_KEY, conf_document, write_conf
from userprofile.config import Settings, load_settings
from userprofile.dev.bench_data import bench_settings, cached_landing
from userprofile.dev.peer_check import check_features, product_feature_files, pseudonymised
from userprofile.dev.peer_duckdb import duckdb_peer
from userprofile.dev.peers import CORE_COLUMNS, delta_files, pandas_peer
from userprofile.features.step import run_features
from userprofile.ingest.step import run_ingest
from userprofile.io import tables
from userprofile.io.context import RunContext

AS_OF = dt.date(2026, 5, 1)
SILVER = (
    "event_id string, event_ts timestamp, event_date date, user_key string, "
    "anonymous_key string, session_id string, order_id string, event_type string, "
    "product_id string, category string, price double, quantity int, device string, "
    "channel string, source string"
)


def _day(days_before: int, time: str = "12:00:00") -> str:
    return f"{AS_OF - dt.timedelta(days=days_before)} {time}"


# (user_key, anonymous_key, session, order_id, event_type, event_ts, price, quantity)
EVENTS = [
    # A: window edges (as_of - w is in the w-day window, the day before it is not).
    ("A", None, "a1", None, "product_view", _day(7, "00:00:00"), 10.0, None),
    ("A", None, "a2", None, "search", _day(8, "23:59:59"), None, None),
    ("A", None, "a3", None, "add_to_cart", _day(30), 12.5, 1),
    ("A", None, "a4", None, "search", _day(31), None, None),
    ("A", None, "a5", None, "purchase", _day(90), 19.99, 3),
    ("A", None, "a6", None, "purchase", _day(91), 5.0, None),  # no quantity: one
    # A: a session across midnight into the 7-day window counts on its start date (8 days).
    ("A", None, "a7", None, "product_view", _day(8, "23:50:00"), 3.0, None),
    ("A", None, "a7", None, "purchase", _day(7, "00:10:00"), 3.0, 2),
    # A: a session that goes on past the snapshot: only its events before it count.
    ("A", None, "a8", None, "page_view", _day(1, "23:59:00"), None, None),
    ("A", None, "a8", None, "purchase", f"{AS_OF} 00:00:00", 99.0, 1),
    # B: one invoice of two lines is one order; lines without an id are one per session.
    ("B", None, "b1", "o1", "purchase", _day(2, "10:00:00"), 20.0, 1),
    ("B", None, "b1", "o1", "purchase", _day(2, "10:00:01"), 5.5, 2),
    ("B", None, "b1", None, "purchase", _day(2, "10:00:02"), 1.25, 1),
    ("B", None, "b2", None, "purchase", _day(3), 4.0, 1),
    ("B", None, "b2", None, "purchase", _day(3, "12:01:00"), 6.0, 1),
    ("B", None, "b3", "o1", "purchase", _day(40), 7.0, 1),  # the same id in another session
    ("B", None, "b3", "o1", "cancel", _day(40, "13:00:00"), 7.0, 1),  # returned: net 0
    ("B", None, "b4", "o2", "cancel", _day(5), 20.0, 1),  # a cancel alone: revenue < 0
    # C: anonymous events before a login seen before the snapshot count for C, also in a
    # session of their own; those of a login seen only after it do not (D).
    (None, "anon-c", "c1", None, "product_view", _day(4, "09:00:00"), 8.0, None),
    ("C", "anon-c", "c1", None, "add_to_cart", _day(4, "09:05:00"), 8.0, 1),
    (None, "anon-c", "c0", None, "search", _day(60), None, None),
    (None, "anon-d", "d1", None, "product_view", _day(6), 9.0, None),
    ("D", "anon-d", "d2", None, "product_view", f"{AS_OF} 08:00:00", 9.0, None),
    (None, "anon-x", "x1", None, "product_view", _day(6), 9.0, None),  # never logged in
    # E: signed up after the snapshot: tenure from the first event.
    ("E", None, "e1", None, "page_view", _day(12), None, None),
]
IDENTITIES = [("anon-c", "C", _day(4, "09:05:00")), ("anon-d", "D", f"{AS_OF} 08:00:00")]
# A signed up before any event; F has no events; G signs up after the snapshot.
USERS = [("A", 200), ("C", 10), ("F", 33), ("G", -3), ("E", -1)]


def _settings(root: Path) -> Settings:
    return load_settings(write_conf(root / "test.yaml", conf_document(root)))


@pytest.fixture(scope="module")
def inline(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> RunContext:
    """Silver tables of the inline rows, and the product's features of AS_OF."""
    ctx = RunContext(spark, _settings(tmp_path_factory.mktemp("inline")))
    rows = [
        (
            *(f"ev{i}", at, at.date(), user, anon, session, order, kind, None, "books"),
            *(price, quantity, "mobile", "email", "events"),
        )
        for i, (user, anon, session, order, kind, ts, price, quantity) in enumerate(EVENTS)
        for at in [dt.datetime.fromisoformat(ts)]
    ]
    tables.append(spark.createDataFrame(rows, SILVER), ctx.table("silver_events"), ["event_date"])
    identities = [(a, u, dt.datetime.fromisoformat(t)) for a, u, t in IDENTITIES]
    schema = "anonymous_key string, user_key string, first_seen timestamp"
    tables.append(spark.createDataFrame(identities, schema), ctx.table("silver_identities"))
    users = [(u, 30, "f", "north", AS_OF - dt.timedelta(days=d)) for u, d in USERS]
    schema = "user_key string, age int, gender string, region string, signup_date date"
    tables.append(spark.createDataFrame(users, schema), ctx.table("silver_users"))
    run_features(ctx, AS_OF)
    return ctx


@pytest.fixture(scope="module")
def generated(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> RunContext:
    """The generator's logs (with more dirt than usual) ingested, and the features of the day
    after the last generated day."""
    root = tmp_path_factory.mktemp("generated")
    settings = _settings(root)
    cfg = settings.generator.model_copy(
        update={"users": 80, "days": 40, "start_date": AS_OF - dt.timedelta(days=40)}
    )
    cfg = cfg.model_copy(update={"dirt_rate": 0.05, "seed": 3})
    landing = cached_landing(spark, cfg, root / "landing")
    ctx = RunContext(spark, bench_settings(settings, landing, root / "run"))
    run_ingest(ctx)
    run_features(ctx, AS_OF)
    return ctx


def product(ctx: RunContext) -> pd.DataFrame:
    features = tables.read(ctx.spark, ctx.table("user_features"))
    return _normal(features.where(features.snapshot_date == AS_OF).toPandas())


def _normal(frame: pd.DataFrame) -> pd.DataFrame:
    """CORE_COLUMNS as floats (nulls NaN), sorted by user_key."""
    out = frame[list(CORE_COLUMNS)].sort_values("user_key").reset_index(drop=True)
    return out.astype(dict.fromkeys(CORE_COLUMNS[1:], "float64"))


def _silver(ctx: RunContext) -> list[list[str]]:
    keys = ("silver_events", "silver_identities", "silver_users")
    return [delta_files(Path(str(ctx.table(k).path))) for k in keys]


def peer_frame(ctx: RunContext, peer: str, out: Path) -> pd.DataFrame:
    pytest.importorskip(peer)  # Polars 2 needs Python 3.11
    if peer == "pandas":
        landing = Path(ctx.settings.storage.landing)
        pandas_peer(landing, landing / "users", AS_OF, out)
        return _normal(pseudonymised(out, TEST_KEY.encode()))
    if peer == "duckdb":
        duckdb_peer(*_silver(ctx), AS_OF, out)
    else:
        from userprofile.dev.peer_polars import polars_peer

        polars_peer(*_silver(ctx), AS_OF, out)
    return _normal(pd.read_parquet(out))


def assert_same(product_frame: pd.DataFrame, peer: pd.DataFrame) -> None:
    # Counts and days are whole numbers: a tolerance under 1 still compares them exactly.
    pd.testing.assert_frame_equal(peer, product_frame, check_exact=False, rtol=0, atol=0.0101)


@pytest.mark.parametrize("peer", ["duckdb", "polars"])
def test_peer_equals_the_product_on_edge_cases(
    inline: RunContext, peer: str, tmp_path: Path
) -> None:
    expected = product(inline)
    assert list(expected["user_key"]) == ["A", "B", "C", "E", "F"]
    assert_same(expected, peer_frame(inline, peer, tmp_path / "peer.parquet"))


@pytest.mark.parametrize("peer", ["duckdb", "polars", "pandas"])
def test_peer_equals_the_product_on_generated_logs(
    generated: RunContext, peer: str, tmp_path: Path
) -> None:
    expected = product(generated)
    assert len(expected) > 50
    assert expected["events_total"].sum() > 1000
    assert_same(expected, peer_frame(generated, peer, tmp_path / "peer.parquet"))


def test_the_bench_check_counts_mismatches_per_column(inline: RunContext, tmp_path: Path) -> None:
    out = tmp_path / "duckdb.parquet"
    duckdb_peer(*_silver(inline), AS_OF, out)
    files = product_feature_files(Path(str(inline.table("user_features").path)), AS_OF)
    assert check_features("duckdb", files, out).equal
    broken = pd.read_parquet(out)
    broken.loc[broken["user_key"] == "B", "orders_7d"] += 1
    broken.loc[broken["user_key"] == "A", "revenue_total"] += 0.02
    broken = broken[broken["user_key"] != "F"]
    broken.to_parquet(tmp_path / "broken.parquet")
    check = check_features("duckdb", files, tmp_path / "broken.parquet")
    assert not check.equal
    assert check.mismatches == {"orders_7d": 1, "revenue_total": 1}
    assert (check.only_product, check.only_peer) == (1, 0)
    assert check.examples["only_product"][0][0] == "F"
    assert any("orders_7d" in line for line in check.lines())
