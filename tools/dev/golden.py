"""`make golden`: rewrite the committed renders of dev and prod that tests/test_golden.py compares against.

tests/golden/<stack>/ holds one YAML file per Kubernetes object, exactly as `make plan`
writes it (Secret values masked), named ``<kind>-<namespace>-<name>.yaml`` rather than
by declaration order: the SDK registers resources from a thread pool, so that order
changes from run to run. ``resources.txt`` lists every resource, Kubernetes or not, as
sorted ``type name parent protect retain`` lines.
"""

from __future__ import annotations

import argparse
import difflib
import re
import shutil
import sys
from pathlib import Path

from tools.dev.plan import manifest_yaml
from tools.testing.harness import ROOT, Plan, run_program

GOLDEN = ROOT / "tests" / "golden"
STACKS = ("dev", "prod")
REGENERATE = "make golden"
DIFF_LINES = 40


def file_name(resource) -> str:
    """``<kind>-<namespace>-<name>.yaml``; a server-side-apply patch's kind ends in ``patch``; ``cluster`` for cluster-scoped objects."""
    kind = resource.kind.lower() + ("patch" if resource.type.endswith("Patch") else "")
    return f"{kind}-{resource.k8s_namespace or 'cluster'}-{resource.k8s_name}.yaml"


def resource_lines(plan: Plan) -> str:
    names = {r.urn: r.name for r in plan.resources}
    lines = [
        f"{r.type} {r.name} {names.get(r.parent or '', '-')} {'protect' if r.protect else '-'} {'retain' if r.retain_on_delete else '-'}"
        for r in plan.resources
    ]
    return "\n".join(sorted(lines)) + "\n"


def render(plan: Plan) -> dict[str, str]:
    """File name -> content of a stack's golden directory."""
    files: dict[str, str] = {}
    for resource, manifest in plan.manifests():
        name = file_name(resource)
        if name in files:
            raise ValueError(f"two objects of stack {plan.stack} render to {name}")
        files[name] = manifest_yaml(manifest)
    files["resources.txt"] = resource_lines(plan)
    return files


_DIGEST = re.compile(r"-[0-9a-f]{10}(?=\.yaml$)")


def _diff(committed: str, rendered: str, committed_name: str, rendered_name: str) -> str:
    lines = list(
        difflib.unified_diff(
            committed.splitlines(), rendered.splitlines(), f"{committed_name} (committed)", f"{rendered_name} (rendered)", n=2, lineterm=""
        )
    )
    if len(lines) > DIFF_LINES:
        lines = lines[:DIFF_LINES] + [f"... {len(lines) - DIFF_LINES} more diff lines"]
    return "\n".join(lines)


def differences(stack: str, rendered: dict[str, str], golden: Path = GOLDEN) -> list[str]:
    """What differs between a render and tests/golden/<stack>: one entry per missing, extra or changed file, with a short diff.

    A Job named after a digest of its script gets a new name when the script changes; a
    missing and an extra file that differ only in that digest are diffed as one renamed file.
    """
    directory = golden / stack
    committed = {p.name: p.read_text() for p in sorted(directory.iterdir()) if p.is_file()} if directory.is_dir() else {}
    shown = directory.relative_to(ROOT) if directory.is_relative_to(ROOT) else directory
    missing = sorted(rendered.keys() - committed.keys())
    extra = sorted(committed.keys() - rendered.keys())
    renamed: dict[str, str] = {}
    for old in extra:
        candidates = [new for new in missing if _DIGEST.sub("", new) == _DIGEST.sub("", old) != old]
        if len(candidates) == 1 and candidates[0] not in renamed.values():
            renamed[old] = candidates[0]
    found = []
    for name in sorted(rendered.keys() | committed.keys()):
        if name in renamed:
            found.append(
                f"renamed: {shown}/{name} -> {renamed[name]}\n"
                + _diff(committed[name], rendered[renamed[name]], f"{shown}/{name}", f"{shown}/{renamed[name]}")
            )
        elif name in renamed.values():
            continue
        elif name not in committed:
            found.append(f"missing: {shown}/{name} (declared, not committed)")
        elif name not in rendered:
            found.append(f"extra: {shown}/{name} (committed, no longer declared)")
        elif rendered[name] != committed[name]:
            found.append(f"changed: {shown}/{name}\n" + _diff(committed[name], rendered[name], f"{shown}/{name}", f"{shown}/{name}"))
    return found


def write(stack: str, rendered: dict[str, str], golden: Path = GOLDEN) -> None:
    directory = golden / stack
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    for name, text in rendered.items():
        (directory / name).write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stacks", nargs="*", default=list(STACKS))
    args = parser.parse_args(argv)
    for stack in args.stacks:
        rendered = render(run_program(stack))
        changed = differences(stack, rendered)
        write(stack, rendered)
        print(f"{GOLDEN.relative_to(ROOT)}/{stack}: {len(rendered)} files, {len(changed)} changed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
