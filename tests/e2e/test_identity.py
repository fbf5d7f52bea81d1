"""Kubernetes service-account tokens through the binary's flags and the official OpenAI SDK.

A local HTTP server stands in for the API server and answers TokenReviews as Kubernetes does
(201 with the review echoed back and its status).
"""

from __future__ import annotations

import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import openai
import pytest

from conftest import _sync_http_client, start_gateway_proc, watch_secret, write_manifests
from contracts import SIM_SECRET_ACCESS_KEY

PROXY_TOKEN = "e2e-proxy-own-token"
watch_secret(PROXY_TOKEN)


def b64(doc: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(doc).encode()).rstrip(b"=").decode()


def sa_token(sub: str) -> str:
    token = f"{b64({'alg': 'RS256', 'kid': 'k'})}.{b64({'sub': sub, 'exp': int(time.time()) + 600})}.c2ln"
    watch_secret(token)
    return token


BOT_TOKEN = sa_token("apps/bot")

SA_POLICY = """\
apiVersion: bedrockgateway.io/v1alpha1
kind: AccessPolicy
metadata: {name: bot, namespace: apps}
spec:
  subjects: [{serviceAccount: {namespace: apps, name: bot}}]
  models: ["demo/nova-lite"]
"""


class ApiServer(BaseHTTPRequestHandler):
    reviews = 0

    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_POST(self):
        if self.path != "/apis/authentication.k8s.io/v1/tokenreviews":
            self.send_error(404)
            return
        if self.headers.get("Authorization") != f"Bearer {PROXY_TOKEN}":
            self.send_error(401)
            return
        ApiServer.reviews += 1
        review = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        ok = review["spec"]["token"] == BOT_TOKEN and "bedrock-gateway" in review["spec"]["audiences"]
        status = (
            {
                "authenticated": True,
                "user": {
                    "username": "system:serviceaccount:apps:bot",
                    "uid": "0b0b0b0b-1111-2222-3333-444444444444",
                    "groups": ["system:serviceaccounts", "system:serviceaccounts:apps", "system:authenticated"],
                },
                "audiences": ["bedrock-gateway"],
            }
            if ok
            else {"user": {}, "error": "[invalid bearer token]"}
        )
        body = json.dumps(
            {
                "kind": "TokenReview",
                "apiVersion": "authentication.k8s.io/v1",
                "metadata": {"creationTimestamp": None},
                "spec": review["spec"],
                "status": status,
            }
        ).encode()
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def sa_gateway(sim, logdir: Path, tmp_path: Path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), ApiServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    manifests = write_manifests(tmp_path / "manifests", sim.url)
    (manifests / "sa-policy.yaml").write_text(SA_POLICY)
    token_file = tmp_path / "token"
    token_file.write_text(PROXY_TOKEN + "\n")
    args = [
        "--service-account-tokens",
        "--kube-api-url",
        f"http://127.0.0.1:{server.server_address[1]}",
        "--kube-token-file",
        str(token_file),
        "--log-format",
        "json",
    ]
    gw = start_gateway_proc(manifests, logdir, name="proxy-sa-tokens", extra_args=args)
    yield gw
    gw.proc.stop()
    server.shutdown()


def sdk(gw, key: str) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{gw.url}/v1", api_key=key, max_retries=0, timeout=30.0, http_client=_sync_http_client()
    )


def test_service_account_token_calls_its_models(sa_gateway):
    bot = sdk(sa_gateway, BOT_TOKEN)
    assert [m.id for m in bot.models.list()] == ["demo/nova-lite"]
    reply = bot.chat.completions.create(model="demo/nova-lite", messages=[{"role": "user", "content": "hi"}])
    assert reply.choices[0].message.content == "Simulated reply to: hi"
    with pytest.raises(openai.PermissionDeniedError):
        bot.chat.completions.create(model="demo/claude-sonnet", messages=[{"role": "user", "content": "hi"}])
    assert ApiServer.reviews >= 1
    # The usage line names the service account; no token appears in any log.
    deadline = time.monotonic() + 5
    while '"system:serviceaccount:apps:bot"' not in sa_gateway.proc.stderr() and time.monotonic() < deadline:
        time.sleep(0.05)
    logs = sa_gateway.proc.stderr() + sa_gateway.proc.stdout()
    assert '"user":"system:serviceaccount:apps:bot"' in logs
    assert BOT_TOKEN not in logs and PROXY_TOKEN not in logs


def test_unknown_service_account_token_is_401(sa_gateway):
    with pytest.raises(openai.AuthenticationError) as ei:
        sdk(sa_gateway, sa_token("apps/stranger")).models.list()
    assert ei.value.status_code == 401
    assert ei.value.response.json()["error"]["code"] == "invalid_api_key"


# ------------------------------------------- no credential in logs or metrics, every auth mode
BEDROCK_API_KEY = "bedrock-sim-api-key"  # the simulator's default Bedrock API key (bearer)
watch_secret(BEDROCK_API_KEY)

