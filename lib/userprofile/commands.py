"""What each `userprofile` subcommand runs: one step, the pipeline, or a developer tool.

Steps are imported when a command runs, so `userprofile --help` and config
errors need no Spark. The options each command parses are declared in ``cli``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from userprofile.config import Settings
    from userprofile.io.context import RunContext, StepReport

Runner = Callable[["RunContext", argparse.Namespace], "list[StepReport]"]
# Checks options against the config before Spark starts; raises ConfigError.
Check = Callable[["Settings", argparse.Namespace], None]


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    run: Runner
    # It logs and times its own steps (several of them).
    logs_itself: bool
    check: Check | None = None


COMMANDS: dict[str, Command] = {}


def command(
    name: str,
    help: str,
    logs_itself: bool = False,
    check: Check | None = None,
) -> Callable[[Runner], Runner]:
    """Register a runner as the subcommand ``name`` (in the order of the steps)."""

    def register(run: Runner) -> Runner:
        COMMANDS[name] = Command(name, help, run, logs_itself, check)
        return run

    return register


@command(
    "generate",
    "write synthetic raw logs (events JSON lines, CRM users CSV) to landing",
)
def _generate(ctx: RunContext, args: argparse.Namespace) -> list[StepReport]:
    from userprofile.dev.generate import run_generate

    return [run_generate(ctx, args.skip_existing)]


@command("ingest", "landing files -> bronze (+ quarantine) -> silver, each file exactly once")
def _ingest(ctx: RunContext, args: argparse.Namespace) -> list[StepReport]:
    from userprofile.ingest.step import run_ingest

    return [run_ingest(ctx)]


def _known_source(settings: Settings, args: argparse.Namespace) -> None:
    from userprofile.ingest.reprocess import configured_source

    configured_source(settings, args.source)


@command(
    "reprocess",
    "re-ingest ingested files of one source after a mapping fix, replacing their rows",
    check=_known_source,
)
def _reprocess(ctx: RunContext, args: argparse.Namespace) -> list[StepReport]:
    from userprofile.ingest.reprocess import run_reprocess

    return [run_reprocess(ctx, args.source, args.files, args.since)]


@command(
    "release",
    "let a delivery the data-quality gate held back go in as it is on the next ingest",
)
def _release(ctx: RunContext, args: argparse.Namespace) -> list[StepReport]:
    from userprofile.ingest.gate import run_release

    return [run_release(ctx, args.delivery, args.reason)]


@command("features", "silver -> user_features for the snapshot date")
def _features(ctx: RunContext, args: argparse.Namespace) -> list[StepReport]:
    from userprofile.features.step import run_features

    return [run_features(ctx, args.as_of)]


@command("train", "fit KMeans segmentation and purchase-propensity models")
def _train(ctx: RunContext, args: argparse.Namespace) -> list[StepReport]:
    from userprofile.pipeline import train

    return [train(ctx, args.as_of, args.retrain_after_days)]


@command("profile", "score the snapshot and write its user_profile partition")
def _profile(ctx: RunContext, args: argparse.Namespace) -> list[StepReport]:
    from userprofile.profile.step import run_profile

    return [run_profile(ctx, args.as_of)]


@command(
    "pipeline",
    "ingest, features, train and profile for the snapshot date",
    logs_itself=True,
)
def _pipeline(ctx: RunContext, args: argparse.Namespace) -> list[StepReport]:
    from userprofile.pipeline import run_pipeline, run_range

    if args.from_date is None:
        return run_pipeline(ctx, args.as_of, args.retrain_after_days)
    last = args.to_date or args.as_of
    return run_range(ctx, args.from_date, last, args.force, args.retrain_after_days)


@command("report", "write a self-contained HTML report of the snapshot (figures inside)")
def _report(ctx: RunContext, args: argparse.Namespace) -> list[StepReport]:
    from userprofile.report.step import run_report

    return [run_report(ctx, args.as_of, args.out)]


@command("evaluate", "compare segments and propensity with the generator's planted truth")
def _evaluate(ctx: RunContext, args: argparse.Namespace) -> list[StepReport]:
    from userprofile.dev.evaluate import run_evaluate

    return [run_evaluate(ctx, args.as_of)]


@command(
    "export",
    "write an audience (tags, segments, lifecycle, decile) as CSV or Parquet",
)
def _export(ctx: RunContext, args: argparse.Namespace) -> list[StepReport]:
    from userprofile.ops.audience import AudienceFilter, run_export

    audience = AudienceFilter(args.tag, args.segment, args.lifecycle, args.min_decile)
    return [run_export(ctx, args.as_of, audience, args.out, args.format, args.reidentify_from)]


@command("lookup", "print one user's profile and why: tag rules, lifecycle, segment")
def _lookup(ctx: RunContext, args: argparse.Namespace) -> list[StepReport]:
    from userprofile.ops.audience import run_lookup

    return [run_lookup(ctx, args.as_of, args.user, args.pseudonymous)]


@command("erase", "delete users from every layer and keep them out of later ingests")
def _erase(ctx: RunContext, args: argparse.Namespace) -> list[StepReport]:
    from userprofile.ops.erase import run_erase

    ids = list(args.user_id)
    if args.ids_file is not None:
        ids += [line.strip() for line in args.ids_file if line.strip()]
    return [run_erase(ctx, ids, args.vacuum_hours)]


@command(
    "bench",
    "time steps on generated data of chosen sizes and print the figures",
    logs_itself=True,
)
def _bench(ctx: RunContext, args: argparse.Namespace) -> list[StepReport]:
    from userprofile.dev.bench import run_bench_command

    return [run_bench_command(ctx, args.sizes, args.out, args.history_days)]
