"""PostgreSQL as the postgres image runs it: Debian's binaries, initialised with the credentials the StatefulSet declares."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from tests.e2e import sandbox
from tests.e2e.declared import declared_namespace, mounted_file, resolve_env, workload_behind, workload_pod
from tests.e2e.errors import DataPlaneError
from tests.e2e.launch import RUN_TIMEOUT, START_TIMEOUT, Server, await_ready, base_env, run_once, spawn
from tests.e2e.part import Part
from tools.testing.harness import DeclaredResource, Plan
from tools.testing.processes import HOST

# The postgres image's PGDATA default and socket directory (docker-library/postgres Dockerfile).
DATA = "/var/lib/postgresql/data"
SOCKETS = "/var/run/postgresql"
# file_env's default: a string (the value is then always set), or None (the variable may be unset).
Default = TypeVar("Default", str, None)


def postgres_bindir() -> Path | None:
    """Debian's newest PostgreSQL server binaries, or None when PostgreSQL is not installed."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0
    )
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
    container = workload_pod(statefulset)["containers"][0]
    env = resolve_env(plan, declared_namespace(statefulset), container, component)

    def file_env(var: str, default: Default) -> str | Default:
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


class PostgreSQL(Part):
    """The PostgreSQL part of a :class:`~tests.e2e.plane.DataPlane`: its server, and what the migration left in it."""

    def start_postgres(self, plan: Plan, backend_uri: str) -> Server:
        """Initialise and start the PostgreSQL the backend store URI points at, with the declared credentials.

        Debian's binaries stand in for the image's; they run as the image's entrypoint runs them, held to the container's
        security context: its UID/GID (the image gives an unnamed UID a passwd entry with nss_wrapper; here a passwd file
        with that entry is mounted), its volumes (the data claim, the socket directory, /tmp, the credentials Secret at its
        declared mode) at their declared paths, a read-only root. initdb reads the password from the declared file.
        """
        component = "postgresql"
        bindir = postgres_bindir()
        if bindir is None:
            raise DataPlaneError(component, "no PostgreSQL server binaries (Debian package postgresql)")
        statefulset = workload_behind(plan, backend_uri, component)
        pod, namespace = workload_pod(statefulset), declared_namespace(statefulset)
        container = pod["containers"][0]
        creds = postgres_credentials(plan, statefulset)
        ports = self.hosts.expose(plan, statefulset)
        env = resolve_env(plan, namespace, container, component)
        # The image's server listens on PGPORT (5432 unless set).
        listen = int(env.get("PGPORT", "5432"))
        if listen not in ports:
            raise DataPlaneError(component, f"listens on {listen}, but its Service targets container ports {sorted(ports)}")
        port = ports[listen]
        claims = {t["metadata"]["name"]: t["spec"] for t in statefulset.inputs["spec"].get("volumeClaimTemplates") or []}
        volumes = self.pod_volumes(plan, namespace, pod, component, claims=claims)
        identity = sandbox.Identity.of(pod, container, component)
        passwd = volumes.root / "passwd"
        # docker-entrypoint.sh: an unnamed UID gets "postgres:x:UID:GID:PostgreSQL:$PGDATA:/bin/false" through nss_wrapper.
        passwd.write_text(
            Path("/etc/passwd").read_text() + f"postgres:x:{identity.uid}:{identity.gid}:PostgreSQL:{env.get('PGDATA', DATA)}:/bin/false\n"
        )
        passwd.chmod(0o644)
        box = self.container_sandbox(pod, container, volumes, component, {**base_env(self.home), **env}, {"/etc/passwd": passwd})
        pgdata = env.get("PGDATA", DATA)
        password_file = env.get("POSTGRES_PASSWORD_FILE")
        if password_file is None:
            raise DataPlaneError(component, "declares no POSTGRES_PASSWORD_FILE; only credentials from a mounted file are reproduced here")
        run_env = {**self.container_env(), "PGDATA": pgdata}
        # The image's entrypoint: initdb with POSTGRES_USER as superuser and its password (read from the file), scram for TCP.
        run_once(
            "postgresql",
            [
                str(bindir / "initdb"),
                "-D",
                pgdata,
                f"--username={creds.user}",
                f"--pwfile={password_file}",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
            ],
            run_env,
            self.log("postgresql-initdb"),
            RUN_TIMEOUT["initdb"],
            sandbox=box,
        )
        settings = container.get("args") or []
        if len(settings) % 2 or any(flag != "-c" for flag in settings[::2]):
            raise DataPlaneError(component, f"declares args {settings}; only '-c name=value' settings are reproduced here")
        service = spawn(
            component,
            # fsync=off: a throwaway cluster; durability across *this* server's restarts is not what is tested.
            # -k: the image's socket directory, a volume the StatefulSet declares.
            [str(bindir / "postgres"), "-D", pgdata, "-h", HOST, "-p", str(port), "-k", SOCKETS, "-c", "fsync=off", *settings],
            run_env,
            self.log("postgresql"),
            sandbox=box,
        )
        server = Server(component, service, port, workload=statefulset)
        self.servers.append(server)
        server.seconds_to_ready = await_ready(
            service, lambda: self._pg_ready(port, creds, "postgres"), START_TIMEOUT[component], f"accepting connections on {HOST}:{port}"
        )
        # ... and the entrypoint's CREATE DATABASE for POSTGRES_DB.
        if creds.database != "postgres":
            self._pg_execute(port, creds, "postgres", f'CREATE DATABASE "{creds.database}"')
        self.postgres = (port, creds)
        return server

    @staticmethod
    def _pg_connect(port: int, creds: DatabaseCredentials, database: str):
        import psycopg2

        return psycopg2.connect(host=HOST, port=port, user=creds.user, password=creds.password, dbname=database, connect_timeout=3)

    def _pg_ready(self, port: int, creds: DatabaseCredentials, database: str) -> str | None:
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

    def _pg_databases(self) -> set[str]:
        port, creds = self.postgres
        conn = self._pg_connect(port, creds, "postgres")
        try:
            cur = conn.cursor()
            cur.execute("SELECT datname FROM pg_database")
            return {row[0] for row in cur.fetchall()}
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
