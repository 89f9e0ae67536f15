"""`make image`: build images/mlflow (MLflow with Kubeflow's plugins) and push it to a registry you name.

No published image holds MLflow with mlflow-kubernetes-plugins at the versions this project pins (docs/images.md), so
a stack running the Kubernetes authorization app needs this one. The builder is whichever of docker, podman or buildah
is installed (or ``--builder``); the registry defaults to MicroK8s's registry addon (``microk8s enable registry``, served
at localhost:32000 on the node, which MicroK8s's containerd pulls from over plain HTTP). The tag comes from the image's
own pins (images/mlflow/requirements.txt), the same the config's default names. Standard library only: no venv needed.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONTEXT = ROOT / "images" / "mlflow"
REPOSITORY = "mlops-platform/mlflow"
DEFAULT_REGISTRY = "localhost:32000"
BUILDERS = ("docker", "podman", "buildah")


class ImageError(RuntimeError):
    """Nothing to build with, or a build or push step failed; the message says which."""


def pins(requirements: Path = CONTEXT / "requirements.txt") -> dict[str, str]:
    """Package -> version of the image's requirements (extras dropped)."""
    found = {}
    for line in requirements.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            found[re.sub(r"\[.*\]", "", name).strip().lower()] = version.strip()
    return found


def tag(requirements: Path = CONTEXT / "requirements.txt") -> str:
    """``<mlflow>-k8s<plugin>``: what the image holds, read from what it installs."""
    p = pins(requirements)
    return f"{p['mlflow']}-k8s{p['mlflow-kubernetes-plugins']}"


def reference(registry: str) -> str:
    return f"{registry.rstrip('/')}/{REPOSITORY}:{tag()}"


def choose_builder(wanted: str | None = None) -> str:
    if wanted:
        if wanted not in BUILDERS:
            raise ImageError(f"builder {wanted!r} is not supported; allowed: {', '.join(BUILDERS)}")
        if shutil.which(wanted) is None:
            raise ImageError(f"builder {wanted} is not installed (not on PATH)")
        return wanted
    for builder in BUILDERS:
        if shutil.which(builder):
            return builder
    raise ImageError(f"no image builder found: install one of {', '.join(BUILDERS)} (or build images/mlflow elsewhere and push it)")


def _plain_http(registry: str) -> bool:
    """MicroK8s's registry addon (and any localhost registry) speaks HTTP; docker trusts 127.0.0.0/8 by itself."""
    host = registry.split("/", 1)[0].split(":", 1)[0]
    return host in ("localhost", "127.0.0.1")


def commands(builder: str, ref: str, registry: str, digest_file: Path, push: bool) -> list[list[str]]:
    """The argv of each step, in order: build, then push (recording the pushed digest)."""
    build = [builder, "build", "--pull", "--tag", ref, str(CONTEXT)]
    if not push:
        return [build]
    tls = ["--tls-verify=false"] if _plain_http(registry) and builder != "docker" else []
    if builder == "docker":
        return [build, ["docker", "push", ref]]
    return [build, [builder, "push", *tls, "--digestfile", str(digest_file), ref]]


def pushed_digest(builder: str, ref: str, digest_file: Path) -> str:
    if builder != "docker":
        return digest_file.read_text().strip()
    found = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{range .RepoDigests}}{{println .}}{{end}}", ref],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    name = ref.rsplit(":", 1)[0]
    for entry in found:
        if entry.startswith(name + "@"):
            return entry.split("@", 1)[1]
    raise ImageError(f"docker reports no digest of {name} after the push (RepoDigests: {found})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--registry", default=DEFAULT_REGISTRY, help=f"where to push (default {DEFAULT_REGISTRY}, MicroK8s's registry addon)"
    )
    parser.add_argument("--builder", choices=BUILDERS, help="default: the first of docker, podman, buildah on PATH")
    parser.add_argument("--no-push", action="store_true", help="build only")
    args = parser.parse_args(argv)
    ref = reference(args.registry)
    try:
        builder = choose_builder(args.builder)
        with tempfile.TemporaryDirectory() as scratch:
            digest_file = Path(scratch) / "digest"
            for step in commands(builder, ref, args.registry, digest_file, push=not args.no_push):
                print("image: " + " ".join(step), flush=True)
                code = subprocess.run(step, check=False).returncode
                if code != 0:
                    raise ImageError(f"`{' '.join(step[:2])}` failed with exit status {code}")
            if args.no_push:
                print(f"image: built {ref} (not pushed)")
                return 0
            digest = pushed_digest(builder, ref, digest_file)
    except ImageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    pinned = f"{ref}@{digest}"
    print(f"image: pushed {pinned}")
    print(f"image: pin it with `pulumi config set --path tracking.image {pinned}`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
