"""The package's layers: a component imports its own modules, the contracts, the config and the Kubernetes helpers.

What components hand each other lives in ``mlops_platform/contracts.py``; no component reaches into another's
modules, and the shared modules reach into none, but for the root config reading each component's settings model.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "mlops_platform"
SHARED = {"contracts", "config", "settings_base", "k8s", "pod_scripts", "rotation"}
COMPONENTS = {"database", "kubeflow", "monitoring", "serving", "storage", "tracking", "training"}
# The tracking stack declares the database and the artifact store it runs on (database/backend.py, storage/store.py).
OWNS = {"tracking": {"database", "storage"}}


def imported(path: Path, depth: int = 1) -> set[str]:
    """The package's top-level modules and subpackages that ``path`` imports, at module level or inside a function.

    ``depth`` 2 names a subpackage's module too (``tracking.settings``).
    """
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {".".join(name.split(".")[1 : 1 + depth]) for name in names if name.startswith("mlops_platform.")}
    return found


def modules(*names: str) -> list[Path]:
    return sorted(
        path
        for name in names
        for path in ([PACKAGE / f"{name}.py"] if (PACKAGE / f"{name}.py").exists() else (PACKAGE / name).rglob("*.py"))
    )


def test_the_layers_are_found_as_the_package_has_them():
    assert {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()} == COMPONENTS | {"k8s", "pod_scripts"}
    assert imported(PACKAGE / "tracking" / "stack.py") >= {"contracts", "database", "storage", "config", "k8s", "rotation", "tracking"}


def test_no_component_imports_another_components_modules():
    crossing = {
        f"{path.relative_to(PACKAGE)} -> {target}"
        for component in COMPONENTS
        for path in modules(component)
        for target in imported(path) - {component, *SHARED, *OWNS.get(component, set())}
    }
    assert crossing == set()


def test_the_shared_modules_import_no_component():
    others = [path for path in modules(*SHARED) if path.name != "config.py"]
    assert {f"{path.relative_to(PACKAGE)} -> {target}" for path in others for target in imported(path) - SHARED} == set()
    # The root config parses every block with the model beside its component, and nothing else of the component.
    settings = {f"{component}.settings" for component in COMPONENTS}
    assert {t for t in imported(PACKAGE / "config.py", depth=2) if t.split(".")[0] not in SHARED} - settings == set()
    assert imported(PACKAGE / "contracts.py") == set()
