"""`make audit` over a real `pulumi stack export` of the deployed dev stack: the state the engine wrote holds no leak."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mlops_policies import POLICIES
from mlops_policies.walk import SECRET_SIG, SIG_KEY
from tests.cluster.conftest import ROOT


def _secret_values(document: object) -> list[str]:
    """Every plaintext a `--show-secrets` export holds under Pulumi's secret marker."""
    found: list[str] = []
    if isinstance(document, dict):
        if document.get(SIG_KEY) == SECRET_SIG and isinstance(document.get("plaintext"), str):
            value = json.loads(document["plaintext"])
            found += [value] if isinstance(value, str) else [v for v in _strings(value)]
        else:
            found += [v for child in document.values() for v in _secret_values(child)]
    elif isinstance(document, list):
        found += [v for child in document for v in _secret_values(child)]
    return found


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


@pytest.mark.parametrize("show_secrets", [False, True], ids=["ciphertext", "show-secrets"])
def test_make_audit_finds_nothing_in_the_deployed_stacks_export(deployment, tmp_path: Path, show_secrets: bool) -> None:
    deployment.ensure_up()
    export = tmp_path / "dev.json"
    deployment.engine.cli("stack", "export", "--file", str(export), *(["--show-secrets"] if show_secrets else []))
    document = json.loads(export.read_text())
    resources = document["deployment"]["resources"]
    assert len(resources) > 40 and any(r["type"] == "kubernetes:core/v1:Secret" for r in resources)

    result = subprocess.run(["make", "-s", "audit", f"STATE={export}"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    policies = {spec.name for spec in POLICIES}
    assert result.returncode == 0, result.stdout + result.stderr
    assert [line for line in result.stdout.splitlines() if line.split(" ", 1)[0] in policies] == []
    assert result.stderr.endswith(f"audit: {len(resources)} resources, 0 violations, 0 mandatory\n"), result.stderr
    if show_secrets:
        # The export really holds the generated credentials, and the audit printed none of them.
        secrets = [s for s in _secret_values(document) if len(s) >= 12]
        assert secrets
        assert not [s for s in secrets if s in result.stdout + result.stderr]


def test_a_leak_written_into_the_exported_state_is_found(deployment, tmp_path: Path) -> None:
    """The same export with one Deployment's env given a literal password: the audit names it, without the value."""
    deployment.ensure_up()
    export = tmp_path / "dev.json"
    deployment.engine.cli("stack", "export", "--file", str(export))
    document = json.loads(export.read_text())
    mlflow = next(
        r
        for r in document["deployment"]["resources"]
        if r["type"] == "kubernetes:apps/v1:Deployment" and r["inputs"]["metadata"]["name"] == "mlflow"
    )
    leaked = "Tq8vNz3Lw5Rk2Xp7Hm4J"
    mlflow["inputs"]["spec"]["template"]["spec"]["containers"][0]["env"].append({"name": "MLFLOW_TRACKING_PASSWORD", "value": leaked})
    export.write_text(json.dumps(document))
    result = subprocess.run(
        [sys.executable, "-m", "tools.operator.audit", str(export)], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 1
    assert "spec.template.spec.containers[0].env[" in result.stdout and "Secret Keyword [detect-secrets:KeywordDetector]" in result.stdout
    assert leaked not in result.stdout + result.stderr
