"""What a few registry searches tell about many ``serving.models`` entries at once.

Every MLflow request costs its server several milliseconds of CPU (5 to 6 ms for a lookup by
name on MLflow 3.17, ``tools/bench/serving.py``), so asking per entry (the alias, the version,
its download URI, then its ``MLmodel``) made a hundred models cost the registry seconds. Per
workspace, these searches answer the first three for every entry together:

- ``registered-models/search`` with ``name IN (...)``: each named model's aliases;
- ``model-versions/search`` with the same filter: their newest versions (status, source, run);
- ``experiments/search``, then ``logged-models/search`` with ``model_id IN (...)``: where the
  logged models MLflow 3 registers (sources ``models:/m-…``) keep their artifacts.

That last one is what ``get-download-uri`` answers: MLflow stores a version's download location
as its source, or, for a ``models:/`` source, as the artifact location of what it names
(``SqlAlchemyStore.create_model_version``). So only the ``MLmodel`` read is left per version.

A catalog is only a cache. Whatever it does not hold (an older version, a name a filter cannot
list verbatim, a search a server or proxy refuses, more experiments than one page) is looked
up one entry at a time by registry.py, which also words every error. Only an unreachable
registry is remembered, so a dead server costs one timeout rather than one per entry.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

from mlops_platform.serving.mlflow_rest import SEARCHABLE, MlflowRest, RegistryError

_T = TypeVar("_T")
_R = TypeVar("_R")

# Requests in flight at once: the registry's latency is what bounds resolution; more would crowd a small server.
CONCURRENT_REQUESTS = 8
# One search names at most this many models or logged models (MLflow's logged-model page holds 100) in a filter of at most
# this many characters (request lines beyond 4 KiB are refused by gunicorn and common proxies; URL-encoding adds a third).
SEARCH_VALUES = 100
SEARCH_FILTER_CHARS = 2000
# Versions listed per named model, newest first: aliases usually point at recent versions; older ones are looked up alone.
VERSIONS_PER_MODEL = 10
# Experiments listed per workspace in one page; a workspace with more keeps asking get-download-uri per version.
EXPERIMENTS = 1000
KINDS = ("models", "versions")
# Sources whose download location is the source itself, and the logged-model source MLflow 3 registers.
PHYSICAL_SCHEMES = ("s3", "mlflow-artifacts")
LOGGED_MODEL = re.compile(r"models:/(m-[0-9a-f]+)")


@dataclass
class Catalog:
    """One workspace's search results."""

    aliases: dict[str, dict[str, str]] = field(default_factory=dict)
    versions: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    # Logged model id -> its artifact location.
    locations: dict[str, str] = field(default_factory=dict)
    experiments: list[str] | None = None
    unreachable: RegistryError | None = None

    def version(self, name: str, alias: str | None, version: int | None) -> dict[str, Any] | None:
        """The model version an alias or number names, as ``model-versions/get`` returns it; None if not listed."""
        if self.unreachable is not None:
            raise self.unreachable
        number = self.aliases.get(name, {}).get(alias) if alias is not None else str(version)
        return self.versions.get((name, number)) if number is not None else None

    def location(self, version: Mapping[str, Any]) -> str | None:
        """What ``get-download-uri`` returns for ``version``; None when the searches cannot tell."""
        source = str(version.get("source") or "")
        if urlsplit(source).scheme in PHYSICAL_SCHEMES:
            return source
        logged = LOGGED_MODEL.fullmatch(source)
        return self.locations.get(logged.group(1)) if logged else None

    def _merge(self, other: Catalog) -> None:
        for name, aliases in other.aliases.items():
            self.aliases.setdefault(name, {}).update(aliases)
        self.versions.update(other.versions)
        self.locations.update(other.locations)
        self.experiments = other.experiments if other.experiments is not None else self.experiments
        self.unreachable = self.unreachable or other.unreachable


@dataclass(frozen=True)
class Wanted:
    """A registry version an entry names: by alias, or by number."""

    name: str
    alias: str | None
    version: int | None


