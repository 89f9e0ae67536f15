"""The MLflow tracking server: PostgreSQL, S3, the declared migration and server, and API calls with a chosen Host."""

from __future__ import annotations

from tests.e2e.declared import CLUSTER_DOMAIN, resolve_env, workload_behind
from tests.e2e.errors import DataPlaneError
from tests.e2e.launch import Server
from tools.harness import DeclaredResource, Plan
from tools.processes import http


class Tracking:
    """The MLflow part of a :class:`~tests.e2e.plane.DataPlane`."""

    def bring_up_tracking(self, plan: Plan) -> Server:
        """PostgreSQL (unless external), S3 with its bucket, the schema migration and the MLflow server: all from ``plan``."""
        deployment = self.tracking_deployment(plan)
        server_env = resolve_env(plan, deployment.k8s_namespace, deployment.pod_spec()["containers"][0], "mlflow")
        backend = server_env["MLFLOW_BACKEND_STORE_URI"]
        # An in-cluster database is the declared PostgreSQL; an external one (database.mode external) is the caller's.
        if CLUSTER_DOMAIN in backend:
            self.start_postgres(plan, backend)
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
            raise DataPlaneError(
                server.component,
                f"GET {prefix}{path} with Host {host} answered {status}: {body[:200].decode(errors='replace')}",
                server.service.log,
                server.service.tail(),
            )
        return body


def _path_prefix(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).path.rstrip("/")
