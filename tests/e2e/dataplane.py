"""The platform's data plane on 127.0.0.1, configured from exactly what the program declares.

Shared by the end-to-end tests (``tests/e2e``) and the benchmark (``tools/bench_e2e.py``).
Every process is configured from the declared Kubernetes objects of a :class:`~tools.harness.Plan`:
a container's ``command + args`` and its env, each ``secretKeyRef`` resolved against the
declared Secret. The only translation is :class:`HostMap`; everything else is taken
literally, so a wrong flag, env name, URI scheme, prefix or annotation fails here.

What stands in for what:

=====================  ===========================================================
In the cluster          Here
=====================  ===========================================================
postgres image          Debian's PostgreSQL binaries, initialised the way the image's
                        entrypoint does (user, password, database from its env/files)
MinIO                   moto's S3 server; the bootstrap Job's ``mc mb`` / ``mc version``
                        lines replayed through the S3 API (MinIO's admin API, users
                        and policies, has no moto equivalent)
mlflow image            the venv's ``mlflow`` / ``python`` (same MLflow version)
Kubeflow notebook       ``tests/e2e/notebook.py`` run with exactly the PodDefault's env
storage-initializer     ``kserve_storage.Storage`` (the code that image runs) with the env
                        the KServe controller derives from the declared storage Secret
kserve-mlserver         ``mlserver start`` with the runtime's env (KServe v0.16.0)
=====================  ===========================================================

Every failure raises :class:`DataPlaneError` whose message starts with the component
(``"mlflow: ..."``, ``"migrate-db: ..."``) and quotes the tail of that component's log.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from tools.processes import HOST, Service, free_port, http, listening, process_group, start
from tools.processes import tail as read_tail
from tools.harness import DeclaredResource, Plan

ROOT = Path(__file__).resolve().parents[2]
# The image entrypoints (`mlflow`, `python`, `mlserver`, `moto_server`) are the venv's.
VENV_BIN = Path(sys.prefix) / "bin"
CLUSTER_DOMAIN = "svc.cluster.local"
# Every bounded wait, in seconds (2 shared cores: generous, never unbounded).
START_TIMEOUT = {"postgresql": 60, "minio": 30, "mlflow": 120, "mlserver": 90}
RUN_TIMEOUT = {"initdb": 60, "migrate-db": 180, "notebook": 240, "storage-initializer": 120}


class DataPlaneError(AssertionError):
    """A component of the data plane failed; the message starts with ``"<component>: "``."""

    def __init__(self, component: str, message: str, log: Optional[Path] = None, tail: Optional[str] = None):
        self.component = component
        text = f"{component}: {message}"
        if log is not None:
            text += f"\n--- last lines of {log} ---\n{tail if tail is not None else read_tail(log)}"
        super().__init__(text)


# -- reading declared objects ------------------------------------------------------


def pod_labels(resource: DeclaredResource) -> dict[str, str]:
    spec = resource.inputs["spec"]
    return (spec["template"].get("metadata") or {}).get("labels") or {}


def secret_data(plan: Plan, namespace: str, name: str, component: str) -> dict[str, str]:
    """A declared Secret's values (``stringData`` as declared, ``data`` base64-decoded)."""
    try:
        secret = plan.k8s("Secret", name, namespace).inputs
    except LookupError:
        raise DataPlaneError(component, f"references Secret {namespace}/{name}, which the program does not declare") from None
    values = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
    values.update(secret.get("stringData") or {})
    return values


def config_map_data(plan: Plan, namespace: str, name: str, component: str) -> dict[str, str]:
    try:
        return dict(plan.k8s("ConfigMap", name, namespace).inputs.get("data") or {})
    except LookupError:
        raise DataPlaneError(component, f"references ConfigMap {namespace}/{name}, which the program does not declare") from None


def resolve_env(plan: Plan, namespace: str, container: Mapping[str, Any], component: str) -> dict[str, str]:
    """The env a container gets: literals, and ``secretKeyRef``/``configMapKeyRef``/``envFrom`` resolved.

    Any other source (fieldRef, a missing key, an undeclared Secret) fails: a value
    the e2e cannot reproduce must not be silently dropped.
    """
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        if "secretRef" in source:
            env.update({prefix + k: v for k, v in secret_data(plan, namespace, source["secretRef"]["name"], component).items()})
        elif "configMapRef" in source:
            env.update({prefix + k: v for k, v in config_map_data(plan, namespace, source["configMapRef"]["name"], component).items()})
        else:
            raise DataPlaneError(component, f"envFrom source {sorted(source)} is not reproducible here")
    for var in container.get("env") or []:
        name = var["name"]
        if "value" in var:
            env[name] = str(var["value"])
            continue
        ref = var.get("valueFrom") or {}
        if "secretKeyRef" in ref:
            sel, values = ref["secretKeyRef"], secret_data(plan, namespace, ref["secretKeyRef"]["name"], component)
        elif "configMapKeyRef" in ref:
            sel, values = ref["configMapKeyRef"], config_map_data(plan, namespace, ref["configMapKeyRef"]["name"], component)
        else:
            raise DataPlaneError(component, f"env {name} is neither a literal value nor a secretKeyRef/configMapKeyRef: {sorted(ref) or 'empty'}")
        if sel["key"] not in values:
            if sel.get("optional"):
                continue
            raise DataPlaneError(component, f"env {name} references key {sel['key']!r} of {sel['name']}, which declares only {sorted(values)}")
        env[name] = values[sel["key"]]
    return env


def mounted_file(plan: Plan, resource: DeclaredResource, container: Mapping[str, Any], path: str, component: str) -> str:
    """The content a container reads at ``path`` from a Secret or ConfigMap volume."""
    namespace = resource.k8s_namespace
    volumes = {v["name"]: v for v in resource.pod_spec().get("volumes") or []}
    for mount in container.get("volumeMounts") or []:
        root = mount["mountPath"].rstrip("/") + "/"
        if not path.startswith(root):
            continue
        volume = volumes.get(mount["name"])
        if volume is None:
            raise DataPlaneError(component, f"mounts volume {mount['name']!r}, which its pod does not declare")
        relative = path[len(root):]
        if "secret" in volume:
            values = secret_data(plan, namespace, volume["secret"]["secretName"], component)
            items = volume["secret"].get("items")
        elif "configMap" in volume:
            values = config_map_data(plan, namespace, volume["configMap"]["name"], component)
            items = volume["configMap"].get("items")
        else:
            continue
        files = {i["path"]: i["key"] for i in items} if items else {k: k for k in values}
        if relative not in files or files[relative] not in values:
            raise DataPlaneError(component, f"reads {path}, but volume {mount['name']!r} has only {sorted(files)}")
        return values[files[relative]]
    raise DataPlaneError(component, f"reads {path}, which no Secret or ConfigMap volume of its pod provides")


