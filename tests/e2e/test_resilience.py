"""Retries, fallbacks, timeouts and cancellation as the openai SDK sees them (its own retries off).

Before the first byte (an exception as a stream's first frame included), a Bedrock failure the
gateway could not retry or fall back away is an HTTP error the SDK raises as its status class; after a stream started, it is an `error` SSE event (no `[DONE]`), which
the SDK raises as `openai.APIError` from the iteration.
"""

from __future__ import annotations

import socket
import time

import httpx
import openai
import pytest

from conftest import start_gateway_proc, write_manifests
from e2e_helpers import assembled, converse_calls, error_body, finish_reasons, metric_value

FALLBACKS = """\
apiVersion: bedrockgateway.io/v1alpha1
kind: BedrockModel
metadata: {name: nova-ha, namespace: ai-gateway}
spec:
  accountRef: demo
  modelId: amazon.nova-lite-v1:0
  region: us-east-1
  fallbacks: [{region: us-west-2}, {model: claude-sonnet}]
---
apiVersion: bedrockgateway.io/v1alpha1
kind: BedrockModel
metadata: {name: nova-quick, namespace: ai-gateway}
spec: {accountRef: demo, modelId: amazon.nova-pro-v1:0, timeouts: {firstByteMs: 300}}
---
apiVersion: bedrockgateway.io/v1alpha1
kind: BedrockModel
metadata: {name: nova-quick-ha, namespace: ai-gateway}
spec: {accountRef: demo, modelId: amazon.nova-pro-v1:0, timeouts: {firstByteMs: 300}, fallbacks: [{model: nova-lite}]}
"""

# An account whose endpoint never completes a TCP handshake (see `blackhole`).
STUCK = """\
apiVersion: bedrockgateway.io/v1alpha1
kind: BedrockAccount
metadata: {{name: stuck, namespace: ai-gateway}}
spec:
  defaultRegion: us-east-1
  auth: {{accessKey: {{secretRef: {{name: aws-keys}}}}}}
  endpoints: {{runtime: '{url}', control: '{url}'}}
---
apiVersion: bedrockgateway.io/v1alpha1
kind: BedrockModel
metadata: {{name: nova-stuck, namespace: ai-gateway}}
spec: {{accountRef: stuck, modelId: amazon.nova-lite-v1:0, fallbacks: [{{model: nova-lite}}]}}
---
apiVersion: bedrockgateway.io/v1alpha1
kind: AccessPolicy
metadata: {{name: stuck, namespace: ai-gateway}}
spec:
  subjects: [{{team: quickstart}}]
  models: ['stuck/*']
"""

SERVED_BY = "x-bedrock-gateway-served-by"


@pytest.fixture(scope="module")
def resilient(sim, logdir):
    """A gateway with fallback models, fast backoff and a short stream idle timeout."""
    manifests = write_manifests(logdir / "manifests-resilience", sim.url)
    (manifests / "test-fallbacks.yaml").write_text(FALLBACKS)
    args = ["--retry-backoff-base-ms", "5", "--retry-backoff-max-ms", "20", "--stream-idle-timeout-ms", "500"]
    gw = start_gateway_proc(manifests, logdir, name="bedrock-gateway-proxy-resilience", extra_args=args)
    yield gw
    gw.proc.stop()


@pytest.fixture
def rc(client_for, resilient, sim):
    sim.clear()
    return client_for(gw=resilient)


