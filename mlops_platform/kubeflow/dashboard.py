"""The MLflow entry in Kubeflow's central dashboard menu, in a ConfigMap other tools share.

The whole menu is one JSON document under ``data.links`` of
``centraldashboard-config``. A server-side-apply patch of that key would own the
entire string: it would revert links other tools add after us and delete them on
destroy. So a dynamic provider reads the document, merges only our entry with
the pure functions below, and writes it back guarded by the ConfigMap's
``resourceVersion``, retrying a bounded number of times when someone else wrote
in between.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import pulumi
from pulumi.dynamic import ConfigureRequest, CreateResult, DiffResult, ReadResult, Resource, ResourceProvider, UpdateResult

from mlops_platform.k8s.client import api_client

LINKS_KEY = "links"
MENU = "menuLinks"


class DashboardConfigError(ValueError):
    """The dashboard's menu cannot be edited safely; nothing was written."""


@dataclass(frozen=True)
class MenuLink:
    """One top-level menu item; ``link`` identifies it."""

    text: str
    link: str
    icon: str

    def entry(self) -> dict[str, str]:
        return {"type": "item", "link": self.link, "text": self.text, "icon": self.icon}


# -- pure merge ------------------------------------------------------------------


def parse_links(text: str) -> dict[str, Any]:
    """The menu document, or DashboardConfigError saying in one line why it cannot be edited."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DashboardConfigError(
            f"data.{LINKS_KEY} is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); "
            "nothing was changed, fix the ConfigMap first"
        ) from None
    if not isinstance(document, dict):
        raise DashboardConfigError(f"data.{LINKS_KEY} must be a JSON object, found {type(document).__name__}; nothing was changed")
    if not isinstance(document.get(MENU, []), list):
        raise DashboardConfigError(f"data.{LINKS_KEY}.{MENU} must be a list, found {type(document[MENU]).__name__}; nothing was changed")
    return document


def _same_link(entry: Any, link: str) -> bool:
    # "/mlflow" and "/mlflow/" are the same page; a hand-made entry is adopted, not duplicated.
    return isinstance(entry, dict) and isinstance(entry.get("link"), str) and entry["link"].rstrip("/") == link.rstrip("/")


def find_link(text: str, link: str) -> dict[str, Any] | None:
    """The top-level menu entry for ``link``, if any."""
    return next((e for e in parse_links(text).get(MENU, []) if _same_link(e, link)), None)


def with_link(text: str, link: MenuLink) -> str:
    """``text`` with ``link`` exactly once among the top-level menu items, everything else untouched.

    An existing entry for the same page keeps its position and takes our text and
    icon; unchanged input comes back as the identical string (nothing to write).
    """
    document = parse_links(text)
    menu = document.get(MENU, [])
    ours = [i for i, e in enumerate(menu) if _same_link(e, link.link)]
    if len(ours) == 1 and menu[ours[0]] == link.entry():
        return text
    if ours:
        menu = [link.entry() if i == ours[0] else e for i, e in enumerate(menu) if i == ours[0] or i not in ours]
    else:
        menu = [*menu, link.entry()]
    return _dump({**document, MENU: menu})


def without_link(text: str, link: str) -> str:
    """``text`` without the top-level entries for ``link``; returns ``text`` itself when there are none."""
    document = parse_links(text)
    menu = document.get(MENU, [])
    kept = [e for e in menu if not _same_link(e, link)]
    if len(kept) == len(menu):
        return text
    return _dump({**document, MENU: kept})


def _dump(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=4, ensure_ascii=False)


# -- the ConfigMap -------------------------------------------------------------------


@dataclass(frozen=True)
class ConfigMapData:
    data: dict[str, str]
    resource_version: str


class Conflict(Exception):
    """The ConfigMap changed since it was read."""


class ConfigMaps(Protocol):
    def read(self, namespace: str, name: str) -> ConfigMapData | None: ...

    def write(self, namespace: str, name: str, key: str, value: str, resource_version: str) -> None:
        """Set one data key if the ConfigMap is still at ``resource_version``; raise Conflict otherwise."""


class KubernetesConfigMaps:
    """ConfigMaps through the Kubernetes API, reaching the cluster the kubernetes provider uses.

    ``kubeconfig`` (a path or the document itself) and ``context`` are the stack's
    ``kubernetes:kubeconfig`` and ``kubernetes:context``; without them, KUBECONFIG
    or ``~/.kube/config``, then the in-cluster service account.
    """

    def __init__(self, kubeconfig: str | None = None, context: str | None = None):
        from kubernetes import client

        api = api_client(kubeconfig, context)
        self._core = client.CoreV1Api(api)

    def read(self, namespace: str, name: str) -> ConfigMapData | None:
        from kubernetes.client.exceptions import ApiException

        try:
            found = self._core.read_namespaced_config_map(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        if found.metadata is None or not found.metadata.resource_version:
            raise DashboardConfigError(f"{namespace}/{name} came back without a resourceVersion; nothing was changed")
        return ConfigMapData(dict(found.data or {}), found.metadata.resource_version)

    def write(self, namespace: str, name: str, key: str, value: str, resource_version: str) -> None:
        from kubernetes.client.exceptions import ApiException

        # A merge patch touches only this key; the resourceVersion in it makes the API server refuse a stale write.
        body = {"metadata": {"resourceVersion": resource_version}, "data": {key: value}}
        try:
            self._core.patch_namespaced_config_map(name, namespace, body, _content_type="application/merge-patch+json")
        except ApiException as exc:
            if exc.status == 409:
                raise Conflict(f"{namespace}/{name} changed while being edited") from None
            raise


# -- the dynamic provider -----------------------------------------------------------------


@dataclass(frozen=True)
class _Props:
    namespace: str
    config_map: str
    link: MenuLink

    @classmethod
    def of(cls, props: dict[str, Any]) -> _Props:
        return cls(props["namespace"], props["configMap"], MenuLink(props["text"], props["link"], props["icon"]))

    def outs(self) -> dict[str, str]:
        return {
            "namespace": self.namespace,
            "configMap": self.config_map,
            "text": self.link.text,
            "link": self.link.link,
            "icon": self.link.icon,
        }

    @property
    def where(self) -> str:
        return f"{self.namespace}/{self.config_map}"


class DashboardLinkProvider(ResourceProvider):
    """Create, update and delete one menu entry by read-merge-write with optimistic concurrency."""

    # The provider holds no secret; its serialized form need not be one.
    serialize_as_secret_always = False
    attempts = 5

    def __init__(self, config_maps: ConfigMaps | None = None, backoff_seconds: float = 0.5):
        super().__init__()
        self._config_maps = config_maps
        self._backoff_seconds = backoff_seconds
        self._kubeconfig: str | None = None
        self._context: str | None = None

    def configure(self, req: ConfigureRequest) -> None:
        self._kubeconfig = req.config.get("kubernetes:kubeconfig")
        self._context = req.config.get("kubernetes:context")

    def _api(self) -> ConfigMaps:
        if self._config_maps is None:
            self._config_maps = KubernetesConfigMaps(self._kubeconfig, self._context)
        return self._config_maps

    def _edit(self, target: _Props, change: Callable[[str], str], *, must_exist: bool) -> None:
        api = self._api()
        for attempt in range(1, self.attempts + 1):
            current = api.read(target.namespace, target.config_map)
            if current is None or LINKS_KEY not in current.data:
                if not must_exist:
                    return
                what = "does not exist" if current is None else f"has no data.{LINKS_KEY}"
                raise DashboardConfigError(f"{target.where} {what}; is Kubeflow's central dashboard installed?")
            text = current.data[LINKS_KEY]
            try:
                changed = change(text)
            except DashboardConfigError as exc:
                raise DashboardConfigError(f"{target.where}: {exc}") from None
            if changed == text:
                return
            try:
                api.write(target.namespace, target.config_map, LINKS_KEY, changed, current.resource_version)
                return
            except Conflict:
                if attempt == self.attempts:
                    raise DashboardConfigError(
                        f"{target.where} kept changing during {self.attempts} attempts to edit it; "
                        "nothing was written, run `pulumi up` again"
                    ) from None
                time.sleep(self._backoff_seconds * attempt)

    def create(self, props: dict[str, Any]) -> CreateResult:
        target = _Props.of(props)
        self._edit(target, lambda text: with_link(text, target.link), must_exist=True)
        return CreateResult(id_=f"{target.where}#{target.link.link}", outs=target.outs())

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        keys = ("namespace", "configMap", "text", "link", "icon")
        changed = [k for k in keys if olds.get(k) != news.get(k)]
        replaces: list[str] = [k for k in ("namespace", "configMap") if k in changed]
        return DiffResult(changes=bool(changed), replaces=replaces, delete_before_replace=True)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        old, new = _Props.of(olds), _Props.of(news)
        self._edit(new, lambda text: with_link(without_link(text, old.link.link), new.link), must_exist=True)
        return UpdateResult(outs=new.outs())

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        target = _Props.of(props)
        self._edit(target, lambda text: without_link(text, target.link.link), must_exist=False)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        """On refresh: gone if our entry was removed; its live text and icon if someone edited them."""
        target = _Props.of(props)
        current = self._api().read(target.namespace, target.config_map)
        live = find_link(current.data[LINKS_KEY], target.link.link) if current and LINKS_KEY in current.data else None
        if live is None:
            return ReadResult(id_="", outs={})
        return ReadResult(id_=id_, outs={**target.outs(), "text": live.get("text"), "icon": live.get("icon"), "link": live.get("link")})


@dataclass(frozen=True)
class DashboardLinkArgs:
    namespace: str
    config_map: str
    link: MenuLink


class DashboardLink(Resource, module="kubeflow", name="DashboardLink"):
    """One entry in Kubeflow's central dashboard menu, added and removed without touching the others."""

    link: pulumi.Output[str]

    def __init__(self, name: str, args: DashboardLinkArgs, opts: pulumi.ResourceOptions | None = None):
        props = _Props(args.namespace, args.config_map, args.link).outs()
        super().__init__(DashboardLinkProvider(), name, props, opts)
