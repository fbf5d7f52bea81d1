"""Bedrock failures as an OpenAI client sees them: HTTP errors and broken streams."""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from contracts import SIM_ACCESS_KEY_ID, SIM_SECRET_ACCESS_KEY
from e2e_helpers import assembled, converse_calls, error_body

# Bedrock exception -> (HTTP status, openai exception class, OpenAI error type, code or None for "any")
# ServiceQuotaExceeded is a rate limit to the caller; ModelTimeout is a gateway timeout.
BEDROCK_ERRORS = {
    "ValidationException": (400, openai.BadRequestError, "invalid_request_error", None),
    "AccessDeniedException": (403, openai.PermissionDeniedError, "permission_error", None),
    "ResourceNotFoundException": (404, openai.NotFoundError, "invalid_request_error", "model_not_found"),
    "ThrottlingException": (429, openai.RateLimitError, "rate_limit_error", None),
    "ServiceQuotaExceededException": (429, openai.RateLimitError, "rate_limit_error", None),
    "ModelNotReadyException": (503, openai.InternalServerError, "server_error", None),
    "ServiceUnavailableException": (503, openai.InternalServerError, "server_error", None),
    "ModelTimeoutException": (504, openai.InternalServerError, "server_error", None),
    "ModelErrorException": (502, openai.InternalServerError, "server_error", None),
    "InternalServerException": (502, openai.InternalServerError, "server_error", None),
}

# Retried by the gateway (--retry-max-attempts, default 3) before it answers.
GATEWAY_RETRIED = {
    "ThrottlingException",
    "ModelNotReadyException",
    "ServiceUnavailableException",
    "InternalServerException",
}

STREAM_EXCEPTIONS = [
    "modelStreamErrorException",
    "throttlingException",
    "internalServerException",
    "validationException",
    "serviceUnavailableException",
]


def assert_no_credentials(err) -> None:
    for secret in (SIM_ACCESS_KEY_ID, SIM_SECRET_ACCESS_KEY):
        assert secret not in str(err)


@pytest.mark.parametrize("exception", sorted(BEDROCK_ERRORS))
@pytest.mark.parametrize("stream", [False, True], ids=["converse", "converse-stream"])
def test_bedrock_error_is_mapped(client, sim, exception, stream):
    status, exc_cls, err_type, code = BEDROCK_ERRORS[exception]
    with pytest.raises(exc_cls) as ei:
        client.chat.completions.create(
            model="demo/claude-sonnet",
            messages=[{"role": "user", "content": f"please fail [[sim:error={exception}]]"}],
            stream=stream,
        )
    assert ei.value.status_code == status
    err = error_body(ei.value)
    assert err["type"] == err_type
    if code is not None:
        assert err["code"] == code
    assert err["message"]
    assert_no_credentials(err)
    # the SDK's retries are off: one attempt, or the gateway's 3 for throttling and unavailability
    assert len(converse_calls(sim)) == (3 if exception in GATEWAY_RETRIED else 1)


@pytest.mark.parametrize("exception", STREAM_EXCEPTIONS)
def test_exception_frame_mid_stream_raises(client, exception):
    stream = client.chat.completions.create(
        model="demo/nova-lite",
        messages=[{"role": "user", "content": f"break it [[sim:stream-error={exception}]]"}],
        stream=True,
    )
    got = []
    t0 = time.monotonic()
    with pytest.raises(openai.APIError) as ei:
        for chunk in stream:
            got.append(chunk)
    assert time.monotonic() - t0 < 10
    # the first delta arrived before the failure
    assert assembled(got) == "Simulated "
    assert not [c for c in got if c.choices and c.choices[0].finish_reason]
    assert ei.value.message
    assert_no_credentials(ei.value.message)


@pytest.mark.parametrize("fault", ["reset", "garbage"])
def test_broken_stream_raises_not_hangs(client, fault):
    stream = client.chat.completions.create(
        model="demo/claude-sonnet",
        messages=[{"role": "user", "content": f"break it [[sim:{fault}]]"}],
        stream=True,
    )
    got = []
    t0 = time.monotonic()
    with pytest.raises(openai.APIError):
        for chunk in stream:
            got.append(chunk)
    assert time.monotonic() - t0 < 10
    assert assembled(got) == "Simulated "
    assert not [c for c in got if c.choices and c.choices[0].finish_reason]


def test_async_stream_error_raises(async_client_for):
    import asyncio

    async def go():
        async with async_client_for() as c:
            s = await c.chat.completions.create(
                model="demo/nova-lite",
                messages=[{"role": "user", "content": "x [[sim:stream-error=modelStreamErrorException]]"}],
                stream=True,
            )
            return [chunk async for chunk in s]

    with pytest.raises(openai.APIError):
        asyncio.run(go())


def test_latency_does_not_break_requests(client):
    t0 = time.monotonic()
    r = client.chat.completions.create(
        model="demo/nova-lite", messages=[{"role": "user", "content": "slow [[sim:latency=400]]"}]
    )
    assert time.monotonic() - t0 >= 0.4
    assert r.choices[0].message.content == "Simulated reply to: slow"


def test_client_timeout_surfaces(client_for):
    c = client_for().with_options(timeout=httpx.Timeout(0.5))
    with pytest.raises(openai.APITimeoutError):
        c.chat.completions.create(model="demo/nova-lite", messages=[{"role": "user", "content": "[[sim:latency=3000]]"}])
