"""Real botocore traffic against bedrock-sim must pass the contract checkers.

This keeps the checkers honest in the other direction: what the AWS SDK itself
sends (signature, encoded path, body) is accepted by awsmodel.py and
sigv4check.py, so a failure on the gateway's traffic is the gateway's.
"""

from __future__ import annotations

import botocore.session
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from contracts import SIM_ACCESS_KEY_ID, SIM_SECRET_ACCESS_KEY, check_sim_request
from e2e_helpers import MODELS, label_of, region_of


@pytest.fixture
def bedrock(sim):
    def make(region: str):
        return botocore.session.get_session().create_client(
            "bedrock-runtime",
            region_name=region,
            endpoint_url=sim.url,
            aws_access_key_id=SIM_ACCESS_KEY_ID,
            aws_secret_access_key=SIM_SECRET_ACCESS_KEY,
            config=Config(retries={"total_max_attempts": 1}),
        )

    return make


@pytest.mark.parametrize("served", sorted(MODELS))
def test_botocore_converse_passes_checkers(bedrock, sim, served):
    model_id, region, encoded = MODELS[served]
    c = bedrock(region)
    r = c.converse(
        modelId=model_id,
        system=[{"text": "be brief"}],
        messages=[{"role": "user", "content": [{"text": "hello from botocore"}]}],
        inferenceConfig={"maxTokens": 100, "temperature": 0.5, "stopSequences": ["never"]},
    )
    assert r["output"]["message"]["content"] == [{"text": "Simulated reply to: hello from botocore"}]
    assert r["stopReason"] == "end_turn"
    assert r["usage"]["inputTokens"] == 5 and r["usage"]["outputTokens"] == 6

    s = c.converse_stream(modelId=model_id, messages=[{"role": "user", "content": [{"text": "stream me"}]}])
    text = "".join(e["contentBlockDelta"]["delta"]["text"] for e in s["stream"] if "contentBlockDelta" in e)
    assert text == "Simulated reply to: stream me"

    recs = sim.requests()
    assert [r["path"] for r in recs] == [f"/model/{encoded}/converse", f"/model/{encoded}/converse-stream"]
    for rec in recs:
        assert label_of(rec)[1] == model_id
        assert region_of(rec) == region
        op, errs = check_sim_request(rec)
        assert errs == [], errs
        assert op in ("Converse", "ConverseStream")


def test_botocore_sees_modeled_errors(bedrock):
    c = bedrock("us-east-1")
    with pytest.raises(ClientError) as ei:
        c.converse(modelId="amazon.nova-lite-v1:0", messages=[{"role": "user", "content": [{"text": "[[sim:error=ThrottlingException]]"}]}])
    assert ei.value.response["Error"]["Code"] == "ThrottlingException"
    assert ei.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
