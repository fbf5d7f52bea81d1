"""AWS credentials end to end with the official openai SDK.

* IRSA (AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE) and an assumed role chained from it, with
  moto as STS; the token file is rotated during the test and the next refresh reads it.
* EKS Pod Identity: a local agent (AWS_CONTAINER_CREDENTIALS_FULL_URI, token file) issuing
  short-lived credentials, under concurrent load across several refreshes.
* A role the gateway may not assume (moto enforcing IAM) gives the documented 503.
* A rotated accessKey Secret takes effect without a restart, with no failed request.

The simulator verifies every SigV4 signature with the session credentials (it trusts moto's
STS and the agent registers what it issues); conftest re-checks them with botocore.
"""

from __future__ import annotations

import os

import asyncio
import http.server
import json
import secrets
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest

from conftest import Gateway, free_port, start_gateway_proc, start_moto, watch_secret, write_manifests
from contracts import SIM_SECRETS

GATEWAY_ROLE = "arn:aws:iam::111111111111:role/bedrock-gateway"
TARGET_ROLE = "arn:aws:iam::222222222222:role/bedrock-invoke"
KEY = "sk-bgw-quickstart"
# The web identity and Pod Identity tokens the tests hand the proxy: never in its logs or metrics.
watch_secret("irsa-token-1", "irsa-token-2", "pod-identity-token")


def accounts_yaml(sts_url: str, sim_url: str, role: str = TARGET_ROLE) -> str:
    return f"""\
apiVersion: bedrockgateway.io/v1alpha1
kind: BedrockAccount
metadata: {{name: pod, namespace: ai-gateway}}
spec:
  defaultRegion: us-east-1
  auth: {{podIdentity: {{}}}}
  endpoints: {{runtime: "{sim_url}", sts: "{sts_url}"}}
---
apiVersion: bedrockgateway.io/v1alpha1
kind: BedrockAccount
metadata: {{name: cross, namespace: ai-gateway}}
spec:
  defaultRegion: us-east-1
  auth:
    assumeRole: {{roleArn: "{role}", externalId: ext-42, durationSeconds: 900}}
  endpoints: {{runtime: "{sim_url}", sts: "{sts_url}"}}
---
apiVersion: bedrockgateway.io/v1alpha1
kind: BedrockModel
metadata: {{name: nova, namespace: ai-gateway}}
spec: {{accountRef: pod, modelId: "amazon.nova-lite-v1:0"}}
---
apiVersion: bedrockgateway.io/v1alpha1
kind: BedrockModel
metadata: {{name: claude, namespace: ai-gateway}}
spec: {{accountRef: cross, modelId: "us.anthropic.claude-3-7-sonnet-20250219-v1:0", region: us-west-2}}
---
apiVersion: bedrockgateway.io/v1alpha1
kind: AccessPolicy
metadata: {{name: credentials, namespace: ai-gateway}}
spec:
  subjects: [{{team: quickstart}}]
  models: ["pod/*", "cross/*"]
"""


@pytest.fixture
def launch(sim, logdir: Path, tmp_path: Path):
    """launch(env, sts_url, role) -> a gateway with the pod/cross accounts and that environment."""
    started: list[Gateway] = []

    def start(env: dict[str, str], sts_url: str, role: str = TARGET_ROLE) -> Gateway:
        manifests = write_manifests(tmp_path / f"manifests-{len(started)}", sim.url)
        (manifests / "credentials-accounts.yaml").write_text(accounts_yaml(sts_url, sim.url, role))
        # Only the configured identity may be found: never the host's instance metadata.
        env = {**os.environ, "AWS_EC2_METADATA_DISABLED": "true", **env}
        gw = start_gateway_proc(manifests, logdir, name=f"gateway-credentials-{len(started)}", env=env)
        started.append(gw)
        return gw

    yield start
    for gw in started:
        gw.proc.stop()


def access_key_of(record: dict) -> str:
    auth = next(v for k, v in record["headers"] if k.lower() == "authorization")
    return auth.split("Credential=", 1)[1].split("/", 1)[0]


