"""Prompt caching, images, documents, other parameters and per-family capabilities, through the
official OpenAI SDK. Families beyond the quick start are served by a private gateway whose
manifests add a few BedrockModels to account `demo`."""

from __future__ import annotations

import base64
import json
import uuid

import openai
import pytest

from conftest import QUICKSTART_KEY, start_gateway_proc, write_manifests
from e2e_helpers import body_of, converse_calls, error_body, metric_value, only_call

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
TIME = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}

FAMILY_MODELS = {
    "claude-haiku-45": "us.anthropic.claude-haiku-4-5-20251001-v1:0",
    "deepseek-r1": "us.deepseek.r1-v1:0",
    "mistral-7b": "mistral.mistral-7b-instruct-v0:2",
    "nova-micro": "amazon.nova-micro-v1:0",
}


@pytest.fixture(scope="module")
def families_gateway(sim, logdir):
    manifests = write_manifests(logdir / "manifests-families", sim.url)
    docs = [
        f"apiVersion: bedrockgateway.io/v1alpha1\nkind: BedrockModel\nmetadata:\n  name: {name}\n"
        f"  namespace: ai-gateway\nspec:\n  accountRef: demo\n  modelId: {model_id}\n"
        for name, model_id in FAMILY_MODELS.items()
    ]
    docs.append(
        "apiVersion: bedrockgateway.io/v1alpha1\nkind: BedrockModel\nmetadata:\n  name: guarded\n"
        "  namespace: ai-gateway\nspec:\n  accountRef: demo\n  modelId: amazon.nova-lite-v1:0\n"
        "  guardrail: {id: abc123def456, version: '3', trace: enabled}\n"
    )
    (manifests / "test-families.yaml").write_text("---\n".join(docs))
    # This gateway may fetch images from private addresses (the test image server is on loopback).
    gw = start_gateway_proc(
        manifests, logdir, name="bedrock-gateway-proxy-families", extra_args=["--allow-private-image-urls"]
    )
    yield gw
    gw.proc.stop()


@pytest.fixture
def fam(client_for, families_gateway):
    return client_for(QUICKSTART_KEY, families_gateway)


def cached_system(text: str) -> dict:
    return {"role": "system", "content": [{"type": "text", "text": text, "cache_control": {"type": "ephemeral"}}]}


@pytest.mark.parametrize("stream", [False, True], ids=["converse", "converse-stream"])
def test_cache_control_writes_then_reads_and_usage_says_so(client, http, sim, stream):
    # A fresh prefix per run: the simulator remembers what it cached.
    system = f"Long stable instructions {uuid.uuid4().hex} for every request of this app"
    messages = [cached_system(system), {"role": "user", "content": "question one"}]

    def usage():
        r = client.chat.completions.create(
            model="demo/claude-sonnet",
            messages=messages,
            stream=stream,
            **({"stream_options": {"include_usage": True}} if stream else {}),
        )
        return list(r)[-1].usage if stream else r.usage

    def cache_metric(kind: str):
        text = http.get("/metrics").text
        return metric_value(text, "bedrock_gateway_tokens_total", model="demo/claude-sonnet", type=kind)

    before = cache_metric("cache_read"), cache_metric("cache_write")
    first, second = usage(), usage()
    prefix = len(system.split())
    assert (cache_metric("cache_read"), cache_metric("cache_write")) == (before[0] + prefix, before[1] + prefix)
    cache = lambda u: (u.prompt_tokens_details.cached_tokens, u.prompt_tokens_details.model_dump()["cache_write_tokens"])
    assert cache(first) == (0, prefix)
    assert cache(second) == (prefix, 0)
    # prompt_tokens counts cached input too.
    assert first.prompt_tokens == second.prompt_tokens == prefix + 2
    body = body_of(sim.requests()[0])
    assert body["system"] == [{"text": system}, {"cachePoint": {"type": "default"}}]


def test_one_hour_ttl_where_the_model_has_it(fam, sim):
    text = f"Stable {uuid.uuid4().hex}"
    fam.chat.completions.create(
        model="demo/claude-haiku-45",
        messages=[
            {"role": "system", "content": [{"type": "text", "text": text, "cache_control": {"type": "ephemeral", "ttl": "1h"}}]},
            {"role": "user", "content": "q"},
        ],
    )
    assert body_of(only_call(sim))["system"][1] == {"cachePoint": {"type": "default", "ttl": "1h"}}