def mutated(plan: Plan, kind: str, name: str, namespace: Optional[str], change: Callable[[dict[str, Any]], None]) -> Plan:
    """A copy of ``plan`` in which one declared object's inputs were changed by ``change`` (for negative tests)."""
    target = plan.k8s(kind, name, namespace)
    resources = []
    for r in plan.resources:
        if r is target:
            r = copy.copy(r)
            r.inputs = copy.deepcopy(r.inputs)
            change(r.inputs)
        resources.append(r)
    return Plan(stack=plan.stack, resources=resources, outputs=dict(plan.outputs), secret_outputs=set(plan.secret_outputs))


# -- the host mapping ----------------------------------------------------------------


@dataclass
class HostMap:
    """The only translation between the declared objects and this machine.

    1. Each declared Service address ``<svc>.<ns>.svc.cluster.local:<port>`` maps to
       ``127.0.0.1:<free port>``, where the process standing in for the workload that
       Service selects listens. :meth:`rewrite` replaces exactly those ``host:port``
       tokens in a URL, env value or annotation; scheme, path, prefix, query and
       everything else stay as declared. An in-cluster address not in the map (a short
       name, a port no Service declares) is left alone, and :meth:`rewrite_env` fails
       naming it, as a lookup would fail in the cluster (no DNS query leaves here).
    2. A container's listen address: ``--host 0.0.0.0`` becomes ``127.0.0.1`` and
       ``--port <containerPort>`` the mapped port (:meth:`listen_args`), so nothing
       listens beyond loopback. A server declared to listen on anything but all
       interfaces fails: its Service could not reach it.
    3. Mount paths a workload writes to (emptyDirs, PVCs, ``/mnt/models``) are
       per-run directories; each place that does it says so.
    """

    routes: dict[str, int] = field(default_factory=dict)

    def expose(self, plan: Plan, workload: DeclaredResource) -> dict[int, int]:
        """Give each containerPort of ``workload`` a loopback port; route every declared Service selecting it there.

        Re-exposing the same workload (a restart) keeps its ports. Fails if no Service
        selects the pods, or a Service targets a port no container declares.
        """
        component = workload.k8s_name
        labels = pod_labels(workload)
        ports = {p["name"]: p["containerPort"] for c in workload.pod_spec()["containers"] for p in c.get("ports") or [] if "name" in p}
        numbers = {p["containerPort"] for c in workload.pod_spec()["containers"] for p in c.get("ports") or []}
        services = [
            s for s in plan.kinds("Service")
            if s.k8s_namespace == workload.k8s_namespace
            and (s.inputs["spec"].get("selector") or {})
            and (s.inputs["spec"]["selector"]).items() <= labels.items()
        ]
        if not services:
            raise DataPlaneError(component, f"no declared Service selects its pods (labels {labels})")
        local: dict[int, int] = {}
        for service in services:
            for sp in service.inputs["spec"]["ports"]:
                target = sp.get("targetPort", sp["port"])
                container_port = ports.get(target) if isinstance(target, str) else int(target)
                if container_port not in numbers:
                    raise DataPlaneError(component, f"Service {service.k8s_name} port {sp['port']} targets {target!r}, which no container declares")
                address = f"{service.k8s_name}.{service.k8s_namespace}.{CLUSTER_DOMAIN}:{sp['port']}"
                port = local.setdefault(container_port, self.routes.get(address) or free_port())
                self.routes[address] = port
        return local

    def rewrite(self, value: str) -> str:
        if not self.routes:
            return value
        alternatives = "|".join(re.escape(a) for a in sorted(self.routes, key=len, reverse=True))
        pattern = re.compile(rf"(?<![\w.-])({alternatives})(?!\d)")
        return pattern.sub(lambda m: f"{HOST}:{self.routes[m.group(1)]}", value)

    def rewrite_env(self, env: Mapping[str, str], component: str) -> dict[str, str]:
        """``env`` with every routed address rewritten; an in-cluster address left over fails (no DNS lookups here)."""
        out = {k: self.rewrite(v) for k, v in env.items()}
        for name, value in out.items():
            left = re.search(rf"[\w.-]+\.{re.escape(CLUSTER_DOMAIN)}(:\d+)?", value)
            if left:
                raise DataPlaneError(component, f"env {name} names {left.group(0)}, which no declared Service provides")
        return out

    @staticmethod
    def listen_args(component: str, args: Sequence[str], container_port: int, local_port: int) -> list[str]:
        """``--host 0.0.0.0`` -> ``127.0.0.1``; ``--port <containerPort>`` -> ``local_port``; nothing else."""
        out = list(args)
        flags = {arg: i + 1 for i, arg in enumerate(out[:-1]) if arg in ("--host", "--port")}
        if "--host" not in flags or out[flags["--host"]] not in ("0.0.0.0", "::"):
            declared = out[flags["--host"]] if "--host" in flags else "its default (loopback)"
            raise DataPlaneError(component, f"listens on {declared}, not all interfaces: its Service could not reach it")
        out[flags["--host"]] = HOST
        if "--port" not in flags or out[flags["--port"]] != str(container_port):
            declared = out[flags["--port"]] if "--port" in flags else "its default port"
            raise DataPlaneError(component, f"listens on --port {declared}, but its Service targets containerPort {container_port}")
        out[flags["--port"]] = str(local_port)
        return out

    def without(self, *addresses: str) -> "HostMap":
        """A copy in which ``addresses`` get fresh ports when exposed (a second instance beside a running one)."""
        return HostMap({a: p for a, p in self.routes.items() if a not in addresses})


# -- processes -------------------------------------------------------------------------


# MLflow 3 sends usage telemetry to an external endpoint unless told not to; here only loopback traffic is allowed.
NO_TELEMETRY = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}


def base_env(home: Path) -> dict[str, str]:
    """What the images provide besides the declared env: a PATH to the entrypoints, a locale, a HOME; telemetry off.

    Nothing is inherited from the caller's environment, so a developer's own AWS_* or
    MLFLOW_* variables can neither help nor break a run.
    """
    return {"PATH": f"{VENV_BIN}:/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": str(home), **NO_TELEMETRY}


def _spawn(name: str, argv: Sequence[str], env: Mapping[str, str], log: Path, cwd: Optional[Path] = None) -> Service:
    """A service with exactly ``env`` (nothing inherited), its log appended across restarts."""
    return start(name, argv, log=log, env=env, cwd=cwd, inherit_env=False)


