"""OpenTelemetry traces, seen by a real OTLP/HTTP receiver.

A local HTTP server in this module stands in for the collector: it decodes every export with
the `opentelemetry-proto` package (protobuf `ExportTraceServiceRequest`), and the tests assert
span names, kinds, parent/child ids, the continued `traceparent`, GenAI attributes and token
counts, and that no key, credential or prompt text is ever exported.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from conftest import QUICKSTART_KEY, _sync_http_client, start_gateway_proc, write_manifests
from contracts import SIM_ACCESS_KEY_ID, SIM_SECRET_ACCESS_KEY
from e2e_helpers import error_body

# Words that must never leave the gateway in a span: keys, AWS credentials, prompt text.
PROMPT_MARKER = "zebra-quartz-prompt-7731"
SECRETS = (QUICKSTART_KEY, SIM_ACCESS_KEY_ID, SIM_SECRET_ACCESS_KEY, PROMPT_MARKER)
CLAUDE_ID = "us.anthropic.claude-3-7-sonnet-20250219-v1:0"
TITAN_ID = "amazon.titan-embed-text-v2:0"


class OtlpReceiver:
    """An OTLP/HTTP trace endpoint on a free loopback port that keeps what it receives."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.content_types: list[str] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.path != "/v1/traces":
                    self.send_response(404)
                    self.end_headers()
                    return
                with receiver.lock:
                    receiver.bodies.append(body)
                    receiver.content_types.append(self.headers.get("Content-Type", ""))
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def exports(self) -> list[ExportTraceServiceRequest]:
        with self.lock:
            bodies = list(self.bodies)
        out = []
        for body in bodies:
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)
            out.append(request)
        return out

    def spans(self) -> list[tuple[dict[str, Any], str, Span]]:
        """Every span received: (resource attributes, scope name, span)."""
        found = []
        for request in self.exports():
            for rs in request.resource_spans:
                resource = attributes(rs.resource.attributes)
                for ss in rs.scope_spans:
                    found.extend((resource, ss.scope.name, span) for span in ss.spans)
        return found

    def trace(self, trace_id: bytes, count: int, timeout: float = 15.0) -> list[Span]:
        """The spans of `trace_id`, once `count` of them arrived (sorted by start time)."""
        deadline = time.monotonic() + timeout
        while True:
            spans = [s for _, _, s in self.spans() if s.trace_id == trace_id]
            if len(spans) >= count or time.monotonic() > deadline:
                return sorted(spans, key=lambda s: s.start_time_unix_nano)
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def value(v: Any) -> Any:
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [value(x) for x in v.array_value.values]
    return getattr(v, kind) if kind else None


def attributes(kvs: Any) -> dict[str, Any]:
    return {kv.key: value(kv.value) for kv in kvs}


def traceparent() -> tuple[str, bytes, bytes]:
    trace_id, parent_id = os.urandom(16), os.urandom(8)
    return f"00-{trace_id.hex()}-{parent_id.hex()}-01", trace_id, parent_id


def by_kind(spans: list[Span]) -> tuple[Span, list[Span]]:
    servers = [s for s in spans if s.kind == Span.SPAN_KIND_SERVER]
    clients = [s for s in spans if s.kind == Span.SPAN_KIND_CLIENT]
    assert len(servers) == 1, [s.name for s in spans]
    assert len(servers) + len(clients) == len(spans)
    return servers[0], clients


@pytest.fixture(scope="module")
def receiver():
    r = OtlpReceiver()
    yield r
    r.stop()


@pytest.fixture(scope="module")
def traced(sim, logdir: Path, receiver: OtlpReceiver, tmp_path_factory):
    """A gateway exporting traces to `receiver`, configured the standard OTEL_* way."""
    manifests = write_manifests(tmp_path_factory.mktemp("traced") / "manifests", sim.url)
    env = {
        **os.environ,
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
        "OTEL_SERVICE_NAME": "bgw-e2e",
        "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=e2e",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }
    gw = start_gateway_proc(manifests, logdir, name="proxy-traced", extra_args=["--otel-traces"], env=env)
    yield gw
    gw.proc.stop()


@pytest.fixture
def traced_client(traced):
    with _sync_http_client() as http:
        yield openai.OpenAI(
            base_url=f"{traced.url}/v1", api_key=QUICKSTART_KEY, max_retries=0, timeout=30.0, http_client=http
        )