def header(record: dict, name: str) -> str | None:
    return next((v for k, v in record["headers"] if k.lower() == name), None)


def ask(client, model: str) -> str:
    r = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hello"}])
    return r.choices[0].message.content


def test_irsa_and_assumed_role_with_a_rotated_token(launch, client_for, moto, sim, tmp_path):
    token = tmp_path / "token"
    token.write_text("irsa-token-1")
    # The gateway fetches credentials as soon as it loads the accounts, before any request.
    calls_before = len(moto.sts_calls())
    gw = launch(
        {
            "AWS_ROLE_ARN": GATEWAY_ROLE,
            "AWS_WEB_IDENTITY_TOKEN_FILE": str(token),
            # moto allows sessions this short (AWS: 900 s at least), so refreshes happen in the test.
            "BGW_WEB_IDENTITY_DURATION_SECONDS": "4",
        },
        moto.url,
    )
    client = client_for(KEY, gw)
    assert ask(client, "pod/nova") == "Simulated reply to: hello"
    assert ask(client, "cross/claude") == "Simulated reply to: hello"

    records = sim.requests()
    assert len(records) == 2
    for r in records:
        assert access_key_of(r).startswith("ASIA"), r["headers"]
        assert header(r, "x-amz-security-token"), "session token sent"
        assert "x-amz-security-token" in header(r, "authorization"), "and signed"
    pod_key, cross_key = access_key_of(records[0]), access_key_of(records[1])
    assert pod_key != cross_key

    calls = moto.sts_calls()[calls_before:]
    web = [c for c in calls if c["Action"] == "AssumeRoleWithWebIdentity"]
    assume = [c for c in calls if c["Action"] == "AssumeRole"]
    assert web and web[0]["RoleArn"] == GATEWAY_ROLE and web[0]["WebIdentityToken"] == "irsa-token-1"
    assert web[0]["RoleSessionName"] == "bedrock-gateway"
    assert len(assume) == 1, "one AssumeRole however many requests"
    a = assume[0]
    assert (a["RoleArn"], a["ExternalId"], a["DurationSeconds"], a["RoleSessionName"]) == (
        TARGET_ROLE,
        "ext-42",
        "900",
        "bedrock-gateway",
    )
    tags = {a[f"Tags.member.{n}.Key"]: a[f"Tags.member.{n}.Value"] for n in (1, 2, 3)}
    assert tags == {
        "bedrock-gateway:account": "cross",
        "bedrock-gateway:namespace": "ai-gateway",
        "bedrock-gateway:gateway": "bedrock-gateway",
    }
    assert "Credential=ASIA" in a["_authorization"], "AssumeRole is signed with the IRSA session"

    # kubelet rotates the projected token (write aside, rename over); the next refresh reads it.
    aside = token.with_suffix(".new")
    aside.write_text("irsa-token-2")
    aside.replace(token)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        assert ask(client, "pod/nova") == "Simulated reply to: hello"
        tokens = [c["WebIdentityToken"] for c in moto.sts_calls() if c["Action"] == "AssumeRoleWithWebIdentity"]
        if tokens[-1] == "irsa-token-2":
            break
        time.sleep(0.2)
    else:
        pytest.fail(f"the rotated token was never sent to STS: {tokens}")
    # STS has answered; the session it issued replaces the old one a moment later.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        assert ask(client, "pod/nova") == "Simulated reply to: hello"
        keys = {access_key_of(r) for r in sim.requests()}
        if len(keys) >= 3:
            break
        time.sleep(0.2)
    assert len(keys) >= 3, f"requests moved to the refreshed sessions: {keys}"

    metrics = httpx.get(f"{gw.url}/metrics").text
    assert 'bedrock_gateway_credentials_refreshes_total{credentials="cross",result="success"} 1' in metrics
    refreshes = [
        line for line in metrics.splitlines()
        if line.startswith('bedrock_gateway_credentials_refreshes_total{credentials="pod-identity/us-east-1",result="success"}')
    ]
    assert refreshes and int(refreshes[0].split()[-1]) >= 2, refreshes
    expiry = [line for line in metrics.splitlines() if line.startswith('bedrock_gateway_credentials_expiry_seconds{credentials="cross"}')]
    assert expiry and 800 < float(expiry[0].split()[-1]) <= 900, expiry
    for secret in moto.issued_secrets().values():
        assert secret not in metrics