def _await(service: Service, ready: Callable[[], Optional[str]], timeout: float, what: str) -> float:
    """Poll ``ready`` (None when ready, else why not) every 0.2 s; returns seconds taken. Bounded by ``timeout``."""
    start = time.monotonic()
    last = "not checked yet"
    while time.monotonic() - start < timeout:
        if service.process.poll() is not None:
            raise DataPlaneError(service.name, f"exited with code {service.process.returncode} before {what}", service.log, service.tail())
        last = ready()
        if last is None:
            return time.monotonic() - start
        time.sleep(0.2)
    raise DataPlaneError(service.name, f"{what} did not happen within {timeout:.0f} s (last: {last})", service.log, service.tail())


def run_once(component: str, argv: Sequence[str], env: Mapping[str, str], log: Path, timeout: float, cwd: Optional[Path] = None) -> None:
    """Run a one-shot command (an init container, a Job, a notebook) to completion; fail with its log tail."""
    service = _spawn(component, argv, env, log, cwd)
    try:
        code = service.process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        service.stop(timeout=5)
        raise DataPlaneError(component, f"did not finish within {timeout:.0f} s", log) from None
    if code != 0:
        raise DataPlaneError(component, f"exited with code {code}", log)


def _http_ready(url: str, host: Optional[str] = None) -> Callable[[], Optional[str]]:
    def check() -> Optional[str]:
        try:
            status, _ = http(url, host=host, timeout=3)
        except OSError as exc:
            return str(getattr(exc, "reason", exc))
        return None if status == 200 else f"HTTP {status}"

    return check


# -- PostgreSQL --------------------------------------------------------------------------


def postgres_bindir() -> Optional[Path]:
    """Debian's newest PostgreSQL server binaries, or None when PostgreSQL is not installed."""
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
    if candidates:
        return candidates[-1].parent
    found = shutil.which("initdb")
    return Path(found).parent if found and Path(found).with_name("postgres").exists() else None


@dataclass(frozen=True)
class DatabaseCredentials:
    user: str
    password: str
    database: str


def postgres_credentials(plan: Plan, statefulset: DeclaredResource) -> DatabaseCredentials:
    """What the postgres image's entrypoint initialises the cluster with, read from the declared container.

    Each of POSTGRES_USER / _PASSWORD / _DB comes from its env var or from the file named
    by ``<VAR>_FILE`` (the entrypoint's ``file_env``); setting both is an error, as there.
    """
    component = "postgresql"
    container = statefulset.pod_spec()["containers"][0]
    env = resolve_env(plan, statefulset.k8s_namespace, container, component)

    def file_env(var: str, default: Optional[str]) -> Optional[str]:
        if var in env and f"{var}_FILE" in env:
            raise DataPlaneError(component, f"both {var} and {var}_FILE are set (the image refuses to start)")
        if f"{var}_FILE" in env:
            return mounted_file(plan, statefulset, container, env[f"{var}_FILE"], component)
        return env.get(var, default)

    user = file_env("POSTGRES_USER", "postgres")
    password = file_env("POSTGRES_PASSWORD", None)
    database = file_env("POSTGRES_DB", user)
    if not password and env.get("POSTGRES_HOST_AUTH_METHOD") != "trust":
        raise DataPlaneError(component, "the database is uninitialized and no superuser password is specified (the image refuses to start)")
    return DatabaseCredentials(user, password or "", database)


# -- S3 (moto in place of MinIO) and the bucket bootstrap -----------------------------------


def replay_bootstrap(job: DeclaredResource, env: Mapping[str, str], log: Path) -> list[str]:
    """Replay the bootstrap Job's ``mc`` script through the S3 API; returns the lines not replayable.

    ``mc alias set``, ``mc mb`` and ``mc version enable`` are replayed literally (same
    bucket, same endpoint and credentials, after the host mapping). ``mc admin`` lines
    (MinIO users and policies) have no S3 equivalent and are returned. Any other
    command fails, so a changed script cannot be skipped by accident.
    """
    import boto3

    component = "minio-bootstrap"
    container = job.pod_spec()["containers"][0]
    command = container.get("command") or []
    if command[:2] != ["/bin/sh", "-ec"] or len(command) != 3:
        raise DataPlaneError(component, f"expected command ['/bin/sh', '-ec', script], got {command[:2]}")
    aliases: dict[str, Any] = {}
    skipped: list[str] = []

    def expand(word: str) -> str:
        def var(m: re.Match) -> str:
            name = m.group(1) or m.group(2)
            if name not in env:
                raise DataPlaneError(component, f"script uses ${name}, which its container's env does not define")
            return env[name]

        return re.sub(r"\$\{(\w+)\}|\$(\w+)", var, word)

    replayed: list[str] = []
    for raw in command[2].splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        # The first command of `a || b` and without its redirection: what the replay needs.
        first = line.split("||")[0].split(">")[0].strip()
        words = [expand(w) for w in shlex.split(first)]
        if words[0] == "echo":
            continue
        if words[0] != "mc":
            raise DataPlaneError(component, f"cannot replay non-mc command {words[0]!r}")
        if words[1] == "admin":
            skipped.append(first)
            continue
        if words[1:3] == ["alias", "set"]:
            alias, url, key, secret = words[3:7]
            if not url.startswith(f"http://{HOST}:"):
                raise DataPlaneError(component, f"MINIO_URL {url} is not a declared in-cluster Service address")
            aliases[alias] = boto3.client("s3", endpoint_url=url, aws_access_key_id=key, aws_secret_access_key=secret, region_name="us-east-1")
            replayed.append(f"mc alias set {alias} {url} {key} ***")
            continue
        target = words[-1]
        alias, _, bucket = target.partition("/")
        if alias not in aliases:
            raise DataPlaneError(component, f"{' '.join(words[:2])} uses alias {alias!r} before `mc alias set`")
        client = aliases[alias]
        if words[1] == "mb":
            try:
                client.create_bucket(Bucket=bucket)
            except client.exceptions.BucketAlreadyOwnedByYou:
                if "--ignore-existing" not in words:
                    raise
        elif words[1:3] == ["version", "enable"]:
            client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        else:
            raise DataPlaneError(component, f"cannot replay {' '.join(words[:3])!r}")
        replayed.append(" ".join(words))
    log.write_text("replayed through the S3 API:\n" + "\n".join(replayed) + "\n\nnot replayable (MinIO admin API):\n" + "\n".join(skipped) + "\n")
    return skipped


# -- KServe --------------------------------------------------------------------------------

# KServe v0.16.0 config/configmap/inferenceservice.yaml, "credentials": the s3 defaults.
KSERVE_S3_CONFIG = {"s3AccessKeyIDName": "AWS_ACCESS_KEY_ID", "s3SecretAccessKeyName": "AWS_SECRET_ACCESS_KEY"}
KSERVE_STORAGE_SECRET_ANNOTATION = "serving.kserve.io/storageSecretName"
_S3_ANNOTATION = "serving.kserve.io/s3-"


