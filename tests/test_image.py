"""The MLflow server image: one set of pins for the image, the tests' virtualenv and the config's default tag."""

from __future__ import annotations

import re

import yaml

from mlops_platform.config import K8S_PLUGINS_VERSION, MLFLOW_AUTH_IMAGE, MLFLOW_VERSION
from tools import server_venv
from tools.harness import ROOT

IMAGE_DIR = ROOT / "images" / "mlflow"


def pins() -> dict[str, str]:
    found = {}
    for line in (IMAGE_DIR / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"{line!r} is not pinned with =="
            found[re.sub(r"\[.*\]", "", name)] = version
    return found


def test_the_image_pins_the_mlflow_of_the_clients_and_the_plugin_of_its_tag():
    assert pins()["mlflow"] == MLFLOW_VERSION
    assert pins()["mlflow-kubernetes-plugins"] == K8S_PLUGINS_VERSION
    assert MLFLOW_AUTH_IMAGE.endswith(f":{MLFLOW_VERSION}-k8s{K8S_PLUGINS_VERSION}")
    client_pins = dict(line.split("==") for line in (ROOT / "requirements.txt").read_text().splitlines() if "==" in line)
    assert client_pins["mlflow"] == MLFLOW_VERSION and client_pins["kubernetes"] == pins()["kubernetes"]


def test_the_dockerfile_installs_exactly_that_file_on_the_python_the_tests_use():
    dockerfile = (IMAGE_DIR / "Dockerfile").read_text()
    (base,) = re.findall(r"^FROM (\S+)$", dockerfile, re.M)
    assert re.fullmatch(rf"docker\.io/library/python:{re.escape(server_venv.PYTHON_MINOR)}\.\d+-slim-\w+", base)
    assert "COPY requirements.txt " in dockerfile and "pip install --no-compile -r /opt/mlflow/requirements.txt" in dockerfile
    assert server_venv.REQUIREMENTS == IMAGE_DIR / "requirements.txt"
    assert "USER 10001" in dockerfile


def test_the_workflow_builds_and_pushes_the_configured_tag_and_reports_its_digest():
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "image.yml").read_text())
    (job,) = workflow["jobs"].values()
    assert job["env"]["IMAGE"] == MLFLOW_AUTH_IMAGE
    assert job["permissions"] == {"contents": "read", "packages": "write"}
    runs = [s.get("run", "") for s in job["steps"]]
    assert any('docker build --pull --tag "$IMAGE" images/mlflow' in r for r in runs)
    (push,) = [s for s in job["steps"] if "docker push" in s.get("run", "")]
    assert push["if"] == "github.event_name == 'push'" and "RepoDigests" in push["run"]
