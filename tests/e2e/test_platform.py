"""End-to-end: what the dev stack declares, run for real on 127.0.0.1.

Unit tests prove the program declares objects; these prove the objects work. Every
process is configured from the declared objects (see ``declared.py``); the only
translation is the host mapping. Tests are written in the order a user meets the
platform: tracking, notebook, serving, restart; then broken declarations fail at
their component; then stopping. Each gets what it needs from fixtures, so each
runs alone and in any order.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from mlops_platform.monitoring.metrics import SYNTHETIC
from tests.e2e.config import E2E_CANARY_PERCENT, E2E_TRAINING_EXPERIMENT, E2E_TRAINING_JOB, E2E_TRAINING_MODEL, served_model
from tests.e2e.declared import mutated, resolve_env
from tests.e2e.errors import DataPlaneError
from tests.e2e.kubeflow import poddefault_env
from tests.e2e.meter import Meter, declared_limits
from tests.e2e.plane import DataPlane, pod_count
from tests.e2e.serving import select_runtime
from tests.monitoring.test_stack import queried_metrics
from tools.testing.processes import http, listening, process_tree

LARGE_ARTIFACT = Path(__file__).with_name("large_artifact.py")


def in_cluster_host(plan) -> str:
    return urlsplit(plan.outputs["trackingUri"]).netloc


def s3_endpoint(plan) -> str:
    """The artifact store the MLflow server is declared to use."""
    deployment = DataPlane.tracking_deployment(plan)
    return resolve_env(plan, deployment.k8s_namespace, deployment.pod_spec()["containers"][0], "mlflow")["MLFLOW_S3_ENDPOINT_URL"]


def external_hosts(plan) -> list[str]:
    """Hosts users reach MLflow through: the VirtualService's named hosts and the exported external URLs."""
    hosts = {h for vs in plan.kinds("VirtualService") for h in vs.inputs["spec"]["hosts"] if h != "*"}
    hosts |= {urlsplit(plan.outputs[k]).netloc for k in ("externalUrl", "kubeflowUrl") if (plan.outputs.get(k) or "").startswith("http")}
    return sorted(hosts)


# -- 1. the declared objects -----------------------------------------------------------------


def test_every_declared_env_value_is_a_literal_or_a_declared_secret_key(plan):
    """``resolve_env`` fails on anything else; here every declared name also comes out with a value."""
    containers = [
        (w.k8s_namespace, c)
        for kind in ("Deployment", "StatefulSet", "Job")
        for w in plan.kinds(kind)
        for c in w.pod_spec().get("initContainers", []) + w.pod_spec()["containers"]
    ] + [(d.k8s_namespace, d.inputs["spec"]) for d in plan.kinds("PodDefault")]
    assert plan.kinds("PodDefault"), "the dev stack declares Kubeflow PodDefaults"
    for namespace, container in containers:
        declared = {e["name"] for e in container.get("env") or []}
        assert declared <= set(resolve_env(plan, namespace, container, container.get("name", "poddefault")))


# -- 2-3. PostgreSQL, S3, migration, MLflow ----------------------------------------------------


def test_migration_creates_mlflow_schema_in_the_declared_database(plane, tracking):
    tables = plane.tables()
    assert {"alembic_version", "experiments", "runs", "registered_models", "model_versions", "registered_model_aliases"} <= tables


def test_bucket_exists_with_versioning_as_the_bootstrap_job_makes_it(plane, plan, tracking):
    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=plane.hosts.rewrite(s3_endpoint(plan)),
        aws_access_key_id="e2e",
        aws_secret_access_key="e2e",
        region_name="us-east-1",
    )
    bucket = plan.outputs["bucket"]
    assert bucket in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"


def test_mlflow_is_healthy_on_the_declared_probe_path_and_serves_only_under_its_prefix(plan, tracking):
    probe = tracking.workload.pod_spec()["containers"][0]["readinessProbe"]["httpGet"]["path"]
    prefix = urlsplit(plan.outputs["trackingUri"]).path.rstrip("/")
    assert probe.startswith(prefix + "/")
    assert http(f"{tracking.base}{probe}")[0] == 200
    assert http(f"{tracking.base}{probe[len(prefix) :]}")[0] == 404


