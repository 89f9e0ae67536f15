"""People in browsers, through Kubeflow's front door, are authorized by Kubernetes RBAC as the user Kubeflow names.

The dev stack goes up through the real engine with two profiles. Users are bound as Kubeflow binds them: each
profile's owner by the profile controller (kubeflow-admin), contributors by its access management (KFAM: edit
or view). Kubeflow's front door is tests/e2e/kubeflow_gateway.py (Dex, oauth2-proxy, the ingress gateway, each
following kubeflow/manifests v1.11.0); the browser server's pod runs as declared, its proxy (oauth2-proxy built
from the pinned release) in front of MLflow with Kubeflow's authorization app on a Unix socket; the local
kube-apiserver answers its SubjectAccessReviews from the RBAC the program and Kubeflow declared.

Not run here: Istio (the AuthorizationPolicy admitting only the gateway to the browser server is rendered and
checked in tests/kubeflow), NetworkPolicy enforcement, the real Dex and oauth2-proxy in front of the gateway.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from kubernetes import utils

from tests.cluster.conftest import DIRECTORY, EXPERIMENT, MODEL, PROFILE_A, PROFILE_B, sa_token
from tests.cluster.tenancy import COLLECTIONS, Caller, GatewayUser, attempts, error_code
from tests.e2e.plane import DataPlane
from tests.e2e.postgres import postgres_bindir
from tools.testing.cluster_fixtures import contributor_binding, profile_owner
from tools.testing.harness import Plan
from tools.testing.processes import process_group

OWNER_A = profile_owner(PROFILE_A)
OWNER_B = profile_owner(PROFILE_B)
VIEWER_A = "viewer@example.com"
EDITOR_A = "editor@example.com"
STRANGER = "stranger@example.com"
SHOTS = Path(__file__).resolve().parents[2] / "build" / "browser"


@pytest.fixture(scope="module")
def contributors(cluster) -> Iterator[None]:
    """Profile A's contributors, added as its owner adds them in the dashboard (Manage Contributors)."""
    from kubernetes import client

    api = cluster.api()
    bindings = [contributor_binding(PROFILE_A, VIEWER_A, "view"), contributor_binding(PROFILE_A, EDITOR_A, "edit")]
    for binding in bindings:
        utils.create_from_dict(api, binding)
    try:
        yield
    finally:
        rbac = client.RbacAuthorizationV1Api(api)
        for binding in bindings:
            rbac.delete_namespaced_role_binding(binding["metadata"]["name"], PROFILE_A)


@pytest.fixture(scope="module")
def plane(cluster, plan: Plan, server_image, contributors) -> Iterator[tuple[DataPlane, str]]:
    """PostgreSQL, S3, the migration, the tracking server (notebooks' path), and the browser server behind the gateway."""
    if postgres_bindir() is None:
        pytest.fail("PostgreSQL server binaries not found: install Debian's `postgresql`, as .ci/run does", pytrace=False)
    entrypoints, outside = server_image
    data_plane = DataPlane(DIRECTORY / "browser-logs")
    try:
        server = data_plane.bring_up_tracking(plan, entrypoints=entrypoints, outside_env=outside)
        data_plane.expose_browser_server(plan)
        data_plane.start_kubeflow_gateway(plan, namespaces=[PROFILE_A, PROFILE_B])
        data_plane.start_browser_server(plan, entrypoints=entrypoints, outside_env=outside)
        yield data_plane, server.base + urlsplit(plan.outputs["trackingUri"]).path
    finally:
        data_plane.close()


@pytest.fixture(scope="module")
def gateway(plane) -> str:
    return plane[0].gateway.base


def person(gateway: str, email: str, **headers: str) -> GatewayUser:
    return GatewayUser(gateway, email, headers=headers).login()


