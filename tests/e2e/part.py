"""What every part of the data plane may use of the others, typed as one.

:class:`~tests.e2e.plane.DataPlane` is assembled from mixins (PostgreSQL, S3, Jobs, Tracking, ...) that read the
plane's directories and host mapping and call each other's methods. :class:`Part`, their common base, only
declares those: the attributes are annotations without values (``DataPlane.__init__`` sets them) and the methods
exist for the type checker alone, so the assembled class's MRO and behaviour are those of its parts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from pathlib import Path

    from tests.e2e import sandbox
    from tests.e2e.hosts import HostMap
    from tests.e2e.launch import Server
    from tools.testing.harness import DeclaredResource, Plan


class Part:
    """A part of :class:`~tests.e2e.plane.DataPlane`: the plane's state and the methods other parts define."""

    workdir: Path
    logs: Path
    hosts: HostMap
    servers: list[Server]
    home: Path
    timings: dict[str, float]

    if TYPE_CHECKING:
        # DataPlane's own (tests/e2e/plane.py).
        def log(self, name: str) -> Path: ...

        def start_deployment(
            self,
            plan: Plan,
            deployment: DeclaredResource,
            *,
            component: str | None = None,
            hosts: HostMap | None = None,
            entrypoints: Path | None = None,
            outside_env: Mapping[str, str] | None = None,
        ) -> Server: ...

        def pod_volumes(
            self,
            plan: Plan,
            namespace: str,
            pod: dict,
            component: str,
            claims: Mapping[str, dict] | None = None,
            token: str | None = None,
            rewrite: Callable[[str], str] | None = None,
        ) -> sandbox.PodVolumes: ...

        def container_env(self, entrypoints: Path | None = None) -> dict[str, str]: ...

        def container_sandbox(
            self,
            pod: dict,
            container: dict,
            volumes: sandbox.PodVolumes,
            component: str,
            env: Mapping[str, str],
            files: Mapping[str, Path] | None = None,
        ) -> sandbox.Sandbox: ...

        # Jobs (tests/e2e/jobs.py).
        def migration_jobs(self, plan: Plan, deployment: DeclaredResource) -> list[DeclaredResource]: ...

        def run_job(
            self, plan: Plan, workload: DeclaredResource, *, entrypoints: Path | None = None, outside_env: Mapping[str, str] | None = None
        ) -> dict[str, float]: ...

        # PostgreSQL (tests/e2e/postgres.py).
        def start_postgres(self, plan: Plan, backend_uri: str) -> Server: ...

        # S3 (tests/e2e/s3.py).
        def start_s3(self, plan: Plan, endpoint_url: str) -> Server: ...

        def bootstrap_buckets(self, plan: Plan) -> list[str]: ...

        def mc_bin(self) -> Path: ...