def ask(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def regions(calls) -> list[str]:
    out = []
    for call in calls:
        auth = next(v for k, v in call["headers"] if k == "authorization")
        out.append(auth.split("Credential=")[1].split("/")[2])
    return out


def cancelled(sim) -> int:
    return httpx.get(f"{sim.url}/_sim/cancelled", timeout=5).json()["cancelled"]


def wait_cancelled(sim, at_least: int) -> int:
    deadline = time.monotonic() + 5
    while cancelled(sim) < at_least and time.monotonic() < deadline:
        time.sleep(0.05)
    return cancelled(sim)


def test_throttling_is_retried_and_the_answer_arrives(rc, sim, resilient):
    raw = rc.chat.completions.with_raw_response.create(
        model="demo/nova-lite", messages=ask("hi [[sim:error=ThrottlingException]][[sim:times=2]]")
    )
    assert raw.headers[SERVED_BY] == "demo/nova-lite; region=us-east-1"
    assert raw.parse().choices[0].message.content == "Simulated reply to: hi"
    calls = converse_calls(sim)
    assert len(calls) == 3
    assert len({c["body_base64"] for c in calls}) == 1, "every attempt sends the same bytes"
    metrics = httpx.get(f"{resilient.url}/metrics").text
    assert metric_value(metrics, "bedrock_gateway_upstream_retries_total", model="demo/nova-lite", reason="throttled") >= 2


def test_exhausted_retries_raise_the_aws_reason(rc, sim):
    with pytest.raises(openai.RateLimitError) as ei:
        rc.chat.completions.create(model="demo/nova-lite", messages=ask("hi [[sim:error=ThrottlingException]]"))
    assert ei.value.status_code == 429
    assert error_body(ei.value) == {
        "message": "Bedrock is rate limiting requests to model `demo/nova-lite`: Too many requests, please wait "
        "before trying again.",
        "type": "rate_limit_error",
        "param": None,
        "code": "rate_limit_exceeded",
    }
    assert len(converse_calls(sim)) == 3


@pytest.mark.parametrize("stream", [False, True], ids=["converse", "converse-stream"])
def test_fallbacks_answer_in_order(rc, sim, stream):
    text = "hi [[sim:error=ServiceUnavailableException]][[sim:fault-region=us-east-1]]"
    raw = rc.chat.completions.with_raw_response.create(model="demo/nova-ha", messages=ask(text), stream=stream)
    assert raw.headers[SERVED_BY] == "demo/nova-ha; region=us-west-2"
    if stream:
        assert assembled(list(raw.parse())) == "Simulated reply to: hi"
    else:
        assert raw.parse().model == "demo/nova-ha"
    assert regions(converse_calls(sim)) == ["us-east-1"] * 3 + ["us-west-2"]

    sim.clear()
    text = "hi [[sim:error=ServiceUnavailableException]][[sim:fault-model=amazon.nova-lite-v1:0]]"
    raw = rc.chat.completions.with_raw_response.create(model="demo/nova-ha", messages=ask(text), stream=stream)
    assert raw.headers[SERVED_BY] == "demo/claude-sonnet; region=us-west-2"
    paths = [c["path"].split("/")[2] for c in converse_calls(sim)]
    assert paths == ["amazon.nova-lite-v1%3A0"] * 6 + ["us.anthropic.claude-3-7-sonnet-20250219-v1%3A0"]


@pytest.mark.parametrize("stream", [False, True], ids=["converse", "converse-stream"])
def test_a_slow_first_byte_is_a_504(rc, sim, stream):
    with pytest.raises(openai.InternalServerError) as ei:
        rc.chat.completions.create(model="demo/nova-quick", messages=ask("hi [[sim:latency=3000]]"), stream=stream)
    assert ei.value.status_code == 504
    assert error_body(ei.value) == {
        "message": "Bedrock did not start answering for model `demo/nova-quick` within 300 ms.",
        "type": "server_error",
        "param": None,
        "code": "timeout",
    }
    assert len(converse_calls(sim)) == 1


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ("gap=3000", "Bedrock stopped sending the answer for model `demo/nova-lite`: nothing arrived for 500 ms."),
        ("bad-crc", "Bedrock sent a malformed event stream."),
        ("truncated", "The Bedrock stream ended before the answer was complete."),
        ("reset", "The Bedrock stream broke off before the answer was complete."),
    ],
)
def test_a_broken_stream_raises_from_the_iteration(rc, sim, fault, message):
    stream = rc.chat.completions.create(
        model="demo/nova-lite", messages=ask(f"one two three [[sim:{fault}]]"), stream=True
    )
    got = []
    with pytest.raises(openai.APIError) as ei:
        for chunk in stream:
            got.append(chunk)
    assert ei.value.message == message
    assert not [c for c in got if c.choices and c.choices[0].finish_reason]
    assert len(converse_calls(sim)) == 1, "a started stream is never retried"