def test_a_profile_owner_lists_creates_logs_registers_and_moves_aliases_in_their_workspace(gateway, notebooks):
    owner = person(gateway, OWNER_A)
    status, body = owner.call("POST", "experiments/search", PROFILE_A, {"max_results": 50})
    assert status == 200 and EXPERIMENT[PROFILE_A] in {e["name"] for e in body["experiments"]}, body
    status, body = owner.call("POST", "experiments/create", PROFILE_A, {"name": "owner-from-the-browser"})
    assert status == 200, body
    experiment = body["experiment_id"]
    status, body = owner.call("POST", "runs/create", PROFILE_A, {"experiment_id": experiment, "start_time": 1})
    assert status == 200, body
    run = body["run"]["info"]
    assert owner.call("POST", "runs/log-metric", PROFILE_A, {"run_id": run["run_id"], "key": "auc", "value": 0.9, "timestamp": 1})[0] == 200
    assert owner.call("POST", "registered-models/create", PROFILE_A, {"name": "owner-model"})[0] == 200
    status, body = owner.call(
        "POST",
        "model-versions/create",
        PROFILE_A,
        {"name": "owner-model", "source": run["artifact_uri"] + "/model", "run_id": run["run_id"]},
    )
    assert status == 200, body
    version = body["model_version"]["version"]
    assert (
        owner.call("POST", "registered-models/alias", PROFILE_A, {"name": "owner-model", "alias": "production", "version": version})[0]
        == 200
    )
    status, body = owner.call("GET", "registered-models/alias", PROFILE_A, {"name": "owner-model", "alias": "production"})
    assert status == 200 and body["model_version"]["version"] == version
    # The notebook's alias, moved by its owner through the UI's API.
    model = MODEL[PROFILE_A]
    moved = owner.call(
        "POST", "registered-models/alias", PROFILE_A, {"name": model, "alias": "staging", "version": notebooks[PROFILE_A]["version"]}
    )
    assert moved[0] == 200, moved


def test_a_contributor_with_edit_writes_one_with_view_only_reads_and_a_stranger_gets_nothing(gateway, notebooks):
    editor, viewer, stranger = person(gateway, EDITOR_A), person(gateway, VIEWER_A), person(gateway, STRANGER)
    assert editor.call("POST", "experiments/create", PROFILE_A, {"name": "editor-from-the-browser"})[0] == 200
    status, body = viewer.call("POST", "experiments/search", PROFILE_A, {"max_results": 50})
    assert status == 200 and EXPERIMENT[PROFILE_A] in {e["name"] for e in body["experiments"]}, body
    status, body = viewer.call("GET", "registered-models/alias", PROFILE_A, {"name": MODEL[PROFILE_A], "alias": "production"})
    assert status == 200, body
    for method, path, payload in (
        ("POST", "experiments/create", {"name": "viewer-from-the-browser"}),
        ("POST", "registered-models/create", {"name": "viewer-model"}),
        ("POST", "registered-models/alias", {"name": MODEL[PROFILE_A], "alias": "production", "version": "1"}),
    ):
        status, body = viewer.call(method, path, PROFILE_A, payload)
        assert (status, error_code(body)) == (403, "PERMISSION_DENIED"), (path, status, body)
    for profile in (PROFILE_A, PROFILE_B):
        status, body = stranger.call("POST", "experiments/search", profile, {"max_results": 50})
        assert status == 200 and not body.get("experiments"), body
        assert stranger.call("POST", "experiments/create", profile, {"name": "stranger"})[0] == 403
    status, body = stranger.call("GET", "workspaces", None)
    # Workspaces are listed under 3.0 only; the 2.0 spelling is not an MLflow route.
    assert status in (404, 405) or not body.get("workspaces")


def _id_attempts(notebooks: dict[str, dict[str, Any]], other: str) -> list[tuple[str, str, str, dict[str, Any]]]:
    """Attempts that name the other team's objects by id, sent in the caller's own workspace and in the other's."""
    theirs = notebooks[other]
    return [
        ("read run by id", "GET", "runs/get", {"run_id": theirs["run_id"]}),
        ("log to their run", "POST", "runs/log-metric", {"run_id": theirs["run_id"], "key": "x", "value": 1.0, "timestamp": 1}),
        ("delete their run", "POST", "runs/delete", {"run_id": theirs["run_id"]}),
        ("read experiment by id", "GET", "experiments/get", {"experiment_id": theirs["experiment_id"]}),
        ("search runs of their experiment", "POST", "runs/search", {"experiment_ids": [theirs["experiment_id"]]}),
        ("read their model version", "GET", "model-versions/get", {"name": theirs["registered_model"], "version": theirs["version"]}),
        (
            "download uri of their version",
            "GET",
            "model-versions/get-download-uri",
            {"name": theirs["registered_model"], "version": theirs["version"]},
        ),
        ("list their run's artifacts", "GET", "artifacts/list", {"run_id": theirs["run_id"]}),
    ]


