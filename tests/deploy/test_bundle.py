"""The Databricks Asset Bundle, checked offline (no workspace, no Spark).

`databricks bundle validate` checks the bundle's shape against a workspace; these
tests check what it cannot: that our own CLI accepts every task's arguments, that
every variable and job parameter a task uses is declared, and that the config the
tasks read loads with the environment the job cluster gives it.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import REPO
from userprofile.cli import build_parser
from userprofile.config import StorageConfig, TablesConfig, load_settings
from userprofile.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

TASK_ORDER = ("ingest", "features", "train", "profile", "report")
SAMPLE_DATE = "2026-05-01"
# Dynamic value references that give the run's date (docs: "What is a dynamic value reference?").
RUN_DATE_REFERENCES = {"{{job.trigger.time.iso_date}}", "{{job.start_time.iso_date}}"}
# Substitutions the Databricks CLI fills in at deploy time, with sample values.
DEPLOY_SAMPLES = {
    "bundle.name": "userprofile",
    "workspace.current_user.userName": "someone@example.com",
    "workspace.file_path": "/Workspace/Users/someone@example.com/.bundle/userprofile/dev/files",
}

BUNDLE_REFERENCE = re.compile(r"\$\{([A-Za-z0-9_.-]+)\}")
VAR_REFERENCE = re.compile(r"\$\{var\.([A-Za-z0-9_-]+)")
DYNAMIC_REFERENCE = re.compile(r"\{\{\s*([^{}]+?)\s*\}\}")
JOB_PARAMETER_REFERENCE = re.compile(r"\{\{\s*job\.parameters\.([A-Za-z0-9_]+)\s*\}\}")
# ${NAME} without a default in a config file: the environment must supply NAME.
REQUIRED_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


# ---------------------------------------------------------------- helpers


def read_yaml(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(document, dict), f"{path}: top level is not a mapping"
    return document


def bundle_files(root: Path = REPO) -> list[Path]:
    """databricks.yml and the files its `include` globs name, as the CLI reads them."""
    main = root / "databricks.yml"
    included = [p for pattern in read_yaml(main).get("include", []) for p in root.glob(pattern)]
    return [main, *sorted(included)]


def strings(node: Any) -> Iterator[str]:
    """Every string value in a YAML tree."""
    if isinstance(node, Mapping):
        for value in node.values():
            yield from strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from strings(value)
    elif isinstance(node, str):
        yield node


def undefined_variables(documents: list[dict[str, Any]]) -> set[str]:
    """Names used as ${var.NAME} that no document declares under `variables`."""
    declared = {name for doc in documents for name in doc.get("variables") or {}}
    used = {m for doc in documents for s in strings(doc) for m in VAR_REFERENCE.findall(s)}
    return used - declared


def undeclared_job_parameters(job: Mapping[str, Any]) -> set[str]:
    """Names used as {{job.parameters.NAME}} in a job that its `parameters` do not declare."""
    declared = {p["name"] for p in job.get("parameters", [])}
    used = {m for s in strings(job) for m in JOB_PARAMETER_REFERENCE.findall(s)}
    return used - declared


def variable_values(bundle: Mapping[str, Any], target: str) -> dict[str, str]:
    """Each variable's default, overridden by the target's value (plain or {default: ...})."""
    values = {name: str(spec.get("default", "")) for name, spec in bundle["variables"].items()}
    overrides = bundle["targets"][target].get("variables") or {}
    for name, value in overrides.items():
        values[name] = str(value["default"] if isinstance(value, Mapping) else value)
    return values


def resolve(text: str, values: Mapping[str, str]) -> str:
    """Replace ${name} and {{name}} references with values; unknown ones stay as they are."""
    for _ in range(5):  # a variable's default may itself hold a reference
        text = BUNDLE_REFERENCE.sub(lambda m: values.get(m.group(1), m.group(0)), text)
        text = DYNAMIC_REFERENCE.sub(lambda m: values.get(m.group(1), m.group(0)), text)
    return text


def job_parameter_values(job: Mapping[str, Any], variables: Mapping[str, str]) -> dict[str, str]:
    """Each job parameter's default, with a sample date where it is a dynamic value."""
    values: dict[str, str] = {}
    for parameter in job["parameters"]:
        default = str(parameter["default"])
        dynamic = DYNAMIC_REFERENCE.search(default) is not None
        values[parameter["name"]] = SAMPLE_DATE if dynamic else resolve(default, variables)
    return values


