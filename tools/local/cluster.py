"""An embedded Kubernetes control plane on 127.0.0.1: etcd, kube-apiserver, controller-manager, scheduler, kwok.

The binaries come from ``make toolchain`` (toolchain/build.sh). kwok plays the kubelet of
one fake node with the stages in ``toolchain/kwok-stages.yaml``: scheduled pods become
Ready and Job pods complete, so Deployments become available, StatefulSets ready and
Jobs complete without containers. Every process writes a pid file under the cluster
directory; ``stop`` ends them by those pids and checks that none of their ports still
listens.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import json
import os
import shutil
import signal
import ssl
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tools.testing.processes import HOST, Service, free_port, listening, tail
from tools.testing.processes import start as start_process

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DIR = ROOT / "build" / "local"
TOOLCHAIN_PATH = ROOT / "build" / "toolchain.path"
KWOK_STAGES = ROOT / "toolchain" / "kwok-stages.yaml"
NODE_NAME = "kwok-node-0"
# Addresses the API server hands out to Services and kwok to pods: object fields only, no traffic.
SERVICE_RANGE = "10.96.0.0/16"
POD_RANGE = "10.244.0.1/16"
ORDER = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")


class ToolchainMissing(RuntimeError):
    """`make toolchain` has not produced a binary the lane needs; the message names it."""


class ClusterError(RuntimeError):
    """A control-plane process failed; the message names it and quotes its log."""


def toolchain_dirs() -> list[Path]:
    """The bin directories ``make toolchain`` recorded, all of which must exist."""
    if not TOOLCHAIN_PATH.exists():
        raise ToolchainMissing(f"{TOOLCHAIN_PATH.relative_to(ROOT)} is missing: run `make toolchain` first")
    dirs = [Path(line) for line in TOOLCHAIN_PATH.read_text().split() if line]
    for directory in dirs:
        if not directory.is_dir():
            raise ToolchainMissing(f"{directory} is missing: run `make toolchain` (the cache was removed or the pins changed)")
    return dirs


def binary(name: str) -> Path:
    for directory in toolchain_dirs():
        if (directory / name).exists():
            return directory / name
    raise ToolchainMissing(f"{name} is not in the toolchain: run `make toolchain`")


# -- certificates ------------------------------------------------------------------


def _write_certificates(pki: Path) -> None:
    """A throwaway CA, the API server's serving cert for 127.0.0.1, an admin client cert and the SA signing key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    pki.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)

    def key() -> rsa.RSAPrivateKey:
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def save_key(k: rsa.RSAPrivateKey, name: str) -> None:
        path = pki / name
        path.write_bytes(
            k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption())
        )
        path.chmod(0o600)

    def name(cn: str, org: str | None = None) -> x509.Name:
        attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
        if org:
            attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
        return x509.Name(attrs)

    ca_key = key()
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("mlops-local-ca"))
        .issuer_name(name("mlops-local-ca"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    save_key(ca_key, "ca.key")
    (pki / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))

    def leaf(file: str, subject: x509.Name, usage: Any, sans: list[x509.GeneralName] | None = None) -> None:
        k = key()
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ca.subject)
            .public_key(k.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=7))
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        save_key(k, f"{file}.key")
        (pki / f"{file}.crt").write_bytes(builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))

    leaf(
        "apiserver",
        name("kube-apiserver"),
        ExtendedKeyUsageOID.SERVER_AUTH,
        [
            x509.IPAddress(ipaddress.ip_address(HOST)),
            x509.IPAddress(ipaddress.ip_address(SERVICE_RANGE.split("/")[0].rsplit(".", 1)[0] + ".1")),
            x509.DNSName("localhost"),
            x509.DNSName("kubernetes.default.svc"),
        ],
    )
    leaf("admin", name("admin", "system:masters"), ExtendedKeyUsageOID.CLIENT_AUTH)
    save_key(key(), "sa.key")
    sa_key = serialization.load_pem_private_key((pki / "sa.key").read_bytes(), None)
    (pki / "sa.pub").write_bytes(
        sa_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def _kubeconfig(pki: Path, server: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": {"server": server, "certificate-authority": str(pki / "ca.crt")}}],
        "users": [{"name": "admin", "user": {"client-certificate": str(pki / "admin.crt"), "client-key": str(pki / "admin.key")}}],
        "contexts": [{"name": "local", "context": {"cluster": "local", "user": "admin"}}],
        "current-context": "local",
    }


# -- processes ---------------------------------------------------------------------


@dataclass
class Cluster:
    """A running control plane: where it lives and how to reach it."""

    directory: Path
    server: str
    ports: dict[str, int]

    @property
    def kubeconfig(self) -> Path:
        return self.directory / "kubeconfig"

    @property
    def pki(self) -> Path:
        return self.directory / "pki"

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        context.load_cert_chain(str(self.pki / "admin.crt"), str(self.pki / "admin.key"))
        return context

    def get(self, path: str, timeout: float = 5) -> tuple[int, bytes]:
        request = urllib.request.Request(self.server + path)
        try:
            with urllib.request.urlopen(request, timeout=timeout, context=self.ssl_context()) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def api(self) -> Any:
        """A kubernetes client ApiClient logged in as the cluster admin."""
        from kubernetes import client, config

        configuration = client.Configuration()
        config.load_kube_config(config_file=str(self.kubeconfig), client_configuration=configuration)
        return client.ApiClient(configuration)


def _pid_file(directory: Path, name: str) -> Path:
    return directory / "pids" / f"{name}.pid"


def _spawn(directory: Path, name: str, argv: list[str]) -> Service:
    """A control-plane process in its own session, logging to logs/<name>.log, its pid on file for `stop`."""
    service = start_process(name, argv, log_dir=directory / "logs", cwd=directory)
    _pid_file(directory, name).parent.mkdir(parents=True, exist_ok=True)
    _pid_file(directory, name).write_text(str(service.process.pid))
    return service


def _wait(check: Callable[[], bool], service: Service, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            raise ClusterError(f"{service.name} exited with code {service.process.returncode}; log {service.log}:\n{service.tail()}")
        try:
            if check():
                return
        except Exception as exc:  # noqa: BLE001 - any failure is "not ready yet" until the deadline
            last = str(exc)
        time.sleep(0.25)
    raise ClusterError(f"{service.name} not ready after {timeout:.0f} s (last: {last}); log {service.log}:\n{service.tail()}")


def start(directory: Path = DEFAULT_DIR, *, timeout: float = 120, authorization_mode: str = "RBAC", api_only: bool = False) -> Cluster:
    """Start a fresh control plane in ``directory`` (wiped first) and wait until it serves and has its node.

    ``authorization_mode`` is kube-apiserver's (``AlwaysAllow`` plays MicroK8s before `microk8s enable rbac`);
    ``api_only`` starts etcd and the API server alone: no controllers, scheduler, kwok or node (enough for a preview).
    """
    if running_pids(directory):
        raise ClusterError(f"a local cluster is already running from {directory}: `make local-down` first")
    for sub in ("etcd", "pki", "pids", "logs", "kubeconfig", "cluster.json"):
        path = directory / sub
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    directory.mkdir(parents=True, exist_ok=True)
    pki = directory / "pki"
    _write_certificates(pki)
    ports = {name: free_port() for name in ("etcd-client", "etcd-peer", "apiserver")}
    server = f"https://{HOST}:{ports['apiserver']}"
    cluster = Cluster(directory, server, ports)
    import yaml

    cluster.kubeconfig.write_text(yaml.safe_dump(_kubeconfig(pki, server)))
    cluster.kubeconfig.chmod(0o600)
    (directory / "cluster.json").write_text(json.dumps({"server": server, "ports": ports}))
    etcd_url = f"http://{HOST}:{ports['etcd-client']}"
    peer_url = f"http://{HOST}:{ports['etcd-peer']}"
    kubeconfig = str(cluster.kubeconfig)
    try:
        etcd = _spawn(
            directory,
            "etcd",
            [
                str(binary("etcd")),
                "--name=local",
                f"--data-dir={directory / 'etcd'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=local={peer_url}",
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ],
        )
        _wait(lambda: listening(ports["etcd-client"]), etcd, timeout)
        apiserver = _spawn(
            directory,
            "kube-apiserver",
            [
                str(binary("kube-apiserver")),
                f"--etcd-servers={etcd_url}",
                f"--bind-address={HOST}",
                f"--advertise-address={HOST}",
                f"--secure-port={ports['apiserver']}",
                f"--tls-cert-file={pki / 'apiserver.crt'}",
                f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--client-ca-file={pki / 'ca.crt'}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                f"--service-cluster-ip-range={SERVICE_RANGE}",
                f"--authorization-mode={authorization_mode}",
                "--endpoint-reconciler-type=none",
                "--enable-priority-and-fairness=false",
                "--profiling=false",
                f"--cert-dir={pki}",
                "--v=1",
            ],
        )
        _wait(lambda: cluster.get("/readyz", timeout=2)[0] == 200, apiserver, timeout)
        if api_only:
            return cluster
        # Both talk to the API server as the admin and serve nothing themselves.
        controller_flags = [
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            f"--bind-address={HOST}",
            "--secure-port=0",
            "--leader-elect=false",
        ]
        _spawn(
            directory,
            "kube-controller-manager",
            [
                str(binary("kube-controller-manager")),
                *controller_flags,
                f"--service-account-private-key-file={pki / 'sa.key'}",
                f"--root-ca-file={pki / 'ca.crt'}",
                "--controllers=*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller,-route",
                "--concurrent-deployment-syncs=10",
                "--v=1",
            ],
        )
        _spawn(
            directory,
            "kube-scheduler",
            [str(binary("kube-scheduler")), *controller_flags, "--v=1"],
        )
        _spawn(
            directory,
            "kwok",
            [
                str(binary("kwok")),
                f"--kubeconfig={kubeconfig}",
                f"--config={KWOK_STAGES}",
                "--manage-all-nodes=false",
                "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
                f"--cidr={POD_RANGE}",
                f"--node-ip={HOST}",
                "--node-lease-duration-seconds=40",
            ],
        )
        _add_node(cluster)
        _wait_node_ready(cluster, timeout)
    except BaseException:
        stop(directory)
        raise
    return cluster


def _add_node(cluster: Cluster) -> None:
    from kubernetes import client

    core = client.CoreV1Api(cluster.api())
    capacity = {"cpu": "64", "memory": "256Gi", "pods": "250", "ephemeral-storage": "1Ti"}
    core.create_node(
        client.V1Node(
            metadata=client.V1ObjectMeta(
                name=NODE_NAME,
                annotations={"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
                labels={"kubernetes.io/hostname": NODE_NAME, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64", "type": "kwok"},
            ),
            status=client.V1NodeStatus(allocatable=capacity, capacity=capacity),
        )
    )


def _wait_node_ready(cluster: Cluster, timeout: float) -> None:
    from kubernetes import client

    core = client.CoreV1Api(cluster.api())
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        node = core.read_node(NODE_NAME)
        conditions = (node.status.conditions if node.status else None) or []
        if any(c.type == "Ready" and c.status == "True" for c in conditions):
            return
        time.sleep(0.5)
    raise ClusterError(f"node {NODE_NAME} not Ready after {timeout:.0f} s; kwok log:\n{tail(cluster.directory / 'logs' / 'kwok.log')}")


def running_pids(directory: Path) -> dict[str, int]:
    """Control-plane processes of ``directory`` that are still alive, by name."""
    alive = {}
    for name in ORDER:
        pid_file = _pid_file(directory, name)
        if pid_file.exists():
            pid = int(pid_file.read_text())
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, 0)
                alive[name] = pid
    return alive


def stop(directory: Path = DEFAULT_DIR, *, timeout: float = 20) -> list[str]:
    """Stop every process started from ``directory`` (newest first, by pid) and check their ports are closed."""
    stopped = []
    for name in reversed(ORDER):
        pid_file = _pid_file(directory, name)
        if not pid_file.exists():
            continue
        pid = int(pid_file.read_text())
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
            stopped.append(name)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.1)
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        pid_file.unlink()
    info = directory / "cluster.json"
    if info.exists():
        ports = json.loads(info.read_text())["ports"]
        still = [f"{name} ({port})" for name, port in ports.items() if listening(port)]
        if still:
            raise ClusterError(f"still listening after stop: {', '.join(still)}")
    return stopped


def _alive(pid: int) -> bool:
    try:
        finished, _ = os.waitpid(pid, os.WNOHANG)
        if finished:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        status = Path(f"/proc/{pid}/stat").read_text().split(") ")[-1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return status != "Z"
