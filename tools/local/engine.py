"""The real Pulumi engine (CLI and providers from `make toolchain`) driving this program onto a cluster.

The Go module proxy does not serve the Python language host, so the program runs inline
through the Automation API: the CLI connects to a language server in this process, which
runs ``__main__.py`` unchanged. Everything else is what a user's `pulumi up` runs: the
CLI's engine, the kubernetes provider, the dynamic-provider host for the dashboard tab, and
the policy pack loaded by the CLI (as the executable policies/run-pack).

State lives in a file backend under ``build/local/``; the stack's own Pulumi.<stack>.yaml is
copied there with any overrides, so the checked-in stack files are never rewritten.
"""

from __future__ import annotations

import os
import runpy
import shutil
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tools.local.cluster import DEFAULT_DIR, binary, toolchain_dirs

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "mlops-platform"
# Without the Python language host the CLI runs the pack as an executable (policies/run-pack).
POLICY_PACK = ROOT / "policies" / "run-pack"
# The file backend encrypts the stack's secrets with this; the state is local and throwaway.
LOCAL_PASSPHRASE = "local-engine-lane"
# What users of a file or s3:// backend should set too (docs/scale.md). Pulumi's file-backend SnapshotManager
# re-serializes the whole state after every step, in preview too (where it is then discarded): O(n) work for each
# of n steps. This saves the state once, at the end of the operation.
ENGINE_SETTINGS = {"PULUMI_SKIP_CHECKPOINTS": "true"}


def program() -> None:
    """The Pulumi program, exactly as the CLI would run it."""
    runpy.run_path(str(ROOT / "__main__.py"), run_name="__main__")


@dataclass
class EngineRun:
    """What one preview/up/destroy did: its events, output and summary."""

    stdout: str
    events: list[Any] = field(default_factory=list)
    summary: Any = None
    outputs: dict[str, Any] = field(default_factory=dict)
    secret_outputs: set[str] = field(default_factory=set)

    def masked_outputs(self) -> dict[str, Any]:
        return {k: ("[secret]" if k in self.secret_outputs else v) for k, v in self.outputs.items()}

    def steps(self) -> list[dict[str, Any]]:
        """One entry per resource step: op, urn, type and the new inputs (as the engine sent them)."""
        found = []
        for event in self.events:
            pre = getattr(event, "resource_pre_event", None)
            if pre is None:
                continue
            meta = pre.metadata
            new, old = getattr(meta, "new", None), getattr(meta, "old", None)
            found.append(
                {
                    "op": str(getattr(meta.op, "value", meta.op)),
                    "urn": meta.urn,
                    # The URN in the state before: another one when an alias moved the resource.
                    "old_urn": getattr(old, "urn", None) or meta.urn,
                    "type": meta.type,
                    "inputs": getattr(new, "inputs", None) or {},
                    "old_inputs": getattr(old, "inputs", None) or {},
                    "diffs": list(meta.diffs or []),
                }
            )
        return found


