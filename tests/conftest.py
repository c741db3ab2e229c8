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


# Tests reading the one shared end-to-end run form one unit of work for the test workers.
SHARED_RUN = "tests/e2e/"
# Units whose fixtures take minutes start first, so no worker is left with one at the end.
SLOW_UNITS = (
    SHARED_RUN,
    "tests/deploy/test_cluster.py",
    "tests/models/test_step.py",
    "tests/examples/test_examples.py",
    "tests/test_pipeline.py",
    "tests/ingest/test_reprocess.py",
    "tests/security/test_key_leak.py",
    "tests/ingest/test_bad_input.py",
)


@pytest.hookimpl(trylast=True)  # after pytest-randomly's shuffle, which it keeps otherwise
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: not item.nodeid.startswith(SLOW_UNITS))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """With ``--dist loadfile``: a file is a unit of work, except that every file of the shared
    end-to-end run is one unit, so that run is made once; units are sent in collection order."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class SharedRunScheduling(LoadFileScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            if nodeid.startswith(SHARED_RUN):
                return SHARED_RUN
            return str(super()._split_scope(nodeid))

    config.option.loadscopereorder = False
    return SharedRunScheduling(config, log)