def kserve_s3_env(secret: Mapping[str, Any], data: Mapping[str, str]) -> dict[str, str]:
    """The storage env the KServe v0.16.0 controller derives from an S3 credentials Secret.

    A transcription of ``pkg/credentials/s3`` (``BuildSecretEnvs`` / ``BuildS3EnvVars``):
    keys from the Secret, then each setting from its annotation, else the Secret's data,
    else the (empty) configmap default.
    """
    annotations = (secret.get("metadata") or {}).get("annotations") or {}
    env = {
        "AWS_ACCESS_KEY_ID": data.get(KSERVE_S3_CONFIG["s3AccessKeyIDName"], ""),
        "AWS_SECRET_ACCESS_KEY": data.get(KSERVE_S3_CONFIG["s3SecretAccessKeyName"], ""),
    }

    def value(annotation: str, data_key: str) -> str:
        if _S3_ANNOTATION + annotation in annotations:
            return annotations[_S3_ANNOTATION + annotation]
        return data.get(data_key, "")

    use_https = value("usehttps", "S3_USE_HTTPS")
    if use_https:
        env["S3_USE_HTTPS"] = use_https
    endpoint = value("endpoint", "S3_ENDPOINT")
    if endpoint:
        env["S3_ENDPOINT"] = endpoint
        env["AWS_ENDPOINT_URL"] = ("http://" if use_https == "0" else "https://") + endpoint
    for annotation, data_key, name in (
        ("verifyssl", "S3_VERIFY_SSL", "S3_VERIFY_SSL"),
        ("useanoncredential", "awsAnonymousCredential", "awsAnonymousCredential"),
        ("region", "AWS_DEFAULT_REGION", "AWS_DEFAULT_REGION"),
        ("usevirtualbucket", "S3_USER_VIRTUAL_BUCKET", "S3_USER_VIRTUAL_BUCKET"),
        ("useaccelerate", "S3_USE_ACCELERATE", "S3_USE_ACCELERATE"),
        ("cabundle", "AWS_CA_BUNDLE", "AWS_CA_BUNDLE"),
        ("cabundle-configmap", "AWS_CA_BUNDLE_CONFIGMAP", "AWS_CA_BUNDLE_CONFIGMAP"),
    ):
        found = value(annotation, data_key)
        if found:
            env[name] = found
    return env


def storage_initializer_env(plan: Plan, isvc: DeclaredResource) -> dict[str, str]:
    """How the KServe v0.16.0 controller finds the storage Secret of an InferenceService, and the env it derives.

    ``serving.kserve.io/storageSecretName`` on the InferenceService wins; otherwise every
    Secret listed by the predictor's ServiceAccount (``default`` if none) that has the
    secret-access-key key is used (``CreateSecretVolumeAndEnvFromServiceAccount``).
    """
    component = "storage-initializer"
    namespace = isvc.k8s_namespace
    annotations = isvc.inputs["metadata"].get("annotations") or {}
    if KSERVE_STORAGE_SECRET_ANNOTATION in annotations:
        names = [annotations[KSERVE_STORAGE_SECRET_ANNOTATION]]
    else:
        account = isvc.inputs["spec"]["predictor"].get("serviceAccountName") or "default"
        try:
            sa = plan.k8s("ServiceAccount", account, namespace).inputs
        except LookupError:
            raise DataPlaneError(component, f"the predictor's ServiceAccount {namespace}/{account} is not declared: no storage credentials") from None
        names = [s["name"] for s in sa.get("secrets") or []]
        if not names:
            raise DataPlaneError(component, f"ServiceAccount {namespace}/{account} lists no secrets: KServe would inject no storage credentials")
    env: dict[str, str] = {}
    for name in names:
        data = secret_data(plan, namespace, name, component)
        if KSERVE_S3_CONFIG["s3SecretAccessKeyName"] in data:
            env.update(kserve_s3_env(plan.k8s("Secret", name, namespace).inputs, data))
    if not env:
        raise DataPlaneError(component, f"none of the Secrets {names} has key {KSERVE_S3_CONFIG['s3SecretAccessKeyName']}: KServe would inject no S3 credentials")
    return env


# KServe v0.16.0 config/runtimes: the ClusterServingRuntimes that serve mlflow or sklearn models.
KSERVE_RUNTIMES = {
    "kserve-mlserver": {
        "formats": [("sklearn", "0", 2), ("sklearn", "1", 2), ("mlflow", "1", 1), ("mlflow", "2", 1)],
        "protocols": ["v2"],
        "env": {"MLSERVER_HTTP_PORT": "8080", "MLSERVER_GRPC_PORT": "9000", "MODELS_DIR": "/mnt/models"},
    },
    "kserve-sklearnserver": {"formats": [("sklearn", "1", 1)], "protocols": ["v1", "v2"], "env": {}},
}
MLSERVER_MODEL_CLASS = {"mlflow": "mlserver_mlflow.MLflowRuntime", "sklearn": "mlserver_sklearn.SKLearnModel"}
MODEL_MOUNT = "/mnt/models"


def select_runtime(isvc: DeclaredResource) -> str:
    """KServe v0.16.0's runtime auto-selection (``GetSupportingRuntimes``) for the predictor's model."""
    model = isvc.inputs["spec"]["predictor"].get("model")
    if not model:
        raise DataPlaneError("serving", "the InferenceService has no spec.predictor.model")
    fmt = model["modelFormat"]
    label = fmt["name"] + (f":{fmt['version']}" if fmt.get("version") else "")
    protocol = model.get("protocolVersion", "v1")
    if model.get("runtime"):
        # A named runtime must still support the format (autoSelect or not) and the protocol.
        runtime = KSERVE_RUNTIMES.get(model["runtime"])
        if runtime is None:
            raise DataPlaneError("serving", f"runtime {model['runtime']} is not one of KServe's ClusterServingRuntimes {sorted(KSERVE_RUNTIMES)}")
        labels = {f for n, v, _ in runtime["formats"] for f in (n, f"{n}:{v}")}
        if label not in labels or protocol not in runtime["protocols"]:
            raise DataPlaneError("serving", f"runtime {model['runtime']} does not serve modelFormat {label} over protocol {protocol}")
        return model["runtime"]
    candidates = []
    for name, runtime in KSERVE_RUNTIMES.items():
        labels = {f for n, v, _ in runtime["formats"] for f in (n, f"{n}:{v}")}
        if label in labels and protocol in runtime["protocols"]:
            priority = max(p for n, _, p in runtime["formats"] if n == fmt["name"])
            candidates.append((-priority, name))
    if not candidates:
        raise DataPlaneError("serving", f"no KServe runtime serves modelFormat {label} over protocol {protocol} (kserve-mlserver: mlflow 1|2 on v2)")
    return sorted(candidates)[0][1]


