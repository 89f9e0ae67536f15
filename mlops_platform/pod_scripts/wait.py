"""Wait, bounded, until the metadata database answers a query with the server's own credentials.

The migration Job runs this file first (``python -c <source> --timeout N`` in the MLflow image, which has
SQLAlchemy and the PostgreSQL and MySQL drivers), so it imports nothing of this package. The URI comes only
from MLFLOW_BACKEND_STORE_URI (a Secret); what it prints names the host and port, never the password.

Refused connections and timeouts are retried until the deadline: the database may still be starting (a new
volume attaching, initdb, an RDS instance's first boot). Rejected credentials, or a missing database or
user, are not: they will not go away by waiting, so the step fails at once with the driver's own words.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time

# What the drivers say when the server answered and refused: waiting does not help.
_PERMANENT = re.compile(r"password authentication failed|access denied|does not exist|no pg_hba\.conf entry|unknown database", re.I)


def _where(uri: str) -> str:
    from sqlalchemy.engine import make_url

    url = make_url(uri)
    return f"{url.get_backend_name()} at {url.host}:{url.port or 'default port'}/{url.database}"


def _reason(exc: BaseException) -> str:
    """The driver's first line (SQLAlchemy wraps it), with anything shaped like a URI password removed."""
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    first = text[0] if text else type(exc).__name__
    return re.sub(r"(//[^:/@\s]+):[^@/\s]+@", r"\1:***@", first)


def wait(uri: str, timeout: float, interval: float = 5.0, log=print) -> float:
    """Seconds until ``SELECT 1`` succeeded; SystemExit(1) when the deadline passed or the answer was a refusal."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    where = _where(uri)
    try:
        # Each attempt bounded too: psycopg2 and PyMySQL both take connect_timeout (seconds).
        engine = create_engine(uri, poolclass=NullPool, connect_args={"connect_timeout": 5})
    except ImportError as exc:
        # A scheme whose driver the image lacks (postgresql:// means psycopg 3): no wait can fix it.
        raise SystemExit(f"database {where} cannot be opened: {exc}") from None
    began = time.monotonic()
    attempt = 0
    while True:
        attempt += 1
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            took = time.monotonic() - began
            log(f"database {where} answered after {took:.1f} s ({attempt} attempts)")
            return took
        except Exception as exc:  # noqa: BLE001 - every driver error is either retried or reported
            reason = _reason(exc)
            if _PERMANENT.search(reason):
                raise SystemExit(f"database {where} refused the connection: {reason}") from None
            left = timeout - (time.monotonic() - began)
            if left <= 0:
                raise SystemExit(f"database {where} did not answer within {timeout:.0f} s ({attempt} attempts); last: {reason}") from None
            log(f"waiting for database {where}: {reason}")
            time.sleep(min(interval, left))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="wait-for-database")
    parser.add_argument("--timeout", type=float, required=True, help="seconds to wait at most")
    args = parser.parse_args(argv)
    uri = os.environ.get("MLFLOW_BACKEND_STORE_URI")
    if not uri:
        raise SystemExit("MLFLOW_BACKEND_STORE_URI is not set")
    wait(uri, args.timeout, log=lambda line: print(line, flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
