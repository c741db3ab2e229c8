"""Delta and streaming over a real local Spark Connect server (tests/connect_server.py).

One server serves the module; the shutdown test starts its own. A classic session of
the same pytest process (conftest's ``spark``) and a Connect client cannot both be in use:
``connect_mode`` switches pyspark to Connect for each test here and back afterwards.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pyspark import SparkContext
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from tests.connect_server import HOST, PID_NAME, connect_mode, connect_server, session_members
from userprofile.config import Settings

pytestmark = pytest.mark.e2e

# As userprofile.io.session sets them for local sessions: Delta's log replay defaults to
# 50 partitions and file listing to 10,000 parallel tasks, far too many on 2 cores.
FAST_DELTA = {
    "spark.databricks.delta.snapshotPartitions": "2",
    "spark.sql.sources.parallelPartitionDiscovery.parallelism": "8",
}


@dataclass(frozen=True)
class Server:
    url: str
    work_dir: Path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    work_dir = tmp_path_factory.mktemp("connect")
    with connect_server(work_dir, FAST_DELTA) as url:
        yield Server(url, work_dir)


@pytest.fixture(scope="module")
def remote(server: Server) -> Iterator[SparkSession]:
    """The module's client. ``getOrCreate`` refuses (SESSION_ALREADY_EXIST) while a classic
    SparkContext lives in this process, as it may in a full run: then ``create``."""
    with connect_mode():
        builder = SparkSession.builder.remote(server.url)
        if SparkContext._active_spark_context is None:
            session = builder.getOrCreate()
        else:
            session = builder.create()
        yield session
        session.stop()


@pytest.fixture
def spark_remote(remote: SparkSession) -> Iterator[SparkSession]:
    with connect_mode():
        yield remote


def rows(df: DataFrame, *order: str) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in df.orderBy(*order).collect()]


def test_client_session_is_the_active_session(spark_remote: SparkSession) -> None:
    assert type(spark_remote).__module__ == "pyspark.sql.connect.session"
    assert SparkSession.getActiveSession() is spark_remote
    assert spark_remote.conf.get("spark.sql.session.timeZone") == "UTC"


def test_delta_write_read_merge_and_parameterized_delete(
    spark_remote: SparkSession, tmp_path: Path
) -> None:
    spark = spark_remote
    path = (tmp_path / "table").as_uri()
    spark.createDataFrame([("a", 1), ("b", 2), ("c", 3)], "s string, n int").write.format(
        "delta"
    ).save(path)
    assert rows(spark.read.format("delta").load(path), "s") == [("a", 1), ("b", 2), ("c", 3)]

    spark.createDataFrame([("b", 20), ("d", 4)], "s string, n int").createOrReplaceTempView("src")
    merged = spark.sql(
        f"MERGE INTO delta.`{path}` t USING src ON t.s = src.s "
        "WHEN MATCHED THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT *"
    ).first()
    assert merged is not None
    assert (merged["num_updated_rows"], merged["num_inserted_rows"]) == (1, 1)

    deleted = spark.sql(
        f"DELETE FROM delta.`{path}` WHERE array_contains(:ids, s)", args={"ids": ["a", "d", "x"]}
    ).first()
    assert deleted is not None
    assert deleted["num_affected_rows"] == 2
    assert rows(spark.read.format("delta").load(path), "s") == [("b", 20), ("c", 3)]


def test_merge_with_auto_merge_adds_the_source_column(
    spark_remote: SparkSession, tmp_path: Path
) -> None:
    spark = spark_remote
    path = (tmp_path / "table").as_uri()
    spark.createDataFrame([(1, "a")], "id int, v string").write.format("delta").save(path)
    source = spark.createDataFrame([(1, "b", 10), (2, "c", 20)], "id int, v string, extra int")
    source.createOrReplaceTempView("wider")
    key = "spark.databricks.delta.schema.autoMerge.enabled"
    spark.conf.set(key, "true")
    try:
        spark.sql(
            f"MERGE INTO delta.`{path}` t USING wider s ON t.id = s.id "
            "WHEN MATCHED THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT *"
        ).collect()
    finally:
        spark.conf.unset(key)
    result = spark.read.format("delta").load(path)
    assert result.columns == ["id", "v", "extra"]
    assert rows(result, "id") == [(1, "b", 10), (2, "c", 20)]


def test_progress_handler_gets_keyword_arguments(spark_remote: SparkSession) -> None:
    calls: list[dict[str, Any]] = []

    def handler(**progress: Any) -> None:
        calls.append(progress)

    spark_remote.registerProgressHandler(handler)
    try:
        spark_remote.range(0, 1000, numPartitions=4).groupBy(F.col("id") % 3).count().collect()
    finally:
        spark_remote.removeProgressHandler(handler)
    assert calls, "no progress call"
    assert set(calls[-1]) == {"stages", "inflight_tasks", "operation_id", "done"}
    assert calls[-1]["done"] is True


def test_foreach_batch_runs_server_side_python_with_the_package(
    spark_remote: SparkSession, tmp_path: Path
) -> None:
    spark = spark_remote
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "one.txt").write_text("alpha\nbeta\n", encoding="utf-8")
    (landing / "two.txt").write_text("gamma\n", encoding="utf-8")
    sink = (tmp_path / "sink").as_uri()
    spark.createDataFrame([], "value string, env string, key string, table string").write.format(
        "delta"
    ).save(sink)
    # Captured by the pickled closure: a pydantic model of the package and bytes.
    settings = Settings.model_validate({"environment": "test"})
    secret = b"\x00key-bytes\xff"
    digest = hashlib.sha256(secret).hexdigest()[:12]

    def append_batch(batch: DataFrame, batch_id: int) -> None:
        import hashlib

        from userprofile.io import tables  # the server's Python worker imports the package

        ref = tables.TableRef(key="sink", path=sink)
        session = batch.sparkSession
        view = f"batch_{batch_id}"
        batch.createOrReplaceTempView(view)
        session.sql(
            f"INSERT INTO delta.`{ref}` SELECT value, :env, :key, :table FROM {view}",
            args={
                "env": settings.environment,
                "key": hashlib.sha256(secret).hexdigest()[:12],
                "table": str(ref),
            },
        ).collect()

    query = (
        spark.readStream.format("text")
        .load(str(landing))
        .writeStream.foreachBatch(append_batch)
        .trigger(availableNow=True)
        .option("checkpointLocation", str(tmp_path / "checkpoint"))
        .start()
    )
    query.awaitTermination(120)
    assert not query.isActive, "the availableNow query did not finish in 120 s"
    assert query.exception() is None
    expected = [(word, "test", digest, sink) for word in ("alpha", "beta", "gamma")]
    assert rows(spark.read.format("delta").load(sink), "value") == expected


def port_closed(url: str) -> bool:
    port = int(url.rsplit(":", 1)[1])
    try:
        with socket.create_connection((HOST, port), timeout=1.0):
            return False
    except OSError:
        return True


def test_exit_ends_the_whole_process_group(tmp_path: Path) -> None:
    began = time.monotonic()
    with connect_server(tmp_path) as url, connect_mode():
        started = time.monotonic() - began
        group = int((tmp_path / PID_NAME).read_text())
        # A new session, not getOrCreate: that would return the module's client, whose
        # server is another one (Connect's getOrCreate ignores the URL of a live session).
        session = SparkSession.builder.remote(url).create()
        plus_one = F.udf(lambda x: x + 1, "long")  # forks the server's Python workers
        assert session.range(3).select(plus_one("id")).collect()[-1][0] == 3
        members = session_members(group)
        groups = {os.getpgid(pid) for pid in members}
        session.stop()
    # pyspark's worker daemon runs in a group of its own, in the server's session.
    assert group in members
    assert len(groups) > 1, f"expected the JVM's and the Python daemon's groups: {groups}"
    with pytest.raises(ProcessLookupError):
        os.killpg(group, 0)
    assert not session_members(group)
    for pid in members:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert port_closed(url)
    assert started < 180


def test_step_progress_lines_over_connect(
    spark_remote: SparkSession, caplog: pytest.LogCaptureFixture
) -> None:
    """SparkProgress reads Connect's progress handler: `tasks done/total` while a job runs."""
    from userprofile.io.progress import SparkProgress

    logger = logging.getLogger("userprofile")
    logger.addHandler(caplog.handler)
    level, logger.level = logger.level, logging.INFO
    slow = F.udf(lambda x: time.sleep(0.5) or x, "long")  # by value: no module to import
    try:
        with SparkProgress(spark_remote, "features", every=0.3):
            spark_remote.range(0, 8, numPartitions=8).select(slow("id")).collect()
    finally:
        logger.removeHandler(caplog.handler)
        logger.setLevel(level)
    assert any(re.search(r"features: running \d+ s, tasks \d+/8", m) for m in caplog.messages), (
        caplog.messages
    )
