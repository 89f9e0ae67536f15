"""The GitHub workflows: offline lint, and the promises docs/ci.md makes about them."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
LINT = ROOT / "tools" / "dev" / "lint_workflows.sh"
LINT_VENV = Path(os.environ.get("LINT_VENV", ROOT / ".venv-lint"))
USES = re.compile(r"^(?P<action>[\w.-]+/[\w.-]+)@(?P<ref>\S+)$")
SHA = re.compile(r"^[0-9a-f]{40}$")
CONTEXT_NAME = re.compile(r"\b(secrets|vars)\.([A-Za-z_][A-Za-z0-9_]*)")


def load(name: str) -> dict:
    wf = yaml.safe_load((WORKFLOWS / name).read_text())
    # YAML 1.1 reads the key `on` as True.
    wf["on"] = wf.pop(True, wf.get("on"))
    return wf


PREVIEW = load("preview.yml")
DEPLOY = load("deploy.yml")
DRIFT = load("drift.yml")
ALL = {"preview.yml": PREVIEW, "deploy.yml": DEPLOY, "drift.yml": DRIFT}


def steps(wf: dict) -> Iterator[tuple[str, dict]]:
    for job_id, job in wf["jobs"].items():
        for step in job.get("steps", []):
            yield job_id, step


def pulumi_steps(job: dict) -> list[dict]:
    return [s for s in job["steps"] if s.get("uses", "").startswith("pulumi/actions@")]


def walk(value: Any, path: tuple = ()) -> Iterator[tuple[tuple, str]]:
    """Every string in a parsed workflow, with its path of keys and indexes."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from walk(v, path + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from walk(v, path + (i,))


def run_lint(workflow_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(LINT), str(workflow_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "LINT_VENV": str(LINT_VENV)},
    )


lint_tools = pytest.mark.skipif(
    not all((LINT_VENV / "bin" / t).exists() for t in ("zizmor", "check-jsonschema")),
    reason=f"{LINT_VENV} has no zizmor/check-jsonschema: `make lint-venv` installs them",
)


# --- the linter ------------------------------------------------------------


