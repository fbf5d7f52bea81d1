"""Operating the gateway: health, metrics, hot reload of the manifests folder, quick start."""

from __future__ import annotations

import os
import time
from pathlib import Path

import openai
import pytest

from conftest import QUICKSTART, QUICKSTART_KEY, start_gateway_proc
from e2e_helpers import DEMO_MODELS, label_of, metric_value, only_call

AUTH = {"Authorization": f"Bearer {QUICKSTART_KEY}"}


def test_healthz_and_readyz(http):
    assert http.get("/healthz").status_code == 200
    assert http.get("/readyz").status_code == 200


def test_metrics_count_requests(http, client):
    def counter() -> float:
        r = http.get("/metrics")
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/plain")
        assert "# TYPE bedrock_gateway_requests_total counter" in r.text
        return metric_value(r.text, "bedrock_gateway_requests_total", model="demo/nova-lite", status="200")

    # a labelled counter shows up once it has a sample
    client.chat.completions.create(model="demo/nova-lite", messages=[{"role": "user", "content": "count me"}])
    before = counter()
    assert before >= 1
    client.chat.completions.create(model="demo/nova-lite", messages=[{"role": "user", "content": "count me too"}])
    assert counter() == before + 1

    before_404 = metric_value(http.get("/metrics").text, "bedrock_gateway_requests_total", status="404")
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="demo/not-there", messages=[{"role": "user", "content": "x"}])
    assert metric_value(http.get("/metrics").text, "bedrock_gateway_requests_total", status="404") == before_404 + 1


# ---------------------------------------------------------------- hot reload
def put(path: Path, text: str) -> None:
    """Replace a file atomically, as an editor or kubectl-synced volume would."""
    tmp = path.parent.parent / f".{path.name}.tmp-{os.getpid()}"
    tmp.write_text(text)
    os.replace(tmp, path)


def hot_model(model_id: str) -> str:
    return f"""\
apiVersion: bedrockgateway.io/v1alpha1
kind: BedrockModel
metadata:
  name: hot-model
  namespace: ai-gateway
spec:
  accountRef: demo
  modelId: {model_id}
"""


def served(c) -> list[str]:
    return sorted(m.id for m in c.models.list())


def wait_for(predicate, timeout: float, what: str):
    t0 = time.monotonic()
    last = None
    while time.monotonic() - t0 < timeout:
        last = predicate()
        if last:
            return time.monotonic() - t0
        time.sleep(0.2)
    pytest.fail(f"{what} did not happen within {timeout:.0f}s (last check: {last!r})")


def test_hot_reload(start_gateway, client_for, sim):
    gw = start_gateway()
    c = client_for(QUICKSTART_KEY, gw)
    assert served(c) == DEMO_MODELS

    # 1. a new model file is picked up without a restart
    model_file = gw.manifests / "hot-model.yaml"
    put(model_file, hot_model("anthropic.claude-3-haiku-20240307-v1:0"))
    took = wait_for(lambda: "demo/hot-model" in served(c), 10, "demo/hot-model appearing in /v1/models")
    assert served(c) == sorted(DEMO_MODELS + ["demo/hot-model"])
    r = c.chat.completions.create(model="demo/hot-model", messages=[{"role": "user", "content": "hot"}])
    assert r.choices[0].message.content == "Simulated reply to: hot"
    assert label_of(only_call(sim))[1] == "anthropic.claude-3-haiku-20240307-v1:0"
    sim.clear()

    # 2. a broken edit keeps the last good config serving
    put(model_file, "apiVersion: bedrockgateway.io/v1alpha1\nkind: BedrockModel\nmetadata: {name: [unclosed\n")
    deadline = time.monotonic() + max(3.0, 3 * took)
    while time.monotonic() < deadline:
        assert served(c) == sorted(DEMO_MODELS + ["demo/hot-model"])
        time.sleep(0.25)
    with client_for(QUICKSTART_KEY, gw) as c2:
        assert c2.chat.completions.create(model="demo/hot-model", messages=[{"role": "user", "content": "still"}]).choices[
            0
        ].message.content == "Simulated reply to: still"
    assert c.chat.completions.create(model="demo/nova-lite", messages=[{"role": "user", "content": "ok"}]).choices[
        0
    ].message.content == "Simulated reply to: ok"
    sim.clear()

    # 3. fixing the file applies the edit (here: a different Bedrock model id)
    put(model_file, hot_model("amazon.nova-micro-v1:0"))

    def new_id_used() -> bool:
        sim.clear()
        c.chat.completions.create(model="demo/hot-model", messages=[{"role": "user", "content": "which"}])
        return label_of(only_call(sim))[1] == "amazon.nova-micro-v1:0"

    wait_for(new_id_used, 10, "the edited modelId being used")

    # 4. removing the file stops serving the model
    model_file.unlink()
    wait_for(lambda: served(c) == DEMO_MODELS, 10, "demo/hot-model disappearing")
    with pytest.raises(openai.NotFoundError):
        c.chat.completions.create(model="demo/hot-model", messages=[{"role": "user", "content": "gone"}])


# ---------------------------------------------------------------- quick start
def test_quickstart_with_embedded_simulator(logdir, client_for, tmp_path):
    """The documented quick start: the example manifests as shipped, with --simulator."""
    gw = start_gateway_proc(QUICKSTART, logdir, name="bedrock-gateway-proxy-quickstart", extra_args=["--simulator"])
    try:
        c = client_for(QUICKSTART_KEY, gw)
        assert served(c) == DEMO_MODELS
        r = c.chat.completions.create(model="demo/claude-sonnet", messages=[{"role": "user", "content": "hi from docs"}])
        assert r.choices[0].message.content == "Simulated reply to: hi from docs"
        chunks = list(
            c.chat.completions.create(
                model="demo/team-profile", messages=[{"role": "user", "content": "stream please"}], stream=True
            )
        )
        assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == "Simulated reply to: stream please"
    finally:
        gw.proc.stop()
