"""The operator against a real Kubernetes cluster (kind or any kubeconfig).

Runs only when KUBECONFIG is set (no API server can run on the CI machines); otherwise every test
is skipped with the reason printed by ``-ra``. The operator binary runs on this machine with the
kubeconfig, so the quick-start endpoints still point at the local bedrock-sim and moto (STS).

It installs the CRDs, creates a throw-away namespace, applies the quick start there and checks
what a user sees: the rendered ConfigMap (gzip-compressed) and Secret, every object's status (AWS
truth included), events, the Lease, metrics, the proxy following both objects through the API
(an apply served without a restart), and that a broken Secret is reported on the account and its models
while the config keeps serving what still works.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any, Callable

import httpx
import pytest

from conftest import QUICKSTART, QUICKSTART_KEY, QUICKSTART_SIM_URL, REPO, Proc, binary, free_port, start_gateway_proc

pytestmark = pytest.mark.skipif(
    not os.environ.get("KUBECONFIG"),
    reason="KUBECONFIG is not set: the real-cluster operator suite needs a cluster (e.g. `kind create cluster`) "
    "and runs when KUBECONFIG points at it",
)

RELEASE = "e2e"
TIMEOUT = 60.0


def kubectl(*args: str, stdin: str | None = None, check: bool = True) -> str:
    if shutil.which("kubectl") is None:
        pytest.fail("kubectl is not on PATH", pytrace=False)
    r = subprocess.run(["kubectl", *args], input=stdin, capture_output=True, text=True, timeout=60)
    if check and r.returncode != 0:
        pytest.fail(f"kubectl {' '.join(args)} failed: {r.stderr}", pytrace=False)
    return r.stdout


def get(kind: str, name: str, ns: str) -> dict[str, Any] | None:
    out = kubectl("get", kind, name, "-n", ns, "-o", "json", check=False)
    return json.loads(out) if out.strip() else None


def eventually(what: str, probe: Callable[[], Any], timeout: float = TIMEOUT) -> Any:
    """Polls `probe` until it returns something truthy; fails naming `what` and the last value."""
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}; last seen: {last!r}", pytrace=False)


def condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any]:
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c["type"] == type_:
            return c
    return {}


@pytest.fixture(scope="module")
def moto(logdir: Path):
    server = REPO / ".venv" / "bin" / "moto_server"
    if not server.exists():
        pytest.fail(f"{server} not found: install tests/e2e/requirements.txt", pytrace=False)
    port = free_port()
    proc = Proc("moto", [str(server), "-H", "127.0.0.1", "-p", str(port)], logdir)
    url = f"http://127.0.0.1:{port}"
    eventually("moto_server", lambda: _up(url), timeout=30)
    yield url
    proc.stop()


def _up(url: str) -> bool:
    try:
        httpx.get(url, timeout=1)
        return True
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="module")
def cluster(sim, moto, logdir: Path):
    ns = f"bgw-e2e-{uuid.uuid4().hex[:8]}"
    kubectl("apply", "-f", str(REPO / "crds"))
    kubectl("create", "namespace", ns)
    metrics_port = free_port()
    operator = Proc(
        "operator",
        [
            str(binary("bedrock-gateway-operator")),
            "run",
            "--release", RELEASE,
            "--namespace", ns,
            "--metrics-listen", f"127.0.0.1:{metrics_port}",
            "--pod-name", "e2e-operator-0",
        ],
        logdir,
    )
    docs = []
    for src in sorted(QUICKSTART.glob("*.yaml")):
        text = src.read_text().replace("namespace: ai-gateway", f"namespace: {ns}")
        text = text.replace(
            f'    control: "{QUICKSTART_SIM_URL}"',
            f'    control: "{QUICKSTART_SIM_URL}"\n    sts: "{moto}"',
        )
        docs.append(text.replace(QUICKSTART_SIM_URL, sim.url))
    kubectl("apply", "-n", ns, "-f", "-", stdin="\n---\n".join(docs))
    yield {"ns": ns, "metrics": f"http://127.0.0.1:{metrics_port}", "operator": operator}
    operator.stop()
    kubectl("delete", "namespace", ns, "--wait=false", check=False)
    sim.clear()


def stored_config(cm: dict[str, Any]) -> dict[str, Any]:
    """The config document of the operator's ConfigMap: gzip-compressed JSON in binaryData."""
    assert "data" not in cm, f"the config is stored only compressed: {sorted(cm['data'])}"
    return json.loads(gzip.decompress(base64.b64decode(cm["binaryData"]["config.json.gz"])))


def rendered(ns: str) -> dict[str, Any] | None:
    cm = get("configmap", f"{RELEASE}-config", ns)
    return stored_config(cm) if cm else None


def test_quickstart_is_rendered_into_the_configmap_and_secret(cluster):
    ns = cluster["ns"]
    config = eventually("the rendered ConfigMap", lambda: rendered(ns), timeout=TIMEOUT)
    assert sorted(config["models"]) == ["demo/claude-sonnet", "demo/nova-lite", "demo/team-profile"]
    cm = get("configmap", f"{RELEASE}-config", ns)
    assert len(cm["metadata"]["annotations"]["bedrockgateway.io/config-hash"]) == 64
    assert "bedrock-sim-secret-access-key" not in json.dumps(stored_config(cm))
    secret = get("secret", f"{RELEASE}-credentials", ns)
    credentials = json.loads(base64.b64decode(secret["data"]["credentials.json"]))
    assert credentials["accounts"]["demo"]["type"] == "accessKey"
    assert len(credentials["apiKeys"]) == 1
    managers = {f["manager"] for f in cm["metadata"]["managedFields"]}
    assert "bedrock-gateway-operator" in managers