def test_mlflow_runs_its_declared_workers_and_no_job_runner(tracking):
    args = tracking.workload.pod_spec()["containers"][0]["args"]
    for pod in tracking.processes:
        commands = process_tree(pod.service.process.pid).values()
        workers = [c for c in commands if "multiprocessing.spawn" in c]
        assert len(workers) == int(args[args.index("--workers") + 1])
        # The job runner (huey consumers) would more than double the server's memory.
        assert not [c for c in commands if "mlflow.server.jobs" in c or "huey" in c]


def test_mlflow_runs_as_many_pods_as_declared(plan, tracking):
    assert len(tracking.processes) == pod_count(plan, tracking.workload)


def test_api_accepts_the_in_cluster_host_header(plane, plan, tracking):
    body = json.loads(plane.mlflow_api(tracking, plan, host=in_cluster_host(plan)))
    assert "experiments" in body


def test_api_accepts_each_external_host_through_the_declared_gateway_route(plane, plan, tracking):
    hosts = external_hosts(plan)
    assert hosts, "the e2e config declares an external host (kubeflow.externalHost)"
    prefix = urlsplit(plan.outputs["trackingUri"]).path.rstrip("/")
    for host in hosts:
        status, body = plane.via_gateway(plan, host, f"{prefix}/api/2.0/mlflow/experiments/search?max_results=1")
        assert status == 200, f"mlflow: Host {host} through the gateway answered {status}: {body[:200]!r}"


def test_api_refuses_an_undeclared_host(plane, plan, tracking):
    with pytest.raises(DataPlaneError, match=r"^mlflow: .* answered 403"):
        plane.mlflow_api(tracking, plan, host="attacker.example.net")


# -- 4. a notebook with the PodDefault's env ---------------------------------------------------


def test_notebook_registers_a_signed_model_and_sets_the_alias(plane, tracking, trained, registry_uri, tmp_path):
    from mlflow import MlflowClient
    from mlflow.artifacts import download_artifacts
    from mlflow.models import Model

    client = MlflowClient(tracking_uri=registry_uri, registry_uri=registry_uri)
    version = client.get_model_version_by_alias(trained["registered_model"], trained["alias"])
    assert (version.version, version.run_id, version.status) == (trained["version"], trained["run_id"], "READY")
    # Read back through the server's artifact proxy: the server reaches S3 with its declared credentials.
    location = client.get_model_version_download_uri(trained["registered_model"], version.version)
    assert location.startswith("mlflow-artifacts:/")  # proxied: clients need no S3 credentials
    local = download_artifacts(artifact_uri=location, dst_path=str(tmp_path), tracking_uri=registry_uri)
    assert Model.load(local).signature is not None


def test_model_artifacts_land_under_the_declared_bucket_and_prefix(plane, plan, trained):
    root = urlsplit(plan.outputs["artifactRoot"])
    keys = plane.s3_keys(plane.hosts.routes[urlsplit(s3_endpoint(plan)).netloc], root.netloc)
    model_files = [k for k in keys if k.endswith("/MLmodel")]
    assert len(model_files) == 1
    assert model_files[0].startswith(f"{root.path.strip('/')}/{trained['experiment_id']}/"), model_files


def test_notebook_keeps_its_data_under_its_profile_prefix_with_the_injected_s3_settings(plane, plan, trained, profile):
    declared = poddefault_env(plan, profile)["PROFILE_S3_URI"]
    assert trained["dataset_uri"].startswith(declared)
    assert not declared.startswith(plan.outputs["artifactRoot"] + "/")  # beside MLflow's prefix, not inside it
    bucket, key = urlsplit(trained["dataset_uri"]).netloc, urlsplit(trained["dataset_uri"]).path.lstrip("/")
    assert plane.s3_keys(plane.hosts.routes[urlsplit(s3_endpoint(plan)).netloc], bucket, prefix=key) == [key]


# -- 4b. a training Job, and the server's metrics -----------------------------------------------


def test_the_declared_training_job_logs_its_run_and_registers_its_model(plane, plan, tracking, profile, registry_uri):
    from mlflow import MlflowClient

    job = plan.k8s("Job", E2E_TRAINING_JOB, profile)
    plane.run_training(plan, job)
    client = MlflowClient(tracking_uri=registry_uri, registry_uri=registry_uri)
    experiment = client.get_experiment_by_name(E2E_TRAINING_EXPERIMENT)
    assert experiment is not None, "MLFLOW_EXPERIMENT_NAME was not what the job declared"
    runs = client.search_runs([experiment.experiment_id])
    assert [(r.info.status, r.data.params["alpha"]) for r in runs] == [("FINISHED", "0.3")]
    versions = client.search_model_versions(f"name='{E2E_TRAINING_MODEL}'")
    assert [(v.run_id, v.status) for v in versions] == [(runs[0].info.run_id, "READY")]


