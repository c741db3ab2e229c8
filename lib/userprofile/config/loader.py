"""Loading config files: ``extends``, ``${ENV}`` references, and checks of rule expressions.

A config file may name a parent with ``extends: base.yaml`` (relative to the
file); the child's keys override the parent's, dictionaries merge key by key,
lists are replaced whole. Every error names the file that set the bad key, and
every check runs before any Spark work starts.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from userprofile.config.expressions import rule_problem
from userprofile.config.schema import Settings
from userprofile.errors import ConfigError
from userprofile.features.catalog import CENTRE_COLUMNS, tag_rule_columns

Origins = dict[tuple[str, ...], Path]


def load_settings(path: str | os.PathLike[str]) -> Settings:
    """Load, merge and validate a config file; raise ConfigError naming file and key."""
    merged, origins = _load_with_parents(Path(path), seen=())
    try:
        settings = Settings.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, origins, Path(path))) from None
    problems = _condition_problems(settings)
    if problems:
        lines = [f"{_origin_of(loc, origins) or path}: {text}" for loc, text in problems]
        raise ConfigError("invalid config: " + "\n  ".join(lines))
    return settings


def _condition_problems(settings: Settings) -> list[tuple[tuple[str, ...], str]]:
    """Rules that do not parse, leave the rule language or name unknown columns."""
    problems: list[tuple[tuple[str, ...], str]] = []
    tag_columns = tag_rule_columns(settings.features.windows_days)
    for i, tag in enumerate(settings.tags):
        why = rule_problem(tag.rule, tag_columns)
        if why:
            problems.append((("tags",), f"tags[{i}].rule (tag '{tag.name}'): {why}"))
    centre_columns = ["users", *CENTRE_COLUMNS]
    for i, rule in enumerate(settings.segmentation.names):
        why = rule_problem(rule.when, centre_columns)
        if why:
            where = f"segmentation.names[{i}].when (segment name '{rule.name}')"
            problems.append((("segmentation", "names"), f"{where}: {why}"))
    for i, rule in enumerate(settings.rfm.segments):
        why = rule_problem(rule.when, ["r_score", "f_score", "m_score"])
        if why:
            where = f"rfm.segments[{i}].when (RFM segment '{rule.name}')"
            problems.append((("rfm", "segments"), f"{where}: {why}"))
    return problems + _mapping_problems(settings)


def _mapping_problems(settings: Settings) -> list[tuple[tuple[str, ...], str]]:
    """Field expressions of csv/text/regex sources outside the rule language or over
    columns their layout does not have."""
    problems: list[tuple[tuple[str, ...], str]] = []
    for name, source in settings.ingest.sources.items():
        columns = source.columns
        if columns is None:
            continue  # JSON: fields are key names, not expressions
        for field, expression in source.fields.items():
            why = rule_problem(expression, columns)
            if why:
                where = ("ingest", "sources", name, "fields", field)
                problems.append((where, f"ingest.sources.{name}.fields.{field}: {why}"))
    return problems


def _load_with_parents(path: Path, seen: tuple[Path, ...]) -> tuple[dict[str, Any], Origins]:
    resolved = path.resolve()
    if resolved in seen:
        chain = " -> ".join(str(p) for p in (*seen, resolved))
        raise ConfigError(f"{path}: extends: circular chain {chain}")
    document = _read_yaml(path)
    parent_name = document.pop("extends", None)
    own_origins = dict.fromkeys(_leaf_paths(document), path)
    if parent_name is None:
        return document, own_origins
    if not isinstance(parent_name, str):
        raise ConfigError(f"{path}: extends: must be a file name, got {parent_name!r}")
    parent, origins = _load_with_parents(path.parent / parent_name, (*seen, resolved))
    origins.update(own_origins)
    return _deep_merge(parent, document), origins


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file ({exc.strerror})") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}:{where} not valid YAML ({exc})") from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ConfigError(
            f"{path}: top level must be a mapping of keys, got {type(document).__name__}"
        )
    expanded: dict[str, Any] = _expand_env(document, path, ())
    return expanded


# ${NAME} or ${NAME:-default}: lets one file serve several deployments (bundle targets).
ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _expand_env(node: Any, path: Path, key: tuple[str, ...]) -> Any:
    """Replace environment references in string values; unset ones name the key."""
    if isinstance(node, Mapping):
        return {k: _expand_env(v, path, (*key, str(k))) for k, v in node.items()}
    if isinstance(node, list):
        return [_expand_env(v, path, (*key, f"[{i}]")) for i, v in enumerate(node)]
    if not isinstance(node, str):
        return node

    def value_of(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        value = os.environ.get(name)
        if value is None and default is None:
            dotted = ".".join(key).replace(".[", "[")
            raise ConfigError(
                f"{path}: {dotted}: environment variable {name} is not set "
                f"(use ${{{name}:-default}} for a default)"
            )
        return value if value is not None else default

    return ENV_REFERENCE.sub(value_of, node)


def _leaf_paths(node: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths: list[tuple[str, ...]] = []
    for key, value in node.items():
        here = (*prefix, str(key))
        paths.append(here)
        if isinstance(value, Mapping):
            paths.extend(_leaf_paths(value, here))
    return paths


def _deep_merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _deep_merge(dict(merged[key]), value)
        else:
            merged[key] = value
    return merged


def _describe(exc: ValidationError, origins: Origins, top: Path) -> str:
    lines = []
    for error in exc.errors():
        loc = tuple(str(part) for part in error["loc"])
        key = ".".join(loc) or "(top level)"
        source = _origin_of(loc, origins) or top
        message = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
        if error["type"] == "extra_forbidden":
            message += _allowed_keys_hint(loc)
        lines.append(f"{source}: {key}: {message}")
    if len(lines) == 1:
        return f"invalid config: {lines[0]}"
    return "invalid config:\n  " + "\n  ".join(lines)


def _origin_of(loc: tuple[str, ...], origins: Origins) -> Path | None:
    for end in range(len(loc), 0, -1):
        if loc[:end] in origins:
            return origins[loc[:end]]
    return None


def _allowed_keys_hint(loc: tuple[str, ...]) -> str:
    model: type[BaseModel] = Settings
    for part in loc[:-1]:
        annotation = model.model_fields[part].annotation if part in model.model_fields else None
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
        else:
            return ""
    return f" (allowed here: {', '.join(sorted(model.model_fields))})"