def test_status_tells_what_aws_said(cluster):
    ns = cluster["ns"]
    account = eventually(
        "BedrockAccount demo CredentialsVerified",
        lambda: (a := get("bedrockaccount", "demo", ns)) and condition(a, "CredentialsVerified").get("status") == "True" and a,
    )
    assert condition(account, "Ready")["status"] == "True"
    assert condition(account, "ModelAccess")["status"] == "True"
    assert account["status"]["observedGeneration"] == account["metadata"]["generation"]
    assert account["status"]["identityArn"].startswith("arn:aws:")
    profile = eventually(
        "team-profile's underlying model",
        lambda: (m := get("bedrockmodel", "team-profile", ns)) and (m.get("status") or {}).get("underlyingModelId") and m,
    )
    assert profile["status"]["underlyingModelId"] == "anthropic.claude-3-7-sonnet-20250219-v1:0"
    assert profile["status"]["servedName"] == "demo/team-profile"
    assert condition(profile, "Reachable")["status"] == "True"
    config = rendered(ns)
    assert config["models"]["demo/team-profile"]["underlyingModelId"] == "anthropic.claude-3-7-sonnet-20250219-v1:0"
    policy = get("accesspolicy", "quickstart", ns)
    assert condition(policy, "ModelsMatched")["status"] == "True"


def test_leader_lease_and_metrics(cluster):
    lease = get("lease", f"{RELEASE}-operator", cluster["ns"])
    assert lease["spec"]["holderIdentity"] == "e2e-operator-0"
    text = httpx.get(f"{cluster['metrics']}/metrics", timeout=5).text
    assert "bedrock_gateway_operator_reconciles_total" in text
    assert "bedrock_gateway_operator_render_duration_seconds_count" in text
    assert 'bedrock_gateway_operator_config_bytes{encoding="gzip"}' in text
    assert httpx.get(f"{cluster['metrics']}/readyz", timeout=5).status_code == 200


def test_the_proxy_follows_the_operators_objects_through_the_api(cluster, logdir: Path):
    """The proxy as deployed: --kube-configmap/--kube-secret, reading the compressed ConfigMap."""
    ns = cluster["ns"]
    served = sorted(eventually("the rendered ConfigMap", lambda: rendered(ns))["models"])
    source = ["--kube-configmap", f"{RELEASE}-config", "--kube-secret", f"{RELEASE}-credentials", "--kube-namespace", ns]
    gw = start_gateway_proc(QUICKSTART, logdir, name="bedrock-gateway-proxy-kube", source_args=source)
    auth = {"Authorization": f"Bearer {QUICKSTART_KEY}"}

    def listed() -> list[str]:
        r = httpx.get(f"{gw.url}/v1/models", headers=auth, timeout=5)
        return sorted(m["id"] for m in r.json()["data"]) if r.status_code == 200 else []

    try:
        assert listed() == served
        # An apply reaches the proxy through the operator and the watch (no restart, no remount).
        kubectl("apply", "-n", ns, "-f", "-", stdin=(
            "apiVersion: bedrockgateway.io/v1alpha1\nkind: BedrockModel\n"
            f"metadata: {{name: e2e-late, namespace: {ns}}}\n"
            'spec: {accountRef: demo, modelId: "amazon.nova-micro-v1:0"}\n'
        ))
        eventually("demo/e2e-late served by the proxy", lambda: "demo/e2e-late" in listed())
        r = httpx.post(
            f"{gw.url}/v1/chat/completions",
            headers=auth,
            json={"model": "demo/e2e-late", "messages": [{"role": "user", "content": "hello"}]},
            timeout=30,
        )
        assert r.status_code == 200, r.text
        assert r.json()["choices"][0]["message"]["content"] == "Simulated reply to: hello"
    finally:
        kubectl("delete", "bedrockmodel", "e2e-late", "-n", ns, "--ignore-not-found", check=False)
        gw.proc.stop()


def test_a_broken_secret_is_reported_where_it_matters(cluster):
    ns = cluster["ns"]
    kubectl("patch", "secret", "aws-keys", "-n", ns, "--type=json", "-p", '[{"op":"remove","path":"/data/secretAccessKey"}]')
    account = eventually(
        "BedrockAccount demo Ready=False",
        lambda: (a := get("bedrockaccount", "demo", ns)) and condition(a, "Ready").get("status") == "False" and a,
    )
    ready = condition(account, "Ready")
    assert ready["reason"] == "SecretInvalid"
    assert "Secret aws-keys has no key secretAccessKey" in ready["message"]
    model = eventually(
        "BedrockModel nova-lite Ready=False",
        lambda: (m := get("bedrockmodel", "nova-lite", ns)) and condition(m, "Ready").get("status") == "False" and m,
    )
    assert condition(model, "Ready")["reason"] == "AccountNotReady"
    eventually("the models to leave the config", lambda: rendered(ns)["models"] == {})
    events = json.loads(kubectl("get", "events.events.k8s.io", "-n", ns, "-o", "json"))["items"]
    assert any(e.get("reason") == "SecretInvalid" and e["regarding"]["name"] == "demo" for e in events)