class PodIdentityAgent:
    """Plays the EKS Pod Identity agent: checks the pod's token, issues short-lived credentials
    and registers each set with the simulator (as AWS knows every session it issues)."""

    def __init__(self, sim_url: str, token: str, lifetime_s: int, fixed: dict | None = None):
        self.sim_url, self.token, self.lifetime_s, self.fixed = sim_url, token, lifetime_s, fixed
        self.issued: list[str] = []
        self.rejected = 0
        agent = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                if self.path != "/v1/credentials" or self.headers.get("Authorization") != agent.token:
                    agent.rejected += 1
                    self.send_response(403)
                    self.end_headers()
                    return
                body = json.dumps(agent.issue()).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/credentials"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def issue(self) -> dict:
        if self.fixed is not None:
            return self.fixed
        akid = "ASIA" + secrets.token_hex(8).upper()
        secret, token = secrets.token_urlsafe(30), secrets.token_urlsafe(60)
        httpx.post(
            f"{self.sim_url}/_sim/credentials",
            json={"accessKeyId": akid, "secretAccessKey": secret, "sessionToken": token},
        ).raise_for_status()
        SIM_SECRETS[akid] = secret
        watch_secret(token)
        self.issued.append(akid)
        expiry = datetime.now(timezone.utc) + timedelta(seconds=self.lifetime_s)
        return {
            "AccessKeyId": akid,
            "SecretAccessKey": secret,
            "Token": token,
            "Expiration": expiry.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "AccountId": "111111111111",
        }

    def close(self):
        self.server.shutdown()


def test_pod_identity_agent_short_lived_credentials_under_concurrent_load(
    launch, async_client_for, sim, moto, tmp_path
):
    token_file = tmp_path / "eks-pod-identity-token"
    token_file.write_text("pod-identity-token")
    agent = PodIdentityAgent(sim.url, "pod-identity-token", lifetime_s=5)
    try:
        gw = launch(
            {
                "AWS_CONTAINER_CREDENTIALS_FULL_URI": agent.url,
                "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": str(token_file),
            },
            moto.url,
        )

        async def load() -> tuple[int, list[str]]:
            client = async_client_for(KEY, gw)
            ok, failures = 0, []
            end = time.monotonic() + 9

            async def one(model: str):
                nonlocal ok
                try:
                    r = await client.chat.completions.create(
                        model=model, messages=[{"role": "user", "content": "under load"}]
                    )
                    assert r.choices[0].message.content == "Simulated reply to: under load"
                    ok += 1
                except Exception as e:  # every failure is reported below
                    failures.append(repr(e))

            while time.monotonic() < end:
                await asyncio.gather(*(one("pod/nova" if i % 2 else "cross/claude") for i in range(8)))
            await client.close()
            return ok, failures

        ok, failures = asyncio.run(load())
    finally:
        agent.close()
    assert failures == [], failures[:3]
    assert ok >= 40
    assert agent.rejected == 0
    assert len(agent.issued) >= 3, f"several refreshes during the load: {agent.issued}"
    pod_keys = {access_key_of(r) for r in sim.requests() if "/model/amazon.nova-lite-v1%3A0/" in r["path"]}
    assert len(pod_keys & set(agent.issued)) >= 3, "requests used each refreshed set"


@pytest.fixture
def moto_enforcing_iam(logdir: Path):
    """A second moto whose STS checks IAM. Its role `bedrock-gateway` may assume TARGET_ROLE only;
    returns (moto, a session of that role as the pod's identity)."""
    import boto3

    m = start_moto(logdir, name="moto-iam")
    setup = {"endpoint_url": m.url, "region_name": "us-east-1", "aws_access_key_id": "setup", "aws_secret_access_key": "setup"}
    iam = boto3.client("iam", **setup)
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "pods.eks.amazonaws.com"}, "Action": ["sts:AssumeRole", "sts:TagSession"]}]}
    role = iam.create_role(RoleName="bedrock-gateway", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
    allow = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["sts:AssumeRole", "sts:TagSession"], "Resource": TARGET_ROLE}]}
    iam.put_role_policy(RoleName="bedrock-gateway", PolicyName="assume-bedrock-invoke", PolicyDocument=json.dumps(allow))
    session = boto3.client("sts", **setup).assume_role(RoleArn=role, RoleSessionName="pod")["Credentials"]
    # From now on every call is authenticated and authorized against moto's IAM.
    httpx.post(f"{m.url}/moto-api/reset-auth", content=b"0").raise_for_status()
    yield m, session
    m.proc.stop()


