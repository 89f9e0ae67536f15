"""Real services on 127.0.0.1 for tests and benchmarks: start, wait until healthy, always stop.

Each process runs in its own session (process group), so stopping it also stops
the workers it forked (mlflow server's uvicorn, MLServer's workers), and nothing
else. Its output goes to a log file whose tail is quoted when it fails to start.
What tests ask of such processes is here too: a loopback HTTP request, whether a
port listens, and a process's tree, group and memory (Linux /proc).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"


class ServiceStartError(RuntimeError):
    """A service did not become healthy in time; the message names it and quotes its log."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def tail(log: Path, lines: int = 30) -> str:
    """The last lines of a log, for failure messages."""
    try:
        text = log.read_text(errors="replace")
    except FileNotFoundError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


@dataclass
class Service:
    """A process started by a test, with the log it writes to."""

    name: str
    process: subprocess.Popen
    log: Path

    def tail(self, lines: int = 30) -> str:
        return tail(self.log, lines)

    def wait_http(self, url: str, *, timeout: float, status: int = 200) -> None:
        """Poll ``url`` until it answers ``status``; fail with the log's tail after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServiceStartError(
                    f"{self.name} exited with code {self.process.returncode} before {url} answered; log {self.log}:\n{self.tail()}"
                )
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    if response.status == status:
                        return
                    last = f"HTTP {response.status}"
            except urllib.error.HTTPError as exc:
                if exc.code == status:
                    return
                last = f"HTTP {exc.code}"
            except (urllib.error.URLError, OSError) as exc:
                last = str(getattr(exc, "reason", exc))
            time.sleep(0.25)
        raise ServiceStartError(f"{self.name} not healthy at {url} after {timeout:.0f} s (last: {last}); log {self.log}:\n{self.tail()}")

    def stop(self, timeout: float = 10) -> None:
        """SIGTERM the process group, then SIGKILL it if it has not exited within ``timeout``.

        The whole group is waited for, not only its leader: a leader that exits first (a sandbox's bwrap, a shell) may
        leave the server it started shutting down, still listening.
        """
        deadline = time.monotonic() + timeout
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=timeout)
        while process_group(self.process.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if process_group(self.process.pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)


def start(
    name: str,
    argv: Sequence[str],
    *,
    log_dir: Path | None = None,
    log: Path | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    inherit_env: bool = True,
) -> Service:
    """Start ``argv`` in its own process group, output to ``log_dir/<name>.log`` or appended to ``log``.

    ``env`` extends this process's environment, or replaces it with ``inherit_env=False``
    (so that nothing set here, such as MLFLOW_* variables, can leak into the service).
    Appending lets a restarted service keep one log.
    """
    if (log_dir is None) == (log is None):
        raise ValueError("give exactly one of log_dir or log")
    if log is None:
        assert log_dir is not None  # exactly one of the two is given (checked above)
        log = log_dir / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab" if log_dir is None else "wb") as out:
        process = subprocess.Popen(
            list(argv),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**(os.environ if inherit_env else {}), **(env or {})},
            cwd=cwd,
            start_new_session=True,
        )
    return Service(name, process, log)


@contextlib.contextmanager
def running(
    name: str,
    argv: Sequence[str],
    *,
    health_url: str,
    log_dir: Path,
    timeout: float,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    inherit_env: bool = True,
) -> Iterator[Service]:
    """A healthy service for the duration of the block; stopped afterwards whatever happens."""
    service = start(name, argv, log_dir=log_dir, env=env, cwd=cwd, inherit_env=inherit_env)
    try:
        service.wait_http(health_url, timeout=timeout)
        yield service
    finally:
        service.stop()


@contextlib.contextmanager
def mlflow_registry(
    work: Path, artifacts: str, *, workers: int = 1, workspaces: bool = False, env: Mapping[str, str] | None = None, timeout: float = 90
) -> Iterator[str]:
    """A throwaway ``mlflow server`` from this interpreter's environment, serving as TrackingStack configures it (artifacts
    proxied to ``artifacts``, the job runner off) on SQLite in ``work``; yields its URI."""
    port = free_port()
    uri = f"http://{HOST}:{port}"
    argv = [str(Path(sys.executable).parent / "mlflow"), "server", "--host", HOST, "--port", str(port), "--workers", str(workers)]
    argv += ["--backend-store-uri", f"sqlite:///{work / 'mlflow.db'}", "--serve-artifacts", "--artifacts-destination", artifacts]
    if workspaces:
        # Kept in the backend store here; the tracking server keeps them in Kubernetes namespaces.
        argv.append("--enable-workspaces")
    server_env = {**(env or {}), "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    with running("mlflow", argv, health_url=f"{uri}/health", log_dir=work, timeout=timeout, cwd=work, env=server_env):
        yield uri


def http(url: str, *, host: str | None = None, method: str = "GET", body: dict | None = None, timeout: float = 10) -> tuple[int, bytes]:
    """One HTTP request to a loopback URL; returns (status, body) for any status."""
    if not url.startswith(f"http://{HOST}:"):
        raise ValueError(f"refusing non-loopback request to {url}")
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if host:
        headers["Host"] = host
    request = urllib.request.Request(url, data=json.dumps(body).encode() if body is not None else None, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((HOST, port)) == 0


def process_tree(pid: int) -> dict[int, str]:
    """A process and all its descendants: pid -> command line (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    tree: dict[int, str] = {}
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            tree[p] = Path(f"/proc/{p}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        todo.extend(children.get(p, []))
    return tree


def process_group(pgid: int) -> dict[int, str]:
    """Live processes of a process group: pid -> command line (zombies excluded)."""
    members: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                members[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except (OSError, IndexError, ValueError):
            continue
    return members


def memory_mb(pid: int) -> dict[str, float]:
    """RSS and PSS (MiB) summed over a process tree. RSS counts shared pages once per process; PSS splits them."""
    totals = {"rss_mb": 0.0, "pss_mb": 0.0, "processes": 0}
    for p in process_tree(pid):
        try:
            rollup = Path(f"/proc/{p}/smaps_rollup").read_text()
        except OSError:
            continue
        fields = {line.split(":")[0]: line.split()[1] for line in rollup.splitlines()[1:] if ":" in line}
        totals["rss_mb"] += int(fields.get("Rss", 0)) / 1024
        totals["pss_mb"] += int(fields.get("Pss", 0)) / 1024
        totals["processes"] += 1
    return totals
