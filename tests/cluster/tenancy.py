"""Helpers of the tenancy end-to-end test: ServiceAccount tokens, kubeconfigs, and MLflow REST calls as one identity."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import yaml
from kubernetes import client

from tools.local import cluster as local_cluster

TOKEN_SECONDS = 3600
# The lists a search answers with.
COLLECTIONS = ("experiments", "runs", "registered_models", "model_versions")


def error_code(answer: dict[str, Any]) -> str | None:
    """MLflow's error code: top level from the Flask handlers, under ``error`` from the authorization app."""
    nested = answer.get("error")
    return answer.get("error_code") or (nested.get("code") if isinstance(nested, dict) else None)


def service_account_token(cluster: local_cluster.Cluster, namespace: str, account: str) -> str:
    """A short-lived token from the TokenRequest API, as `kubectl create token` gets it (the API server's default audience)."""
    core = client.CoreV1Api(cluster.api())
    request = client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=TOKEN_SECONDS))
    status = core.create_namespaced_service_account_token(account, namespace, request).status
    if status is None or not status.token:
        raise local_cluster.ClusterError(f"the TokenRequest for {namespace}/{account} was answered without a token")
    return status.token


def kubeconfig(cluster: local_cluster.Cluster, token: str, namespace: str, path: Path) -> Path:
    """A kubeconfig for one identity: the API server, its CA, the token and the identity's namespace as context."""
    import base64

    ca = base64.b64encode((cluster.pki / "ca.crt").read_bytes()).decode()
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                # The CA inline: the file stands for the pod's projected token mount, whatever a sandbox lets it see.
                "clusters": [{"name": "local", "cluster": {"server": cluster.server, "certificate-authority-data": ca}}],
                "users": [{"name": "caller", "user": {"token": token}}],
                "contexts": [{"name": "caller", "context": {"cluster": "local", "user": "caller", "namespace": namespace}}],
                "current-context": "caller",
            }
        )
    )
    path.chmod(0o600)
    return path


def mlflow_call(url: str, method: str, body: dict[str, Any] | None, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    """One MLflow REST call: a GET's body as its query, any other's as JSON; the answer's status and JSON body."""
    data = None
    if method == "GET" and body:
        url += "?" + urlencode(body)
    elif body is not None:
        data = json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        try:
            return exc.code, json.loads(raw or b"{}")
        except ValueError:
            return exc.code, {"raw": raw[:200].decode(errors="replace")}


@dataclass
class Caller:
    """MLflow's REST API as one caller: a bearer token (or none) and extra headers, against one workspace."""

    base: str
    token: str | None
    headers: dict[str, str] = field(default_factory=dict)

    def call(self, method: str, path: str, workspace: str | None, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
        """``workspace`` None: no workspace header (a server without workspaces refuses one)."""
        headers = {"Content-Type": "application/json", **({"X-MLFLOW-WORKSPACE": workspace} if workspace else {}), **self.headers}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return mlflow_call(f"{self.base}/api/2.0/mlflow/{path}", method, body, headers)


def attempts(owner_experiment: str, owner_model: str) -> list[tuple[str, str, str, dict[str, Any]]]:
    """Every kind of cross-tenant attempt on a workspace: read, write and alias, named for the output."""
    return [
        ("search experiments", "POST", "experiments/search", {"max_results": 10}),
        ("read experiment by name", "GET", "experiments/get-by-name", {"experiment_name": owner_experiment}),
        ("create experiment", "POST", "experiments/create", {"name": "intruder"}),
        ("search runs", "POST", "runs/search", {"experiment_ids": ["0", "1", "2"], "max_results": 10}),
        ("read registered model", "GET", "registered-models/get", {"name": owner_model}),
        ("search registered models", "GET", "registered-models/search", {"max_results": 10}),
        ("read alias", "GET", "registered-models/alias", {"name": owner_model, "alias": "production"}),
        ("create registered model", "POST", "registered-models/create", {"name": "intruder-model"}),
        ("set alias", "POST", "registered-models/alias", {"name": owner_model, "alias": "production", "version": "1"}),
        ("delete alias", "DELETE", "registered-models/alias", {"name": owner_model, "alias": "production"}),
        ("rename registered model", "POST", "registered-models/rename", {"name": owner_model, "new_name": "stolen"}),
    ]


@dataclass
class GatewayUser:
    """A person logged in at Kubeflow's front door (tests/e2e/kubeflow_gateway.py), calling MLflow through it as the browser does.

    The session cookie is what oauth2-proxy sets after Dex's login; every request carries it and nothing else
    of the user's, plus any ``headers`` (to try forging the gateway's own).
    """

    gateway: str
    email: str
    prefix: str = "/mlflow"
    headers: dict[str, str] = field(default_factory=dict)
    cookie: str = ""

    def login(self) -> GatewayUser:
        from urllib.parse import quote

        opener = urllib.request.build_opener(_NoRedirect())
        try:
            opener.open(f"{self.gateway}/dex/login?email={quote(self.email)}&rd=/", timeout=10)
        except urllib.error.HTTPError as exc:
            if exc.code != 302:
                raise
            self.cookie = exc.headers["Set-Cookie"].split(";", 1)[0]
        if not self.cookie:
            raise AssertionError(f"the gateway stand-in set no session for {self.email}")
        return self

    def get(self, path: str) -> tuple[int, bytes, dict[str, str]]:
        """A plain GET of ``path`` (a page, a file), redirects not followed."""
        request = urllib.request.Request(f"{self.gateway}{path}", headers={"Cookie": self.cookie, **self.headers})
        opener = urllib.request.build_opener(_NoRedirect())
        try:
            with opener.open(request, timeout=30) as response:
                return response.status, response.read(), dict(response.headers)
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read(), dict(exc.headers)

    def call(self, method: str, path: str, workspace: str | None, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
        """MLflow's REST API under ``<prefix>/ajax-api/2.0/mlflow/`` (the UI's own path), as this user in ``workspace``."""
        headers = {"Cookie": self.cookie, "Content-Type": "application/json", **self.headers}
        if workspace:
            headers["X-MLFLOW-WORKSPACE"] = workspace
        return mlflow_call(f"{self.gateway}{self.prefix}/ajax-api/2.0/mlflow/{path}", method, body, headers)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None
