"""The images the stacks pull: pinned to what the tests run, published where one fits, and `make image` for the one that is not.

No container engine runs here: `make image` is exercised with stand-in builders that record their argv (and report a
digest as the real ones do), so what is proven is the command line each builder gets, not a real build.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mlops_platform.database.settings import POSTGRES_IMAGE
from mlops_platform.storage.settings import MINIO_CLIENT_IMAGE, MINIO_IMAGE
from mlops_platform.tracking.settings import (
    K8S_PLUGINS_VERSION,
    MLFLOW_IMAGE,
    MLFLOW_K8S_IMAGE,
    MLFLOW_K8S_IMAGE_NAME,
    MLFLOW_K8S_IMAGE_TAG,
    MLFLOW_VERSION,
)
from tests.e2e.postgres import postgres_bindir
from tools.dev import image
from tools.testing import server_venv
from tools.testing.harness import ROOT, run_program

IMAGE_DIR = ROOT / "images" / "mlflow"


def project_pins(path: Path) -> dict[str, str]:
    found = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            found[re.sub(r"\[.*\]", "", name).lower()] = version
    return found


# -- what each default image holds, against what the e2e runs ------------------------------------


def test_the_published_default_runs_the_mlflow_the_e2e_runs_from_the_project_venv():
    """ghcr.io/mlflow/mlflow:vX-full installs mlflow[extras,azure,db,gateway,genai,auth]==X on Python 3.11 (docker/Dockerfile.full)."""
    pins = {**project_pins(ROOT / "requirements.txt"), **project_pins(ROOT / "requirements-dev.txt")}
    assert MLFLOW_IMAGE == f"ghcr.io/mlflow/mlflow:v{pins['mlflow']}-full" and pins["mlflow"] == MLFLOW_VERSION
    assert sys.version_info[:2] == (3, 11), "the -full image runs Python 3.11; so must the e2e that stands in for it"
    # The drivers and extras each mode needs, which the -full image's extras pull in (mlflow's package metadata):
    from importlib.metadata import metadata, version

    extras = {r for r in metadata("mlflow").get_all("Requires-Dist") if "extra ==" in r}
    for package, extra in (("psycopg2-binary", "db"), ("PyMySQL", "db"), ("boto3", "extras"), ("prometheus-flask-exporter", "extras")):
        assert any(r.startswith(package) and f'extra == "{extra}"' in r for r in extras), package
    assert any(r.startswith("Flask-WTF") and 'extra == "auth"' in r for r in extras)
    # ... and the e2e runs each of them, basic-auth's Flask-WTF included.
    for package in ("psycopg2-binary", "PyMySQL", "boto3", "prometheus-flask-exporter", "Flask-WTF"):
        assert version(package)


def test_the_kubernetes_app_image_is_built_from_the_pins_the_e2e_runs():
    pins = image.pins()
    assert pins["mlflow"] == MLFLOW_VERSION and pins["mlflow-kubernetes-plugins"] == K8S_PLUGINS_VERSION
    assert image.tag() == MLFLOW_K8S_IMAGE_TAG and MLFLOW_K8S_IMAGE == f"localhost:32000/{MLFLOW_K8S_IMAGE_NAME}:{MLFLOW_K8S_IMAGE_TAG}"
    assert image.REPOSITORY == MLFLOW_K8S_IMAGE_NAME
    client = project_pins(ROOT / "requirements.txt")
    assert client["mlflow"] == MLFLOW_VERSION and client["kubernetes"] == pins["kubernetes"]
    # tools/testing/server_venv.py installs exactly this file: the venv the tenancy and auth tests start the server from.
    assert server_venv.REQUIREMENTS == IMAGE_DIR / "requirements.txt"


def test_the_postgres_image_is_the_major_the_e2e_runs():
    major = POSTGRES_IMAGE.rsplit(":", 1)[1].split(".")[0]
    bindir = postgres_bindir()
    if bindir is not None:
        assert bindir.parent.name == major, f"the e2e runs PostgreSQL {bindir.parent.name}, the image is {major}"
    assert re.fullmatch(r"docker\.io/library/postgres:\d+\.\d+", POSTGRES_IMAGE)


def test_the_dockerfile_installs_exactly_that_file_on_the_python_the_tests_use():
    dockerfile = (IMAGE_DIR / "Dockerfile").read_text()
    (base,) = re.findall(r"^FROM (\S+)$", dockerfile, re.M)
    assert re.fullmatch(rf"docker\.io/library/python:{re.escape(server_venv.PYTHON_MINOR)}\.\d+-slim-\w+", base)
    assert "COPY requirements.txt " in dockerfile and "pip install --no-compile -r /opt/mlflow/requirements.txt" in dockerfile
    assert "USER 10001" in dockerfile
    assert "'kubernetes-auth', 'basic-auth'" in dockerfile and "mlflow.workspace_provider" in dockerfile


# -- the images a stack pulls, shown before anything is pulled ------------------------------------


def pulled(plan) -> set[str]:
    return {c["image"] for r in plan.resources if r.pod_spec() for c in r.pod_spec()["containers"] + r.pod_spec().get("initContainers", [])}


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_images_output_lists_exactly_what_the_pods_pull(stack, request):
    plan = request.getfixturevalue(stack)
    images = plan.outputs["images"]
    assert set(images.values()) == pulled(plan)
    assert images["mlflow"] == (MLFLOW_K8S_IMAGE if stack == "dev" else MLFLOW_IMAGE)
    if stack == "dev":
        assert images["minio"] == MINIO_IMAGE and images["minio-client"] == MINIO_CLIENT_IMAGE
    assert images["postgresql"] == POSTGRES_IMAGE


def test_a_training_jobs_image_is_listed_too():
    from tools.testing.plans import run_with

    job = {"name": "nightly", "namespace": "kubeflow-user-example-com", "image": "registry.example.com/t/train:1.0", "command": ["python"]}
    plan = run_with("dev", training=json.dumps([job]))
    assert plan.outputs["images"]["training/nightly"] == "registry.example.com/t/train:1.0"
    assert set(plan.outputs["images"].values()) == pulled(plan)


@pytest.mark.slow
def test_make_plan_prints_the_images_and_what_must_be_built_first():
    done = subprocess.run(
        [sys.executable, "-m", "tools.dev.plan", "--stack", "dev", "--out", str(ROOT / "build" / "test-image-plan")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    text = done.stdout + done.stderr
    assert f"images to pull: mlflow={MLFLOW_K8S_IMAGE}" in text
    assert f"{MLFLOW_K8S_IMAGE} is published nowhere: build and push it first with `make image`" in text
    assert "output images: {" in text


# -- make image ------------------------------------------------------------------------------------

STAND_IN = """#!{python}
import json, os, sys
with open(os.environ["BUILDER_LOG"], "a") as log:
    log.write(json.dumps([os.path.basename(sys.argv[0]), *sys.argv[1:]]) + "\\n")
