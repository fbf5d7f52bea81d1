"""Retries, fallbacks, timeouts and cancellation as the openai SDK sees them (its own retries off).

Before the first byte, a Bedrock failure the gateway could not retry away is an HTTP error the SDK
raises as its status class; after a stream started, it is an `error` SSE event (no `[DONE]`), which
the SDK raises as `openai.APIError` from the iteration.
"""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from conftest import start_gateway_proc, write_manifests
from e2e_helpers import assembled, converse_calls, error_body, metric_value

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
