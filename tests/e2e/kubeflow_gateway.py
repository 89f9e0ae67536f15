"""Kubeflow's front door on loopback: Dex, oauth2-proxy and the Istio ingress gateway, as kubeflow/manifests installs them.

Standalone (no project imports), run as its own process like every other stand-in:
``python kubeflow_gateway.py CONFIG_JSON``. What each part does, and the upstream file it follows
(kubeflow/manifests v1.11.0 unless said otherwise):

- **Dex** (``/dex/``, ghcr.io/dexidp/dex:v2.44.0): the discovery document and JWKS of the issuer
  (dexidp/dex server/handlers.go ``discovery``), and RS256 ID tokens with Dex's claims for the
  ``local`` (static password) connector (server/oauth2.go ``idTokenClaims``: iss, sub, aud, exp,
  iat, email, email_verified, name, preferred_username; no groups). ``/dex/login`` stands in for
  Dex's login form: it names the user, as a person typing their password would.
- **oauth2-proxy** as the gateway's ext_authz (common/oauth2-proxy/base/oauth2_proxy.cfg and
  components/istio-external-auth/authorizationpolicy.istio-ingressgateway-oauth2-proxy.yaml): only
  requests *without* an ``Authorization`` header are sent to it. A session cookie
  (``oauth2_proxy_kubeflow``) yields the upstream headers of ``headersToUpstreamOnAllow``
  (components/istio-external-auth-patches/patches/cm.enable-oauth2-proxy.yaml): ``authorization``
  (``Bearer <ID token>``, set_authorization_header) and ``x-auth-request-email/-user/-groups``
  (set_xauthrequest), each replacing any client copy. Without a session, ``api_routes`` (``/api/``,
  ``/apis/``, ``^/ml_metadata``) get 401 and everything else a redirect to the login.
- **RequestAuthentication ``dex-jwt``** (components/istio-external-auth/requestauthentication.dex-jwt.yaml):
  a bearer token is verified against the issuer's keys (no audience check: the rule lists none);
  an invalid one gets 401. On success ``kubeflow-userid`` is set from the ``email`` claim, replacing
  any client copy, and the token is forwarded (``forwardOriginalToken: true``). ``kubeflow-groups``
  is mapped from the ``groups`` claim, which Istio cannot copy (array claims are not supported by
  ``outputClaimToHeaders``), so it is only removed. Headers of a request carrying its own token
  skip oauth2-proxy, so client ``x-auth-request-*`` headers pass through as they do upstream.
- **AuthorizationPolicy ``istio-ingressgateway-require-jwt``**: no verified token, 403 (except
  ``/dex/`` and ``/oauth2/``).
- **The routes**: the declared VirtualServices' ``http`` rules in order (``exact``/``prefix`` uri
  matches, ``redirect``, ``route`` to the first destination, ``timeout``), with each destination
  already mapped to its loopback port by the caller.
- **The central dashboard's iframe** (kubeflow/kubeflow components/centraldashboard
  public/components/main-page.js, v1.10.0, which Kubeflow 1.11 ships): ``/`` is a menu whose links
  are built by ``_buildHref`` (``{ns}`` replaced by the selected namespace, ``ns`` added to the
  query), and ``/_/<link>`` a page at the same origin embedding ``<link>`` in an iframe whose source
  is built by ``_setIframeSrc`` (the page's query without ``ns``, and its hash).
"""

from __future__ import annotations

import base64
import hashlib
import html
import http.client
import json
import re
import secrets
import sys
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization

HOST = "127.0.0.1"
SESSION_COOKIE = "oauth2_proxy_kubeflow"
# Headers the gateway itself writes: a client's copies never reach a destination.
JWT_OUTPUT_HEADERS = ("kubeflow-userid", "kubeflow-groups")
EXT_AUTHZ_UPSTREAM_HEADERS = ("authorization", "x-auth-request-email", "x-auth-request-user", "x-auth-request-groups")
API_ROUTES = (re.compile("/api/"), re.compile("/apis/"), re.compile("^/ml_metadata"))
UNAUTHENTICATED_PATHS = ("/dex/", "/oauth2/")
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers", "transfer-encoding", "upgrade"}
TOKEN_SECONDS = 24 * 3600