def scrape(plan, tracking) -> dict[str, set[str]]:
    """The tracking server's metrics as the declared ServiceMonitor scrapes them: its path, Host ``<pod IP>:<container port>``."""
    from prometheus_client.parser import text_string_to_metric_families

    endpoint = plan.k8s("ServiceMonitor", "mlflow", "mlflow").inputs["spec"]["endpoints"][0]
    service = plan.k8s("Service", "mlflow", "mlflow").inputs["spec"]["ports"]
    target = next(p["targetPort"] for p in service if p["name"] == endpoint["port"])
    ports = tracking.workload.pod_spec()["containers"][0]["ports"]
    container_port = next(p["containerPort"] for p in ports if p["name"] == target)
    status, body = http(f"{tracking.base}{endpoint['path']}", host=f"10.1.0.23:{container_port}")
    assert status == 200, f"mlflow: the scrape answered {status}: {body[:200]!r}"
    samples: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            samples.setdefault(sample.name, set()).update(sample.labels)
    return samples


def test_every_metric_the_dashboard_and_alerts_query_is_in_a_real_scrape(plan, tracking, trained):
    """After the notebook flow (real requests), the server's own exposition has each series the queries read."""
    samples = scrape(plan, tracking)
    wanted = queried_metrics(plan)
    assert wanted - SYNTHETIC, "the dashboard and alerts query no MLflow metric"
    assert sorted(wanted - SYNTHETIC - set(samples)) == []
    # The labels the queries group by are on the series.
    assert {"status", "method"} <= samples["mlflow_http_request_total"]
    assert {"le", "mlflow_version"} <= samples["mlflow_http_request_duration_seconds_bucket"]


def test_the_metrics_endpoint_refuses_a_host_that_is_no_pod_address(plan, tracking):
    path = plan.k8s("ServiceMonitor", "mlflow", "mlflow").inputs["spec"]["endpoints"][0]["path"]
    assert http(f"{tracking.base}{path}", host="attacker.example.net:5000")[0] == 403


# -- 5. serving: alias -> pinned s3:// URI -> KServe download ----------------------------------


def test_serving_pins_the_alias_to_a_physical_uri_under_the_artifact_root(plan, isvc, trained):
    model = isvc.inputs["spec"]["predictor"]["model"]
    assert model["storageUri"].startswith(plan.outputs["artifactRoot"] + "/")
    annotations = isvc.inputs["metadata"]["annotations"]
    assert annotations["mlops-platform/model-version"] == trained["version"]
    assert annotations["mlops-platform/run-id"] == trained["run_id"]


def test_kserve_storage_initializer_downloads_the_model_with_the_declared_secret(model_dir):
    files = {p.name for p in model_dir.iterdir()}
    assert "MLmodel" in files
    assert "signature:" in (model_dir / "MLmodel").read_text()


# -- 6. the predictor --------------------------------------------------------------------------


def test_kserve_selects_mlserver_for_the_declared_model_format(isvc):
    assert isvc.inputs["spec"]["predictor"]["model"]["modelFormat"]["name"] == "mlflow"
    assert select_runtime(isvc) == "kserve-mlserver"


def test_mlserver_predictions_equal_the_models_own(plane, predictor, isvc, trained):
    predictions = plane.infer(predictor, isvc.k8s_name, trained["inputs"])
    # The same model in the same library versions, float64 through JSON both ways: exactly equal.
    assert predictions == trained["predictions"]


def test_a_canary_pins_production_and_challenger_to_their_own_storage_uris(serving_plan, canary_plan, trained, challenger):
    """The stable share is the revision rolled out before the canary: production's storageUri; the spec is the challenger's."""
    production, canary = served_model(serving_plan), served_model(canary_plan)
    served = canary_plan.outputs["servingModels"][f"{canary.k8s_namespace}/{canary.k8s_name}"]
    assert served["storageUri"] == production.inputs["spec"]["predictor"]["model"]["storageUri"]
    assert (served["version"], served["canary"]["version"]) == (trained["version"], challenger["version"])
    assert canary.inputs["spec"]["predictor"]["model"]["storageUri"] == served["canary"]["storageUri"] != served["storageUri"]
    assert canary.inputs["spec"]["predictor"]["canaryTrafficPercent"] == E2E_CANARY_PERCENT


