"""Each declared container run as its pod runs it: its declared identity, a read-only root, only its declared volumes
writable, its Secret and ConfigMap files at their declared modes.

A container's own filesystem is this machine's, read-only (the images themselves are not used here, see docs/contributing/e2e.md):
bubblewrap (Debian's ``bwrap``) builds a mount namespace holding the host's directories read-only, an empty ``/tmp``,
``/root`` and ``/run`` (nothing of the host's or of other pods), a private 64 MiB ``/dev/shm`` (the container runtime's
default), and each volume the container mounts at its mount path. ``setpriv`` (util-linux) then drops root for the
declared ``runAsUser``/``runAsGroup`` with the pod's ``fsGroup`` and ``supplementalGroups`` as supplementary groups, no
capabilities (``drop: [ALL]``) and ``no_new_privs`` (``allowPrivilegeEscalation: false``). The kernel does the rest: a
write outside a writable volume fails with EROFS, a file the identity may not read fails with EACCES, as in the pod.

Volumes are made once per pod (:class:`PodVolumes`) and shared by its containers, as the kubelet does:

- ``emptyDir``: a directory of mode 0777 (a tmpfs of exactly ``sizeLimit`` for ``medium: Memory``; a disk-backed one is a
  plain directory, as on the node, where only eviction bounds it), then ``fsGroup`` as the kubelet applies it
  (pkg/volume/volume_linux.go ``SetVolumeOwnership``: group fsGroup, ``g+rw`` and setgid on directories);
- a generic ephemeral volume or a claim: a fresh file system root (a tmpfs of the requested size, as root; 0755), then
  ``fsGroup`` likewise;
- ``secret``, ``configMap`` and ``projected``: root-owned files with each item's ``mode`` (else ``defaultMode``, else
  0644), then ``fsGroup`` for read-only volumes (group fsGroup, ``g+r``); the declared content, with in-cluster
  addresses mapped to this machine by the caller's ``rewrite``. A projected ServiceAccount token exists only if the
  caller has one (there is no kubelet to request it).

Holding a process needs root (bwrap's mounts and setpriv's drop); :func:`unavailable` says why it cannot run here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops_platform.settings_base import quantity_bytes
from tests.e2e.errors import DataPlaneError
from tests.e2e.scratch import ScratchMount

# Host directories a container never sees: other processes' and pods' files (the test's own run directories live in
# /tmp), root's home, runtime sockets. Each becomes an empty read-only directory, plus whatever is bound beneath it.
HIDDEN = ("/tmp", "/root", "/run")
SHM_BYTES = 64 * 2**20
# Where files the caller hands a container from outside its spec are mounted (see PodVolumes.hand_in).
HANDED_IN = "/run/handed-in"
EMPTY_DIR_MODE = 0o777
FS_ROOT_MODE = 0o755
SECRET_FILE_MODE = 0o644


def unavailable() -> str | None:
    """Why containers cannot be held to their security context here, or None."""
    if shutil.which("bwrap") is None:
        return "bwrap is not installed"
    if shutil.which("setpriv") is None:
        return "setpriv (util-linux) is not installed"
    if os.geteuid() != 0:
        return "it runs as root (bwrap mounts the container's volumes, setpriv drops to its declared user), as .ci/run does"
    return None


@dataclass(frozen=True)
class Identity:
    """Who the container's process is: what its pod's and its own securityContext declare."""

    uid: int
    gid: int
    groups: tuple[int, ...]
    no_new_privs: bool

    @classmethod
    def of(cls, pod: Mapping[str, Any], container: Mapping[str, Any], component: str) -> Identity:
        pod_context = pod.get("securityContext") or {}
        context = container.get("securityContext") or {}

        def setting(key: str) -> Any:
            return context.get(key, pod_context.get(key))

        uid, gid = setting("runAsUser"), setting("runAsGroup")
        if uid is None or gid is None:
            raise DataPlaneError(component, "declares no runAsUser/runAsGroup: the image's own user is not reproduced here")
        if setting("runAsNonRoot") and uid == 0:
            raise DataPlaneError(component, "runs as UID 0 with runAsNonRoot (the kubelet refuses to start it)")
        if context.get("privileged"):
            raise DataPlaneError(component, "is privileged, which is not reproduced here")
        capabilities = context.get("capabilities") or {}
        if "ALL" not in (capabilities.get("drop") or []) or capabilities.get("add"):
            raise DataPlaneError(component, f"declares capabilities {capabilities}; only drop: [ALL] is reproduced here")
        if not context.get("readOnlyRootFilesystem"):
            raise DataPlaneError(component, "has a writable root filesystem, which is not reproduced here (only a read-only one)")
        groups = [pod_context["fsGroup"]] if pod_context.get("fsGroup") is not None else []
        groups += [g for g in pod_context.get("supplementalGroups") or [] if g not in groups]
        return cls(int(uid), int(gid), tuple(int(g) for g in groups), context.get("allowPrivilegeEscalation") is False)


# -- volumes -------------------------------------------------------------------------------------------------------------


@dataclass
class HostVolume:
    """A pod's volume as made here: its directory, whether containers may only read it, and its size when fixed."""

    name: str
    path: Path
    read_only: bool
    size_bytes: int = 0
    # A tmpfs mounted for it (unmounted by release()).
    mounted: bool = False


