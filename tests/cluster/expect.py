"""How the cluster tests read the engine's events and the API server, and compare them with the offline plan."""

from __future__ import annotations

from typing import Any

from tools.local.engine import EngineRun
from tools.testing.harness import MASK, DeclaredResource, Plan

UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
# What the engine's events show for a value it does not know yet or will not show.
OPAQUE = {UNKNOWN, "[secret]", "[unknown]", MASK}


def type_and_name(urn: str) -> tuple[str, str]:
    """``urn:pulumi:stack::project::parent$type::name`` -> (type, name)."""
    qualified, name = urn.split("::")[2:4]
    return qualified.split("$")[-1], name


def policy_violations(run: EngineRun, *, mandatory: bool | None = None) -> list[str]:
    found = []
    for event in run.events:
        policy = getattr(event, "policy_event", None)
        if policy is None:
            continue
        if mandatory is None or (policy.enforcement_level == "mandatory") == mandatory:
            found.append(f"{policy.enforcement_level} {policy.policy_name} {policy.resource_urn}: {policy.message}")
    return found


def same_object(engine_inputs: dict[str, Any], declared: DeclaredResource, *, what: str) -> None:
    """The engine's inputs equal the offline render, where the engine knows the value (secrets and unknowns aside)."""
    problems: list[str] = []
    _compare(engine_inputs, declared.inputs, set(declared.secret_paths), "", problems)
    assert not problems, f"{what}: the engine's inputs differ from the offline render:\n  " + "\n  ".join(problems[:20])


def _compare(engine: Any, offline: Any, secrets: set[str], path: str, problems: list[str]) -> None:
    if path.lstrip(".") in secrets or (isinstance(engine, str) and engine in OPAQUE):
        return
    if isinstance(offline, dict) and isinstance(engine, dict):
        for key in sorted(set(offline) | set(engine)):
            if key == "__defaults":
                continue
            sub = f"{path}.{key}"
            if key not in engine:
                # The kubernetes provider omits empty lists and maps (as the API server would store them).
                if offline[key] not in ([], {}):
                    problems.append(f"{sub}: declared but missing from the engine's inputs")
            elif key not in offline:
                problems.append(f"{sub}: in the engine's inputs but not declared")
            else:
                _compare(engine[key], offline[key], secrets, sub, problems)
        return
    if isinstance(offline, list) and isinstance(engine, list):
        if len(offline) != len(engine):
            problems.append(f"{path}: {len(engine)} items, declared {len(offline)}")
            return
        for index, (a, b) in enumerate(zip(engine, offline, strict=True)):
            _compare(a, b, secrets, f"{path}[{index}]", problems)
        return
    if engine != offline:
        problems.append(f"{path}: engine {_short(engine)} != declared {_short(offline)}")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) < 80 else text[:77] + "..."


def expected_changes(before: Plan, after: Plan) -> dict[str, set[tuple[str, str]]]:
    """What the offline plans predict the engine will do going from ``before`` to ``after``."""
    old = {(r.type, r.name): r for r in before.resources}
    new = {(r.type, r.name): r for r in after.resources}
    changed = {key for key in old.keys() & new.keys() if old[key].masked_inputs() != new[key].masked_inputs()}
    return {"create": set(new) - set(old), "delete": set(old) - set(new), "change": changed}


def engine_changes(run: EngineRun) -> dict[str, set[tuple[str, str]]]:
    """The engine's steps, folded the same way: creates, deletes, and anything updated or replaced."""
    out: dict[str, set[tuple[str, str]]] = {"create": set(), "delete": set(), "change": set()}
    for step in run.steps():
        key = type_and_name(step["urn"])
        if key[0].startswith("pulumi:"):
            continue
        if step["op"] == "create":
            out["create"].add(key)
        elif step["op"] == "delete":
            out["delete"].add(key)
        elif step["op"] in ("update", "replace", "create-replacement", "delete-replaced"):
            out["change"].add(key)
    return out


def changed_paths(old: Any, new: Any, path: str = "") -> set[str]:
    """Dotted paths whose values differ between two input documents."""
    if isinstance(old, dict) and isinstance(new, dict):
        return {p for key in set(old) | set(new) for p in changed_paths(old.get(key), new.get(key), f"{path}.{key}" if path else key)}
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return {p for i, (a, b) in enumerate(zip(old, new, strict=True)) for p in changed_paths(a, b, f"{path}[{i}]")}
    return set() if old == new else {path}