def reference_values(
    bundle: Mapping[str, Any], job: Mapping[str, Any], target: str
) -> dict[str, str]:
    """What every ${...} and {{job.parameters...}} of a task resolves to for a target."""
    variables = {f"var.{k}": v for k, v in variable_values(bundle, target).items()}
    values = {**DEPLOY_SAMPLES, "bundle.target": target, **variables}
    parameters = job_parameter_values(job, values)
    return {**values, **{f"job.parameters.{k}": v for k, v in parameters.items()}}


def parse_task_arguments(task_key: str, arguments: list[str]) -> argparse.Namespace:
    """Parse a task's arguments with the real CLI parser; fail naming the task if it refuses."""
    leftover = [a for a in arguments if "${" in a or "{{" in a]
    if leftover:
        pytest.fail(f"task {task_key}: unresolved references in its parameters: {leftover}")
    try:
        return build_parser().parse_args(arguments)
    except SystemExit as exc:
        pytest.fail(f"task {task_key}: `userprofile {' '.join(arguments)}` is refused ({exc})")


def is_daily_quartz(expression: str) -> bool:
    """A Quartz cron expression that fires once a day at a fixed time."""
    fields = expression.split()
    if len(fields) not in (6, 7):
        return False
    second, minute, hour, day_of_month, month, day_of_week = fields[:6]
    fixed_time = all(f.isdigit() for f in (second, minute, hour))
    every_day = {day_of_month, day_of_week} == {"*", "?"} and month == "*"
    return fixed_time and every_day


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def documents() -> list[dict[str, Any]]:
    return [read_yaml(path) for path in bundle_files()]


@pytest.fixture(scope="module")
def bundle(documents: list[dict[str, Any]]) -> dict[str, Any]:
    return documents[0]


@pytest.fixture(scope="module")
def job(documents: list[dict[str, Any]]) -> dict[str, Any]:
    jobs = {
        name: spec
        for doc in documents
        for name, spec in ((doc.get("resources") or {}).get("jobs") or {}).items()
    }
    assert list(jobs) == ["userprofile_job"], f"expected one job, found {sorted(jobs)}"
    return jobs["userprofile_job"]


