"""PostgreSQL as the postgres image runs it: Debian's binaries, initialised with the credentials the StatefulSet declares."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.e2e.declared import mounted_file, resolve_env, workload_behind
from tests.e2e.errors import DataPlaneError
from tests.e2e.launch import RUN_TIMEOUT, START_TIMEOUT, Server, await_ready, base_env, run_once, spawn
from tools.harness import DeclaredResource, Plan
from tools.processes import HOST


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
    container = statefulset.pod_spec()["containers"][0]
    env = resolve_env(plan, statefulset.k8s_namespace, container, component)

    def file_env(var: str, default: str | None) -> str | None:
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


class PostgreSQL:
    """The PostgreSQL part of a :class:`~tests.e2e.plane.DataPlane`: its server, and what the migration left in it."""

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
            [
                *as_postgres,
                str(bindir / "initdb"),
                "-D",
                str(data),
                f"--username={creds.user}",
                f"--pwfile={pwfile}",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
            ],
            base_env(self.home),
            self.log("postgresql-initdb"),
            RUN_TIMEOUT["initdb"],
            cwd=root,
        )
        pwfile.unlink()
        settings = statefulset.pod_spec()["containers"][0].get("args") or []
        if len(settings) % 2 or any(flag != "-c" for flag in settings[::2]):
            raise DataPlaneError(component, f"declares args {settings}; only '-c name=value' settings are reproduced here")
        service = spawn(
            component,
            # fsync=off: a throwaway cluster; durability across *this* server's restarts is not what is tested.
            [
                *as_postgres,
                str(bindir / "postgres"),
                "-D",
                str(data),
                "-h",
                HOST,
                "-p",
                str(port),
                "-k",
                str(sockets),
                "-c",
                "fsync=off",
                *settings,
            ],
            base_env(self.home),
            self.log("postgresql"),
            cwd=root,
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
