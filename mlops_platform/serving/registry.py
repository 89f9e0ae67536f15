"""Resolve ``serving.models`` to the exact S3 locations KServe downloads, and gate what would be pinned.

KServe reads neither ``models:/name@alias`` nor the ``mlflow-artifacts:/`` URIs a
proxying tracking server records. So each alias or version is resolved here, at
`pulumi preview` and `pulumi up` time, into a pinned ``s3://`` URI: a promotion
(moving an alias) becomes a reviewed diff of the InferenceService.

Each resolved version then passes gates, read from the ``MLmodel`` file the
registry's artifact proxy serves from exactly where ``storageUri`` will point:
the file exists, its flavor (and, for ``format: mlflow``, the MLflow format
version) is one the chosen KServe runtime serves, and it has a signature unless
the entry allows none. Otherwise the version would be pinned and fail only in
the cluster.

A few searches per workspace first answer, for every entry together, which version
each alias names and where its artifacts are (catalog.py); then each version costs
one request, its ``MLmodel``. Whatever the searches left open is asked one entry at
a time, and every error is worded here.

Resolution runs before any resource is declared. An entry that cannot be
resolved or fails a gate, including when the registry is unreachable, stops the
program with one line naming the entry and changes nothing. A preview cannot
show what a deploy would serve without the registry, so it fails too rather than guess.

Registry credentials come from MLflow's own environment variables
(``MLFLOW_TRACKING_TOKEN``, ``MLFLOW_TRACKING_USERNAME``/``_PASSWORD``) or the
secret config ``serving.registryToken``; they never appear in messages.

With Kubeflow workspaces each model is looked up in the workspace of its own namespace,
with the token of that namespace's ``mlflow-registry-reader`` (serving/stack.py), bound to the ClusterRole kubeflow/tenancy.py declares.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from mlops_platform.config import PlatformConfig
from mlops_platform.serving import catalog
from mlops_platform.serving.catalog import Catalog, Wanted, in_order
from mlops_platform.serving.mlflow_rest import HTTP_LIMITS, MlflowRest, RegistryError
from mlops_platform.serving.settings import CanaryConfig, ModelSource, ServingConfig
from mlops_platform.settings_base import PROJECT, ConfigError

__all__ = ["HTTP_LIMITS", "ResolvedCanary", "ResolvedModel", "physical_uri", "resolve_models"]

# Model format -> (the KServe runtime that serves it, the MLmodel flavor that runtime loads).
RUNTIME_FLAVORS = {"mlflow": ("kserve-mlserver", "python_function"), "sklearn": ("kserve-sklearnserver", "sklearn")}
# Files kserve-sklearnserver loads from the model directory (kserve 0.16 sklearnserver/model.py).
SKLEARN_FILES = ("model.joblib", "model.pkl", "model.pickle")


@dataclass(frozen=True)
class ResolvedCanary:
    """The challenger: the latest revision, taking ``traffic_percent`` of the traffic."""

    storage_uri: str
    version: str
    run_id: str | None
    alias: str | None
    traffic_percent: int


@dataclass(frozen=True)
class ResolvedModel:
    """A ``serving.models`` entry and the artifacts KServe will serve for it (the stable ones when a canary runs)."""

    source: ModelSource
    storage_uri: str
    version: str | None = None
    run_id: str | None = None
    canary: ResolvedCanary | None = None


@dataclass(frozen=True)
class _Version:
    storage_uri: str
    version: str
    run_id: str | None


@dataclass(frozen=True)
class _Lookup:
    """One registry version to resolve and gate: an entry's own source, or its canary."""

    index: int
    model: ModelSource
    alias: str | None
    version: int | None
    canary: bool