@pytest.fixture(scope="module")
def tasks(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {task["task_key"]: task for task in job["tasks"]}


@pytest.fixture(scope="module")
def pyproject() -> dict[str, Any]:
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


# ---------------------------------------------------------------- the bundle's shape


def test_bundle_includes_the_job_file() -> None:
    assert REPO / "resources" / "userprofile_job.yml" in bundle_files()


def test_dev_and_prod_targets(bundle: dict[str, Any]) -> None:
    assert bundle["bundle"]["name"] == "userprofile"
    dev, prod = bundle["targets"]["dev"], bundle["targets"]["prod"]
    assert dev["mode"] == "development"
    assert dev["default"] is True
    assert prod["mode"] == "production"
    # Production mode refuses to deploy without an explicit, shared root_path.
    assert prod["workspace"]["root_path"].startswith("/Workspace/")
    assert {"catalog", "schema"} <= set(prod["variables"])
    assert variable_values(bundle, "prod")["schema"] != variable_values(bundle, "dev")["schema"]


def test_artifact_builds_the_wheel_into_dist(bundle: dict[str, Any]) -> None:
    [artifact] = bundle["artifacts"].values()
    assert artifact["type"] == "whl"
    assert (REPO / artifact["path"]).resolve() == REPO
    assert "dist" in artifact["build"].split()


def test_variables_are_described(bundle: dict[str, Any]) -> None:
    vague = [name for name, spec in bundle["variables"].items() if not spec.get("description")]
    assert vague == []
    assert variable_values(bundle, "dev")["retrain_after_days"] == "7"


def test_every_variable_used_is_declared(documents: list[dict[str, Any]]) -> None:
    assert undefined_variables(documents) == set()


def test_every_declared_variable_is_used(documents: list[dict[str, Any]]) -> None:
    declared = set(documents[0]["variables"])
    used = {m for doc in documents for s in strings(doc) for m in VAR_REFERENCE.findall(s)}
    assert declared - used == set()


def test_every_job_parameter_used_is_declared(job: dict[str, Any]) -> None:
    assert undeclared_job_parameters(job) == set()


def test_tasks_run_in_order(job: dict[str, Any]) -> None:
    keys = [task["task_key"] for task in job["tasks"]]
    assert keys == list(TASK_ORDER)
    depends = {
        t["task_key"]: [d["task_key"] for d in t.get("depends_on", [])] for t in job["tasks"]
    }
    expected = {key: list(TASK_ORDER[i - 1 : i]) for i, key in enumerate(TASK_ORDER)}
    assert depends == expected


def test_daily_schedule_in_utc_left_to_the_target_mode(job: dict[str, Any]) -> None:
    schedule = job["schedule"]
    assert is_daily_quartz(schedule["quartz_cron_expression"])
    assert schedule["timezone_id"] == "UTC"
    # An explicit UNPAUSED would keep the schedule running in development mode too.
    assert schedule.get("pause_status") != "UNPAUSED"


def test_one_run_at_a_time_with_timeouts_and_alerts(job: dict[str, Any]) -> None:
    assert job["max_concurrent_runs"] == 1
    assert job["timeout_seconds"] > 0
    assert all(task["timeout_seconds"] > 0 for task in job["tasks"])
    assert job["email_notifications"]["on_failure"] == ["${var.alert_email}"]


def test_as_of_defaults_to_the_run_date(job: dict[str, Any]) -> None:
    defaults = {p["name"]: p["default"] for p in job["parameters"]}
    assert set(defaults) == {"as_of", "retrain_after_days"}
    assert defaults["as_of"] in RUN_DATE_REFERENCES


def test_job_fits_the_databricks_job_model(job: dict[str, Any]) -> None:
    # databricks-bundles (PyPI) types every job field; from_dict refuses unknown keys.
    models = pytest.importorskip("databricks.bundles.jobs", reason="needs databricks-bundles")
    models.Job.from_dict(job)
    with pytest.raises(ValueError, match="max_concurent_runs"):
        models.Job.from_dict({**job, "max_concurent_runs": 1})


# ---------------------------------------------------------------- the tasks


def test_tasks_call_the_console_script(
    tasks: dict[str, dict[str, Any]], pyproject: dict[str, Any]
) -> None:
    scripts = pyproject["project"]["scripts"]
    assert scripts["userprofile"] == "userprofile.cli:main"  # main parses with build_parser
    for key, task in tasks.items():
        wheel_task = task["python_wheel_task"]
        assert wheel_task["entry_point"] in scripts, key
        assert wheel_task["package_name"] == pyproject["project"]["name"], key


def test_tasks_install_the_built_wheel_on_the_shared_cluster(job: dict[str, Any]) -> None:
    job_file = REPO / "resources" / "userprofile_job.yml"
    [cluster] = job["job_clusters"]
    for task in job["tasks"]:
        assert task["job_cluster_key"] == cluster["job_cluster_key"], task["task_key"]
        [library] = task["libraries"]
        wheels = (job_file.parent / library["whl"]).resolve()
        assert (wheels.parent, wheels.name) == (REPO / "dist", "*.whl"), task["task_key"]


@pytest.mark.parametrize("target", ["dev", "prod"])
@pytest.mark.parametrize("task_key", TASK_ORDER)
def test_task_arguments_are_accepted_by_the_cli(
    bundle: dict[str, Any],
    job: dict[str, Any],
    tasks: dict[str, dict[str, Any]],
    task_key: str,
    target: str,
) -> None:
    values = reference_values(bundle, job, target)
    arguments = [
        resolve(str(a), values) for a in tasks[task_key]["python_wheel_task"]["parameters"]
    ]
    args = parse_task_arguments(task_key, arguments)
    assert args.step == task_key
    # The config as the bundle syncs it: the repo's conf/ under workspace.file_path.
    synced = DEPLOY_SAMPLES["workspace.file_path"] + "/"
    assert args.conf.startswith(synced)
    assert (REPO / args.conf.removeprefix(synced)) == REPO / "conf" / "databricks.yaml"
    if task_key != "ingest":
        assert str(args.as_of) == SAMPLE_DATE
    if task_key == "train":
        assert args.retrain_after_days == 7
    if task_key == "report":
        variables = variable_values(bundle, target)
        volume = f"/Volumes/{variables['catalog']}/{variables['schema']}/{variables['volume']}"
        assert args.out == f"{volume}/reports"


# ---------------------------------------------------------------- the cluster and the config


def cluster_environment(job: Mapping[str, Any]) -> dict[str, str]:
    [cluster] = job["job_clusters"]
    env = cluster["new_cluster"]["spark_env_vars"]
    assert isinstance(env, dict)
    return {str(k): str(v) for k, v in env.items()}


def set_cluster_environment(
    monkeypatch: pytest.MonkeyPatch, bundle: Mapping[str, Any], job: Mapping[str, Any], target: str
) -> None:
    """The job cluster's environment variables, as deployed to the target."""
    values = {f"var.{k}": v for k, v in variable_values(bundle, target).items()}
    for name, value in cluster_environment(job).items():
        monkeypatch.setenv(name, resolve(value, values))


def test_pseudonym_key_comes_from_a_secret(
    monkeypatch: pytest.MonkeyPatch, bundle: dict[str, Any], job: dict[str, Any]
) -> None:
    set_cluster_environment(monkeypatch, bundle, job, "dev")
    settings = load_settings(REPO / "conf" / "databricks.yaml")
    env = cluster_environment(job)
    key_var = settings.privacy.pseudonym_key_env
    assert env[key_var] == "{{secrets/${var.secret_scope}/pseudonym_key}}"
    # Only the key is a secret; nothing else on the cluster's environment is.
    assert [k for k, v in env.items() if "secrets/" in v] == [key_var]


def test_config_needs_only_what_the_cluster_sets(job: dict[str, Any]) -> None:
    document = read_yaml(REPO / "conf" / "databricks.yaml")
    needed = {m for s in strings(document) for m in REQUIRED_ENV_REFERENCE.findall(s)}
    assert needed, "conf/databricks.yaml is expected to take catalog, schema and volume"
    assert needed <= set(cluster_environment(job))


def test_config_names_every_table_and_folder() -> None:
    document = read_yaml(REPO / "conf" / "databricks.yaml")
    assert set(document["tables"]) == set(TablesConfig.model_fields)
    assert set(document["storage"]) == set(StorageConfig.model_fields)


@pytest.mark.parametrize("target", ["dev", "prod"])
def test_config_loads_with_the_cluster_environment(
    monkeypatch: pytest.MonkeyPatch, bundle: dict[str, Any], job: dict[str, Any], target: str
) -> None:
    set_cluster_environment(monkeypatch, bundle, job, target)
    settings = load_settings(REPO / "conf" / "databricks.yaml")
    assert settings.environment == "databricks"
    variables = variable_values(bundle, target)
    catalog, schema, volume = variables["catalog"], variables["schema"], variables["volume"]
    for key in TablesConfig.model_fields:
        assert getattr(settings.tables, key) == f"{catalog}.{schema}.{key}"
    for key in StorageConfig.model_fields:
        assert getattr(settings.storage, key) == f"/Volumes/{catalog}/{schema}/{volume}/{key}"


def test_config_refuses_to_load_without_the_cluster_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("USERPROFILE_CATALOG", "USERPROFILE_SCHEMA", "USERPROFILE_VOLUME"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigError, match="USERPROFILE_CATALOG"):
        load_settings(REPO / "conf" / "databricks.yaml")


# ---------------------------------------------------------------- the checks can fail


def test_undefined_variable_is_found() -> None:
    documents = [
        {"variables": {"catalog": {"default": "main"}}},
        {"resources": {"jobs": {"j": {"name": "${var.catalog}.${var.schemma}"}}}},
    ]
    assert undefined_variables(documents) == {"schemma"}


def test_undeclared_job_parameter_is_found() -> None:
    job = {
        "parameters": [{"name": "as_of", "default": "{{job.start_time.iso_date}}"}],
        "tasks": [{"python_wheel_task": {"parameters": ["--as-of", "{{job.parameters.asof}}"]}}],
    }
    assert undeclared_job_parameters(job) == {"asof"}


def test_refused_arguments_fail_naming_the_task() -> None:
    with pytest.raises(pytest.fail.Exception, match=r"task train: .* is refused"):
        parse_task_arguments("train", ["train", "--as-of", "01/05/2026"])
    with pytest.raises(pytest.fail.Exception, match="task report: unresolved"):
        parse_task_arguments("report", ["report", "--out", "/Volumes/${var.nope}/reports"])


@pytest.mark.parametrize(
    ("expression", "daily"),
    [("0 0 3 * * ?", True), ("0 0 3 ? * MON", False), ("0 0 */6 * * ?", False), ("0 3 * *", False)],
)
def test_daily_schedule_check(expression: str, daily: bool) -> None:
    assert is_daily_quartz(expression) is daily
