"""The sdist and the wheel, built for real (``python -m build --no-isolation``
with the pinned setuptools of the test extra, so no network is needed) from a
copy of this checkout, and checked for their contents: the sdist is the whole
source (package, tests, samples, docs, benchmarks, fuzz, changelog, licence),
the wheel is the package with its data files and nothing else."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path
from typing import Dict, List

import pytest

import payprotocol

pytestmark = pytest.mark.timeout(300)

REPO = Path(__file__).resolve().parents[2]
VERSION = payprotocol.__version__
_NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv*", "__pycache__", "*.egg-info", "build", "dist", "_build", "_generated",
    ".mypy_cache", ".ruff_cache", ".pytest_cache", ".hypothesis", "*.sqlite*", "*.pyc",
)  # fmt: skip


def _tracked() -> List[str]:
    """The files git tracks in this checkout (what a fresh clone has)."""
    done = subprocess.run(
        ["git", "ls-files"], cwd=str(REPO), capture_output=True, text=True, timeout=30, check=False
    )
    if done.returncode != 0:
        pytest.skip(f"not a git checkout: {done.stderr.strip()}")
    return [line for line in done.stdout.splitlines() if (REPO / line).is_file()]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, Path]:
    source = tmp_path_factory.mktemp("source") / "payprotocol"
    shutil.copytree(REPO, source, ignore=_NOT_SOURCE)
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(source)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    sdists = list(out.glob("*.tar.gz"))
    wheels = list(out.glob("*.whl"))
    assert len(sdists) == 1 and len(wheels) == 1, list(out.iterdir())
    return {"sdist": sdists[0], "wheel": wheels[0]}


def _sdist_names(path: Path) -> List[str]:
    prefix = f"payprotocol-{VERSION}/"
    with tarfile.open(path) as archive:
        names = [member.name for member in archive.getmembers() if member.isfile()]
    assert all(name.startswith(prefix) for name in names)
    return [name[len(prefix) :] for name in names]


def test_the_sdist_carries_the_whole_source(built: Dict[str, Path]) -> None:
    names = set(_sdist_names(built["sdist"]))
    for required in (
        "CHANGELOG.md", "LICENSE", "README.md", "setup.cfg", "pyproject.toml", "MANIFEST.in",
        "tests/conftest.py", "docs/conf.py", "docs/index.md", "docs/_ext/p3docs.py",
        "payprotocol/py.typed",
    ):  # fmt: skip
        assert required in names, required
    for folder in ("tests/unit/", "tests/cli/", "samples/", "docs/guides/", "benchmarks/", "fuzz/"):
        assert any(name.startswith(folder) for name in names), folder
    wanted = ("payprotocol/", "tests/", "samples/", "docs/", "benchmarks/", "fuzz/")
    missing = [f for f in _tracked() if f.startswith(wanted) and f not in names]
    assert missing == []
    for name in names:
        assert "__pycache__" not in name and not name.endswith(".pyc"), name
        assert not name.startswith(("docs/_build/", "docs/_generated/", ".venv", ".git/")), name


def test_the_wheel_is_the_package_with_its_data(built: Dict[str, Path]) -> None:
    with zipfile.ZipFile(built["wheel"]) as wheel:
        names = wheel.namelist()
        dist_info = f"payprotocol-{VERSION}.dist-info/"
        metadata = Parser().parsestr(wheel.read(dist_info + "METADATA").decode("utf-8"))
        entry_points = wheel.read(dist_info + "entry_points.txt").decode("utf-8")
    assert {name.split("/", 1)[0] for name in names} == {"payprotocol", dist_info.rstrip("/")}
    package = [f for f in _tracked() if f.startswith("payprotocol/")]
    assert [f for f in package if f not in names] == []  # data files (py.typed, tables) too
    assert "payprotocol/py.typed" in names and "payprotocol/simulator/server.py" in names
    assert not any(name.startswith(("tests/", "samples/", "docs/")) for name in names)
    assert any(name.startswith(dist_info) and name.endswith("LICENSE") for name in names)
    assert metadata["Name"] == "payprotocol" and metadata["Version"] == VERSION
    assert metadata["Author"]
    classifiers = metadata.get_all("Classifier") or []
    assert "License :: OSI Approved :: MIT License" in classifiers
    assert any(c.startswith("Development Status :: ") for c in classifiers)
    assert "MIT License" in (REPO / "LICENSE").read_text(encoding="utf-8").splitlines()[0]
    extras = metadata.get_all("Provides-Extra") or []
    assert {"simulator", "test", "dev", "docs"} <= set(extras)
    assert "payprotocol = payprotocol.cli:main" in entry_points
