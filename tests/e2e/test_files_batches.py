"""/v1/files and /v1/batches end to end: the official openai SDK against the proxy, whose account
"demo" keeps its files in moto_server's S3 and runs batches as bedrock-sim batch inference jobs
(which read and write the same S3).

This module runs its own sim (a job needs 3 records, statuses step every 50 ms) and gateway (a
batch needs 2 requests, so a 2-request batch passes the gateway and fails in Bedrock: the
"failing job" case). Every proxy response is validated against the OpenAI spec and every request
the sim receives against the AWS model and SigV4 (conftest).
"""

from __future__ import annotations

import base64
import json
import re
import socket
import time
import uuid
from pathlib import Path
from typing import Any

import botocore.session
import httpx
import openai
import pytest
from botocore.config import Config

from conftest import (
    NOVA_ONLY_KEY,
    QUICKSTART_KEY,
    Gateway,
    Moto,
    Sim,
    start_gateway_proc,
    start_moto,
    start_sim,
    write_manifests,
)
from contracts import OpenAIContract, OPENAPI_PATH
from e2e_helpers import fresh_minute

BUCKET = "bgw-batch-e2e"
AUDITOR_KEY = "sk-bgw-batch-auditor"
LIMITED_KEY = "sk-bgw-batch-limited"
LIMITED_TPM = 10
CHAT = "demo/nova-lite"
EMBED = "demo/titan-embed-v2"
URL_SAFE = re.compile(r"^[A-Za-z0-9_-]+$")


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def moto(logdir: Path) -> Moto:
    """A moto of its own: S3 multipart uploads leave parts moto's data dump cannot list."""
    m = start_moto(logdir, name="moto-batch")
    yield m
    m.proc.stop()


@pytest.fixture(scope="module")
def sim(logdir: Path, moto: Moto) -> Sim:
    s = start_sim(logdir, moto.url, ("--batch-min-records", "3", "--batch-step-ms", "50"), name="bedrock-sim-batch")
    yield s
    s.proc.stop()


@pytest.fixture(scope="module")
def s3(moto: Moto):
    client = botocore.session.get_session().create_client(
        "s3",
        region_name="us-east-1",
        endpoint_url=moto.url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(s3={"addressing_style": "path"}),
    )
    client.create_bucket(Bucket=BUCKET)
    return client


@pytest.fixture(scope="module")
def gateway(sim: Sim, moto: Moto, s3, logdir: Path) -> Gateway:
    manifests = write_manifests(logdir / "manifests-batch", sim.url)
    account = manifests / "account.yaml"
    text = account.read_text()
    control = f'    control: "{sim.url}"\n'
    assert control in text, text
    text = text.replace(
        control,
        control
        + f'    s3: "{moto.url}"\n'
        + f"  batch:\n    bucket: {BUCKET}\n    prefix: gateway/\n"
        + "    roleArn: arn:aws:iam::123456789012:role/bedrock-batch\n",
        1,
    )
    account.write_text(text)
    (manifests / "test-batch-auditor.yaml").write_text(
        f"""\
# May see every caller's files and batches (and call no model).
apiVersion: v1
kind: Secret
metadata:
  name: batch-auditor-key
  namespace: ai-gateway
type: bedrockgateway.io/api-key
stringData:
  key: {AUDITOR_KEY}
  user: auditor@example.com
---
apiVersion: bedrockgateway.io/v1alpha1
kind: AccessPolicy
metadata:
  name: batch-auditor
  namespace: ai-gateway
spec:
  subjects:
    - user: auditor@example.com
  models: ["batch-owner:*"]
---
# A caller with a small token limit: its batches count against it like its chat calls.
apiVersion: v1
kind: Secret
metadata:
  name: batch-limited-key
  namespace: ai-gateway
type: bedrockgateway.io/api-key
stringData:
  key: {LIMITED_KEY}
  user: batch-limited@example.com
---
apiVersion: bedrockgateway.io/v1alpha1
kind: AccessPolicy
metadata:
  name: batch-limited
  namespace: ai-gateway
spec:
  subjects:
    - user: batch-limited@example.com
  models: ["{CHAT}"]
  limits:
    tokensPerMinute: {LIMITED_TPM}
"""
    )
    gw = start_gateway_proc(manifests, logdir, name="bedrock-gateway-proxy-batch", extra_args=["--batch-min-records", "2"])
    yield gw
    gw.proc.stop()


@pytest.fixture(scope="module")
def contract() -> OpenAIContract:
    import yaml

    return OpenAIContract(yaml.safe_load(OPENAPI_PATH.read_text()))


# ------------------------------------------------------------------- helpers
def chat_line(custom_id: str, text: str, model: str = CHAT) -> dict[str, Any]:
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": model, "messages": [{"role": "user", "content": text}], "max_tokens": 50},
    }


def embed_line(custom_id: str, text: str) -> dict[str, Any]:
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/embeddings", "body": {"model": EMBED, "input": text}}