def test_a_role_that_cannot_be_assumed_gives_the_documented_error(launch, client_for, sim, moto_enforcing_iam, tmp_path):
    import openai

    moto_iam, session = moto_enforcing_iam
    akid, secret = session["AccessKeyId"], session["SecretAccessKey"]
    token_file = tmp_path / "eks-pod-identity-token"
    token_file.write_text("pod-identity-token")
    agent = PodIdentityAgent(
        sim.url, "pod-identity-token", 3600, fixed={
            "AccessKeyId": akid,
            "SecretAccessKey": secret,
            "Token": session["SessionToken"],
            "Expiration": (datetime.now(timezone.utc) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
    )
    denied_role = "arn:aws:iam::222222222222:role/not-for-the-gateway"
    try:
        env = {"AWS_CONTAINER_CREDENTIALS_FULL_URI": agent.url, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": str(token_file)}
        gw = launch(env, moto_iam.url, denied_role)
        with pytest.raises(openai.InternalServerError) as err:
            ask(client_for(KEY, gw), "cross/claude")
    finally:
        agent.close()
    assert err.value.status_code == 503
    body = err.value.response.json()["error"]
    assert (body["type"], body["code"], body["param"]) == ("server_error", "aws_credentials_unavailable", None)
    message = body["message"]
    assert message.startswith(
        f"The gateway has no AWS credentials for account `cross`: AssumeRole on {denied_role} was denied "
        "("
    ), message
    assert message.endswith(
        "check that the gateway's role may call sts:AssumeRole and sts:TagSession on it, and that the role's "
        "trust policy names the gateway's role and this externalId"
    ), message
    assert secret not in message and akid not in message
    assert not sim.requests(), "nothing reaches Bedrock without credentials"


def test_rotated_access_key_secret_takes_effect_without_restart(start_gateway, client_for, sim):
    old = ("ASIAROTATEOLD0000001", "old-secret-value", "old-session-token")
    new = ("ASIAROTATENEW0000002", "new-secret-value", "new-session-token")
    for akid, secret, token in (old, new):
        httpx.post(
            f"{sim.url}/_sim/credentials",
            json={"accessKeyId": akid, "secretAccessKey": secret, "sessionToken": token},
        ).raise_for_status()
        SIM_SECRETS[akid] = secret
    gw = start_gateway()
    account = gw.manifests / "account.yaml"
    account.write_text(account.read_text().split("\n---\n")[0])

    def secret_yaml(akid: str, secret: str, token: str) -> str:
        return (
            "apiVersion: v1\nkind: Secret\nmetadata: {name: aws-keys, namespace: ai-gateway}\ntype: Opaque\n"
            f"stringData:\n  accessKeyId: {akid}\n  secretAccessKey: {secret}\n  sessionToken: {token}\n"
        )

    keys_file = gw.manifests / "aws-keys.yaml"
    keys_file.write_text(secret_yaml(*old))
    client = client_for(KEY, gw)

    def until_signed_by(akid: str):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            assert ask(client, "demo/nova-lite") == "Simulated reply to: hello"
            if access_key_of(sim.requests()[-1]) == akid:
                return
            time.sleep(0.1)
        pytest.fail(f"requests never signed with {akid}")

    until_signed_by(old[0])
    assert header(sim.requests()[-1], "x-amz-security-token") == old[2]
    keys_file.write_text(secret_yaml(*new))
    until_signed_by(new[0])
    assert header(sim.requests()[-1], "x-amz-security-token") == new[2]
