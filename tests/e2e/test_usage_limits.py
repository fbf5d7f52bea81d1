"""Cost, the usage log line and AccessPolicy limits, seen through the official OpenAI SDK.

Global limits run on a real ``redis-server`` (Debian package, installed by scripts/test)
started here on a free loopback port, shared by two proxy processes.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from pathlib import Path

import h11
import httpx
import openai
import pytest

from conftest import QUICKSTART_KEY, _sync_http_client, free_port, start_gateway_proc, write_manifests
from contracts import SIM_ACCESS_KEY_ID, SIM_SECRET_ACCESS_KEY
from e2e_helpers import error_body, fresh_minute

LIMITED_KEY = "sk-bgw-e2e-limited"
HELLO = [{"role": "user", "content": "Hello there"}]
SECRETS = (QUICKSTART_KEY, LIMITED_KEY, SIM_ACCESS_KEY_ID, SIM_SECRET_ACCESS_KEY)

LIMITED_MANIFESTS = f"""\
apiVersion: v1
kind: Secret
metadata: {{name: limited-key, namespace: ai-gateway}}
type: bedrockgateway.io/api-key
stringData: {{key: {LIMITED_KEY}, user: limited@example.com, teams: limited-team}}
---
apiVersion: bedrockgateway.io/v1alpha1
kind: AccessPolicy
metadata: {{name: limited, namespace: ai-gateway}}
spec:
  subjects: [{{user: limited@example.com}}]
  models: ["demo/nova-lite"]
  limits: {{requestsPerMinute: 3, tokensPerMinute: 1000}}