@lint_tools
def test_workflows_lint_clean_offline():
    result = run_lint(WORKFLOWS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No findings" in result.stdout + result.stderr
    assert "ok -- validation done" in result.stdout


# Each mutation of preview.yml (regex, replacement) must make the linter fail,
# for the reason named.
MUTATIONS = {
    "template-injection": (
        r"(?m)^        run: make test$",
        '        run: echo "${{ github.event.pull_request.title }}" && make test',
        "template-injection",
    ),
    "unpinned-action": (
        r"actions/setup-python@[0-9a-f]{40} # v[\d.]+",
        "actions/setup-python@v7",
        "unpinned-uses",
    ),
    "pull_request_target": (
        r"(?m)^  pull_request:$",
        "  pull_request_target:",
        "dangerous-triggers",
    ),
    "schema": (
        r"(?m)^    runs-on: ubuntu-24.04$",
        "    runs-on: ubuntu-24.04\n    timeout: 5",
        "Schema validation errors",
    ),
}


@lint_tools
@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_lint_fails_on_a_broken_workflow(tmp_path, name):
    pattern, replacement, finding = MUTATIONS[name]
    text = (WORKFLOWS / "preview.yml").read_text()
    broken, n = re.subn(pattern, lambda _: replacement, text, count=1)
    assert n == 1, f"mutation {name!r} no longer applies to preview.yml"
    # zizmor collects workflows by their .github/workflows location.
    target = tmp_path / ".github" / "workflows"
    target.mkdir(parents=True)
    (target / "preview.yml").write_text(broken)
    shutil.copy(WORKFLOWS / "deploy.yml", target / "deploy.yml")
    result = run_lint(target)
    assert result.returncode != 0, result.stdout + result.stderr
    assert finding in result.stdout + result.stderr


# --- structure -------------------------------------------------------------


def test_triggers():
    assert set(PREVIEW["on"]) == {"pull_request"}
    assert set(DEPLOY["on"]) == {"push"}
    assert DEPLOY["on"]["push"]["branches"] == ["main"]
    assert set(DRIFT["on"]) == {"schedule", "workflow_dispatch"}


EXPECTED_PERMISSIONS = {
    ("preview.yml", "test"): {"contents": "read"},
    ("preview.yml", "preview"): {"contents": "read", "pull-requests": "write", "id-token": "write"},
    ("deploy.yml", "test"): {"contents": "read"},
    ("deploy.yml", "up-dev"): {"contents": "read", "id-token": "write"},
    ("deploy.yml", "up-prod"): {"contents": "read", "id-token": "write"},
    ("drift.yml", "drift"): {"contents": "read", "id-token": "write", "issues": "write"},
}


def test_permissions_are_least_privilege():
    for name, wf in ALL.items():
        assert wf["permissions"] == {}, f"{name}: the workflow default must grant nothing"
    jobs = {(name, job_id): job for name, wf in ALL.items() for job_id, job in wf["jobs"].items()}
    assert set(jobs) == set(EXPECTED_PERMISSIONS)
    for key, job in jobs.items():
        assert job["permissions"] == EXPECTED_PERMISSIONS[key], key


def test_jobs_have_a_runner_and_a_timeout():
    for name, wf in ALL.items():
        for job_id, job in wf["jobs"].items():
            # The end-to-end test expects the PostgreSQL of ubuntu-24.04.
            assert job["runs-on"] == "ubuntu-24.04", (name, job_id)
            assert 0 < job["timeout-minutes"] <= 90, (name, job_id)


def test_actions_are_pinned_to_a_commit_with_its_version_named():
    pins: dict[str, set[str]] = {}
    for name in ALL:
        for line in (WORKFLOWS / name).read_text().splitlines():
            if "uses:" not in line:
                continue
            ref, _, comment = line.split("uses:", 1)[1].partition("#")
            m = USES.match(ref.strip())
            assert m, line
            assert SHA.match(m["ref"]), f"{name}: {line.strip()} is not pinned to a full commit SHA"
            assert re.fullmatch(r"v\d+\.\d+\.\d+", comment.strip()), f"{name}: {line.strip()} names no exact version"
            pins.setdefault(m["action"], set()).add(f"{m['ref']} {comment.strip()}")
    assert all(len(p) == 1 for p in pins.values()), f"one pin per action across both workflows: {pins}"
    assert {"actions/checkout", "actions/setup-python", "aws-actions/configure-aws-credentials", "pulumi/actions"} <= set(pins)


def test_checkout_never_persists_credentials():
    checkouts = [s for wf in ALL.values() for _, s in steps(wf) if s.get("uses", "").startswith("actions/checkout@")]
    assert len(checkouts) == sum(len(wf["jobs"]) for wf in ALL.values()), "one checkout per job"
    assert all(s["with"]["persist-credentials"] is False for s in checkouts)


def test_run_scripts_expand_no_expressions():
    """Values reach scripts through env, so no secret or PR text is ever spliced into shell code."""
    for name, wf in ALL.items():
        for job_id, step in steps(wf):
            if "run" in step:
                assert "${{" not in step["run"], f"{name}/{job_id}: {step.get('name', step['run'][:40])}"


def test_secrets_are_only_read_into_step_env():
    for name, wf in ALL.items():
        for path, text in walk(wf):
            if "secrets." in text:
                assert len(path) == 6 and (path[0], path[2], path[4]) == ("jobs", "steps", "env"), (name, path)


def test_aws_access_is_oidc_only():
    aws = [(n, s) for n, wf in ALL.items() for _, s in steps(wf) if s.get("uses", "").startswith("aws-actions/configure-aws-credentials@")]
    assert len(aws) == 4
    for name, step in aws:
        assert set(step["with"]) == {"role-to-assume", "aws-region", "role-session-name"}, name
        assert re.fullmatch(r"\$\{\{ vars\.AWS_\w+_ROLE_ARN \}\}", step["with"]["role-to-assume"]), name
    for name in ALL:
        assert "AWS_SECRET_ACCESS_KEY" not in (WORKFLOWS / name).read_text(), name
    prod_role = [s for s in DEPLOY["jobs"]["up-prod"]["steps"] if "role-to-assume" in s.get("with", {})]
    assert prod_role[0]["with"]["role-to-assume"] == "${{ vars.AWS_PROD_ROLE_ARN }}"
    assert "if" not in prod_role[0], "prod always assumes its role"


def test_every_pulumi_step_is_pinned_configurable_and_enforces_the_policy_pack():
    requirements = (ROOT / "requirements.txt").read_text()
    sdk = re.search(r"^pulumi==(\S+)$", requirements, re.M)[1]
    jobs = [PREVIEW["jobs"]["preview"], DEPLOY["jobs"]["up-dev"], DEPLOY["jobs"]["up-prod"]]
    for wf in ALL.values():
        assert wf["env"]["PULUMI_VERSION"] == sdk, "CLI version must equal the pulumi SDK pin"
    for step in (s for job in jobs for s in pulumi_steps(job)):
        w = step["with"]
        assert w["policyPacks"] == "policies"
        assert w["pulumi-version"] == "${{ env.PULUMI_VERSION }}"
        assert w["cloud-url"] == "${{ vars.PULUMI_BACKEND_URL }}"
        assert step["env"] == {
            "KUBECONFIG": "${{ runner.temp }}/kubeconfig",
            "PULUMI_ACCESS_TOKEN": "${{ secrets.PULUMI_ACCESS_TOKEN }}",
            "PULUMI_CONFIG_PASSPHRASE": "${{ secrets.PULUMI_CONFIG_PASSPHRASE }}",
        }
    assert (ROOT / "policies" / "PulumiPolicy.yaml").exists(), "the workflows run --policy-pack policies"


def test_preview_tests_every_pr_and_previews_both_stacks_on_same_repo_prs():
    test, preview = PREVIEW["jobs"]["test"], PREVIEW["jobs"]["preview"]
    assert "if" not in test, "fork PRs are still tested"
    assert [s["run"] for s in test["steps"] if "run" in s][-1] == "make test"
    assert preview["needs"] == "test"
    assert preview["if"] == "github.event.pull_request.head.repo.full_name == github.repository"
    assert preview["strategy"]["matrix"]["stack"] == ["dev", "prod"]
    assert preview["strategy"]["fail-fast"] is False
    (step,) = pulumi_steps(preview)
    assert step["with"]["command"] == "preview"
    assert step["with"]["stack-name"] == "${{ matrix.stack }}"
    assert step["with"]["comment-on-pr"] is True
    assert "environment" not in preview, "previews must never wait for, or unlock, the deploy environments"
    last = preview["steps"][-1]
    assert last["if"] == "failure()" and "gh pr comment" in last["run"]


def test_preview_concurrency_is_per_pr():
    c = PREVIEW["concurrency"]
    assert "github.event.pull_request.number" in c["group"]
    assert c["cancel-in-progress"] is True


def test_deploy_runs_dev_then_prod_behind_its_environment_without_cancelling():
    jobs = DEPLOY["jobs"]
    assert "concurrency" not in DEPLOY, "a workflow-level group would hold dev behind a prod approval"
    assert jobs["up-dev"]["needs"] == "test"
    assert jobs["up-prod"]["needs"] == "up-dev"
    for job_id, stack in (("up-dev", "dev"), ("up-prod", "prod")):
        job = jobs[job_id]
        assert job["environment"] == stack
        assert job["concurrency"] == {"group": f"pulumi-{stack}", "cancel-in-progress": False}
        # pulumi/actions runs `up --skip-preview`: a policy-checked preview must come first.
        assert [(s["with"]["command"], s["with"]["stack-name"]) for s in pulumi_steps(job)] == [
            ("preview", stack),
            ("up", stack),
        ]
        assert "comment-on-pr" not in pulumi_steps(job)[0]["with"]
    assert [s["run"] for s in jobs["test"]["steps"] if "run" in s][-1] == "make test"


def test_kubeconfigs_come_from_the_dev_secret_and_from_eks():
    def kube_steps(job: dict) -> list[dict]:
        return [s for s in job["steps"] if "KUBECONFIG" in s.get("env", {}) and "run" in s]

    dev = kube_steps(DEPLOY["jobs"]["up-dev"])
    prod = kube_steps(DEPLOY["jobs"]["up-prod"])
    assert [s["env"]["DEV_KUBECONFIG"] for s in dev] == ["${{ secrets.DEV_KUBECONFIG }}"]
    assert "aws eks update-kubeconfig" in prod[0]["run"]
    assert prod[0]["env"]["EKS_CLUSTER_NAME"] == "${{ vars.EKS_CLUSTER_NAME }}"
    preview = kube_steps(PREVIEW["jobs"]["preview"])
    assert sorted(s["if"] for s in preview) == ["matrix.stack == 'dev'", "matrix.stack == 'prod'"]


def test_pulumi_jobs_create_the_virtualenvs_pulumi_expects():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^venv:", makefile, re.M) and re.search(r"^test:", makefile, re.M)
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text())
    pack = yaml.safe_load((ROOT / "policies" / "PulumiPolicy.yaml").read_text())
    assert project["runtime"]["options"]["virtualenv"] == ".venv", "`make venv` creates .venv"
    pack_venv = f"policies/{pack['runtime']['options']['virtualenv']}"
    for job in (PREVIEW["jobs"]["preview"], DEPLOY["jobs"]["up-dev"], DEPLOY["jobs"]["up-prod"]):
        (script,) = [s["run"] for s in job["steps"] if s.get("name") == "Create the virtualenvs"]
        assert script.splitlines() == [
            "make venv",
            f"python -m venv {pack_venv}",
            f"{pack_venv}/bin/pip install --quiet --disable-pip-version-check -r policies/requirements.txt",
        ]


