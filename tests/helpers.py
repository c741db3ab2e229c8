"""Small helpers shared by the tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
TEST_KEY = "test-key-0123456789abcdef"


def write_conf(path: Path, document: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def storage_under(root: Path) -> dict[str, str]:
    """Every storage folder of the config under one test directory."""
    names = (
        "warehouse",
        "landing",
        "models",
        "checkpoints",
        "ground_truth",
        "reports",
        "exports",
    )
    return {name: str(root / name) for name in names}


def conf_document(root: Path, **sections: dict[str, Any]) -> dict[str, Any]:
    """A config document: the repo's base.yaml, a small local Spark, storage under root."""
    document: dict[str, Any] = {
        "extends": str(REPO / "conf" / "base.yaml"),
        "environment": "test",
        "spark": {"master": "local[2]", "shuffle_partitions": 2},
        "storage": storage_under(root),
    }
    for key, value in sections.items():
        document[key] = {**document.get(key, {}), **value}
    return document