"""


@pytest.fixture(scope="module")
def redis_url():
    server = shutil.which("redis-server")
    if server is None:
        pytest.fail("redis-server is not installed (apt-get install redis-server; scripts/test does it)", pytrace=False)
    port = free_port()
    proc = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail(f"redis-server did not listen on {port}", pytrace=False)
    yield f"redis://127.0.0.1:{port}/0"
    proc.terminate()
    proc.wait(timeout=5)


@pytest.fixture
def replicas(sim, logdir: Path, tmp_path: Path, redis_url: str):
    """Two proxy processes on the same manifests, limits in the same Redis, JSON logs."""
    manifests = write_manifests(tmp_path / "manifests", sim.url)
    (manifests / "limited.yaml").write_text(LIMITED_MANIFESTS)
    args = ["--redis-url", redis_url, "--limits-fail-closed", "--log-format", "json"]
    gws = [start_gateway_proc(manifests, logdir, name=f"proxy-replica-{i}", extra_args=args) for i in range(2)]
    yield gws
    for gw in gws:
        gw.proc.stop()


def sdk(gw, key: str) -> openai.OpenAI:
    # Responses are contract-checked against the OpenAI spec, as the shared clients' are.
    return openai.OpenAI(
        base_url=f"{gw.url}/v1", api_key=key, max_retries=0, timeout=30.0, http_client=_sync_http_client()
    )


def usage_lines(gw) -> list[dict]:
    lines = []
    for line in gw.proc.stderr().splitlines():
        if '"bedrock_gateway::usage"' in line:
            lines.append(json.loads(line))
    return lines


def wait_for_usage_line(gw, request_id: str) -> dict:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        for line in usage_lines(gw):
            if line["fields"].get("request_id") == request_id:
                return line
        time.sleep(0.05)
    pytest.fail(f"no usage line for {request_id} in:\n{gw.proc.stderr()[-4000:]}")


def test_cost_header_and_usage_log_line(replicas):
    gw = replicas[0]
    raw = sdk(gw, QUICKSTART_KEY).chat.completions.with_raw_response.create(model="demo/claude-sonnet", messages=HELLO)
    # us.anthropic.claude-3-7-sonnet at $3/M input and $15/M output: 2 and 5 tokens.
    assert raw.headers["x-bedrock-gateway-cost-usd"] == "0.000081"
    completion = raw.parse()
    line = wait_for_usage_line(gw, completion.id)
    fields = line["fields"]
    assert line["level"] == "INFO"
    assert "timestamp" in line
    assert fields["message"] == "usage"
    assert fields["user"] == "dev@example.com"
    assert fields["model"] == "demo/claude-sonnet"
    assert fields["account"] == "demo"
    assert fields["endpoint"] == "chat"
    assert (fields["input_tokens"], fields["output_tokens"]) == (2, 5)
    assert (fields["cache_read_tokens"], fields["cache_write_tokens"]) == (0, 0)
    assert fields["cost_usd"] == pytest.approx(0.000081)
    assert fields["status"] == 200
    assert isinstance(fields["latency_ms"], int)
    # Neither the prompt nor the completion is logged.
    logs = gw.proc.stderr()
    assert "Hello there" not in logs
    assert completion.choices[0].message.content not in logs


def test_streams_log_their_cost(replicas):
    gw = replicas[1]
    stream = sdk(gw, QUICKSTART_KEY).chat.completions.create(
        model="demo/nova-lite", messages=HELLO, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert chunks[-1].usage.total_tokens == 7
    fields = wait_for_usage_line(gw, chunks[0].id)["fields"]
    assert fields["cost_usd"] == pytest.approx(2 * 0.06e-6 + 5 * 0.24e-6)
    assert fields["ttft_ms"] >= 0
    assert fields["status"] == 200


def test_limits_are_global_across_two_processes(replicas):
    fresh_minute()
    clients = [sdk(gw, LIMITED_KEY) for gw in replicas]
    remaining = []
    for i in range(3):
        raw = clients[i % 2].chat.completions.with_raw_response.create(model="demo/nova-lite", messages=HELLO)
        assert raw.headers["x-ratelimit-limit-requests"] == "3"
        assert raw.headers["x-ratelimit-limit-tokens"] == "1000"
        assert raw.headers["x-ratelimit-reset-requests"].endswith("s")
        remaining.append(raw.headers["x-ratelimit-remaining-requests"])
    assert remaining == ["2", "1", "0"]
    with pytest.raises(openai.RateLimitError) as ei:
        clients[1].chat.completions.create(model="demo/nova-lite", messages=HELLO)
    assert ei.value.status_code == 429
    err = error_body(ei.value)
    assert err["type"] == "requests"
    assert err["code"] == "rate_limit_exceeded"
    assert "Limit 3, Used 3" in err["message"]
    headers = ei.value.response.headers
    assert 1 <= int(headers["retry-after"]) <= 60
    assert headers["x-ratelimit-remaining-requests"] == "0"
    # The quick-start caller's policy has no limits.
    ok = sdk(replicas[1], QUICKSTART_KEY).chat.completions.with_raw_response.create(
        model="demo/nova-lite", messages=HELLO
    )
    assert "x-ratelimit-limit-requests" not in ok.headers


def test_no_secret_in_logs_or_metrics(replicas):
    for gw in replicas:
        sdk(gw, QUICKSTART_KEY).chat.completions.create(model="demo/nova-lite", messages=HELLO)
        with pytest.raises(openai.AuthenticationError):
            sdk(gw, "sk-bgw-wrong-key-e2e").models.list()
        metrics = httpx.get(f"{gw.url}/metrics").text
        assert "bedrock_gateway_cost_usd_total" in metrics
        for text in (metrics, gw.proc.stderr(), gw.proc.stdout()):
            for secret in SECRETS + ("sk-bgw-wrong-key-e2e",):
                assert secret not in text


STREAM_BODY = json.dumps(
    {"model": "demo/nova-lite", "messages": HELLO, "stream": True, "stream_options": {"include_usage": True}}
)


def stream_over_h11(gw, te_trailers: bool) -> tuple[h11.Response, bytes, dict[str, str]]:
    """A streamed chat read with h11 over a plain socket: status line, body and trailers."""
    host, port = gw.url.removeprefix("http://").split(":")
    headers = [
        ("Host", f"{host}:{port}"),
        ("Authorization", f"Bearer {QUICKSTART_KEY}"),
        ("Content-Type", "application/json"),
        ("Content-Length", str(len(STREAM_BODY))),
    ]
    if te_trailers:
        headers.append(("TE", "trailers"))
    conn = h11.Connection(h11.CLIENT)
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(conn.send(h11.Request(method="POST", target="/v1/chat/completions", headers=headers)))
        sock.sendall(conn.send(h11.Data(data=STREAM_BODY.encode())))
        sock.sendall(conn.send(h11.EndOfMessage()))
        head, body, trailers = None, b"", {}
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(sock.recv(65536))
            elif isinstance(event, h11.Response):
                head = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                trailers = {k.decode(): v.decode() for k, v in event.headers}
                return head, body, trailers


def sse_id(body: bytes) -> str:
    first = body.decode().split("\n\n")[0].removeprefix("data: ")
    return json.loads(first)["id"]


def test_http1_streams_carry_their_cost_in_a_trailer(replicas):
    gw = replicas[0]
    head, body, trailers = stream_over_h11(gw, te_trailers=True)
    assert head.status_code == 200
    assert dict(head.headers)[b"trailer"] == b"x-bedrock-gateway-cost-usd"
    assert body.endswith(b"data: [DONE]\n\n")
    # amazon.nova-lite: 2 input tokens at $0.06/M + 5 output tokens at $0.24/M.
    assert trailers == {"x-bedrock-gateway-cost-usd": "0.00000132"}
    logged = wait_for_usage_line(gw, sse_id(body))["fields"]["cost_usd"]
    assert float(trailers["x-bedrock-gateway-cost-usd"]) == pytest.approx(logged, rel=1e-9)
    # A client that did not ask for trailers gets none, and no announcement.
    head, body, trailers = stream_over_h11(gw, te_trailers=False)
    assert head.status_code == 200 and b"trailer" not in dict(head.headers)
    assert trailers == {}
    assert wait_for_usage_line(gw, sse_id(body))["fields"]["cost_usd"] == pytest.approx(logged, rel=1e-9)


def test_http2_streams_carry_their_cost_in_a_trailer(replicas, tmp_path):
    gw = replicas[1]
    dump = tmp_path / "headers.txt"
    out = subprocess.run(
        [
            "curl", "-sS", "-N", "--http2-prior-knowledge", "-D", str(dump),
            "-H", f"Authorization: Bearer {QUICKSTART_KEY}", "-H", "Content-Type: application/json",
            "--data-binary", STREAM_BODY, f"{gw.url}/v1/chat/completions",
        ],
        capture_output=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.endswith(b"data: [DONE]\n\n")
    # curl writes the trailer fields into the header dump after the body's headers.
    lines = [line.strip() for line in dump.read_text().splitlines()]
    assert lines[0] == "HTTP/2 200"
    assert "trailer: x-bedrock-gateway-cost-usd" in lines
    costs = [line.split(": ", 1)[1] for line in lines if line.startswith("x-bedrock-gateway-cost-usd: ")]
    assert costs == ["0.00000132"], lines
    logged = wait_for_usage_line(gw, sse_id(out.stdout))["fields"]["cost_usd"]
    assert float(costs[0]) == pytest.approx(logged, rel=1e-9)


def test_prompts_and_completions_reach_the_logs_only_with_log_content(sim, logdir: Path, tmp_path: Path):
    manifests = write_manifests(tmp_path / "manifests", sim.url)
    marker = "e2e-words-that-must-stay-private"
    for flag in (False, True):
        args = ["--log-format", "json"] + (["--log-content"] if flag else [])
        gw = start_gateway_proc(manifests, logdir, name=f"proxy-log-content-{flag}", extra_args=args)
        try:
            client = sdk(gw, QUICKSTART_KEY)
            reply = client.chat.completions.create(
                model="demo/nova-lite", messages=[{"role": "user", "content": marker}]
            )
            chunks = list(
                client.chat.completions.create(
                    model="demo/nova-lite", messages=[{"role": "user", "content": marker}], stream=True
                )
            )
            ids = [reply.id, chunks[0].id]
            for request_id in ids:
                wait_for_usage_line(gw, request_id)
            gw.proc.stop()
            logs = gw.proc.stderr() + gw.proc.stdout()
            content = [json.loads(l) for l in logs.splitlines() if '"bedrock_gateway::content"' in l]
            if not flag:
                assert marker not in logs and content == []
                continue
            assert [c["fields"]["request_id"] for c in content] == ids
            for line in content:
                assert json.loads(line["fields"]["prompt"])["messages"][0]["content"] == marker
                assert line["fields"]["completion"] == f"Simulated reply to: {marker}"
            assert QUICKSTART_KEY not in logs
        finally:
            gw.proc.stop()
