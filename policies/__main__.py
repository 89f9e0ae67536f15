"""Entry point of the policy pack: `pulumi preview --policy-pack policies` runs this file.

Constructing PolicyPack starts the analyzer server and never returns, so this
file only assembles the pack; the policies live in the mlops_policies package.
"""

from pulumi_policy import EnforcementLevel, PolicyPack

from mlops_policies import PACK_NAME, crossguard_policies

PolicyPack(
    name=PACK_NAME,
    policies=crossguard_policies(),
    enforcement_level=EnforcementLevel.ADVISORY,
    description="Credential-leak and data-safety guardrails for the mlops-platform stacks.",
)