def test_production_and_challenger_each_serve_their_own_predictions(plane, predictor, isvc, canary_plan, trained, challenger):
    """Both revisions as KServe runs them: each storageUri downloaded by KServe's storage code and served by MLServer."""
    latest = served_model(canary_plan)
    challenger_server = plane.start_predictor(latest, plane.download_model(canary_plan, latest))
    assert trained["inputs"] == challenger["inputs"]
    assert plane.infer(predictor, isvc.k8s_name, trained["inputs"]) == trained["predictions"]
    assert plane.infer(challenger_server, latest.k8s_name, challenger["inputs"]) == challenger["predictions"]
    assert challenger["predictions"] != trained["predictions"]


# -- 7. restart --------------------------------------------------------------------------------


def test_a_restarted_server_still_has_every_run_the_model_and_its_alias(plane, plan, tracking, trained, registry_uri):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=registry_uri, registry_uri=registry_uri)
    aliases = client.get_registered_model(trained["registered_model"]).aliases
    assert aliases[trained["alias"]] == trained["version"]
    plane.stop_server(tracking)
    assert not listening(tracking.port)
    restarted = plane.start_deployment(plan, tracking.workload)
    assert restarted.port == tracking.port  # same Service address, same URL for every client
    assert client.get_run(trained["run_id"]).info.status == "FINISHED"
    runs = client.search_runs([trained["experiment_id"]])
    assert [r.info.run_id for r in runs] == [trained["run_id"]]
    assert client.get_registered_model(trained["registered_model"]).aliases == aliases


# -- 8. artifacts larger than the server's scratch space ---------------------------------------


def test_a_model_larger_than_the_scratch_space_round_trips_within_the_declared_limits(plane, plan, tracking, profile, large_file):
    """Logged and loaded back with the notebook's env, through the declared server; it never holds the file."""
    limits = declared_limits(tracking)
    assert large_file.size > limits.scratch_bytes
    with Meter(tracking) as meter:
        result = plane.run_in_notebook(plan, profile, LARGE_ARTIFACT, [str(large_file.path), "e2e-large", "model"], name="large-model")
    assert result["loaded_sha256"] == large_file.sha256
    assert meter.samples >= 3 and len(meter.peaks) == len(tracking.processes)
    for port, peak in meter.peaks.items():
        assert peak.scratch_bytes <= limits.scratch_bytes, f"pod on {port}: scratch peaked at {peak.scratch_bytes}"
        assert peak.scratch_bytes < large_file.size // 4, f"pod on {port}: the file was staged in scratch ({peak.scratch_bytes} bytes)"
        assert peak.charged_bytes <= limits.memory_bytes, (
            f"pod on {port}: {peak.charged_bytes} bytes against a limit of {limits.memory_bytes}"
        )
        assert peak.rss_bytes - peak.baseline_rss_bytes < large_file.size // 4, f"pod on {port}: the file passed through memory"
    root = urlsplit(plan.outputs["artifactRoot"])
    stored = [
        k
        for k in plane.s3_keys(plane.hosts.routes[urlsplit(s3_endpoint(plan)).netloc], root.netloc)
        if k.endswith("/" + large_file.path.name)
    ]
    assert len(stored) == 1 and stored[0].startswith(root.path.strip("/") + "/"), stored


