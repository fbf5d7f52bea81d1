"""Unit tests of the contract checkers themselves (no binaries needed).

Each checker must accept a known-good input and reject known-bad ones, so the
automatic checks on the e2e tests cannot pass silently.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
from unittest import mock

import httpx
import openai
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

import contracts
from awsmodel import AwsModel
from contracts import (
    SIM_ACCESS_KEY_ID,
    SIM_SECRET_ACCESS_KEY,
    SIM_SECRETS,
    AsyncValidatingTransport,
    OpenAIContract,
    ResponseLog,
    ValidatingTransport,
    check_control_response,
    check_sim_request,
    parse_sse,
    runtime_model,
)
from sigv4check import check_sigv4

PROFILE_ID = "us.anthropic.claude-3-7-sonnet-20250219-v1:0"
PROFILE_PATH = "/model/us.anthropic.claude-3-7-sonnet-20250219-v1%3A0/converse"
ARN = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123def456"
ARN_PATH = "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Aapplication-inference-profile%2Fabc123def456/converse-stream"

GOOD_BODY = {
    "messages": [{"role": "user", "content": [{"text": "hello"}]}],
    "system": [{"text": "be brief"}],
    "inferenceConfig": {"maxTokens": 16, "temperature": 0.5, "topP": 1, "stopSequences": ["END"]},
}


# ------------------------------------------------------------------ awsmodel
@pytest.fixture(scope="module")
def rt() -> AwsModel:
    return runtime_model()


def body(doc) -> bytes:
    return json.dumps(doc).encode()


def test_awsmodel_accepts_valid_converse(rt):
    op, errs = rt.validate_request("POST", PROFILE_PATH, [], body(GOOD_BODY))
    assert (op, errs) == ("Converse", [])


def test_awsmodel_accepts_valid_converse_stream_with_arn(rt):
    op, errs = rt.validate_request("POST", ARN_PATH, [], body(GOOD_BODY))
    assert (op, errs) == ("ConverseStream", [])


def test_awsmodel_finds_operation_and_raw_label(rt):
    op, labels = rt.find_operation("POST", ARN_PATH)
    assert op.name == "ConverseStream"
    assert labels == {"modelId": ARN_PATH.split("/")[2]}


@pytest.mark.parametrize(
    "mutate, needle",
    [
        (lambda b: b.update(modelId=PROFILE_ID), "unknown member 'modelId'"),
        (lambda b: b.update(temperature=0.5), "unknown member 'temperature'"),
        (lambda b: b["messages"][0].pop("role"), "required member 'role' missing"),
        (lambda b: b["messages"][0].update(role="tool"), "'tool' is not one of"),
        (lambda b: b["messages"][0]["content"][0].update(image={"format": "png"}), "exactly one member"),
        (lambda b: b["messages"][0].update(content=[{}]), "exactly one member"),
        (lambda b: b["messages"][0].update(content=[{"txt": "x"}]), "unknown member 'txt'"),
        (lambda b: b["inferenceConfig"].update(maxTokens=0), "below the minimum 1"),
        (lambda b: b["inferenceConfig"].update(maxTokens="16"), "expected integer"),
        (lambda b: b["inferenceConfig"].update(temperature=1.5), "above the maximum 1"),
        (lambda b: b["inferenceConfig"].update(topP=None), "null is not a valid"),
        (lambda b: b.update(system=[{"text": ""}]), "minimum is 1"),
        (lambda b: b.update(system="be brief"), "expected array"),
        (lambda b: b.update(additionalModelRequestFields={"anything": [1, {"x": None}]}), None),
        (lambda b: b.update(requestMetadata={"k": "bad\u00e9value"}), "does not match the pattern"),
        (
            lambda b: b["messages"][0]["content"].append({"image": {"format": "png", "source": {"bytes": "!!"}}}),
            "not valid base64",
        ),
    ],
)
def test_awsmodel_rejects_bad_bodies(rt, mutate, needle):
    doc = json.loads(json.dumps(GOOD_BODY))
    mutate(doc)
    _, errs = rt.validate_request("POST", PROFILE_PATH, [], body(doc))
    if needle is None:  # documents take any JSON
        assert errs == []
    else:
        assert any(needle in e for e in errs), errs


def test_awsmodel_rejects_non_json_and_unknown_operations(rt):
    assert rt.validate_request("POST", PROFILE_PATH, [], b"{not json")[1]
    # an unencoded "/" in the ARN makes the path match no operation
    _, errs = rt.validate_request("POST", f"/model/{ARN}/converse", [], body(GOOD_BODY))
    assert errs and "no operation" in errs[0]
    _, errs = rt.validate_request("GET", PROFILE_PATH, [], b"")
    assert errs and "no operation" in errs[0]


def test_awsmodel_checks_uri_label_after_decoding(rt):
    _, errs = rt.validate_request("POST", "/model/%20%20/converse", [], body(GOOD_BODY))
    assert any("does not match the pattern" in e for e in errs), errs
    long_id = "a" * 2049
    _, errs = rt.validate_request("POST", f"/model/{long_id}/converse", [], body(GOOD_BODY))
    assert any("maximum is 2048" in e for e in errs), errs


# ------------------------------------------------------------------ SigV4
def signed_record(path: str, payload: bytes, region: str = "us-west-2", sign_path: str | None = None, token=None):
    """Sign like a correct client would (botocore add_auth), as bedrock-sim would record it."""
    host = "127.0.0.1:9090"
    req = AWSRequest(
        method="POST",
        url=f"http://{host}{sign_path or path}",
        headers={"Content-Type": "application/json", "Host": host},
        data=payload,
    )
    fixed = dt.datetime(2026, 11, 25, 12, 0, 0)
    with mock.patch("botocore.auth.get_current_datetime", return_value=fixed):
        SigV4Auth(Credentials(SIM_ACCESS_KEY_ID, SIM_SECRET_ACCESS_KEY, token), "bedrock", region).add_auth(req)
    headers = [(k, v) for k, v in req.headers.items()]
    return {
        "method": "POST",
        "path": path,
        "headers": headers,
        "body_base64": base64.b64encode(payload).decode(),
    }


def rec_args(rec):
    return rec["method"], rec["path"], contracts.recorded_headers(rec), contracts.recorded_body(rec)


def test_sigv4_accepts_botocore_signature():
    rec = signed_record(PROFILE_PATH, body(GOOD_BODY))
    res = check_sigv4(*rec_args(rec), SIM_SECRETS)
    assert res.ok, res.explain()
    assert (res.region, res.service) == ("us-west-2", "bedrock")
    # the canonical path is the wire path encoded a second time
    assert res.canonical_request.split("\n")[1] == "/model/us.anthropic.claude-3-7-sonnet-20250219-v1%253A0/converse"


def test_sigv4_accepts_session_token():
    rec = signed_record(ARN_PATH, body(GOOD_BODY), region="us-east-1", token="session-token-123")
    assert any(k.lower() == "x-amz-security-token" for k, _ in rec["headers"])
    res = check_sigv4(*rec_args(rec), SIM_SECRETS)
    assert res.ok, res.explain()


def test_sigv4_rejects_tampered_signature():
    rec = signed_record(PROFILE_PATH, body(GOOD_BODY))
    headers = []
    for k, v in rec["headers"]:
        if k.lower() == "authorization":
            sig = v[-64:]
            v = v[:-64] + ("0" if sig[0] != "0" else "1") + sig[1:]
        headers.append((k, v))
    res = check_sigv4(rec["method"], rec["path"], headers, contracts.recorded_body(rec), SIM_SECRETS)
    assert not res.ok
    assert "signature mismatch" in res.explain()
    assert "%253A0" in res.explain()  # the canonical request is printed


def test_sigv4_rejects_tampered_body_and_header():
    rec = signed_record(PROFILE_PATH, body(GOOD_BODY))
    m, p, h, b = rec_args(rec)
    assert not check_sigv4(m, p, h, b + b" ", SIM_SECRETS).ok
    h2 = [(k, "text/plain" if k.lower() == "content-type" else v) for k, v in h]
    assert not check_sigv4(m, p, h2, b, SIM_SECRETS).ok


def test_sigv4_rejects_single_encoded_canonical_path():
    # A signer that forgets the second encoding signs "/model/...%3A0" as-is;
    # simulate it by signing the decoded path while sending the encoded one.
    wrong = signed_record(PROFILE_PATH, body(GOOD_BODY), sign_path="/model/" + PROFILE_ID + "/converse")
    res = check_sigv4(*rec_args(wrong), SIM_SECRETS)
    assert not res.ok and "signature mismatch" in res.explain()


def test_sigv4_rejects_wrong_service_unknown_key_and_missing_header():
    rec = signed_record(PROFILE_PATH, body(GOOD_BODY))
    m, p, h, b = rec_args(rec)
    h_service = [(k, v.replace("/bedrock/", "/bedrock-runtime/") if k.lower() == "authorization" else v) for k, v in h]
    assert "service is 'bedrock-runtime'" in check_sigv4(m, p, h_service, b, SIM_SECRETS).explain()
    h_key = [(k, v.replace(SIM_ACCESS_KEY_ID, "AKIAOTHER") if k.lower() == "authorization" else v) for k, v in h]
    assert "unknown access key" in check_sigv4(m, p, h_key, b, SIM_SECRETS).explain()
    h_nodate = [(k, v) for k, v in h if k.lower() != "x-amz-date"]
    assert not check_sigv4(m, p, h_nodate, b, SIM_SECRETS).ok
    h_noauth = [(k, v) for k, v in h if k.lower() != "authorization"]
    assert not check_sigv4(m, p, h_noauth, b, SIM_SECRETS).ok


def test_check_sim_request_combines_model_and_signature():
    good = signed_record(PROFILE_PATH, body(GOOD_BODY))
    assert check_sim_request(good) == ("Converse", [])
    bad_doc = dict(GOOD_BODY, messages=[{"role": "user", "content": "hello"}])
    bad = signed_record(PROFILE_PATH, body(bad_doc))
    op, errs = check_sim_request(bad)
    assert op == "Converse" and any("expected array" in e for e in errs), errs
    assert contracts.sigv4_region(good) == "us-west-2"


JSON = {"content-type": "application/json"}
GOOD_JOB = {
    "jobArn": "arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/abcdef123456",
    "jobName": "nightly",
    "modelId": "amazon.titan-embed-text-v2:0",
    "roleArn": "arn:aws:iam::123456789012:role/Batch",
    "status": "Completed",
    "submitTime": "2026-01-01T00:00:00.000Z",
    "inputDataConfig": {"s3InputDataConfig": {"s3Uri": "s3://bucket/in.jsonl"}},
    "outputDataConfig": {"s3OutputDataConfig": {"s3Uri": "s3://bucket/out/"}},
    "totalRecordCount": 100,
}


def test_check_control_response_accepts_good_answers():
    assert check_control_response("GetModelInvocationJob", 200, JSON, body(GOOD_JOB)) == []
    assert check_control_response("CreateModelInvocationJob", 200, JSON, body({"jobArn": GOOD_JOB["jobArn"]})) == []
    assert check_control_response("StopModelInvocationJob", 200, JSON, b"{}") == []
    error = {**JSON, "x-amzn-ErrorType": "ConflictException"}
    assert check_control_response("CreateModelInvocationJob", 409, error, body({"message": "taken"})) == []


@pytest.mark.parametrize(
    "op, status, headers, doc, needle",
    [
        ("GetModelInvocationJob", 200, JSON, dict(GOOD_JOB, status="Done"), "Done"),
        ("GetModelInvocationJob", 200, JSON, {k: v for k, v in GOOD_JOB.items() if k != "roleArn"}, "roleArn"),
        ("GetModelInvocationJob", 200, JSON, dict(GOOD_JOB, totalRecordCount=-1), "totalRecordCount"),
        ("GetModelInvocationJob", 200, JSON, dict(GOOD_JOB, jobArn="arn:x"), "jobArn"),
        ("CreateModelInvocationJob", 200, JSON, {"jobArn": GOOD_JOB["jobArn"], "status": "Submitted"}, "status"),
        ("StopModelInvocationJob", 200, JSON, {"stopped": True}, "stopped"),
        ("StopModelInvocationJob", 200, {"content-type": "text/plain"}, {}, "content-type"),
        ("ListModelInvocationJobs", 409, {**JSON, "x-amzn-ErrorType": "ConflictException"}, {"message": "x"}, "ConflictException"),
    ],
)
def test_check_control_response_rejects_bad_answers(op, status, headers, doc, needle):
    errors = check_control_response(op, status, headers, body(doc))
    assert any(needle in e for e in errors), errors


# ------------------------------------------------------------------ OpenAI
GOOD_COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1700000000,
    "model": "demo/nova-lite",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "hi", "refusal": None},
            "finish_reason": "stop",
            "logprobs": None,
        }
    ],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
}
GOOD_CHUNK = {
    "id": "chatcmpl-1",
    "object": "chat.completion.chunk",
    "created": 1700000000,
    "model": "demo/nova-lite",
    "choices": [{"index": 0, "delta": {"role": "assistant", "content": "hi"}, "finish_reason": None, "logprobs": None}],
}


@pytest.fixture(scope="module")
def oa() -> OpenAIContract:
    return OpenAIContract.load()


def test_openai_accepts_good_documents(oa):
    assert oa.errors(GOOD_COMPLETION, "CreateChatCompletionResponse") == []
    assert oa.errors(GOOD_CHUNK, "CreateChatCompletionStreamResponse") == []
    usage_chunk = dict(GOOD_CHUNK, choices=[], usage=GOOD_COMPLETION["usage"])
    assert oa.errors(usage_chunk, "CreateChatCompletionStreamResponse") == []
    assert oa.errors(dict(GOOD_CHUNK, usage=None), "CreateChatCompletionStreamResponse") == []
    models = {"object": "list", "data": [{"id": "demo/x", "object": "model", "created": 0, "owned_by": "demo"}]}
    assert oa.errors(models, "ListModelsResponse") == []
    err = {"error": {"message": "m", "type": "invalid_request_error", "param": None, "code": None}}
    assert oa.errors(err, "ErrorResponse") == []


def test_openai_rejects_bad_documents(oa):
    no_choices = {k: v for k, v in GOOD_COMPLETION.items() if k != "choices"}
    assert oa.errors(no_choices, "CreateChatCompletionResponse")
    bad_reason = json.loads(json.dumps(GOOD_COMPLETION))
    bad_reason["choices"][0]["finish_reason"] = "end_turn"
    assert any("end_turn" in e for e in oa.errors(bad_reason, "CreateChatCompletionResponse"))
    bad_chunk = dict(GOOD_CHUNK, object="chat.completion")
    assert oa.errors(bad_chunk, "CreateChatCompletionStreamResponse")
    assert oa.errors({"error": {"message": "m", "type": "t"}}, "ErrorResponse")  # param/code required
    assert oa.errors({"message": "m"}, "ErrorResponse")
    assert oa.errors({"object": "list", "data": [{"id": "x"}]}, "ListModelsResponse")
    bad_usage = dict(GOOD_COMPLETION, usage={"prompt_tokens": "1", "completion_tokens": 1, "total_tokens": 2})
    assert oa.errors(bad_usage, "CreateChatCompletionResponse")


def test_openai_response_dispatch(oa):
    sse = b"data: " + json.dumps(GOOD_CHUNK).encode() + b"\n\ndata: [DONE]\n\n"
    assert oa.check_response("POST", "/v1/chat/completions", 200, "text/event-stream", sse) == []
    bad_sse = b"data: " + json.dumps({"choices": 1}).encode() + b"\n\n"
    assert oa.check_response("POST", "/v1/chat/completions", 200, "text/event-stream", bad_sse)
    err_sse = b'data: {"error": {"message": "boom"}}\n\n'
    assert oa.check_response("POST", "/v1/chat/completions", 200, "text/event-stream", err_sse)
    assert oa.check_response("POST", "/v1/chat/completions", 400, "text/plain", b"bad") != []
    assert oa.check_response("GET", "/metrics", 200, "text/plain", b"whatever") == []
    assert parse_sse(b"event: x\r\ndata: a\r\ndata: b\r\n\r\n: comment\n\ndata: c") == [("x", "a\nb"), (None, "c")]


def test_embeddings_and_images_responses_are_checked(oa):
    def embeddings(vector):
        doc = {"object": "list", "model": "m", "usage": {"prompt_tokens": 1, "total_tokens": 1}}
        doc["data"] = [{"object": "embedding", "index": 0, "embedding": vector}]
        return json.dumps(doc).encode()

    check = lambda path, doc: oa.check_response("POST", path, 200, "application/json", doc)  # noqa: E731
    assert check("/v1/embeddings", embeddings([0.5, -1.0])) == []
    assert check("/v1/embeddings", embeddings("AACAPwAAAMA=")) == []  # base64 of two float32
    assert any("whole number of float32" in e for e in check("/v1/embeddings", embeddings("AACAPwA=")))
    assert any("not base64" in e for e in check("/v1/embeddings", embeddings("%%%")))
    assert check("/v1/embeddings", b'{"object": "list", "data": []}') != []
    assert check("/v1/images/generations", b'{"created": 1, "data": [{"b64_json": "aGk="}]}') == []
    assert check("/v1/images/edits", b'{"data": [{"b64_json": "aGk="}]}') != []


def _mock(body: bytes, status: int = 200, ctype: str = "application/json"):
    return lambda request: httpx.Response(status, headers={"content-type": ctype}, content=body)


def test_validating_transport_catches_bad_sdk_response():
    log = ResponseLog()
    bad = dict(GOOD_COMPLETION, choices=[{"index": 0, "message": {"role": "assistant", "content": "x"}}])
    transport = ValidatingTransport(log, inner=httpx.MockTransport(_mock(body(bad))))
    c = openai.OpenAI(base_url="http://gw.test/v1", api_key="k", max_retries=0, http_client=httpx.Client(transport=transport))
    c.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    v = log.take()
    assert v and "finish_reason" in " ".join(v), v
    # a good one records nothing
    transport.inner = httpx.MockTransport(_mock(body(GOOD_COMPLETION)))
    c.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert log.take() == [] and log.checked == 2


def test_validating_transport_streams_and_errors():
    log = ResponseLog()
    bad_chunk = dict(GOOD_CHUNK, choices=[{"index": 0, "delta": {"content": "x"}}])  # finish_reason missing
    sse = b"".join(b"data: " + json.dumps(x).encode() + b"\n\n" for x in (GOOD_CHUNK, bad_chunk)) + b"data: [DONE]\n\n"
    transport = ValidatingTransport(log, inner=httpx.MockTransport(_mock(sse, ctype="text/event-stream")))
    c = openai.OpenAI(base_url="http://gw.test/v1", api_key="k", max_retries=0, http_client=httpx.Client(transport=transport))
    chunks = list(c.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}], stream=True))
    assert len(chunks) == 2
    assert any("SSE event 1" in x for x in log.take())
    transport.inner = httpx.MockTransport(_mock(b'{"error": {"message": "no"}}', status=404))
    with pytest.raises(openai.NotFoundError):
        c.models.list()
    assert any("ErrorResponse" in x for x in log.take())


def test_async_validating_transport():
    log = ResponseLog()

    async def go():
        bad = dict(GOOD_COMPLETION, object="chat.completion.chunk")
        t = AsyncValidatingTransport(log, inner=httpx.MockTransport(_mock(body(bad))))
        async with openai.AsyncOpenAI(
            base_url="http://gw.test/v1", api_key="k", max_retries=0, http_client=httpx.AsyncClient(transport=t)
        ) as c:
            await c.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])

    asyncio.run(go())
    assert log.take()
