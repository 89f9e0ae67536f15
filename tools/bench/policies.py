"""What the policy pack adds to `pulumi preview`: the dev stack with 200 Kubeflow profiles, through the pack's own gRPC server.

Not a test. The stack is rendered offline (tools/testing/harness.py); then, as the engine does,
the pack is started as a process (`python -u __main__.py` in policies/, which prints its
port), configured, asked to Analyze every resource and to AnalyzeStack once. Each run is a
fresh process, so the figure includes the interpreter, imports and the rule set's set-up.
The same work is also timed in-process (validate functions called directly). Prints a
table with the machine's load and writes build/bench/policies.json. Goal:
at most 1 s added to `pulumi preview`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PACK = ROOT / "policies"
RUNS = 3
START_TIMEOUT_S = 60


def render(profiles: int) -> list[Any]:
    from tools.testing.harness import run_program, stack_config, with_overrides

    config, secret_keys = stack_config("dev")
    if profiles:
        kubeflow = {**json.loads(config["mlops-platform:kubeflow"]), "profiles": [f"team-{i:03d}" for i in range(profiles)]}
        config = with_overrides(config, {"kubeflow": json.dumps(kubeflow)})
    return run_program("dev", config=config, secret_keys=secret_keys).resources


def _struct(value: dict[str, Any]) -> Any:
    from google.protobuf import struct_pb2

    struct = struct_pb2.Struct()
    struct.update(json.loads(json.dumps(value)))
    return struct


def _start_pack(pack: Path) -> tuple[subprocess.Popen[bytes], int]:
    env = {**os.environ, "PULUMI_STACK": "dev"}
    process = subprocess.Popen([sys.executable, "-u", "__main__.py"], cwd=pack, stdout=subprocess.PIPE, env=env)
    assert process.stdout is not None
    deadline = time.monotonic() + START_TIMEOUT_S
    line = b""
    while not line.strip() and time.monotonic() < deadline and process.poll() is None:
        line = process.stdout.readline()
    if not line.strip():
        process.kill()
        raise SystemExit("the policy pack did not print its port")
    return process, int(line)


def grpc_run(resources: list[Any], pack: Path = PACK) -> dict[str, Any]:
    """One preview's worth of analyzer calls against a freshly started pack; ``cpu_s`` is the CPU time the pack's
    process used, which the machine's load inflates less than wall time."""
    import grpc
    from google.protobuf import empty_pb2
    from pulumi.runtime.proto import analyzer_pb2 as pb
    from pulumi.runtime.proto import analyzer_pb2_grpc

    start = time.perf_counter()
    process, port = _start_pack(pack)
    try:
        started = time.perf_counter() - start
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = analyzer_pb2_grpc.AnalyzerStub(channel)
            stub.GetAnalyzerInfo(empty_pb2.Empty())
            stub.Configure(pb.ConfigureAnalyzerRequest())
            analyze_start = time.perf_counter()
            diagnostics = 0
            for r in resources:
                request = pb.AnalyzeRequest(
                    type=r.type, name=r.name, urn=r.urn, properties=_struct(r.inputs), options=pb.AnalyzerResourceOptions(protect=r.protect)
                )
                diagnostics += len(stub.Analyze(request).diagnostics)
            analyzed = time.perf_counter() - analyze_start
            stack_start = time.perf_counter()
            stack = pb.AnalyzeStackRequest(
                resources=[
                    pb.AnalyzerResource(
                        type=r.type,
                        name=r.name,
                        urn=r.urn,
                        properties=_struct(r.inputs),
                        options=pb.AnalyzerResourceOptions(protect=r.protect),
                        dependencies=r.dependencies,
                    )
                    for r in resources
                ]
            )
            diagnostics += len(stub.AnalyzeStack(stack).diagnostics)
            stacked = time.perf_counter() - stack_start
    finally:
        process.terminate()
        _, _, usage = os.wait4(process.pid, 0)
        process.returncode = 0
    return {
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "start_s": started,
        "analyze_s": analyzed,
        "analyze_stack_s": stacked,
        "total_s": time.perf_counter() - start,
        "diagnostics": diagnostics,
    }


