"""A throwaway MariaDB on 127.0.0.1 (Debian's ``mariadb-server``): the external MySQL-compatible database of the e2e.

It stands in for a database the platform does not run (as Kubeflow's own MySQL would be),
so it is configured from nothing the program declares: a fresh data directory, a database
and a user with a generated password. Stopped by pid with everything else of the data plane.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.e2e.errors import DataPlaneError
from tests.e2e.launch import RUN_TIMEOUT, Server, await_ready, base_env, run_once, spawn
from tests.e2e.part import Part
from tools.testing.processes import HOST, free_port

START_TIMEOUT = 60


def mariadb_binaries() -> tuple[Path, Path] | None:
    """(mariadbd, mariadb-install-db), or None when Debian's mariadb-server is not installed."""
    server = shutil.which("mariadbd", path="/usr/sbin:/usr/bin:/sbin:/bin")
    install = shutil.which("mariadb-install-db", path="/usr/bin:/usr/sbin:/bin:/sbin")
    return (Path(server), Path(install)) if server and install else None


@dataclass(frozen=True)
class MySQLDatabase:
    port: int
    user: str
    password: str
    database: str

    def uri(self) -> str:
        return f"mysql+pymysql://{self.user}:{self.password}@{HOST}:{self.port}/{self.database}"

    def connect(self):
        import pymysql

        return pymysql.connect(host=HOST, port=self.port, user=self.user, password=self.password, database=self.database, connect_timeout=3)

    def tables(self) -> set[str]:
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute("SHOW TABLES")
                return {row[0] for row in cur.fetchall()}
        finally:
            conn.close()


class MySQL(Part):
    """The MariaDB part of a :class:`~tests.e2e.plane.DataPlane`."""

    def start_mysql(self, database: str = "mlflow", user: str = "mlflow") -> MySQLDatabase:
        component = "mariadb"
        binaries = mariadb_binaries()
        if binaries is None:
            raise DataPlaneError(component, "no MariaDB server binaries (Debian package mariadb-server)")
        server_bin, install_bin = binaries
        root = Path(tempfile.mkdtemp(prefix="mariadb-", dir=self.workdir))
        data, run = root / "data", root / "run"
        for d in (data, run):
            d.mkdir()
        # As root, mariadbd drops to Debian's `mysql` user, which must own its directories.
        as_user = ["--user=mysql"] if os.geteuid() == 0 else []
        if as_user:
            for d in (root, data, run):
                shutil.chown(d, "mysql", "mysql")
        run_once(
            component,
            [
                str(install_bin),
                "--no-defaults",
                f"--datadir={data}",
                *as_user,
                "--auth-root-authentication-method=socket",
                "--skip-test-db",
            ],
            base_env(self.home),
            self.log("mariadb-install-db"),
            RUN_TIMEOUT["initdb"],
            cwd=root,
        )
        port = free_port()
        socket = run / "mariadb.sock"
        service = spawn(
            component,
            [
                str(server_bin),
                "--no-defaults",
                f"--datadir={data}",
                *as_user,
                f"--bind-address={HOST}",
                f"--port={port}",
                f"--socket={socket}",
                f"--pid-file={run / 'mariadb.pid'}",
                "--skip-name-resolve",
                # A throwaway server: durability across its own restarts is not what is tested.
                "--innodb-flush-log-at-trx-commit=0",
            ],
            base_env(self.home),
            self.log(component),
            cwd=root,
        )
        server = Server(component, service, port)
        self.servers.append(server)
        server.seconds_to_ready = await_ready(
            service, lambda: _socket_ready(socket), START_TIMEOUT, f"accepting connections on {HOST}:{port}"
        )
        password = secrets.token_urlsafe(24)
        # Root logs in through the socket only (unix_socket auth as the OS root): create the database and MLflow's user.
        _as_root(
            socket,
            [
                f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4",
                f"CREATE USER '{user}'@'{HOST}' IDENTIFIED BY '{password}'",
                f"GRANT ALL PRIVILEGES ON `{database}`.* TO '{user}'@'{HOST}'",
            ],
        )
        return MySQLDatabase(port, user, password, database)


def _socket_ready(socket: Path) -> str | None:
    try:
        _as_root(socket, ["SELECT 1"])
    except Exception as exc:  # pymysql.err.OperationalError while starting up
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return None


def _as_root(socket: Path, statements: list[str]) -> None:
    import pymysql

    conn = pymysql.connect(unix_socket=str(socket), user="root", connect_timeout=3)
    try:
        with conn.cursor() as cur:
            for sql in statements:
                cur.execute(sql)
        conn.commit()
    finally:
        conn.close()
