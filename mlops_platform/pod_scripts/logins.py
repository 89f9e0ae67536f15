"""The PostgreSQL logins of the tracking server and its jobs, rotated without cutting a client off.

PostgreSQL holds one password per role, so two login roles take turns: the owner ``<user>`` (made by the postgres
image at initdb) and ``<user>_b``, a member of the owner whose sessions run as the owner (``ALTER ROLE ... SET
role``), so every object it creates belongs to the owner as before. Generation ``g`` logs in as slot ``g % 2``.

- ``rotate`` (a Job before the server rolls out): logs in with the login in use (the live login Secret, else the
  owner's initdb credentials) and gives the new generation's role its new password, as a SCRAM verifier computed
  here so the password itself never reaches the server. The login in use keeps working: old pods can still open
  connections while new pods start with the new one.
- ``retire`` (a Job after the rollout): logs in with the new login and removes the other role's password, then
  checks that the old password no longer logs in.

Refused before any change: a generation whose role is the one in use (a jump of two), which would change the
password under the running pods. Run as ``python -c <source> rotate|retire`` in the MLflow image (psycopg2); it
imports nothing of this package. Settings come from the environment only.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass

# How long to wait for PostgreSQL to accept connections (a fresh StatefulSet may still be starting).
WAIT_SECONDS = 180


class Refused(Exception):
    """A rotation that would cut a client off, or that cannot log in: nothing was changed."""


@dataclass(frozen=True)
class Login:
    """A role and its password, as libpq's connection keywords; ``what`` names it in messages (never the password)."""

    keywords: dict[str, str]
    what: str

    @property
    def user(self) -> str:
        return self.keywords["user"]


def _env_login(prefix: str, what: str) -> Login | None:
    user, password = os.environ.get(f"{prefix}_USER"), os.environ.get(f"{prefix}_PASSWORD")
    return Login({"user": user, "password": password}, what) if user and password else None


def _connect(login: Login):
    import psycopg2

    # DATABASE_URL names the server and the database only (postgresql://host:port/db); the login is passed apart.
    return psycopg2.connect(os.environ["DATABASE_URL"], connect_timeout=5, **login.keywords)


def _refused_login(error: Exception) -> bool:
    """The server answered and refused these credentials (rather than not answering yet)."""
    text = str(error)
    return "authentication failed" in text or "does not exist" in text


def logs_in(login: Login, deadline: float) -> bool:
    """Whether ``login`` authenticates; waits (until ``deadline``) while the server does not answer."""
    import psycopg2

    while True:
        try:
            _connect(login).close()
            return True
        except psycopg2.OperationalError as error:
            if _refused_login(error):
                return False
            if time.monotonic() > deadline:
                raise Refused(f"PostgreSQL did not answer within {WAIT_SECONDS} s: {str(error).strip()}") from None
            time.sleep(2)


def _owner(cursor) -> str:
    cursor.execute("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = current_database()")
    return cursor.fetchone()[0]


def _role_exists(cursor, role: str) -> bool:
    cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
    return cursor.fetchone() is not None


def rotate(deadline: float) -> str:
    from psycopg2 import sql
    from psycopg2.extensions import encrypt_password

    target = _env_login("LOGIN", "the new login")
    if target is None:
        raise Refused("LOGIN_USER and LOGIN_PASSWORD are required")
    generation = os.environ.get("LOGIN_GENERATION", "?")
    owner_login = _env_login("OWNER", "the owner's initdb login")
    live = _env_login("LIVE", "the login in use")
    # Before the first rotation the server logs in as the owner, with its initdb password (generation 0).
    in_use, in_use_generation = (live, os.environ.get("LIVE_GENERATION")) if live is not None else (owner_login, "0")
    if in_use is not None and in_use.user == target.user and in_use_generation != generation:
        raise Refused(
            f"rotation.database {generation} would change the password of {target.user}, the login in use (generation "
            f"{in_use_generation}), under the running pods; allowed: generation {int(in_use_generation or 0) + 1}"
        )
    candidates = [c for c in (live, owner_login, target) if c is not None]
    admin = next((c for c in candidates if logs_in(c, deadline)), None)
    if admin is None:
        raise Refused("none of " + ", ".join(f"{c.what} ({c.user})" for c in candidates) + " logs in; nothing was changed")
    connection = _connect(admin)
    connection.autocommit = True
    try:
        cursor = connection.cursor()
        owner = _owner(cursor)
        if not _role_exists(cursor, target.user):
            cursor.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(target.user)))
        if target.user != owner:
            cursor.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(owner), sql.Identifier(target.user)))
            cursor.execute(sql.SQL("ALTER ROLE {} SET role = {}").format(sql.Identifier(target.user), sql.Literal(owner)))
        verifier = encrypt_password(target.keywords["password"], target.user, connection, "scram-sha-256")
        cursor.execute(sql.SQL("ALTER ROLE {} WITH LOGIN PASSWORD {}").format(sql.Identifier(target.user), sql.Literal(verifier)))
    finally:
        connection.close()
    check = _connect(target)
    try:
        cursor = check.cursor()
        cursor.execute("SELECT current_user")
        acting = cursor.fetchone()[0]
    finally:
        check.close()
    if acting != owner:
        raise Refused(f"{target.user} logs in but acts as {acting}, not the owner {owner}")
    kept = ""
    if in_use is not None and in_use.user != target.user:
        if not logs_in(in_use, deadline):
            raise Refused(f"{in_use.user}, the login in use, no longer logs in")
        kept = f"; {in_use.user}, the login in use, still logs in"
    return f"rotate: {target.user} (generation {generation}) logs in with its new password, acting as {owner}{kept}"


def retire(deadline: float) -> str:
    from psycopg2 import sql

    target = _env_login("LOGIN", "the new login")
    other = os.environ.get("OTHER_USER")
    if target is None or not other:
        raise Refused("LOGIN_USER, LOGIN_PASSWORD and OTHER_USER are required")
    if other == target.user:
        raise Refused(f"OTHER_USER is the login itself ({other})")
    if not logs_in(target, deadline):
        raise Refused(f"{target.user} does not log in with its password; nothing was changed")
    connection = _connect(target)
    connection.autocommit = True
    try:
        cursor = connection.cursor()
        if not _role_exists(cursor, other):
            return f"retire: {other} does not exist; nothing to retire"
        # Without a password the role cannot log in over the network; the owner keeps its local (socket) access.
        cursor.execute(sql.SQL("ALTER ROLE {} WITH PASSWORD NULL").format(sql.Identifier(other)))
    finally:
        connection.close()
    old = os.environ.get("OTHER_PASSWORD")
    if old and logs_in(Login({"user": other, "password": old}, "the previous login"), deadline):
        raise Refused(f"{other} still logs in with its previous password")
    return f"retire: {other}'s password removed; it no longer logs in"


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in ("rotate", "retire"):
        print("usage: logins.py rotate|retire", file=sys.stderr)
        return 2
    deadline = time.monotonic() + WAIT_SECONDS
    try:
        print(rotate(deadline) if argv[0] == "rotate" else retire(deadline), flush=True)
    except Refused as refused:
        print(f"{argv[0]}: {refused}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