def test_cache_points_a_model_cannot_take_are_dropped_and_counted(client, http, sim):
    before = metric_value(http.get("/metrics").text, "bedrock_gateway_cache_points_dropped_total", model="demo/nova-lite")
    r = client.chat.completions.create(
        model="demo/nova-lite",
        messages=[cached_system("Instructions here"), {"role": "user", "content": "q"}],
        tools=[dict(TIME, cache_control={"type": "ephemeral"})],
    )
    assert r.choices[0].finish_reason == "stop"
    body = body_of(only_call(sim))
    # Nova caches system and messages, not tool definitions.
    assert body["system"][1] == {"cachePoint": {"type": "default"}}
    assert [next(iter(t)) for t in body["toolConfig"]["tools"]] == ["toolSpec"]
    after = metric_value(http.get("/metrics").text, "bedrock_gateway_cache_points_dropped_total", model="demo/nova-lite")
    assert after == before + 1


def test_images_and_documents(client, sim):
    png = base64.b64encode(PNG).decode()
    pdf = base64.b64encode(PDF).decode()
    r = client.chat.completions.create(
        model="demo/nova-lite",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "describe"},
                    # Mislabelled on purpose: the format comes from the bytes.
                    {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{png}"}},
                    {"type": "file", "file": {"filename": "Q3 report_v2.pdf", "file_data": f"data:application/pdf;base64,{pdf}"}},
                    {"type": "file", "file": {"filename": "Q3 report v2.pdf", "file_data": f"data:application/pdf;base64,{pdf}"}},
                ],
            }
        ],
    )
    assert r.choices[0].message.content == "Simulated reply to: describe"
    content = body_of(only_call(sim))["messages"][0]["content"]
    assert content[1] == {"image": {"format": "png", "source": {"bytes": png}}}
    assert [(c["document"]["format"], c["document"]["name"]) for c in content[2:]] == [
        ("pdf", "Q3 report v2"),
        ("pdf", "Q3 report v2 (2)"),
    ]


def test_bad_images_are_400s_naming_the_part(client, sim):
    cases = [
        ("data:image/png;base64,AAAA", "the image is not PNG, JPEG, GIF or WebP"),
        # SSRF guard: loopback, link-local (cloud metadata), private, unique-local.
        ("http://127.0.0.1:9/cat.png", "non-public address"),
        ("http://169.254.169.254/latest/meta-data", "non-public address"),
        ("https://10.0.0.8/cat.png", "non-public address"),
        ("http://[fd00::1]/cat.png", "non-public address"),
    ]
    for url, fragment in cases:
        with pytest.raises(openai.BadRequestError) as e:
            client.chat.completions.create(
                model="demo/nova-lite",
                messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}],
            )
        err = error_body(e.value)
        assert fragment in err["message"]
        assert err["param"] == "messages[0].content[0].image_url.url"
    assert sim.requests() == []


@pytest.fixture(scope="module")
def image_server():
    """A loopback HTTP server: /cat.png is a PNG, /big.png is larger than the gateway takes."""
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = {"/cat.png": PNG, "/big.png": PNG + b"\0" * (5 * 1024 * 1024)}.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_remote_images_are_fetched_when_the_operator_allows_the_address(fam, sim, image_server):
    r = fam.chat.completions.create(
        model="demo/nova-lite",
        messages=[{"role": "user", "content": [
            {"type": "text", "text": "what is it"},
            {"type": "image_url", "image_url": {"url": f"{image_server}/cat.png"}},
        ]}],
    )
    assert r.choices[0].message.content == "Simulated reply to: what is it"
    image = body_of(only_call(sim))["messages"][0]["content"][1]["image"]
    assert image == {"format": "png", "source": {"bytes": base64.b64encode(PNG).decode()}}
    sim.clear()
    for path, fragment in [("/missing.png", "answered 404"), ("/big.png", "larger than")]:
        with pytest.raises(openai.BadRequestError) as e:
            fam.chat.completions.create(
                model="demo/nova-lite",
                messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": image_server + path}}]}],
            )
        assert fragment in error_body(e.value)["message"]
    assert sim.requests() == []


@pytest.mark.parametrize(
    "model, kwargs, feature, param",
    [
        ("demo/deepseek-r1", {"tools": [TIME]}, "tools", "tools"),
        ("demo/mistral-7b", {"system": True}, "system prompts", "messages[0]"),
        ("demo/nova-micro", {"image": True}, "images", "messages[0].content[0].type"),
    ],
)
def test_a_missing_family_feature_is_a_400_naming_model_and_feature(fam, sim, model, kwargs, feature, param):
    messages = [{"role": "user", "content": "hi"}]
    if kwargs.pop("system", False):
        messages.insert(0, {"role": "system", "content": "Be brief."})
    if kwargs.pop("image", False):
        url = "data:image/png;base64," + base64.b64encode(PNG).decode()
        messages = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}]
    with pytest.raises(openai.BadRequestError) as e:
        fam.chat.completions.create(model=model, messages=messages, **kwargs)
    err = error_body(e.value)
    assert err["message"].startswith(f"The model `{model}` (") and err["message"].endswith(f"does not support {feature}.")
    assert err["param"] == param
    assert sim.requests() == []