def test_non_stream_chat_continues_the_callers_trace(traced_client, receiver, sim):
    header, trace_id, parent_id = traceparent()
    completion = traced_client.chat.completions.create(
        model="demo/claude-sonnet",
        messages=[{"role": "user", "content": f"Hello there {PROMPT_MARKER}"}],
        max_tokens=50,
        temperature=0.5,
        top_p=0.75,
        extra_headers={"traceparent": header, "tracestate": "vendor=opaque"},
    )
    server, clients = by_kind(receiver.trace(trace_id, 2))

    assert server.name == "chat demo/claude-sonnet"
    assert server.parent_span_id == parent_id
    assert server.trace_state == "vendor=opaque"
    assert server.status.code == Status.STATUS_CODE_UNSET
    a = attributes(server.attributes)
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.provider.name"] == "aws.bedrock"
    assert a["gen_ai.system"] == "aws.bedrock"
    assert a["gen_ai.request.model"] == "demo/claude-sonnet"
    assert a["gen_ai.response.model"] == CLAUDE_ID
    assert a["gen_ai.request.max_tokens"] == 50
    assert a["gen_ai.request.temperature"] == 0.5
    assert a["gen_ai.request.top_p"] == 0.75
    assert a["gen_ai.response.id"] == completion.id
    assert a["gen_ai.response.finish_reasons"] == [completion.choices[0].finish_reason]
    assert a["gen_ai.usage.input_tokens"] == completion.usage.prompt_tokens > 0
    assert a["gen_ai.usage.output_tokens"] == completion.usage.completion_tokens > 0
    assert a["http.response.status_code"] == 200
    assert a["bedrock_gateway.account"] == "demo"
    assert a["bedrock_gateway.served_model"] == "demo/claude-sonnet"
    assert a["bedrock_gateway.team"] == "quickstart"
    assert a["bedrock_gateway.cost_usd"] > 0
    assert "error.type" not in a and "gen_ai.response.time_to_first_chunk" not in a

    [client] = clients
    assert client.name == f"chat {CLAUDE_ID}"
    assert client.parent_span_id == server.span_id
    assert server.start_time_unix_nano <= client.start_time_unix_nano
    assert client.end_time_unix_nano <= server.end_time_unix_nano
    c = attributes(client.attributes)
    assert c["gen_ai.request.model"] == CLAUDE_ID
    assert c["gen_ai.provider.name"] == "aws.bedrock"
    assert (c["rpc.system"], c["rpc.service"], c["rpc.method"]) == ("aws-api", "BedrockRuntime", "Converse")
    sim_url = httpx.URL(sim.url)
    assert (c["server.address"], c["server.port"]) == (sim_url.host, sim_url.port)
    assert c["cloud.region"] == "us-west-2"
    assert c["http.response.status_code"] == 200
    assert len(c["aws.request_id"]) == 36  # the sim's x-amzn-RequestId, a UUID

    resource = next(r for r, _, s in receiver.spans() if s.span_id == server.span_id)
    assert resource["service.name"] == "bgw-e2e"
    assert resource["deployment.environment.name"] == "e2e"
    assert receiver.content_types and set(receiver.content_types) == {"application/x-protobuf"}


def test_stream_chat_span_ends_with_the_stream(traced_client, receiver):
    header, trace_id, parent_id = traceparent()
    stream = traced_client.chat.completions.create(
        model="demo/claude-sonnet",
        messages=[{"role": "user", "content": f"Tell me a story {PROMPT_MARKER}"}],
        stream=True,
        stream_options={"include_usage": True},
        extra_headers={"traceparent": header},
    )
    chunks = list(stream)
    usage = chunks[-1].usage
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    server, clients = by_kind(receiver.trace(trace_id, 2))

    assert server.name == "chat demo/claude-sonnet"
    assert server.parent_span_id == parent_id
    a = attributes(server.attributes)
    assert a["gen_ai.usage.input_tokens"] == usage.prompt_tokens > 0
    assert a["gen_ai.usage.output_tokens"] == usage.completion_tokens > 0
    assert a["gen_ai.response.finish_reasons"] == finish == ["stop"]
    assert a["gen_ai.response.id"] == chunks[0].id
    assert a["http.response.status_code"] == 200
    ttft = a["gen_ai.response.time_to_first_chunk"]
    assert 0 < ttft <= (server.end_time_unix_nano - server.start_time_unix_nano) / 1e9
    [event] = [e for e in server.events if e.name == "gen_ai.first_chunk"]
    assert server.start_time_unix_nano < event.time_unix_nano <= server.end_time_unix_nano

    [client] = clients
    assert client.parent_span_id == server.span_id
    assert attributes(client.attributes)["rpc.method"] == "ConverseStream"
    # The server span covers the whole stream, which outlives the upstream call's headers.
    assert client.end_time_unix_nano <= server.end_time_unix_nano


