"""Database dumps in the artifact store: upload (with retention), list and download.

The backup and migration Jobs run this file as ``python -c <source> upload ...`` in the
MLflow image (which has boto3), so it imports nothing of this package; ``tools.restore``
imports it. S3 settings come from the environment only (AWS_ENDPOINT_URL, keys or IRSA).
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import sys

# pg_dump's custom format starts with these bytes; anything else is not a dump we can restore.
MAGIC = b"PGDMP"
SUFFIX = ".dump"
KINDS = ("scheduled", "pre-migration")


def client():
    import boto3

    return boto3.client("s3")


def stamp(now: datetime.datetime | None = None) -> str:
    """A UTC timestamp that sorts as text, to the microsecond (two dumps in one second keep distinct keys)."""
    return (now or datetime.datetime.now(datetime.UTC)).strftime("%Y%m%dT%H%M%S%fZ")


def dump_key(prefix: str, kind: str, label: str = "", now: datetime.datetime | None = None) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", label).strip("-")
    return f"{prefix}/{kind}/{stamp(now)}{'-' + safe if safe else ''}{SUFFIX}"


def list_dumps(s3, bucket: str, prefix: str, kind: str | None = None) -> list[str]:
    """Keys of the dumps under ``prefix`` (of one kind, or all), oldest first."""
    kinds = [kind] if kind else list(KINDS)
    keys: list[str] = []
    for k in kinds:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{prefix}/{k}/"):
            keys += [o["Key"] for o in page.get("Contents", []) if o["Key"].endswith(SUFFIX)]
    return sorted(keys, key=lambda key: key.rsplit("/", 1)[-1])


def upload(s3, path: str, bucket: str, prefix: str, kind: str, label: str = "") -> str:
    """Upload one pg_dump file after checking it is one; returns its key once the store holds every byte."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        if f.read(len(MAGIC)) != MAGIC:
            raise SystemExit(f"{path} is not a pg_dump custom-format file ({size} bytes); nothing uploaded")
    key = dump_key(prefix, kind, label)
    s3.upload_file(path, bucket, key)
    stored = s3.head_object(Bucket=bucket, Key=key)["ContentLength"]
    if stored != size:
        raise SystemExit(f"s3://{bucket}/{key} holds {stored} bytes, the dump has {size}")
    return key


def prune(s3, bucket: str, prefix: str, kind: str, keep: int) -> list[str]:
    """Delete all but the newest ``keep`` dumps of ``kind``; returns the deleted keys."""
    old = list_dumps(s3, bucket, prefix, kind)[:-keep] if keep > 0 else []
    for key in old:
        s3.delete_object(Bucket=bucket, Key=key)
    return old


def download(s3, bucket: str, key: str, path: str) -> None:
    s3.download_file(bucket, key, path)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="dumps")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("upload", help="upload a dump and apply the retention")
    up.add_argument("--file", required=True)
    up.add_argument("--bucket", required=True)
    up.add_argument("--prefix", required=True)
    up.add_argument("--kind", choices=KINDS, required=True)
    up.add_argument("--label", default="")
    up.add_argument("--keep", type=int, default=0, help="dumps of this kind kept (0: keep all)")
    args = parser.parse_args(argv)
    s3 = client()
    key = upload(s3, args.file, args.bucket, args.prefix, args.kind, args.label)
    print(f"uploaded s3://{args.bucket}/{key}", flush=True)
    for old in prune(s3, args.bucket, args.prefix, args.kind, args.keep):
        print(f"removed s3://{args.bucket}/{old} (beyond the newest {args.keep})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
