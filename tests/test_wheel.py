"""The built wheel holds the whole program: every module and the package data, imported from the wheel alone.

`pip install -e .` imports from the source tree, so a package missing from pyproject.toml's list goes unseen
there; this test builds the wheel from a copy of the tree and imports from the unpacked wheel instead.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tools.testing.harness import ROOT

# What pyproject.toml builds the wheel from (package-dir maps mlops_policies into policies/).
SOURCES = {"mlops_platform": ROOT / "mlops_platform", "mlops_policies": ROOT / "policies" / "mlops_policies"}

# Runs with -I (no current directory, no PYTHONPATH) and without the editable install's finder.
IMPORT_ALL = """
import importlib, json, sys
from pathlib import Path
site, modules = Path(sys.argv[1]), json.loads(sys.argv[2])
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in getattr(f, "__name__", type(f).__name__).lower()]
sys.path.insert(0, str(site))
outside = []
for name in modules:
    module = importlib.import_module(name)
    if not Path(module.__file__).resolve().is_relative_to(site.resolve()):
        outside.append(f"{name}: {module.__file__}")
print(json.dumps(outside))
"""


def source_modules() -> list[str]:
    """Every module of the source tree, dotted (packages by their own name)."""
    found = []
    for top, directory in SOURCES.items():
        for path in sorted(directory.rglob("*.py")):
            parts = path.relative_to(directory).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found.append(".".join((top, *parts)))
    return found


def build_wheel(tree: Path, out: Path) -> Path:
    """PEP 517 ``build_wheel`` of ``tree`` with the installed setuptools (no build isolation, nothing downloaded)."""
    out.mkdir()
    subprocess.run(
        [sys.executable, "-c", "import sys, setuptools.build_meta as b; print(b.build_wheel(sys.argv[1]))", str(out)],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    (wheel,) = out.glob("*.whl")
    return wheel


def copy_tree(where: Path) -> Path:
    """The files the wheel is built from, copied, so the build writes nothing into the checkout."""
    where.mkdir()
    shutil.copy(ROOT / "pyproject.toml", where / "pyproject.toml")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "mlops_platform", where / "mlops_platform", ignore=ignore)
    shutil.copytree(ROOT / "policies" / "mlops_policies", where / "policies" / "mlops_policies", ignore=ignore)
    return where


@pytest.fixture(scope="module")
def unpacked(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("wheel")
    tree = copy_tree(work / "tree")
    wheel = build_wheel(tree, work / "dist")
    site = work / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    return site


def test_every_module_imports_from_the_wheel_alone(unpacked: Path) -> None:
    modules = source_modules()
    assert "mlops_platform.monitoring" in modules and "mlops_platform.training.jobs" in modules
    done = subprocess.run(
        [sys.executable, "-I", "-c", IMPORT_ALL, str(unpacked), json.dumps(modules)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.splitlines()[-1]) == [], "imported from outside the wheel"


def test_the_wheel_carries_the_package_data(unpacked: Path) -> None:
    landing = unpacked / "mlops_platform" / "tracking" / "landing.html"
    assert landing.read_bytes() == (ROOT / "mlops_platform" / "tracking" / "landing.html").read_bytes()
