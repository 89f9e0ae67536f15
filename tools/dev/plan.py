"""`make plan`: what `pulumi up` would deploy, computed offline from the real program.

Runs __main__.py under Pulumi's mock engine with the stack file's config,
prints every resource, and writes build/<stack>/manifests/*.yaml (Secret values
masked) and build/<stack>/resources.json, then runs the policy pack over what
was declared. Exits 2 with one line on invalid config, 1 on a mandatory policy
violation.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import yaml

from mlops_platform.serving.stack import describe as describe_model
from mlops_platform.settings_base import ConfigError
from mlops_policies import audit_resources
from tools.testing.harness import ROOT, Plan, run_program


def manifest_yaml(manifest: dict) -> str:
    """One object as YAML, apiVersion, kind and metadata first; shared with the golden renders.

    libyaml's emitter (PyYAML's wheels carry it) is five times faster than the pure-Python one, which a plan with a
    hundred models would feel; it folds long strings differently, so it is required rather than optional: the goldens
    must not depend on the machine.
    """
    ordered = {k: manifest[k] for k in ("apiVersion", "kind", "metadata") if k in manifest}
    ordered.update((k, v) for k, v in manifest.items() if k not in ordered)
    return yaml.dump(ordered, Dumper=yaml.CSafeDumper, sort_keys=False)


def write_build(plan: Plan, out: Path) -> None:
    """Whole objects go to manifests/, server-side-apply patches of existing objects to patches/."""
    for kind in ("manifests", "patches"):
        if (out / kind).exists():
            shutil.rmtree(out / kind)
    for index, (resource, manifest) in enumerate(plan.manifests(), start=1):
        directory = out / ("patches" if resource.type.endswith("Patch") else "manifests")
        directory.mkdir(parents=True, exist_ok=True)
        namespace = resource.k8s_namespace or "cluster"
        path = directory / f"{index:03d}-{manifest['kind'].lower()}-{namespace}-{resource.k8s_name}.yaml"
        path.write_text(manifest_yaml(manifest))
    document = {"stack": plan.stack, "resources": [r.record() for r in plan.resources], "outputs": plan.masked_outputs()}
    (out / "resources.json").write_text(json.dumps(document, indent=2, sort_keys=False) + "\n")


def table(plan: Plan) -> str:
    names = {r.urn: r.name for r in plan.resources}
    rows = [("TYPE", "NAME", "PARENT", "NOTE")]
    for r in plan.resources:
        note = []
        if r.protect:
            note.append("protect")
        if r.retain_on_delete:
            note.append("retain")
        if r.kind == "InferenceService":
            note.append(describe_model(r.inputs))
        rows.append((r.type, r.name, names.get(r.parent or "", "-"), ",".join(note)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", default="dev")
    parser.add_argument("--out", type=Path, default=ROOT / "build")
    parser.add_argument("--stack-dir", type=Path, default=ROOT, help="where Pulumi.<stack>.yaml lives")
    args = parser.parse_args(argv)
    try:
        plan = run_program(args.stack, stack_dir=args.stack_dir)
    except (ConfigError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = args.out / args.stack
    write_build(plan, out)
    # What `pulumi preview` prints before the resources (images, preflight), at the same severity.
    for severity, message in plan.logs:
        print(f"{severity}: {message}")
    print(table(plan))
    print(
        f"\n{len(plan.resources)} resources for stack {plan.stack}; manifests and resources.json in "
        f"{out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}"
    )
    for key, value in plan.masked_outputs().items():
        print(f"output {key}: {value}")
    # The policy pack's own engine, over what was declared, with secretness known from the run.
    violations = audit_resources([r.record() for r in plan.resources], stack=plan.stack)
    for violation in violations:
        print(("MANDATORY " if violation.mandatory else "advisory  ") + violation.line())
    mandatory = sum(v.mandatory for v in violations)
    print(f"policies: {mandatory} mandatory, {len(violations) - mandatory} advisory violations")
    return 1 if mandatory else 0


if __name__ == "__main__":
    sys.exit(main())
