"""The pseudonymisation key appears in no plan, log, event log, table or other artifact.

A query plan is printed by EXPLAIN, shown in the Spark UI, written to event logs and put in
error messages; a hand-built HMAC would hold the key's pad blocks as literals there. So the
frames that pseudonymise are explained in every mode, and a pipeline run in a process of its
own, with Spark's event log on and a canary key of its own, is searched afterwards: its
output, its event log and every file it wrote (tests/security/leaks.py lists the encodings).
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import secrets
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from deltalake import DeltaTable
from pyspark.errors import AnalysisException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from tests.helpers import conf_document, write_conf
from tests.security.leaks import files_under, hmac_pads, leaks_in, leaks_in_files
from userprofile.cli import main
from userprofile.config import load_settings
from userprofile.ingest.privacy import hmac_sha256_hex, pseudonym

EXPLAIN_MODES = ("simple", "extended", "codegen", "cost", "formatted")
START = dt.date(2026, 1, 1)
# Too short a history to train (label_days + 1): train is skipped, which keeps the run near
# a minute; the model sees only pseudonymised features, and the models folder is searched.
DAYS = 30
AS_OF = START + dt.timedelta(days=DAYS)
PIPELINE_TIMEOUT = 600
# What the run writes, besides its output and event log.
WRITTEN = ("warehouse", "models", "checkpoints", "reports")


def canary_key() -> bytes:
    """A fresh key (40 characters) that nothing else in the test run uses."""
    return f"leak-canary-{secrets.token_hex(14)}".encode()


def pseudonymised(spark: SparkSession, key: bytes) -> DataFrame:
    """A frame that pseudonymises both id columns, as ingest does (names left unaliased)."""
    rows = spark.createDataFrame([("U000000001", "a-1"), (None, "a-2")], "user_id string, a string")
    return rows.select(hmac_sha256_hex(key, F.col("user_id")), hmac_sha256_hex(key, F.col("a")))


def test_no_explain_mode_shows_the_key(
    spark: SparkSession, capsys: pytest.CaptureFixture[str]
) -> None:
    key = canary_key()
    frame = pseudonymised(spark, key)
    frame.collect()  # executed: the plan as the UI and event log show it
    for mode in EXPLAIN_MODES:
        frame.explain(mode=mode)
    texts = [capsys.readouterr().out, frame._jdf.queryExecution().toString(), *frame.columns]
    texts.append(frame.schema.json())
    frame.createOrReplaceTempView("pseudonymised_for_explain")
    for statement in ("EXPLAIN EXTENDED", "EXPLAIN FORMATTED", "EXPLAIN COST"):
        plan = spark.sql(f"{statement} SELECT * FROM pseudonymised_for_explain").first()
        assert plan is not None
        texts.append(str(plan[0]))
    with pytest.raises(AnalysisException) as error:  # Spark puts the plan in the message
        frame.select("no_such_column").collect()
    texts.append(str(error.value))
    text = "\n".join(texts)
    assert "== Physical Plan ==" in text  # the plans were captured
    assert leaks_in(text.encode(), key) == []
    assert "pseudonym(encode(user_id" in text  # what plans show instead


# ---------------------------------------------------------------- a pipeline run


def test_a_pipeline_run_leaves_the_key_nowhere(spark: SparkSession, tmp_path: Path) -> None:
    key = canary_key()
    events = tmp_path / "events"
    events.mkdir()
    document = conf_document(
        tmp_path,
        spark={
            "master": "local[2]",
            "shuffle_partitions": 2,
            "conf": {
                "spark.eventLog.enabled": "true",
                "spark.eventLog.dir": events.as_uri(),
                # Spark 4 compresses event logs by default: a compressed key would not be found.
                "spark.eventLog.compress": "false",
            },
        },
        generator={"users": 120, "days": DAYS, "start_date": START.isoformat(), "seed": 5},
    )
    conf = write_conf(tmp_path / "leak.yaml", document)
    # The sample needs no key (and no event log): this process's session writes it.
    assert main(["generate", "--conf", str(conf)]) == 0
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPARK_", "PYSPARK_"))}
    env["USERPROFILE_PSEUDONYM_KEY"] = key.decode()
    command = ["pipeline", "--conf", str(conf), "--as-of", AS_OF.isoformat()]
    done = subprocess.run(
        [sys.executable, "-m", "userprofile.cli", *command],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        timeout=PIPELINE_TIMEOUT,
    )
    output = done.stdout + done.stderr
    sys.stderr.write(output.decode(errors="replace")[-1500:])  # shown when the test fails
    assert done.returncode == 0, output.decode(errors="replace")[-3000:]

    settings = load_settings(conf)
    silver_users = DeltaTable(str(Path(settings.storage.warehouse, "silver/users"))).to_pandas()
    crm = spark.read.option("header", "true").csv(str(Path(settings.storage.landing, "users")))
    expected = {pseudonym(key, r.user_id) for r in crm.select("user_id").collect()}
    assert expected & set(silver_users["user_key"])  # the canary key did pseudonymise

    logs = files_under([events])  # Spark 4: a folder of rolled event files per application
    assert logs
    log_text = b"".join(p.read_bytes() for p in logs)
    assert b"SparkListenerSQLExecutionStart" in log_text  # plans are in the log, uncompressed
    assert leaks_in(output, key) == []
    storage = settings.storage.model_dump()
    written = [Path(storage[name]) for name in WRITTEN]
    assert leaks_in_files([events, *written], key) == {}
    assert b"pseudonym(encode(user_id" in log_text


# ---------------------------------------------------------------- the scanner itself


def _b64_inside(encode: Callable[[bytes], bytes], before: int) -> Callable[[bytes], bytes]:
    return lambda secret: encode(os.urandom(before) + secret + os.urandom(5))


def _printed(numbers: list[int]) -> bytes:
    return f"Array({', '.join(map(str, numbers))})".encode()


ENCODERS: dict[str, Callable[[bytes], bytes]] = {
    "raw": lambda k: k,
    "hex": lambda k: k.hex().encode(),
    "HEX": lambda k: k.hex().upper().encode(),
    "utf-16": lambda k: k.decode().encode("utf-16"),
    "ipad literal": lambda k: f"X'{hmac_pads(k)['ipad'].hex().upper()}'".encode(),
    "opad raw": lambda k: hmac_pads(k)["opad"],
    "opad signed": lambda k: _printed([b - 256 if b > 127 else b for b in hmac_pads(k)["opad"]]),
    "ipad json": lambda k: str(list(hmac_pads(k)["ipad"])).replace(" ", "").encode(),
    "ipad b64": lambda k: base64.b64encode(hmac_pads(k)["ipad"]),
    "key unpadded b64url": lambda k: base64.urlsafe_b64encode(k).rstrip(b"="),
    **{f"b64 after {n}": _b64_inside(base64.b64encode, n) for n in range(3)},
    **{f"b64url after {n}": _b64_inside(base64.urlsafe_b64encode, n) for n in range(3)},
}


@pytest.mark.parametrize("encoding", sorted(ENCODERS))
def test_the_scanner_finds_the_key(tmp_path: Path, encoding: str) -> None:
    key = canary_key()
    (tmp_path / "nested").mkdir()
    (tmp_path / "clean.bin").write_bytes(os.urandom(256))
    leaky = tmp_path / "nested" / ".hidden.crc"
    leaky.write_bytes(os.urandom(33) + ENCODERS[encoding](key) + os.urandom(17))
    assert list(leaks_in_files([tmp_path], key)) == [str(leaky)]
