"""What pip installs: the wheel, the editable wheel and the sdist, built in-process by the build backend that
pyproject.toml declares (the PEP 517 hooks pip calls; the test extra installs it, so no network is needed)."""

from __future__ import annotations

import email
import importlib
import os
import sys
import tarfile
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from metricaos_sdk._version import __version__

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
IGNORED_SUFFIXES = (".pyc", ".db", ".db-wal", ".db-shm")  # as .gitignore, which the backend honours


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    backend = importlib.import_module(PYPROJECT["build-system"]["build-backend"])
    hooks = {"wheel": backend.build_wheel, "editable": backend.build_editable, "sdist": backend.build_sdist}
    built = {}
    cwd = os.getcwd()
    os.chdir(ROOT)  # PEP 517: hooks run in the project's root
    try:
        for kind, hook in hooks.items():
            out = tmp_path_factory.mktemp(kind)  # a wheel and an editable wheel have the same file name
            built[kind] = out / hook(str(out))
    finally:
        os.chdir(cwd)
    return SimpleNamespace(**built)


def source_files() -> set[str]:
    """Every file of the package in the source tree (what a wheel must ship), as wheel paths."""
    files = set()
    for path in (ROOT / "metricaos_sdk").rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts and not path.name.endswith(IGNORED_SUFFIXES):
            files.add(path.relative_to(ROOT).as_posix())
    return files


def test_the_wheel_ships_the_package_with_its_data_license_and_command(built):
    with zipfile.ZipFile(built.wheel) as wheel:
        names = set(wheel.namelist())
        info = f"metricaos_sdk-{__version__}.dist-info"
        assert {n for n in names if not n.startswith(info)} == source_files()
        assert {"metricaos_sdk/py.typed", "metricaos_sdk/pricing/_generated_rates.json"} <= names
        assert wheel.read(f"{info}/licenses/LICENSE") == (ROOT / "LICENSE").read_bytes()
        metadata = email.message_from_bytes(wheel.read(f"{info}/METADATA"))
        entry_points = wheel.read(f"{info}/entry_points.txt").decode()
    assert metadata["Version"] == __version__
    assert metadata["License-Expression"] == "Apache-2.0" and metadata.get_all("License-File") == ["LICENSE"]
    assert sorted(metadata.get_all("Provides-Extra")) == sorted(PYPROJECT["project"]["optional-dependencies"])
    assert "metricaos = metricaos_sdk.cli:cli" in entry_points


def test_the_editable_wheel_is_a_path_entry_that_type_checkers_follow(built):
    # mypy, pyright and IDEs read .pth path entries; an import-hook finder (setuptools' PEP 660 default) is
    # invisible to them, and `mypy --strict` on a user's script then says it cannot find metricaos_sdk.
    with zipfile.ZipFile(built.editable) as wheel:
        pth = [n for n in wheel.namelist() if n.endswith(".pth")]
        code = [n for n in wheel.namelist() if n.endswith(".py")]
        assert len(pth) == 1 and code == []
        assert wheel.read(pth[0]).decode().split() == [str(ROOT)]


def test_the_sdist_has_the_license_and_the_package_data(built):
    with tarfile.open(built.sdist) as sdist:
        names = {n.split("/", 1)[1] for n in sdist.getnames() if "/" in n}
    assert {"LICENSE", "README.md", "pyproject.toml", "metricaos_sdk/py.typed",
            "metricaos_sdk/pricing/_generated_rates.json"} <= names


def test_the_license_is_apache_2_with_our_copyright():
    text = (ROOT / "LICENSE").read_text()
    assert text.split()[:4] == ["Apache", "License", "Version", "2.0,"]
    assert "   Copyright 2026 The MetricaOS SDK authors\n" in text and PYPROJECT["project"]["license"] == "Apache-2.0"