def test_embeddings_start_a_new_trace_with_one_client_span_per_call(traced, receiver):
    with _sync_http_client(base_url=traced.url) as http:
        r = http.post(
            "/v1/embeddings",
            headers={"Authorization": f"Bearer {QUICKSTART_KEY}"},
            json={"model": "demo/titan-embed-v2", "input": [f"first {PROMPT_MARKER}", "second"]},
        )
    assert r.status_code == 200, r.text
    usage = r.json()["usage"]

    def ours(span: Span) -> bool:
        return span.kind == Span.SPAN_KIND_SERVER and span.name == "embeddings demo/titan-embed-v2"

    deadline = time.monotonic() + 15
    while not (servers := [s for _, _, s in receiver.spans() if ours(s)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    [server] = servers
    assert server.parent_span_id == b""  # no traceparent: a new root
    server, clients = by_kind(receiver.trace(server.trace_id, 3))
    a = attributes(server.attributes)
    assert a["gen_ai.operation.name"] == "embeddings"
    assert a["gen_ai.request.model"] == "demo/titan-embed-v2"
    assert a["gen_ai.response.model"] == TITAN_ID
    assert a["gen_ai.usage.input_tokens"] == usage["prompt_tokens"] > 0
    assert a["gen_ai.usage.output_tokens"] == 0
    assert len(clients) == 2  # Titan: one InvokeModel call per input
    for client in clients:
        assert client.name == f"embeddings {TITAN_ID}"
        assert client.parent_span_id == server.span_id
        assert attributes(client.attributes)["rpc.method"] == "InvokeModel"


def test_upstream_error_marks_both_spans(traced_client, receiver):
    header, trace_id, _ = traceparent()
    with pytest.raises(openai.RateLimitError) as ei:
        traced_client.chat.completions.create(
            model="demo/claude-sonnet",
            messages=[{"role": "user", "content": f"please fail [[sim:error=ThrottlingException]] {PROMPT_MARKER}"}],
            extra_headers={"traceparent": header},
        )
    err = error_body(ei.value)
    # The gateway retries throttling (3 attempts by default): one CLIENT span per attempt.
    server, clients = by_kind(receiver.trace(trace_id, 4))
    a = attributes(server.attributes)
    assert a["http.response.status_code"] == 429
    assert a["error.type"] == (err["code"] or err["type"])
    # 4xx is the caller's answer, not a gateway fault: the server span's status stays unset.
    assert server.status.code == Status.STATUS_CODE_UNSET
    assert len(clients) == 3
    for client in clients:
        c = attributes(client.attributes)
        assert c["error.type"] == "ThrottlingException"
        assert c["http.response.status_code"] == 429
        assert len(c["aws.request_id"]) == 36
        assert client.status.code == Status.STATUS_CODE_ERROR


def test_a_stream_refused_in_its_first_frame_marks_that_attempts_span(traced_client, receiver):
    header, trace_id, _ = traceparent()
    # HTTP 200, then a throttlingException as the first frame, twice; the third attempt streams.
    # The trace id makes the body unique, so `times` counts this test's calls only.
    text = f"one two [[sim:first-frame=throttlingException]][[sim:times=2]] {trace_id.hex()} {PROMPT_MARKER}"
    stream = traced_client.chat.completions.create(
        model="demo/claude-sonnet",
        messages=[{"role": "user", "content": text}],
        stream=True,
        extra_headers={"traceparent": header},
    )
    assert [c.choices[0].finish_reason for c in stream if c.choices and c.choices[0].finish_reason] == ["stop"]
    server, clients = by_kind(receiver.trace(trace_id, 4))
    assert server.status.code == Status.STATUS_CODE_UNSET
    assert attributes(server.attributes)["http.response.status_code"] == 200
    clients.sort(key=lambda c: c.start_time_unix_nano)
    assert len(clients) == 3
    for refused in clients[:2]:
        c = attributes(refused.attributes)
        assert c["rpc.method"] == "ConverseStream"
        assert c["http.response.status_code"] == 200
        assert c["error.type"] == "ThrottlingException"
        assert refused.status.code == Status.STATUS_CODE_ERROR
        assert refused.status.message.startswith("Bedrock is rate limiting requests to model `demo/claude-sonnet`")
    answered = attributes(clients[2].attributes)
    assert answered["http.response.status_code"] == 200 and "error.type" not in answered
    assert clients[2].status.code == Status.STATUS_CODE_UNSET


def test_image_generation_is_a_generate_content_span(traced_client, receiver):
    header, trace_id, parent_id = traceparent()
    r = traced_client.images.generate(
        model="demo/sd35", prompt=f"a fox {PROMPT_MARKER}", n=2, extra_headers={"traceparent": header}
    )
    assert len(r.data) == 2
    server, clients = by_kind(receiver.trace(trace_id, 3))
    assert (server.name, server.parent_span_id) == ("generate_content demo/sd35", parent_id)
    a = attributes(server.attributes)
    assert a["gen_ai.operation.name"] == "generate_content"
    assert a["bedrock_gateway.images"] == 2
    assert a["http.response.status_code"] == 200
    assert len(clients) == 2  # Stability: one InvokeModel call per image
    for client in clients:
        assert client.name == "generate_content stability.sd3-5-large-v1:0"
        assert client.parent_span_id == server.span_id


def test_bad_request_before_the_model_is_known_is_one_server_span(traced, receiver):
    header, trace_id, parent_id = traceparent()
    with _sync_http_client(base_url=traced.url) as http:
        r = http.post(
            "/v1/chat/completions",
            headers={"Authorization": f"Bearer {QUICKSTART_KEY}", "traceparent": header},
            content=b"{not json",
        )
    assert r.status_code == 400
    [server] = receiver.trace(trace_id, 1)
    assert (server.name, server.kind, server.parent_span_id) == ("chat", Span.SPAN_KIND_SERVER, parent_id)
    a = attributes(server.attributes)
    assert a["http.response.status_code"] == 400
    assert a["error.type"] == (r.json()["error"]["code"] or r.json()["error"]["type"])


def test_no_secret_or_prompt_is_exported(traced_client, receiver, traced):
    # Runs last in this module: everything above has been exported by now.
    header, trace_id, _ = traceparent()
    traced_client.chat.completions.create(
        model="demo/nova-lite",
        messages=[{"role": "user", "content": PROMPT_MARKER}],
        extra_headers={"traceparent": header},
    )
    receiver.trace(trace_id, 2)
    with receiver.lock:
        raw = b"".join(receiver.bodies)
    # The search sees attribute strings (so a leaked secret would be found too).
    assert b"demo/claude-sonnet" in raw and b"chat demo/nova-lite" in raw
    for secret in SECRETS:
        assert secret.encode() not in raw, f"{secret!r} was exported"
    metrics = httpx.get(f"{traced.url}/metrics").text
    exported = next(line for line in metrics.splitlines() if line.startswith("bedrock_gateway_trace_spans_exported_total"))
    assert int(exported.split()[-1]) >= 12
    assert 'bedrock_gateway_trace_spans_dropped_total{reason="queue_full"} 0' in metrics
    assert 'bedrock_gateway_trace_spans_dropped_total{reason="export_failed"} 0' in metrics


def metric(text: str, name: str) -> float:
    return float(next(line for line in text.splitlines() if line.startswith(name + " ") or line.startswith(name + "{")).split()[-1])


def test_a_stuck_collector_never_holds_up_requests(sim, logdir: Path, tmp_path: Path):
    # A collector that takes connections and never answers, and a queue of one span.
    stuck = socket.socket()
    stuck.bind(("127.0.0.1", 0))
    stuck.listen(16)
    manifests = write_manifests(tmp_path / "manifests", sim.url)
    env = {
        **os.environ,
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"http://127.0.0.1:{stuck.getsockname()[1]}/v1/traces",
        "OTEL_BSP_MAX_QUEUE_SIZE": "1",
        "OTEL_BSP_SCHEDULE_DELAY": "50",
    }
    gw = start_gateway_proc(manifests, logdir, name="proxy-stuck-collector", extra_args=["--otel-traces"], env=env)
    try:
        with _sync_http_client() as http:
            client = openai.OpenAI(
                base_url=f"{gw.url}/v1", api_key=QUICKSTART_KEY, max_retries=0, timeout=5.0, http_client=http
            )
            for _ in range(3):
                answer = client.chat.completions.create(model="demo/nova-lite", messages=[{"role": "user", "content": "hi"}])
                assert answer.choices[0].message.content
        metrics = httpx.get(f"{gw.url}/metrics").text
        # Six spans: one is being exported (forever), one waits in the queue, the rest are dropped.
        assert metric(metrics, 'bedrock_gateway_trace_spans_dropped_total{reason="queue_full"}') >= 4
        assert metric(metrics, "bedrock_gateway_trace_spans_exported_total") == 0
    finally:
        gw.proc.stop()
        stuck.close()


def test_traces_are_off_by_default(gateway):
    metrics = httpx.get(f"{gateway.url}/metrics").text
    assert "bedrock_gateway_trace_spans" not in metrics
