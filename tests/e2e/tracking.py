"""The MLflow tracking server: PostgreSQL, S3, the declared migration and server, and API calls with a chosen Host."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from tests.e2e.declared import CLUSTER_DOMAIN, declared_namespace, resolve_env, workload_behind, workload_pod
from tests.e2e.errors import DataPlaneError
from tests.e2e.launch import Server
from tests.e2e.part import Part
from tools.testing.harness import DeclaredResource, Plan
from tools.testing.processes import http


class Tracking(Part):
    """The MLflow part of a :class:`~tests.e2e.plane.DataPlane`."""

    def bring_up_tracking(self, plan: Plan, *, entrypoints: Path | None = None, outside_env: Mapping[str, str] | None = None) -> Server:
        """PostgreSQL (unless external), S3 and its bucket, the Jobs the server waits for (migration) and the server, from ``plan``.

        ``entrypoints`` and ``outside_env`` as for ``start_deployment`` (the authorization apps need the server image's venv).
        """
        deployment = self.bring_up_storage(plan)
        self.run_migration(plan)
        return self.start_deployment(plan, deployment, entrypoints=entrypoints, outside_env=outside_env)

    def bring_up_storage(self, plan: Plan) -> DeclaredResource:
        """PostgreSQL (unless external) and S3 with its bucket, as the server is declared to reach them; returns its Deployment."""
        deployment = self.tracking_deployment(plan)
        server_env = resolve_env(plan, declared_namespace(deployment), workload_pod(deployment)["containers"][0], "mlflow")
        backend = server_env["MLFLOW_BACKEND_STORE_URI"]
        # An in-cluster database is the declared PostgreSQL; an external one (database.mode external) is the caller's.
        if CLUSTER_DOMAIN in backend:
            self.start_postgres(plan, backend)
        self.start_s3(plan, server_env["MLFLOW_S3_ENDPOINT_URL"])
        self.bootstrap_buckets(plan)
        return deployment

    def run_migration(self, plan: Plan, *, entrypoints: Path | None = None) -> None:
        """Every Job the server's Deployment waits for, to completion (the kubelet's and the engine's order).

        ``entrypoints``: the server image's bin directory when it is not the project venv's (basic-auth's extras).
        """
        jobs = self.migration_jobs(plan, self.tracking_deployment(plan))
        if not jobs:
            raise DataPlaneError("mlflow", "its Deployment waits for no Job: nothing migrates the schema before it starts")
        for job in jobs:
            self.timings.update(self.run_job(plan, job, entrypoints=entrypoints))

    @staticmethod
    def tracking_deployment(plan: Plan) -> DeclaredResource:
        return workload_behind(plan, plan.outputs["trackingUri"], "mlflow")

    def mlflow_api(self, server: Server, plan: Plan, host: str, path: str = "/api/2.0/mlflow/experiments/search?max_results=1") -> bytes:
        """A tracking API call as a client with ``Host: host`` makes it; fails naming the component on any non-200."""
        prefix = _path_prefix(plan.outputs["trackingUri"])
        status, body = http(f"{server.base}{prefix}{path}", host=host)
        if status != 200:
            raise server.error(f"GET {prefix}{path} with Host {host} answered {status}: {body[:200].decode(errors='replace')}")
        return body


def _path_prefix(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).path.rstrip("/")
