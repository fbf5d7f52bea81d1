"""bedrock-sim's batch inference control plane (CreateModelInvocationJob, GetModelInvocationJob,
ListModelInvocationJobs, StopModelInvocationJob) driven by botocore's bedrock client, with
moto_server as the S3 the jobs read their JSONL input from and write `<input>.out` and
`manifest.json.out` to. Every response the sim sends is checked against the AWS model (a
botocore event hook) and, for the session sim, every request too (conftest).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from pathlib import Path
from typing import Any

import botocore.session
import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from conftest import Moto, Sim, start_sim
from contracts import SIM_ACCESS_KEY_ID, SIM_SECRET_ACCESS_KEY, check_control_response

CLAUDE = "anthropic.claude-3-haiku-20240307-v1:0"
TITAN = "amazon.titan-embed-text-v2:0"
ROLE = "arn:aws:iam::123456789012:role/BedrockBatch"
WALK = ["Submitted", "Validating", "Scheduled", "InProgress"]
FINAL = {"Completed", "PartiallyCompleted", "Failed", "Stopped", "Expired"}


class ResponseChecks:
    """Collects AWS-model violations of the sim's responses, seen through botocore's events."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.checked = 0

    def hook(self, http_response, model, **_: Any) -> None:
        self.checked += 1
        self.problems += check_control_response(
            model.name, http_response.status_code, dict(http_response.headers), http_response.content
        )


def bedrock_client(sim: Sim, checks: ResponseChecks):
    client = botocore.session.get_session().create_client(
        "bedrock",
        region_name="us-west-2",
        endpoint_url=sim.url,
        aws_access_key_id=SIM_ACCESS_KEY_ID,
        aws_secret_access_key=SIM_SECRET_ACCESS_KEY,
        config=Config(retries={"total_max_attempts": 1}),
    )
    client.meta.events.register("after-call.bedrock", checks.hook)
    return client


@pytest.fixture
def checks():
    c = ResponseChecks()
    yield c
    assert c.checked > 0, "no response was checked"
    assert c.problems == [], "sim responses break the AWS model:\n  " + "\n  ".join(c.problems)


@pytest.fixture
def bedrock(sim, checks):
    return bedrock_client(sim, checks)


@pytest.fixture
def s3(moto: Moto):
    return botocore.session.get_session().create_client(
        "s3",
        region_name="us-east-1",
        endpoint_url=moto.url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(s3={"addressing_style": "path"}),
    )


@pytest.fixture
def bucket(s3) -> str:
    name = f"batch-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


def converse_line(record_id: str, text: str) -> dict[str, Any]:
    return {"recordId": record_id, "modelInput": {"messages": [{"role": "user", "content": [{"text": text}]}]}}


def put_jsonl(s3, bucket: str, key: str, lines: list[dict[str, Any]]) -> str:
    s3.put_object(Bucket=bucket, Key=key, Body="".join(json.dumps(line) + "\n" for line in lines).encode())
    return f"s3://{bucket}/{key}"


def create(bedrock, bucket: str, input_uri: str, model: str = CLAUDE, **extra: Any) -> str:
    return bedrock.create_model_invocation_job(
        jobName=extra.pop("jobName", f"job-{uuid.uuid4().hex[:10]}"),
        roleArn=ROLE,
        modelId=model,
        inputDataConfig={"s3InputDataConfig": {"s3Uri": input_uri, "s3InputFormat": "JSONL"}},
        outputDataConfig={"s3OutputDataConfig": {"s3Uri": f"s3://{bucket}/out/"}},
        **extra,
    )["jobArn"]


