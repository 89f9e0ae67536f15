"""The stand-in of Kubeflow's front door behaves as kubeflow/manifests v1.11.0 configures the real one.

Each case names the upstream file whose behaviour it pins (see tests/e2e/kubeflow_gateway.py). A destination
that echoes what reached it shows exactly which headers the gateway passed on.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest

from tests.e2e.browser import _write_key
from tools.testing.processes import HOST, free_port, start

GATEWAY = Path(__file__).with_name("kubeflow_gateway.py")


class _Echo(BaseHTTPRequestHandler):
    def _answer(self) -> None:
        body = json.dumps({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def gateway(tmp_path_factory) -> Iterator[dict[str, Any]]:
    work = tmp_path_factory.mktemp("gateway")
    echo = ThreadingHTTPServer((HOST, 0), _Echo)
    threading.Thread(target=echo.serve_forever, daemon=True).start()
    port = free_port()
    key = work / "key.pem"
    _write_key(key)
    config = {
        "listen": port,
        "issuer": f"http://{HOST}:{port}/dex",
        "audience": "kubeflow-oidc-authservice",
        "key": str(key),
        "routes": [
            {
                "hosts": ["*"],
                "http": [
                    {"match": [{"uri": {"exact": "/app"}}], "redirect": {"uri": "/app/"}},
                    {"match": [{"uri": {"prefix": "/app/"}}], "port": echo.server_address[1], "timeout": "30s"},
                ],
            }
        ],
        "menu": [{"text": "App", "link": "/app/{ns}/", "icon": "x"}],
        "namespaces": ["team-a"],
    }
    (work / "config.json").write_text(json.dumps(config))
    service = start("gateway", [sys.executable, str(GATEWAY), str(work / "config.json")], log_dir=work)
    base = f"http://{HOST}:{port}"
    try:
        service.wait_http(f"{base}/dex/keys", timeout=30)
        yield {"base": base, "key": key, "issuer": config["issuer"]}
    finally:
        service.stop()
        echo.shutdown()


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.build_opener(NoRedirect()).open(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def _session(gateway: dict[str, Any], email: str) -> str:
    status, headers, _ = _get(f"{gateway['base']}/dex/login?email={email}&rd=/app/")
    assert status == 302 and headers["Location"] == "/app/"
    return headers["Set-Cookie"].split(";", 1)[0]


FORGED = {"kubeflow-userid": "admin@example.com", "kubeflow-groups": "system:masters", "x-auth-request-email": "admin@example.com"}


def test_a_logged_in_browser_reaches_the_route_with_dexs_token_and_kubeflow_userid_and_nothing_forged(gateway):
    """oauth2-proxy (set_authorization_header, set_xauthrequest) then RequestAuthentication dex-jwt (email -> kubeflow-userid)."""
    cookie = _session(gateway, "alice@example.com")
    status, _, body = _get(f"{gateway['base']}/app/x", {"Cookie": cookie, **FORGED})
    seen = json.loads(body)["headers"]
    assert status == 200
    assert seen["kubeflow-userid"] == "alice@example.com" and seen["x-auth-request-email"] == "alice@example.com"
    assert "kubeflow-groups" not in seen  # Dex's groups claim is a list, which outputClaimToHeaders cannot copy
    claims = jwt.decode(seen["authorization"].removeprefix("Bearer "), options={"verify_signature": False})
    assert claims["iss"] == gateway["issuer"] and claims["aud"] == "kubeflow-oidc-authservice" and claims["email"] == "alice@example.com"
    assert claims["email_verified"] is True and claims["exp"] > time.time()


def test_the_issuers_keys_verify_its_tokens(gateway):
    cookie = _session(gateway, "alice@example.com")
    token = json.loads(_get(f"{gateway['base']}/app/x", {"Cookie": cookie})[2])["headers"]["authorization"].removeprefix("Bearer ")
    status, _, body = _get(f"{gateway['base']}/dex/.well-known/openid-configuration")
    assert status == 200 and json.loads(body)["jwks_uri"] == f"{gateway['issuer']}/keys"
    keys = json.loads(_get(f"{gateway['base']}/dex/keys")[2])["keys"]
    decoded = jwt.decode(token, jwt.PyJWK(keys[0]).key, algorithms=["RS256"], audience="kubeflow-oidc-authservice")
    assert decoded["email"] == "alice@example.com"


def test_a_request_with_its_own_token_skips_oauth2_proxy_and_is_verified(gateway):
    """authorizationpolicy.istio-ingressgateway-oauth2-proxy.yaml: only requests without Authorization go to oauth2-proxy."""
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(gateway["key"].read_bytes(), None)
    now = int(time.time())
    claims = {
        "iss": gateway["issuer"],
        "sub": "s",
        "aud": "kubeflow-oidc-authservice",
        "exp": now + 60,
        "iat": now,
        "email": "bob@example.com",
    }
    token = jwt.encode(claims, key, algorithm="RS256", headers={"kid": "stand-in"})
    status, _, body = _get(f"{gateway['base']}/app/x", {"Authorization": f"Bearer {token}", **FORGED})
    seen = json.loads(body)["headers"]
    assert status == 200 and seen["kubeflow-userid"] == "bob@example.com"
    # oauth2-proxy did not run, so nothing replaced the client's x-auth-request-* (why they are not trusted).
    assert seen["x-auth-request-email"] == "admin@example.com"
    forged = jwt.encode({**claims, "email": "admin@example.com"}, _other_key(), algorithm="RS256")
    assert _get(f"{gateway['base']}/app/x", {"Authorization": f"Bearer {forged}"})[0] == 401
    assert _get(f"{gateway['base']}/app/x", {"Authorization": "Basic YTpi"})[0] == 401


def test_without_a_session_api_routes_get_401_and_pages_go_to_the_login(gateway):
    """oauth2_proxy.cfg api_routes ('/api/', '/apis/', '^/ml_metadata'); everything else is sent to the login."""
    assert _get(f"{gateway['base']}/app/api/2.0/mlflow/experiments/search", FORGED)[0] == 401
    # MLflow's UI calls ajax-api, which none of those patterns matches: an expired session redirects it too.
    for path in ("/app/page", "/app/ajax-api/2.0/mlflow/experiments/search"):
        status, headers, _ = _get(f"{gateway['base']}{path}", FORGED)
        assert status == 302 and headers["Location"].startswith("/dex/login?rd="), path


def test_routes_follow_the_declared_virtual_service(gateway):
    cookie = _session(gateway, "alice@example.com")
    status, headers, _ = _get(f"{gateway['base']}/app", {"Cookie": cookie})
    assert status == 301 and headers["Location"] == "/app/"
    assert _get(f"{gateway['base']}/elsewhere/", {"Cookie": cookie})[0] == 404


def test_the_dashboard_embeds_a_link_as_main_page_js_does(gateway):
    """The menu builds {ns} links with ns added; the iframe page drops ns from the query (main-page.js)."""
    cookie = _session(gateway, "alice@example.com")
    status, _, page = _get(f"{gateway['base']}/?ns=team-a", {"Cookie": cookie})
    assert status == 200 and b'data-link="/app/{ns}/"' in page and b'url.searchParams.set("ns", ns)' in page
    status, _, frame = _get(f"{gateway['base']}/_/app/team-a/?ns=team-a", {"Cookie": cookie})
    assert status == 200 and b'url.searchParams.delete("ns")' in frame


def _other_key():
    from cryptography.hazmat.primitives.asymmetric import rsa

    return rsa.generate_private_key(public_exponent=65537, key_size=2048)