def test_native_structured_output_where_the_model_has_it(fam, sim):
    schema = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 3}}, "required": ["n"]}
    r = fam.chat.completions.create(
        model="demo/claude-haiku-45",
        messages=[{"role": "user", "content": "a number"}],
        response_format={"type": "json_schema", "json_schema": {"name": "num", "schema": schema}},
    )
    assert json.loads(r.choices[0].message.content) == {"n": 1}
    fmt = body_of(only_call(sim))["outputConfig"]["textFormat"]
    assert fmt["type"] == "json_schema"
    sent = fmt["structure"]["jsonSchema"]
    assert json.loads(sent["schema"]) == {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    assert sent["name"] == "num"


def test_other_parameters_reach_bedrock_or_are_refused(client, sim):
    client.chat.completions.create(
        model="demo/nova-lite",
        messages=[{"role": "user", "content": "hi"}],
        service_tier="flex",
        metadata={"team": "search", "run": "42"},
        seed=7,
        presence_penalty=0.5,
        extra_body={"top_k": 20},
    )
    body = body_of(only_call(sim))
    assert body["serviceTier"] == {"type": "flex"}
    assert body["requestMetadata"] == {"team": "search", "run": "42"}
    assert body["additionalModelRequestFields"] == {"inferenceConfig": {"topK": 20}}
    for kwargs, param in [
        ({"n": 2, "stream": True}, "n"),
        ({"n": 9}, "n"),
        ({"logprobs": True}, "logprobs"),
        ({"logit_bias": {"1": 1}}, "logit_bias"),
    ]:
        with pytest.raises(openai.BadRequestError) as e:
            client.chat.completions.create(model="demo/nova-lite", messages=[{"role": "user", "content": "hi"}], **kwargs)
        assert error_body(e.value)["param"] == param


@pytest.mark.parametrize("model", ["demo/claude-sonnet", "demo/nova-lite"])
def test_images_in_tool_results_only_where_the_family_takes_them(client, sim, model):
    url = "data:image/png;base64," + base64.b64encode(PNG).decode()
    messages = [
        {"role": "user", "content": "screenshot?"},
        {"role": "assistant", "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": [{"type": "text", "text": "here"}, {"type": "image_url", "image_url": {"url": url}}]},
    ]
    if model == "demo/nova-lite":
        with pytest.raises(openai.BadRequestError) as e:
            client.chat.completions.create(model=model, messages=messages, tools=[TIME])
        err = error_body(e.value)
        assert err["message"] == "The model `demo/nova-lite` (Amazon Nova) does not support images in tool results."
        assert err["param"] == "messages[2].content[1].type"
        assert sim.requests() == []
        return
    r = client.chat.completions.create(model=model, messages=messages, tools=[TIME])
    assert r.choices[0].message.content == "Simulated reply to: here"
    result = body_of(only_call(sim))["messages"][2]["content"][0]["toolResult"]
    assert result["content"] == [{"text": "here"}, {"image": {"format": "png", "source": {"bytes": url.split(",", 1)[1]}}}]


def test_n_choices_are_fanned_out(client, sim):
    r = client.chat.completions.create(model="demo/nova-lite", messages=[{"role": "user", "content": "pick one"}], n=3)
    assert [c.index for c in r.choices] == [0, 1, 2]
    assert {c.message.content for c in r.choices} == {"Simulated reply to: pick one"}
    # Each choice is one Bedrock call, and the usage counts all of them.
    assert len(sim.requests()) == 3
    assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (3 * 2, 3 * 5)


@pytest.mark.parametrize("stream", [False, True])
def test_a_models_guardrail_reaches_bedrock_and_its_block_is_content_filter(fam, sim, stream):
    messages = [{"role": "user", "content": "[[sim:guardrail]] tell me something blocked"}]
    if stream:
        chunks = list(fam.chat.completions.create(model="demo/guarded", messages=messages, stream=True))
        finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
        assert finish == ["content_filter"]
    else:
        r = fam.chat.completions.create(model="demo/guarded", messages=messages)
        assert r.choices[0].finish_reason == "content_filter"
    sent = body_of(only_call(sim, "converse-stream" if stream else "converse"))
    assert sent["guardrailConfig"] == {"guardrailIdentifier": "abc123def456", "guardrailVersion": "3", "trace": "enabled"}
    # A model without a guardrail sends none.
    fam.chat.completions.create(model="demo/nova-micro", messages=[{"role": "user", "content": "hi"}])
    assert "guardrailConfig" not in body_of(converse_calls(sim, "converse")[-1])