@dataclass(frozen=True)
class _Search:
    workspace: str | None
    kind: str
    values: tuple[str, ...] = ()


def search(client: MlflowRest, wanted: Mapping[str | None, Sequence[Wanted]]) -> dict[str | None, Catalog]:
    """A catalog per workspace for the versions ``wanted`` names there (by alias or number): searched together, a page each."""
    catalogs = {workspace: Catalog() for workspace in wanted}
    names = {workspace: [n for n in dict.fromkeys(v.name for v in wanted[workspace]) if SEARCHABLE.fullmatch(n)] for workspace in wanted}
    first = [_Search(workspace, kind, chunk) for workspace in wanted for chunk in _chunks(names[workspace]) for kind in KINDS]
    # Asked alongside, not after: one round trip less; skipped where no name can be searched.
    first += [_Search(workspace, "experiments") for workspace in wanted if names[workspace]]
    _run(client, first, catalogs)
    second = []
    for workspace, catalog in catalogs.items():
        found = (catalog.version(v.name, v.alias, v.version) for v in wanted[workspace]) if catalog.unreachable is None else ()
        ids = {m.group(1) for v in found if v is not None and (m := LOGGED_MODEL.fullmatch(str(v.get("source") or "")))}
        if catalog.experiments and ids:
            # A POST body: no request-line limit on the filter's length.
            second += [_Search(workspace, "logged", chunk) for chunk in _chunks(sorted(ids), max_chars=None)]
    _run(client, second, catalogs)
    return catalogs


def in_order(work: Callable[[_T], _R], items: Sequence[_T]) -> list[_R]:
    """``work`` over ``items``, a few at a time: results in order, the first failure in order raised, the rest cancelled."""
    pool = ThreadPoolExecutor(max_workers=CONCURRENT_REQUESTS)
    try:
        futures = [pool.submit(work, item) for item in items]
        return [future.result() for future in futures]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _run(client: MlflowRest, searches: list[_Search], catalogs: dict[str | None, Catalog]) -> None:
    found = in_order(lambda s: _one(client.in_workspace(s.workspace), s, catalogs[s.workspace]), searches)
    for one, answer in zip(searches, found, strict=True):
        catalogs[one.workspace]._merge(answer)


def _one(client: MlflowRest, search: _Search, known: Catalog) -> Catalog:
    """One search; a refused one answers nothing, so its entries are looked up one by one."""
    found = Catalog()
    values = set(search.values)
    try:
        if search.kind == "models":
            for model in client.search_registered_models(search.values):
                if model.get("name") in values:
                    found.aliases[model["name"]] = {str(a["alias"]): str(a["version"]) for a in model.get("aliases", [])}
        elif search.kind == "versions":
            for version in client.search_model_versions(search.values, VERSIONS_PER_MODEL * len(search.values)):
                if version.get("name") in values:
                    found.versions[(version["name"], str(version["version"]))] = version
        elif search.kind == "experiments":
            found.experiments = client.experiment_ids(EXPERIMENTS)
        else:
            for info in client.search_logged_models(known.experiments or [], search.values):
                if info.get("model_id") in values and info.get("artifact_uri"):
                    found.locations[info["model_id"]] = str(info["artifact_uri"])
    except RegistryError as exc:
        if exc.error_code == "UNREACHABLE":
            found.unreachable = exc
    except (KeyError, TypeError, AttributeError):
        # An answer of another shape than expected: nothing learned, the entries are asked alone.
        return Catalog()
    return found


def _chunks(values: list[str], max_chars: int | None = SEARCH_FILTER_CHARS) -> Iterator[tuple[str, ...]]:
    chunk: list[str] = []
    chars = 0
    for value in values:
        # Each value takes its quotes, a comma and a space in the filter.
        full = len(chunk) == SEARCH_VALUES or (max_chars is not None and chars + len(value) + 4 > max_chars)
        if chunk and full:
            yield tuple(chunk)
            chunk, chars = [], 0
        chunk.append(value)
        chars += len(value) + 4
    if chunk:
        yield tuple(chunk)
