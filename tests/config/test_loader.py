"""Loading config: layered files, ${ENV} references, rule checks; errors name the file and key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.helpers import REPO, write_conf
from userprofile.config import load_settings
from userprofile.errors import ConfigError

# What the bundle's job cluster sets for conf/databricks.yaml (see tests/test_bundle.py).
DATABRICKS_ENV = {
    "USERPROFILE_CATALOG": "main",
    "USERPROFILE_SCHEMA": "userprofile",
    "USERPROFILE_VOLUME": "files",
}


@pytest.mark.parametrize("name", ["local.yaml", "cluster.example.yaml", "databricks.yaml"])
def test_shipped_configs_load(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for var, value in DATABRICKS_ENV.items():
        monkeypatch.setenv(var, value)
    settings = load_settings(REPO / "conf" / name)
    assert settings.propensity.label_days == 30
    assert {t.name for t in settings.tags} >= {"high_value", "churn_risk"}


def test_environment_file_overrides_base(monkeypatch: pytest.MonkeyPatch) -> None:
    for var, value in DATABRICKS_ENV.items():
        monkeypatch.setenv(var, value)
    settings = load_settings(REPO / "conf" / "databricks.yaml")
    assert settings.environment == "databricks"
    assert settings.tables.user_profile == "main.userprofile.user_profile"
    assert settings.spark.shuffle_partitions == 200
    # Inherited unchanged from base.yaml.
    assert settings.lifecycle.churn_days == 90


def test_unknown_key_names_file_and_key(tmp_path: Path) -> None:
    conf = write_conf(
        tmp_path / "env.yaml",
        {"extends": str(REPO / "conf" / "base.yaml"), "spark": {"shuffle_partitons": 4}},
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(conf)
    message = str(caught.value)
    assert str(conf) in message
    assert "spark.shuffle_partitons: unknown key" in message
    assert "shuffle_partitions" in message  # the allowed keys are listed


def test_error_in_parent_names_the_parent(tmp_path: Path) -> None:
    write_conf(tmp_path / "parent.yaml", {"segmentation": {"k_min": 1}})
    child = write_conf(tmp_path / "child.yaml", {"extends": "parent.yaml", "environment": "local"})
    with pytest.raises(ConfigError, match=r"parent\.yaml: segmentation\.k_min: "):
        load_settings(child)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("spark: [1, 2\n", r"line \d+.*not valid YAML"),
        ("- a\n- b\n", "top level must be a mapping"),
        ("extends: self.yaml\n", "circular"),
    ],
)
def test_malformed_files(tmp_path: Path, text: str, expected: str) -> None:
    conf = tmp_path / "self.yaml"
    conf.write_text(text)
    with pytest.raises(ConfigError, match=expected):
        load_settings(conf)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "nope.yaml")


def _with_tag(tmp_path: Path, rule: str) -> Path:
    tag = {"name": "big_spender", "description": "d", "rule": rule}
    return write_conf(
        tmp_path / "tags.yaml", {"extends": str(REPO / "conf/base.yaml"), "tags": [tag]}
    )


@pytest.mark.parametrize(
    ("rule", "problem"),
    [
        ("revenue_90d >", "does not parse"),
        ("category_affinity['books'] > 0.5 AND nosuch = 1", "unknown column(s) nosuch"),
    ],
)
def test_tag_rules_are_checked_at_load(tmp_path: Path, rule: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(f"tag 'big_spender'): {problem}")):
        load_settings(_with_tag(tmp_path, rule))


def test_valid_tag_rules_may_use_scores_and_lambdas(tmp_path: Path) -> None:
    rule = "propensity_decile >= 9 AND exists(map_keys(category_affinity), c -> c = 'books')"
    assert load_settings(_with_tag(tmp_path, rule)).tags[0].rule == rule


def test_segment_name_rules_are_checked_at_load(tmp_path: Path) -> None:
    conf = write_conf(
        tmp_path / "seg.yaml",
        {
            "extends": str(REPO / "conf/base.yaml"),
            "segmentation": {"names": [{"name": "vip", "when": "revenue_total > 1000"}]},
        },
    )
    with pytest.raises(ConfigError, match=r"seg\.yaml: segmentation\.names\[0\]\.when"):
        load_settings(conf)


def test_environment_references_are_expanded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = write_conf(
        tmp_path / "env.yaml",
        {
            "extends": str(REPO / "conf" / "base.yaml"),
            "tables": {"user_profile": "${UP_CATALOG:-main}.${UP_SCHEMA}.user_profile"},
            "storage": {"reports": "/Volumes/${UP_CATALOG:-main}/x/reports"},
        },
    )
    monkeypatch.setenv("UP_SCHEMA", "crm")
    monkeypatch.delenv("UP_CATALOG", raising=False)
    assert load_settings(conf).tables.user_profile == "main.crm.user_profile"
    monkeypatch.setenv("UP_CATALOG", "prod")
    settings = load_settings(conf)
    assert settings.tables.user_profile == "prod.crm.user_profile"
    assert settings.storage.reports == "/Volumes/prod/x/reports"


def test_unset_environment_reference_names_file_and_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = write_conf(
        tmp_path / "env.yaml",
        {"extends": str(REPO / "conf" / "base.yaml"), "tables": {"user_profile": "${UP_NOPE}.t"}},
    )
    monkeypatch.delenv("UP_NOPE", raising=False)
    with pytest.raises(ConfigError, match=r"env\.yaml: tables\.user_profile: .*UP_NOPE is not set"):
        load_settings(conf)


@pytest.mark.parametrize("example", sorted(p.name for p in (REPO / "conf/examples").glob("*.yaml")))
def test_shipped_examples_load(example: str) -> None:
    settings = load_settings(REPO / "conf" / "examples" / example)
    assert [n for n, s in settings.ingest.sources.items() if s.enabled] != ["events"]


@pytest.mark.parametrize(
    ("layout", "price", "problem"),
    [
        ({"format": "csv", "csv": {"columns": ["UnitPrice"]}}, "UnitPrise", "UnitPrise"),
        ({"format": "text", "text": {"columns": ["amount"]}}, "try_cast(cost AS double)", "cost"),
        ({"format": "regex", "regex": {"pattern": r"(?<amount>\d+)"}}, "amount2", "amount2"),
    ],
)
def test_field_mappings_are_checked_against_the_layout_at_load(
    tmp_path: Path, layout: dict[str, object], price: str, problem: str
) -> None:
    fields = {"event_ts": "'2026-01-01'", "event_type": "'purchase'", "user_id": "'u'"}
    source = {"path": "orders", **layout, "fields": {**fields, "price": price}}
    conf = write_conf(
        tmp_path / "orders.yaml",
        {"extends": str(REPO / "conf/base.yaml"), "ingest": {"sources": {"orders": source}}},
    )
    expected = f"orders.yaml: ingest.sources.orders.fields.price: unknown column(s) {problem}"
    with pytest.raises(ConfigError, match=re.escape(expected)):
        load_settings(conf)
