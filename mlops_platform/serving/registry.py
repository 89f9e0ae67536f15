"""Resolve ``serving.models`` to the exact S3 locations KServe downloads.

KServe reads neither ``models:/name@alias`` nor the ``mlflow-artifacts:/`` URIs a
proxying tracking server records. So each alias or version is resolved here, at
`pulumi preview` and `pulumi up` time, into a pinned ``s3://`` URI: a promotion
(moving an alias) becomes a reviewed diff of the InferenceService.

Resolution runs before any resource is declared. An entry that cannot be
resolved, including when the registry is unreachable, stops the program with one
line naming the entry and changes nothing. A preview cannot show what a deploy
would serve without the registry, so it fails too rather than guess.

Registry credentials come from MLflow's own environment variables
(``MLFLOW_TRACKING_TOKEN``, ``MLFLOW_TRACKING_USERNAME``/``_PASSWORD``) or the
secret config ``serving.registryToken``; they never appear in messages.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from mlops_platform.config import PROJECT, ConfigError, ModelSource, PlatformConfig, ServingConfig

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

# MLflow's defaults (7 retries with exponential backoff, 120 s timeout) would hang a
# preview for minutes on a dead registry. Values the operator exports win.
HTTP_LIMITS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
}
# Lookups are independent and bound by registry latency (three REST calls each).
CONCURRENT_LOOKUPS = 8
# Only these fragments of a transport error reach a message: never URLs, headers or bodies.
_CAUSES = (
    (re.compile(r"\[Errno -?\d+\] ([A-Za-z ]+)"), "{}"),
    (re.compile(r"(Read timed out|Connect timeout)"), "{}"),
    (re.compile(r"error code (\d{3})"), "HTTP {}"),
)


@dataclass(frozen=True)
class ResolvedModel:
    """A ``serving.models`` entry and the artifacts KServe will serve for it."""

    source: ModelSource
    storage_uri: str
    version: str | None = None
    run_id: str | None = None


def resolve_models(config: PlatformConfig) -> list[ResolvedModel]:
    """Every configured model with a pinned storage URI; the registry is asked only if an entry needs it."""
    serving = config.serving
    if not serving.enabled:
        return []
    token = _registry_token(serving)
    root = config.artifacts.root
    needs_registry = any(m.storage_uri is None for m in serving.models)
    with _registry(serving, token) if needs_registry else contextlib.nullcontext() as client:
        return _in_order(lambda item: _resolve(client, serving, item[0], item[1], root), list(enumerate(serving.models)))


def physical_uri(uri: str, root: str) -> str | None:
    """``uri`` as KServe must see it: on ``root``, normalised, with the trailing slash KServe expects.

    ``mlflow-artifacts:/<path>`` maps to ``<root>/<path>``; an ``s3://`` URI is
    kept. Returns None for anything outside ``root/`` (another bucket or prefix,
    another scheme, a path escaping with ``..``): KServe's credentials cannot read it.
    """
    parts = urlsplit(uri)
    if parts.scheme == "mlflow-artifacts":
        uri = f"{root}/{parts.path.lstrip('/')}"
        parts = urlsplit(uri)
    elif parts.scheme != "s3":
        return None
    key = posixpath.normpath(parts.path.lstrip("/"))
    normalised = f"s3://{parts.netloc}/{key}/"
    below_root = normalised.startswith(root + "/") and len(normalised) > len(root) + 1
    return normalised if below_root and ".." not in key.split("/") else None


def _in_order(work: Callable, items: Sequence) -> list:
    """``work`` over ``items``, a few at a time: results in order, the first failure in order raised, the rest cancelled."""
    pool = ThreadPoolExecutor(max_workers=CONCURRENT_LOOKUPS)
    try:
        futures = [pool.submit(work, item) for item in items]
        return [future.result() for future in futures]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _resolve(client: MlflowClient | None, serving: ServingConfig, index: int, model: ModelSource, root: str) -> ResolvedModel:
    if model.storage_uri is not None:
        return ResolvedModel(model, _on_bucket(model.storage_uri, root, index, model))
    from mlflow.exceptions import MlflowException

    name = model.registered_model
    if client is None or name is None:
        # Validation pairs every entry without storageUri with registeredModel, and resolve_models opens a client for it.
        raise ConfigError(f"{_entry(index, model)}: needs registeredModel and serving.mlflowTrackingUri")
    try:
        if model.alias is not None:
            version = client.get_model_version_by_alias(name, model.alias)
        else:
            version = client.get_model_version(name, str(model.version))
        location = client.get_model_version_download_uri(name, version.version)
    except MlflowException as exc:
        raise ConfigError(f"{_entry(index, model)}: {_explain(exc, client, serving, model, name)}") from None
    if version.status != "READY":
        raise ConfigError(
            f"{_entry(index, model)}: version {version.version} of registered model {model.registered_model!r} "
            f"is {version.status}, not READY"
        )
    return ResolvedModel(model, _on_bucket(location, root, index, model), version=str(version.version), run_id=version.run_id or None)


def _on_bucket(uri: str, root: str, index: int, model: ModelSource) -> str:
    physical = physical_uri(uri, root)
    if physical is None:
        raise ConfigError(
            f"{_entry(index, model)}: source {_without_userinfo(uri)} is not under {root}/, "
            "the only prefix KServe's storage credentials can read"
        )
    return physical


def _explain(exc: MlflowException, client: MlflowClient, serving: ServingConfig, model: ModelSource, name: str) -> str:
    """One line for a failed lookup, from MLflow's error code, never from response bodies."""
    registry = serving.mlflow_tracking_uri
    code = exc.error_code
    if code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
        if not _model_exists(client, name):
            return f"registered model {model.registered_model!r} not found in the registry at {registry}"
        wanted = f"alias {model.alias!r}" if model.alias is not None else f"version {model.version}"
        return f"registered model {model.registered_model!r} has no {wanted}"
    if code in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
        return (
            f"the registry at {registry} refused access ({code}); provide MLFLOW_TRACKING_TOKEN "
            "(or MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD) or secret serving.registryToken"
        )
    if code == "ENDPOINT_NOT_FOUND":
        return f"no MLflow API at {registry} (HTTP 404); check serving.mlflowTrackingUri, including the server's --static-prefix"
    return (
        f"the registry at {registry} is unreachable or failing ({_reason(exc)}); preview and deploy need it to resolve aliases and versions"
    )


