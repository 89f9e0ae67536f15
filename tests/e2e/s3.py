"""moto's S3 server in place of MinIO, and the provisioning Jobs' ``mc`` scripts run with a stand-in ``mc`` (tests/e2e/mc.py)."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.declared import workload_behind, workload_pod
from tests.e2e.errors import DataPlaneError
from tests.e2e.launch import START_TIMEOUT, VENV_BIN, Server, await_ready, base_env, http_ready, spawn
from tests.e2e.part import Part
from tools.testing.harness import DeclaredResource, Plan
from tools.testing.processes import HOST

MC_STAND_IN = Path(__file__).with_name("mc.py")


def provisions_minio(job: DeclaredResource) -> bool:
    """A MinIO provisioning Job (``mc alias set`` ...): run with the stand-in ``mc`` by :meth:`S3.bootstrap_buckets`."""
    return "mc alias set" in " ".join(workload_pod(job)["containers"][0].get("command") or [])


class S3(Part):
    """The S3 part of a :class:`~tests.e2e.plane.DataPlane`: moto on MinIO's Service address, buckets as the bootstrap Job makes them."""

    def start_s3(self, plan: Plan, endpoint_url: str) -> Server:
        """moto's S3 server on the port the MinIO Service that ``endpoint_url`` names is mapped to."""
        component = "minio"
        minio = workload_behind(plan, endpoint_url, component)
        ports = self.hosts.expose(plan, minio)
        args = workload_pod(minio)["containers"][0].get("args") or []
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
        """Run every declared MinIO provisioning Job's script as its pod does, ``mc`` being the stand-in; returns the admin calls.

        The bucket and its versioning are made for real (through moto); users and policies are MinIO's admin API and
        only logged (moto accepts any key).
        """
        jobs = [j for j in plan.kinds("Job") if provisions_minio(j)]
        if not jobs:
            raise DataPlaneError("minio-bootstrap", "the program declares no bootstrap Job (mc alias set ...)")
        admin: list[str] = []
        for job in jobs:
            self.run_job(plan, job)
            for log in self.logs.glob(f"{job.k8s_name}-*.log"):
                admin += [line for line in log.read_text().splitlines() if line.startswith("not replayable")]
        return admin

    def mc_bin(self) -> Path:
        """A directory holding only the stand-in ``mc``: the PATH of the mc image's containers."""
        directory = self.workdir / "mc-image-bin"
        if not directory.exists():
            directory.mkdir()
            directory.chmod(0o755)
            mc = directory / "mc"
            mc.write_text(f"#!{VENV_BIN / 'python'}\n" + MC_STAND_IN.read_text())
            mc.chmod(0o755)
        return directory

    def s3_keys(self, endpoint: int, bucket: str, prefix: str = "") -> list[str]:
        import boto3

        client = boto3.client(
            "s3", endpoint_url=f"http://{HOST}:{endpoint}", aws_access_key_id="e2e", aws_secret_access_key="e2e", region_name="us-east-1"
        )
        keys: list[str] = []
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys += [o["Key"] for o in page.get("Contents", [])]
        return keys