def test_closing_a_stream_cancels_the_bedrock_call(rc, sim):
    before = cancelled(sim)
    stream = rc.chat.completions.create(
        model="demo/nova-lite", messages=ask("[[sim:reply=a b c d e f g h]] [[sim:gap=200]]"), stream=True
    )
    first = next(iter(stream))
    assert first.choices[0].delta.role == "assistant"
    stream.close()
    assert wait_cancelled(sim, before + 1) == before + 1


def metrics_of(gw) -> str:
    return httpx.get(f"{gw.url}/metrics", timeout=5).text


def test_a_throttling_first_frame_is_retried_before_the_stream_starts(rc, sim, resilient):
    before = metric_value(
        metrics_of(resilient), "bedrock_gateway_upstream_retries_total", model="demo/nova-lite", reason="throttled"
    )
    raw = rc.chat.completions.with_raw_response.create(
        model="demo/nova-lite",
        messages=ask("one two [[sim:first-frame=throttlingException]][[sim:times=2]]"),
        stream=True,
    )
    assert raw.status_code == 200
    assert raw.headers[SERVED_BY] == "demo/nova-lite; region=us-east-1"
    chunks = list(raw.parse())
    assert chunks[0].choices[0].delta.role == "assistant"
    assert assembled(chunks) == "Simulated reply to: one two"
    assert finish_reasons(chunks) == ["stop"]
    calls = converse_calls(sim, "converse-stream")
    assert len(calls) == 3
    assert len({c["body_base64"] for c in calls}) == 1, "every attempt sends the same bytes"
    after = metric_value(
        metrics_of(resilient), "bedrock_gateway_upstream_retries_total", model="demo/nova-lite", reason="throttled"
    )
    assert after - before == 2


@pytest.mark.parametrize(
    ("exception", "error", "calls", "body"),
    [
        (
            "throttlingException",
            openai.RateLimitError,
            3,
            {
                "message": "Bedrock is rate limiting requests to model `demo/nova-lite`: Too many requests, please "
                "wait before trying again.",
                "type": "rate_limit_error",
                "param": None,
                "code": "rate_limit_exceeded",
            },
        ),
        (
            "serviceUnavailableException",
            openai.InternalServerError,
            3,
            {
                "message": "Model `demo/nova-lite` is temporarily unavailable on Bedrock: Bedrock is unable to "
                "process your request.",
                "type": "server_error",
                "param": None,
                "code": "service_unavailable",
            },
        ),
        (
            "validationException",
            openai.BadRequestError,
            1,
            {
                "message": "The model returned a validation error while streaming the response.",
                "type": "invalid_request_error",
                "param": None,
                "code": None,
            },
        ),
        # No frame at all: not retried, and still an error before any byte of a stream.
        (
            "garbage",
            openai.InternalServerError,
            1,
            {
                "message": "Bedrock sent a malformed event stream.",
                "type": "server_error",
                "param": None,
                "code": "upstream_error",
            },
        ),
    ],
)
def test_a_first_frame_exception_is_an_http_error(rc, sim, exception, error, calls, body):
    with pytest.raises(error) as ei:
        rc.chat.completions.create(
            model="demo/nova-lite", messages=ask(f"hi [[sim:first-frame={exception}]]"), stream=True
        )
    assert error_body(ei.value) == body
    assert ei.value.response.headers["content-type"] == "application/json"
    assert len(converse_calls(sim, "converse-stream")) == calls


def test_a_refused_stream_falls_back_and_the_answering_model_is_billed(rc, sim, resilient):
    def usage_of(model: str) -> tuple[float, float]:
        text = metrics_of(resilient)
        return (
            metric_value(text, "bedrock_gateway_tokens_total", model=model, type="input"),
            metric_value(text, "bedrock_gateway_cost_usd_total", model=model),
        )

    claude_before, nova_before = usage_of("demo/claude-sonnet"), usage_of("demo/nova-ha")
    text = "hi [[sim:first-frame=throttlingException]][[sim:fault-model=amazon.nova-lite-v1:0]]"
    raw = rc.chat.completions.with_raw_response.create(
        model="demo/nova-ha", messages=ask(text), stream=True, stream_options={"include_usage": True}
    )
    assert raw.headers[SERVED_BY] == "demo/claude-sonnet; region=us-west-2"
    chunks = list(raw.parse())
    assert assembled(chunks) == "Simulated reply to: hi"
    assert {c.model for c in chunks} == {"demo/nova-ha"}, "the caller's model name stays"
    usage = chunks[-1].usage
    assert usage is not None and usage.prompt_tokens > 0
    paths = [c["path"].split("/")[2] for c in converse_calls(sim, "converse-stream")]
    assert paths == ["amazon.nova-lite-v1%3A0"] * 6 + ["us.anthropic.claude-3-7-sonnet-20250219-v1%3A0"]
    claude_after, nova_after = usage_of("demo/claude-sonnet"), usage_of("demo/nova-ha")
    assert claude_after[0] - claude_before[0] == usage.prompt_tokens
    assert claude_after[1] > claude_before[1], "the answering model's cost is counted"
    assert nova_after == nova_before, "nothing is billed to the model that refused"
    fallbacks = metric_value(
        metrics_of(resilient),
        "bedrock_gateway_fallbacks_total",
        model="demo/nova-ha",
        served_by="demo/claude-sonnet",
        reason="throttled",
    )
    assert fallbacks >= 1