ALL_MODES_MANIFESTS = """\
apiVersion: bedrockgateway.io/v1alpha1
kind: BedrockAccount
metadata: {name: trial, namespace: ai-gateway}
spec:
  defaultRegion: us-east-1
  auth:
    apiKey:
      secretRef: {name: bedrock-api-key, key: apiKey}
  endpoints: {runtime: "SIM_URL", control: "SIM_URL"}
---
apiVersion: v1
kind: Secret
metadata: {name: bedrock-api-key, namespace: ai-gateway}
type: Opaque
stringData: {apiKey: BEDROCK_API_KEY}
---
apiVersion: bedrockgateway.io/v1alpha1
kind: BedrockModel
metadata: {name: nova-pro, namespace: ai-gateway}
spec: {accountRef: trial, modelId: us.amazon.nova-pro-v1:0}
---
apiVersion: bedrockgateway.io/v1alpha1
kind: AccessPolicy
metadata: {name: everyone-here, namespace: ai-gateway}
spec:
  subjects:
    - user: dev@example.com
    - user: oidc-user
    - serviceAccount: {namespace: apps, name: bot}
  models: ["demo/nova-lite", "trial/nova-pro"]
"""


class OidcIssuer(BaseHTTPRequestHandler):
    """Discovery document and JWKS of an issuer whose RSA key is generated in the test."""

    issuer = ""
    jwks: dict = {}

    def log_message(self, *args):
        pass

    def do_GET(self):
        docs = {
            "/.well-known/openid-configuration": {"issuer": OidcIssuer.issuer, "jwks_uri": f"{OidcIssuer.issuer}/jwks"},
            "/jwks": OidcIssuer.jwks,
        }
        if self.path not in docs:
            self.send_error(404)
            return
        body = json.dumps(docs[self.path]).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def rsa_issuer(issuer: str):
    """A fresh RS256 key: its JWKS, and a function signing claims with it."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    numbers = key.public_key().public_numbers()

    def b64int(n: int) -> str:
        return base64.urlsafe_b64encode(n.to_bytes((n.bit_length() + 7) // 8, "big")).rstrip(b"=").decode()

    jwks = {"keys": [{"kty": "RSA", "kid": "e2e", "alg": "RS256", "use": "sig", "n": b64int(numbers.n), "e": b64int(numbers.e)}]}

    def sign(claims: dict) -> str:
        head = f"{b64({'alg': 'RS256', 'kid': 'e2e', 'typ': 'JWT'})}.{b64(claims)}"
        signature = key.sign(head.encode(), padding.PKCS1v15(), hashes.SHA256())
        token = f"{head}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"
        watch_secret(token)
        return token

    return jwks, sign


def test_no_credential_reaches_logs_or_metrics_in_any_auth_mode(sim, logdir: Path, tmp_path: Path):
    api_server = ThreadingHTTPServer(("127.0.0.1", 0), ApiServer)
    oidc = ThreadingHTTPServer(("127.0.0.1", 0), OidcIssuer)
    for server in (api_server, oidc):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    OidcIssuer.issuer = f"http://127.0.0.1:{oidc.server_address[1]}"
    OidcIssuer.jwks, sign = rsa_issuer(OidcIssuer.issuer)
    now = int(time.time())
    oidc_token = sign({"iss": OidcIssuer.issuer, "aud": "bedrock-gateway", "sub": "oidc-user", "groups": ["oidc-team"],
                       "iat": now, "nbf": now - 5, "exp": now + 600})
    manifests = write_manifests(tmp_path / "manifests", sim.url)
    (manifests / "all-modes.yaml").write_text(
        ALL_MODES_MANIFESTS.replace("SIM_URL", sim.url).replace("BEDROCK_API_KEY", BEDROCK_API_KEY)
    )
    token_file = tmp_path / "token"
    token_file.write_text(PROXY_TOKEN + "\n")
    args = [
        "--service-account-tokens", "--kube-api-url", f"http://127.0.0.1:{api_server.server_address[1]}",
        "--kube-token-file", str(token_file), "--oidc-issuer", OidcIssuer.issuer, "--log-format", "json",
    ]
    gw = start_gateway_proc(manifests, logdir, name="proxy-all-auth-modes", extra_args=args)
    try:
        callers = {"dev@example.com": "sk-bgw-quickstart", "system:serviceaccount:apps:bot": BOT_TOKEN, "oidc-user": oidc_token}
        for user, credential in callers.items():
            client = sdk(gw, credential)
            assert {"demo/nova-lite", "trial/nova-pro"} <= {m.id for m in client.models.list()}, user
            for model in ("demo/nova-lite", "trial/nova-pro"):  # access-key account, Bedrock API key account
                reply = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
                assert reply.choices[0].message.content == "Simulated reply to: hi"
        with pytest.raises(openai.AuthenticationError):
            sdk(gw, oidc_token[:-4] + "AAAA").models.list()
        metrics = httpx.get(f"{gw.url}/metrics").text
        assert 'bedrock_gateway_requests_total{endpoint="chat",model="trial/nova-pro",status="200"} 3' in metrics
        deadline = time.monotonic() + 5
        while gw.proc.stderr().count('"bedrock_gateway::usage"') < 6 and time.monotonic() < deadline:
            time.sleep(0.05)
        logs = gw.proc.stderr() + gw.proc.stdout()
        for user in callers:
            assert f'"user":"{user}"' in logs, f"no usage line names {user}"
        secrets = [*callers.values(), PROXY_TOKEN, BEDROCK_API_KEY, SIM_SECRET_ACCESS_KEY, oidc_token.split(".")[2]]
        for text, where in ((logs, "logs"), (metrics, "metrics")):
            for secret in secrets:
                assert secret not in text, f"a credential ({secret[:6]}...) is in the {where}"
    finally:
        gw.proc.stop()
        api_server.shutdown()
        oidc.shutdown()
