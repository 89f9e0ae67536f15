"""Restore a database dump from the artifact store: ``python -m tools.operator.restore`` (or ``make restore ARGS=...``).

    python -m tools.operator.restore --bucket B --prefix backups/dev --list
    python -m tools.operator.restore --bucket B --prefix backups/dev --latest --database-url postgresql://mlflow@127.0.0.1:5432/mlflow
    python -m tools.operator.restore --bucket B --prefix backups/dev --key backups/dev/scheduled/<stamp>.dump --database-url ...

The password comes from PGPASSWORD, S3 access from the usual AWS_* variables (and
AWS_ENDPOINT_URL for MinIO). The database named in the URL is dropped and recreated
from the dump (``pg_restore --clean --create``): stop the tracking server first
(``kubectl scale deploy/mlflow --replicas 0``), scale it back afterwards. The dump must
hold that database: a dump of another database is refused before anything is dropped.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from mlops_platform.pod_scripts import dumps


def pg_tool(name: str, bindir: str | None) -> str:
    found = shutil.which(name, path=bindir) if bindir else shutil.which(name)
    if not found:
        raise SystemExit(
            f"restore: {name} not found{' in ' + bindir if bindir else ' on PATH'} (PostgreSQL client tools, same major or newer)"
        )
    return found


def dump_database(pg_restore: str, path: Path) -> str:
    """The database name recorded in a custom-format dump's table of contents."""
    listing = subprocess.run([pg_restore, "--list", str(path)], capture_output=True, text=True, check=True, timeout=300).stdout
    for line in listing.splitlines():
        if line.startswith(";") and "dbname:" in line:
            return line.split("dbname:", 1)[1].strip()
    raise SystemExit(f"restore: {path} records no database name; is it a pg_dump custom-format file?")


def restore(url: str, path: Path, pg_restore: str) -> None:
    parts = urlsplit(url)
    if parts.password:
        raise SystemExit("restore: give the password in PGPASSWORD, not in the URL")
    target = parts.path.lstrip("/")
    recorded = dump_database(pg_restore, path)
    if recorded != target:
        raise SystemExit(f"restore: the dump holds database {recorded!r}, the URL names {target!r}; nothing changed")
    # --create recreates the dumped database; pg_restore connects to the maintenance database for that.
    maintenance = urlunsplit(parts._replace(path="/postgres"))
    subprocess.run(
        [
            pg_restore,
            "--clean",
            "--if-exists",
            "--create",
            "--no-owner",
            "--exit-on-error",
            "--no-password",
            f"--dbname={maintenance}",
            str(path),
        ],
        check=True,
        timeout=3600,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.operator.restore", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--prefix", required=True, help="the backups prefix (maintenance.backupPrefix, default backups/<artifacts.prefix>)")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--list", action="store_true", help="list the dumps, oldest first")
    which.add_argument("--latest", action="store_true", help="restore the newest dump (scheduled or pre-migration)")
    which.add_argument("--key", help="restore this dump")
    parser.add_argument("--database-url", help="postgresql://user@host:port/database (password in PGPASSWORD)")
    parser.add_argument("--pg-bin", default=os.environ.get("PG_BIN"), help="directory of pg_restore (default: PATH)")
    args = parser.parse_args(argv)
    s3 = dumps.client()
    keys = dumps.list_dumps(s3, args.bucket, args.prefix)
    if args.list:
        print("\n".join(keys))
        return 0
    if not args.database_url:
        parser.error("--database-url is required to restore")
    key = keys[-1] if args.latest and keys else args.key
    if not key:
        raise SystemExit(f"restore: no dumps under s3://{args.bucket}/{args.prefix}/")
    if key not in keys:
        raise SystemExit(f"restore: {key} is not a dump under s3://{args.bucket}/{args.prefix}/ (see --list)")
    pg_restore = pg_tool("pg_restore", args.pg_bin)
    with tempfile.TemporaryDirectory(prefix="mlflow-restore-") as tmp:
        path = Path(tmp) / "mlflow.dump"
        dumps.download(s3, args.bucket, key, str(path))
        restore(args.database_url, path, pg_restore)
    print(f"restored s3://{args.bucket}/{key}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
