"""`make local-up` / `make local-down`: the dev stack through the real engine onto an embedded cluster.

``up`` starts the control plane (tools/local/cluster.py), loads what the program expects
an existing MicroK8s + Kubeflow cluster to have (tools/testing/cluster_fixtures.py), then runs
the real `pulumi up --yes` for the stack with the policy pack, and prints the outputs and
how to reach the API server: an env file (``<dir>/env``) that, sourced in any shell, points
kubectl (the toolchain's) and pulumi at the local cluster and stack. ``down`` stops every
process it started and checks that nothing it opened still listens. Exit 2 with one line on
invalid stack config.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from tools.dev import local_platform
from tools.local import cluster as local_cluster
from tools.testing import cluster_fixtures
from tools.testing.harness import stack_config, with_overrides

ROOT = Path(__file__).resolve().parents[2]


def profiles_of(stack: str, config: dict[str, str] | None = None) -> tuple[list[str], str]:
    """The Kubeflow profiles and dashboard namespace the stack's config names."""
    if config is None:
        config, _ = stack_config(stack)
    kubeflow = json.loads(config.get("mlops-platform:kubeflow", "{}"))
    serving = json.loads(config.get("mlops-platform:serving", "{}"))
    profiles = list(dict.fromkeys([*(kubeflow.get("profiles") or []), *(serving.get("namespaces") or [])]))
    return profiles, kubeflow.get("namespace", "kubeflow")


def load_existing(
    cluster: local_cluster.Cluster,
    stack: str,
    overrides: dict[str, Any] | None = None,
    *,
    extra_profiles: tuple[str, ...] = (),
    timeout: float = 60,
) -> list[dict[str, Any]]:
    """Create the cluster's pre-existing objects for ``stack`` and wait for the CRDs to be served.

    ``extra_profiles`` are profile namespaces a later config change will add (Kubeflow makes them, not us).
    """
    from kubernetes import client, utils

    from tools.testing.harness import run_program

    config, secret_keys = stack_config(stack)
    config = with_overrides(config, overrides or {})
    plan = run_program(stack, config=config, secret_keys=secret_keys)
    profiles, dashboard_ns = profiles_of(stack, config)
    objects = cluster_fixtures.existing_objects(plan, [*profiles, *extra_profiles], dashboard_ns)
    api = cluster.api()
    for obj in objects:
        try:
            utils.create_from_dict(api, obj)
        except utils.FailToCreateError as exc:
            if not all(getattr(e, "status", None) == 409 for e in exc.api_exceptions):
                raise
    extensions = client.ApiextensionsV1Api(api)
    deadline = time.monotonic() + timeout
    for obj in objects:
        if obj["kind"] != "CustomResourceDefinition":
            continue
        while True:
            crd = extensions.read_custom_resource_definition(obj["metadata"]["name"])
            conditions = (crd.status.conditions if crd.status else None) or []
            if any(c.type == "Established" and c.status == "True" for c in conditions):
                break
            if time.monotonic() > deadline:
                raise local_cluster.ClusterError(f"CRD {obj['metadata']['name']} not established after {timeout:.0f} s")
            time.sleep(0.2)
    return objects


def write_env_file(directory: Path, engine: Any, cluster: local_cluster.Cluster) -> Path:
    """``<directory>/env``: what a shell needs to run kubectl and pulumi against the local cluster and stack.

    pulumi runs in the engine's project copy (``--cwd``), whose stack file holds the salt the state's secrets are
    encrypted with and the config the stack was deployed with; the checked-in stack files are never touched.
    """
    env = dict(engine.env())
    path = env.pop("PATH").split(":")
    own = [p for p in path if p not in ("/usr/bin", "/bin")]
    env["KUBECONFIG"] = str(cluster.kubeconfig)
    env["PULUMI_STACK"] = engine.stack_name
    lines = [
        f"# Written by `make local-up` for stack {engine.stack_name}: `source {directory / 'env'}` in any shell, then e.g.",
        "#   kubectl get pods -A; pulumi stack output; pulumi stack output --show-secrets databasePassword; pulumi preview",
        "# (`pulumi preview` needs the Python language host, which the standard Pulumi CLI ships and `make toolchain` cannot build).",
        *(f"export {key}={shlex.quote(value)}" for key, value in sorted(env.items())),
        f'export PATH={shlex.quote(":".join(own))}:"$PATH"',
        f'pulumi() {{ command pulumi --cwd {shlex.quote(str(engine.project_dir))} "$@"; }}',
    ]
    target = directory / "env"
    target.write_text("\n".join(lines) + "\n")
    # It holds the state's passphrase.
    target.chmod(0o600)
    return target


def up(stack: str, directory: Path, user: str = cluster_fixtures.DEFAULT_USER) -> int:
    from pulumi import automation as auto

    from mlops_platform.settings_base import ConfigError
    from tools.local.engine import LocalEngine

    started = time.monotonic()
    try:
        stack_config(stack)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    cluster = local_cluster.start(directory)
    print(f"local-up: control plane ready in {time.monotonic() - started:.1f} s at {cluster.server}", flush=True)
    try:
        objects = load_existing(cluster, stack)
    except ConfigError as exc:
        local_cluster.stop(directory)
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"local-up: {len(objects)} pre-existing objects loaded (namespaces, CRDs, dashboard links, volumes)", flush=True)
    engine = LocalEngine(stack, directory)
    engine.reset()
    try:
        result = engine.up(echo=True)
    except auto.errors.CommandError as exc:
        print(str(exc), file=sys.stderr)
        print(
            f"local-up: `pulumi up` failed; the cluster is still running (`make local-down` stops it). Logs: {directory / 'logs'}",
            file=sys.stderr,
        )
        return 1
    for key, value in result.masked_outputs().items():
        print(f"output {key}: {value}")
    env_file = write_env_file(directory, engine, cluster)
    print("local-up: starting what the stack declares as local processes (no kubelet runs here) ...", flush=True)
    try:
        platform = local_platform.start(cluster, stack, directory, user=user)
    except Exception as exc:  # noqa: BLE001 - reported in one line; the cluster keeps running for a look
        print(f"local-up: the local data plane did not start: {exc}", file=sys.stderr)
        print(f"local-up: logs under {directory / 'platform' / 'logs'}; `make local-down` stops everything", file=sys.stderr)
        return 1
    print(f"local-up: done in {time.monotonic() - started:.1f} s\n")
    for line in local_platform.hints(platform, directory):
        print(line)
    print(f"\nAPI server: {cluster.server} (kubeconfig {cluster.kubeconfig})")
    print(f"Reach it and the stack from any shell:\n  source {env_file}\n  kubectl get pods -A\n  pulumi stack output")
    print("Stop everything: make local-down")
    return 0


def down(directory: Path) -> int:
    stopped = local_platform.stop(directory) + local_cluster.stop(directory)
    print(f"local-down: stopped {', '.join(stopped) if stopped else 'nothing (no cluster was running)'}; nothing listens on its ports")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["up", "down"])
    parser.add_argument("--stack", default="dev")
    parser.add_argument("--dir", type=Path, default=local_cluster.DEFAULT_DIR)
    parser.add_argument("--user", default=cluster_fixtures.DEFAULT_USER, help="who the printed MLflow link logs in as")
    args = parser.parse_args(argv)
    try:
        return up(args.stack, args.dir, args.user) if args.action == "up" else down(args.dir)
    except local_cluster.ToolchainMissing as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
