"""The config schema: values are typed, and cross-field rules reject inconsistent sections."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from tests.helpers import write_conf
from userprofile.config import load_settings
from userprofile.errors import ConfigError


def test_bad_date_is_named(tmp_path: Path) -> None:
    conf = write_conf(tmp_path / "c.yaml", {"generator": {"start_date": "2026-02-30"}})
    with pytest.raises(ConfigError, match=r"c\.yaml: generator\.start_date: "):
        load_settings(conf)


def test_values_are_typed(tmp_path: Path) -> None:
    conf = write_conf(tmp_path / "c.yaml", {"generator": {"start_date": "2026-03-01", "days": 10}})
    generator = load_settings(conf).generator
    assert generator.start_date == dt.date(2026, 3, 1)
    assert generator.end_date == dt.date(2026, 3, 11)


def test_lifecycle_thresholds_must_be_ordered(tmp_path: Path) -> None:
    conf = write_conf(tmp_path / "c.yaml", {"lifecycle": {"active_days": 60, "churn_days": 30}})
    with pytest.raises(ConfigError, match="churn_days must be greater than active_days"):
        load_settings(conf)


def test_duplicate_tag_names_rejected(tmp_path: Path) -> None:
    tag = {"name": "a", "description": "d", "rule": "orders_30d > 0"}
    conf = write_conf(tmp_path / "c.yaml", {"tags": [tag, tag]})
    with pytest.raises(ConfigError, match="duplicate tag name"):
        load_settings(conf)
