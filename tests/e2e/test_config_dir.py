"""The proxy on the operator's rendered documents (--config-dir), the separate ops port
(--metrics-listen), and the choice of config source on the command line.

The documents come from `bedrock-gateway-operator render -f DIR --out-dir OUT`, the same code
path the operator uses for its ConfigMap and Secret; they are laid out the way the kubelet
mounts a projected ConfigMap + Secret volume (timestamped folder, `..data` symlink swapped
atomically on every update), in both forms: `config.json` as rendered and `config.json.gz` as the
operator stores it in its ConfigMap.
"""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from conftest import QUICKSTART_KEY, binary, free_port, start_gateway_proc, write_manifests
from e2e_helpers import DEMO_MODELS, label_of, metric_value, only_call
from test_ops import hot_model, served, wait_for


def render(manifests: Path, out: Path) -> None:
    """`bedrock-gateway-operator render -f manifests --out-dir out`, which must succeed."""
    r = subprocess.run(
        [str(binary("bedrock-gateway-operator")), "render", "-f", str(manifests), "--out-dir", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "credentials.json"]


def kubelet_update(volume: Path, documents: Path, version: int) -> None:
    """Publish `documents` into `volume` as the kubelet updates a mounted volume."""
    volume.mkdir(exist_ok=True)
    stamp = f"..2026_11_25_12_00_{version:02d}.000000001"
    shutil.copytree(documents, volume / stamp)
    old = os.readlink(volume / "..data") if (volume / "..data").is_symlink() else None
    os.symlink(stamp, volume / "..data_tmp")
    os.replace(volume / "..data_tmp", volume / "..data")
    present = {p.name for p in documents.iterdir()}
    for name in ("config.json", "config.json.gz", "credentials.json"):
        link = volume / name
        if name in present and not link.is_symlink():
            os.symlink(f"..data/{name}", link)
        elif name not in present and link.is_symlink():
            link.unlink()  # a key the ConfigMap no longer has
    if old:
        shutil.rmtree(volume / old)


def test_config_dir_follows_operator_render_and_kubelet_swaps(sim, logdir, tmp_path, client_for):
    manifests = write_manifests(tmp_path / "manifests", sim.url)
    render(manifests, tmp_path / "render-1")
    volume = tmp_path / "volume"
    kubelet_update(volume, tmp_path / "render-1", 1)
    ops = f"http://127.0.0.1:{free_port()}"
    gw = start_gateway_proc(
        volume,
        logdir,
        name="bedrock-gateway-proxy-config-dir",
        source_args=["--config-dir", str(volume)],
        extra_args=["--metrics-listen", ops.removeprefix("http://"), "--reload-interval-ms", "200"],
    )
    try:
        c = client_for(QUICKSTART_KEY, gw)
        assert served(c) == DEMO_MODELS
        r = c.chat.completions.create(model="demo/nova-lite", messages=[{"role": "user", "content": "from files"}])
        assert r.choices[0].message.content == "Simulated reply to: from files"
        sim.clear()

        # Metrics and probes are on the ops port only.
        with httpx.Client(timeout=10) as plain:
            assert plain.get(f"{ops}/readyz").status_code == 200
            assert plain.get(f"{ops}/healthz").status_code == 200
            metrics = plain.get(f"{ops}/metrics")
            assert metrics.status_code == 200
            assert metric_value(metrics.text, "bedrock_gateway_requests_total", model="demo/nova-lite", status="200") == 1
            assert metric_value(metrics.text, "bedrock_gateway_config_reloads_total", result="success") == 1
            on_api = plain.get(f"{gw.url}/metrics")
            assert on_api.status_code == 404
            assert on_api.json()["error"]["message"] == "Unknown request URL: GET /metrics."

            # A new model, rendered and swapped in, is served without a restart.
            (manifests / "hot-model.yaml").write_text(hot_model("anthropic.claude-3-haiku-20240307-v1:0"))
            render(manifests, tmp_path / "render-2")
            kubelet_update(volume, tmp_path / "render-2", 2)
            wait_for(lambda: "demo/hot-model" in served(c), 10, "demo/hot-model appearing in /v1/models")
            r = c.chat.completions.create(model="demo/hot-model", messages=[{"role": "user", "content": "hot"}])
            assert r.choices[0].message.content == "Simulated reply to: hot"
            assert label_of(only_call(sim))[1] == "anthropic.claude-3-haiku-20240307-v1:0"
            sim.clear()

            # A broken document is counted and the last good config keeps serving.
            broken = tmp_path / "render-3"
            shutil.copytree(tmp_path / "render-2", broken)
            (broken / "config.json").write_text('{"version": 1, "accounts": ')
            kubelet_update(volume, broken, 3)

            def rejected() -> bool:
                text = plain.get(f"{ops}/metrics").text
                return metric_value(text, "bedrock_gateway_config_reloads_total", result="error") == 1

            wait_for(rejected, 10, "the broken config being counted as an error")
            assert served(c) == sorted(DEMO_MODELS + ["demo/hot-model"])
            r = c.chat.completions.create(model="demo/hot-model", messages=[{"role": "user", "content": "still"}])
            assert r.choices[0].message.content == "Simulated reply to: still"
            assert "config.json: EOF while parsing" in gw.proc.stderr()

            # The form the operator stores in its ConfigMap, config.json.gz (any standard gzip),
            # replacing config.json: read the same way.
            compressed = tmp_path / "render-4"
            compressed.mkdir()
            shutil.copy(tmp_path / "render-1" / "credentials.json", compressed)
            config = (tmp_path / "render-1" / "config.json").read_bytes()
            (compressed / "config.json.gz").write_bytes(gzip.compress(config))
            kubelet_update(volume, compressed, 4)
            wait_for(lambda: served(c) == DEMO_MODELS, 10, "the gzip config (without demo/hot-model) being served")
            assert sorted(p.name for p in volume.iterdir() if not p.name.startswith("..")) == [
                "config.json.gz",
                "credentials.json",
            ]
            r = c.chat.completions.create(model="demo/nova-lite", messages=[{"role": "user", "content": "gzip"}])
            assert r.choices[0].message.content == "Simulated reply to: gzip"
            text = plain.get(f"{ops}/metrics").text
            assert metric_value(text, "bedrock_gateway_config_reloads_total", result="success") == 3
    finally:
        gw.proc.stop()


def test_kube_source_without_a_cluster_serves_the_config_dir(sim, logdir, tmp_path, client_for):
    """--kube-configmap where no Kubernetes API can be found: the --config-dir fallback is served."""
    manifests = write_manifests(tmp_path / "manifests", sim.url)
    render(manifests, tmp_path / "documents")
    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST")}
    env["HOME"] = str(tmp_path)  # no ~/.kube/config
    gw = start_gateway_proc(
        tmp_path / "documents",
        logdir,
        name="bedrock-gateway-proxy-kube-fallback",
        source_args=[
            "--kube-configmap", "bgw-config", "--kube-secret", "bgw-credentials",
            "--kube-namespace", "ai-gateway", "--config-dir", str(tmp_path / "documents"),
        ],
        env=env,
    )
    try:
        assert served(client_for(QUICKSTART_KEY, gw)) == DEMO_MODELS
        assert "cannot find the Kubernetes API" in gw.proc.stderr()
    finally:
        gw.proc.stop()


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        ([], "the following required arguments were not provided"),
        (["--manifests", "a", "--config-dir", "b"], "the argument '--manifests <DIR>' cannot be used with '--config-dir <DIR>'"),
        (["--manifests", "a", "--kube-configmap", "c", "--kube-secret", "s"], "cannot be used with"),
        (["--kube-configmap", "c"], "the following required arguments were not provided:\n  --kube-secret <NAME>"),
        (["--kube-secret", "s", "--config-dir", "b"], "the following required arguments were not provided:\n  --kube-configmap <NAME>"),
    ],
)
def test_exactly_one_config_source(args, complaint):
    env = {k: v for k, v in os.environ.items() if not k.startswith("BGW_")}
    t0 = time.monotonic()
    r = subprocess.run([str(binary("bedrock-gateway-proxy")), *args], capture_output=True, text=True, env=env, timeout=30)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert complaint in r.stderr, r.stderr
    assert time.monotonic() - t0 < 30
