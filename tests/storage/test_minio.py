"""MinIO (mlops_platform/storage/minio.py): who may reach it, its bucket bootstrap, and its volumes.

The provisioning script runs as the pinned mc image runs it: a POSIX shell, mc, and no other command.

The image (quay.io/minio/mc, ubi-micro plus /usr/bin/mc) has no grep; here the script runs under /bin/sh with a PATH
holding only a stand-in `mc`, so any other command it called would fail as "not found". The stand-in answers
`mc admin policy attach` the way MinIO does (cmd/admin-handlers: XMinioAdminPolicyChangeAlreadyApplied,
"The specified policy change is already in effect.") or with a connection error; it is not MinIO (not obtainable
here), so what is proven is the script's own logic and the commands it needs.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tools.testing.plans import NS, arg, container, mlflow, network_policy

STAND_IN = """#!{python}
import json, os, sys
args = sys.argv[1:]
with open(os.environ["MC_LOG"], "a") as log:
    log.write(json.dumps(args) + "\\n")
if args[:3] == ["admin", "policy", "attach"]:
    answer = os.environ.get("ATTACH", "ok")
    if answer == "already":
        print("mc: <ERROR> Unable to attach the policy: The specified policy change is already in effect.", file=sys.stderr)
        sys.exit(1)
    if answer == "down":
        print("mc: <ERROR> Unable to attach the policy: Post " + '"http://mlflow-minio.mlflow.svc.cluster.local:9000": '
              "dial tcp: connect: connection refused", file=sys.stderr)
        sys.exit(1)
"""


def run_script(dev, tmp_path: Path, attach: str) -> tuple[subprocess.CompletedProcess, list[list[str]]]:
    (job,) = [j for j in dev.kinds("Job") if j.k8s_name.startswith("mlflow-bootstrap-")]
    command = container(job, "provision")["command"]
    assert command[:2] == ["/bin/sh", "-ec"]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "mc").write_text(STAND_IN.format(python=sys.executable))
    (bin_dir / "mc").chmod(0o755)
    log = tmp_path / "mc.jsonl"
    env = {"PATH": str(bin_dir), "MC_LOG": str(log), "ATTACH": attach, "MINIO_URL": "http://minio:9000"}
    env.update({e["name"]: "x" for e in container(job, "provision")["env"] if "valueFrom" in e})
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=30)
    return done, [json.loads(line) for line in log.read_text().splitlines()]


@pytest.mark.parametrize("attach", ["ok", "already"])
def test_the_script_converges_whether_or_not_the_policy_was_attached_before(dev, tmp_path, attach):
    done, calls = run_script(dev, tmp_path, attach)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "provisioned" and "not found" not in done.stderr
    attached = [c for c in calls if c[:3] == ["admin", "policy", "attach"]]
    assert attached and all(c[3] == "local" and c[5] == "--user" for c in attached)


def test_a_real_attach_failure_stops_the_script_with_mcs_own_message(dev, tmp_path):
    done, calls = run_script(dev, tmp_path, "down")
    assert done.returncode != 0
    assert "connection refused" in done.stderr and "not found" not in done.stderr
    # It stopped at the first user's attach: nothing after it ran.
    assert calls[-1][:3] == ["admin", "policy", "attach"] and "provisioned" not in done.stdout


def test_minio_accepts_only_mlflow_and_labelled_clients(dev):
    server = mlflow(dev).inputs["spec"]["selector"]["matchLabels"]
    (rule,) = network_policy(dev, "mlflow-minio")["ingress"]
    assert rule["from"] == [
        {"podSelector": {"matchLabels": server}},
        {"namespaceSelector": {}, "podSelector": {"matchLabels": {"mlops-platform/minio-client": "true"}}},
    ]
    assert rule["ports"] == [{"port": 9000, "protocol": "TCP"}]


def test_bootstrap_creates_bucket_and_a_user_limited_to_the_prefix(dev):
    (job,) = [r for r in dev.kinds("Job") if r.k8s_name.startswith("mlflow-bootstrap-")]
    script = container(job, "provision")["command"][-1]
    assert "mc mb --ignore-existing local/mlflow-artifacts" in script
    assert 'mc admin user add local mlflow "$SECRET_KEY_MLFLOW"' in script
    policy = json.loads(dev.k8s("ConfigMap", "mlflow-bootstrap-policies", NS).inputs["data"]["mlflow-write.json"])
    resources = {res for st in policy["Statement"] for res in st["Resource"]}
    assert resources == {"arn:aws:s3:::mlflow-artifacts", "arn:aws:s3:::mlflow-artifacts/dev/*"}
    listing = next(st for st in policy["Statement"] if st["Action"] == ["s3:ListBucket"])
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["dev", "dev/*"]}}


def test_a_regenerated_key_reruns_the_bootstrap(dev):
    (job,) = [r for r in dev.kinds("Job") if r.k8s_name.startswith("mlflow-bootstrap-")]
    key = dev.k8s("Secret", "mlflow-s3", NS).inputs["stringData"]["AWS_SECRET_ACCESS_KEY"]
    assert job.replacement_trigger == [key]
    assert job.replacement_trigger_secret


def test_minio_writes_only_to_its_volumes(dev):
    server = container(dev.k8s("Deployment", "mlflow-minio", NS), "minio")
    mounts = {m["mountPath"] for m in server["volumeMounts"]}
    certs = arg(server["args"], "--certs-dir")
    assert server["securityContext"]["readOnlyRootFilesystem"] is True
    assert any(certs.startswith(m + "/") for m in mounts) and "/data" in mounts
