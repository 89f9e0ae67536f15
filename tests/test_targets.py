"""tools/dev/targets.py: a stack-file change previews exactly the resources it adds, removes or declares differently."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tools.dev import targets
from tools.testing.harness import ROOT
from tools.testing.plans import run_with

PROFILE = "kubeflow-user-example-com"
COMPONENT = "mlops:index:KubeflowIntegration"


def kubeflow(profiles: list[str]) -> str:
    return json.dumps({"enabled": True, "profiles": profiles, "kfpAccess": True})


def names(urns: list[str]) -> set[str]:
    return {urn.rsplit("::", 1)[1] for urn in urns}


def test_urns_are_the_engines_own_form(dev):
    urns = targets.engine_urns(dev)
    # A component under the stack: no stack type in front; its children carry the component's type.
    assert f"urn:pulumi:dev::mlops-platform::{COMPONENT}::kubeflow" in urns
    assert f"urn:pulumi:dev::mlops-platform::{COMPONENT}$kubernetes:kubeflow.org/v1alpha1:PodDefault::kubeflow-{PROFILE}-poddefault" in urns
    assert not [urn for urn in urns if "pulumi:pulumi:Stack$" in urn]
    assert len(urns) == len(dev.resources)


def test_an_added_profile_touches_its_own_resources_and_the_shared_ones_it_changes():
    base = run_with("dev", kubeflow=kubeflow([PROFILE, "team-a"]))
    head = run_with("dev", kubeflow=kubeflow([PROFILE, "team-a", "team-b"]))
    touched = targets.touched(base, head)
    per_profile = {name: urn for urn in targets.engine_urns(head) if (name := urn.rsplit("::", 1)[1]).startswith("kubeflow-team-b-")}
    assert per_profile, "the new profile declares resources"
    assert set(per_profile) <= names(touched)
    shared = names(touched) - set(per_profile)
    # Its editor joins the access policy, its MinIO user joins the provisioning Job, its ConfigMap and key Secret.
    assert shared == {"kubeflow-access", "kubeflow-profiles", "kubeflow-profiles-policies", "kubeflow-profiles-keys"}
    assert not [urn for urn in touched if "kubeflow-team-a-" in urn or "kubeflow-kubeflow-user" in urn]


def test_a_removed_profile_targets_what_the_engine_will_delete():
    base = run_with("dev", kubeflow=kubeflow([PROFILE, "team-a"]))
    head = run_with("dev", kubeflow=kubeflow([PROFILE]))
    removed = {urn for urn in targets.touched(base, head) if urn not in targets.engine_urns(head)}
    assert names(removed) == {r for r in names(list(targets.engine_urns(base))) if r.startswith("kubeflow-team-a-")}


def test_an_unchanged_stack_file_targets_nothing(tmp_path: Path, capsys):
    assert targets.main(["--stack", "dev", "--base", str(ROOT / "Pulumi.dev.yaml")]) == 0
    assert capsys.readouterr().out == ""


def test_the_cli_prints_target_flags_from_two_stack_files(tmp_path: Path, capsys):
    document = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())
    document["config"]["mlops-platform:kubeflow"]["profiles"].append("team-new")
    head = tmp_path / "Pulumi.dev.yaml"
    head.write_text(yaml.safe_dump(document))
    assert targets.main(["--stack", "dev", "--base", str(ROOT / "Pulumi.dev.yaml"), "--head", str(head), "--args"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines and all(line.startswith("--target urn:pulumi:dev::mlops-platform::") for line in lines)
    assert f"--target urn:pulumi:dev::mlops-platform::{COMPONENT}$kubernetes:core/v1:Secret::kubeflow-team-new-s3" in lines


def test_invalid_config_on_either_side_exits_2_with_one_line(tmp_path: Path, capsys):
    document = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())
    document["config"]["mlops-platform:kubeflow"]["profiles"] = "not-a-list"
    bad = tmp_path / "Pulumi.dev.yaml"
    bad.write_text(yaml.safe_dump(document))
    assert targets.main(["--stack", "dev", "--base", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "kubeflow" in err and "\n" not in err
