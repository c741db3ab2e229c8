"""The `userprofile` command: one subcommand per step, the same `main` for every launcher.

``userprofile pipeline --conf conf/local.yaml --as-of 2026-05-01`` locally,
``spark-submit jobs/pipeline.py --conf ...`` on a cluster, and a Databricks
``python_wheel_task`` (entry point ``userprofile``) all end up in ``main``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TextIO

from userprofile import __version__
from userprofile.config import Settings, load_settings
from userprofile.errors import ConfigError, UserProfileError

if TYPE_CHECKING:
    from userprofile.steps.audience import AudienceFilter
    from userprofile.steps.common import RunContext, StepReport

DEFAULT_CONF = "conf/local.yaml"
STEPS = (
    "generate",
    "ingest",
    "features",
    "train",
    "profile",
    "pipeline",
    "report",
    "evaluate",
    "export",
    "lookup",
    "erase",
    "bench",
)
NEEDS_AS_OF = ("features", "train", "profile", "pipeline", "report", "evaluate")


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


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--conf",
        default=DEFAULT_CONF,
        metavar="PATH",
        help=f"config file (default: {DEFAULT_CONF})",
    )
    common.add_argument(
        "--as-of",
        type=parse_date,
        metavar="YYYY-MM-DD",
        help="snapshot date: features use events before 00:00 UTC of it (default: today, UTC)",
    )
    common.add_argument("--verbose", action="store_true", help="print tracebacks for errors")
    parser = argparse.ArgumentParser(
        prog="userprofile", description="User profiles from raw event logs on Spark and Delta Lake."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    steps = parser.add_subparsers(dest="step", required=True, metavar="STEP")
    helps = {
        "generate": "write synthetic raw logs (events JSON lines, CRM users CSV) to landing",
        "ingest": "landing files -> bronze (+ quarantine) -> silver, each file exactly once",
        "features": "silver -> user_features for the snapshot date",
        "train": "fit KMeans segmentation and purchase-propensity models",
        "profile": "score the snapshot and write its user_profile partition",
        "pipeline": "ingest, features, train and profile for the snapshot date",
        "report": "write a self-contained HTML report of the snapshot (figures inside)",
        "evaluate": "compare segments and propensity with the generator's planted truth",
        "export": "write an audience (tags, segments, lifecycle, decile) as CSV or Parquet",
        "lookup": "print one user's profile and why: tag rules, lifecycle, segment",
        "erase": "delete users from every layer and keep them out of later ingests",
        "bench": "time steps on generated data of chosen sizes and print the figures",
    }
    for name in STEPS:
        sub = steps.add_parser(name, parents=[common], help=helps[name], description=helps[name])
        if name == "generate":
            sub.add_argument(
                "--skip-existing",
                action="store_true",
                help="do nothing if the landing folder already has events",
            )
        if name == "erase":
            _add_erase_arguments(sub)
        if name == "export":
            _add_export_arguments(sub)
        if name in ("train", "pipeline"):
            sub.add_argument(
                "--retrain-after-days",
                type=non_negative_int,
                default=0,
                metavar="N",
                help="reuse the newest model unless it is N or more days older than the "
                "snapshot (default 0: always train)",
            )
        if name == "report":
            sub.add_argument(
                "--out",
                metavar="DIR",
                help="folder for the report (default: storage.reports of the config)",
            )
        if name == "pipeline":
            sub.add_argument(
                "--from",
                dest="from_date",
                type=parse_date,
                metavar="YYYY-MM-DD",
                help="backfill: every date from this one to --to (default --as-of), in order",
            )
            sub.add_argument("--to", dest="to_date", type=parse_date, metavar="YYYY-MM-DD")
            sub.add_argument(
                "--force", action="store_true", help="with --from: also redo completed dates"
            )
        if name == "lookup":
            sub.add_argument("user", metavar="USER_ID", help="raw user id (as in the logs)")
            sub.add_argument(
                "--pseudonymous",
                action="store_true",
                help="USER_ID is already a user_key (no key needed)",
            )
        if name == "bench":
            sub.add_argument(
                "--sizes",
                default="1M,10M",
                metavar="LIST",
                help="comma-separated event counts, e.g. 250k,1M,10M (default 1M,10M)",
            )
            sub.add_argument(
                "--out",
                default="data/bench",
                metavar="DIR",
                help="cache of generated data, scratch tables and results.json",
            )
    return parser


def _add_erase_arguments(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--user-id",
        action="append",
        default=[],
        metavar="ID",
        help="raw user id to erase (repeatable)",
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
        help="also delete old data files (ends time travel to before the erasure)",
    )
    sub.add_argument(
        "--vacuum-hours",
        type=int,
        default=168,
        metavar="N",
        help="with --vacuum: keep files newer than N hours (default 168; 0 = all)",
    )


def _add_export_arguments(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--out", required=True, metavar="PATH", help="output folder")
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


def _audience(args: argparse.Namespace) -> AudienceFilter:
    from userprofile.steps.audience import AudienceFilter

    return AudienceFilter(args.tag, args.segment, args.lifecycle, args.min_decile)


def _erase_request(args: argparse.Namespace) -> tuple[list[str], int | None]:
    ids = list(args.user_id)
    if args.ids_file is not None:
        ids += [line.strip() for line in args.ids_file if line.strip()]
    return ids, (args.vacuum_hours if args.vacuum else None)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _log_to_stderr()
    if not args.verbose:
        # PySpark logs every analysis error in full (plan + JVM stack) before raising it.
        for name in ("DataFrameQueryContextLogger", "SQLQueryContextLogger"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        settings = load_settings(args.conf)
    except ConfigError as exc:
        return _fail(str(exc), 2)
    as_of: dt.date = args.as_of or dt.datetime.now(dt.timezone.utc).date()
    last = getattr(args, "to_date", None) or as_of
    if getattr(args, "from_date", None) is not None and args.from_date > last:
        return _fail(f"--from {args.from_date} is after --to {last}", 2)
    try:
        return _run(args, settings, as_of)
    except ConfigError as exc:
        return _fail(str(exc), 2, args.verbose)
    except UserProfileError as exc:
        return _fail(str(exc), 1, args.verbose)
    except KeyboardInterrupt:
        return _fail("interrupted", 130)
    except Exception as exc:  # Spark/JVM errors: one line, the traceback on request
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return _fail(f"{type(exc).__name__}: {first_line}", 1, args.verbose)


def _run(args: argparse.Namespace, settings: Settings, as_of: dt.date) -> int:
    from userprofile.session import get_spark, owns_session
    from userprofile.steps.common import RunContext, logged

    reuse = not owns_session()
    spark = get_spark(settings)
    try:
        ctx = RunContext(spark, settings)
        runner = _step_runner(args)
        if args.step in ("pipeline", "bench"):  # they log and time their own steps
            reports = runner(ctx, as_of)
        else:
            reports = [logged(spark, args.step, lambda: runner(ctx, as_of)[0])]
        print_summary(ctx, args.step, as_of, reports)
    finally:
        if not reuse:  # never stop a session we were handed (Databricks, notebooks)
            spark.stop()
    return 0


def _step_runner(args: argparse.Namespace) -> Callable[[RunContext, dt.date], list[StepReport]]:
    from userprofile.steps.audience import run_export, run_lookup
    from userprofile.steps.erase import run_erase
    from userprofile.steps.evaluate import run_evaluate
    from userprofile.steps.features import run_features
    from userprofile.steps.generate import run_generate
    from userprofile.steps.ingest import run_ingest
    from userprofile.steps.pipeline import run_pipeline, run_range
    from userprofile.steps.profile import run_profile
    from userprofile.steps.report import run_report
    from userprofile.steps.train import run_train

    runners: dict[str, Callable[[RunContext, dt.date], list[StepReport]]] = {
        "generate": lambda ctx, _: [run_generate(ctx, args.skip_existing)],
        "ingest": lambda ctx, _: [run_ingest(ctx)],
        "features": lambda ctx, d: [run_features(ctx, d)],
        "train": lambda ctx, d: [run_train(ctx, d, args.retrain_after_days)],
        "profile": lambda ctx, d: [run_profile(ctx, d)],
        "pipeline": lambda ctx, d: (
            run_range(ctx, args.from_date, args.to_date or d, args.force, args.retrain_after_days)
            if args.from_date is not None
            else run_pipeline(ctx, d, args.retrain_after_days)
        ),
        "report": lambda ctx, d: [run_report(ctx, d, args.out)],
        "evaluate": lambda ctx, d: [run_evaluate(ctx, d)],
        "export": lambda ctx, d: [
            run_export(ctx, d, _audience(args), args.out, args.format, args.reidentify_from)
        ],
        "lookup": lambda ctx, d: [run_lookup(ctx, d, args.user, args.pseudonymous)],
        "erase": lambda ctx, _: [run_erase(ctx, *_erase_request(args))],
        "bench": lambda ctx, _: [_bench(ctx, args)],
    }
    return runners[args.step]


def _bench(ctx: RunContext, args: argparse.Namespace) -> StepReport:
    from pathlib import Path

    from userprofile.bench import parse_size, run_bench, write_json
    from userprofile.steps.common import StepReport

    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    try:
        [parse_size(s) for s in sizes]
    except ValueError as exc:
        raise ConfigError(f"--sizes: {exc}") from None
    rows, quality = run_bench(ctx.spark, ctx.settings, sizes, Path(args.out))
    results = Path(args.out) / "results.json"
    write_json(rows, quality, results)
    return StepReport("bench", {"results": str(results)})


def print_summary(ctx: RunContext, step: str, as_of: dt.date, reports: list[StepReport]) -> None:
    snapshot = f" (snapshot {as_of})" if step in NEEDS_AS_OF else ""
    print(f"\nuserprofile {step}{snapshot}: run {ctx.run_id}")
    for line in summary_table(reports):
        print(f"  {line}")
    print()
    width = max((len(k) for r in reports for k in r.rows), default=10)
    for report in reports:
        print(f"  {report.step} ({report.seconds:.1f} s)")
        for key, value in report.rows.items():
            print(f"    {key:<{width}}  {value}")
    if step in ("profile", "pipeline"):
        print(f"  user_profile table: {ctx.table('user_profile')}")
    if step == "report":
        print(f"  open it in a browser: file://{reports[0].rows['report']}")


def summary_table(reports: list[StepReport]) -> list[str]:
    """One line per step: seconds, rows in, rows out, quarantined; a total for several."""

    def cell(value: int | None) -> str:
        return "-" if value is None else f"{value:,}"

    lines = [f"{'step':<10} {'seconds':>8} {'rows in':>12} {'rows out':>12} {'quarantined':>12}"]
    for r in reports:
        counts = f"{cell(r.rows_in):>12} {cell(r.rows_out):>12} {cell(r.quarantined):>12}"
        lines.append(f"{r.step:<10} {r.seconds:>8.1f} {counts}")
    if len(reports) > 1:
        lines.append(f"{'total':<10} {sum(r.seconds for r in reports):>8.1f}")
    return lines


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]  # generic only in stubs
    """Writes to whatever ``sys.stderr`` is now (notebooks and tests replace it)."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        pass


def _log_to_stderr() -> None:
    """Progress lines (`HH:MM:SS step: ...`) on stderr, unless the host configured logging."""
    logger = logging.getLogger("userprofile")
    if logger.handlers:
        return
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def _fail(message: str, code: int, verbose: bool = False) -> int:
    if verbose:
        traceback.print_exc()
    print(f"userprofile: error: {message}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
