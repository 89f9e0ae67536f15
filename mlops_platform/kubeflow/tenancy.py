"""Teams see only their own: one MLflow workspace per Kubeflow profile, authorized by Kubernetes RBAC.

The tracking server runs Kubeflow's ``kubernetes`` workspace provider and ``kubernetes-auth``
app (mlflow-kubernetes-plugins) in SelfSubjectAccessReview mode: every request carries a
bearer token, and the API server says whether its owner may act on ``mlflow.kubeflow.org``
resources in the workspace's namespace. Declared here:

- the profile label that makes a namespace a workspace (the provider lists only those);
- ClusterRoles for the ``mlflow.kubeflow.org`` resources, aggregated into Kubeflow's
  ``kubeflow-edit`` and ``kubeflow-view``: a profile's contributors get access through the
  RoleBindings Kubeflow already makes, with no per-user object;
- the notebook ServiceAccount's rights in its own profile (explicit, not only through aggregation);
- the registry reader's ClusterRole, which each serving namespace's reader is bound to (serving/stack.py).
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from mlops_platform.contracts import REGISTRY_READER_ROLE, TENANCY_COMPONENT, WORKSPACE_LABEL
from mlops_platform.k8s import naming, rbac

COMPONENT = TENANCY_COMPONENT
GROUP = "mlflow.kubeflow.org"
# Kubeflow's kubeflow-roles (kubeflow/manifests common/kubeflow-roles): kubeflow-edit and kubeflow-view select these.
AGGREGATE_TO_EDIT = "rbac.authorization.kubeflow.org/aggregate-to-kubeflow-edit"
AGGREGATE_TO_VIEW = "rbac.authorization.kubeflow.org/aggregate-to-kubeflow-view"
EDIT_ROLE = "mlflow-kubeflow-edit"
VIEW_ROLE = "mlflow-kubeflow-view"
NOTEBOOK_BINDING = "mlflow-notebook"
FIELD_MANAGER = "mlops-platform-tenancy"

# The plugin's resources (docs/kubernetes-rbac.md of kubeflow/mlflow-integration).
RESOURCES = (
    "experiments",
    "datasets",
    "registeredmodels",
    "assistants",
    "mcpservers",
    "skills",
    "gatewaysecrets",
    "gatewayendpoints",
    "gatewayguardrails",
    "gatewaybudgets",
    "gatewaymodeldefinitions",
)
USE_SUBRESOURCES = ("gatewaysecrets/use", "gatewayendpoints/use", "gatewaymodeldefinitions/use")
READ = ["get", "list"]
WRITE = ["get", "list", "create", "update", "delete"]


def _rule(resources: list[str], verbs: list[str]) -> k8s.rbac.v1.PolicyRuleArgs:
    return k8s.rbac.v1.PolicyRuleArgs(api_groups=[GROUP], resources=resources, verbs=verbs)


def cluster_roles(instance: str, opts: pulumi.ResourceOptions) -> None:
    """Edit and view of every MLflow resource, aggregated into Kubeflow's roles; and the registry reader."""

    def role(name: str, rules: list[k8s.rbac.v1.PolicyRuleArgs], aggregate_to: str | None) -> None:
        k8s.rbac.v1.ClusterRole(
            f"{instance}-{name}",
            metadata=naming.metadata(
                name, component=COMPONENT, instance=instance, extra_labels={aggregate_to: "true"} if aggregate_to else None
            ),
            rules=rules,
            opts=opts,
        )

    role(EDIT_ROLE, [_rule(list(RESOURCES), WRITE), _rule(list(USE_SUBRESOURCES), ["create"])], AGGREGATE_TO_EDIT)
    role(VIEW_ROLE, [_rule(list(RESOURCES), READ)], AGGREGATE_TO_VIEW)
    # Reading experiments too: the gates read the pinned version's MLmodel through the artifact proxy, which the
    # plugin authorizes as a read of the experiment the artifact belongs to (KServe downloads those files anyway).
    role(REGISTRY_READER_ROLE, [_rule(["registeredmodels", "experiments"], READ)], None)


def workspace(instance: str, namespace: str, notebook_account: str, opts: pulumi.ResourceOptions) -> None:
    """A profile becomes a workspace: the label the provider selects on, and its notebooks' rights in it."""
    k8s.core.v1.NamespacePatch(
        f"{instance}-{namespace}-workspace",
        metadata=k8s.meta.v1.ObjectMetaPatchArgs(
            name=namespace,
            labels={WORKSPACE_LABEL: "true"},
            annotations={"pulumi.com/patchFieldManager": FIELD_MANAGER},
        ),
        opts=opts,
    )
    rbac.bind_in_namespace(
        f"{instance}-{namespace}-notebook",
        naming.metadata(NOTEBOOK_BINDING, namespace, component=COMPONENT, instance=instance),
        EDIT_ROLE,
        notebook_account,
        namespace,
        opts,
    )
