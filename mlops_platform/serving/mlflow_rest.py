"""The few MLflow REST calls registry resolution needs, without importing MLflow.

Importing ``mlflow`` costs about 1.5 s warm (more cold), more than the whole time
budget for resolving a hundred models (``tools/bench/serving.py``). Resolution
needs a few read-only endpoints of MLflow's documented REST API (lookups and
searches) and the artifact proxy, so this client speaks them directly with the
standard library.

It honours the environment MLflow's own client reads: ``MLFLOW_TRACKING_USERNAME``/
``_PASSWORD`` (basic auth, first), ``MLFLOW_TRACKING_TOKEN`` (bearer), TLS settings
(``MLFLOW_TRACKING_INSECURE_TLS``, ``_SERVER_CERT_PATH``, ``_CLIENT_CERT_PATH``), and
the HTTP limits ``MLFLOW_HTTP_REQUEST_MAX_RETRIES``, ``_BACKOFF_FACTOR``, ``_TIMEOUT``.
Errors carry MLflow's error code and a few words of cause, never URLs, headers or bodies.
"""

from __future__ import annotations

import base64
import copy
import http.client
import json
import os
import re
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any

# Lower than MLflow's defaults (7 retries with exponential backoff, 120 s timeout), which would hang a
# preview for minutes on a dead registry. Values the operator exports win.
HTTP_LIMITS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
}
# The statuses MLflow's client retries too.
_RETRIED = frozenset({429, 500, 502, 503, 504})
# MLflow's header naming the workspace of a request (mlflow.utils.workspace_utils).
WORKSPACE_HEADER = "X-MLFLOW-WORKSPACE"
_STATUS_CODES = {401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "ENDPOINT_NOT_FOUND"}
# Values a search filter can list verbatim (``name IN ('a', 'b')``): MLflow parses the list with ast.literal_eval.
SEARCHABLE = re.compile(r"[A-Za-z0-9_.\- ]+")


class RegistryError(Exception):
    """A failed call: MLflow's error code (or ``UNREACHABLE``/``HTTP <status>``) and a short cause."""

    def __init__(self, code: str, reason: str | None = None):
        super().__init__(code)
        self.error_code = code
        self.reason = reason or code


class MlflowRest:
    """One registry, its credentials and limits read once; safe to share between threads (no state per call)."""

    def __init__(self, uri: str, token: str | None = None, env: Mapping[str, str] = os.environ):
        self.uri = uri.rstrip("/")
        self.workspace: str | None = None
        self._headers = {"Accept": "application/json", "User-Agent": "mlops-platform"}
        user, password = env.get("MLFLOW_TRACKING_USERNAME"), env.get("MLFLOW_TRACKING_PASSWORD")
        bearer = token if token is not None else env.get("MLFLOW_TRACKING_TOKEN")
        if user and password:
            self._headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        elif bearer:
            self._headers["Authorization"] = f"Bearer {bearer}"
        limits = {name: env.get(name, default) for name, default in HTTP_LIMITS.items()}
        self._retries = int(limits["MLFLOW_HTTP_REQUEST_MAX_RETRIES"])
        self._backoff = float(limits["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"])
        self._timeout = float(limits["MLFLOW_HTTP_REQUEST_TIMEOUT"])
        self._opener = urllib.request.build_opener(_LazyTLS(env))

    def in_workspace(self, workspace: str | None) -> MlflowRest:
        """The same registry seen from one MLflow workspace (``X-MLFLOW-WORKSPACE``), or as is when None."""
        if workspace is None:
            return self
        scoped = copy.copy(self)
        scoped._headers = {**self._headers, WORKSPACE_HEADER: workspace}
        scoped.workspace = workspace
        return scoped

    def model_version(self, name: str, *, alias: str | None = None, version: str | None = None) -> dict[str, Any]:
        if alias is not None:
            found: dict[str, Any] = self._json("registered-models/alias", name=name, alias=alias)["model_version"]
        else:
            found = self._json("model-versions/get", name=name, version=str(version))["model_version"]
        return found

    def search_registered_models(self, names: Sequence[str]) -> list[dict[str, Any]]:
        """The named registered models (each with its aliases) in one request; names must match SEARCHABLE."""
        body = self._json("registered-models/search", filter=_listed("name", names), max_results=str(len(names)))
        return list(body.get("registered_models", []))

    def search_model_versions(self, names: Sequence[str], max_results: int) -> list[dict[str, Any]]:
        """At most ``max_results`` versions of the named models, newest first, in one request."""
        newest = "version_number DESC"
        body = self._json("model-versions/search", filter=_listed("name", names), max_results=str(max_results), order_by=newest)
        return list(body.get("model_versions", []))

    def experiment_ids(self, max_results: int) -> list[str] | None:
        """Every active experiment's id in one request; None when there are more than ``max_results``."""
        body = self._json("experiments/search", max_results=str(max_results))
        if body.get("next_page_token"):
            return None
        return [str(experiment["experiment_id"]) for experiment in body.get("experiments", [])]

    def search_logged_models(self, experiment_ids: Sequence[str], model_ids: Sequence[str]) -> list[dict[str, Any]]:
        """The given logged models (MLflow 3), found in these experiments, in one request: their ``info`` each."""
        query = {"experiment_ids": list(experiment_ids), "filter": _listed("model_id", model_ids), "max_results": len(model_ids)}
        body = _answer(self._send("/api/2.0/mlflow/logged-models/search", json.dumps(query).encode()))
        return [model["info"] for model in body.get("models", []) if isinstance(model.get("info"), dict)]

    def download_uri(self, name: str, version: str) -> str:
        return str(self._json("model-versions/get-download-uri", name=name, version=version)["artifact_uri"])

    def registered_model_exists(self, name: str) -> bool:
        try:
            self._json("registered-models/get", name=name)
        except RegistryError as exc:
            return exc.error_code != "RESOURCE_DOES_NOT_EXIST"
        return True

    def artifact(self, path: str) -> bytes | None:
        """A file through the server's artifact proxy (``mlflow-artifacts:/<path>``); None if it does not exist.

        With an S3 destination MLflow answers a missing object with HTTP 500, so a failure is
        told apart from a missing file by listing the directory (only then: one request when all is well).
        """
        path = path.lstrip("/")
        try:
            return self._send(f"/api/2.0/mlflow-artifacts/artifacts/{urllib.parse.quote(path)}")
        except RegistryError as exc:
            if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "ENDPOINT_NOT_FOUND"):
                return None
            directory, _, name = path.rpartition("/")
            listing = _answer(self._send(f"/api/2.0/mlflow-artifacts/artifacts?{urllib.parse.urlencode({'path': directory})}"))
            if not any(entry.get("path", "").rpartition("/")[2] == name for entry in listing.get("files", [])):
                return None
            raise

    def _json(self, endpoint: str, **params: str) -> dict[str, Any]:
        return _answer(self._send(f"/api/2.0/mlflow/{endpoint}?{urllib.parse.urlencode(params)}"))

    def _send(self, path: str, body: bytes | None = None) -> bytes:
        """GET ``path``, or POST ``body`` as JSON (searches that take a body), with MLflow's retries."""
        headers = self._headers if body is None else {**self._headers, "Content-Type": "application/json"}
        request = urllib.request.Request(self.uri + path, data=body, headers=headers)
        failure = RegistryError("UNREACHABLE", "no attempt made")
        for attempt in range(self._retries + 1):
            if attempt > 1:
                time.sleep(self._backoff * 2 ** (attempt - 2))
            try:
                with self._opener.open(request, timeout=self._timeout) as response:
                    return bytes(response.read())
            except urllib.error.HTTPError as exc:
                failure = _http_error(exc)
                if exc.code not in _RETRIED:
                    raise failure from None
            except (urllib.error.URLError, OSError) as exc:
                failure = RegistryError("UNREACHABLE", _transport_reason(exc))
        raise failure


