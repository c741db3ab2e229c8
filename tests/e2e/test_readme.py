"""Every code snippet in the README runs as written, on the shared run.

A fenced block with a language is a snippet: ``python`` is executed, ``sql``
statements run in Spark, ``yaml`` must load as config on top of base.yaml and
``bash`` lines that call ``userprofile`` run through the CLI. The run's paths
and snapshot replace the README's ``data/`` paths and 2026-05-01. A snippet
that cannot run on one machine (a cluster, a Databricks workspace) says so in
an HTML comment right above it: ``<!-- not run by tests: reason -->``. Blocks
without a language are printed output, not snippets.
"""

from __future__ import annotations

import datetime as dt
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import yaml
from pyspark.sql import SparkSession

from tests.e2e.shared import AS_OF, USERS, PipelineRun
from tests.helpers import REPO, write_conf
from userprofile.cli import main
from userprofile.config import load_settings

pytestmark = pytest.mark.e2e

FENCE = re.compile(
    r"(?:<!-- not run by tests: (?P<why>[^>]+?) -->\n)?```(?P<lang>[a-z]+)\n(?P<body>.*?)```",
    re.S,
)
README_DAY = "2026-05-01"


@dataclass(frozen=True)
class Snippet:
    lang: str
    body: str
    not_run_because: str | None

    def on(self, run: PipelineRun) -> str:
        """The snippet with the run's warehouse and snapshot in place of the README's."""
        text = self.body.replace("data/warehouse", str(run.warehouse))
        text = text.replace(README_DAY, AS_OF.isoformat())
        as_of = f"dt.date({AS_OF.year}, {AS_OF.month}, {AS_OF.day})"
        return text.replace("dt.date(2026, 5, 1)", as_of)


def snippets() -> list[Snippet]:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    return [Snippet(m["lang"], m["body"], m["why"]) for m in FENCE.finditer(readme)]


def test_every_snippet_is_run_or_says_why_not() -> None:
    found = snippets()
    assert len(found) >= 15
    assert {s.lang for s in found} <= {"python", "sql", "yaml", "bash"}
    unmarked_bash = [s for s in found if s.lang == "bash" and not s.not_run_because]
    for snippet in unmarked_bash:  # bash that runs here calls userprofile only
        for line in command_lines(snippet.body):
            assert line.startswith("userprofile "), line


def command_lines(body: str) -> list[str]:
    lines = [line.split("  #")[0].strip() for line in body.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def test_python_snippets_run(pipeline_run: PipelineRun) -> None:
    run = [s for s in snippets() if s.lang == "python" and not s.not_run_because]
    assert run
    for snippet in run:
        namespace: dict[str, object] = {}
        exec(snippet.on(pipeline_run), namespace)
    latest = namespace["latest"]  # the delta-rs snippet: the snapshot, read without Spark
    assert isinstance(latest, pd.DataFrame)
    assert len(latest) == USERS
    assert set(latest.snapshot_date) == {AS_OF}


def test_sql_snippets_run(spark: SparkSession, pipeline_run: PipelineRun) -> None:
    run = [s for s in snippets() if s.lang == "sql" and not s.not_run_because]
    assert len(run) >= 5
    for snippet in run:
        for statement in filter(str.strip, snippet.on(pipeline_run).split(";")):
            assert spark.sql(statement).count() > 0, statement


def test_yaml_snippets_are_valid_config(tmp_path: Path) -> None:
    run = [s for s in snippets() if s.lang == "yaml" and not s.not_run_because]
    assert run
    for i, snippet in enumerate(run):
        document = {"extends": str(REPO / "conf" / "base.yaml"), **yaml.safe_load(snippet.body)}
        load_settings(write_conf(tmp_path / f"snippet{i}.yaml", document))


def test_cli_snippets_run(
    pipeline_run: PipelineRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # relative --out folders land here
    run = [s for s in snippets() if s.lang == "bash" and not s.not_run_because]
    lines = [line for s in run for line in command_lines(s.on(pipeline_run))]
    assert lines
    for line in lines:
        args = shlex.split(line)[1:]
        assert main([*args, "--conf", str(pipeline_run.conf)]) == 0, line


def test_the_snapshot_in_the_readme_is_the_demo_snapshot() -> None:
    demo = load_settings(REPO / "conf" / "local.yaml").generator
    assert dt.date.fromisoformat(README_DAY) == demo.end_date  # the first day after the logs