def _model_exists(client: MlflowClient, name: str) -> bool:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
    except MlflowException as exc:
        return exc.error_code != "RESOURCE_DOES_NOT_EXIST"
    return True


def _reason(exc: MlflowException) -> str:
    """The cause in a few words ('Connection refused', 'Read timed out', 'HTTP 503'), else MLflow's error code."""
    for pattern, template in _CAUSES:
        found = pattern.search(str(exc))
        if found:
            return template.format(found.group(1).strip())
    return exc.error_code


def _registry_token(serving: ServingConfig) -> str | None:
    """The secret config token, refused when the stack file holds it in plain text."""
    if serving.registry_token is None:
        return None
    from pulumi.runtime import config as runtime_config

    key = f"{PROJECT}:serving"
    if key not in runtime_config.get_config_secret_keys_env() and not runtime_config.is_config_secret(key):
        raise ConfigError(
            f"{key}.registryToken: is stored in plain text; "
            "allowed: a secret, set with `pulumi config set --secret --path serving.registryToken`"
        )
    return serving.registry_token.get_secret_value()


@contextlib.contextmanager
def _registry(serving: ServingConfig, token: str | None) -> Iterator[MlflowClient]:
    """The run's one MlflowClient, with bounded HTTP retries and the token visible only while it works."""
    from mlflow import MlflowClient

    overrides = {name: os.environ.get(name, default) for name, default in HTTP_LIMITS.items()}
    if token is not None:
        overrides["MLFLOW_TRACKING_TOKEN"] = token
    with _environ(overrides):
        yield MlflowClient(tracking_uri=serving.mlflow_tracking_uri, registry_uri=serving.mlflow_tracking_uri)


@contextlib.contextmanager
def _environ(values: Mapping[str, str]) -> Iterator[None]:
    """MLflow reads its settings and credentials from the environment at each request."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _entry(index: int, model: ModelSource) -> str:
    """How messages name an entry: ``mlops-platform:serving.models[0] (diabetes)``."""
    return f"{PROJECT}:serving.models[{index}] ({model.name})"


def _without_userinfo(uri: str) -> str:
    parts = urlsplit(uri)
    if "@" not in parts.netloc:
        return uri
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