def resolve_models(config: PlatformConfig) -> list[ResolvedModel]:
    """Every configured model with a pinned storage URI; the registry is asked only if an entry needs it."""
    serving = config.serving
    if not serving.enabled:
        return []
    token = _registry_token(serving)
    root = config.artifacts.root
    # Pinned entries are checked in the same ordered pass, so the first failure in config order is the one reported.
    lookups = [
        _Lookup(index, model, source.alias, source.version, source is model.canary)
        for index, model in enumerate(serving.models)
        for source in (model, model.canary)
        if source is not None
    ]
    needs_registry = any(m.storage_uri is None for m in serving.models)
    client = MlflowRest(str(serving.mlflow_tracking_uri), token) if needs_registry else None

    # With workspaces each model is looked up in the workspace of its own namespace.
    def workspace(lookup: _Lookup) -> str | None:
        return lookup.model.namespace if config.workspaces_enabled else None

    wanted: dict[str | None, list[Wanted]] = {}
    for lookup in lookups:
        if lookup.model.storage_uri is None and lookup.model.registered_model is not None:
            wanted.setdefault(workspace(lookup), []).append(Wanted(lookup.model.registered_model, lookup.alias, lookup.version))
    catalogs = catalog.search(client, wanted) if client is not None else {}

    def resolve(lookup: _Lookup) -> _Version:
        scoped = client and client.in_workspace(workspace(lookup))
        return _resolve(scoped, catalogs.get(workspace(lookup)) or Catalog(), serving, lookup, root)

    versions = in_order(resolve, lookups)
    found = {(lookup.index, lookup.canary): version for lookup, version in zip(lookups, versions, strict=True)}
    return [_model(index, model, found) for index, model in enumerate(serving.models)]


def _model(index: int, model: ModelSource, found: dict[tuple[int, bool], _Version]) -> ResolvedModel:
    stable = found[(index, False)]
    if model.storage_uri is not None:
        return ResolvedModel(model, stable.storage_uri)
    canary = None
    if model.canary is not None:
        challenger = found[(index, True)]
        if challenger.version == stable.version:
            raise ConfigError(
                f"{_entry(index, model)}: canary {_wanted(model.canary)} is version {stable.version}, the version already served; "
                "allowed: a canary on another version, or no canary once the model is promoted"
            )
        canary = ResolvedCanary(
            challenger.storage_uri, challenger.version, challenger.run_id, model.canary.alias, model.canary.traffic_percent
        )
    return ResolvedModel(model, stable.storage_uri, version=stable.version, run_id=stable.run_id, canary=canary)


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


def _resolve(client: MlflowRest | None, known: Catalog, serving: ServingConfig, lookup: _Lookup, root: str) -> _Version:
    index, model = lookup.index, lookup.model
    if model.storage_uri is not None:
        return _Version(_on_bucket(model.storage_uri, root, index, model), "", None)
    name = model.registered_model
    if client is None or name is None:
        # Validation pairs every entry without storageUri with registeredModel, and resolve_models opens a client for it.
        raise ConfigError(f"{_entry(index, model)}: needs registeredModel and serving.mlflowTrackingUri")
    try:
        found = known.version(name, lookup.alias, lookup.version) or client.model_version(
            name, alias=lookup.alias, version=None if lookup.alias else str(lookup.version)
        )
        version = str(found["version"])
        location = known.location(found) or client.download_uri(name, version)
    except RegistryError as exc:
        raise ConfigError(f"{_entry(index, model)}: {_explain(exc, client, serving, lookup, name)}") from None
    what = f"{'canary ' if lookup.canary else ''}version {version} of registered model {name!r}"
    if found.get("status") != "READY":
        raise ConfigError(f"{_entry(index, model)}: {what} is {found.get('status')}, not READY")
    storage_uri = _on_bucket(location, root, index, model)
    _gate(client, serving, model, storage_uri, root, f"{_entry(index, model)}: {what}")
    return _Version(storage_uri, version, found.get("run_id") or None)