def _b64(number: int) -> str:
    return base64.urlsafe_b64encode(number.to_bytes((number.bit_length() + 7) // 8, "big")).rstrip(b"=").decode()


def dex_subject(user_id: str, connector: str = "local") -> str:
    """Dex's ``sub``: the base64url of an internal IDTokenSubject protobuf (user id, connector id)."""
    encoded = b"\x0a" + bytes([len(user_id)]) + user_id.encode() + b"\x12" + bytes([len(connector)]) + connector.encode()
    return base64.urlsafe_b64encode(encoded).rstrip(b"=").decode()


class Gateway:
    def __init__(self, config: dict[str, Any]):
        self.config = config
        self.issuer = config["issuer"]
        self.audience = config["audience"]
        self.key = serialization.load_pem_private_key(open(config["key"], "rb").read(), None)
        numbers = self.key.public_key().public_numbers()
        self.jwk = {"kty": "RSA", "kid": "stand-in", "use": "sig", "alg": "RS256", "n": _b64(numbers.n), "e": _b64(numbers.e)}
        self.sessions: dict[str, str] = {}
        self.routes: list[dict[str, Any]] = config["routes"]

    def id_token(self, email: str) -> str:
        now = int(time.time())
        username = email.split("@", 1)[0]
        claims = {
            "iss": self.issuer,
            "sub": dex_subject(str(int(hashlib.sha256(email.encode()).hexdigest()[:12], 16))),
            "aud": self.audience,
            "exp": now + TOKEN_SECONDS,
            "iat": now,
            "email": email,
            "email_verified": True,
            "name": username,
            "preferred_username": username,
        }
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": "stand-in"})

    def verify(self, token: str) -> dict[str, Any] | None:
        try:
            return jwt.decode(
                token,
                jwt.PyJWK(self.jwk).key,
                algorithms=["RS256"],
                issuer=self.issuer,
                options={"verify_aud": False, "require": ["exp", "iat", "iss"]},
            )
        except jwt.PyJWTError:
            return None

    def discovery(self) -> dict[str, Any]:
        issuer = self.issuer
        return {
            "issuer": issuer,
            "authorization_endpoint": f"{issuer}/auth",
            "token_endpoint": f"{issuer}/token",
            "jwks_uri": f"{issuer}/keys",
            "userinfo_endpoint": f"{issuer}/userinfo",
            "device_authorization_endpoint": f"{issuer}/device/code",
            "introspection_endpoint": f"{issuer}/token/introspect",
            "grant_types_supported": ["authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:device_code"],
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256", "plain"],
            "scopes_supported": ["openid", "email", "groups", "profile", "offline_access"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "claims_supported": ["iss", "sub", "aud", "iat", "exp", "email", "email_verified", "locale", "name", "preferred_username"],
        }

    def route(self, host: str, path: str) -> tuple[str, Any] | None:
        """("redirect", uri) or ("route", (port, timeout)) from the first matching http rule, or None."""
        for service in self.routes:
            if "*" not in service["hosts"] and host.split(":")[0] not in service["hosts"]:
                continue
            for rule in service["http"]:
                for match in rule.get("match") or [{}]:
                    uri = match.get("uri") or {}
                    if "exact" in uri and path.split("?")[0] != uri["exact"]:
                        continue
                    if "prefix" in uri and not path.startswith(uri["prefix"]):
                        continue
                    if "redirect" in rule:
                        return "redirect", rule["redirect"]["uri"]
                    return "route", (rule["port"], rule.get("timeout"))
        return None


def _seconds(timeout: str | None) -> float:
    return float(timeout.rstrip("s")) if timeout else 300.0


def dashboard_page(links: list[dict[str, Any]], namespaces: list[str]) -> str:
    """The dashboard's menu: each link built by main-page.js ``_buildHref`` for the selected namespace."""
    items = "\n".join(
        f'<li><a class="menu-link" data-link="{html.escape(link["link"])}" href="#">{html.escape(link["text"])}</a></li>' for link in links
    )
    options = "\n".join(f'<option value="{html.escape(ns)}">{html.escape(ns)}</option>' for ns in namespaces)
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Kubeflow Central Dashboard (stand-in)</title></head>
<body>
<select id="namespace"><option value="">(no namespace selected)</option>{options}</select>
<ul id="menu">{items}</ul>
<script>
const params = new URLSearchParams(location.search);
const select = document.getElementById("namespace");
if (params.get("ns")) select.value = params.get("ns");
// main-page.js _buildHref: {{ns}} is replaced only when a namespace is selected; buildHref adds the query (ns).
function buildHref(link) {{
  const ns = select.value;
  const href = ns ? link.replace("{{ns}}", ns) : link;
  const url = new URL("/_" + href, location.origin);
  if (ns) url.searchParams.set("ns", ns);
  return url.pathname + url.search + url.hash;
}}
function render() {{
  for (const a of document.querySelectorAll("a.menu-link")) a.href = buildHref(a.dataset.link);
}}
select.addEventListener("change", render);
render();
</script>
</body></html>"""


IFRAME_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Kubeflow Central Dashboard (stand-in)</title>
<style>html,body{margin:0;height:100%} iframe{border:0;width:100%;height:100%}</style></head>
<body><iframe id="app"></iframe>
<script>
// main-page.js _setIframeSrc: the route's path under /_, this page's hash and query, without ns.
const url = new URL(location.pathname.replace(/^\\/_/, ""), location.origin);
url.hash = location.hash;
url.search = location.search;
url.searchParams.delete("ns");
document.getElementById("app").src = url.toString();
</script></body></html>"""


LOGIN_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Log in (Dex stand-in)</title></head>
<body><form method="get" action="/dex/login"><input name="email" placeholder="email"><input type="hidden" name="rd" value="{rd}">
<button type="submit">Log in</button></form></body></html>"""


def make_handler(gateway: Gateway) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's signature
            sys.stdout.write(f"{self.command} {self.path} -> " + (args[1] if len(args) > 1 else "") + "\n")
            sys.stdout.flush()

        def _reply(self, status: int, body: bytes | str, content_type: str = "text/html; charset=utf-8", **headers: str) -> None:
            data = body.encode() if isinstance(body, str) else body
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name.replace("_", "-"), value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def _json(self, status: int, document: Any) -> None:
            self._reply(status, json.dumps(document), "application/json")

        def _session_user(self) -> str | None:
            cookies = self.headers.get("Cookie") or ""
            for part in cookies.split(";"):
                name, _, value = part.strip().partition("=")
                if name == SESSION_COOKIE:
                    return gateway.sessions.get(value)
            return None

        def _dex(self, path: str) -> None:
            parsed = urllib.parse.urlsplit(path)
            base = urllib.parse.urlsplit(gateway.issuer).path
            if parsed.path == f"{base}/.well-known/openid-configuration":
                return self._json(200, gateway.discovery())
            if parsed.path == f"{base}/keys":
                return self._json(200, {"keys": [gateway.jwk]})
            if parsed.path == "/dex/login":
                query = urllib.parse.parse_qs(parsed.query)
                email = (query.get("email") or [""])[0].strip()
                rd = (query.get("rd") or ["/"])[0]
                if not email:
                    return self._reply(200, LOGIN_PAGE.format(rd=html.escape(rd)))
                session = secrets.token_urlsafe(24)
                gateway.sessions[session] = email
                target = rd if rd.startswith("/") and not rd.startswith("//") else "/"
                return self._reply(302, "", Location=target, Set_Cookie=f"{SESSION_COOKIE}={session}; Path=/; HttpOnly; SameSite=Lax")
            return self._reply(404, "not found")

        def _handle(self) -> None:
            path = self.path
            if path.startswith(UNAUTHENTICATED_PATHS):
                return self._dex(path)
            headers = {k.lower(): v for k, v in self.headers.items()}
            for name in JWT_OUTPUT_HEADERS:
                headers.pop(name, None)
            if "authorization" not in headers:
                # ext_authz (oauth2-proxy): only requests without their own token.
                email = self._session_user()
                if email is None:
                    if any(r.search(path) for r in API_ROUTES):
                        return self._reply(401, "Unauthorized", "text/plain")
                    login = "/dex/login?rd=" + urllib.parse.quote(path, safe="")
                    return self._reply(302, "", Location=login)
                for name in EXT_AUTHZ_UPSTREAM_HEADERS:
                    headers.pop(name, None)
                headers["authorization"] = f"Bearer {gateway.id_token(email)}"
                headers["x-auth-request-email"] = email
                headers["x-auth-request-user"] = email.split("@", 1)[0]
            token = headers["authorization"].removeprefix("Bearer ").strip()
            claims = gateway.verify(token) if headers["authorization"].startswith("Bearer ") else None
            if claims is None:
                return self._reply(401, "Jwt verification fails", "text/plain")
            if isinstance(claims.get("email"), str):
                headers["kubeflow-userid"] = claims["email"]
            parsed = urllib.parse.urlsplit(path)
            if parsed.path == "/" or parsed.path == "":
                return self._reply(200, dashboard_page(gateway.config.get("menu", []), gateway.config.get("namespaces", [])))
            if parsed.path.startswith("/_/"):
                return self._reply(200, IFRAME_PAGE)
            found = gateway.route(headers.get("host", ""), path)
            if found is None:
                return self._reply(404, "no route", "text/plain")
            kind, target = found
            if kind == "redirect":
                return self._reply(301, "", Location=target)
            port, timeout = target
            self._forward(port, _seconds(timeout), headers)

        def _forward(self, port: int, timeout: float, headers: dict[str, str]) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            upstream = http.client.HTTPConnection(HOST, port, timeout=timeout)
            try:
                forwarded = {k: v for k, v in headers.items() if k not in HOP_BY_HOP and k != "content-length"}
                if body is not None:
                    forwarded["content-length"] = str(len(body))
                upstream.request(self.command, self.path, body=body, headers=forwarded)
                response = upstream.getresponse()
                data = response.read()
            except OSError as exc:
                return self._reply(503, f"upstream connect error: {exc}", "text/plain")
            finally:
                upstream.close()
            self.send_response(response.status)
            for name, value in response.getheaders():
                if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle

    return Handler


def main(config_path: str) -> None:
    config = json.loads(open(config_path).read())
    gateway = Gateway(config)
    server = ThreadingHTTPServer((HOST, int(config["listen"])), make_handler(gateway))
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1])