def in_process(resources: list[Any]) -> dict[str, Any]:
    """The validate functions alone, over the same resources (no process start, no gRPC)."""
    from pulumi_policy import (
        PolicyCustomTimeouts,
        PolicyResource,
        PolicyResourceOptions,
        ResourceValidationArgs,
        ResourceValidationPolicy,
        StackValidationArgs,
        StackValidationPolicy,
    )
    from pulumi_policy.proxy import unknown_checking_proxy

    from mlops_policies import crossguard_policies

    policies = crossguard_policies()
    resource_policies = [p for p in policies if isinstance(p, ResourceValidationPolicy)]
    stack_policies = [p for p in policies if isinstance(p, StackValidationPolicy)]
    options = PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [])
    reported: list[str] = []

    def report(message: str, urn: str | None = None) -> None:
        reported.append(message)

    cpu = time.process_time()
    start = time.perf_counter()
    for r in resources:
        args = ResourceValidationArgs(r.type, unknown_checking_proxy(r.inputs), r.urn, r.name, options, None, config={})
        for policy in resource_policies:
            policy.validate(args, report)
    resource_s = time.perf_counter() - start
    stack = [PolicyResource(r.type, unknown_checking_proxy(r.inputs), r.urn, r.name, options, None, None, [], {}) for r in resources]
    start = time.perf_counter()
    for stack_policy in stack_policies:
        stack_policy.validate(StackValidationArgs(stack, {}), report)
    return {
        "resource_policies_s": resource_s,
        "stack_policies_s": time.perf_counter() - start,
        "cpu_s": time.process_time() - cpu,
        "diagnostics": len(reported),
    }


def baseline_pack(revision: str) -> Path:
    """The policies/ directory of ``revision``, extracted under build/bench, to measure the same calls against."""
    target = ROOT / "build" / "bench" / f"pack-{revision}"
    if not (target / "policies" / "__main__.py").exists():
        target.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "archive", revision, "policies"], cwd=ROOT, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target / "policies"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=int, default=200)
    parser.add_argument("--runs", type=int, default=RUNS)
    parser.add_argument("--baseline", help="also measure the pack of this git revision, in turn with this one (e.g. before a change)")
    args = parser.parse_args(argv)
    results: dict[str, Any] = {"load_before": os.getloadavg()}
    baseline = baseline_pack(args.baseline) if args.baseline else None
    for label, profiles in (("dev", 0), (f"dev, {args.profiles} profiles", args.profiles)):
        resources = render(profiles)
        runs, before = [], []
        for _ in range(args.runs):
            runs.append(grpc_run(resources))
            if baseline is not None:
                before.append(grpc_run(resources, baseline))
        local = [in_process(resources) for _ in range(args.runs)]
        keys = ("cpu_s", "start_s", "analyze_s", "analyze_stack_s", "total_s")
        results[label] = {
            "resources": len(resources),
            **{key: round(statistics.median(run[key] for run in runs), 3) for key in keys},
            "max_total_s": round(max(run["total_s"] for run in runs), 3),
            "in_process_s": round(statistics.median(x["resource_policies_s"] + x["stack_policies_s"] for x in local), 3),
            "in_process_cpu_s": round(statistics.median(x["cpu_s"] for x in local), 3),
            "diagnostics": runs[0]["diagnostics"],
            "runs": args.runs,
        }
        if before:
            results[label]["baseline"] = {
                "revision": args.baseline,
                **{key: round(statistics.median(run[key] for run in before), 3) for key in keys},
            }
    results["load_after"] = os.getloadavg()
    out = ROOT / "build" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    (out / "policies.json").write_text(json.dumps(results, indent=2) + "\n")
    for label, r in results.items():
        if not isinstance(r, dict):
            continue
        print(
            f"{label}: {r['resources']} resources; pack over gRPC {r['total_s']} s wall median (max {r['max_total_s']} s), "
            f"{r['cpu_s']} s CPU: start {r['start_s']} s, Analyze {r['analyze_s']} s, AnalyzeStack {r['analyze_stack_s']} s; "
            f"in-process validate {r['in_process_s']} s ({r['in_process_cpu_s']} s CPU); {r['diagnostics']} diagnostics; {r['runs']} runs"
        )
        if "baseline" in r:
            b = r["baseline"]
            print(
                f"  pack at {b['revision']}: {b['total_s']} s wall, {b['cpu_s']} s CPU (start {b['start_s']} s); "
                f"added: {r['cpu_s'] - b['cpu_s']:+.3f} s CPU"
            )
    print(
        "load average (1, 5, 15 min) before: {:.2f} {:.2f} {:.2f}, after: {:.2f} {:.2f} {:.2f}".format(
            *results["load_before"], *results["load_after"]
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
