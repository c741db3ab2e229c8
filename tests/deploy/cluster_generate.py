"""Submitted by tests/deploy/test_cluster.py: `userprofile generate`, and where it imports from.

``spark-submit tests/deploy/cluster_generate.py --conf PATH`` first prints one line
``PROBE {json}``: the driver's ``userprofile.__file__`` and working directory and, per task,
the executor's ``userprofile.__file__`` and working directory (the executor's folder under
its worker's work dir, which tells the worker apart); then runs ``userprofile generate`` like
jobs/generate.py. One submission for both saves a driver and two executors' start-up.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

from pyspark.sql import SparkSession


def locate(_: Iterable[int]) -> Iterator[dict[str, Any]]:
    time.sleep(0.5)  # keep a task busy long enough for the other executor to get one
    try:
        import userprofile

        found = userprofile.__file__
    except ImportError as error:
        found = f"ImportError: {error}"
    yield {"file": found, "cwd": os.getcwd()}


def main(argv: list[str]) -> int:
    import userprofile
    from userprofile.cli import main as cli

    spark = SparkSession.builder.getOrCreate()
    tasks = spark.sparkContext.parallelize(range(8), 8).mapPartitions(locate).collect()
    found = {"driver": userprofile.__file__, "driver_cwd": os.getcwd(), "tasks": tasks}
    print("PROBE " + json.dumps(found), flush=True)
    return cli(["generate", *argv])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