def mlserver_env(isvc: DeclaredResource, runtime: str) -> dict[str, str]:
    """The kserve-container env KServe gives an MLServer predictor (runtime env + ``SetMlServerDefaults``)."""
    model = isvc.inputs["spec"]["predictor"]["model"]
    env = dict(KSERVE_RUNTIMES[runtime]["env"])
    env["MLSERVER_MODEL_IMPLEMENTATION"] = MLSERVER_MODEL_CLASS[model["modelFormat"]["name"]]
    env.update({"MLSERVER_MODEL_NAME": isvc.k8s_name, "MLSERVER_MODEL_URI": MODEL_MOUNT})
    for var in model.get("env") or []:
        if "value" not in var:
            raise DataPlaneError("mlserver", f"predictor env {var['name']} is not a literal")
        env[var["name"]] = var["value"]
    return env


NOTEBOOK = Path(__file__).with_name("notebook.py")
PODDEFAULT_KIND = "PodDefault"

# What KServe v0.16.0's storage-initializer image runs (python/storage-initializer/scripts/initializer-entrypoint).
STORAGE_INITIALIZER = """
import sys
from kserve_storage import Storage
from kserve_storage.logging import configure_logging
configure_logging()
Storage.download_files(sys.argv[1::2], sys.argv[2::2])
"""


def poddefault_env(plan: Plan, namespace: str) -> dict[str, str]:
    """The env Kubeflow's admission webhook injects into a notebook that opts in to MLflow.

    The notebook carries the selector labels of the PodDefaults that set
    MLFLOW_TRACKING_URI (what ticking that configuration in the notebook form does);
    every PodDefault of the namespace whose selector matches those labels applies,
    as in the webhook. Conflicting values fail, as they do there.
    """
    defaults = [r for r in plan.kinds(PODDEFAULT_KIND) if r.k8s_namespace == namespace]
    mlflow = [d for d in defaults if any(e["name"] == "MLFLOW_TRACKING_URI" for e in d.inputs["spec"].get("env") or [])]
    if not mlflow:
        raise DataPlaneError("notebook", f"no PodDefault in {namespace} injects MLFLOW_TRACKING_URI (found {[d.k8s_name for d in defaults]})")
    labels: dict[str, str] = {}
    for d in mlflow:
        labels.update(d.inputs["spec"]["selector"].get("matchLabels") or {})
    env: dict[str, str] = {}
    for default in defaults:
        selector = default.inputs["spec"]["selector"].get("matchLabels") or {}
        if not selector.items() <= labels.items():
            continue
        spec = default.inputs["spec"]
        if spec.get("volumeMounts") or spec.get("volumes"):
            raise DataPlaneError("notebook", f"PodDefault {default.k8s_name} mounts volumes, which this e2e does not materialise")
        for name, value in resolve_env(plan, namespace, spec, "notebook").items():
            if name in env and env[name] != value:
                raise DataPlaneError("notebook", f"PodDefaults in {namespace} set {name} to different values")
            env[name] = value
    return env


# -- following declared addresses -----------------------------------------------------------


def workload_behind(plan: Plan, url: str, component: str) -> DeclaredResource:
    """The Deployment or StatefulSet that a declared in-cluster URL (or ``host:port``) reaches through its Service."""
    match = re.search(rf"(?:^|//|@)([a-z0-9-]+)\.([a-z0-9-]+)\.{re.escape(CLUSTER_DOMAIN)}(?::\d+)?", url)
    if not match:
        raise DataPlaneError(component, f"{_redact(url)} is not an in-cluster Service address (<svc>.<ns>.{CLUSTER_DOMAIN})")
    name, namespace = match.groups()
    try:
        selector = plan.k8s("Service", name, namespace).inputs["spec"].get("selector") or {}
    except LookupError:
        raise DataPlaneError(component, f"{_redact(url)} names Service {namespace}/{name}, which the program does not declare") from None
    found = [
        r for kind in ("Deployment", "StatefulSet") for r in plan.kinds(kind)
        if r.k8s_namespace == namespace and selector and selector.items() <= pod_labels(r).items()
    ]
    if len(found) != 1:
        raise DataPlaneError(component, f"Service {namespace}/{name} selects {len(found)} declared workloads, expected 1")
    return found[0]


def _redact(text: str) -> str:
    """A URL with its password hidden, for error messages."""
    return re.sub(r"//([^:/@]+):[^@/]+@", r"//\1:***@", text)


def _probe(container: Mapping[str, Any]) -> tuple[str, Any]:
    probe = container.get("readinessProbe") or container.get("startupProbe") or {}
    get = probe.get("httpGet")
    if not get:
        raise DataPlaneError(container["name"], "declares no HTTP readiness probe")
    return get.get("path", "/"), get["port"]


def _container_port(container: Mapping[str, Any], port: Any) -> int:
    if isinstance(port, int) or str(port).isdigit():
        return int(port)
    for p in container.get("ports") or []:
        if p.get("name") == port:
            return p["containerPort"]
    raise DataPlaneError(container["name"], f"probe port {port!r} is not a declared container port")


# -- the data plane of one run --------------------------------------------------------------


