"""Run a Databricks source-format notebook locally, with a stand-in for dbutils.widgets only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

HEADER = "# Databricks notebook source\n"
CELL_SEPARATOR = "\n# COMMAND ----------\n"


class Widgets:
    """``dbutils.widgets``: text and dropdown widgets, values given by the test."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values
        self.defaults: dict[str, str] = {}
        self.choices: dict[str, list[str]] = {}

    def text(self, name: str, default: str, label: str | None = None) -> None:
        self.defaults[name] = default

    def dropdown(
        self, name: str, default: str, choices: list[str], label: str | None = None
    ) -> None:
        assert default in choices, f"widget {name}: default {default!r} not among {choices}"
        self.defaults[name] = default
        self.choices[name] = choices

    def get(self, name: str) -> str:
        # Databricks raises for a widget the notebook never defined.
        if name not in self.defaults:
            raise ValueError(f"InputWidgetNotDefined: {name}")
        value = self.values.get(name, self.defaults[name])
        if name in self.choices:
            assert value in self.choices[name], f"widget {name}: {value!r} not a choice"
        return value


class DbUtils:
    def __init__(self, widgets: Widgets) -> None:
        self.widgets = widgets


def cells(path: Path) -> list[str]:
    """The notebook's code cells, ``# MAGIC`` (markdown) lines removed."""
    source = path.read_text(encoding="utf-8")
    assert source.startswith(HEADER), f"{path} is not a Databricks source-format notebook"
    parts = source[len(HEADER) :].split(CELL_SEPARATOR)
    code = ["\n".join(ln for ln in p.splitlines() if not ln.startswith("# MAGIC")) for p in parts]
    return [c for c in code if c.strip()]


def run_notebook(path: Path, widgets: dict[str, str]) -> dict[str, Any]:
    """Execute every cell in order in one namespace, as a notebook does; return it."""
    stand_in = Widgets(widgets)
    namespace: dict[str, Any] = {"dbutils": DbUtils(stand_in), "__name__": "__main__"}
    for index, code in enumerate(cells(path)):
        exec(compile(code, f"{path.name} (cell {index + 1})", "exec"), namespace)
    unknown = set(widgets) - set(stand_in.defaults)
    assert not unknown, f"{path.name} has no widgets {sorted(unknown)}"
    return namespace
