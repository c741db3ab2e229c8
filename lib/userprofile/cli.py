"""The `userprofile` command: one subcommand per step, the same `main` for every launcher.

``userprofile pipeline --conf conf/local.yaml --as-of 2026-05-01`` locally,
``spark-submit jobs/pipeline.py --conf ...`` on a cluster, and a Databricks
``python_wheel_task`` (entry point ``userprofile``) all end up in ``main``.
This module only parses and dispatches: each subcommand declares the options
it uses, and its runner calls one step (or the pipeline, or a dev tool).
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from userprofile import __version__
from userprofile.commands import COMMANDS
from userprofile.config import Settings, load_settings
from userprofile.errors import ConfigError, UserProfileError, scrubbed

if TYPE_CHECKING:
    pass

DEFAULT_CONF = "conf/local.yaml"


def parse_date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date of the form YYYY-MM-DD") from None


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of days (0 or more)")
    return value


# ---------------------------------------------------------------- options


def _as_of(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--as-of",
        type=parse_date,
        metavar="YYYY-MM-DD",
        help="snapshot date: features use events before 00:00 UTC of it (default: today, UTC)",
    )


def _retrain(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--retrain-after-days",
        type=non_negative_int,
        default=0,
        metavar="N",
        help="reuse the newest model unless it is N or more days older than the "
        "snapshot (default 0: always train)",
    )


def _generate_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--skip-existing",
        action="store_true",
        help="do nothing if the landing folder already has events",
    )


def _reprocess_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--source", required=True, metavar="NAME", help="a source of ingest.sources")
    which = sub.add_mutually_exclusive_group()
    which.add_argument(
        "--files",
        metavar="GLOB",
        help="ingested files whose path under the source's folder matches (fnmatch; "
        "default: all ingested files of the source)",
    )
    which.add_argument(
        "--since",
        type=parse_date,
        metavar="YYYY-MM-DD",
        help="ingested files modified on or after this date (UTC)",
    )


def _release_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--delivery", required=True, metavar="ID", help="the held-back delivery the ingest named"
    )
    sub.add_argument(
        "--reason", required=True, metavar="TEXT", help="why it may go in as it is (recorded)"
    )


def _train_options(sub: argparse.ArgumentParser) -> None:
    _as_of(sub)
    _retrain(sub)


def _pipeline_options(sub: argparse.ArgumentParser) -> None:
    _as_of(sub)
    _retrain(sub)
    sub.add_argument(
        "--from",
        dest="from_date",
        type=parse_date,
        metavar="YYYY-MM-DD",
        help="backfill: every date from this one to --to (default --as-of), in order",
    )
    sub.add_argument("--to", dest="to_date", type=parse_date, metavar="YYYY-MM-DD")
    sub.add_argument("--force", action="store_true", help="with --from: also redo completed dates")


def _report_options(sub: argparse.ArgumentParser) -> None:
    _as_of(sub)
    sub.add_argument(
        "--out",
        metavar="DIR",
        help="folder for the report (default: storage.reports of the config)",
    )


def _export_options(sub: argparse.ArgumentParser) -> None:
    _as_of(sub)
    sub.add_argument(
        "--out",
        required=True,
        metavar="NAME",
        help="folder under storage.exports (a path or URI must lie inside it: erase follows it)",
    )
    sub.add_argument("--format", choices=("csv", "parquet"), default="csv")
    sub.add_argument("--tag", action="append", default=[], help="users with this tag (repeat: all)")
    sub.add_argument(
        "--segment", action="append", type=int, default=[], help="segment id (repeat: any)"
    )
    sub.add_argument(
        "--lifecycle", action="append", default=[], help="lifecycle stage (repeat: any)"
    )
    sub.add_argument("--min-decile", type=int, choices=range(1, 11), metavar="1-10")
    sub.add_argument(
        "--reidentify-from",
        metavar="CRM_CSV",
        help="add raw user_id by matching this CRM export (needs the pseudonymisation key)",
    )


def _lookup_options(sub: argparse.ArgumentParser) -> None:
    _as_of(sub)
    sub.add_argument("user", metavar="USER_ID", help="raw user id (as in the logs)")
    sub.add_argument(
        "--pseudonymous", action="store_true", help="USER_ID is already a user_key (no key needed)"
    )


def _erase_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--user-id", action="append", default=[], metavar="ID", help="raw user id (repeatable)"
    )
    sub.add_argument(
        "--ids-file",
        type=argparse.FileType("r", encoding="utf-8"),
        metavar="PATH",
        help="file with one raw user id per line",
    )
    sub.add_argument(
        "--vacuum",
        action="store_true",
        help="accepted for compatibility: erase always purges and vacuums",
    )
    sub.add_argument(
        "--vacuum-hours",
        type=int,
        default=None,
        metavar="N",
        help="hours of table history erase keeps (default: privacy.erase_retention_hours, 0); "
        "more keeps erased rows readable by time travel that long",
    )


def _bench_options(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--sizes",
        default=None,
        metavar="LIST",
        help="comma-separated event counts, e.g. 250k,1M,10M "
        "(default 1M,10M, none when only --history-days is given)",
    )
    sub.add_argument(
        "--history-days",
        default=None,
        metavar="LIST",
        help="also time the same incremental day on top of histories of these lengths, "
        "e.g. 60,360 (a fixed small number of users)",
    )
    sub.add_argument(
        "--out",
        default="data/bench",
        metavar="DIR",
        help="cache of generated data, scratch tables and results.json",
    )


# ---------------------------------------------------------------- runners
# Steps are imported when run: `userprofile --help` and config errors need no Spark.


# The options of each subcommand (besides --conf and --verbose), in the order of the steps.
OPTIONS: dict[str, Callable[[argparse.ArgumentParser], None] | None] = {
    "generate": _generate_options,
    "ingest": None,
    "reprocess": _reprocess_options,
    "release": _release_options,
    "features": _as_of,
    "train": _train_options,
    "profile": _as_of,
    "pipeline": _pipeline_options,
    "report": _report_options,
    "evaluate": _as_of,
    "export": _export_options,
    "lookup": _lookup_options,
    "erase": _erase_options,
    "bench": _bench_options,
}
STEPS = tuple(OPTIONS)
# Commands whose summary names the snapshot they computed.
TITLED_WITH_SNAPSHOT = ("features", "train", "profile", "pipeline", "report", "evaluate")


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--conf",
        default=DEFAULT_CONF,
        metavar="PATH",
        help=f"config file (default: {DEFAULT_CONF})",
    )
    common.add_argument(
        "--remote",
        metavar="sc://HOST:PORT",
        help="run on a Spark Connect server (default: SPARK_REMOTE if set, else a local session)",
    )
    common.add_argument("--verbose", action="store_true", help="print tracebacks for errors")
    parser = argparse.ArgumentParser(
        prog="userprofile", description="User profiles from raw event logs on Spark and Delta Lake."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    steps = parser.add_subparsers(dest="step", required=True, metavar="STEP")
    for name, options in OPTIONS.items():
        help_text = COMMANDS[name].help
        sub = steps.add_parser(name, parents=[common], help=help_text, description=help_text)
        if options is not None:
            options(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from userprofile.io.progress import log_to_stderr

    args = build_parser().parse_args(argv)
    log_to_stderr()
    if not args.verbose:
        # PySpark logs every analysis error in full (plan + JVM stack) before raising it.
        for name in ("DataFrameQueryContextLogger", "SQLQueryContextLogger"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        settings = load_settings(args.conf)
    except ConfigError as exc:
        return _fail(str(exc), 2)
    if "as_of" in args and args.as_of is None:
        args.as_of = dt.datetime.now(dt.timezone.utc).date()
    if getattr(args, "from_date", None) is not None and args.from_date > (
        args.to_date or args.as_of
    ):
        return _fail(f"--from {args.from_date} is after --to {args.to_date or args.as_of}", 2)
    try:
        return _run(args, settings)
    except ConfigError as exc:
        return _fail(str(exc), 2, args.verbose)
    except UserProfileError as exc:
        return _fail(str(exc), 1, args.verbose)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except Exception as exc:  # Spark/JVM errors: one line without values, the traceback on request
        return _fail(scrubbed(exc, [settings.privacy.pseudonym_key_env]), 1, args.verbose)


def _run(args: argparse.Namespace, settings: Settings) -> int:
    from userprofile.io.context import RunContext
    from userprofile.io.progress import logged, print_summary
    from userprofile.io.session import get_spark, owns_session

    spec = COMMANDS[args.step]
    if spec.check is not None:
        spec.check(settings, args)  # before Spark starts
    reuse = not owns_session()
    spark = get_spark(settings, remote=args.remote)
    try:
        ctx = RunContext(spark, settings)
        if spec.logs_itself:
            reports = spec.run(ctx, args)
        else:
            reports = [logged(spark, spec.name, lambda: spec.run(ctx, args)[0])]
        snapshot = args.as_of if spec.name in TITLED_WITH_SNAPSHOT else None
        print_summary(ctx, spec.name, snapshot, reports)
    finally:
        if not reuse:  # never stop a session we were handed (Databricks, notebooks)
            spark.stop()
    return 0


def _fail(message: str, code: int, verbose: bool = False) -> int:
    if verbose:
        traceback.print_exc()
    print(f"userprofile: error: {message}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