@dataclass
class Server:
    """A long-running stand-in for a declared workload."""

    component: str
    service: Service
    port: int
    seconds_to_ready: float = 0.0
    workload: Optional[DeclaredResource] = None
    other_ports: tuple[int, ...] = ()

    @property
    def base(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def ports(self) -> tuple[int, ...]:
        return (self.port, *self.other_ports)


class DataPlane:
    """The processes and directories of one run. ``stop()`` ends every process it started.

    A fresh temporary directory holds the data directories (removed by ``close()``);
    ``logs`` keeps one log per component, quoted in every failure.
    """

    def __init__(self, logs: Path):
        # World-traversable, so PostgreSQL running as the `postgres` user can reach its data directory.
        self.workdir = Path(tempfile.mkdtemp(prefix="mlops-e2e-"))
        self.workdir.chmod(0o755)
        self.logs = logs
        self.logs.mkdir(parents=True, exist_ok=True)
        self.hosts = HostMap()
        self.servers: list[Server] = []
        self.home = self.workdir / "home"
        self.home.mkdir(parents=True, exist_ok=True)
        self.timings: dict[str, float] = {}

    def log(self, name: str) -> Path:
        """A fresh log file per process start (a restart or a second instance gets ``name-2.log`` ...)."""
        path = self.logs / f"{name}.log"
        n = 1
        while path.exists():
            n += 1
            path = self.logs / f"{name}-{n}.log"
        return path

    # ---- PostgreSQL, as the postgres image would run it

    def start_postgres(self, plan: Plan, backend_uri: str) -> Server:
        """Initialise and start the PostgreSQL the backend store URI points at, with the declared credentials."""
        component = "postgresql"
        bindir = postgres_bindir()
        if bindir is None:
            raise DataPlaneError(component, "no PostgreSQL server binaries (Debian package postgresql)")
        statefulset = workload_behind(plan, backend_uri, component)
        creds = postgres_credentials(plan, statefulset)
        ports = self.hosts.expose(plan, statefulset)
        # The image's server listens on PGPORT (5432 unless set).
        listen = int(resolve_env(plan, statefulset.k8s_namespace, statefulset.pod_spec()["containers"][0], component).get("PGPORT", "5432"))
        if listen not in ports:
            raise DataPlaneError(component, f"listens on {listen}, but its Service targets container ports {sorted(ports)}")
        port = ports[listen]
        # The volume mounts (PGDATA, the socket dir) become per-run directories owned by the server's user.
        root = Path(tempfile.mkdtemp(prefix="postgresql-", dir=self.workdir))
        data, sockets = root / "data", root / "run"
        as_postgres: list[str] = []
        for d in (data, sockets):
            d.mkdir()
        root.chmod(0o755)
        if os.geteuid() == 0:
            # PostgreSQL refuses to run as root: run it as Debian's `postgres` user, as the image does.
            runuser = shutil.which("runuser", path="/usr/sbin:/sbin:/usr/bin:/bin")
            if runuser is None:
                raise DataPlaneError(component, "running as root, and no runuser to run PostgreSQL as the postgres user")
            as_postgres = [runuser, "-u", "postgres", "--"]
            for d in (data, sockets):
                shutil.chown(d, "postgres", "postgres")
        pwfile = root / "pwfile"
        pwfile.write_text(creds.password + "\n")
        pwfile.chmod(0o600)
        if as_postgres:
            shutil.chown(pwfile, "postgres", "postgres")
        # The image's entrypoint: initdb with POSTGRES_USER as superuser and its password, scram for TCP.
        run_once(
            "postgresql",
            [*as_postgres, str(bindir / "initdb"), "-D", str(data), f"--username={creds.user}", f"--pwfile={pwfile}",
             "--auth-local=trust", "--auth-host=scram-sha-256", "--encoding=UTF8", "--locale=C.UTF-8"],
            base_env(self.home), self.log("postgresql-initdb"), RUN_TIMEOUT["initdb"], cwd=root,
        )
        pwfile.unlink()
        service = _spawn(
            component,
            # fsync=off: a throwaway cluster; durability across *this* server's restarts is not what is tested.
            [*as_postgres, str(bindir / "postgres"), "-D", str(data), "-h", HOST, "-p", str(port), "-k", str(sockets), "-c", "fsync=off"],
            base_env(self.home), self.log("postgresql"), cwd=root,
        )
        server = Server(component, service, port, workload=statefulset)
        self.servers.append(server)
        server.seconds_to_ready = _await(service, lambda: self._pg_ready(port, creds, "postgres"), START_TIMEOUT[component], f"accepting connections on {HOST}:{port}")
        # ... and the entrypoint's CREATE DATABASE for POSTGRES_DB.
        if creds.database != "postgres":
            self._pg_execute(port, creds, "postgres", f'CREATE DATABASE "{creds.database}"')
        self.postgres = (port, creds)
        return server

    @staticmethod
    def _pg_connect(port: int, creds: DatabaseCredentials, database: str):
        import psycopg2

        return psycopg2.connect(host=HOST, port=port, user=creds.user, password=creds.password, dbname=database, connect_timeout=3)

    def _pg_ready(self, port: int, creds: DatabaseCredentials, database: str) -> Optional[str]:
        try:
            self._pg_connect(port, creds, database).close()
        except Exception as exc:  # psycopg2.OperationalError while starting up
            return str(exc).strip().splitlines()[0]
        return None

    def _pg_execute(self, port: int, creds: DatabaseCredentials, database: str, sql: str) -> None:
        conn = self._pg_connect(port, creds, database)
        conn.autocommit = True
        try:
            conn.cursor().execute(sql)
        finally:
            conn.close()

    def tables(self) -> set[str]:
        """The tables in the declared database (what the migration created)."""
        port, creds = self.postgres
        conn = self._pg_connect(port, creds, creds.database)
        try:
            cur = conn.cursor()
            cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")
            return {row[0] for row in cur.fetchall()}
        finally:
            conn.close()

    # ---- S3: moto in place of MinIO, bucket created as the bootstrap Job does

    def start_s3(self, plan: Plan, endpoint_url: str) -> Server:
        """moto's S3 server on the port the MinIO Service that ``endpoint_url`` names is mapped to."""
        component = "minio"
        minio = workload_behind(plan, endpoint_url, component)
        ports = self.hosts.expose(plan, minio)
        args = minio.pod_spec()["containers"][0].get("args") or []
        # MinIO's S3 API listens on --address (":9000" unless set).
        address = args[args.index("--address") + 1] if "--address" in args else ":9000"
        listen = int(address.rsplit(":", 1)[1])
        if listen not in ports:
            raise DataPlaneError(component, f"listens on {address}, but its Service targets container ports {sorted(ports)}")
        port = ports[listen]
        service = _spawn(component, ["moto_server", "-H", HOST, "-p", str(port)], base_env(self.home), self.log("minio-moto"))
        server = Server(component, service, port, workload=minio)
        self.servers.append(server)
        server.seconds_to_ready = _await(service, _http_ready(f"{server.base}/"), START_TIMEOUT[component], f"S3 answering on {server.base}")
        return server

    def bootstrap_buckets(self, plan: Plan) -> list[str]:
        """Replay every declared MinIO bootstrap Job (``mc alias set`` ... in its script); returns the unreplayable lines."""
        skipped: list[str] = []
        jobs = [j for j in plan.kinds("Job") if "mc alias set" in " ".join(j.pod_spec()["containers"][0].get("command") or [])]
        if not jobs:
            raise DataPlaneError("minio-bootstrap", "the program declares no bootstrap Job (mc alias set ...)")
        for job in jobs:
            env = self.hosts.rewrite_env(resolve_env(plan, job.k8s_namespace, job.pod_spec()["containers"][0], "minio-bootstrap"), "minio-bootstrap")
            skipped += replay_bootstrap(job, env, self.log(f"minio-bootstrap-{job.k8s_name}"))
        return skipped

    def s3_keys(self, endpoint: int, bucket: str, prefix: str = "") -> list[str]:
        import boto3

        client = boto3.client("s3", endpoint_url=f"http://{HOST}:{endpoint}", aws_access_key_id="e2e", aws_secret_access_key="e2e", region_name="us-east-1")
        keys: list[str] = []
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys += [o["Key"] for o in page.get("Contents", [])]
        return keys

    # ---- a Deployment: its init containers, then its container

    def run_init_containers(self, plan: Plan, deployment: DeclaredResource) -> None:
        """Run each declared init container to completion, in order, as the kubelet does."""
        for init in deployment.pod_spec().get("initContainers") or []:
            component = init["name"]
            if not init.get("command"):
                raise DataPlaneError(component, "has no command: the image's entrypoint cannot be reproduced here")
            env = {**base_env(self.home), **self.hosts.rewrite_env(resolve_env(plan, deployment.k8s_namespace, init, component), component)}
            started = time.monotonic()
            run_once(component, [*init["command"], *(init.get("args") or [])], env, self.log(component), RUN_TIMEOUT.get(component, 120))
            self.timings[component] = time.monotonic() - started

    def start_deployment(self, plan: Plan, deployment: DeclaredResource, *, component: Optional[str] = None, hosts: Optional[HostMap] = None) -> Server:
        """Start the pod's single container with its declared ``command + args`` and env; wait for its readiness probe."""
        hosts = hosts or self.hosts
        containers = deployment.pod_spec()["containers"]
        if len(containers) != 1:
            raise DataPlaneError(deployment.k8s_name, f"has {len(containers)} containers; one is supported")
        container = containers[0]
        component = component or container["name"]
        if not container.get("command"):
            raise DataPlaneError(component, "has no command: the image's entrypoint cannot be reproduced here")
        path, probe_port = _probe(container)
        container_port = _container_port(container, probe_port)
        local = hosts.expose(plan, deployment)[container_port]
        argv = [*container["command"], *hosts.listen_args(component, container.get("args") or [], container_port, local)]
        env = {**base_env(self.home), **hosts.rewrite_env(resolve_env(plan, deployment.k8s_namespace, container, component), component)}
        service = _spawn(component, argv, env, self.log(component))
        server = Server(component, service, local, workload=deployment)
        self.servers.append(server)
        server.seconds_to_ready = _await(service, _http_ready(f"{server.base}{path}"), START_TIMEOUT.get(container["name"], 120), f"its readiness probe GET {path} answered 200")
        return server

    # ---- MLflow

    def bring_up_tracking(self, plan: Plan) -> Server:
        """PostgreSQL, S3 with its bucket, the schema migration and the MLflow server: all from ``plan``."""
        deployment = self.tracking_deployment(plan)
        server_env = resolve_env(plan, deployment.k8s_namespace, deployment.pod_spec()["containers"][0], "mlflow")
        self.start_postgres(plan, server_env["MLFLOW_BACKEND_STORE_URI"])
        self.start_s3(plan, server_env["MLFLOW_S3_ENDPOINT_URL"])
        self.bootstrap_buckets(plan)
        self.run_init_containers(plan, deployment)
        return self.start_deployment(plan, deployment)

    @staticmethod
    def tracking_deployment(plan: Plan) -> DeclaredResource:
        return workload_behind(plan, plan.outputs["trackingUri"], "mlflow")

    def mlflow_api(self, server: Server, plan: Plan, host: str, path: str = "/api/2.0/mlflow/experiments/search?max_results=1") -> bytes:
        """A tracking API call as a client with ``Host: host`` makes it; fails naming the component on any non-200."""
        prefix = _path_prefix(plan.outputs["trackingUri"])
        status, body = http(f"{server.base}{prefix}{path}", host=host)
        if status != 200:
            raise DataPlaneError(server.component, f"GET {prefix}{path} with Host {host} answered {status}: {body[:200].decode(errors='replace')}", server.service.log, server.service.tail())
        return body

    def via_gateway(self, plan: Plan, host: str, path: str) -> tuple[int, bytes]:
        """A request through Kubeflow's Istio gateway: the declared VirtualService picks the destination.

        Only routing is reproduced (hosts, uri match, rewrite, destination); mTLS and the
        AuthorizationPolicy are Istio's and not run here.
        """
        component = "gateway"
        for vs in plan.kinds("VirtualService"):
            spec = vs.inputs["spec"]
            if host not in spec.get("hosts", []) and "*" not in spec.get("hosts", []):
                continue
            for route in spec.get("http", []):
                for match in route.get("match") or [{}]:
                    uri = match.get("uri") or {}
                    matched = uri.get("prefix") if "prefix" in uri and path.startswith(uri["prefix"]) else (path if uri.get("exact") == path else None)
                    if matched is None or "redirect" in route:
                        continue
                    destination = route["route"][0]["destination"]
                    address = f"{destination['host']}:{destination['port']['number']}"
                    if address not in self.hosts.routes:
                        raise DataPlaneError(component, f"VirtualService {vs.k8s_name} sends {path} to {address}, which no declared Service provides")
                    rewrite = route.get("rewrite") or {}
                    forwarded = rewrite["uri"] + path[len(matched):] if "uri" in rewrite else path
                    return http(f"http://{HOST}:{self.hosts.routes[address]}{forwarded}", host=rewrite.get("authority", host))
        raise DataPlaneError(component, f"no declared VirtualService routes {host}{path}")

    # ---- a Kubeflow notebook

    def notebook(self, plan: Plan, namespace: str, registered_model: str, alias: str, experiment: str) -> dict[str, Any]:
        """Run ``notebook.py`` with exactly the env the namespace's PodDefaults inject (plus PATH, locale, HOME)."""
        env = self.hosts.rewrite_env(poddefault_env(plan, namespace), "notebook")
        for name in ("AWS_ENDPOINT_URL", "MLFLOW_S3_ENDPOINT_URL"):
            if name in env and not env[name].startswith(f"http://{HOST}:"):
                raise DataPlaneError("notebook", f"{name} is {env[name]}: S3 calls would not go to the declared MinIO")
        home = self.workdir / f"notebook-{namespace}"
        home.mkdir(exist_ok=True)
        result = home / "result.json"
        run_once(
            "notebook", [str(VENV_BIN / "python"), str(NOTEBOOK), str(result), registered_model, alias, experiment],
            {**base_env(home), **env}, self.log(f"notebook-{namespace}"), RUN_TIMEOUT["notebook"], cwd=home,
        )
        return json.loads(result.read_text())

    # ---- KServe: the storage initializer, then the predictor

    def download_model(self, plan: Plan, isvc: DeclaredResource) -> Path:
        """Download the InferenceService's storageUri with KServe's storage-initializer code and the env KServe derives."""
        component = "storage-initializer"
        source = "derived by KServe from the predictor's storage Secret and its serving.kserve.io/s3-* annotations"
        try:
            env = self.hosts.rewrite_env(storage_initializer_env(plan, isvc), component)
        except DataPlaneError as exc:
            raise DataPlaneError(component, f"{str(exc).split(': ', 1)[1]} ({source})") from None
        endpoint = env.get("AWS_ENDPOINT_URL", "")
        if not endpoint.startswith(("http://" + HOST + ":", "https://" + HOST + ":")):
            raise DataPlaneError(component, f"AWS_ENDPOINT_URL is {endpoint or 'unset'} ({source}): the download would not go to the declared MinIO; without it KServe downloads from AWS")
        uri = isvc.inputs["spec"]["predictor"]["model"].get("storageUri")
        if not uri:
            raise DataPlaneError(component, "the InferenceService declares no storageUri")
        # The model volume KServe mounts at /mnt/models: a per-run directory.
        target = Path(tempfile.mkdtemp(prefix=f"mnt-models-{isvc.k8s_name}-", dir=self.workdir))
        started = time.monotonic()
        run_once(component, [str(VENV_BIN / "python"), "-c", STORAGE_INITIALIZER, uri, str(target)],
                 {**base_env(self.home), **env}, self.log(f"{component}-{isvc.k8s_name}"), RUN_TIMEOUT[component])
        self.timings[component] = time.monotonic() - started
        return target

    def start_predictor(self, isvc: DeclaredResource, model_dir: Path) -> Server:
        """The predictor container as the selected runtime runs it, on ``model_dir`` (its /mnt/models)."""
        runtime = select_runtime(isvc)
        if runtime != "kserve-mlserver":
            raise DataPlaneError("serving", f"runtime {runtime} is not reproduced by this e2e (only kserve-mlserver)")
        component = "mlserver"
        env = mlserver_env(isvc, runtime)
        # Listen mapping: the runtime's ports (and MLServer's default metrics port 8082) on loopback ports.
        port, grpc, metrics = free_port(), free_port(), free_port()
        env.update({"MLSERVER_HOST": HOST, "MLSERVER_HTTP_PORT": str(port), "MLSERVER_GRPC_PORT": str(grpc), "MLSERVER_METRICS_PORT": str(metrics)})
        env = {k: str(model_dir) if v == MODEL_MOUNT else v for k, v in env.items()}
        # The MLServer image's command: `mlserver start $MLSERVER_MODELS_DIR` (/mnt/models).
        service = _spawn(component, ["mlserver", "start", str(model_dir)], {**base_env(self.home), **env}, self.log(f"{component}-{isvc.k8s_name}"))
        server = Server(component, service, port, other_ports=(grpc, metrics))
        self.servers.append(server)
        name = env["MLSERVER_MODEL_NAME"]
        server.seconds_to_ready = _await(service, _http_ready(f"{server.base}/v2/models/{name}/ready"), START_TIMEOUT[component], f"model {name} ready")
        return server

    def infer(self, server: Server, model: str, columns: Mapping[str, Sequence[float]]) -> list[float]:
        """One Open Inference Protocol (v2) request with a pandas-encoded input; returns the first output."""
        rows = len(next(iter(columns.values())))
        body = {
            "parameters": {"content_type": "pd"},
            "inputs": [{"name": name, "shape": [rows], "datatype": "FP64", "data": list(values)} for name, values in columns.items()],
        }
        status, payload = http(f"{server.base}/v2/models/{model}/infer", method="POST", body=body)
        if status != 200:
            raise DataPlaneError(server.component, f"POST /v2/models/{model}/infer answered {status}: {payload[:300].decode(errors='replace')}", server.service.log, server.service.tail())
        return json.loads(payload)["outputs"][0]["data"]

    # ---- stopping

    def stop_server(self, server: Server, timeout: float = 15) -> None:
        if server.component == "postgresql" and server.service.process.poll() is None:
            # SIGINT is PostgreSQL's fast shutdown (SIGTERM would wait for clients to disconnect).
            try:
                os.killpg(server.service.process.pid, signal.SIGINT)
                server.service.process.wait(timeout=timeout)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                pass
        server.service.stop(timeout=timeout)
        if server in self.servers:
            self.servers.remove(server)

    def stop(self) -> list[str]:
        """Stop every process (newest first); returns what is still alive or listening (should be nothing)."""
        stopped = list(reversed(self.servers))
        for server in stopped:
            self.stop_server(server)
        leftovers = []
        for server in stopped:
            # Each server was started as the leader of its own process group: every worker it forked is in it.
            group = process_group(server.service.process.pid)
            leftovers += [f"{server.component}: pid {pid} still running ({group[pid][:80]})" for pid in sorted(group)]
            leftovers += [f"{server.component}: port {port} still listening" for port in server.ports if listening(port)]
        return leftovers

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


def _path_prefix(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).path.rstrip("/")


# -- the program's config for the run --------------------------------------------------------

# The dev stack as committed, plus what the e2e needs to reach every path; nothing else changes.
E2E_EXTERNAL_HOST = "kubeflow.example.com"
E2E_REGISTERED_MODEL = "diabetes"
E2E_ALIAS = "production"


def e2e_config(stack: str = "dev", registry_uri: Optional[str] = None) -> tuple[dict[str, str], list[str]]:
    """The stack file's config with the e2e overlay.

    * ``kubeflow.externalHost`` (only if the stack sets none): so the external-host path
      (VirtualService host, MLflow's allowed hosts) is exercised with a real name;
    * with ``registry_uri`` (after the notebook set the alias): ``serving.mlflowTrackingUri``
      points at the running server and ``serving.models`` is the one model the notebook
      registered, served in the first Kubeflow profile (the example in Pulumi.dev.yaml).
    """
    from tools.harness import stack_config

    config, secret_keys = stack_config(stack)
    kubeflow = json.loads(config.get("mlops-platform:kubeflow", "{}"))
    kubeflow.setdefault("externalHost", E2E_EXTERNAL_HOST)
    config["mlops-platform:kubeflow"] = json.dumps(kubeflow)
    if registry_uri is not None:
        serving = json.loads(config.get("mlops-platform:serving", "{}"))
        profiles = kubeflow.get("profiles") or []
        if not serving.get("enabled") or not profiles:
            raise DataPlaneError("serving", f"stack {stack} enables no serving or no Kubeflow profile to serve in")
        serving["mlflowTrackingUri"] = registry_uri
        serving["models"] = [{"name": E2E_REGISTERED_MODEL, "namespace": profiles[0], "registeredModel": E2E_REGISTERED_MODEL, "alias": E2E_ALIAS}]
        config["mlops-platform:serving"] = json.dumps(serving)
    return config, secret_keys


def served_model(plan: Plan) -> DeclaredResource:
    """The one InferenceService the e2e config declares."""
    found = plan.kinds("InferenceService")
    if len(found) != 1:
        raise DataPlaneError("serving", f"expected one InferenceService, the program declared {len(found)}")
    return found[0]
