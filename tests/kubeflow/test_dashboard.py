"""The MLflow tab in Kubeflow's central dashboard: a merge that never clobbers other tools' links."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import pytest

from mlops_platform.kubeflow.dashboard import (
    LINKS_KEY,
    ConfigMapData,
    Conflict,
    DashboardConfigError,
    DashboardLinkProvider,
    KubernetesConfigMaps,
    MenuLink,
    find_link,
    with_link,
    without_link,
)
from tools.testing.harness import ROOT

MLFLOW = MenuLink("MLflow", "/mlflow/", "timeline")

# The shape Kubeflow 1.11 ships, plus a link another tool added after install.
KUBEFLOW_LINKS = {
    "menuLinks": [
        {"icon": "book", "link": "/jupyter/", "text": "Notebooks", "type": "item"},
        {
            "icon": "kubeflow:pipeline-centered",
            "items": [{"link": "/pipeline/#/runs", "text": "Runs", "type": "item"}],
            "text": "Pipelines",
            "type": "section",
        },
        {"icon": "assignment", "link": "/model-registry/", "text": "Model Registry", "type": "item"},
    ],
    "externalLinks": [],
    "quickLinks": [{"text": "Upload a pipeline", "desc": "Pipelines", "link": "/pipeline/"}],
    "documentationItems": [{"desc": "The Kubeflow website", "link": "https://www.kubeflow.org/", "text": "Kubeflow Website"}],
}


def links(document: dict) -> str:
    return json.dumps(document, indent=4)


def menu(text: str) -> list[dict]:
    return json.loads(text)["menuLinks"]


# -- the pure merge ----------------------------------------------------------------


def test_adding_keeps_every_existing_link_and_appends_ours():
    merged = json.loads(with_link(links(KUBEFLOW_LINKS), MLFLOW))
    assert merged["menuLinks"] == KUBEFLOW_LINKS["menuLinks"] + [{"type": "item", "link": "/mlflow/", "text": "MLflow", "icon": "timeline"}]
    for key in ("externalLinks", "quickLinks", "documentationItems"):
        assert merged[key] == KUBEFLOW_LINKS[key]


def test_adding_twice_gives_one_entry_and_the_second_time_changes_nothing():
    once = with_link(links(KUBEFLOW_LINKS), MLFLOW)
    assert with_link(once, MLFLOW) is once
    assert [e.get("link") for e in menu(once)].count("/mlflow/") == 1


def test_a_hand_made_entry_for_the_same_page_is_adopted_in_place():
    hand_made = copy.deepcopy(KUBEFLOW_LINKS)
    hand_made["menuLinks"].insert(1, {"type": "item", "link": "/mlflow", "text": "MLFlow", "icon": "device:wifi-tethering"})
    merged = menu(with_link(links(hand_made), MLFLOW))
    assert len(merged) == len(hand_made["menuLinks"])
    assert merged[1] == MLFLOW.entry()


def test_duplicates_left_by_earlier_tools_collapse_into_one():
    doubled = copy.deepcopy(KUBEFLOW_LINKS)
    doubled["menuLinks"] += [MLFLOW.entry(), {"link": "/mlflow/", "text": "old"}]
    merged = menu(with_link(links(doubled), MLFLOW))
    assert merged == KUBEFLOW_LINKS["menuLinks"] + [MLFLOW.entry()]


def test_a_missing_menu_is_created_with_only_our_entry():
    assert json.loads(with_link('{"externalLinks": []}', MLFLOW)) == {"externalLinks": [], "menuLinks": [MLFLOW.entry()]}


def test_removal_removes_only_ours():
    merged = with_link(links(KUBEFLOW_LINKS), MLFLOW)
    assert json.loads(without_link(merged, "/mlflow/")) == KUBEFLOW_LINKS


def test_removal_leaves_links_inside_sections_and_other_tools_alone():
    nested = copy.deepcopy(KUBEFLOW_LINKS)
    nested["menuLinks"][1]["items"].append({"link": "/mlflow/", "text": "someone else's", "type": "item"})
    assert without_link(links(nested), "/mlflow/") == links(nested)


def test_removal_when_absent_changes_nothing():
    text = links(KUBEFLOW_LINKS)
    assert without_link(text, "/mlflow/") is text


def test_text_other_than_ours_survives_byte_for_byte_when_nothing_changes():
    text = '{"menuLinks":[{"type":"item","link":"/mlflow/","text":"MLflow","icon":"timeline"}],  "externalLinks": []}'
    assert with_link(text, MLFLOW) is text


@pytest.mark.parametrize(
    "text, message",
    [
        (
            '{"menuLinks": [',
            "data.links is not valid JSON (Expecting value at line 1 column 16); nothing was changed, fix the ConfigMap first",
        ),
        ("[]", "data.links must be a JSON object, found list; nothing was changed"),
        ('{"menuLinks": {"link": "/jupyter/"}}', "data.links.menuLinks must be a list, found dict; nothing was changed"),
    ],
)
def test_malformed_links_give_one_clear_line_and_no_result(text, message):
    for edit in (lambda: with_link(text, MLFLOW), lambda: without_link(text, "/mlflow/")):
        with pytest.raises(DashboardConfigError) as caught:
            edit()
        assert str(caught.value) == message


# -- the provider, against an in-memory API server ------------------------------------


class FakeConfigMaps:
    """ConfigMaps with resourceVersion semantics; ``writers`` simulate other tools writing between our read and write."""

    def __init__(self, data: dict[str, str] | None):
        self.data = data
        self.version = 1
        self.writes = 0
        self.writers: list = []

    def read(self, namespace: str, name: str) -> ConfigMapData | None:
        assert (namespace, name) == ("kubeflow", "centraldashboard-config")
        return None if self.data is None else ConfigMapData(dict(self.data), str(self.version))

    def write(self, namespace: str, name: str, key: str, value: str, resource_version: str) -> None:
        if self.writers:
            self.writers.pop(0)(self)
        if resource_version != str(self.version):
            raise Conflict("stale")
        self.data = {**self.data, key: value}
        self.version += 1
        self.writes += 1

    def other_tool_adds(self, entry: dict):
        def write(cm: FakeConfigMaps) -> None:
            document = json.loads(cm.data[LINKS_KEY])
            document["menuLinks"].append(entry)
            cm.data = {**cm.data, LINKS_KEY: json.dumps(document)}
            cm.version += 1

        return write


PROPS = {
    "namespace": "kubeflow",
    "configMap": "centraldashboard-config",
    "text": "MLflow",
    "link": "/mlflow/",
    "icon": "timeline",
    "__provider": "...",
}
KATIB = {"type": "item", "link": "/katib/", "text": "Katib", "icon": "kubeflow:katib"}


def cluster() -> FakeConfigMaps:
    return FakeConfigMaps({LINKS_KEY: links(KUBEFLOW_LINKS), "settings": '{"DASHBOARD_FORCE_IFRAME": true}'})


def provider(cm: FakeConfigMaps) -> DashboardLinkProvider:
    return DashboardLinkProvider(cm, backoff_seconds=0)


def test_create_adds_our_entry_and_leaves_other_keys_alone():
    cm = cluster()
    result = provider(cm).create(dict(PROPS))
    assert menu(cm.data[LINKS_KEY])[-1] == MLFLOW.entry()
    assert cm.data["settings"] == '{"DASHBOARD_FORCE_IFRAME": true}'
    assert result.id == "kubeflow/centraldashboard-config#/mlflow/"
    assert "__provider" not in result.outs and result.outs["link"] == "/mlflow/"


def test_a_second_create_writes_nothing():
    cm = cluster()
    provider(cm).create(dict(PROPS))
    provider(cm).create(dict(PROPS))
    assert cm.writes == 1
    assert [e.get("link") for e in menu(cm.data[LINKS_KEY])].count("/mlflow/") == 1


def test_delete_removes_only_ours_even_after_other_tools_added_links():
    cm = cluster()
    p = provider(cm)
    p.create(dict(PROPS))
    cm.other_tool_adds(KATIB)(cm)
    p.delete("id", dict(PROPS))
    assert menu(cm.data[LINKS_KEY]) == KUBEFLOW_LINKS["menuLinks"] + [KATIB]


def test_a_concurrent_writer_is_not_overwritten():
    cm = cluster()
    cm.writers = [cm.other_tool_adds(KATIB)]
    provider(cm).create(dict(PROPS))
    assert menu(cm.data[LINKS_KEY])[-2:] == [KATIB, MLFLOW.entry()]


def test_retries_are_bounded_and_end_in_one_line():
    cm = cluster()
    cm.writers = [cm.other_tool_adds({"link": f"/tool-{i}/"}) for i in range(DashboardLinkProvider.attempts)]
    with pytest.raises(DashboardConfigError) as caught:
        provider(cm).create(dict(PROPS))
    assert (
        str(caught.value)
        == "kubeflow/centraldashboard-config kept changing during 5 attempts to edit it; nothing was written, run `pulumi up` again"
    )
    assert cm.writes == 0 and not cm.writers


def test_create_without_the_dashboard_fails_clearly():
    for cm, what in ((FakeConfigMaps(None), "does not exist"), (FakeConfigMaps({"settings": "{}"}), "has no data.links")):
        with pytest.raises(DashboardConfigError) as caught:
            provider(cm).create(dict(PROPS))
        assert str(caught.value) == f"kubeflow/centraldashboard-config {what}; is Kubeflow's central dashboard installed?"


def test_delete_after_kubeflow_is_gone_succeeds_and_writes_nothing():
    gone = FakeConfigMaps(None)
    provider(gone).delete("id", dict(PROPS))
    assert (gone.data, gone.writes) == (None, 0)


def test_malformed_links_in_the_cluster_are_reported_and_left_untouched():
    cm = FakeConfigMaps({LINKS_KEY: "{not json"})
    with pytest.raises(DashboardConfigError) as caught:
        provider(cm).create(dict(PROPS))
    assert str(caught.value).startswith("kubeflow/centraldashboard-config: data.links is not valid JSON")
    assert cm.data == {LINKS_KEY: "{not json"} and cm.writes == 0


def test_update_moves_our_entry_when_the_path_prefix_changes():
    cm = cluster()
    p = provider(cm)
    p.create(dict(PROPS))
    news = {**PROPS, "link": "/tracking/"}
    assert p.diff("id", PROPS, news).changes and not p.diff("id", PROPS, news).replaces
    p.update("id", PROPS, news)
    links_now = [e.get("link") for e in menu(cm.data[LINKS_KEY])]
    assert "/mlflow/" not in links_now and links_now.count("/tracking/") == 1


def test_moving_to_another_config_map_replaces_and_unchanged_props_do_nothing():
    p = provider(cluster())
    assert p.diff("id", PROPS, {**PROPS, "namespace": "kf"}).replaces == ["namespace"]
    assert not p.diff("id", PROPS, dict(PROPS)).changes


def test_refresh_sees_a_removed_or_edited_entry():
    cm = cluster()
    p = provider(cm)
    p.create(dict(PROPS))
    edited = json.loads(cm.data[LINKS_KEY])
    edited["menuLinks"][-1]["text"] = "Experiments"
    cm.data = {**cm.data, LINKS_KEY: json.dumps(edited)}
    assert p.read("id", dict(PROPS)).outs["text"] == "Experiments"
    p.delete("id", dict(PROPS))
    assert p.read("id", dict(PROPS)).id == ""
    assert find_link(cm.data[LINKS_KEY], "/mlflow/") is None


# -- the real client adapter, without a cluster --------------------------------------------


class FakeCoreV1:
    def __init__(self, status: int | None = None):
        self.status = status
        self.patches: list[tuple] = []

    def read_namespaced_config_map(self, name, namespace):
        from kubernetes.client import V1ConfigMap, V1ObjectMeta
        from kubernetes.client.exceptions import ApiException

        if self.status:
            raise ApiException(status=self.status)
        return V1ConfigMap(data={LINKS_KEY: "{}"}, metadata=V1ObjectMeta(name=name, namespace=namespace, resource_version="42"))

    def patch_namespaced_config_map(self, name, namespace, body, **kwargs):
        from kubernetes.client.exceptions import ApiException

        if self.status:
            raise ApiException(status=self.status)
        self.patches.append((name, namespace, body, kwargs))


def adapter(core: FakeCoreV1) -> KubernetesConfigMaps:
    api = KubernetesConfigMaps.__new__(KubernetesConfigMaps)
    api._core = core
    return api


def test_adapter_writes_one_key_by_merge_patch_guarded_by_resource_version():
    core = FakeCoreV1()
    api = adapter(core)
    assert api.read("kubeflow", "centraldashboard-config") == ConfigMapData({LINKS_KEY: "{}"}, "42")
    api.write("kubeflow", "centraldashboard-config", LINKS_KEY, "{}", "42")
    assert core.patches == [
        (
            "centraldashboard-config",
            "kubeflow",
            {"metadata": {"resourceVersion": "42"}, "data": {LINKS_KEY: "{}"}},
            {"_content_type": "application/merge-patch+json"},
        )
    ]


def test_adapter_maps_not_found_and_conflict():
    assert adapter(FakeCoreV1(404)).read("kubeflow", "centraldashboard-config") is None
    with pytest.raises(Conflict):
        adapter(FakeCoreV1(409)).write("kubeflow", "centraldashboard-config", LINKS_KEY, "{}", "41")


def test_adapter_uses_the_stacks_kubeconfig_and_context(tmp_path):
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": c, "cluster": {"server": f"https://{c}.example:6443"}} for c in ("dev", "prod")],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": c, "context": {"cluster": c, "user": "u"}} for c in ("dev", "prod")],
        "current-context": "dev",
    }
    path = tmp_path / "kubeconfig"
    path.write_text(json.dumps(kubeconfig))
    for source in (str(path), json.dumps(kubeconfig)):
        api = KubernetesConfigMaps(source, "prod")
        assert api._core.api_client.configuration.host == "https://prod.example:6443"


# -- as the Pulumi engine runs it ------------------------------------------------------------


def test_the_serialized_provider_loads_in_a_fresh_interpreter_in_the_project_directory():
    """The engine stores the provider (dill) and loads it in its own process started in the project directory."""
    from pulumi.dynamic.dynamic import serialize_provider

    blob = serialize_provider(DashboardLinkProvider())
    code = (
        "import base64, sys, dill; p = dill.loads(base64.b64decode(sys.stdin.read())); "
        "print(type(p).__module__, type(p).__name__, p.attempts, p._config_maps)"
    )
    result = subprocess.run([sys.executable, "-c", code], input=blob, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["mlops_platform.kubeflow.dashboard", "DashboardLinkProvider", "5", "None"]