def _doc() -> str:
    for path in (ROOT / "docs" / "ci.md", ROOT / "README.md"):
        if path.exists() and "PULUMI_BACKEND_URL" in path.read_text():
            return path.read_text()
    pytest.fail("neither docs/ci.md nor README.md documents the CI secrets and variables")


def test_docs_list_exactly_the_secrets_and_variables_the_workflows_read():
    used = set()
    for name in ALL:
        for kind, var in CONTEXT_NAME.findall((WORKFLOWS / name).read_text()):
            used.add((var, "secret" if kind == "secrets" else "variable"))
    documented = set(re.findall(r"^\| `([A-Z0-9_]+)` \| (secret|variable) \|", _doc(), re.M))
    assert documented == used


def _targets_step() -> dict:
    (step,) = [s for s in PREVIEW["jobs"]["preview"]["steps"] if s.get("id") == "targets"]
    return step


def _run_targets_step(tmp_path: Path, change: dict[str, str]) -> str:
    """The step's script in a repository whose last commit makes ``change``; returns what it wrote to GITHUB_OUTPUT."""
    repo = tmp_path / "repo"
    (repo / ".venv" / "bin").mkdir(parents=True)
    # Stands in for tools.dev.targets (tests/test_targets.py tests the real one): prints the base file it was given.
    stub = repo / ".venv" / "bin" / "python"
    stub.write_text('#!/bin/sh\n[ "$2 $3 $4 $5" = "tools.dev.targets --stack dev --base" ] || exit 9\necho "urn-from:$(cat "$6")"\n')
    stub.chmod(0o755)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "Pulumi.dev.yaml").write_text("base\n")
    (repo / "__main__.py").write_text("program\n")
    subprocess.run([*git, "add", "Pulumi.dev.yaml", "__main__.py"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "base"], cwd=repo, check=True)
    for name, text in change.items():
        (repo / name).write_text(text)
    subprocess.run([*git, "commit", "-qam", "change"], cwd=repo, check=True)
    output = tmp_path / "output"
    env = {"PATH": os.environ["PATH"], "STACK": "dev", "RUNNER_TEMP": str(tmp_path), "GITHUB_OUTPUT": str(output)}
    subprocess.run(["bash", "-e", "-c", _targets_step()["run"]], cwd=repo, env=env, check=True)
    return output.read_text() if output.exists() else ""