# What a caller supplies for a Secret, ConfigMap or projected source: (kind, name) -> {key: text}, or None if not declared.
Source = Callable[[str, str], "Mapping[str, str] | None"]


@dataclass
class PodVolumes:
    """The volumes of one pod on this machine, made on first use and shared by the pod's containers."""

    pod: Mapping[str, Any]
    root: Path
    component: str
    namespace: str
    source: Source
    rewrite: Callable[[str], str] = lambda text: text
    # volumeClaimTemplates of a StatefulSet: claim name -> its spec.
    claims: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # A ServiceAccount token for projected volumes, if the caller has one (the kubelet would request it).
    token: str | None = None
    made: dict[str, HostVolume] = field(default_factory=dict)

    @property
    def fs_group(self) -> int | None:
        return (self.pod.get("securityContext") or {}).get("fsGroup")

    def volume(self, name: str) -> HostVolume:
        if name in self.made:
            return self.made[name]
        declared = {v["name"]: v for v in self.pod.get("volumes") or []}
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        if name in declared:
            made = self._make(declared[name], path)
        elif name in self.claims:
            made = self._filesystem(name, path, self.claims[name])
        else:
            raise DataPlaneError(self.component, f"mounts volume {name!r}, which its pod does not declare")
        self.made[name] = made
        return made

    def _make(self, volume: Mapping[str, Any], path: Path) -> HostVolume:
        name = volume["name"]
        if "emptyDir" in volume:
            spec = volume["emptyDir"] or {}
            size = quantity_bytes(spec["sizeLimit"]) if spec.get("sizeLimit") else 0
            # Memory is a tmpfs of exactly sizeLimit; a disk-backed emptyDir is only bounded by eviction, afterwards.
            mounted = spec.get("medium") == "Memory" and size > 0 and _mount_tmpfs(path, size)
            path.chmod(EMPTY_DIR_MODE)
            self._own(path, read_only=False)
            return HostVolume(name, path, False, size, mounted)
        if "ephemeral" in volume:
            return self._filesystem(name, path, volume["ephemeral"]["volumeClaimTemplate"]["spec"])
        if "persistentVolumeClaim" in volume:
            return self._filesystem(name, path, {})
        if "secret" in volume or "configMap" in volume:
            kind = "secret" if "secret" in volume else "configMap"
            spec = volume[kind]
            ref = spec.get("secretName") if kind == "secret" else spec.get("name")
            self._files(path, kind, ref, spec.get("items"), spec.get("defaultMode", SECRET_FILE_MODE), spec.get("optional", False))
            self._own(path, read_only=True)
            return HostVolume(name, path, True)
        if "projected" in volume:
            spec = volume["projected"]
            mode = spec.get("defaultMode", SECRET_FILE_MODE)
            for projection in spec.get("sources") or []:
                self._project(path, projection, mode)
            self._own(path, read_only=True)
            return HostVolume(name, path, True)
        raise DataPlaneError(self.component, f"volume {name!r} is {sorted(set(volume) - {'name'})}, which is not reproduced here")

    def _filesystem(self, name: str, path: Path, claim: Mapping[str, Any]) -> HostVolume:
        """A fresh file system's root (a claim or a generic ephemeral volume): of the requested size where one is given."""
        requested = ((claim.get("resources") or {}).get("requests") or {}).get("storage")
        size = quantity_bytes(requested) if requested else 0
        mounted = size > 0 and _mount_tmpfs(path, size)
        path.chmod(FS_ROOT_MODE)
        self._own(path, read_only=False)
        return HostVolume(name, path, False, size, mounted)

    def _files(self, path: Path, kind: str, ref: str, items: list | None, mode: int, optional: bool) -> None:
        values = self.source(kind, ref)
        if values is None:
            if optional:
                return
            raise DataPlaneError(self.component, f"mounts {kind} {self.namespace}/{ref}, which the program does not declare")
        chosen = [(i["key"], i["path"], i.get("mode", mode)) for i in items] if items else [(k, k, mode) for k in values]
        for key, relative, file_mode in chosen:
            if key not in values:
                if optional:
                    continue
                raise DataPlaneError(self.component, f"mounts key {key!r} of {kind} {ref}, which declares only {sorted(values)}")
            self._write(path / relative, values[key], file_mode)

    def _project(self, path: Path, projection: Mapping[str, Any], mode: int) -> None:
        if "secret" in projection or "configMap" in projection:
            kind = "secret" if "secret" in projection else "configMap"
            spec = projection[kind]
            # A ConfigMap the cluster makes (kube-root-ca.crt) is not declared: its files are absent here.
            self._files(path, kind, spec["name"], spec.get("items"), mode, optional=True)
        elif "downwardAPI" in projection:
            for item in projection["downwardAPI"].get("items") or []:
                if (item.get("fieldRef") or {}).get("fieldPath") != "metadata.namespace":
                    raise DataPlaneError(self.component, f"downward API item {item} is not reproduced here")
                self._write(path / item["path"], self.namespace, item.get("mode", mode))
        elif "serviceAccountToken" in projection:
            if self.token is not None:
                self._write(path / projection["serviceAccountToken"]["path"], self.token, mode)
        else:
            raise DataPlaneError(self.component, f"projected source {sorted(projection)} is not reproduced here")

    def _write(self, target: Path, text: str, mode: int) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(self.rewrite(text))
        target.chmod(mode)

    def _own(self, path: Path, *, read_only: bool) -> None:
        """The kubelet's SetVolumeOwnership with fsGroup: group fsGroup; files g+rw (g+r if read-only); directories also setgid and g+x."""
        group = self.fs_group
        if group is None:
            return
        mask = 0o440 if read_only else 0o660
        for entry in [path, *path.rglob("*")]:
            os.lchown(entry, -1, group)
            if entry.is_symlink():
                continue
            extra = mask | (0o2000 | 0o110 if entry.is_dir() else 0)
            entry.chmod(entry.stat().st_mode & 0o7777 | extra)

    def hand_in(self, env: Mapping[str, str]) -> tuple[dict[str, str], dict[str, Path]]:
        """``env`` with each file it names from outside the spec (a kubeconfig standing for the kubelet's ServiceAccount
        mount) replaced by a copy the pod's user may read, as the kubelet's projected files are (root, g+r for fsGroup),
        mounted at HANDED_IN/<variable>/<name>; returns the env and those files (container path -> copy)."""
        out, files = dict(env), {}
        for key, value in env.items():
            if value.startswith(tuple(h + "/" for h in HIDDEN)) and os.path.isfile(value):
                copy = self.root / "handed-in" / key / os.path.basename(value)
                copy.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(value, copy)
                if self.fs_group is not None:
                    os.chown(copy, 0, self.fs_group)
                    copy.chmod(0o440)
                else:
                    copy.chmod(0o444)
                out[key] = f"{HANDED_IN}/{key}/{copy.name}"
                files[out[key]] = copy
        return out, files

    def scratch_mounts(self, container: Mapping[str, Any]) -> list[ScratchMount]:
        """The container's writable scratch (emptyDirs, generic ephemeral volumes) as the meter reads it: size and use."""
        declared = {v["name"]: v for v in self.pod.get("volumes") or []}
        found = []
        for mount in container.get("volumeMounts") or []:
            volume = declared.get(mount["name"]) or {}
            if "emptyDir" in volume or "ephemeral" in volume:
                made = self.volume(mount["name"])
                found.append(ScratchMount(made.name, mount["mountPath"], made.size_bytes, made.path, made.mounted))
        return found

    def release(self) -> None:
        for volume in self.made.values():
            if volume.mounted:
                subprocess.run(["umount", "-l", str(volume.path)], check=False, capture_output=True)
                volume.mounted = False


