"""Which registry requests resolution sends: what the tests of its cost count, on every lane."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from mlops_platform.serving import mlflow_rest


def record_requests(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every request ``MlflowRest`` sends from now on, by endpoint: the API path after ``/api/2.0/mlflow/``, or
    ``artifacts`` for a file read through the artifact proxy."""
    made: list[str] = []
    send = mlflow_rest.MlflowRest._send

    def counted(self, path: str, body: bytes | None = None) -> bytes:
        made.append("artifacts" if path.startswith("/api/2.0/mlflow-artifacts/") else urlsplit(path).path.removeprefix("/api/2.0/mlflow/"))
        return send(self, path, body)

    monkeypatch.setattr(mlflow_rest.MlflowRest, "_send", counted)
    return made