class LocalEngine:
    """One project directory, file backend and cluster for preview/up/destroy of a stack."""

    def __init__(
        self,
        stack: str = "dev",
        cluster_dir: Path = DEFAULT_DIR,
        *,
        workspace: Path | None = None,
        overrides: Mapping[str, Any] | None = None,
        pulumi_program: Callable[[], None] = program,
        pulumi_root: Path | None = None,
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        """``workspace`` (default: ``cluster_dir``/engine) holds the project copy and the file backend.

        ``pulumi_root`` replaces the toolchain's CLI (a directory holding bin/pulumi); ``extra_env`` adds to the CLI's environment.
        """
        self.stack_name = stack
        self.cluster_dir = cluster_dir
        self.workspace = workspace or cluster_dir / "engine"
        self.project_dir = self.workspace / "project"
        self.state_dir = self.workspace / "state"
        self.program = pulumi_program
        self.pulumi_root = pulumi_root
        self.extra_env = dict(extra_env or {})
        self._stack: Any = None
        self.write_stack_file(overrides or {})

    def write_stack_file(self, overrides: Mapping[str, Any]) -> None:
        """Pulumi.yaml and Pulumi.<stack>.yaml for the workspace, with ``overrides`` replacing whole config keys."""
        self.current_overrides = dict(overrides)
        self.project_dir.mkdir(parents=True, exist_ok=True)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
        project["runtime"]["options"]["virtualenv"] = str(ROOT / ".venv")
        # The program stays in the checkout: a CLI run from this copy (`make local-up`'s env file) runs it from there.
        project["main"] = str(ROOT)
        (self.project_dir / "Pulumi.yaml").write_text(yaml.safe_dump(project, sort_keys=False))
        target = self.project_dir / f"Pulumi.{self.stack_name}.yaml"
        existing = yaml.safe_load(target.read_text()) if target.exists() else {}
        document = yaml.safe_load((ROOT / f"Pulumi.{self.stack_name}.yaml").read_text())
        config = document.setdefault("config", {})
        for key, value in overrides.items():
            qualified = key if ":" in key else f"{PROJECT}:{key}"
            if value is None:
                config.pop(qualified, None)
            else:
                config[qualified] = value
        if existing and "encryptionsalt" in existing:
            document["encryptionsalt"] = existing["encryptionsalt"]
        target.write_text(yaml.safe_dump(document, sort_keys=False))

    def env(self) -> dict[str, str]:
        venv_bin = ROOT / ".venv" / "bin"
        return {
            "PATH": os.pathsep.join([*map(str, toolchain_dirs()), str(venv_bin), "/usr/bin", "/bin"]),
            "KUBECONFIG": str(self.cluster_dir / "kubeconfig"),
            "PULUMI_HOME": str(self.workspace / "pulumi-home"),
            "PULUMI_BACKEND_URL": f"file://{self.state_dir}",
            "PULUMI_CONFIG_PASSPHRASE": LOCAL_PASSPHRASE,
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
            "PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK": "true",
            "PULUMI_PYTHON_CMD": str(venv_bin / "python"),
            "PULUMI_POLICY_PYTHON": str(venv_bin / "python"),
            **ENGINE_SETTINGS,
            **self.extra_env,
        }

    def stack(self) -> Any:
        """The Automation API stack, selected once; each operation re-reads the stack file it points at."""
        if self._stack is not None:
            return self._stack
        from pulumi import automation as auto

        pulumi_root = self.pulumi_root or binary("pulumi").parent.parent
        options = auto.LocalWorkspaceOptions(
            work_dir=str(self.project_dir),
            pulumi_home=str(self.workspace / "pulumi-home"),
            env_vars=self.env(),
            pulumi_command=auto.PulumiCommand(root=str(pulumi_root), skip_version_check=True),
        )
        self._stack = auto.create_or_select_stack(stack_name=self.stack_name, project_name=PROJECT, program=self.program, opts=options)
        return self._stack

    def _run(self, action: Callable[..., Any], echo: bool = False, **kwargs: Any) -> EngineRun:
        lines: list[str] = []
        events: list[Any] = []

        def output(line: str) -> None:
            lines.append(line)
            if echo:
                print(line, flush=True)

        # A language host inherits the CLI's environment; the inline program runs here, so it gets the cluster the same way.
        saved = os.environ.get("KUBECONFIG")
        os.environ["KUBECONFIG"] = self.env()["KUBECONFIG"]
        try:
            result = action(on_output=output, on_event=events.append, color="never", **kwargs)
        finally:
            if saved is None:
                os.environ.pop("KUBECONFIG", None)
            else:
                os.environ["KUBECONFIG"] = saved
        raw = getattr(result, "outputs", None) or {}
        return EngineRun(
            "\n".join(lines),
            events,
            getattr(result, "summary", None),
            {k: v.value for k, v in raw.items()},
            {k for k, v in raw.items() if v.secret},
        )

    def preview(self, *, policy: bool = True, echo: bool = False, **kwargs: Any) -> EngineRun:
        return self._run(self.stack().preview, echo, policy_packs=[str(POLICY_PACK)] if policy else None, **kwargs)

    def up(self, *, policy: bool = True, echo: bool = False, **kwargs: Any) -> EngineRun:
        return self._run(self.stack().up, echo, policy_packs=[str(POLICY_PACK)] if policy else None, **kwargs)

    def destroy(self, *, echo: bool = False, **kwargs: Any) -> EngineRun:
        return self._run(self.stack().destroy, echo, **kwargs)

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """The pulumi CLI itself in this workspace, for commands the Automation API lacks."""
        env = {**os.environ, **self.env()}
        return subprocess.run(
            [str(binary("pulumi")), *args, "--stack", self.stack_name, "--non-interactive"],
            cwd=self.project_dir,
            env=env,
            capture_output=True,
            text=True,
            check=check,
            timeout=300,
        )

    def remove(self) -> None:
        """Forget the stack and its state (the cluster is untouched)."""
        shutil.rmtree(self.workspace, ignore_errors=True)
        self._stack = None

    def reset(self) -> None:
        """Start again from empty state, with the same stack file (a fresh cluster holds none of the old objects)."""
        self.remove()
        self.write_stack_file(self.current_overrides)
