"""The migration's first step: wait, bounded, until the database answers; never show the password; stop at once on a refusal.

The e2e runs it against the real PostgreSQL and MariaDB (tests/e2e); here the failure paths, on ports nothing listens on.
"""

from __future__ import annotations

import time

import pytest

from mlops_platform.pod_scripts import wait
from tools.testing.processes import free_port

PASSWORD = "Very-S3cret-pw"


@pytest.mark.slow
def test_a_database_that_never_answers_fails_after_the_timeout_naming_host_and_port_not_the_password():
    port = free_port()
    lines: list[str] = []
    began = time.monotonic()
    with pytest.raises(SystemExit) as caught:
        wait.wait(f"postgresql+psycopg2://mlflow:{PASSWORD}@127.0.0.1:{port}/mlflow", timeout=2, interval=0.5, log=lines.append)
    took = time.monotonic() - began
    message = str(caught.value)
    assert message.startswith(f"database postgresql at 127.0.0.1:{port}/mlflow did not answer within 2 s")
    assert "Connection refused" in message or "connection refused" in message.lower()
    assert 2 <= took < 10 and len(lines) >= 2
    assert PASSWORD not in message and not [line for line in lines if PASSWORD in line]


def test_a_uri_whose_driver_the_image_lacks_fails_at_once():
    with pytest.raises(SystemExit, match=r"cannot be opened: No module named 'psycopg'"):
        wait.wait(f"postgresql://mlflow:{PASSWORD}@127.0.0.1:{free_port()}/mlflow", timeout=60)


def test_a_refusal_of_the_credentials_is_not_waited_out(monkeypatch):
    from sqlalchemy.exc import OperationalError

    class Refused(Exception):
        def __str__(self) -> str:
            return 'connection to server at "db" (10.0.0.5), port 5432 failed: FATAL:  password authentication failed for user "mlflow"'

    def connect(*_args, **_kwargs):
        raise OperationalError("SELECT 1", {}, Refused())

    monkeypatch.setattr("sqlalchemy.engine.Engine.connect", connect)
    began = time.monotonic()
    with pytest.raises(SystemExit, match=r"refused the connection: .*password authentication failed"):
        wait.wait(f"postgresql+psycopg2://mlflow:{PASSWORD}@db:5432/mlflow", timeout=60, interval=5)
    assert time.monotonic() - began < 2
