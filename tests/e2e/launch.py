"""Starting the stand-ins on top of tools.testing.processes: only the declared env, every wait bounded, failures naming the component.

Every declared container starts here with a :class:`~tests.e2e.sandbox.Sandbox`: its securityContext and volumes hold.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.e2e.errors import DataPlaneError
from tests.e2e.sandbox import Sandbox
from tests.e2e.scratch import ScratchMount
from tools.testing.harness import DeclaredResource
from tools.testing.processes import HOST, Service, http, start

# The image entrypoints (`mlflow`, `python`, `mlserver`, `moto_server`) are the venv's.
VENV_BIN = Path(sys.prefix) / "bin"
# Every bounded wait, in seconds (2 shared cores: generous, never unbounded).
START_TIMEOUT = {"postgresql": 60, "minio": 30, "mlflow": 120, "mlserver": 90}
RUN_TIMEOUT = {"initdb": 60, "notebook": 240, "storage-initializer": 120, "training": 240}

# MLflow 3 sends usage telemetry to an external endpoint unless told not to; here only loopback traffic is allowed.
NO_TELEMETRY = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}


def base_env(home: Path, entrypoints: Path | None = None) -> dict[str, str]:
    """What the images provide besides the declared env: a PATH to the entrypoints, a locale, a HOME; telemetry off.

    Nothing is inherited from the caller's environment, so a developer's own AWS_* or
    MLFLOW_* variables can neither help nor break a run.
    """
    return {"PATH": f"{entrypoints or VENV_BIN}:/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": str(home), **NO_TELEMETRY}


def spawn(
    name: str, argv: Sequence[str], env: Mapping[str, str], log: Path, cwd: Path | None = None, sandbox: Sandbox | None = None
) -> Service:
    """A service with exactly ``env`` (nothing inherited), its log appended across restarts.

    With ``sandbox`` (a declared container) it runs as its pod would run it; ``cwd`` is then the container's workingDir.
    """
    if sandbox is not None:
        return start(name, sandbox.argv(argv), log=log, env=env, inherit_env=False)
    return start(name, argv, log=log, env=env, cwd=cwd, inherit_env=False)


def await_ready(service: Service, ready: Callable[[], str | None], timeout: float, what: str) -> float:
    """Poll ``ready`` (None when ready, else why not) every 0.2 s; returns seconds taken. Bounded by ``timeout``."""
    began = time.monotonic()
    last = "not checked yet"
    while time.monotonic() - began < timeout:
        if service.process.poll() is not None:
            raise DataPlaneError(service.name, f"exited with code {service.process.returncode} before {what}", service.log, service.tail())
        why = ready()
        if why is None:
            return time.monotonic() - began
        last = why
        time.sleep(0.2)
    raise DataPlaneError(service.name, f"{what} did not happen within {timeout:.0f} s (last: {last})", service.log, service.tail())


def run_once(
    component: str,
    argv: Sequence[str],
    env: Mapping[str, str],
    log: Path,
    timeout: float,
    cwd: Path | None = None,
    sandbox: Sandbox | None = None,
) -> None:
    """Run a one-shot command (an init container, a Job, a notebook) to completion; fail with its log tail."""
    service = spawn(component, argv, env, log, cwd, sandbox)
    try:
        code = service.process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        service.stop(timeout=5)
        raise DataPlaneError(component, f"did not finish within {timeout:.0f} s", log) from None
    if code != 0:
        raise DataPlaneError(component, f"exited with code {code}", log)


def http_ready(url: str, host: str | None = None) -> Callable[[], str | None]:
    """A readiness check for :func:`await_ready`: None once ``url`` answers 200."""

    def check() -> str | None:
        try:
            status, _ = http(url, host=host, timeout=3)
        except OSError as exc:
            return str(getattr(exc, "reason", exc))
        return None if status == 200 else f"HTTP {status}"

    return check


@dataclass
class Server:
    """A long-running stand-in for a declared workload."""

    component: str
    service: Service
    port: int
    seconds_to_ready: float = 0.0
    workload: DeclaredResource | None = None
    other_ports: tuple[int, ...] = ()
    # A Deployment with several replicas: this server is the Service's balancer, these are the pods behind it.
    pods: list[Server] = field(default_factory=list)
    # The pod's scratch volumes as mounted here (tests/e2e/scratch.py).
    scratch: list[ScratchMount] = field(default_factory=list)

    @property
    def processes(self) -> list[Server]:
        """The servers running the workload's container: the pods, or this one when there is a single pod."""
        return self.pods or [self]

    @property
    def base(self) -> str:
        return f"http://{HOST}:{self.port}"

    def error(self, message: str) -> DataPlaneError:
        """A failure of this server, with its log file and the log's tail."""
        return DataPlaneError(self.component, message, self.service.log, self.service.tail())

    @property
    def ports(self) -> tuple[int, ...]:
        return (self.port, *self.other_ports)
