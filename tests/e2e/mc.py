"""A stand-in for MinIO's `mc`, which cannot be obtained here (AGPL): what the provisioning Jobs' scripts call, replayed.

The Job's own script runs under /bin/sh with this as the only command on PATH (the pinned mc image is ubi-micro plus
mc: nothing like grep). `alias set`, `mb` and `version enable` are replayed through the S3 API against the endpoint the
alias names (moto in place of MinIO); `admin ...` (users, policies) has no S3 equivalent and is logged as not
replayable, answering as MinIO does when the change is new; anything else fails, so a changed script cannot pass
unnoticed. Aliases live in $MC_CONFIG_DIR, as mc keeps them, so that directory must be writable in the pod.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

HOST = "127.0.0.1"


def _aliases(path: Path) -> dict[str, list[str]]:
    return json.loads(path.read_text()) if path.exists() else {}


def _client(alias: list[str]):
    import boto3

    url, key, secret = alias
    return boto3.client("s3", endpoint_url=url, aws_access_key_id=key, aws_secret_access_key=secret, region_name="us-east-1")


def main(argv: list[str]) -> int:
    config = Path(os.environ.get("MC_CONFIG_DIR") or Path.home() / ".mc")
    config.mkdir(parents=True, exist_ok=True)
    store = config / "stand-in-aliases.json"
    aliases = _aliases(store)
    if argv[:2] == ["alias", "set"] and len(argv) >= 6:
        name, url, key, secret = argv[2:6]
        if not url.startswith(f"http://{HOST}:"):
            print(f"mc stand-in: alias {name} points at {url}, which is not a declared in-cluster Service address", file=sys.stderr)
            return 1
        aliases[name] = [url, key, secret]
        store.write_text(json.dumps(aliases))
        print(f"replayed: mc alias set {name} {url} {key} ***")
        return 0
    if argv and argv[0] == "admin":
        # Secret keys are arguments of `admin user add`: never logged.
        shown = argv[:4] + (["***"] if argv[1:3] == ["user", "add"] else argv[4:])
        print("not replayable (MinIO admin API): mc " + " ".join(shown))
        return 0
    target = argv[-1] if argv else ""
    alias, _, bucket = target.partition("/")
    if argv[:1] == ["mb"] or argv[:2] == ["version", "enable"]:
        if alias not in aliases:
            print(f"mc stand-in: {' '.join(argv[:2])} uses alias {alias!r} before `mc alias set`", file=sys.stderr)
            return 1
        client = _client(aliases[alias])
        if argv[0] == "mb":
            try:
                client.create_bucket(Bucket=bucket)
            except client.exceptions.BucketAlreadyOwnedByYou:
                if "--ignore-existing" not in argv:
                    raise
        else:
            client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        print("replayed: mc " + " ".join(argv))
        return 0
    print(f"mc stand-in: cannot replay `mc {' '.join(argv[:3])}`", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
