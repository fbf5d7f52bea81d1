"""bedrock-sim's control plane (ListFoundationModels, ListInferenceProfiles, GetInferenceProfile),
the part the operator asks about accounts: its answers must match the AWS model exactly, and the
real botocore client must be able to use it (requests are checked by conftest as usual).
"""

from __future__ import annotations

import botocore.session
import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from contracts import SIM_ACCESS_KEY_ID, SIM_BEARER_TOKEN, SIM_SECRET_ACCESS_KEY, control_model

PROFILE_ARN = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123def456"


@pytest.fixture
def bedrock(sim):
    return botocore.session.get_session().create_client(
        "bedrock",
        region_name="us-west-2",
        endpoint_url=sim.url,
        aws_access_key_id=SIM_ACCESS_KEY_ID,
        aws_secret_access_key=SIM_SECRET_ACCESS_KEY,
        config=Config(retries={"total_max_attempts": 1}),
    )


def raw(sim, path: str) -> dict:
    r = httpx.get(f"{sim.url}{path}", headers={"authorization": f"Bearer {SIM_BEARER_TOKEN}"}, timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    return r.json()


@pytest.mark.parametrize(
    "path, shape",
    [
        ("/foundation-models", "ListFoundationModelsResponse"),
        ("/inference-profiles?maxResults=2", "ListInferenceProfilesResponse"),
        ("/inference-profiles/us.anthropic.claude-3-7-sonnet-20250219-v1%3A0", "GetInferenceProfileResponse"),
        ("/inference-profiles/" + PROFILE_ARN.replace(":", "%3A").replace("/", "%2F"), "GetInferenceProfileResponse"),
    ],
)
def test_answers_match_the_aws_model(sim, path, shape):
    model = control_model()
    assert model is not None, "the bedrock service model is missing from the shared reference"
    assert model.validate_value(raw(sim, path), shape, path) == []


def test_catalogue_holds_the_quickstart_models(sim):
    listed = {m["modelId"]: m for m in raw(sim, "/foundation-models")["modelSummaries"]}
    assert listed["amazon.nova-lite-v1:0"]["inferenceTypesSupported"] == ["ON_DEMAND"]
    assert listed["anthropic.claude-3-7-sonnet-20250219-v1:0"]["modelArn"] == (
        "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-7-sonnet-20250219-v1:0"
    )
    profile = raw(sim, "/inference-profiles/" + PROFILE_ARN.replace(":", "%3A").replace("/", "%2F"))
    assert (profile["type"], profile["inferenceProfileId"]) == ("APPLICATION", "abc123def456")
    assert profile["models"] == [
        {"modelArn": "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-7-sonnet-20250219-v1:0"}
    ]


def test_botocore_lists_filters_pages_and_gets(bedrock):
    embeddings = bedrock.list_foundation_models(byOutputModality="EMBEDDING")["modelSummaries"]
    assert sorted(m["modelId"] for m in embeddings) == ["amazon.titan-embed-text-v2:0", "cohere.embed-english-v3"]

    ids, token = [], None
    while True:
        page = bedrock.list_inference_profiles(maxResults=2, **({"nextToken": token} if token else {}))
        ids += [p["inferenceProfileId"] for p in page["inferenceProfileSummaries"]]
        token = page.get("nextToken")
        if not token:
            break
    assert ids == [
        "us.amazon.nova-lite-v1:0",
        "us.amazon.nova-pro-v1:0",
        "us.anthropic.claude-3-7-sonnet-20250219-v1:0",
        "us.anthropic.claude-3-haiku-20240307-v1:0",
        "us.meta.llama3-1-70b-instruct-v1:0",
        "abc123def456",
    ]
    system = bedrock.list_inference_profiles(typeEquals="APPLICATION")["inferenceProfileSummaries"]
    assert [p["inferenceProfileArn"] for p in system] == [
        "arn:aws:bedrock:us-west-2:123456789012:application-inference-profile/abc123def456"
    ]

    got = bedrock.get_inference_profile(inferenceProfileIdentifier="us.meta.llama3-1-70b-instruct-v1:0")
    assert [m["modelArn"].rsplit("/", 1)[1] for m in got["models"]] == ["meta.llama3-1-70b-instruct-v1:0"] * 3
    assert got["createdAt"].year == 2025

    with pytest.raises(ClientError) as missing:
        bedrock.get_inference_profile(inferenceProfileIdentifier="us.amazon.nope-v1:0")
    assert missing.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert missing.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
