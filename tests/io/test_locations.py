"""Locations: local paths and Hadoop URIs joined as text, never through the current directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import SettingsFactory
from userprofile.io import locations
from userprofile.io.tables import resolve


@pytest.mark.parametrize(
    ("base", "name", "joined"),
    [
        ("s3a://bucket/up", "gold/user_profile", "s3a://bucket/up/gold/user_profile"),
        ("s3a://bucket/up/", "gold/user_profile", "s3a://bucket/up/gold/user_profile"),
        ("s3a://bucket", "bronze/events", "s3a://bucket/bronze/events"),
        (
            "abfss://lake@acct.dfs.core.windows.net/up",
            "silver/events",
            "abfss://lake@acct.dfs.core.windows.net/up/silver/events",
        ),
        ("gs://b/warehouse", "ops/ingest_log", "gs://b/warehouse/ops/ingest_log"),
        ("hdfs://nn:8020/data/up", "gold/tag_counts", "hdfs://nn:8020/data/up/gold/tag_counts"),
        ("dbfs:/mnt/up", "gold/user_profile", "dbfs:/mnt/up/gold/user_profile"),
        ("dbfs:/mnt/up/", "./gold", "dbfs:/mnt/up/gold"),
        ("file:///data/up", "gold/user_profile", "file:///data/up/gold/user_profile"),
        ("file:/data/up", "gold/user_profile", "file:/data/up/gold/user_profile"),
        ("/Volumes/main/up/vol/warehouse", "gold/x", "/Volumes/main/up/vol/warehouse/gold/x"),
        ("/data/up", "gold/x", "/data/up/gold/x"),
        # A name that is already a location is used as it is.
        ("s3a://bucket/up", "s3a://other/table", "s3a://other/table"),
        ("s3a://bucket/up", "/abs/table", "/abs/table"),
        ("/data/up", "dbfs:/x", "dbfs:/x"),
    ],
)
def test_join_keeps_scheme_and_authority(base: str, name: str, joined: str) -> None:
    assert locations.join(base, name) == joined


def test_a_uri_warehouse_is_not_put_under_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    joined = locations.join("s3a://my-bucket/userprofile/warehouse", "bronze/events")
    assert joined == "s3a://my-bucket/userprofile/warehouse/bronze/events"
    assert str(tmp_path) not in joined


def test_a_relative_local_path_is_made_absolute_against_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert locations.join("data/warehouse", "gold/x") == str(tmp_path / "data/warehouse/gold/x")


@pytest.mark.parametrize(
    ("location", "uri"),
    [
        ("s3a://b/x", True),
        ("dbfs:/x", True),
        ("file:/x", True),
        ("/Volumes/a/b/c", False),
        ("data/warehouse", False),
        # A Windows drive letter is not a scheme.
        ("C:/data", False),
    ],
)
def test_is_uri(location: str, uri: bool) -> None:
    assert locations.is_uri(location) is uri


@pytest.mark.parametrize(
    ("location", "local"),
    [
        ("file:///tmp/reports", "/tmp/reports"),
        ("file:/tmp/reports", "/tmp/reports"),
        ("file://localhost/tmp/a%20b", "/tmp/a b"),
        ("/Volumes/main/up/vol/reports", "/Volumes/main/up/vol/reports"),
        ("s3a://bucket/reports", None),
        ("dbfs:/reports", None),
        ("file://otherhost/tmp", None),
    ],
)
def test_local_path(location: str, local: str | None) -> None:
    assert locations.local_path(location) == local


def test_path_part_drops_scheme_and_authority() -> None:
    assert locations.path_part("s3a://bucket/landing/events") == "/landing/events"
    assert locations.path_part("/abs/landing") == "/abs/landing"
    assert locations.path_part("rel") == os.path.abspath("rel")


def test_table_names_under_an_object_store_warehouse(make_settings: SettingsFactory) -> None:
    settings = make_settings(storage={"warehouse": "s3a://my-bucket/userprofile/warehouse"})
    assert resolve(settings, "bronze_events").path == (
        "s3a://my-bucket/userprofile/warehouse/bronze/events"
    )
    assert resolve(settings, "user_profile").path == (
        "s3a://my-bucket/userprofile/warehouse/gold/user_profile"
    )
