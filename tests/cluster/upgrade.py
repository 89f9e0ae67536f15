"""The upgrade source (docs/upgrade.toml), checked out from this repository's history and run as its own code.

The old program runs in a subprocess whose import path starts with its git worktree: ``mlops_platform`` (and
``tools``) resolve to the old commit's files there, ahead of this checkout's editable install, and so does the
dashboard tab's dynamic provider, which the engine's provider host unpickles by reference in a process that
inherits that path. The worktree borrows this checkout's virtualenv and toolchain (the same CLI, providers
and Python packages): what changes between the two runs is the program alone.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import textwrap
import tomllib
from pathlib import Path
from typing import Any

from tools.testing.harness import DeclaredResource, Plan

ROOT = Path(__file__).resolve().parents[2]
SOURCE_FILE = ROOT / "docs" / "upgrade.toml"
TIMEOUT = 600


class UpgradeSourceMissing(RuntimeError):
    """The commit is not in this clone's history (a shallow clone)."""


def oldest() -> str:
    return tomllib.loads(SOURCE_FILE.read_text())["upgrade"]["oldest"]


def _git(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=120, check=check)


def checkout(commit: str, where: Path) -> Path:
    """``git worktree add --detach`` of ``commit``, with this checkout's virtualenv and toolchain path."""
    if _git("cat-file", "-e", f"{commit}^{{commit}}", check=False).returncode != 0:
        raise UpgradeSourceMissing(
            f"commit {commit} (docs/upgrade.toml) is not in this clone's history: clone with full history "
            "(`git fetch --unshallow`, or actions/checkout with fetch-depth: 0)"
        )
    _git("worktree", "add", "--detach", str(where), commit)
    (where / ".venv").symlink_to(ROOT / ".venv")
    (where / "build").mkdir(exist_ok=True)
    shutil.copy(ROOT / "build" / "toolchain.path", where / "build" / "toolchain.path")
    return where


def remove(where: Path) -> None:
    _git("worktree", "remove", "--force", str(where), check=False)
    _git("worktree", "prune", check=False)
    shutil.rmtree(where, ignore_errors=True)


@dataclasses.dataclass
class OldProgram:
    """The old commit's own engine, harness and program, run from its worktree.

    The bodies below import the old commit's modules by the paths it has (``tools.engine``, ``tools.harness``),
    not this checkout's ``tools.local.engine`` and ``tools.testing.harness``.
    """

    worktree: Path

    def run(self, body: str, **values: Any) -> Any:
        """Run ``body`` (it sets ``result``) as the old commit's code; returns ``result`` as JSON data."""
        script = "\n".join(
            [
                "import json, sys",
                "from pathlib import Path",
                "import mlops_platform, tools",
                f"WORKTREE = Path({str(self.worktree.resolve())!r})",
                "assert Path(mlops_platform.__file__).resolve().is_relative_to(WORKTREE), mlops_platform.__file__",
                "assert Path(tools.__file__).resolve().is_relative_to(WORKTREE), tools.__file__",
                *(f"{k} = {v!r}" for k, v in values.items()),
                textwrap.dedent(body),
                "print('\\nRESULT ' + json.dumps(result))",
            ]
        )
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(self.worktree), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
        done = subprocess.run(
            [str(ROOT / ".venv" / "bin" / "python"), "-c", script],
            cwd=self.worktree,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
        lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
        if done.returncode != 0 or not lines:
            tails = f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
            raise AssertionError(f"the upgrade source's code failed (exit {done.returncode}):\n{tails}")
        return json.loads(lines[-1].removeprefix("RESULT "))

    def up(self, cluster_dir: Path, workspace: Path) -> dict[str, Any]:
        """The old commit's `pulumi up` of dev (its LocalEngine: its stack file, its program, its policy pack)."""
        return self.run(
            """
            from tools.engine import LocalEngine
            run = LocalEngine("dev", Path(CLUSTER), workspace=Path(WORKSPACE)).up()
            result = {"changes": run.summary.resource_changes, "outputs": run.masked_outputs()}
            """,
            CLUSTER=str(cluster_dir),
            WORKSPACE=str(workspace),
        )

    def plan(self, stack: str, overrides: dict[str, Any] | None = None) -> Plan:
        """The old program under its own mock harness: every resource it declares, unmasked."""
        found = self.run(
            """
            import dataclasses
            from tools.harness import run_program, stack_config, with_overrides
            config, secret_keys = stack_config(STACK)
            plan = run_program(STACK, config=with_overrides(config, OVERRIDES), secret_keys=secret_keys)
            result = {
                "resources": [dataclasses.asdict(r) for r in plan.resources],
                "outputs": plan.outputs,
                "secret_outputs": sorted(plan.secret_outputs),
            }
            """,
            STACK=stack,
            OVERRIDES=overrides or {},
        )
        known = {f.name for f in dataclasses.fields(DeclaredResource)}
        resources = [DeclaredResource(**{k: v for k, v in r.items() if k in known}) for r in found["resources"]]
        return Plan(stack=stack, resources=resources, outputs=found["outputs"], secret_outputs=set(found["secret_outputs"]))


def guarded(resource: DeclaredResource) -> str | None:
    """Why replacing or deleting ``resource`` would lose data or cut a client, or None.

    Data: the namespace (its deletion deletes every claim), the PostgreSQL StatefulSet and claims, MinIO and its
    claim, the bucket and RDS. Credentials: every generated password, every Secret holding one, and every
    ServiceAccount (tokens already issued for it die with it).
    """
    kind = resource.kind
    if kind in ("Namespace", "StatefulSet", "PersistentVolumeClaim"):
        return "data"
    if kind == "Deployment" and (resource.inputs["metadata"].get("labels") or {}).get("app.kubernetes.io/name") == "minio":
        return "data"
    if resource.type in ("aws:s3/bucket:Bucket", "aws:rds/instance:Instance"):
        return "data"
    if resource.type == "random:index/randomPassword:RandomPassword":
        return "credential"
    if kind == "Secret" and resource.secret_paths:
        return "credential"
    if kind == "ServiceAccount":
        return "identity"
    return None