def wait(bedrock, arn: str, until: set[str] = FINAL, timeout: float = 30.0) -> tuple[dict[str, Any], list[str]]:
    """Poll GetModelInvocationJob until the status is in `until`; returns the job and the statuses seen."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while True:
        job = bedrock.get_model_invocation_job(jobIdentifier=arn)
        if not seen or seen[-1] != job["status"]:
            seen.append(job["status"])
        if job["status"] in until:
            return job, seen
        assert time.monotonic() < deadline, f"job stuck; statuses seen {seen}"
        time.sleep(0.02)


def in_order(seen: list[str], walk: list[str]) -> bool:
    """Whether the statuses seen by polling follow `walk` (polling may miss short ones)."""
    return seen == [s for s in walk if s in seen] and seen[-1] == walk[-1]


def read_lines(s3, bucket: str, key: str) -> list[dict[str, Any]]:
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
    assert body.endswith("\n")
    return [json.loads(line) for line in body.splitlines()]


def manifest(s3, bucket: str, job_id: str) -> dict[str, Any]:
    return json.loads(s3.get_object(Bucket=bucket, Key=f"out/{job_id}/manifest.json.out")["Body"].read())


def keys(s3, bucket: str) -> list[str]:
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []))


def test_a_converse_job_walks_the_statuses_and_writes_unordered_output(bedrock, s3, bucket):
    lines = [converse_line(f"rec-{i:03}", f"prompt number {i}") for i in range(100)]
    uri = put_jsonl(s3, bucket, "in/chat.jsonl", lines)
    arn = create(bedrock, bucket, uri, modelInvocationType="Converse", clientRequestToken="tok-1")
    job_id = arn.rsplit("/", 1)[1]
    assert arn == f"arn:aws:bedrock:us-west-2:123456789012:model-invocation-job/{job_id}"
    assert re.fullmatch("[a-z0-9]{12}", job_id), job_id

    job, seen = wait(bedrock, arn)
    assert seen[-1] == "Completed", job.get("message")
    assert in_order(seen, WALK + ["Completed"]), seen
    assert (job["totalRecordCount"], job["processedRecordCount"], job["successRecordCount"], job["errorRecordCount"]) == (
        100,
        100,
        100,
        0,
    )
    assert job["modelInvocationType"] == "Converse" and job["timeoutDurationInHours"] == 24
    assert job["submitTime"] <= job["lastModifiedTime"] == job["endTime"] < job["jobExpirationTime"]
    assert job["inputDataConfig"] == {"s3InputDataConfig": {"s3Uri": uri, "s3InputFormat": "JSONL"}}

    assert keys(s3, bucket) == ["in/chat.jsonl", f"out/{job_id}/chat.jsonl.out", f"out/{job_id}/manifest.json.out"]
    out = read_lines(s3, bucket, f"out/{job_id}/chat.jsonl.out")
    assert [o["recordId"] for o in out] != [line["recordId"] for line in lines], "Bedrock does not keep the order"
    by_id = {o["recordId"]: o for o in out}
    assert sorted(by_id) == [line["recordId"] for line in lines]
    first = by_id["rec-007"]
    assert first["modelInput"] == lines[7]["modelInput"]
    assert first["modelOutput"]["output"]["message"] == {
        "role": "assistant",
        "content": [{"text": "Simulated reply to: prompt number 7"}],
    }
    assert first["modelOutput"]["stopReason"] == "end_turn"
    usage = [o["modelOutput"]["usage"] for o in out]
    assert manifest(s3, bucket, job_id) == {
        "totalRecordCount": 100,
        "processedRecordCount": 100,
        "successRecordCount": 100,
        "errorRecordCount": 0,
        "inputTokenCount": sum(u["inputTokens"] for u in usage),
        "outputTokenCount": sum(u["outputTokens"] for u in usage),
    }

    # The same clientRequestToken is the same job; the job ARN and the bare id both find it.
    assert create(bedrock, bucket, uri, modelInvocationType="Converse", clientRequestToken="tok-1") == arn
    assert bedrock.get_model_invocation_job(jobIdentifier=job_id)["jobArn"] == arn


def test_error_records_make_an_embedding_job_partially_completed(bedrock, s3, bucket):
    lines = [{"recordId": f"e{i}", "modelInput": {"inputText": f"text {i}", "dimensions": 256}} for i in range(98)]
    lines.append({"recordId": "throttled", "modelInput": {"inputText": "x [[sim:error=ThrottlingException]]"}})
    lines.append({"recordId": "invalid", "modelInput": {"texts": ["a cohere body"]}})
    uri = put_jsonl(s3, bucket, "embed/records.jsonl", lines)
    arn = create(bedrock, bucket, uri, model=TITAN)
    job_id = arn.rsplit("/", 1)[1]

    job, seen = wait(bedrock, arn)
    assert seen[-1] == "PartiallyCompleted", job.get("message")
    assert "modelInvocationType" not in job
    assert (job["successRecordCount"], job["errorRecordCount"]) == (98, 2)

    out = {o["recordId"]: o for o in read_lines(s3, bucket, f"out/{job_id}/records.jsonl.out")}
    assert len(out["e3"]["modelOutput"]["embedding"]) == 256
    assert out["e3"]["modelOutput"]["inputTextTokenCount"] == 2
    assert "error" not in out["e3"]
    assert out["throttled"]["error"]["errorCode"] == 429 and "modelOutput" not in out["throttled"]
    assert out["invalid"]["error"] == {
        "errorCode": 400,
        "errorMessage": "Malformed input request: #: extraneous key [texts] is not permitted, please reformat your input and try again.",
    }
    m = manifest(s3, bucket, job_id)
    assert (m["successRecordCount"], m["errorRecordCount"], m["inputTokenCount"], m["outputTokenCount"]) == (
        98,
        2,
        98 * 2,
        0,
    )


def test_an_invoke_model_job_answers_anthropic_bodies_natively(bedrock, s3, bucket):
    def claude(i: int) -> dict[str, Any]:
        body = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 50, "messages": [{"role": "user", "content": f"question {i}"}]}
        return {"recordId": f"c{i}", "modelInput": body}

    lines = [claude(i) for i in range(99)]
    # A Nova body is no Claude body: an error record, not a failed job.
    nova = {"schemaVersion": "messages-v1", "messages": [{"role": "user", "content": [{"text": "hi"}]}]}
    lines.append({"recordId": "nova", "modelInput": nova})
    uri = put_jsonl(s3, bucket, "in/claude.jsonl", lines)
    arn = create(bedrock, bucket, uri, model="us.anthropic.claude-3-haiku-20240307-v1:0", modelInvocationType="InvokeModel")
    job_id = arn.rsplit("/", 1)[1]
    job, _ = wait(bedrock, arn)
    assert job["status"] == "PartiallyCompleted", job.get("message")
    out = {o["recordId"]: o for o in read_lines(s3, bucket, f"out/{job_id}/claude.jsonl.out")}
    answer = out["c5"]["modelOutput"]
    assert answer["type"] == "message" and answer["role"] == "assistant"
    assert answer["content"] == [{"type": "text", "text": "Simulated reply to: question 5"}]
    assert (answer["stop_reason"], answer["usage"]) == ("end_turn", {"input_tokens": 2, "output_tokens": 5})
    assert out["nova"]["error"]["errorCode"] == 400
    assert "extraneous key [schemaVersion]" in out["nova"]["error"]["errorMessage"]
    m = manifest(s3, bucket, job_id)
    assert (m["inputTokenCount"], m["outputTokenCount"], m["errorRecordCount"]) == (99 * 2, 99 * 5, 1)


@pytest.mark.parametrize(
    "content, input_key, message",
    [
        (
            [converse_line(f"r{i}", "hi") for i in range(3)],
            "in/few.jsonl",
            "The job has 3 records, fewer than the minimum of 100 records per batch inference job.",
        ),
        (None, "in/missing.jsonl", "No .jsonl input files found at s3://{bucket}/in/missing.jsonl."),
        ("{}\n{not json", "in/broken.jsonl", "Invalid record in broken.jsonl at line 1: modelInput is missing"),
    ],
    ids=["too-few-records", "unreadable-input", "malformed-jsonl"],
)
def test_unusable_input_fails_the_job_with_a_message(bedrock, s3, bucket, content, input_key, message):
    if isinstance(content, list):
        put_jsonl(s3, bucket, input_key, content)
    elif isinstance(content, str):
        s3.put_object(Bucket=bucket, Key=input_key, Body=content.encode())
    arn = create(bedrock, bucket, f"s3://{bucket}/{input_key}", modelInvocationType="Converse")
    job, seen = wait(bedrock, arn)
    assert in_order(seen, ["Submitted", "Validating", "Failed"]), seen
    assert job["status"] == "Failed"
    assert job["message"] == message.format(bucket=bucket)
    assert "totalRecordCount" not in job
    assert not [k for k in keys(s3, bucket) if k.startswith("out/")]


def test_a_folder_input_gets_one_output_per_file(bedrock, s3, bucket):
    put_jsonl(s3, bucket, "in/dir/a.jsonl", [converse_line(f"a{i}", "one") for i in range(60)])
    put_jsonl(s3, bucket, "in/dir/b.jsonl", [converse_line(f"b{i}", "two") for i in range(40)])
    s3.put_object(Bucket=bucket, Key="in/dir/notes.txt", Body=b"not an input")
    arn = create(bedrock, bucket, f"s3://{bucket}/in/dir/", modelInvocationType="Converse")
    job_id = arn.rsplit("/", 1)[1]
    job, _ = wait(bedrock, arn)
    assert job["status"] == "Completed", job.get("message")
    assert len(read_lines(s3, bucket, f"out/{job_id}/a.jsonl.out")) == 60
    assert len(read_lines(s3, bucket, f"out/{job_id}/b.jsonl.out")) == 40
    assert manifest(s3, bucket, job_id)["totalRecordCount"] == 100


def test_stopping_a_running_job_keeps_what_was_processed(bedrock, s3, bucket):
    lines = [converse_line(f"s{i}", "slow [[sim:latency=40]]") for i in range(100)]
    uri = put_jsonl(s3, bucket, "in/slow.jsonl", lines)
    arn = create(bedrock, bucket, uri, modelInvocationType="Converse")
    job_id = arn.rsplit("/", 1)[1]
    wait(bedrock, arn, until={"InProgress"})
    assert bedrock.stop_model_invocation_job(jobIdentifier=arn)["ResponseMetadata"]["HTTPStatusCode"] == 200
    job, seen = wait(bedrock, arn)
    assert seen[:2] == ["Stopping", "Stopped"] or seen[0] == "Stopped", seen
    assert job["status"] == "Stopped" and "endTime" in job
    m = manifest(s3, bucket, job_id)
    assert m["totalRecordCount"] == 100 and 0 < m["processedRecordCount"] < 100
    assert len(read_lines(s3, bucket, f"out/{job_id}/slow.jsonl.out")) == m["processedRecordCount"]

    with pytest.raises(ClientError) as again:
        bedrock.stop_model_invocation_job(jobIdentifier=job_id)
    assert again.value.response["Error"]["Code"] == "ValidationException"
    assert again.value.response["Error"]["Message"] == (
        f"The job {arn} cannot be stopped because it is in the Stopped state."
    )


def test_a_job_stopped_before_it_runs_writes_nothing(bedrock, s3, bucket):
    uri = put_jsonl(s3, bucket, "in/x.jsonl", [converse_line(f"r{i}", "hi") for i in range(100)])
    arn = create(bedrock, bucket, uri, modelInvocationType="Converse")
    bedrock.stop_model_invocation_job(jobIdentifier=arn)
    assert bedrock.get_model_invocation_job(jobIdentifier=arn)["status"] in ("Stopping", "Stopped")
    job, _ = wait(bedrock, arn)
    assert job["status"] == "Stopped"
    assert keys(s3, bucket) == ["in/x.jsonl"]


def test_list_filters_sorts_and_pages(bedrock, s3, bucket):
    tag = uuid.uuid4().hex[:8]
    uri = put_jsonl(s3, bucket, "in/few.jsonl", [converse_line("r", "hi")])
    arns = [create(bedrock, bucket, uri, jobName=f"list-{tag}-{i}") for i in range(3)]
    for arn in arns:
        wait(bedrock, arn)

    def page(**kw):
        return bedrock.list_model_invocation_jobs(nameContains=tag, **kw)

    newest_first = [j["jobArn"] for j in page()["invocationJobSummaries"]]
    assert newest_first == arns[::-1]
    first = page(maxResults=2, sortOrder="Ascending", sortBy="CreationTime")
    assert [j["jobArn"] for j in first["invocationJobSummaries"]] == arns[:2]
    rest = page(maxResults=2, sortOrder="Ascending", nextToken=first["nextToken"])
    assert [j["jobArn"] for j in rest["invocationJobSummaries"]] == arns[2:] and "nextToken" not in rest
    assert len(page(statusEquals="Failed")["invocationJobSummaries"]) == 3
    assert page(statusEquals="Completed")["invocationJobSummaries"] == []
    summary = page(maxResults=1)["invocationJobSummaries"][0]
    assert summary["jobName"] == f"list-{tag}-2" and summary["status"] == "Failed"
    submitted = bedrock.get_model_invocation_job(jobIdentifier=arns[1])["submitTime"]
    later = page(submitTimeAfter=submitted)["invocationJobSummaries"]
    assert [j["jobArn"] for j in later] == [arns[2]]


# ------------------------------------------------ bad requests (on a private sim, so the
# deliberately invalid requests are not held against the AWS-model request check)
@pytest.fixture(scope="module")
def private_sim(logdir: Path, moto: Moto):
    s = start_sim(logdir, moto.url, ("--batch-min-records", "1", "--batch-hour-ms", "5", "--batch-step-ms", "10"), name="bedrock-sim-batch")
    yield s
    s.proc.stop()


@pytest.fixture
def private_bedrock(private_sim, checks):
    return bedrock_client(private_sim, checks)


def error_of(call, **kw) -> tuple[int, str, str]:
    with pytest.raises(ClientError) as e:
        call(**kw)
    r = e.value.response
    return r["ResponseMetadata"]["HTTPStatusCode"], r["Error"]["Code"], r["Error"]["Message"]


def test_requests_are_validated_like_aws(private_bedrock, bucket):
    b = private_bedrock
    good = {
        "jobName": "ok-name",
        "roleArn": ROLE,
        "modelId": CLAUDE,
        "inputDataConfig": {"s3InputDataConfig": {"s3Uri": f"s3://{bucket}/in.jsonl"}},
        "outputDataConfig": {"s3OutputDataConfig": {"s3Uri": f"s3://{bucket}/out/"}},
    }
    status, code, message = error_of(b.create_model_invocation_job, **{**good, "jobName": "bad_name", "roleArn": "role"})
    assert (status, code) == (400, "ValidationException")
    assert message.startswith("2 validation errors detected: Value 'bad_name' at 'jobName' failed to satisfy constraint")
    assert "Value 'role' at 'roleArn' failed to satisfy constraint: Member must satisfy regular expression pattern" in message
    bad_uri = {"s3InputDataConfig": {"s3Uri": "s3://Upper/in.jsonl"}}
    _, code, message = error_of(b.create_model_invocation_job, **{**good, "inputDataConfig": bad_uri})
    assert code == "ValidationException" and "at 'inputDataConfig.s3InputDataConfig.s3Uri'" in message
    assert error_of(b.create_model_invocation_job, **{**good, "modelId": "amazon.nope-v1:0"})[:2] == (
        404,
        "ResourceNotFoundException",
    )
    _, code, message = error_of(b.create_model_invocation_job, **{**good, "modelId": TITAN, "modelInvocationType": "Converse"})
    assert code == "ValidationException" and "does not support the Converse model invocation type" in message
    arn = b.create_model_invocation_job(**good)["jobArn"]
    assert error_of(b.create_model_invocation_job, **good)[:2] == (409, "ConflictException")
    missing = arn[:-12] + "zzzzzzzzzzzz"
    assert error_of(b.get_model_invocation_job, jobIdentifier=missing) == (
        404,
        "ResourceNotFoundException",
        f"The model invocation job {missing} was not found.",
    )
    assert error_of(b.get_model_invocation_job, jobIdentifier="NOT-AN-ID")[:2] == (400, "ValidationException")
    assert error_of(b.list_model_invocation_jobs, statusEquals="Done")[1] == "ValidationException"


def test_a_job_past_its_timeout_expires(private_bedrock, s3, bucket):
    # On this sim an hour lasts 5 ms: the 24-hour timeout is over after 120 ms of slow records.
    uri = put_jsonl(s3, bucket, "in/slow.jsonl", [converse_line(f"r{i}", "slow [[sim:latency=30]]") for i in range(20)])
    arn = create(private_bedrock, bucket, uri, modelInvocationType="Converse")
    job_id = arn.rsplit("/", 1)[1]
    job, seen = wait(private_bedrock, arn)
    assert job["status"] == "Expired", seen
    assert job["message"] == "The job did not finish within its timeout of 24 hours."
    assert job["endTime"] >= job["jobExpirationTime"]
    assert 0 < manifest(s3, bucket, job_id)["processedRecordCount"] < 20


def test_batch_faults_fail_the_next_calls_of_one_operation(private_sim, private_bedrock, bucket):
    b = private_bedrock
    arn = create(b, bucket, f"s3://{bucket}/in.jsonl")
    missing = arn[:-12] + "zzzzzzzzzzzz"
    control = httpx.Client(base_url=private_sim.url, timeout=10)
    fault = {"operation": "StopModelInvocationJob", "error": "ThrottlingException", "times": 2}
    assert control.post("/_sim/batch-faults", json=fault).status_code == 204
    try:
        for _ in range(2):
            assert error_of(b.stop_model_invocation_job, jobIdentifier=missing) == (
                429,
                "ThrottlingException",
                "Too many requests, please wait before trying again.",
            )
        assert b.get_model_invocation_job(jobIdentifier=arn)["jobArn"] == arn, "only Stop is faulted"
        not_found = (404, "ResourceNotFoundException", f"The model invocation job {missing} was not found.")
        assert error_of(b.stop_model_invocation_job, jobIdentifier=missing) == not_found, "spent after 2"

        assert control.post("/_sim/batch-faults", json={**fault, "times": 5}).status_code == 204
        assert control.delete("/_sim/batch-faults").status_code == 204
        assert error_of(b.stop_model_invocation_job, jobIdentifier=missing) == not_found, "disarmed"

        bad = control.post("/_sim/batch-faults", json={"operation": "ListModelInvocationJobs", "error": "ConflictException"})
        assert bad.status_code == 400 and bad.headers["x-amzn-ErrorType"] == "ValidationException"
        assert bad.json()["message"].startswith("bedrock-sim: ListModelInvocationJobs does not answer 'ConflictException'")
    finally:
        control.delete("/_sim/batch-faults")