@pytest.mark.parametrize("stream", [False, True], ids=["converse", "converse-stream"])
def test_a_slow_first_byte_moves_on_to_the_fallback(rc, sim, resilient, stream):
    before = metric_value(
        metrics_of(resilient), "bedrock_gateway_fallbacks_total", model="demo/nova-quick-ha", reason="first_byte_timeout"
    )
    text = "hi [[sim:latency=3000]][[sim:fault-model=amazon.nova-pro-v1:0]]"
    raw = rc.chat.completions.with_raw_response.create(model="demo/nova-quick-ha", messages=ask(text), stream=stream)
    assert raw.status_code == 200
    assert raw.headers[SERVED_BY] == "demo/nova-lite; region=us-east-1"
    if stream:
        assert assembled(list(raw.parse())) == "Simulated reply to: hi"
    else:
        assert raw.parse().choices[0].message.content == "Simulated reply to: hi"
    paths = [c["path"].split("/")[2] for c in converse_calls(sim)]
    assert paths == ["amazon.nova-pro-v1%3A0", "amazon.nova-lite-v1%3A0"], "the slow model is not retried"
    after = metric_value(
        metrics_of(resilient),
        "bedrock_gateway_fallbacks_total",
        model="demo/nova-quick-ha",
        served_by="demo/nova-lite",
        reason="first_byte_timeout",
    )
    assert after - before == 1


@pytest.fixture
def blackhole():
    """A loopback listener whose accept queue is full: a connect to it hangs (Linux drops the SYN)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    queued = socket.create_connection(listener.getsockname(), timeout=2)
    host, port = listener.getsockname()
    yield f"http://{host}:{port}"
    queued.close()
    listener.close()


def test_a_connect_timeout_is_retried_then_falls_back(client_for, sim, logdir, tmp_path, blackhole):
    sim.clear()
    manifests = write_manifests(tmp_path / "manifests-stuck", sim.url)
    (manifests / "test-stuck.yaml").write_text(STUCK.format(url=blackhole))
    args = ["--retry-backoff-base-ms", "5", "--retry-backoff-max-ms", "20", "--connect-timeout-ms", "200"]
    gw = start_gateway_proc(manifests, logdir, name="bedrock-gateway-proxy-stuck", extra_args=args)
    try:
        client = client_for(gw=gw)
        for stream in (False, True):
            raw = client.chat.completions.with_raw_response.create(
                model="stuck/nova-stuck", messages=ask("hi"), stream=stream
            )
            assert raw.headers[SERVED_BY] == "demo/nova-lite; region=us-east-1"
            if stream:
                assert assembled(list(raw.parse())) == "Simulated reply to: hi"
            else:
                assert raw.parse().choices[0].message.content == "Simulated reply to: hi"
        assert len(converse_calls(sim)) == 2, "only the fallback reached Bedrock"
        text = metrics_of(gw)
        assert (
            metric_value(text, "bedrock_gateway_upstream_retries_total", model="stuck/nova-stuck", reason="connect_timeout")
            == 4
        )
        assert (
            metric_value(
                text,
                "bedrock_gateway_fallbacks_total",
                model="stuck/nova-stuck",
                served_by="demo/nova-lite",
                reason="connect_timeout",
            )
            == 2
        )
    finally:
        gw.proc.stop()
