"""The mlops-platform policy engine: one set of policies, two front ends.

- CrossGuard (``pulumi preview --policy-pack policies``): :func:`crossguard_policies`.
- Offline audit of recorded resources or a stack export: :func:`audit_resources`, ``tools/operator/audit.py``.

Importing this package never starts the policy server; only ``policies/__main__.py`` does.
"""

from .audit import AuditError, Violation, audit_resources, records_from_export
from .checks import POLICIES
from .config import ConfigError
from .crossguard import PACK_NAME, crossguard_policies

__all__ = [
    "POLICIES",
    "PACK_NAME",
    "AuditError",
    "ConfigError",
    "Violation",
    "audit_resources",
    "crossguard_policies",
    "records_from_export",
]
