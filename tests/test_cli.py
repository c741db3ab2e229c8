"""The command line: each subcommand takes the options it uses and refuses the others."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import REPO, write_conf
from userprofile.cli import OPTIONS, build_parser
from userprofile.commands import COMMANDS

SNAPSHOT_COMMANDS = ("features", "train", "profile", "pipeline", "report", "evaluate")


def test_every_command_has_its_options_and_a_runner() -> None:
    assert list(OPTIONS) == list(COMMANDS)


@pytest.mark.parametrize("step", SNAPSHOT_COMMANDS)
def test_snapshot_commands_take_as_of(step: str) -> None:
    args = build_parser().parse_args([step, "--as-of", "2026-05-01"])
    assert args.as_of == dt.date(2026, 5, 1)


@pytest.mark.parametrize("step", ["generate", "ingest", "erase", "bench"])
def test_commands_without_a_snapshot_refuse_as_of(
    step: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args([step, "--as-of", "2026-05-01"])
    assert exited.value.code == 2
    assert "unrecognized arguments: --as-of 2026-05-01" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "refused"),
    [
        (["ingest", "--retrain-after-days", "7"], "--retrain-after-days"),
        (["features", "--from", "2026-01-01"], "--from"),
        (["profile", "--out", "x"], "--out"),
        (["train", "--force"], "--force"),
    ],
)
def test_options_of_other_commands_are_refused(
    argv: list[str], refused: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(argv)
    assert f"unrecognized arguments: {refused}" in capsys.readouterr().err


def test_pipeline_backfill_options() -> None:
    args = build_parser().parse_args(
        ["pipeline", "--from", "2026-04-01", "--to", "2026-04-03", "--force"]
    )
    assert (args.from_date, args.to_date, args.force) == (
        dt.date(2026, 4, 1),
        dt.date(2026, 4, 3),
        True,
    )
    assert args.retrain_after_days == 0


@pytest.mark.parametrize(
    ("argv", "files", "since"),
    [
        (["--files", "landing_date=2026-01-0[5-9]/*"], "landing_date=2026-01-0[5-9]/*", None),
        (["--since", "2026-01-05"], None, dt.date(2026, 1, 5)),
        ([], None, None),
    ],
)
def test_reprocess_takes_a_source_and_files_or_since(
    argv: list[str], files: str | None, since: dt.date | None
) -> None:
    args = build_parser().parse_args(["reprocess", "--source", "orders", *argv])
    assert (args.source, args.files, args.since) == ("orders", files, since)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--source", "o", "--files", "*", "--since", "2026-01-05"],
            "argument --since: not allowed with argument --files",
        ),
        (["--files", "*"], "the following arguments are required: --source"),
        (["--source", "o", "--since", "2026-02-30"], "'2026-02-30' is not a date"),
        (["--source", "o", "--as-of", "2026-05-01"], "unrecognized arguments: --as-of"),
    ],
)
def test_reprocess_refuses(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["reprocess", *argv])
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_release_takes_a_delivery_and_a_reason(capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(
        ["release", "--delivery", "0123456789abcdef", "--reason", "vendor confirmed"]
    )
    assert (args.delivery, args.reason) == ("0123456789abcdef", "vendor confirmed")
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["release", "--delivery", "0123456789abcdef"])
    assert exited.value.code == 2
    assert "the following arguments are required: --reason" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["-1", "seven"])
def test_retrain_after_days_must_be_a_whole_number_of_days(value: str) -> None:
    with pytest.raises(SystemExit) as stopped:
        build_parser().parse_args(["train", "--retrain-after-days", value])
    assert stopped.value.code == 2


def _cli(*args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "userprofile.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    return done, time.perf_counter() - start


def test_cli_rejects_bad_config_fast_without_traceback(tmp_path: Path) -> None:
    conf = write_conf(tmp_path / "bad.yaml", {"extends": str(REPO / "conf/base.yaml"), "sprak": {}})
    done, seconds = _cli("pipeline", "--conf", str(conf), "--as-of", "2026-05-01")
    assert done.returncode == 2
    assert seconds < 5
    assert "bad.yaml: sprak: unknown key" in done.stderr
    assert "Traceback" not in done.stderr


def test_cli_rejects_bad_date_fast() -> None:
    done, seconds = _cli("features", "--conf", "conf/local.yaml", "--as-of", "2026-13-01")
    assert done.returncode == 2
    assert seconds < 5
    assert "'2026-13-01' is not a date of the form YYYY-MM-DD" in done.stderr


def test_cli_refuses_an_unknown_source_before_spark_starts(tmp_path: Path) -> None:
    conf = write_conf(tmp_path / "conf.yaml", {"extends": str(REPO / "conf/base.yaml")})
    done, seconds = _cli("reprocess", "--conf", str(conf), "--source", "order")
    assert done.returncode == 2
    assert seconds < 5
    assert (
        "userprofile: error: --source 'order': no such source in ingest.sources "
        "(configured: events)" in done.stderr
    )


@pytest.mark.parametrize("url", ["http://127.0.0.1:15002", "127.0.0.1:15002"])
def test_a_remote_that_is_not_a_spark_connect_url_is_refused_before_spark_starts(
    tmp_path: Path, url: str
) -> None:
    conf = write_conf(tmp_path / "conf.yaml", {"extends": str(REPO / "conf/base.yaml")})
    done, seconds = _cli("ingest", "--conf", str(conf), "--remote", url)
    assert done.returncode == 2
    assert seconds < 5
    assert (
        f"userprofile: error: --remote / SPARK_REMOTE {url!r}: a Spark Connect URL is "
        "sc://host:port" in done.stderr
    )


def test_a_connect_client_that_would_log_requests_whole_is_refused(tmp_path: Path) -> None:
    conf = write_conf(tmp_path / "conf.yaml", {"extends": str(REPO / "conf/base.yaml")})
    done = subprocess.run(
        [sys.executable, "-m", "userprofile.cli", "ingest", "--conf", str(conf)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env={**os.environ, "SPARK_CONNECT_LOG_LEVEL": "DEBUG", "SPARK_REMOTE": "sc://127.0.0.1:9"},
    )
    assert done.returncode == 2
    assert "SPARK_CONNECT_LOG_LEVEL=debug logs every Spark Connect request in full" in done.stderr


def test_tag_with_a_typo_fails_fast_naming_tag_and_file(tmp_path: Path) -> None:
    tag = {"name": "big_spender", "description": "d", "rule": "revenue_90dd > 500"}
    conf = write_conf(
        tmp_path / "tags.yaml", {"extends": str(REPO / "conf/base.yaml"), "tags": [tag]}
    )
    done, seconds = _cli("profile", "--conf", str(conf), "--as-of", "2026-05-01")
    assert done.returncode == 2
    assert seconds < 5
    assert (
        "tags.yaml: tags[0].rule (tag 'big_spender'): unknown column(s) revenue_90dd" in done.stderr
    )


def test_job_scripts_do_not_shadow_the_standard_library() -> None:
    """spark-submit puts jobs/ first on sys.path: jobs/profile.py would hide `profile`."""
    names = {p.stem for p in (REPO / "jobs").glob("*.py")}
    assert names
    assert not names & set(sys.stdlib_module_names)


def test_jobs_are_the_cli(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "jobs" / "train.py"), "--conf", str(tmp_path / "missing.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "missing.yaml: config file not found" in done.stderr
