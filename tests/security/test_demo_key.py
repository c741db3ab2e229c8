"""The published demo key pseudonymises only the sample that `userprofile generate` wrote."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession

from tests.helpers import REPO, conf_document, write_conf
from userprofile.cli import main
from userprofile.config import Settings, load_settings
from userprofile.errors import ConfigError
from userprofile.ingest.privacy import DEMO_KEY, SAMPLE_MARKER, pseudonym_key, spark_reads

KEY_VAR = "UP_DEMO_TEST_KEY"  # a configured name, not the default one


@pytest.fixture(scope="module")
def generated(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small landing folder written by `userprofile generate` (copied by each test)."""
    root = tmp_path_factory.mktemp("demo-sample")
    document = conf_document(root, generator={"users": 20, "days": 3, "seed": 3})
    assert main(["generate", "--conf", str(write_conf(root / "gen.yaml", document))]) == 0
    return root / "landing"


@pytest.fixture
def landing(generated: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(generated, tmp_path / "landing"))


@pytest.fixture
def demo_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_VAR, DEMO_KEY)


def settings_for(root: Path, landing: str, **sections: dict[str, Any]) -> Settings:
    document = conf_document(root, privacy={"pseudonym_key_env": KEY_VAR}, **sections)
    document["storage"]["landing"] = landing
    return load_settings(write_conf(root / "demo.yaml", document))


def refusal(settings: Settings) -> str:
    """The message of the refusal, checked for what every refusal must say."""
    with pytest.raises(ConfigError) as error:
        pseudonym_key(settings)
    message = str(error.value)
    assert DEMO_KEY not in message
    assert "demo key" in message
    assert "published" in message
    assert f"export {KEY_VAR}=$(openssl rand -hex 32)" in message
    return message


@pytest.mark.usefixtures("demo_key")
def test_the_demo_key_works_on_the_generated_sample(landing: Path, tmp_path: Path) -> None:
    marker = json.loads((landing / SAMPLE_MARKER).read_text("utf-8"))
    assert any(name.startswith("events/landing_date=") for name in marker["files"])
    assert any(name.startswith("users/") for name in marker["files"])
    # Files Spark never reads (as a file browser or an editor leaves them) are no data.
    (landing / ".DS_Store").write_bytes(b"x")
    (landing / "events" / "_SUCCESS.tmp").write_bytes(b"x")
    assert pseudonym_key(settings_for(tmp_path, str(landing))) == DEMO_KEY.encode()
    assert pseudonym_key(settings_for(tmp_path, landing.as_uri())) == DEMO_KEY.encode()


@pytest.mark.usefixtures("demo_key")
def test_an_extra_file_is_refused(landing: Path, tmp_path: Path) -> None:
    extra = landing / "events" / "landing_date=2026-01-02" / "export.json"
    extra.write_text('{"user_id": "real"}\n', "utf-8")
    message = refusal(settings_for(tmp_path, str(landing)))
    assert "not the generator's" in message
    assert "export.json" in message


@pytest.mark.usefixtures("demo_key")
def test_a_file_of_another_size_is_refused(landing: Path, tmp_path: Path) -> None:
    (users,) = (landing / "users").glob("*.csv")
    with users.open("a", encoding="utf-8") as handle:
        handle.write("U999,real@example.com,,,,,\n")
    message = refusal(settings_for(tmp_path, str(landing)))
    assert "changed size" in message
    assert users.name in message


@pytest.mark.usefixtures("demo_key")
def test_a_landing_without_marker_is_refused(landing: Path, tmp_path: Path) -> None:
    (landing / SAMPLE_MARKER).unlink()
    assert SAMPLE_MARKER in refusal(settings_for(tmp_path, str(landing)))


@pytest.mark.usefixtures("demo_key")
def test_a_landing_on_another_file_system_is_refused(tmp_path: Path) -> None:
    message = refusal(settings_for(tmp_path, "s3a://bucket/landing"))
    assert "not on the local file system" in message


@pytest.mark.usefixtures("demo_key")
def test_a_source_outside_the_landing_folder_is_refused(landing: Path, tmp_path: Path) -> None:
    elsewhere = {"format": "json", "path": str(tmp_path / "real-events")}
    sources = {
        "ingest": {"sources": {"events": {"format": "json", "path": "events"}, "crm": elsewhere}}
    }
    message = refusal(settings_for(tmp_path, str(landing), **sources))
    assert "source crm" in message


def test_other_keys_are_not_checked(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(KEY_VAR, "a-real-secret-" + "9" * 20)
    assert pseudonym_key(settings_for(tmp_path, "s3a://bucket/landing"))


@pytest.mark.parametrize(
    ("relative", "read"),
    [
        ("events/landing_date=2026-01-01/part-0.txt", True),
        ("events/_SUCCESS", False),
        ("events/.part-0.txt.crc", False),
        ("_tmp/part-0.txt", False),
        ("events/_landing_date=1/part-0.txt", True),  # a partition folder
        ("events/_metadata", True),
        ("events/part-0.txt._COPYING_", False),
    ],
)
def test_the_files_spark_reads(relative: str, read: bool) -> None:
    assert spark_reads(relative) is read


def test_the_makefile_sets_the_demo_key_for_the_demo_only() -> None:
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    settings = re.findall(r"^(.*)USERPROFILE_PSEUDONYM_KEY\s*\?=\s*(\S+)$", makefile, re.M)
    assert settings == [("demo: export ", DEMO_KEY)]