args = sys.argv[1:]
if args[:2] == ["image", "inspect"]:
    print(args[-1].rsplit(":", 1)[0] + "@sha256:" + "a" * 64)
if "--digestfile" in args:
    open(args[args.index("--digestfile") + 1], "w").write("sha256:" + "b" * 64)
sys.exit(int(os.environ.get("BUILDER_EXIT", "0")) if args and args[0] == "build" else 0)
"""


def run_make_image(tmp_path: Path, builders: list[str], *args: str, **env: str) -> tuple[subprocess.CompletedProcess, list[list[str]]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name in builders:
        path = bin_dir / name
        path.write_text(STAND_IN.format(python=sys.executable))
        path.chmod(0o755)
    # Nothing else on PATH (a machine with a real docker must not be asked): make, the shell its recipes run in, the stand-ins.
    tools = tmp_path / "tools"
    tools.mkdir(exist_ok=True)
    for name in ("make", "sh"):
        link = tools / name
        if not link.exists():
            link.symlink_to(shutil.which(name) or f"/bin/{name}")
    log = tmp_path / "calls.jsonl"
    done = subprocess.run(
        ["make", "--no-print-directory", "image", f"PYTHON={sys.executable}", *args],
        cwd=ROOT,
        env={**os.environ, "PATH": f"{bin_dir}:{tools}", "BUILDER_LOG": str(log), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return done, calls


def test_make_image_builds_with_docker_and_pushes_to_microk8s_registry_by_default(tmp_path):
    done, calls = run_make_image(tmp_path, ["docker", "podman"])
    ref = f"localhost:32000/mlops-platform/mlflow:{MLFLOW_K8S_IMAGE_TAG}"
    assert done.returncode == 0, done.stderr
    assert calls[0] == ["docker", "build", "--pull", "--tag", ref, str(IMAGE_DIR)]
    assert calls[1] == ["docker", "push", ref]
    assert f"pushed {ref}@sha256:{'a' * 64}" in done.stdout
    assert f"pulumi config set --path tracking.image {ref}@sha256:" in done.stdout


@pytest.mark.parametrize("builder", ["podman", "buildah"])
def test_make_image_uses_podman_or_buildah_and_skips_tls_only_for_a_localhost_registry(tmp_path, builder):
    done, calls = run_make_image(tmp_path, [builder])
    assert done.returncode == 0, done.stderr
    assert calls[0][:3] == [builder, "build", "--pull"]
    push = calls[1]
    assert push[:3] == [builder, "push", "--tls-verify=false"] and "--digestfile" in push
    assert f"@sha256:{'b' * 64}" in done.stdout
    done, calls = run_make_image(tmp_path / "ecr", [builder], "REGISTRY=123456789012.dkr.ecr.eu-west-1.amazonaws.com")
    assert done.returncode == 0, done.stderr
    assert "--tls-verify=false" not in calls[1] and calls[1][-1].startswith("123456789012.dkr.ecr.eu-west-1.amazonaws.com/mlops-platform/")


def test_make_image_without_a_builder_names_the_three_it_looks_for(tmp_path):
    done, calls = run_make_image(tmp_path, [])
    assert done.returncode != 0 and calls == []
    assert "no image builder found: install one of docker, podman, buildah" in done.stderr


def test_a_failed_build_pushes_nothing(tmp_path):
    done, calls = run_make_image(tmp_path, ["docker"], BUILDER_EXIT="1")
    assert done.returncode != 0 and [c[1] for c in calls] == ["build"]
    assert "`docker build` failed with exit status 1" in done.stderr


def test_the_workflow_builds_with_the_same_tool_and_pushes_only_from_main():
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "image.yml").read_text())
    (job,) = workflow["jobs"].values()
    assert job["permissions"] == {"contents": "read", "packages": "write"}
    runs = {s.get("if"): s.get("run", "") for s in job["steps"] if "run" in s}
    assert (
        "python3 -m tools.dev.image --builder docker" in runs["github.event_name != 'push'"]
        and "--no-push" in runs["github.event_name != 'push'"]
    )
    assert "python3 -m tools.dev.image --builder docker" in runs["github.event_name == 'push'"]
    assert "--no-push" not in runs["github.event_name == 'push'"]


def test_the_dev_stack_file_names_no_image_nobody_publishes_besides_the_one_make_image_pushes():
    plan = run_program("dev")
    unpublished = [i for i in plan.outputs["images"].values() if i.startswith("ghcr.io/mlops-platform/")]
    assert unpublished == []