def _mount_tmpfs(path: Path, size: int) -> bool:
    """A tmpfs of exactly ``size`` bytes at ``path`` (as root); a write beyond it fails with ENOSPC, as on the volume."""
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)], check=True)
    return True


# -- the sandbox ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Mount:
    """A container path backed by a host path: a declared volume (at its mountPath), or a file of the image's stand-in."""

    path: str
    source: Path
    read_only: bool


@dataclass(frozen=True)
class Sandbox:
    """How one container's process is started: its identity and filesystem view, as an argv prefix for bwrap and setpriv."""

    identity: Identity
    mounts: tuple[Mount, ...]
    # Host paths the image's programs live in (a venv and its interpreter under /root), visible read-only where they are.
    readable: tuple[Path, ...] = ()
    workdir: str = "/"

    def argv(self, command: Sequence[str]) -> list[str]:
        # Mount paths through a symlink (/var/run -> /run) resolved as a runtime resolves them inside the root; bwrap would
        # follow an absolute link outside it.
        mounts = [Mount(resolve(m.path), m.source, m.read_only) for m in self.mounts]
        points = {m.path for m in mounts} | {str(p) for p in self.readable}
        args = [shutil.which("bwrap") or "bwrap", "--die-with-parent", "--unshare-ipc", "--unshare-uts", *_filesystem(points)]
        args += ["--proc", "/proc", "--dev", "/dev", "--size", str(SHM_BYTES), "--tmpfs", "/dev/shm"]
        # Shallow before deep, so that a path beneath a volume's mount path is bound over it, not hidden by it.
        binds = [Mount(str(p), p, True) for p in self.readable] + mounts
        bound: list[str] = []
        for mount in sorted(binds, key=lambda m: len(Path(m.path).parts)):
            # A program's host path beneath a volume's mount path (a checkout under /tmp, where a pod mounts an emptyDir):
            # bwrap would make the directories on the way 0700 in the volume, which the container's UID cannot search.
            for ancestor in list(Path(mount.path).parents)[::-1]:
                if any(ancestor.is_relative_to(b) and str(ancestor) != b for b in bound):
                    args += ["--perms", "0755", "--dir", str(ancestor)]
            args += ["--ro-bind" if mount.read_only else "--bind", str(mount.source), mount.path]
            bound.append(mount.path)
        args += ["--remount-ro", "/", "--chdir", self.workdir, "--"]
        identity = self.identity
        groups = ["--groups", ",".join(map(str, identity.groups))] if identity.groups else ["--clear-groups"]
        drop = ["--reuid", str(identity.uid), "--regid", str(identity.gid), *groups, "--inh-caps=-all", "--bounding-set=-all"]
        if identity.no_new_privs:
            drop.append("--no-new-privs")
        # By its path: the container's PATH (the mc image's holds mc alone) is not the sandbox's.
        return [*args, shutil.which("setpriv") or "/usr/bin/setpriv", *drop, "--", *command]


