"""Kubeflow around MLflow: a notebook with exactly the env its PodDefaults inject, and the Istio gateway's routing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.e2e.declared import resolve_env
from tests.e2e.errors import DataPlaneError
from tests.e2e.launch import RUN_TIMEOUT, VENV_BIN, base_env, run_once
from tests.e2e.part import Part
from tools.testing.harness import Plan
from tools.testing.processes import HOST, http

NOTEBOOK = Path(__file__).with_name("notebook.py")
PODDEFAULT_KIND = "PodDefault"


def poddefault_env(plan: Plan, namespace: str, labels: dict[str, str] | None = None, component: str = "notebook") -> dict[str, str]:
    """The env Kubeflow's admission webhook injects into a pod with ``labels``, by default a notebook that opts in to MLflow.

    The notebook carries the selector labels of the PodDefaults that set
    MLFLOW_TRACKING_URI (what ticking that configuration in the notebook form does);
    every PodDefault of the namespace whose selector matches those labels applies,
    as in the webhook. Conflicting values fail, as they do there.
    """
    defaults = [r for r in plan.kinds(PODDEFAULT_KIND) if r.k8s_namespace == namespace]
    if labels is None:
        mlflow = [d for d in defaults if any(e["name"] == "MLFLOW_TRACKING_URI" for e in d.inputs["spec"].get("env") or [])]
        if not mlflow:
            raise DataPlaneError(
                component, f"no PodDefault in {namespace} injects MLFLOW_TRACKING_URI (found {[d.k8s_name for d in defaults]})"
            )
        labels = {}
        for d in mlflow:
            labels.update(d.inputs["spec"]["selector"].get("matchLabels") or {})
    env: dict[str, str] = {}
    for default in defaults:
        selector = default.inputs["spec"]["selector"].get("matchLabels") or {}
        if not selector.items() <= labels.items():
            continue
        spec = default.inputs["spec"]
        if spec.get("volumeMounts") or spec.get("volumes"):
            raise DataPlaneError(component, f"PodDefault {default.k8s_name} mounts volumes, which this e2e does not materialise")
        for name, value in resolve_env(plan, namespace, spec, component).items():
            if name in env and env[name] != value:
                raise DataPlaneError(component, f"PodDefaults in {namespace} set {name} to different values")
            env[name] = value
    return env


class Kubeflow(Part):
    """The Kubeflow part of a :class:`~tests.e2e.plane.DataPlane`."""

    def via_gateway(self, plan: Plan, host: str, path: str) -> tuple[int, bytes]:
        """A request through Kubeflow's Istio gateway: the declared VirtualService picks the destination.

        Only routing is reproduced (hosts, uri match, rewrite, destination); mTLS and the
        AuthorizationPolicy are Istio's and not run here.
        """
        component = "gateway"
        for vs in plan.kinds("VirtualService"):
            spec = vs.inputs["spec"]
            if host not in spec.get("hosts", []) and "*" not in spec.get("hosts", []):
                continue
            for route in spec.get("http", []):
                for match in route.get("match") or [{}]:
                    uri = match.get("uri") or {}
                    matched = (
                        uri.get("prefix")
                        if "prefix" in uri and path.startswith(uri["prefix"])
                        else (path if uri.get("exact") == path else None)
                    )
                    if matched is None or "redirect" in route:
                        continue
                    destination = route["route"][0]["destination"]
                    address = f"{destination['host']}:{destination['port']['number']}"
                    if address not in self.hosts.routes:
                        raise DataPlaneError(
                            component, f"VirtualService {vs.k8s_name} sends {path} to {address}, which no declared Service provides"
                        )
                    rewrite = route.get("rewrite") or {}
                    forwarded = rewrite["uri"] + path[len(matched) :] if "uri" in rewrite else path
                    return http(f"http://{HOST}:{self.hosts.routes[address]}{forwarded}", host=rewrite.get("authority", host))
        raise DataPlaneError(component, f"no declared VirtualService routes {host}{path}")

    def notebook(
        self,
        plan: Plan,
        namespace: str,
        registered_model: str,
        alias: str,
        experiment: str,
        alpha: float = 0.5,
        *,
        kubeconfig: Path | None = None,
    ) -> dict[str, Any]:
        """Run ``notebook.py`` with exactly the env the namespace's PodDefaults inject (plus PATH, locale, HOME).

        ``kubeconfig``: what the kubelet's ServiceAccount mount gives a pod (its token and namespace),
        which MLflow's ``kubernetes`` auth provider reads from a kubeconfig outside a pod.
        """
        return self.run_in_notebook(
            plan,
            namespace,
            NOTEBOOK,
            [registered_model, alias, experiment, str(alpha)],
            change_env={"KUBECONFIG": str(kubeconfig)} if kubeconfig else None,
            result_name=f"result-{alias}.json",
        )

    def notebook_env(self, plan: Plan, namespace: str) -> dict[str, str]:
        """The PodDefaults' env after the host mapping; S3 settings must name the declared MinIO."""
        env = self.hosts.rewrite_env(poddefault_env(plan, namespace), "notebook")
        for name in ("AWS_ENDPOINT_URL", "MLFLOW_S3_ENDPOINT_URL"):
            if name in env and not env[name].startswith(f"http://{HOST}:"):
                raise DataPlaneError("notebook", f"{name} is {env[name]}: S3 calls would not go to the declared MinIO")
        return env

    def run_in_notebook(
        self,
        plan: Plan,
        namespace: str,
        script: Path,
        args: list[str],
        *,
        change_env: dict[str, str] | None = None,
        name: str = "notebook",
        result_name: str = "result.json",
    ) -> dict[str, Any]:
        """Run ``script RESULT_JSON *args`` as a notebook cell would, with the PodDefaults' env and ``change_env``; returns its JSON."""
        env = {**self.notebook_env(plan, namespace), **(change_env or {})}
        home = self.workdir / f"{name}-{namespace}"
        home.mkdir(exist_ok=True)
        result = home / result_name
        result.unlink(missing_ok=True)
        run_once(
            "notebook",
            [str(VENV_BIN / "python"), str(script), str(result), *args],
            # The notebook's own temporary files stay in its home (a per-run directory), as on its PVC.
            {**base_env(home), "TMPDIR": str(home), **env},
            self.log(f"{name}-{namespace}"),
            RUN_TIMEOUT["notebook"],
            cwd=home,
        )
        return json.loads(result.read_text())
