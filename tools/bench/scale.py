"""Scaling on the real engine: preview, up, no-op up and one added profile at 1 to 500 profiles and 100 to 500 models.

Not a test. Each size runs twice on its own fresh embedded cluster (tools/local/cluster.py):

- the engine: `pulumi preview`, `up` from empty, a no-op `up`, then the preview (whole, and targeted at what the
  change touches, as a pull request's preview runs it: tools/dev/targets.py) and `up` of the same stack with one more
  profile, through tools/local/engine.py (the CLI, the kubernetes provider and the policy pack, as a user runs them);
- the floor: the same Kubernetes objects, rendered offline (tools/testing/harness.py, as ``make plan`` writes them to
  build/<stack>/manifests and patches), applied to the same kind of cluster by ``kubectl apply --server-side`` in one
  run: a server-side dry run (preview), the apply and a wait for the Deployments and Jobs the engine also waits for
  (up), the same apply again (no-op), and the apply of the stack with one more profile (add one).

Beside each figure: the machine's load average (os.getloadavg) before it, and the CPU seconds of this process (the
program, run inline through the Automation API) and of its children (CLI, providers, policy pack). Models are pinned
by ``storageUri`` (no registry round trip: tools/bench/serving.py measures resolution) in the dev profile.
Writes build/bench/scale.json and prints the table docs/contributing/figures.md quotes. ``--profile DIR`` also writes the CLI's Go CPU
profiles (``pulumi --profiling``) and a cProfile of the program for each engine step.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools.dev.local_up import load_existing
from tools.dev.plan import write_build
from tools.dev.targets import touched
from tools.local import cluster as local_cluster
from tools.local import engine as engine_module
from tools.local.engine import LocalEngine
from tools.testing.harness import run_program, stack_config, with_overrides

ROOT = Path(__file__).resolve().parents[2]
WORK = ROOT / "build" / "bench" / "scale"
STACK = "dev"
PROFILE = "kubeflow-user-example-com"
SIZES: tuple[tuple[int, int], ...] = ((1, 0), (50, 0), (200, 0), (500, 0), (1, 100), (1, 500))
RUNS = 2
STEPS = ("preview", "up", "noop", "add_preview", "add_targeted", "add_up")
FLOOR_STEPS = ("preview", "up", "noop", "add_up")
KUBECTL_TIMEOUT = 900


def profile_names(count: int) -> list[str]:
    return [PROFILE, *(f"team-{i:03d}" for i in range(count - 1))]


def overrides(profiles: int, models: int) -> dict[str, Any]:
    """The dev stack with ``profiles`` Kubeflow profiles and ``models`` pinned models in the first."""
    config, _ = stack_config(STACK)
    kubeflow = {**json.loads(config["mlops-platform:kubeflow"]), "profiles": profile_names(profiles)}
    serving = json.loads(config["mlops-platform:serving"])
    serving["models"] = [
        {"name": f"model-{i:03d}", "namespace": PROFILE, "storageUri": f"s3://mlflow-artifacts/dev/1/models/m-{i:03d}/artifacts"}
        for i in range(models)
    ]
    return {"kubeflow": kubeflow, "serving": serving}


def load() -> float:
    return round(os.getloadavg()[0], 2)


@dataclass
class Figure:
    seconds: float
    load: float
    cpu_self: float = 0.0
    cpu_children: float = 0.0
    # The engine's steps other than "same", by operation (what a preview shows, what an up did).
    changes: dict[str, int] = field(default_factory=dict)


@contextlib.contextmanager
def timed(out: dict[str, Figure], name: str) -> Iterator[None]:
    before_load = load()
    self0, children0 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    yield
    seconds = time.perf_counter() - start
    self1, children1 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    out[name] = Figure(
        round(seconds, 2),
        before_load,
        round(self1.ru_utime + self1.ru_stime - self0.ru_utime - self0.ru_stime, 2),
        round(children1.ru_utime + children1.ru_stime - children0.ru_utime - children0.ru_stime, 2),
    )


def profiling_cli(directory: Path) -> Path:
    """A `pulumi` that adds ``--profiling`` to preview and up: Go CPU profiles and traces of the CLI's engine."""
    real = local_cluster.binary("pulumi")
    bin_dir = directory / "cli" / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    wrapper = bin_dir / "pulumi"
    wrapper.write_text(
        "#!/bin/sh\n"
        'for a in "$@"; do case "$a" in preview|up)\n'
        f'  exec {real} "$@" --profiling "{directory}/cli-$a-$(date +%s%N)";; esac; done\n'
        f'exec {real} "$@"\n'
    )
    wrapper.chmod(0o755)
    return bin_dir.parent