def jsonl(lines: list[Any]) -> bytes:
    return "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines).encode()


def upload(client: openai.OpenAI, lines: list[Any], name: str = "requests.jsonl"):
    return client.files.create(file=(name, jsonl(lines), "application/jsonl"), purpose="batch")


def error_of(exc: openai.APIStatusError) -> dict[str, Any]:
    return exc.response.json()["error"]


def wait(client: openai.OpenAI, batch_id: str, until: set[str], timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    seen = []
    while True:
        batch = client.batches.retrieve(batch_id)
        if not seen or seen[-1] != batch.status:
            seen.append(batch.status)
        if batch.status in until:
            return batch, seen
        if time.monotonic() > deadline:
            pytest.fail(f"batch {batch_id} still {batch.status} after {timeout}s (seen {seen})")
        time.sleep(0.1)


def lines_of(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def impatient(gateway: Gateway, logdir: Path) -> Gateway:
    """A second gateway on the same manifests that waits 2 s at most for a request body to go on."""
    gw = start_gateway_proc(
        gateway.manifests,
        logdir,
        name="bedrock-gateway-proxy-batch-impatient",
        extra_args=["--header-read-timeout-ms", "2000"],
    )
    yield gw
    gw.proc.stop()


# --------------------------------------------------------------------- files
def test_files_upload_list_retrieve_content_and_delete(client_for):
    client = client_for(QUICKSTART_KEY)
    body = jsonl([chat_line("a", "one"), chat_line("b", "two")])
    created = client.files.create(file=("my requests.jsonl", body, "application/jsonl"), purpose="batch")
    assert created.id.startswith("file-") and URL_SAFE.match(created.id), created.id
    assert (created.object, created.purpose, created.status) == ("file", "batch", "processed")
    assert (created.bytes, created.filename) == (len(body), "my requests.jsonl")
    assert abs(created.created_at - time.time()) < 60

    assert client.files.retrieve(created.id) == created
    assert client.files.content(created.id).content == body

    newer = upload(client, [chat_line("x", "three")], name="second.jsonl")
    listed = client.files.list(purpose="batch")
    ids = [f.id for f in listed.data]
    assert ids.index(newer.id) < ids.index(created.id), "newest first"
    page = client.files.list(purpose="batch", limit=1)
    assert [f.id for f in page.data] == [newer.id] and page.has_more
    nxt = client.files.list(purpose="batch", limit=1, after=newer.id)
    assert [f.id for f in nxt.data] == [created.id]

    deleted = client.files.delete(created.id)
    assert (deleted.id, deleted.object, deleted.deleted) == (created.id, "file", True)
    with pytest.raises(openai.NotFoundError) as e:
        client.files.retrieve(created.id)
    assert error_of(e.value)["message"] == f"No such File object: {created.id}"
    assert created.id not in [f.id for f in client.files.list().data]


def test_a_large_file_goes_up_in_parts(client_for):
    client = client_for(QUICKSTART_KEY)
    # ~9 MiB: more than one 8 MiB part, so the upload is an S3 multipart upload.
    filler = "x" * 4000
    lines = [chat_line(f"r{i}", f"{filler} {i}") for i in range(2300)]
    body = jsonl(lines)
    assert len(body) > 8 * 1024 * 1024
    created = client.files.create(file=("big.jsonl", body, "application/jsonl"), purpose="batch")
    assert created.bytes == len(body)
    assert client.files.content(created.id).content == body
    client.files.delete(created.id)


def open_uploads(s3) -> list[str]:
    return [u["Key"] for u in s3.list_multipart_uploads(Bucket=BUCKET, Prefix="gateway/files/").get("Uploads", [])]


def test_an_upload_that_stops_arriving_is_a_408_and_leaves_nothing_in_s3(impatient, s3):
    keys_before = s3.list_objects_v2(Bucket=BUCKET, Prefix="gateway/files/").get("KeyCount", 0)
    assert open_uploads(s3) == []
    filler = "x" * 4000
    data = jsonl([chat_line(f"s{i}", f"{filler} {i}") for i in range(2300)])
    boundary = "bgw-stalled-upload"
    form = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="stalled.jsonl"\r\n'
        "Content-Type: application/jsonl\r\n\r\n"
    ).encode()
    whole = len(form) + len(data) + len(f"\r\n--{boundary}--\r\n")
    head = (
        f"POST /v1/files HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {QUICKSTART_KEY}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {whole}\r\n\r\n"
    ).encode()
    host, port = impatient.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        # More than the first 8 MiB part, then nothing: the gateway has an S3 multipart upload open.
        conn.sendall(head + form + data[: 8 * 1024 * 1024 + 100_000])
        deadline = time.monotonic() + 20
        while not open_uploads(s3):
            assert time.monotonic() < deadline, "the gateway never started the multipart upload"
            time.sleep(0.05)
        got = b""
        while chunk := conn.recv(65536):
            got += chunk
    status, _, rest = got.decode().partition("\r\n")
    headers, _, body = rest.partition("\r\n\r\n")
    assert status == "HTTP/1.1 408 Request Timeout", got[:500]
    assert "connection: close" in headers.lower().split("\r\n"), headers
    assert json.loads(body) == {
        "error": {
            "message": "The request body stopped arriving: nothing came for 2000 ms, so the gateway closed the connection.",
            "type": "invalid_request_error",
            "param": None,
            "code": "request_timeout",
        }
    }
    # The upload was aborted and no object was written.
    assert open_uploads(s3) == []
    assert s3.list_objects_v2(Bucket=BUCKET, Prefix="gateway/files/").get("KeyCount", 0) == keys_before


@pytest.mark.parametrize(
    "lines, message",
    [
        (
            [chat_line("a", "fine"), "{not json"],
            "Line 2: not valid JSON (key must be a string at line 1 column 2)",
        ),
        (
            [chat_line("a", "one"), chat_line("b", "two", model="demo/claude-sonnet")],
            "Line 2: `body.model` is `demo/claude-sonnet` but earlier lines use `demo/nova-lite`; a batch uses one model",
        ),
        (
            [chat_line("a", "one"), chat_line("a", "two")],
            "Line 2: `custom_id` `a` is used by an earlier line",
        ),
        (
            [{**chat_line("a", "one"), "method": "GET"}],
            "Line 1: `method` is `GET`; only `POST` is supported",
        ),
        (
            [chat_line("a", "one", model="demo/nope")],
            "Line 1: The model `demo/nope` does not exist or is not served by this gateway.",
        ),
        ([], "The file holds no requests; a batch file has one JSON request per line."),
        (
            [{"custom_id": "img", "method": "POST", "url": "/v1/images/generations", "body": {"model": "demo/nova-canvas", "prompt": "a cat"}}],
            "Line 1: `url` is `/v1/images/generations`: Bedrock batch inference does not run image generation models, "
            "so image requests cannot be batched; send them to the endpoint one at a time",
        ),
    ],
    ids=["bad-json", "two-models", "duplicate-id", "method", "unknown-model", "empty", "image-endpoint"],
)
def test_bad_batch_files_are_refused_naming_the_line(client_for, s3, lines, message):
    client = client_for(QUICKSTART_KEY)
    before = s3.list_objects_v2(Bucket=BUCKET, Prefix="gateway/files/").get("KeyCount", 0)
    with pytest.raises(openai.APIStatusError) as e:
        upload(client, lines)
    assert e.value.status_code in (400, 404)
    assert error_of(e.value)["message"] == message
    after = s3.list_objects_v2(Bucket=BUCKET, Prefix="gateway/files/").get("KeyCount", 0)
    assert after == before, "a refused upload leaves nothing behind"


def test_other_purposes_are_refused(client_for):
    client = client_for(QUICKSTART_KEY)
    with pytest.raises(openai.BadRequestError) as e:
        client.files.create(file=("a.jsonl", jsonl([chat_line("a", "x")]), "application/jsonl"), purpose="assistants")
    err = error_of(e.value)
    assert (err["param"], err["message"]) == (
        "purpose",
        "Invalid value for `purpose`: `assistants`; this gateway stores `batch` files only.",
    )


def test_another_caller_cannot_see_your_file_unless_a_policy_grants_it(client_for):
    mine = client_for(QUICKSTART_KEY)
    created = upload(mine, [chat_line("a", "private")])
    other = client_for(NOVA_ONLY_KEY)
    for call in (other.files.retrieve, other.files.content, other.files.delete):
        with pytest.raises(openai.NotFoundError):
            call(created.id)
    assert created.id not in [f.id for f in other.files.list().data]
    with pytest.raises(openai.NotFoundError):
        other.batches.create(input_file_id=created.id, endpoint="/v1/chat/completions", completion_window="24h")
    auditor = client_for(AUDITOR_KEY)
    assert auditor.files.retrieve(created.id).id == created.id
    assert created.id in [f.id for f in auditor.files.list().data]
    assert mine.files.retrieve(created.id).id == created.id


def test_unknown_ids_are_404s(client_for):
    client = client_for(QUICKSTART_KEY)
    with pytest.raises(openai.NotFoundError) as e:
        client.files.retrieve("file-abc")
    assert error_of(e.value)["message"] == "No such File object: file-abc"
    with pytest.raises(openai.NotFoundError) as e:
        client.batches.retrieve("batch_abc")
    assert error_of(e.value)["message"] == "No batch found with id 'batch_abc'."


# ------------------------------------------------------------------- batches
def test_a_chat_batch_runs_to_completion_with_translated_output(client_for, gateway, contract, sim):
    client = client_for(QUICKSTART_KEY)
    texts = {f"req-{i}": f"question number {i}" for i in range(4)}
    file = upload(client, [chat_line(cid, text) for cid, text in texts.items()])
    batch = client.batches.create(
        input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h", metadata={"team": "e2e"}
    )
    assert batch.id.startswith("batch_") and URL_SAFE.match(batch.id), batch.id
    assert (batch.object, batch.endpoint, batch.input_file_id, batch.completion_window) == (
        "batch",
        "/v1/chat/completions",
        file.id,
        "24h",
    )
    assert batch.status in ("validating", "in_progress")
    assert batch.metadata == {"team": "e2e"} and batch.model == CHAT
    assert batch.request_counts.total == 4
    assert batch.output_file_id is None

    done, seen = wait(client, batch.id, {"completed", "failed"})
    assert done.status == "completed", (seen, done.errors)
    assert (done.request_counts.total, done.request_counts.completed, done.request_counts.failed) == (4, 4, 0)
    assert done.completed_at and done.completed_at >= done.created_at
    assert done.error_file_id is None and done.output_file_id
    assert done.usage and done.usage.input_tokens > 0 and done.usage.output_tokens > 0

    out_file = client.files.retrieve(done.output_file_id)
    assert (out_file.purpose, out_file.filename) == ("batch_output", f"{batch.id}_output.jsonl")
    text = client.files.content(done.output_file_id).text
    assert out_file.bytes == len(text.encode())
    lines = lines_of(text)
    assert sorted(line["custom_id"] for line in lines) == sorted(texts)
    for line in lines:
        assert line["error"] is None and line["id"].startswith("batch_req_")
        response = line["response"]
        assert response["status_code"] == 200 and response["request_id"]
        body = response["body"]
        assert contract.errors(body, "CreateChatCompletionResponse") == []
        assert body["model"] == CHAT
        assert body["choices"][0]["message"]["content"] == f"Simulated reply to: {texts[line['custom_id']]}"
    # The seed API's output route answers the same lines.
    raw = httpx.get(f"{gateway.url}/v1/batches/{batch.id}/output", headers={"Authorization": f"Bearer {QUICKSTART_KEY}"})
    assert raw.status_code == 200 and raw.text == text
    # A second read does not rewrite the results.
    assert client.batches.retrieve(batch.id).output_file_id == done.output_file_id

    mine = client.batches.list(limit=100)
    assert batch.id in [b.id for b in mine.data]
    assert batch.id not in [b.id for b in client_for(NOVA_ONLY_KEY).batches.list().data]
    with pytest.raises(openai.NotFoundError):
        client_for(NOVA_ONLY_KEY).batches.retrieve(batch.id)
    assert client_for(AUDITOR_KEY).batches.retrieve(batch.id).id == batch.id

    # The job Bedrock ran: Converse records named by line, at the account's batch location.
    creates = [r for r in sim.requests() if r["method"] == "POST" and r["path"] == "/model-invocation-job"]
    assert creates, "no CreateModelInvocationJob reached the sim"


def test_an_embeddings_batch(client_for, contract):
    client = client_for(QUICKSTART_KEY)
    file = upload(client, [embed_line(f"e{i}", f"text {i}") for i in range(3)])
    batch = client.batches.create(input_file_id=file.id, endpoint="/v1/embeddings", completion_window="24h")
    done, seen = wait(client, batch.id, {"completed", "failed"})
    assert done.status == "completed", (seen, done.errors)
    lines = lines_of(client.files.content(done.output_file_id).text)
    assert sorted(line["custom_id"] for line in lines) == ["e0", "e1", "e2"]
    for line in lines:
        body = line["response"]["body"]
        assert contract.errors(body, "CreateEmbeddingResponse") == []
        assert body["model"] == EMBED and len(body["data"][0]["embedding"]) == 1024


def test_partial_completion_writes_an_error_file(client_for):
    client = client_for(QUICKSTART_KEY)
    lines = [chat_line("ok-1", "fine"), chat_line("bad", "[[sim:error=ThrottlingException]] no"), chat_line("ok-2", "ok")]
    batch = client.batches.create(input_file_id=upload(client, lines).id, endpoint="/v1/chat/completions", completion_window="24h")
    done, seen = wait(client, batch.id, {"completed", "failed"})
    assert done.status == "completed", (seen, done.errors)
    assert (done.request_counts.completed, done.request_counts.failed) == (2, 1)
    assert done.error_file_id and done.output_file_id
    assert sorted(x["custom_id"] for x in lines_of(client.files.content(done.output_file_id).text)) == ["ok-1", "ok-2"]
    [error] = lines_of(client.files.content(done.error_file_id).text)
    assert error["custom_id"] == "bad"
    assert error["response"]["status_code"] == 429
    assert error["error"]["code"] == "rate_limit_exceeded" and error["error"]["message"]


def test_too_few_requests_is_a_400_before_any_job(client_for, sim):
    client = client_for(QUICKSTART_KEY)
    file = upload(client, [chat_line("only", "one")])
    sim.clear()
    with pytest.raises(openai.BadRequestError) as e:
        client.batches.create(input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h")
    err = error_of(e.value)
    assert (err["code"], err["param"]) == ("too_few_requests", "input_file_id")
    assert err["message"].startswith("The input file has 1 requests; Bedrock batch jobs take at least 2")
    assert not [r for r in sim.requests() if r["path"].startswith("/model-invocation-job")]


def test_a_batch_for_the_wrong_endpoint_is_refused(client_for):
    client = client_for(QUICKSTART_KEY)
    file = upload(client, [chat_line("a", "x"), chat_line("b", "y")])
    with pytest.raises(openai.BadRequestError) as e:
        client.batches.create(input_file_id=file.id, endpoint="/v1/embeddings", completion_window="24h")
    assert error_of(e.value)["param"] == "endpoint"


def test_a_failing_job_is_failed_with_bedrocks_message(client_for):
    client = client_for(QUICKSTART_KEY)
    # Two requests pass the gateway's minimum (2) but not the sim's Bedrock quota (3).
    file = upload(client, [chat_line("a", "x"), chat_line("b", "y")])
    batch = client.batches.create(input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h")
    done, seen = wait(client, batch.id, {"completed", "failed"})
    assert done.status == "failed", seen
    assert done.failed_at and done.output_file_id is None
    [error] = done.errors.data
    assert error.code == "batch_failed"
    assert "fewer than the minimum of 3 records" in error.message


def test_cancel_stops_the_job(client_for):
    client = client_for(QUICKSTART_KEY)
    lines = [chat_line(f"slow-{i}", f"[[sim:latency=2000]] wait {i}") for i in range(3)]
    batch = client.batches.create(input_file_id=upload(client, lines).id, endpoint="/v1/chat/completions", completion_window="24h")
    wait(client, batch.id, {"in_progress"})
    cancelled = client.batches.cancel(batch.id)
    assert cancelled.status in ("cancelling", "cancelled")
    assert cancelled.cancelling_at
    done, seen = wait(client, batch.id, {"cancelled"})
    assert done.cancelled_at and done.cancelling_at
    with pytest.raises(openai.BadRequestError) as e:
        client.batches.cancel(batch.id)
    assert error_of(e.value)["message"] == "Cannot cancel a batch with status `cancelled`."


def test_batches_list_pages_newest_first(client_for):
    client = client_for(QUICKSTART_KEY)
    file = upload(client, [chat_line("a", "x"), chat_line("b", "y"), chat_line("c", "z")])
    first = client.batches.create(input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h")
    second = client.batches.create(input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h")
    page = client.batches.list(limit=1)
    assert [b.id for b in page.data] == [second.id] and page.has_more
    nxt = client.batches.list(limit=1, after=second.id)
    assert [b.id for b in nxt.data] == [first.id]
    for b in (first, second):
        wait(client, b.id, {"completed", "failed"})


def batch_cost(gateway: Gateway) -> float:
    """Every cost the gateway has recorded, in USD."""
    metrics = httpx.get(f"{gateway.url}/metrics").text
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines() if line.startswith("bedrock_gateway_cost_usd_total{")
    )


def forget_results(s3, batch_id: str) -> None:
    """Drops the results from the gateway's record of a batch, as a replica that has not seen
    them (or a concurrent first retrieve) would find it."""
    suffix = batch_id.removeprefix("batch_")
    arn = base64.b32decode(suffix + "=" * (-len(suffix) % 8), casefold=True).decode()
    key = f"gateway/batches/{arn.rsplit('/', 1)[1]}.json"
    record = json.loads(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    assert record.pop("results"), record
    s3.put_object(Bucket=BUCKET, Key=key, Body=json.dumps(record).encode())


def test_a_batch_is_billed_once_however_many_first_retrieves(client_for, gateway, s3):
    client = client_for(QUICKSTART_KEY)
    file = upload(client, [chat_line(f"bill-{i}", f"bill me {i}") for i in range(3)])
    batch = client.batches.create(input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h")
    before = batch_cost(gateway)
    done, seen = wait(client, batch.id, {"completed", "failed"})
    assert done.status == "completed", (seen, done.errors)
    billed = batch_cost(gateway)
    assert billed > before, "the first retrieve of the finished batch records its cost"

    # Another replica (or a concurrent first retrieve) that has not seen the results writes them again.
    forget_results(s3, batch.id)
    again = client.batches.retrieve(batch.id)
    assert again.output_file_id == done.output_file_id
    assert batch_cost(gateway) == billed, "billed once"


def test_files_and_batches_requests_are_counted_by_endpoint_and_status(gateway, client_for):
    def count(endpoint: str, status: str) -> float:
        text = httpx.get(f"{gateway.url}/metrics", timeout=5).text
        line = f'bedrock_gateway_requests_total{{endpoint="{endpoint}",model="-",status="{status}"}} '
        return next((float(row[len(line) :]) for row in text.splitlines() if row.startswith(line)), 0.0)

    client = client_for(QUICKSTART_KEY)
    before = {(e, s): count(e, s) for e in ("files", "batches") for s in ("200", "404")}
    client.files.list()
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve("file-nosuchfile")
    client.batches.list()
    with pytest.raises(openai.NotFoundError):
        client.batches.retrieve("batch_nosuchbatch")
    after = {key: count(*key) for key in before}
    assert {key: after[key] - before[key] for key in before} == {key: 1.0 for key in before}


def gateway_batch_objects(s3) -> set[str]:
    """The keys the gateway writes for batches: index markers, records and Bedrock inputs."""
    return {
        o["Key"]
        for prefix in ("gateway/batch-index/", "gateway/batches/", "gateway/batch-input/")
        for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    }


def test_a_failure_after_the_job_exists_stops_it_and_leaves_no_batch(client_for, sim, s3):
    client = client_for(QUICKSTART_KEY)
    file = upload(client, [chat_line(f"stop-{i}", f"stop me {i}") for i in range(3)])
    listed_before = {b.id for b in client.batches.list(limit=100).data}
    objects_before = gateway_batch_objects(s3)
    sim.clear()
    # The job is created; the gateway's next step (reading the job back) fails once.
    fault = {"operation": "GetModelInvocationJob", "error": "InternalServerException"}
    assert httpx.post(f"{sim.url}/_sim/batch-faults", json=fault).status_code == 204
    try:
        with pytest.raises(openai.InternalServerError) as e:
            client.batches.create(input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h")
    finally:
        assert httpx.delete(f"{sim.url}/_sim/batch-faults").status_code == 204
    assert e.value.status_code == 502
    assert error_of(e.value) == {
        "message": "Bedrock failed the request for model `demo/nova-lite` (HTTP 500, InternalServerException): "
        "The server encountered an internal error while processing the request.",
        "type": "server_error",
        "param": None,
        "code": "upstream_error",
    }

    calls = [(r["method"], r["path"]) for r in sim.requests() if r["path"].startswith("/model-invocation-job")]
    assert [c for c in calls if c[1] == "/model-invocation-job"] == [("POST", "/model-invocation-job")]
    [(_, got)] = [c for c in calls if c[0] == "GET"]
    [(_, stopped)] = [c for c in calls if c[1].endswith("/stop")]
    assert stopped == f"{got}/stop", "StopModelInvocationJob names the job that was created"

    assert {b.id for b in client.batches.list(limit=100).data} == listed_before, "no batch is left listed"
    assert gateway_batch_objects(s3) == objects_before, "no marker, record or Bedrock input is left"


def test_a_batch_counts_once_against_its_owners_limits(client_for, s3):
    fresh_minute()
    client = client_for(LIMITED_KEY)
    file = upload(client, [chat_line(f"limit-{i}", f"count me {i}") for i in range(3)])
    batch = client.batches.create(input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h")
    done, seen = wait(client, batch.id, {"completed", "failed"})
    assert done.status == "completed", (seen, done.errors)
    used = done.usage.total_tokens
    assert used > LIMITED_TPM, done.usage

    # The batch's tokens now count against the owner's tokens per minute: chat is refused...
    with pytest.raises(openai.RateLimitError) as chat:
        client.chat.completions.create(model=CHAT, messages=[{"role": "user", "content": "hi"}])
    refused = error_of(chat.value)
    prefix = (
        f"Rate limit reached for {CHAT} on tokens per minute (TPM) under the access policy "
        f"ai-gateway/batch-limited: Limit {LIMITED_TPM}, Used {used}. Please try again in "
    )
    assert refused["message"].startswith(prefix), refused
    assert (refused["type"], refused["code"]) == ("tokens", "rate_limit_exceeded")
    # ... and so is a new batch, with the same 429.
    with pytest.raises(openai.RateLimitError) as again:
        client.batches.create(input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h")
    assert again.value.response.headers["retry-after"]
    batch_refused = error_of(again.value)
    assert batch_refused["message"].startswith(prefix), batch_refused
    assert {k: v for k, v in batch_refused.items() if k != "message"} == {
        k: v for k, v in refused.items() if k != "message"
    }

    # Written again by a replica that had not seen the results: charged once all the same.
    forget_results(s3, batch.id)
    client.batches.retrieve(batch.id)
    with pytest.raises(openai.RateLimitError) as still:
        client.chat.completions.create(model=CHAT, messages=[{"role": "user", "content": "hi"}])
    assert error_of(still.value)["message"].startswith(prefix), "charged once"


# -------------------------------------------------------------------- expiry
def file_key(file_id: str) -> str:
    """The S3 key of a file: its id is `file-` + base32 of `<account>/<token>`."""
    suffix = file_id.removeprefix("file-")
    token = base64.b32decode(suffix + "=" * (-len(suffix) % 8), casefold=True).decode().split("/", 1)[1]
    return f"gateway/files/{token}"


def expire(s3, file_id: str) -> None:
    """Moves a file's expiry into the past, as time passing would (the policy's minimum is an hour)."""
    key = file_key(file_id)
    metadata = s3.head_object(Bucket=BUCKET, Key=key)["Metadata"]
    metadata["expires-at"] = str(int(time.time()) - 1)
    s3.copy_object(
        Bucket=BUCKET, Key=key, CopySource={"Bucket": BUCKET, "Key": key}, Metadata=metadata, MetadataDirective="REPLACE"
    )


def stored(s3, file_id: str) -> bool:
    return s3.list_objects_v2(Bucket=BUCKET, Prefix=file_key(file_id)).get("KeyCount", 0) == 1


def test_a_file_with_an_expiration_policy_reports_when_it_expires(client_for):
    client = client_for(QUICKSTART_KEY)
    policy = {"anchor": "created_at", "seconds": 3600}
    created = client.files.create(
        file=("expiring.jsonl", jsonl([chat_line("a", "x")]), "application/jsonl"), purpose="batch", expires_after=policy
    )
    assert created.expires_at == created.created_at + 3600
    assert client.files.retrieve(created.id).expires_at == created.expires_at
    [listed] = [f for f in client.files.list().data if f.id == created.id]
    assert listed.expires_at == created.expires_at
    # Without a policy: OpenAI's default for batch files, 30 days.
    default = upload(client, [chat_line("a", "x")])
    assert default.expires_at == default.created_at + 30 * 86400
    assert client.files.retrieve(default.id).expires_at == default.expires_at


def test_an_expired_file_behaves_as_deleted_and_is_removed_when_touched(client_for, s3):
    client = client_for(QUICKSTART_KEY)
    policy = {"anchor": "created_at", "seconds": 3600}
    lines = [chat_line("a", "x"), chat_line("b", "y")]
    files = [
        client.files.create(file=(f"f{i}.jsonl", jsonl(lines), "application/jsonl"), purpose="batch", expires_after=policy)
        for i in range(4)
    ]
    for f in files:
        expire(s3, f.id)
    retrieved, content, batched, listed = files
    for call, file in ((client.files.retrieve, retrieved), (client.files.content, content), (client.files.delete, retrieved)):
        with pytest.raises(openai.NotFoundError) as e:
            call(file.id)
        assert error_of(e.value) == {
            "message": f"No such File object: {file.id}",
            "type": "invalid_request_error",
            "param": "file_id",
            "code": "file_not_found",
        }
    with pytest.raises(openai.NotFoundError) as e:
        client.batches.create(input_file_id=batched.id, endpoint="/v1/chat/completions", completion_window="24h")
    assert error_of(e.value)["param"] == "input_file_id"
    assert [stored(s3, f.id) for f in files] == [False, False, False, True], "removed when touched"
    assert listed.id not in [f.id for f in client.files.list().data]
    assert not stored(s3, listed.id), "a listing sweeps the expired files it comes across"


@pytest.mark.parametrize(
    "policy, param, message",
    [
        (
            {"anchor": "created_at", "seconds": 60},
            "expires_after.seconds",
            "Invalid value for `expires_after.seconds`: 60; use 3600 (1 hour) to 2592000 (30 days).",
        ),
        (
            {"anchor": "created_at", "seconds": 2592001},
            "expires_after.seconds",
            "Invalid value for `expires_after.seconds`: 2592001; use 3600 (1 hour) to 2592000 (30 days).",
        ),
        (
            {"anchor": "last_active_at", "seconds": 3600},
            "expires_after.anchor",
            "Invalid value for `expires_after.anchor`: `last_active_at`; the supported anchor is `created_at`.",
        ),
        (
            {"anchor": "created_at", "seconds": "soon"},
            "expires_after.seconds",
            "Invalid value for `expires_after.seconds`: `soon`; it is a whole number of seconds.",
        ),
        ({"seconds": 3600}, "expires_after.anchor", "Missing required parameter: `expires_after.anchor`."),
    ],
    ids=["too-short", "too-long", "anchor", "not-a-number", "no-anchor"],
)
def test_bad_expiration_policies_are_400s_naming_the_field(client_for, s3, policy, param, message):
    client = client_for(QUICKSTART_KEY)
    before = s3.list_objects_v2(Bucket=BUCKET, Prefix="gateway/files/").get("KeyCount", 0)
    with pytest.raises(openai.BadRequestError) as e:
        client.files.create(
            file=("a.jsonl", jsonl([chat_line("a", "x")]), "application/jsonl"), purpose="batch", expires_after=policy
        )
    assert error_of(e.value) == {"message": message, "type": "invalid_request_error", "param": param, "code": None}
    assert s3.list_objects_v2(Bucket=BUCKET, Prefix="gateway/files/").get("KeyCount", 0) == before


def test_an_expiration_policy_after_the_file_part_is_refused(gateway, s3):
    boundary = "bgw-e2e-boundary"
    parts = [
        ('name="purpose"', b"batch"),
        ('name="file"; filename="late.jsonl"\r\nContent-Type: application/jsonl', jsonl([chat_line("a", "x")])),
        ('name="expires_after[anchor]"', b"created_at"),
        ('name="expires_after[seconds]"', b"3600"),
    ]
    body = b"".join(
        f"--{boundary}\r\nContent-Disposition: form-data; {head}\r\n\r\n".encode() + value + b"\r\n" for head, value in parts
    ) + f"--{boundary}--\r\n".encode()
    before = s3.list_objects_v2(Bucket=BUCKET, Prefix="gateway/files/").get("KeyCount", 0)
    r = httpx.post(
        f"{gateway.url}/v1/files",
        content=body,
        headers={"Authorization": f"Bearer {QUICKSTART_KEY}", "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert r.status_code == 400, r.text
    assert r.json()["error"] == {
        "message": "Send `expires_after[anchor]` before the `file` part: the gateway stores the file as it arrives.",
        "type": "invalid_request_error",
        "param": "expires_after",
        "code": None,
    }
    assert s3.list_objects_v2(Bucket=BUCKET, Prefix="gateway/files/").get("KeyCount", 0) == before


def test_output_expires_after_applies_to_the_batch_output_files(client_for):
    client = client_for(QUICKSTART_KEY)
    lines = [chat_line("ok-1", "fine"), chat_line("bad", "[[sim:error=ThrottlingException]] no"), chat_line("ok-2", "ok")]
    batch = client.batches.create(
        input_file_id=upload(client, lines).id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        output_expires_after={"anchor": "created_at", "seconds": 7200},
    )
    done, seen = wait(client, batch.id, {"completed", "failed"})
    assert done.status == "completed", (seen, done.errors)
    for file_id in (done.output_file_id, done.error_file_id):
        f = client.files.retrieve(file_id)
        assert f.expires_at == f.created_at + 7200, f
    with pytest.raises(openai.BadRequestError) as e:
        client.batches.create(
            input_file_id=batch.input_file_id,
            endpoint="/v1/chat/completions",
            completion_window="24h",
            output_expires_after={"anchor": "created_at", "seconds": 10},
        )
    assert error_of(e.value) == {
        "message": "Invalid value for `output_expires_after.seconds`: 10; use 3600 (1 hour) to 2592000 (30 days).",
        "type": "invalid_request_error",
        "param": "output_expires_after.seconds",
        "code": None,
    }


def test_image_batches_are_refused_saying_bedrock_cannot_run_them(client_for):
    client = client_for(QUICKSTART_KEY)
    file = upload(client, [chat_line("a", "x"), chat_line("b", "y")])
    with pytest.raises(openai.BadRequestError) as e:
        client.batches.create(input_file_id=file.id, endpoint="/v1/images/generations", completion_window="24h")
    assert error_of(e.value) == {
        "message": "Invalid value for `endpoint`: `/v1/images/generations`: Bedrock batch inference does not run image "
        "generation models, so image requests cannot be batched; send them to the endpoint one at a time.",
        "type": "invalid_request_error",
        "param": "endpoint",
        "code": None,
    }


def test_http_image_urls_in_batch_lines_are_refused_naming_the_line(client_for, sim):
    client = client_for(QUICKSTART_KEY)
    remote = chat_line("remote", "x")
    remote["body"]["messages"] = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
            ],
        }
    ]
    file = upload(client, [chat_line("a", "x"), remote, chat_line("c", "z")])
    sim.clear()
    with pytest.raises(openai.BadRequestError) as e:
        client.batches.create(input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h")
    err = error_of(e.value)
    assert (err["param"], err["message"]) == (
        "input_file_id",
        "Line 2: `messages[0].content[1].image_url.url` is an http(s) image URL; batch requests take images as base64 "
        "`data:` URLs only (the gateway does not download images while it creates a batch, and Bedrock batch jobs "
        "fetch nothing).",
    )
    assert not [r for r in sim.requests() if r["path"].startswith("/model-invocation-job")], "no job was created"


def test_a_batch_outlives_its_deleted_or_expired_input_file(client_for, s3):
    client = client_for(QUICKSTART_KEY)
    policy = {"anchor": "created_at", "seconds": 3600}
    batches = []
    for gone in ("deleted", "expired"):
        lines = [chat_line(f"{gone}-{i}", f"{gone} {i}") for i in range(3)]
        file = client.files.create(file=("in.jsonl", jsonl(lines), "application/jsonl"), purpose="batch", expires_after=policy)
        batch = client.batches.create(input_file_id=file.id, endpoint="/v1/chat/completions", completion_window="24h")
        if gone == "deleted":
            client.files.delete(file.id)
        else:
            expire(s3, file.id)
            assert file.id not in [f.id for f in client.files.list().data]
        assert not stored(s3, file.id)
        batches.append((batch, lines))
    for batch, lines in batches:
        done, seen = wait(client, batch.id, {"completed", "failed"})
        assert done.status == "completed", (seen, done.errors)
        out = lines_of(client.files.content(done.output_file_id).text)
        assert sorted(line["custom_id"] for line in out) == sorted(line["custom_id"] for line in lines)