def test_a_stack_file_only_pr_previews_the_targets_of_its_change(tmp_path):
    assert _run_targets_step(tmp_path, {"Pulumi.dev.yaml": "head\n"}) == "urns<<END_OF_URNS\nurn-from:base\nEND_OF_URNS\n"


def test_any_other_change_previews_the_whole_stack(tmp_path):
    assert _run_targets_step(tmp_path, {"Pulumi.dev.yaml": "head\n", "__main__.py": "changed\n"}) == ""


def test_the_preview_takes_its_targets_from_that_step_and_main_previews_everything():
    preview = PREVIEW["jobs"]["preview"]
    (step,) = pulumi_steps(preview)
    assert step["with"]["target"] == "${{ steps.targets.outputs.urns }}"
    assert step["with"]["target-dependents"] is True
    assert preview["env"]["PULUMI_SKIP_CHECKPOINTS"] == "true"
    checkout = next(s for s in preview["steps"] if s.get("uses", "").startswith("actions/checkout@"))
    assert checkout["with"]["fetch-depth"] == 2, "the step compares the merge commit with its first parent"
    for job in (DEPLOY["jobs"]["up-dev"], DEPLOY["jobs"]["up-prod"]):
        for pulumi_step in pulumi_steps(job):
            assert "target" not in pulumi_step["with"], "main previews and updates the whole stack"


