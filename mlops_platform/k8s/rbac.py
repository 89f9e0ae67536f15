"""Granting a ClusterRole to one ServiceAccount: in one namespace (RoleBinding) or cluster-wide."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s


def _role(name: str) -> k8s.rbac.v1.RoleRefArgs:
    return k8s.rbac.v1.RoleRefArgs(api_group="rbac.authorization.k8s.io", kind="ClusterRole", name=name)


def _account(name: pulumi.Input[str], namespace: str) -> list[k8s.rbac.v1.SubjectArgs]:
    return [k8s.rbac.v1.SubjectArgs(kind="ServiceAccount", name=name, namespace=namespace)]


def bind_in_namespace(
    resource_name: str,
    metadata: k8s.meta.v1.ObjectMetaArgs,
    cluster_role: str,
    account: pulumi.Input[str],
    namespace: str,
    opts: pulumi.ResourceOptions,
) -> k8s.rbac.v1.RoleBinding:
    """The ClusterRole's rights for ``namespace/account`` in the binding's own namespace only."""
    return k8s.rbac.v1.RoleBinding(
        resource_name, metadata=metadata, role_ref=_role(cluster_role), subjects=_account(account, namespace), opts=opts
    )


def bind_cluster_wide(
    resource_name: str,
    metadata: k8s.meta.v1.ObjectMetaArgs,
    cluster_role: str,
    account: pulumi.Input[str],
    namespace: str,
    opts: pulumi.ResourceOptions,
) -> k8s.rbac.v1.ClusterRoleBinding:
    """The ClusterRole's rights for ``namespace/account`` in every namespace."""
    return k8s.rbac.v1.ClusterRoleBinding(
        resource_name, metadata=metadata, role_ref=_role(cluster_role), subjects=_account(account, namespace), opts=opts
    )
