"""The URNs a stack-file change touches, for a targeted `pulumi preview`/`up --target` of a large stack.

Runs the program offline (tools/testing/harness.py, Pulumi's mocks) twice, with the base and the head
stack file, and prints the engine's URN of every resource that the change adds, removes, or
declares differently (inputs, parent, dependencies, protect, retainOnDelete, replacement trigger).
The program is the same in both runs, so this is only sound when a pull request changes nothing
but ``Pulumi.<stack>.yaml``: `.github/workflows/preview.yml` checks that and otherwise previews
everything, and the main branch always runs the full preview with the policy pack (deploy.yml).

    python -m tools.dev.targets --stack dev --base base/Pulumi.dev.yaml            # one URN a line
    python -m tools.dev.targets --stack dev --base base/Pulumi.dev.yaml --args     # --target URN ... for the CLI

Exit 2 with one line on invalid config (either side), 0 otherwise (no output: nothing changes).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from mlops_platform.settings_base import ConfigError
from tools.testing.harness import PROJECT, ROOT, DeclaredResource, Plan, run_program


def engine_urns(plan: Plan) -> dict[str, DeclaredResource]:
    """Each resource by the URN the real engine gives it.

    The engine qualifies a type with every ancestor's type except the root stack's; Pulumi's mock
    monitor keeps only the parent's last segment and the stack's, so the URNs are rebuilt here.
    """
    by_mock = {r.urn: r for r in plan.resources}

    def qualified(resource: DeclaredResource) -> str:
        # The harness does not record the root stack, so a top-level resource's parent is not found.
        parent = by_mock.get(resource.parent or "")
        if parent is None:
            return resource.type
        return f"{qualified(parent)}${resource.type}"

    return {f"urn:pulumi:{plan.stack}::{PROJECT}::{qualified(r)}::{r.name}": r for r in plan.resources}


def _declared(resource: DeclaredResource, urn_of: dict[str, str]) -> dict[str, Any]:
    """What the engine compares: inputs and options, with URNs of other resources in engine form."""
    return {
        "inputs": resource.inputs,
        "parent": urn_of.get(resource.parent or ""),
        "dependencies": sorted(urn_of.get(d, d) for d in resource.dependencies),
        "protect": resource.protect,
        "retainOnDelete": resource.retain_on_delete,
        "replacementTrigger": resource.replacement_trigger,
    }


def touched(base: Plan, head: Plan) -> list[str]:
    """URNs added, removed or declared differently between two plans of one stack, in the head's order."""
    sides = []
    for plan in (base, head):
        urns = engine_urns(plan)
        urn_of = {r.urn: urn for urn, r in urns.items()}
        sides.append({urn: json.dumps(_declared(r, urn_of), sort_keys=True) for urn, r in urns.items()})
    before, after = sides
    changed = [urn for urn, declared in after.items() if before.get(urn) != declared]
    removed = [urn for urn in before if urn not in after]
    return changed + removed


def plan_with(stack: str, stack_file: Path) -> Plan:
    """The program under mocks with ``stack_file`` as Pulumi.<stack>.yaml (the project file as checked in)."""
    with tempfile.TemporaryDirectory(prefix="targets-") as work:
        directory = Path(work)
        shutil.copy(ROOT / "Pulumi.yaml", directory / "Pulumi.yaml")
        shutil.copy(stack_file, directory / f"Pulumi.{stack}.yaml")
        return run_program(stack, stack_dir=directory)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", default="dev")
    parser.add_argument("--base", type=Path, required=True, help="the stack file before the change (e.g. from the base branch)")
    parser.add_argument("--head", type=Path, help="the stack file after it (default: Pulumi.<stack>.yaml here)")
    parser.add_argument("--args", action="store_true", help="print --target URN pairs for the pulumi CLI")
    args = parser.parse_args(argv)
    head = args.head or ROOT / f"Pulumi.{args.stack}.yaml"
    try:
        urns = touched(plan_with(args.stack, args.base), plan_with(args.stack, head))
    except (ConfigError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for urn in urns:
        print(f"--target {urn}" if args.args else urn)
    return 0


if __name__ == "__main__":
    sys.exit(main())
