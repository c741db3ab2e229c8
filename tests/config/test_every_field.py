"""Every config key, given a value of the wrong type, fails the load with an error that
names the file that set it and the key, before any Spark work (no session is used here)."""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from tests.helpers import REPO, write_conf
from userprofile.config import load_settings
from userprofile.config.schema import Settings
from userprofile.errors import ConfigError

# Wrong for every kind of field: not a number, a text, a flag, a date, a list or a section.
WRONG = {"wrong": [1]}


def keys(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every key of the config: sections and the keys inside them."""
    found = []
    for name, field in model.model_fields.items():
        path = (*prefix, name)
        found.append(path)
        section = _section(field.annotation)
        if section is not None:
            found.extend(keys(section, path))
    return found


def _section(annotation: Any) -> type[BaseModel] | None:
    """The section model a field holds (also when optional), if it holds one."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        sections = [a for a in typing.get_args(annotation) if _section(a) is not None]
        return _section(sections[0]) if len(sections) == 1 else None
    return None


def nested(path: tuple[str, ...], value: object) -> dict[str, Any]:
    document: Any = value
    for part in reversed(path):
        document = {part: document}
    return dict(document)


def test_every_key_is_reached() -> None:
    found = {".".join(k) for k in keys(Settings)}
    assert {"spark.shuffle_partitions", "ingest.resend_window_days", "storage.warehouse"} <= found
    assert len(found) > 60


@pytest.mark.parametrize("key", keys(Settings), ids=".".join)
def test_a_wrong_type_names_the_file_and_the_key(tmp_path: Path, key: tuple[str, ...]) -> None:
    document = {"extends": str(REPO / "conf" / "base.yaml"), **nested(key, WRONG)}
    conf = write_conf(tmp_path / "team.yaml", document)
    with pytest.raises(ConfigError) as caught:
        load_settings(conf)
    message = str(caught.value)
    assert f"{conf}: {'.'.join(key)}" in message