def test_every_cross_tenant_attempt_through_the_gateway_is_refused_ids_included(gateway, notebooks, plane):
    """Each owner against the other team: by workspace, and by the other team's run, experiment and model ids."""
    outcomes: dict[str, list[str]] = {"denied": [], "not found": [], "filtered to nothing": [], "NOT REFUSED": []}
    for own, other in ((PROFILE_A, PROFILE_B), (PROFILE_B, PROFILE_A)):
        caller = person(gateway, profile_owner(own))
        tried = [(name, m, p, b, other) for name, m, p, b in attempts(EXPERIMENT[other], MODEL[other])]
        tried += [(name, m, p, b, workspace) for name, m, p, b in _id_attempts(notebooks, other) for workspace in (own, other)]
        for name, method, path, body, workspace in tried:
            status, answer = caller.call(method, path, workspace, body)
            if status == 403 and error_code(answer) == "PERMISSION_DENIED":
                outcome = "denied"
            elif status == 404 and error_code(answer) == "RESOURCE_DOES_NOT_EXIST":
                outcome = "not found"
            elif status == 200 and (name.startswith("search") or "search runs" in name) and not any(answer.get(k) for k in COLLECTIONS):
                outcome = "filtered to nothing"
            else:
                outcome = "NOT REFUSED"
            outcomes[outcome].append(f"{own} -> {other} in {workspace}: {name} ({status} {error_code(answer)})")
    # The other team's model file, by its path through the artifact proxy: a path resolves inside the workspace the
    # request names (MLflow keeps each workspace's files under workspaces/<name>/), so in its own workspace the
    # caller finds nothing there, and in the other's it is refused.
    theirs = notebooks[PROFILE_B]
    model_id = theirs["model_uri"].removeprefix("models:/")
    owner_a = person(gateway, OWNER_A)
    for workspace in (PROFILE_A, PROFILE_B):
        owner_a.headers["X-MLFLOW-WORKSPACE"] = workspace
        path = f"{theirs['experiment_id']}/models/{model_id}/artifacts/MLmodel"
        status, data, _ = owner_a.get(f"/mlflow/ajax-api/2.0/mlflow-artifacts/artifacts/{path}")
        outcome = "NOT REFUSED" if status == 200 or b"flavors" in data else ("denied" if status == 403 else "not found")
        outcomes[outcome].append(f"{PROFILE_A} -> {PROFILE_B} in {workspace}: their MLmodel by path ({status})")
    # Their own path, for the owner: the same request answers the file (so the refusals above are not a wrong path).
    owner_b = person(gateway, OWNER_B)
    owner_b.headers["X-MLFLOW-WORKSPACE"] = PROFILE_B
    status, data, _ = owner_b.get(f"/mlflow/ajax-api/2.0/mlflow-artifacts/artifacts/{path}")
    assert status == 200 and b"flavors" in data, (status, data[:200])
    tried = sum(len(v) for v in outcomes.values())
    print(f"\ncross-tenant attempts through the gateway: {tried}; refused: {tried - len(outcomes['NOT REFUSED'])} ", end="")
    print({k: len(v) for k, v in outcomes.items()})
    assert outcomes["NOT REFUSED"] == [], outcomes["NOT REFUSED"]
    assert tried == 2 * (11 + 2 * 8) + 2
    # Nothing moved: the other team's run is live and its alias names its own version.
    status, body = owner_b.call("GET", "runs/get", PROFILE_B, {"run_id": theirs["run_id"]})
    assert status == 200 and body["run"]["info"]["lifecycle_stage"] == "active"
    status, body = owner_b.call("GET", "registered-models/alias", PROFILE_B, {"name": MODEL[PROFILE_B], "alias": "production"})
    assert status == 200 and body["model_version"]["version"] == theirs["version"]


