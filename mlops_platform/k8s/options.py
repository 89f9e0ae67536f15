"""Resource options for data: databases, volumes and buckets that must outlive `destroy` and replacement."""

from __future__ import annotations

import pulumi


def stateful(opts: pulumi.ResourceOptions | None, protect: bool) -> pulumi.ResourceOptions:
    """``opts`` plus, when ``protect`` (dataProtection), refusal to delete and retention on the cluster or cloud."""
    return pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(protect=protect, retain_on_delete=protect))
