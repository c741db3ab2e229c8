"""Fixtures of tests/deploy/test_cluster.py: the package as a ``--py-files`` archive, and a
Python for the driver and the executors that has every dependency but not the checkout."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from a copy of this checkout (the build never writes into it)."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", *(p.name for p in REPO.glob("LICEN[CS]E*"))):
        shutil.copy2(REPO / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO / "lib" / "userprofile", source / "lib" / "userprofile", ignore=ignore)
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(root / "dist")]
    done = subprocess.run([*build, str(source)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"wheel build failed:\n{done.stdout}\n{done.stderr}"
    (wheel,) = (root / "dist").glob("userprofile-*.whl")
    return wheel.rename(wheel.with_suffix(".zip"))


@pytest.fixture(scope="module")
def python_without_checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Python with this venv's dependencies but without the editable userprofile.

    A .pth line adds the venv's site-packages to sys.path; .pth files inside it (the
    editable install's among them) are not processed for directories added that way.
    """
    env_dir = tmp_path_factory.mktemp("python") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True)
    python = env_dir / "bin" / "python"
    query = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    own = subprocess.run([python, "-c", query], capture_output=True, text=True, check=True)
    parent = subprocess.run(
        [sys.executable, "-c", query], capture_output=True, text=True, check=True
    )
    (Path(own.stdout.strip()) / "parent-venv.pth").write_text(parent.stdout, encoding="utf-8")
    checks = {"import pyspark, pandas, scipy, yaml, pydantic": 0, "import userprofile": 1}
    for code, expected in checks.items():
        done = subprocess.run([python, "-c", code], capture_output=True, text=True, env={})
        # userprofile importable here means a non-editable install: use `pip install -e .`
        assert done.returncode == expected, f"{python} -c '{code}':\n{done.stderr}"
    return python