@dataclass
class Options:
    policy: bool = True
    env: dict[str, str] = field(default_factory=dict)
    profile_dir: Path | None = None
    steps: tuple[str, ...] = STEPS
    # `--parallel` for the engine's preview and up (None: the CLI's default, 4 per core).
    parallel: int | None = None


def engine_series(profiles: int, models: int, options: Options) -> dict[str, Figure]:
    """One fresh cluster: preview, up, no-op up, then preview and up with one more profile."""
    directory = WORK / "cluster"
    local_cluster.stop(directory)
    cluster = local_cluster.start(directory)
    figures: dict[str, Figure] = {}
    base, grown = overrides(profiles, models), overrides(profiles + 1, models)
    saved_env = {k: os.environ.get(k) for k in options.env}
    os.environ.update(options.env)
    try:
        load_existing(cluster, STACK, grown)
        program: Callable[[], None] = engine_module.program
        counter = iter(range(100))
        profile_dir = options.profile_dir
        if profile_dir:
            profile_dir.mkdir(parents=True, exist_ok=True)

            def program() -> None:
                profiler = cProfile.Profile()
                profiler.enable()
                try:
                    engine_module.program()
                finally:
                    profiler.disable()
                    profiler.dump_stats(str(profile_dir / f"program-{profiles}p-{next(counter)}.prof"))

        engine = LocalEngine(
            STACK,
            directory,
            workspace=WORK / "state",
            overrides=base,
            pulumi_program=program,
            pulumi_root=profiling_cli(options.profile_dir) if options.profile_dir else None,
            extra_env=options.env,
        )
        engine.reset()
        extra: dict[str, Any] = {"parallel": options.parallel} if options.parallel else {}

        def grown_then(run: Callable[[], engine_module.EngineRun]) -> Callable[[], engine_module.EngineRun]:
            def step() -> engine_module.EngineRun:
                engine.write_stack_file(grown)
                return run()

            return step

        actions: dict[str, Callable[[], engine_module.EngineRun]] = {
            "preview": lambda: engine.preview(policy=options.policy, **extra),
            "up": lambda: engine.up(policy=options.policy, **extra),
            "noop": lambda: engine.up(policy=options.policy, **extra),
            "add_preview": grown_then(lambda: engine.preview(policy=options.policy, **extra)),
            # What .github/workflows/preview.yml runs for a PR that adds the profile (tools/dev/targets.py).
            "add_targeted": grown_then(
                lambda: engine.preview(policy=options.policy, target=targets(profiles, models), target_dependents=True, **extra)
            ),
            "add_up": grown_then(lambda: engine.up(policy=options.policy, **extra)),
        }
        previewed = 0
        for step in options.steps:
            with timed(figures, step):
                run = actions[step]()
            figures[step].changes = changes(run)
            if step == "preview":
                # Every resource the program declares, the stack itself and its default providers included.
                previewed = len(run.steps())
        figures["resources"] = Figure(float(resource_count(engine) or previewed), load())
        return figures
    finally:
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        local_cluster.stop(directory)


def targets(profiles: int, models: int) -> list[str]:
    """The URNs adding one profile touches, as the pull-request preview computes them (included in its time)."""
    config, secret_keys = stack_config(STACK)
    base, head = (
        run_program(STACK, config=with_overrides(config, overrides(n, models)), secret_keys=secret_keys) for n in (profiles, profiles + 1)
    )
    return touched(base, head)


def changes(run: engine_module.EngineRun) -> dict[str, int]:
    counted: dict[str, int] = {}
    for step in run.steps():
        if step["op"] != "same":
            counted[step["op"]] = counted.get(step["op"], 0) + 1
    return dict(sorted(counted.items()))


def resource_count(engine: LocalEngine) -> int:
    exported = json.loads(engine.cli("stack", "export").stdout)
    return len(exported["deployment"].get("resources") or [])


def render(profiles: int, models: int, out: Path) -> int:
    """The objects `make plan` writes for this size; returns how many resources the program declares."""
    config, secret_keys = stack_config(STACK)
    plan = run_program(STACK, config=with_overrides(config, overrides(profiles, models)), secret_keys=secret_keys)
    write_build(plan, out)
    for manifest in out.glob("*/*.yaml"):
        # The engine's own bookkeeping annotations mean nothing to kubectl.
        text = manifest.read_text()
        manifest.write_text("\n".join(line for line in text.splitlines() if "pulumi.com/" not in line) + "\n")
    return len(plan.resources)


def kubectl(cluster: local_cluster.Cluster, *args: str) -> None:
    command = [str(kubectl_binary()), "--kubeconfig", str(cluster.kubeconfig), *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=KUBECTL_TIMEOUT)
    if result.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args[:3])} failed: {result.stderr.strip()[-2000:]}")