def resolve(path: str) -> str:
    """``path`` with each symlink on its existing part resolved (the root's links are the host's, shown read-only)."""
    parts = Path(path).parts
    for index in range(len(parts), 0, -1):
        head = Path(*parts[:index])
        if os.path.lexists(head):
            return str(Path(os.path.realpath(head), *parts[index:]))
    return path


def _filesystem(points: set[str]) -> list[str]:
    """bwrap arguments exposing this machine's filesystem read-only around ``points`` (paths that get mounts of their own).

    bwrap cannot create a mount point inside a read-only bind, so a host directory with a point beneath it is recreated
    empty (on the sandbox's root, made read-only at the end) and its entries exposed one by one.
    """
    args: list[str] = []
    made: set[str] = {"/"}

    def beneath(path: str) -> bool:
        prefix = path.rstrip("/") + "/"
        return any(p.startswith(prefix) for p in points)

    def expose(directory: str) -> None:
        if directory != "/":
            args.extend(["--dir", directory])
            made.add(directory)
        if directory in HIDDEN:
            return
        for entry in sorted(os.scandir(directory), key=lambda e: e.name):
            path = entry.path
            if path in ("/proc", "/dev") or path in points:
                continue
            if entry.is_symlink():
                args.extend(["--symlink", os.readlink(path), path])
            elif path in HIDDEN or (entry.is_dir() and beneath(path)):
                expose(path)
            else:
                args.extend(["--ro-bind", path, path])

    expose("/")
    # Directories on the way to a point that the host does not show here (under a hidden one, or not on the host at all):
    # created 0755, as a runtime creates a mount point (bwrap would copy the hidden parent's 0700).
    for point in sorted(points):
        for ancestor in list(Path(point).parents)[::-1]:
            if str(ancestor) not in made and not os.path.islink(ancestor) and _hidden_or_absent(str(ancestor)):
                args.extend(["--dir", str(ancestor)])
                made.add(str(ancestor))
    return args


