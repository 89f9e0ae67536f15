"""``mlflow gc`` for a server that proxies artifacts, run as ``python -c <source> --older-than 30d``.

Runs record ``mlflow-artifacts:/<path>`` URIs, which ``mlflow gc`` would resolve through
an HTTP tracking server. Here they map onto ``MLFLOW_ARTIFACTS_DESTINATION/<path>``, as the
server maps them, so the job deletes straight from the store with the server's own access,
and the database URI stays in the environment (never on the command line).
With Kubeflow workspaces it runs with ``--all-workspaces`` and the server's workspace settings
(MLflow refuses to open a database holding workspace experiments without them).
"""

from __future__ import annotations

import os
import sys
from urllib.parse import urlsplit


def proxied_to_destination(destination: str):
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    root = destination.rstrip("/")

    def repository(artifact_uri: str, tracking_uri: str | None = None, registry_uri: str | None = None):
        path = urlsplit(artifact_uri).path.lstrip("/")
        return get_artifact_repository(f"{root}/{path}" if path else root)

    return repository


def main(argv: list[str]) -> int:
    from mlflow.cli import cli
    from mlflow.store.artifact.artifact_repository_registry import _artifact_repository_registry

    _artifact_repository_registry.register("mlflow-artifacts", proxied_to_destination(os.environ["MLFLOW_ARTIFACTS_DESTINATION"]))
    uri = os.environ["MLFLOW_BACKEND_STORE_URI"]
    os.environ["MLFLOW_TRACKING_URI"] = uri
    return cli.main(["gc", "--backend-store-uri", uri, *argv], prog_name="mlflow", standalone_mode=False) or 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
