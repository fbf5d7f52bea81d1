"""The translator golden files (proxy/tests/golden) checked against both contracts.

The Rust golden tests prove the translators produce exactly these files; this
module proves the files themselves are right: every OpenAI response and stream
event satisfies the OpenAI OpenAPI spec, and every Converse body satisfies the
bedrock-runtime Smithy model. No binaries are needed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from contracts import OpenAIContract, runtime_model

GOLDEN = Path(__file__).resolve().parents[2] / "proxy" / "tests" / "golden"
CASES = sorted(p for p in (GOLDEN / "chat_converse").iterdir() if p.is_dir())
# Any model id will do: the path only routes the body to the right operation.
CONVERSE_PATH = "/model/amazon.nova-lite-v1%3A0/converse"
CONVERSE_STREAM_PATH = "/model/amazon.nova-lite-v1%3A0/converse-stream"


def test_golden_cases_exist():
    assert len(CASES) >= 50, f"expected the chat_converse golden cases under {GOLDEN}"


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.name)
def test_golden_case_satisfies_both_contracts(case: Path):
    contract = OpenAIContract.load()
    errors: list[str] = []
    request = case / "converse_request.json"
    if request.exists():
        path = CONVERSE_STREAM_PATH if (case / "openai_stream.txt").exists() else CONVERSE_PATH
        _, errs = runtime_model().validate_request(
            "POST", path, [("content-type", "application/json")], request.read_bytes()
        )
        errors += errs
    response = case / "openai_response.json"
    if response.exists():
        errors += contract.errors(json.loads(response.read_text()), "CreateChatCompletionResponse")
    stream = case / "openai_stream.txt"
    if stream.exists():
        errors += contract.check_sse(stream.read_bytes(), stream.name)
    error = case / "error.json"
    if error.exists():
        errors += contract.errors(json.loads(error.read_text())["body"], "ErrorResponse")
    assert not errors, "\n".join(errors)


def test_contract_rejects_a_golden_response_without_refusal():
    # Negative control: the spec check must notice a field the SDKs rely on going missing.
    doc = json.loads((GOLDEN / "chat_converse" / "simple" / "openai_response.json").read_text())
    del doc["choices"][0]["message"]["refusal"]
    assert OpenAIContract.load().errors(doc, "CreateChatCompletionResponse")


INVOKE_SCHEMAS = {
    "embeddings_titan": ("/v1/embeddings", "CreateEmbeddingResponse"),
    "embeddings_cohere": ("/v1/embeddings", "CreateEmbeddingResponse"),
    "images_nova": ("/v1/images/generations", "ImagesResponse"),
    "images_stability": ("/v1/images/generations", "ImagesResponse"),
}
INVOKE_CASES = sorted(p for name in INVOKE_SCHEMAS for p in (GOLDEN / name).iterdir() if p.is_dir())


@pytest.mark.parametrize("case", INVOKE_CASES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_invoke_golden_case_satisfies_the_openai_spec(case: Path):
    contract = OpenAIContract.load()
    path, _ = INVOKE_SCHEMAS[case.parent.name]
    errors: list[str] = []
    response = case / "openai_response.json"
    if response.exists():
        errors += contract.check_response("POST", path, 200, "application/json", response.read_bytes())
    for name in ("error.json", "response_error.json"):
        if (case / name).exists():
            errors += contract.errors(json.loads((case / name).read_text())["body"], "ErrorResponse")
    assert (case / "bedrock_requests.json").exists() or (case / "error.json").exists(), "no expected output"
    assert not errors, "\n".join(errors)
