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

import openai
import pytest

from conftest import _sync_http_client, start_gateway_proc, watch_secret, write_manifests

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
