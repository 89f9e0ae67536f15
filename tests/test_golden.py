"""Golden renders: any change to what dev or prod declares shows up as a reviewed diff of tests/golden/."""

from __future__ import annotations

import pytest

from tools.dev import golden
from tools.testing.plans import generated_secrets


@pytest.mark.parametrize("stack", golden.STACKS)
def test_render_equals_the_committed_golden_files(stack, request):
    found = golden.differences(stack, golden.render(request.getfixturevalue(stack)))
    if found:
        pytest.fail("\n\n".join(found) + f"\n\nIf the change is intended, regenerate and commit: {golden.REGENERATE}", pytrace=False)


@pytest.mark.parametrize("stack", golden.STACKS)
def test_committed_golden_files_hold_no_generated_secret(stack, request):
    secrets = generated_secrets(request.getfixturevalue(stack))
    assert secrets
    for path in sorted((golden.GOLDEN / stack).iterdir()):
        assert not [s for s in secrets if s in path.read_text()], f"{path.name} holds a secret value"


def test_a_changed_missing_extra_or_renamed_file_is_reported_with_a_diff(dev, tmp_path):
    rendered = golden.render(dev)
    golden.write("dev", rendered, tmp_path)
    deployment = "deployment-mlflow-mlflow.yaml"
    (job,) = [name for name in rendered if name.startswith("job-mlflow-mlflow-bootstrap-")]
    changed = dict(rendered, **{deployment: rendered[deployment].replace("replicas: 1", "replicas: 3")})
    changed["job-mlflow-mlflow-bootstrap-0123456789.yaml"] = changed.pop(job).replace("backoffLimit: 6", "backoffLimit: 7")
    del changed["resources.txt"]
    changed["configmap-mlflow-new.yaml"] = "kind: ConfigMap\n"
    found = golden.differences("dev", changed, tmp_path)
    assert [f.split("\n")[0] for f in found] == [
        f"missing: {tmp_path}/dev/configmap-mlflow-new.yaml (declared, not committed)",
        f"changed: {tmp_path}/dev/{deployment}",
        f"renamed: {tmp_path}/dev/{job} -> job-mlflow-mlflow-bootstrap-0123456789.yaml",
        f"extra: {tmp_path}/dev/resources.txt (committed, no longer declared)",
    ]
    assert "-  replicas: 1\n+  replicas: 3" in found[1]
    assert "-  backoffLimit: 6\n+  backoffLimit: 7" in found[2]


def test_file_names_do_not_depend_on_declaration_order(dev):
    shuffled = type(dev)(stack=dev.stack, resources=list(reversed(dev.resources)), outputs=dev.outputs)
    assert golden.render(shuffled) == golden.render(dev)


def test_every_resource_is_listed_with_its_options(prod):
    lines = golden.render(prod)["resources.txt"].splitlines()
    assert len(lines) == len(prod.resources) and lines == sorted(lines)
    assert "aws:s3/bucket:Bucket mlflow-artifacts mlflow protect retain" in lines