def test_make_test_jobs_fetch_the_history_the_upgrade_test_checks_out():
    """tests/cluster/test_upgrade.py deploys the commit docs/upgrade.toml names: a shallow clone lacks it."""
    for wf in (PREVIEW, DEPLOY):
        (checkout,) = [s for s in wf["jobs"]["test"]["steps"] if s.get("uses", "").startswith("actions/checkout@")]
        assert checkout["with"]["fetch-depth"] == 0


def test_drift_runs_refresh_preview_only_per_stack_fails_on_drift_and_reports_it():
    job = DRIFT["jobs"]["drift"]
    assert DRIFT["on"]["schedule"][0]["cron"].count(" ") == 4
    assert job["strategy"]["matrix"]["stack"] == ["dev", "prod"] and job["strategy"]["fail-fast"] is False
    assert "environment" not in job, "a scheduled check must never wait for the prod reviewers"
    (install,) = pulumi_steps(job)
    assert install["with"] == {"pulumi-version": "${{ env.PULUMI_VERSION }}"}, "the action only installs the CLI"
    (check,) = [s for s in job["steps"] if s.get("name") == "pulumi refresh --preview-only --expect-no-changes"]
    command = check["run"]
    assert "set -o pipefail" in command, "tee must not hide the refresh's exit status"
    for flag in ('--stack "$STACK"', "--preview-only", "--expect-no-changes", "--diff", "--non-interactive"):
        assert flag in command, flag
    assert check["env"]["STACK"] == "${{ matrix.stack }}"
    assert check["env"]["PULUMI_BACKEND_URL"] == "${{ vars.PULUMI_BACKEND_URL }}"
    report = job["steps"][-1]
    assert report["if"] == "failure()" and "gh issue create" in report["run"] and "GITHUB_STEP_SUMMARY" in report["run"]
    assert "secrets." not in str(report.get("env")), "the report step gets the repository token only"
