"""What each stack needs of the cluster, and how a missing piece is reported; the real API server's answers are in
tests/cluster/test_preflight.py, these are the decisions made from them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mlops_platform.preflight import KSERVE, KUBEFLOW, MONITORING, NeedsStorageClass, PreflightError, check, needs
from tools.testing.harness import stack_config
from tools.testing.plans import config


def classes(wanted) -> list[tuple[str, str]]:
    return [(n.name, n.key) for n in wanted if isinstance(n, NeedsStorageClass)]


def test_dev_needs_kubeflows_and_the_prometheus_operators_kinds_and_microk8s_hostpath():
    wanted = needs(config("dev"))
    assert [n for n in wanted if not isinstance(n, NeedsStorageClass)] == [KUBEFLOW, MONITORING]
    assert classes(wanted) == [("microk8s-hostpath", "database.storageClass"), ("microk8s-hostpath", "artifacts.minio.storageClass")]


def test_prod_needs_gp3_for_postgresql_its_dumps_and_the_servers_scratch_and_no_crd():
    wanted = needs(config("prod"))
    assert classes(wanted) == [("gp3", "database.storageClass"), ("gp3", "tracking.scratch.storageClass")]
    rds = needs(
        config(
            "prod",
            database={"mode": "rds", "rds": {"subnetGroupName": "db", "securityGroupIds": ["sg-0123456789abcdef0"]}},
        )
    )
    assert classes(rds) == [("gp3", "tracking.scratch.storageClass"), ("gp3", "database.mode")]


def test_serving_models_need_kserve_unless_the_stack_installs_it():
    model = {"name": "m", "namespace": "kubeflow-user-example-com", "storageUri": "s3://mlflow-artifacts/dev/m/"}
    serving = {"enabled": True, "namespaces": ["kubeflow-user-example-com"], "models": [model]}
    assert KSERVE in needs(config("dev", serving=serving))
    assert KSERVE not in needs(config("dev"))
    assert KSERVE not in needs(config("prod", serving={**serving, "installKserve": True, "namespaces": ["models"]}))


class FakeCluster:
    """What an API server answers preflight's reads with: served group/versions and kinds, StorageClasses, the authorizer."""

    server = "https://fake"

    def __init__(self, kinds: set[tuple[str, str]] = frozenset(), classes: set[str] = frozenset(), allow_all: bool | None = False):
        self.kinds, self.classes, self.allow_all = set(kinds), set(classes), allow_all
        self.forbidden: set[str] = set()

    def get(self, path: str) -> tuple[int, Any]:
        if path in self.forbidden:
            return 403, None
        if path == "/version":
            return 200, {"gitVersion": "v1.34.4"}
        if path.startswith("/apis/storage.k8s.io/v1/storageclasses/"):
            return (200, {}) if path.rsplit("/", 1)[1] in self.classes else (404, None)
        group_version = path.removeprefix("/apis/")
        served = [kind for gv, kind in self.kinds if gv == group_version]
        return (200, {"resources": [{"kind": k} for k in served]}) if served else (404, None)

    def allows_nobody(self) -> bool | None:
        return self.allow_all


ALL_KINDS = {(f"{k.group}/{k.version}", k.kind) for need in (KUBEFLOW, MONITORING, KSERVE) for k in need.kinds}


def run_check(config, cluster: FakeCluster) -> tuple[list[str], list[str]]:
    warnings: list[str] = []
    infos: list[str] = []
    check(config, lambda: cluster, warn=warnings.append, info=infos.append)
    return warnings, infos


def test_a_missing_crd_is_one_line_naming_every_missing_kind_and_the_key():
    with pytest.raises(PreflightError) as caught:
        run_check(config("dev"), FakeCluster(kinds={("kubeflow.org/v1alpha1", "PodDefault")}))
    message = str(caught.value)
    assert "\n" not in message
    assert message == (
        "mlops-platform:kubeflow.enabled: the cluster serves no VirtualService (networking.istio.io/v1), "
        "AuthorizationPolicy (security.istio.io/v1), Sidecar (networking.istio.io/v1), which Kubeflow (its PodDefault webhook) "
        "and Istio define; allowed: Kubeflow installed from kubeflow/manifests, or kubeflow.enabled false"
    )


def test_a_missing_storage_class_names_the_claim_and_the_key_that_chooses_it():
    with pytest.raises(PreflightError, match=r"^mlops-platform:database.storageClass: the cluster has no StorageClass microk8s-hostpath, "):
        run_check(config("dev"), FakeCluster(kinds=ALL_KINDS))


def test_an_allow_all_authorizer_is_refused_with_workspaces_and_accepted_without():
    cluster = FakeCluster(kinds=ALL_KINDS, classes={"microk8s-hostpath"}, allow_all=True)
    with pytest.raises(PreflightError, match=r"^mlops-platform:kubeflow.workspaces: .*allowed: `microk8s enable rbac`"):
        run_check(config("dev"), cluster)
    kubeflow = json.loads(stack_config("dev")[0]["mlops-platform:kubeflow"])
    warnings, infos = run_check(config("dev", kubeflow={**kubeflow, "workspaces": False}), cluster)
    assert warnings == [] and infos[0].startswith("preflight: https://fake has what the stack needs (PodDefault")


def test_what_cannot_be_asked_or_reached_is_a_warning_not_a_pass_in_silence():
    cluster = FakeCluster(kinds=ALL_KINDS, classes={"microk8s-hostpath"}, allow_all=None)
    cluster.forbidden.add("/apis/storage.k8s.io/v1/storageclasses/microk8s-hostpath")
    warnings, _ = run_check(config("dev"), cluster)
    assert len(warnings) == 1
    assert "StorageClass microk8s-hostpath (HTTP 403)" in warnings[0] and "whether the authorizer can refuse" in warnings[0]

    def unreachable():
        raise ConnectionRefusedError("[Errno 111] Connection refused")

    warned: list[str] = []
    check(config("dev"), unreachable, warn=warned.append, info=lambda _: None)
    assert warned == [
        "preflight: cannot reach the cluster ([Errno 111] Connection refused): CRDs, StorageClasses and the authorizer were not checked"
    ]


def test_under_the_mock_engine_nothing_is_checked_and_the_log_says_so(dev):
    skipped = "preflight: skipped under Pulumi's mock engine (no cluster): CRDs, StorageClasses and the authorizer unchecked"
    assert ("info", skipped) in dev.logs