def test_a_proxied_upload_beyond_the_scratch_space_fails_that_request_and_every_pod_survives(plane, plan, tracking, profile, large_file):
    """A client without a path to the store (multipart off) sends the file through the server: ENOSPC, HTTP 500, no eviction."""
    pids = [pod.service.process.pid for pod in tracking.processes]
    with Meter(tracking) as meter:
        result = plane.run_in_notebook(
            plan,
            profile,
            LARGE_ARTIFACT,
            [str(large_file.path), "e2e-proxied", "artifact"],
            # One attempt: MLflow's client retries a 500 up to 7 times with backoff.
            change_env={"MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD": "false", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"},
            name="proxied-upload",
        )
    peaks = [p.scratch_bytes for p in meter.peaks.values()]
    assert result["error"] is not None and "500" in result["error"], f"the upload went through, scratch peaking at {peaks} bytes"
    assert [pod.service.process.pid for pod in tracking.processes] == pids
    assert all(pod.service.process.poll() is None for pod in tracking.processes)
    probe = tracking.workload.pod_spec()["containers"][0]["readinessProbe"]["httpGet"]["path"]
    assert all(http(f"{pod.base}{probe}")[0] == 200 for pod in tracking.processes)
    assert any("No space left on device" in pod.service.log.read_text(errors="replace") for pod in tracking.processes)
    assert all(sum(m.used_bytes() for m in pod.scratch) < 2**20 for pod in tracking.processes), "the failed upload's file was left behind"
    limits = declared_limits(tracking)
    assert all(p.charged_bytes <= limits.memory_bytes for p in meter.peaks.values())


# -- breaking a declared value fails at its component ------------------------------------------


def test_allowed_hosts_without_the_service_host_fail_the_api_with_403(plane, plan, tracking):
    host = in_cluster_host(plan)
    service = host.split(":")[0]

    def drop_service_host(deployment: dict) -> None:
        args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        i = args.index("--allowed-hosts") + 1
        args[i] = ",".join(h for h in args[i].split(",") if not h.startswith(service))

    deployment = DataPlane.tracking_deployment(plan)
    broken = mutated(plan, "Deployment", deployment.k8s_name, deployment.k8s_namespace, drop_service_host)
    server = plane.start_deployment(
        broken, broken.k8s("Deployment", deployment.k8s_name, deployment.k8s_namespace), hosts=plane.hosts.without(host)
    )
    try:
        with pytest.raises(DataPlaneError, match=rf"^mlflow: GET .* with Host {host} answered 403"):
            plane.mlflow_api(server, broken, host=host)
    finally:
        plane.stop_server(server)


def test_backend_uri_with_the_plain_postgresql_scheme_fails_the_migration(plane, plan, tracking):
    deployment = DataPlane.tracking_deployment(plan)
    (job,) = plane.migration_jobs(plan, deployment)
    migrate = job.pod_spec()["containers"][0]
    secret = next(e["valueFrom"]["secretKeyRef"] for e in migrate["env"] if e["name"] == "MLFLOW_BACKEND_STORE_URI")

    def plain_scheme(obj: dict) -> None:
        obj["stringData"][secret["key"]] = obj["stringData"][secret["key"]].replace("postgresql+psycopg2://", "postgresql://", 1)

    broken = mutated(plan, "Secret", secret["name"], deployment.k8s_namespace, plain_scheme)
    # The migration's first step opens the database with the same URI, and says why it cannot.
    with pytest.raises(DataPlaneError, match=r"^wait-for-database: exited with code 1(.|\n)*cannot be opened: No module named 'psycopg'"):
        plane.run_job(broken, broken.k8s("Job", job.k8s_name, job.k8s_namespace))


@pytest.mark.parametrize(
    "annotation, value, failure",
    [
        (
            "serving.kserve.io/s3-endpoint",
            lambda v: f"{v.rsplit(':', 1)[0]}:{int(v.rsplit(':', 1)[1]) + 1}",
            r"names \S+:\d+, which no declared Service provides",
        ),
        ("serving.kserve.io/s3-endpoint", lambda v: None, r"AWS_ENDPOINT_URL is unset"),
        ("serving.kserve.io/s3-usehttps", lambda v: None, r"exited with code 1(.|\n)*SSL"),
    ],
    ids=["endpoint-wrong-port", "endpoint-missing", "usehttps-missing"],
)
def test_a_broken_storage_secret_annotation_fails_the_kserve_download(plane, serving_plan, isvc, annotation, value, failure):
    account = serving_plan.k8s("ServiceAccount", isvc.inputs["spec"]["predictor"]["serviceAccountName"], isvc.k8s_namespace)
    secret_name = account.inputs["secrets"][0]["name"]

    def change(secret: dict) -> None:
        annotations = secret["metadata"]["annotations"]
        new = value(annotations[annotation])
        if new is None:
            del annotations[annotation]
        else:
            annotations[annotation] = new

    broken = mutated(serving_plan, "Secret", secret_name, isvc.k8s_namespace, change)
    with pytest.raises(DataPlaneError, match=rf"^storage-initializer: (.|\n)*{failure}"):
        plane.download_model(broken, served_model(broken))


# -- 9. stop -----------------------------------------------------------------------------------


def test_stopping_leaves_no_process_running_and_no_port_listening(own_plane):
    ports = set(own_plane.hosts.routes.values()) | {p for s in own_plane.servers for p in s.ports}
    assert own_plane.servers, "nothing was started"
    assert own_plane.stop() == []
    assert [p for p in sorted(ports) if listening(p)] == []
