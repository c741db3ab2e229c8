"""One local Spark session with Delta for the whole test run; tables live under tmp_path."""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession

from tests.helpers import TEST_KEY, conf_document, write_conf
from userprofile.config import Settings, load_settings
from userprofile.io.session import get_spark

# The tests own their key: hashes in assertions are computed with it.
os.environ["USERPROFILE_PSEUDONYM_KEY"] = TEST_KEY
# PySpark logs each analysis error in full before raising it; pytest shows the exception.
for _logger in ("DataFrameQueryContextLogger", "SQLQueryContextLogger"):
    logging.getLogger(_logger).setLevel(logging.CRITICAL)

SettingsFactory = Callable[..., Settings]


@pytest.fixture
def make_settings(tmp_path: Path) -> SettingsFactory:
    """Settings from the repo's base.yaml with storage under tmp_path and small sizes."""

    def build(**sections: dict[str, Any]) -> Settings:
        defaults = {"generator": {"users": 300, "days": 75, "start_date": "2026-01-01", "seed": 11}}
        document = conf_document(tmp_path, **defaults)
        for key, value in sections.items():
            document[key] = {**document.get(key, {}), **value}
        return load_settings(write_conf(tmp_path / "test.yaml", document))

    return build


@pytest.fixture(scope="session")
def spark(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SparkSession]:
    warehouse = tmp_path_factory.mktemp("spark-warehouse")
    settings = Settings.model_validate(
        {
            "spark": {"master": "local[2]", "shuffle_partitions": 2, "driver_memory": "2g"},
            "storage": {"warehouse": str(warehouse)},
        }
    )
    # Test workers (pytest -n) start their sessions one at a time: on a fresh machine the
    # first fetches the Delta jars into the Ivy cache, the others then find them there.
    lock = Path.home() / ".userprofile-spark-start.lock"
    with lock.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        session = get_spark(settings)
        fcntl.flock(handle, fcntl.LOCK_UN)
    yield session
    session.stop()


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups (--dist loadgroup)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Test workers take whole groups: every test reading the shared end-to-end run in one
    (so it is made once), every other module in one (so module fixtures are built once)."""
    e2e = Path(__file__).parent / "e2e"
    for item in items:
        if item.get_closest_marker("xdist_group") is not None:
            continue
        shared_run = Path(str(item.path)).parent == e2e
        item.add_marker(
            pytest.mark.xdist_group("e2e-run" if shared_run else item.nodeid.split("::")[0])
        )