def kubectl_binary() -> Path:
    """kubectl, built by `make toolchain` with the control plane (same Kubernetes version)."""
    for directory in local_cluster.toolchain_dirs():
        candidate = directory.parent.parent / directory.parent.name.replace("kubernetes-", "kubectl-") / "bin" / "kubectl"
        if directory.parent.name.startswith("kubernetes-") and candidate.exists():
            return candidate
    raise local_cluster.ToolchainMissing("kubectl is not in the toolchain cache: run `make toolchain`")


def apply(cluster: local_cluster.Cluster, rendered: Path, *extra: str) -> None:
    """Whole objects, then the patches of existing ones (a field manager of their own, as the program's patches)."""
    common = ["apply", "--server-side", "--force-conflicts", *extra]
    kubectl(cluster, *common, "--field-manager", "floor", "-f", str(rendered / "manifests"))
    if (rendered / "patches").exists():
        kubectl(cluster, *common, "--field-manager", "floor-patches", "-f", str(rendered / "patches"))


def floor_series(profiles: int, models: int) -> dict[str, Figure]:
    """The same objects by server-side apply on a fresh cluster, in the engine's order of steps."""
    directory = WORK / "floor-cluster"
    local_cluster.stop(directory)
    cluster = local_cluster.start(directory)
    figures: dict[str, Figure] = {}
    base, grown = WORK / "render" / "base", WORK / "render" / "grown"
    try:
        load_existing(cluster, STACK, overrides(profiles + 1, models))
        count = render(profiles, models, base)
        render(profiles + 1, models, grown)
        # A server-side dry run of a namespaced object needs its namespace: the program's own are created first, untimed.
        for namespace in (base / "manifests").glob("*-namespace-*.yaml"):
            kubectl(cluster, "apply", "--server-side", "--field-manager", "floor", "-f", str(namespace))
        with timed(figures, "preview"):
            apply(cluster, base, "--dry-run=server")
        with timed(figures, "up"):
            apply(cluster, base)
            kubectl(cluster, "wait", "--for=condition=Available", "deployment", "--all", "-A", "--timeout=600s")
            kubectl(cluster, "wait", "--for=condition=Complete", "job", "--all", "-A", "--timeout=600s")
        with timed(figures, "noop"):
            apply(cluster, base)
        with timed(figures, "add_up"):
            apply(cluster, grown)
        figures["declared"] = Figure(float(count), load())
        return figures
    finally:
        local_cluster.stop(directory)


def median(runs: list[dict[str, Figure]], step: str) -> Figure:
    present = [r[step] for r in runs if step in r]
    return Figure(
        round(statistics.median(f.seconds for f in present), 2),
        round(statistics.median(f.load for f in present), 2),
        round(statistics.median(f.cpu_self for f in present), 2),
        round(statistics.median(f.cpu_children for f in present), 2),
        present[0].changes,
    )


def measure(sizes: list[tuple[int, int]], runs: int, options: Options, floor: bool) -> list[dict[str, Any]]:
    rows = []
    for profiles, models in sizes:
        engine_runs, floor_runs = [], []
        for _ in range(runs):
            if floor:
                floor_runs.append(floor_series(profiles, models))
            engine_runs.append(engine_series(profiles, models, options))
            print(f"  {profiles} profiles, {models} models: run {len(engine_runs)} done (load {load()})", flush=True)
        row: dict[str, Any] = {
            "profiles": profiles,
            "models": models,
            "resources": int(engine_runs[0]["resources"].seconds),
            "engine": {s: vars(median(engine_runs, s)) for s in options.steps},
            "engine_runs": [{k: vars(v) for k, v in r.items()} for r in engine_runs],
        }
        if floor:
            row["floor"] = {s: vars(median(floor_runs, s)) for s in FLOOR_STEPS}
            row["floor_runs"] = [{k: vars(v) for k, v in r.items()} for r in floor_runs]
        rows.append(row)
    return rows


def report(rows: list[dict[str, Any]], runs: int) -> str:
    header = "| profiles | models | resources | step | engine | floor (SSA) | ratio | load | CPU program / CLI+providers |"
    lines = [header, "|" + "---|" * 9]
    for row in rows:
        for step, figure in row["engine"].items():
            floor_step = "add_up" if step == "add_up" else step
            floor = (row.get("floor") or {}).get(floor_step) if step not in ("add_preview", "add_targeted") else None
            ratio = f"{figure['seconds'] / floor['seconds']:.1f}x" if floor and floor["seconds"] else "-"
            floor_text = f"{floor['seconds']:.2f} s" if floor else "-"
            lines.append(
                f"| {row['profiles']} | {row['models']} | {row['resources']} | {step} | {figure['seconds']:.2f} s | {floor_text} | "
                f"{ratio} | {figure['load']:.1f} | {figure['cpu_self']:.1f} / {figure['cpu_children']:.1f} s |"
            )
    lines.append(f"(median of {runs} runs each, fresh cluster per run; load: 1-minute average before the step, 2 cores)")
    lines += slopes(rows)
    return "\n".join(lines)


