"""The package layout's rules, checked on the source: steps meet only in the pipeline,
runtime code never imports the developer tools, and no module grows into a room."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.helpers import REPO

PACKAGE = REPO / "lib" / "userprofile"
STAGES = ("ingest", "features", "models", "profile", "report", "ops")
# The CLI's runners dispatch `generate`, `bench` and `evaluate` to the dev tools.
MAY_IMPORT_DEV = {"commands.py"}
MAX_LINES = 375


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside functions."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def runtime_modules() -> list[Path]:
    return [p for p in PACKAGE.rglob("*.py") if "dev" not in p.relative_to(PACKAGE).parts]


def test_the_package_has_one_subpackage_per_stage() -> None:
    for stage in STAGES:
        assert (PACKAGE / stage / "__init__.py").is_file(), stage
    assert {s for s in STAGES if (PACKAGE / s / "step.py").is_file()} == {
        "ingest",
        "features",
        "models",
        "profile",
        "report",
    }


def foreign_steps(stage: str, imports: set[str]) -> set[str]:
    """The step modules of other stages among a module's imports."""
    own = f"userprofile.{stage}."
    return {m for m in imports if m.endswith(".step") and not m.startswith(own)}


def dev_imports(imports: set[str]) -> set[str]:
    return {m for m in imports if m == "userprofile.dev" or m.startswith("userprofile.dev.")}


def test_the_rules_see_a_violation() -> None:
    imports = {"userprofile.features.step", "userprofile.models.step", "userprofile.io.tables"}
    assert foreign_steps("models", imports) == {"userprofile.features.step"}
    assert foreign_steps("features", imports) == {"userprofile.models.step"}
    assert dev_imports({"userprofile.dev.generator", "userprofile.devices"}) == {
        "userprofile.dev.generator"
    }


@pytest.mark.parametrize("stage", STAGES)
def test_a_step_never_imports_another_stages_step(stage: str) -> None:
    for path in (PACKAGE / stage).glob("*.py"):
        steps = foreign_steps(stage, imported_modules(path))
        assert not steps, f"{module_name(path)} imports {sorted(steps)}; steps meet in pipeline.py"


def test_runtime_code_never_imports_the_dev_tools() -> None:
    offenders = {
        module_name(p): sorted(dev_imports(imported_modules(p)))
        for p in runtime_modules()
        if p.name not in MAY_IMPORT_DEV
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_no_module_grows_into_a_room() -> None:
    sizes = {module_name(p): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    assert {m: n for m, n in sizes.items() if n > MAX_LINES} == {}
