"""`pulumi preview` through the real engine agrees with the offline plan, runs the policy pack, refuses bad config."""

from __future__ import annotations

import pytest
import yaml
from pulumi import automation as auto

from tests.cluster import expect
from tools.testing.harness import run_program


def test_preview_creates_exactly_what_make_plan_lists_with_equal_specs(scratch_engine):
    engine = scratch_engine()
    run = engine.preview()
    plan = run_program("dev")

    assert expect.policy_violations(run, mandatory=True) == []
    creates = {expect.type_and_name(s["urn"]): s for s in run.steps() if s["op"] == "create" and not s["type"].startswith("pulumi:")}
    assert set(creates) == {(r.type, r.name) for r in plan.resources}
    compared = 0
    for resource in plan.resources:
        if resource.is_kubernetes:
            expect.same_object(creates[(resource.type, resource.name)]["inputs"], resource, what=resource.name)
            compared += 1
    assert compared == len(list(plan.manifests())) > 30


def test_a_plaintext_credential_fails_preview_naming_the_resource_and_path_but_not_the_value(scratch_engine):
    leaked = "plaintext-" + "hunter2-value"

    def leaking_program() -> None:
        import pulumi_kubernetes as k8s

        k8s.core.v1.ConfigMap("leaky", metadata={"name": "leaky", "namespace": "default"}, data={"DB_PASSWORD": leaked})

    engine = scratch_engine(pulumi_program=leaking_program)
    with pytest.raises(auto.errors.CommandError) as failure:
        engine.preview()
    text = str(failure.value)
    assert "leaky" in text and "DB_PASSWORD" in text, text[-2000:]
    assert "mandatory" in text.lower()
    assert leaked not in text


def test_invalid_stack_config_fails_preview_with_one_line_before_any_resource(scratch_engine):
    engine = scratch_engine(overrides={"database": {"storageSize": "20Gigs"}})
    events: list = []
    with pytest.raises(auto.errors.CommandError) as failure:
        engine.stack().preview(on_event=events.append, color="never")
    text = str(failure.value)
    line = "mlops-platform:database.storageSize: '20Gigs' is not valid; allowed:"
    errors = {row.split("error: ", 1)[1] for row in text.splitlines() if "error: " in row and "errors" not in row}
    # The inline runner (Automation API) echoes a program's RunError as "an unhandled error occurred: <it>";
    # the CLI's own language host does not. Either way there is one message, on one line.
    messages = {e.removeprefix("an unhandled error occurred: ") for e in errors}
    assert len(messages) == 1 and next(iter(messages)).startswith(line), text[-2000:]
    assert "Traceback" not in text
    registered = [
        e for e in events if getattr(e, "resource_pre_event", None) and not e.resource_pre_event.metadata.type.startswith("pulumi:")
    ]
    assert registered == []


def test_a_stack_leaving_keys_out_previews_with_the_defaults_pulumi_yaml_declares(scratch_engine):
    """The engine checks each stack value against Pulumi.yaml's declared type and requires a declared key that has no default."""
    # kubernetes:enableSecretMutable is left out too (nothing here rotates): the policy pack's keyword rule flags it on the provider.
    left_out = {"kubernetes:enableSecretMutable": None, "namespace": None, "kubernetesVersion": None, "training": None}
    engine = scratch_engine(overrides=left_out)
    assert not {"mlops-platform:namespace", "mlops-platform:training"} & set(
        yaml.safe_load((engine.project_dir / f"Pulumi.{engine.stack_name}.yaml").read_text())["config"]
    )
    run = engine.preview()
    assert expect.policy_violations(run, mandatory=True) == []
    creates = [s for s in run.steps() if s["op"] == "create" and s["type"] == "kubernetes:core/v1:Namespace"]
    assert [s["inputs"]["metadata"]["name"] for s in creates] == ["mlflow"]