def _forged() -> dict[str, str]:
    return {
        "kubeflow-userid": OWNER_B,
        "kubeflow-groups": "system:masters",
        "X-Forwarded-Email": OWNER_B,
        "X-Forwarded-Groups": "system:masters",
        "x-remote-user": OWNER_B,
        "x-remote-groups": "system:masters",
        "x-auth-request-email": OWNER_B,
    }


def test_forged_identity_headers_through_the_gateway_grant_only_the_logged_in_users_rights(gateway, notebooks):
    """The gateway replaces its own headers and the proxy its own: A's session naming B's owner still acts as A."""
    forger = person(gateway, OWNER_A, **_forged())
    for name, method, path, body in attempts(EXPERIMENT[PROFILE_B], MODEL[PROFILE_B]):
        status, answer = forger.call(method, path, PROFILE_B, body)
        empty = status == 200 and name.startswith("search") and not any(answer.get(k) for k in COLLECTIONS)
        assert empty or (status == 403 and error_code(answer) == "PERMISSION_DENIED"), (name, status, answer)
    assert forger.call("POST", "experiments/search", PROFILE_A, {"max_results": 5})[0] == 200


def test_forged_identity_headers_sent_straight_to_each_mlflow_port_are_refused(plane, notebooks, cluster):
    """Not through the gateway: the browser server's proxy port, the tracking server's port, and MLflow's socket server has none."""
    data_plane, base = plane
    browser = data_plane.browser_server
    forged = _forged()
    # The browser server's proxy: no token, a token of no issuer it trusts, a Kubernetes token: 401 before MLflow.
    for credential in (None, "not.a.jwt", sa_token(cluster, PROFILE_B), _self_signedtoken(OWNER_B)):
        headers = {**forged, **({"Authorization": f"Bearer {credential}"} if credential else {})}
        caller = Caller(f"{browser.base}/mlflow", None, headers)
        for name, method, path, body in attempts(EXPERIMENT[PROFILE_B], MODEL[PROFILE_B]):
            status, _ = caller.call(method, path, PROFILE_B, body)
            assert status == 401, (credential and credential[:12], name, status)
    # The tracking server reads no identity header: no token is 401, another team's token is refused.
    for token in (None, sa_token(cluster, PROFILE_A)):
        caller = Caller(base, token, forged)
        for name, method, path, body in attempts(EXPERIMENT[PROFILE_B], MODEL[PROFILE_B]):
            status, answer = caller.call(method, path, PROFILE_B, body)
            if token is None:
                assert status == 401, (name, status)
            else:
                empty = status == 200 and name.startswith("search") and not any(answer.get(k) for k in COLLECTIONS)
                assert empty or status == 403, (name, status, answer)
    # The header-trusting MLflow listens on no TCP port at all: only its socket, in the pod's shared volume.
    mlflow = next(s for s in data_plane.servers if s.component == "mlflow-ui-mlflow")
    assert _tcp_listeners(mlflow.service.process.pid) == set()
    # The same look at the proxy finds its one port: the check sees listeners where there are some.
    assert _tcp_listeners(browser.service.process.pid) == {browser.port}