def _gate(client: MlflowRest, serving: ServingConfig, model: ModelSource, storage_uri: str, root: str, what: str) -> None:
    """Refuse a version KServe could not serve, from the MLmodel file at exactly the pinned location."""
    import yaml

    try:
        text = client.artifact(storage_uri.removeprefix(root + "/") + "MLmodel")
    except RegistryError as exc:
        raise ConfigError(f"{what}: its MLmodel could not be read through the registry ({exc.reason})") from None
    if text is None:
        raise ConfigError(f"{what}: has no MLmodel file at {storage_uri} (artifact missing or deleted)")
    try:
        # libyaml's parser when PyYAML carries it: ten times the pure-Python one's speed, which a hundred models feel.
        mlmodel = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506 - a safe loader
    except yaml.YAMLError:
        mlmodel = None
    if not isinstance(mlmodel, dict):
        raise ConfigError(f"{what}: its MLmodel at {storage_uri} is not an MLflow model description")
    declared = mlmodel.get("flavors")
    flavors: dict[str, Any] = declared if isinstance(declared, dict) else {}
    runtime, flavor = RUNTIME_FLAVORS[model.format]
    if flavor not in flavors:
        raise ConfigError(
            f"{what}: has flavors {', '.join(sorted(flavors)) or 'none'}; format {model.format} is served by {runtime}, "
            f"which loads the {flavor} flavor"
        )
    if model.format == "mlflow":
        written_by = str(mlmodel.get("mlflow_version", "unknown"))
        major = written_by.split(".")[0]
        if major not in serving.mlflow_format_versions:
            raise ConfigError(
                f"{what}: was written by MLflow {written_by} (mlflow format {major}); {runtime} serves mlflow format versions "
                f"{', '.join(serving.mlflow_format_versions)} (serving.mlflowFormatVersions)"
            )
    else:
        pickled = str(flavors[flavor].get("pickled_model", "")) if isinstance(flavors[flavor], dict) else ""
        if pickled not in SKLEARN_FILES:
            raise ConfigError(
                f"{what}: stores its model as {pickled or 'nothing'}; {runtime} loads only {', '.join(SKLEARN_FILES)} "
                "(log it with serialization_format='pickle')"
            )
    if model.require_signature and not mlmodel.get("signature"):
        raise ConfigError(f"{what}: has no signature; allowed: a model logged with a signature, or requireSignature: false")


def _on_bucket(uri: str, root: str, index: int, model: ModelSource) -> str:
    physical = physical_uri(uri, root)
    if physical is None:
        raise ConfigError(
            f"{_entry(index, model)}: source {_without_userinfo(uri)} is not under {root}/, "
            "the only prefix KServe's storage credentials can read"
        )
    return physical


def _explain(exc: RegistryError, client: MlflowRest, serving: ServingConfig, lookup: _Lookup, name: str) -> str:
    """One line for a failed lookup, from MLflow's error code, never from response bodies."""
    registry = serving.mlflow_tracking_uri
    code = exc.error_code
    if code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
        if not client.registered_model_exists(name):
            return f"registered model {name!r} not found in the registry at {registry}"
        wanted = f"alias {lookup.alias!r}" if lookup.alias is not None else f"version {lookup.version}"
        return f"registered model {name!r} has no {'canary ' if lookup.canary else ''}{wanted}"
    if code in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
        return (
            f"the registry at {registry} refused access ({code}); provide MLFLOW_TRACKING_TOKEN "
            "(or MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD) or secret serving.registryToken"
        )
    if code == "ENDPOINT_NOT_FOUND":
        return f"no MLflow API at {registry} (HTTP 404); check serving.mlflowTrackingUri, including the server's --static-prefix"
    if exc.reason == "HTTP 500" and client.workspace is not None:
        return (
            f"the registry at {registry} failed a request in MLflow workspace {client.workspace!r} (HTTP 500), as a server without "
            "workspaces answers them all; check that serving.mlflowTrackingUri is a server with workspaces, "
            "or set kubeflow.workspaces false"
        )
    return (
        f"the registry at {registry} is unreachable or failing ({exc.reason}); preview and deploy need it to resolve aliases and versions"
    )


def _wanted(canary: CanaryConfig) -> str:
    return f"alias {canary.alias!r}" if canary.alias is not None else f"version {canary.version}"


def _registry_token(serving: ServingConfig) -> str | None:
    """The secret config token (parse_config has refused one held in plain text)."""
    return serving.registry_token.get_secret_value() if serving.registry_token is not None else None


def _entry(index: int, model: ModelSource) -> str:
    """How messages name an entry: ``mlops-platform:serving.models[0] (diabetes)``."""
    return f"{PROJECT}:serving.models[{index}] ({model.name})"


def _without_userinfo(uri: str) -> str:
    parts = urlsplit(uri)
    if "@" not in parts.netloc:
        return uri
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