def _hidden_or_absent(path: str) -> bool:
    return not os.path.exists(path) or any(path == h or path.startswith(h + "/") for h in HIDDEN)


def interpreter_paths(bin_dir: Path) -> list[Path]:
    """What a venv's programs need to run: the venv, and the interpreter it was made from (pyvenv.cfg ``home``)."""
    venv = bin_dir.parent
    found = [venv]
    config = venv / "pyvenv.cfg"
    if config.exists():
        for line in config.read_text().splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "home":
                found.append(Path(value.strip()).parent)
    return found


def for_container(
    pod: Mapping[str, Any],
    container: Mapping[str, Any],
    volumes: PodVolumes,
    component: str,
    *,
    readable: Iterable[Path] = (),
    files: Mapping[str, Path] | None = None,
) -> Sandbox:
    """The sandbox of ``container``: its identity, each of its volumeMounts backed by the pod's volume here, and ``files``
    (container path -> host file) for what the image itself would provide (e.g. a passwd entry)."""
    identity = Identity.of(pod, container, component)
    mounts = []
    for mount in container.get("volumeMounts") or []:
        volume = volumes.volume(mount["name"])
        source = volume.path / mount["subPath"] if mount.get("subPath") else volume.path
        mounts.append(Mount(mount["mountPath"], source, volume.read_only or bool(mount.get("readOnly"))))
    mounts += [Mount(path, source, True) for path, source in (files or {}).items()]
    return Sandbox(identity, tuple(mounts), tuple(dict.fromkeys(readable)), container.get("workingDir") or "/")