def _tcp_listeners(pgid: int) -> set[int]:
    """TCP ports any process of the group listens on (Linux /proc)."""
    inodes = set()
    for pid in process_group(pgid):
        fd_dir = Path(f"/proc/{pid}/fd")
        for fd in fd_dir.iterdir() if fd_dir.exists() else []:
            try:
                target = fd.readlink()
            except OSError:
                continue
            if str(target).startswith("socket:["):
                inodes.add(str(target)[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def _self_signedtoken(email: str) -> str:
    """A well-formed ID token for Kubeflow's issuer and client, signed by a key that is not the issuer's."""
    import time

    import jwt
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    claims = {"iss": "http://dex.auth.svc.cluster.local:5556/dex", "aud": "kubeflow-oidc-authservice", "email": email}
    return jwt.encode({**claims, "sub": "x", "exp": int(time.time()) + 600, "iat": int(time.time())}, key, algorithm="RS256")


def test_the_dashboard_tab_lands_on_the_workspace_or_says_why_not(gateway):
    owner = person(gateway, OWNER_A)
    for path in (f"/mlflow/kubeflow/{PROFILE_A}/", "/mlflow/kubeflow/%7Bns%7D/", f"/mlflow/kubeflow/{PROFILE_B}/"):
        status, page, headers = owner.get(path)
        assert status == 200 and headers["Content-Type"].startswith("text/html"), (path, status)
        assert b"mlflow.activeWorkspace" in page and b'"prefix": "/mlflow"' in page
    # Without a session the gateway sends the browser to the login, as Kubeflow's does.
    status, _, headers = GatewayUser(gateway, OWNER_A).get(f"/mlflow/kubeflow/{PROFILE_A}/")
    assert status == 302 and headers["Location"].startswith("/dex/login")


# -- in a real browser ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def chromium():
    from tests.e2e.chromium import Chromium

    with Chromium(SHOTS) as browser:
        yield browser


def test_in_a_browser_the_tab_shows_a_teams_experiment_run_and_model_and_nothing_of_the_other(chromium, gateway, notebooks):
    """As the central dashboard embeds it: the tab's link for profile A, in a same-origin iframe."""
    mine, theirs = notebooks[PROFILE_A], notebooks[PROFILE_B]
    chromium.login(gateway, OWNER_A)
    chromium.open(f"{gateway}/?ns={PROFILE_A}")
    chromium.click_link("MLflow")
    frame = chromium.enter_iframe()
    assert re.search(rf"#/experiments\?workspace={PROFILE_A}$", frame), frame
    text = chromium.wait_for_text(EXPERIMENT[PROFILE_A])
    assert EXPERIMENT[PROFILE_B] not in text
    chromium.screenshot("experiments-team-a")
    run = chromium.visit_in_frame(f"{gateway}/mlflow/#/experiments/{mine['experiment_id']}/runs/{mine['run_id']}?workspace={PROFILE_A}")
    assert "r2_train" in chromium.wait_for_text("r2_train"), run
    chromium.screenshot("run-team-a")
    chromium.visit_in_frame(f"{gateway}/mlflow/#/models/{MODEL[PROFILE_A]}/versions/{mine['version']}?workspace={PROFILE_A}")
    text = chromium.wait_for_text(f"Version {mine['version']}")
    assert MODEL[PROFILE_A] in text and MODEL[PROFILE_B] not in text
    chromium.screenshot("model-version-team-a")
    chromium.visit_in_frame(f"{gateway}/mlflow/#/models?workspace={PROFILE_A}")
    text = chromium.wait_for_text(MODEL[PROFILE_A])
    assert MODEL[PROFILE_B] not in text
    # Static files and the UI's API calls went through the gateway under /mlflow/: none failed.
    assert chromium.failed_requests("/mlflow/") == []
    # The other team's run, by its id, in either workspace: nothing of it is shown.
    for workspace in (PROFILE_A, PROFILE_B):
        chromium.visit_in_frame(f"{gateway}/mlflow/#/experiments/{theirs['experiment_id']}/runs/{theirs['run_id']}?workspace={workspace}")
        text = chromium.settled_text()
        assert "r2_train" not in text and EXPERIMENT[PROFILE_B] not in text, text[:400]
    chromium.screenshot("other-teams-run-refused")


def test_in_a_browser_the_tab_says_plainly_when_no_namespace_is_selected_or_there_is_no_access(chromium, gateway, notebooks):
    chromium.login(gateway, OWNER_A)
    chromium.open(f"{gateway}/")
    chromium.click_link("MLflow")
    chromium.enter_iframe()
    assert "No namespace selected" in chromium.wait_for_text("No namespace selected")
    chromium.screenshot("no-namespace-selected")
    chromium.login(gateway, VIEWER_A)
    chromium.open(f"{gateway}/?ns={PROFILE_B}")
    chromium.click_link("MLflow")
    chromium.enter_iframe()
    text = chromium.wait_for_text(f"No access to MLflow in {PROFILE_B}")
    assert PROFILE_A in text  # the namespaces this user may open are offered instead
    chromium.screenshot("no-access")
