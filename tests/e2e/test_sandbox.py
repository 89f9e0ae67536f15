"""Each declared container is held to its securityContext and volumes, as its pod would hold it.

First the sandbox itself (tests/e2e/sandbox.py), on small pods written here; then the declared workloads of the dev
stack: the running server and database are their declared users with a read-only root, and a volume left out of a
declaration, or a Secret file its user may not read, fails the container here as it would fail in the cluster.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.e2e import sandbox
from tests.e2e.declared import mutated
from tests.e2e.errors import DataPlaneError
from tests.e2e.plane import DataPlane
from tests.e2e.prerequisites import require
from tools.testing.harness import Plan
from tools.testing.processes import process_tree

HARDENED = {
    "runAsNonRoot": True,
    "runAsUser": 10001,
    "runAsGroup": 10001,
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
}


@pytest.fixture(scope="module", autouse=True)
def can_hold() -> None:
    reason = sandbox.unavailable()
    require("bubblewrap", reason != "bwrap is not installed")
    if reason is not None:
        pytest.fail(f"the e2e holds containers to their security context, and {reason}", pytrace=False)


def pod(volumes: list[dict], mounts: list[dict], fs_group: int | None = 10001) -> tuple[dict, dict]:
    context: dict[str, Any] = {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001}
    if fs_group is not None:
        context["fsGroup"] = fs_group
    container = {"name": "c", "securityContext": HARDENED, "volumeMounts": mounts}
    return {"securityContext": context, "volumes": volumes}, container


def run(tmp_path: Path, spec: tuple[dict, dict], script: str, secrets: dict | None = None) -> subprocess.CompletedProcess:
    pod_spec, container = spec
    volumes = sandbox.PodVolumes(pod_spec, tmp_path / "volumes", "c", "ns", lambda kind, name: (secrets or {}).get(name))
    try:
        box = sandbox.for_container(pod_spec, container, volumes, "c")
        return subprocess.run(
            box.argv(["/bin/sh", "-c", script]), capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"}
        )
    finally:
        volumes.release()


def test_the_process_is_the_declared_user_without_capabilities_or_new_privileges(tmp_path):
    done = run(tmp_path, pod([], []), "id -u; id -g; id -G; grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status")
    assert done.returncode == 0, done.stderr
    uid, gid, groups, *status = done.stdout.split("\n")
    assert (uid, gid, groups) == ("10001", "10001", "10001")
    assert status[:3] == ["CapEff:\t0000000000000000", "CapBnd:\t0000000000000000", "NoNewPrivs:\t1"]


def test_the_root_is_read_only_and_holds_nothing_of_the_hosts_tmp_or_roots_home(tmp_path):
    marker = Path("/tmp") / f"host-only-{os.getpid()}"
    marker.write_text("x")
    try:
        done = run(tmp_path, pod([], []), f"touch /etc/x; touch /x; touch /tmp/x; ls -A /tmp /root; test -e {marker} && echo visible")
    finally:
        marker.unlink()
    assert done.stderr.count("Read-only file system") == 3, done.stderr
    assert "visible" not in done.stdout and done.stdout.split() == ["/root:", "/tmp:"]


def test_only_declared_volumes_are_writable_and_a_memory_volume_holds_exactly_its_size(tmp_path):
    volumes = [{"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}}, {"name": "data", "emptyDir": {}}]
    mounts = [{"name": "tmp", "mountPath": "/tmp"}, {"name": "data", "mountPath": "/data"}]
    script = "echo a > /data/a && echo data-ok; dd if=/dev/zero of=/tmp/fill bs=64k count=32 2>&1; stat -c '%a %g' /data; touch /etc/nope"
    done = run(tmp_path, pod(volumes, mounts), script)
    assert "data-ok" in done.stdout
    assert "No space left on device" in done.stdout, "the 1Mi memory volume took 2 MiB"
    assert "2777 10001" in done.stdout, "an emptyDir is 0777 with the kubelet's fsGroup ownership (setgid, group fsGroup)"
    assert "Read-only file system" in done.stderr


def test_a_program_beneath_a_volumes_mount_path_runs_as_the_declared_user(tmp_path):
    """A checkout under /tmp (a CI runner's) puts the entrypoints' venv where a pod mounts its /tmp emptyDir."""
    program = tmp_path / "image" / "bin" / "entrypoint"
    program.parent.mkdir(parents=True)
    program.write_text("#!/bin/sh\necho ran\n")
    program.chmod(0o755)
    assert str(program).startswith("/tmp/"), "pytest's tmp_path stands for a checkout under /tmp"
    spec = pod([{"name": "tmp", "emptyDir": {}}], [{"name": "tmp", "mountPath": "/tmp"}])
    volumes = sandbox.PodVolumes(spec[0], tmp_path / "volumes", "c", "ns", lambda kind, name: None)
    try:
        box = sandbox.for_container(spec[0], spec[1], volumes, "c", readable=[program.parent])
        done = subprocess.run(box.argv([str(program)]), capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})
    finally:
        volumes.release()
    assert (done.returncode, done.stdout) == (0, "ran\n"), done.stderr


def test_secret_files_have_their_declared_modes_and_fs_group_decides_who_reads_them(tmp_path):
    secret = {"name": "creds", "secret": {"secretName": "creds", "defaultMode": 0o400, "items": [{"key": "pw", "path": "password"}]}}
    mounts = [{"name": "creds", "mountPath": "/etc/creds", "readOnly": True}]
    secrets = {"creds": {"pw": "s3cret"}}
    # With fsGroup the kubelet adds g+r for the pod's group: readable.
    done = run(tmp_path / "with", pod([secret], mounts), "stat -c '%a %u %g' /etc/creds/password; cat /etc/creds/password", secrets)
    assert done.stdout.split("\n")[:2] == ["440 0 10001", "s3cret"], done.stderr
    # Without it, a root-owned 0400 file: the pod's user cannot read it, here as in the cluster.
    done = run(tmp_path / "without", pod([secret], mounts, fs_group=None), "cat /etc/creds/password", secrets)
    assert done.returncode != 0 and "Permission denied" in done.stderr


def test_a_mount_the_pod_does_not_declare_is_refused(tmp_path):
    with pytest.raises(DataPlaneError, match="mounts volume 'cache', which its pod does not declare"):
        run(tmp_path, pod([], [{"name": "cache", "mountPath": "/cache"}]), "true")


# -- the declared workloads ------------------------------------------------------------------------------------------------


def _status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {k: v.strip() for k, _, v in (line.partition(":") for line in lines)}


def _mounts(pid: int) -> dict[str, tuple[str, str]]:
    """mount point -> (its options, file system type) as the process sees them."""
    found = {}
    for line in Path(f"/proc/{pid}/mountinfo").read_text().splitlines():
        fields, _, rest = line.partition(" - ")
        parts = fields.split()
        found[parts[4]] = (parts[5], rest.split()[0])
    return found


def _held(pid: int, command: str) -> int:
    """The pid of the sandboxed program (the child of bwrap whose command line contains ``command``)."""
    for child, line in process_tree(pid).items():
        if child != pid and command in line and not line.startswith(("/usr/bin/bwrap", "bwrap")):
            return child
    raise AssertionError(f"no process running {command!r} under {pid}")


def test_the_server_and_the_database_run_as_their_declared_users_with_a_read_only_root(plane: DataPlane, plan: Plan, tracking):
    database = next(s for s in plane.servers if s.component == "postgresql")
    for server, command in [*((p, "mlflow") for p in tracking.processes), (database, "postgres")]:
        spec = server.workload.pod_spec()
        context = spec["containers"][0]["securityContext"]
        pid = _held(server.service.process.pid, command)
        status = _status(pid)
        assert status["Uid"].split()[0] == str(context["runAsUser"]) and status["Gid"].split()[0] == str(context["runAsGroup"])
        assert str(spec["securityContext"]["fsGroup"]) in status["Groups"].split()
        assert status["NoNewPrivs"] == "1" and status["CapEff"] == "0" * 16
        mounts = _mounts(pid)
        assert mounts["/"][0].startswith("ro"), f"{server.component}'s root is {mounts['/']}"
        for mount in spec["containers"][0]["volumeMounts"]:
            target = sandbox.resolve(mount["mountPath"])
            assert target in mounts, f"{server.component} lacks its volume at {mount['mountPath']}"
            assert mounts[target][0].startswith("ro" if mount.get("readOnly") else "rw"), (mount, mounts[target])


def _without_mount(volume: str, container: str) -> Any:
    def change(inputs: dict) -> None:
        for c in inputs["spec"]["template"]["spec"].get("initContainers", []) + inputs["spec"]["template"]["spec"]["containers"]:
            if c["name"] == container:
                c["volumeMounts"] = [m for m in c["volumeMounts"] if m["name"] != volume]

    return change


def test_a_volume_left_out_of_the_dump_container_fails_it_as_in_the_pod(plane: DataPlane, plan: Plan, tracking):
    (job,) = [j for j in plan.kinds("Job") if j.k8s_name.startswith("mlflow-migrate-")]
    broken = mutated(plan, "Job", job.k8s_name, job.k8s_namespace, _without_mount("backup", "dump"))
    (broken_job,) = [j for j in broken.kinds("Job") if j.k8s_name == job.k8s_name]
    with pytest.raises(DataPlaneError, match=r'^dump: exited with code 1(.|\n)*could not open output file "/backup/mlflow.dump"'):
        plane.run_job(broken, broken_job)


def test_a_volume_left_out_of_the_server_fails_its_start(plane: DataPlane, plan: Plan, tracking):
    deployment = tracking.workload
    broken = mutated(plan, "Deployment", deployment.k8s_name, deployment.k8s_namespace, _without_mount("tmp", "mlflow"))
    hosts = plane.hosts.without(*[a for a, p in plane.hosts.routes.items() if p == tracking.port])
    with pytest.raises(DataPlaneError, match=r"^mlflow(-\d)?: exited with code"):
        plane.start_deployment(broken, broken.k8s("Deployment", deployment.k8s_name, deployment.k8s_namespace), hosts=hosts)


def test_a_secret_file_its_user_may_not_read_fails_the_database_as_in_the_pod(plane: DataPlane, plan: Plan, tracking):
    (statefulset,) = plan.kinds("StatefulSet")

    def unreadable(inputs: dict) -> None:
        spec = inputs["spec"]["template"]["spec"]
        del spec["securityContext"]["fsGroup"]
        (credentials,) = [v for v in spec["volumes"] if "secret" in v]
        credentials["secret"]["defaultMode"] = 0o400

    broken = mutated(plan, "StatefulSet", statefulset.k8s_name, statefulset.k8s_namespace, unreadable)
    with pytest.raises(
        DataPlaneError, match=r"^postgresql: exited with code 1(.|\n)*/etc/postgresql-credentials/password(.|\n)*Permission denied"
    ):
        plane.start_postgres(broken, "postgresql+psycopg2://u@mlflow-postgresql.mlflow.svc.cluster.local:5432/mlflow")
