"""moto's S3 server in place of MinIO, and the bootstrap Job's ``mc`` script replayed through the S3 API."""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tests.e2e.declared import resolve_env, workload_behind
from tests.e2e.errors import DataPlaneError
from tests.e2e.launch import START_TIMEOUT, Server, await_ready, base_env, http_ready, spawn
from tools.harness import DeclaredResource, Plan
from tools.processes import HOST


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
            aliases[alias] = boto3.client(
                "s3", endpoint_url=url, aws_access_key_id=key, aws_secret_access_key=secret, region_name="us-east-1"
            )
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
    log.write_text(
        "replayed through the S3 API:\n" + "\n".join(replayed) + "\n\nnot replayable (MinIO admin API):\n" + "\n".join(skipped) + "\n"
    )
    return skipped


def provisions_minio(job: DeclaredResource) -> bool:
    """A MinIO provisioning Job (``mc alias set`` ...): replayed through the S3 API by :meth:`S3.bootstrap_buckets`."""
    return "mc alias set" in " ".join(job.pod_spec()["containers"][0].get("command") or [])


class S3:
    """The S3 part of a :class:`~tests.e2e.plane.DataPlane`: moto on MinIO's Service address, buckets as the bootstrap Job makes them."""

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
        service = spawn(component, ["moto_server", "-H", HOST, "-p", str(port)], base_env(self.home), self.log("minio-moto"))
        server = Server(component, service, port, workload=minio)
        self.servers.append(server)
        server.seconds_to_ready = await_ready(
            service, http_ready(f"{server.base}/"), START_TIMEOUT[component], f"S3 answering on {server.base}"
        )
        return server

    def bootstrap_buckets(self, plan: Plan) -> list[str]:
        """Replay every declared MinIO bootstrap Job (``mc alias set`` ... in its script); returns the unreplayable lines."""
        skipped: list[str] = []
        jobs = [j for j in plan.kinds("Job") if provisions_minio(j)]
        if not jobs:
            raise DataPlaneError("minio-bootstrap", "the program declares no bootstrap Job (mc alias set ...)")
        for job in jobs:
            env = self.hosts.rewrite_env(
                resolve_env(plan, job.k8s_namespace, job.pod_spec()["containers"][0], "minio-bootstrap"), "minio-bootstrap"
            )
            skipped += replay_bootstrap(job, env, self.log(f"minio-bootstrap-{job.k8s_name}"))
        return skipped

    def s3_keys(self, endpoint: int, bucket: str, prefix: str = "") -> list[str]:
        import boto3

        client = boto3.client(
            "s3", endpoint_url=f"http://{HOST}:{endpoint}", aws_access_key_id="e2e", aws_secret_access_key="e2e", region_name="us-east-1"
        )
        keys: list[str] = []
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys += [o["Key"] for o in page.get("Contents", [])]
        return keys