def _answer(body: bytes) -> dict[str, Any]:
    """MLflow's JSON object; anything else (an SSO proxy's login page answered with 200) is a failed call, never a traceback."""
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        raise RegistryError("NOT_MLFLOW", "not an MLflow API answer")
    return parsed


def _listed(key: str, values: Sequence[str]) -> str:
    """``key IN ('a', 'b')``; refuses what the filter could not carry verbatim rather than escape it."""
    if not values or not all(SEARCHABLE.fullmatch(value) for value in values):
        raise ValueError(f"{key} values outside {SEARCHABLE.pattern} cannot be listed in a search filter")
    return f"{key} IN (" + ", ".join(f"'{value}'" for value in values) + ")"


def _http_error(exc: urllib.error.HTTPError) -> RegistryError:
    """MLflow's JSON ``error_code`` when the server sent one, else one derived from the status."""
    try:
        body = json.loads(exc.read() or b"{}")
        # The Kubernetes authorization app nests it: {"error": {"code": "PERMISSION_DENIED", ...}}.
        nested = body.get("error")
        code = body.get("error_code") or (nested.get("code") if isinstance(nested, dict) else None)
    except (ValueError, AttributeError, OSError):
        code = None
    return RegistryError(code or _STATUS_CODES.get(exc.code, f"HTTP {exc.code}"), f"HTTP {exc.code}")


def _transport_reason(exc: BaseException) -> str:
    """'Connection refused', 'Read timed out', 'Name or service not known': the cause, never the URL."""
    cause = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(cause, TimeoutError):
        return "Read timed out"
    if isinstance(cause, ssl.SSLError):
        return f"TLS: {cause.reason or 'handshake failed'}"
    if isinstance(cause, OSError) and cause.strerror:
        return cause.strerror
    return type(cause).__name__


class _LazyTLS(urllib.request.HTTPSHandler):
    """HTTPS with MLflow's TLS settings, the CA bundle loaded on the first HTTPS request: 30 ms a plain-HTTP registry never pays."""

    def __init__(self, env: Mapping[str, str]):
        super().__init__()
        self._env = env
        self._tls: ssl.SSLContext | None = None

    def https_open(self, req: urllib.request.Request) -> Any:
        if self._tls is None:
            self._tls = _tls(self._env)
        return self.do_open(http.client.HTTPSConnection, req, context=self._tls)


def _tls(env: Mapping[str, str]) -> ssl.SSLContext:
    if env.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() == "true":
        context = ssl._create_unverified_context()
    else:
        context = ssl.create_default_context(cafile=env.get("MLFLOW_TRACKING_SERVER_CERT_PATH") or None)
    client_cert = env.get("MLFLOW_TRACKING_CLIENT_CERT_PATH")
    if client_cert:
        context.load_cert_chain(client_cert)
    return context