def compact(rows: list[dict[str, Any]]) -> str:
    """One line per size, as docs/contributing/figures.md shows it: engine seconds, then the floor's and the ratio where there is one."""

    def cell(row: dict[str, Any], step: str) -> str:
        figure = row["engine"].get(step)
        if figure is None:
            return "-"
        floor = (row.get("floor") or {}).get(step)
        if floor and floor["seconds"]:
            return f"{figure['seconds']:.1f} s ({floor['seconds']:.1f} s, {figure['seconds'] / floor['seconds']:.1f}x)"
        return f"{figure['seconds']:.1f} s"

    lines = [
        "| profiles | models | resources | preview | up from empty | no-op up | one more profile: preview / targeted preview / up | load |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        loads = [f["load"] for f in row["engine"].values()]
        add = " / ".join(cell(row, s) for s in ("add_preview", "add_targeted", "add_up"))
        lines.append(
            f"| {row['profiles']} | {row['models']} | {row['resources']} | {cell(row, 'preview')} | {cell(row, 'up')} | "
            f"{cell(row, 'noop')} | {add} | {min(loads):.1f}-{max(loads):.1f} |"
        )
    return "\n".join(lines)


def slopes(rows: list[dict[str, Any]]) -> list[str]:
    """Cost per added profile and per resource between the smallest and largest profile counts (no models)."""
    plain = sorted((r for r in rows if r["models"] == 0), key=lambda r: r["profiles"])
    if len(plain) < 2 or plain[-1]["resources"] == plain[0]["resources"]:
        return []
    small, large = plain[0], plain[-1]
    profiles = large["profiles"] - small["profiles"]
    resources = large["resources"] - small["resources"]
    out = [f"resources per profile: {resources / profiles:.2f}"]
    for step in large["engine"]:
        delta = large["engine"][step]["seconds"] - small["engine"][step]["seconds"]
        out.append(
            f"{step}: {1000 * delta / profiles:.1f} ms per profile, {1000 * delta / resources:.2f} ms per resource "
            f"({small['profiles']} -> {large['profiles']} profiles)"
        )
    return out


def parse_size(text: str) -> tuple[int, int]:
    profiles, _, models = text.partition("x")
    return int(profiles), int(models or 0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", nargs="+", type=parse_size, default=list(SIZES), help="PROFILESxMODELS, e.g. 200 or 1x100 (default: %(default)s)"
    )
    parser.add_argument("--runs", type=int, default=RUNS)
    parser.add_argument("--steps", nargs="+", choices=STEPS, default=list(STEPS))
    parser.add_argument("--no-policy", action="store_true", help="without the policy pack (its share of the time)")
    parser.add_argument("--no-floor", action="store_true")
    parser.add_argument("--env", nargs="*", default=[], help="KEY=VALUE for the CLI (e.g. PULUMI_SKIP_CHECKPOINTS=true)")
    parser.add_argument("--parallel", type=int, help="pulumi --parallel for every engine step (default: the CLI's)")
    parser.add_argument("--profile", type=Path, help="write Go CPU profiles of the CLI and cProfiles of the program here")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "bench" / "scale.json")
    parser.add_argument("--report", type=Path, nargs="+", help="print the tables of earlier runs' JSON files and exit")
    args = parser.parse_args(argv)
    if args.report:
        documents = [json.loads(path.read_text()) for path in args.report]
        rows = [row for document in documents for row in document["rows"]]
        print(compact(rows))
        print("\n".join(slopes(rows)))
        for path, document in zip(args.report, documents, strict=True):
            print(f"{path}: {document['settings']}")
        return 0
    options = Options(
        policy=not args.no_policy,
        env=dict(item.split("=", 1) for item in args.env),
        profile_dir=args.profile.resolve() if args.profile else None,
        steps=tuple(args.steps),
        parallel=args.parallel,
    )
    shutil.rmtree(WORK, ignore_errors=True)
    rows = measure(args.sizes, args.runs, options, floor=not args.no_floor)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    settings = {"policy": options.policy, "env": options.env, "parallel": options.parallel, "runs": args.runs, "cores": os.cpu_count()}
    args.out.write_text(json.dumps({"settings": settings, "rows": rows}, indent=2) + "\n")
    print(report(rows, args.runs))
    print(compact(rows))
    print(f"settings: {settings}; figures in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
