"""Chat completions through the official OpenAI SDK: sync, async, streaming."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from conftest import QUICKSTART_KEY
from e2e_helpers import (
    MODELS,
    assembled,
    body_of,
    converse_calls,
    finish_reasons,
    label_of,
    only_call,
    region_of,
)

HELLO = "Say hello to the gateway"
HELLO_REPLY = "Simulated reply to: Say hello to the gateway"
# 5 input words, 8 output words
HELLO_USAGE = (5, 8, 13)


def usage_tuple(u):
    return (u.prompt_tokens, u.completion_tokens, u.total_tokens)


def test_chat_sync_basic(client, sim):
    r = client.chat.completions.create(model="demo/nova-lite", messages=[{"role": "user", "content": HELLO}])
    assert r.object == "chat.completion"
    assert r.model == "demo/nova-lite"
    assert r.id
    assert len(r.choices) == 1
    choice = r.choices[0]
    assert choice.index == 0
    assert choice.message.role == "assistant"
    assert choice.message.content == HELLO_REPLY
    assert choice.finish_reason == "stop"
    assert usage_tuple(r.usage) == HELLO_USAGE

    rec = only_call(sim, "converse")
    assert rec["path"] == "/model/amazon.nova-lite-v1%3A0/converse"
    body = body_of(rec)
    assert body["messages"] == [{"role": "user", "content": [{"text": HELLO}]}]
    assert "system" not in body


def test_chat_multi_turn_and_system_reach_bedrock(client, sim):
    r = client.chat.completions.create(
        model="demo/claude-sonnet",
        messages=[
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": "first answer"},
            {"role": "developer", "content": "Answer in English."},
            {"role": "user", "content": "second question"},
        ],
    )
    assert r.choices[0].message.content == "Simulated reply to: second question"
    # input = words of all system + message texts: 3 + 2 + 2 + 3 + 2
    assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (12, 5)
    body = body_of(only_call(sim, "converse"))
    assert body["system"] == [{"text": "You are terse."}, {"text": "Answer in English."}]
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    texts = [" ".join(b["text"] for b in m["content"]) for m in body["messages"]]
    assert texts == ["first question", "first answer", "second question"]


def test_developer_message_becomes_system(client, sim):
    r = client.chat.completions.create(
        model="demo/nova-lite",
        messages=[{"role": "developer", "content": "Be nice."}, {"role": "user", "content": "hi there"}],
    )
    assert r.choices[0].message.content == "Simulated reply to: hi there"
    body = body_of(only_call(sim))
    assert body["system"] == [{"text": "Be nice."}]
    assert body["messages"] == [{"role": "user", "content": [{"text": "hi there"}]}]


def test_text_content_parts(client, sim):
    r = client.chat.completions.create(
        model="demo/nova-lite",
        messages=[
            {"role": "system", "content": [{"type": "text", "text": "System part."}]},
            {"role": "user", "content": [{"type": "text", "text": "part one"}, {"type": "text", "text": "part two"}]},
        ],
    )
    assert r.choices[0].message.content == "Simulated reply to: part one part two"
    assert r.usage.prompt_tokens == 6
    body = body_of(only_call(sim))
    assert body["system"] == [{"text": "System part."}]
    assert " ".join(b["text"] for b in body["messages"][0]["content"]) == "part one part two"


def test_inference_parameters_reach_bedrock(client, sim):
    r = client.chat.completions.create(
        model="demo/nova-lite",
        messages=[{"role": "user", "content": HELLO}],
        max_tokens=50,
        temperature=0.25,
        top_p=0.5,
        stop=["zzz", "yyy"],
        user="end-user-42",
    )
    assert r.choices[0].message.content == HELLO_REPLY
    cfg = body_of(only_call(sim))["inferenceConfig"]
    assert cfg == {"maxTokens": 50, "temperature": pytest.approx(0.25), "topP": pytest.approx(0.5), "stopSequences": ["zzz", "yyy"]}


def test_max_completion_tokens_and_string_stop(client, sim):
    r = client.chat.completions.create(
        model="demo/nova-lite", messages=[{"role": "user", "content": HELLO}], max_completion_tokens=40, stop="qqq"
    )
    assert r.choices[0].finish_reason == "stop"
    cfg = body_of(only_call(sim))["inferenceConfig"]
    assert cfg["maxTokens"] == 40
    assert cfg["stopSequences"] == ["qqq"]


def test_max_tokens_gives_finish_reason_length(client):
    r = client.chat.completions.create(
        model="demo/nova-lite", messages=[{"role": "user", "content": "one two three four five six"}], max_tokens=3
    )
    assert r.choices[0].message.content == "Simulated reply to:"
    assert r.choices[0].finish_reason == "length"
    assert usage_tuple(r.usage) == (6, 3, 9)


def test_stop_sequence_gives_finish_reason_stop(client):
    r = client.chat.completions.create(
        model="demo/nova-lite", messages=[{"role": "user", "content": "alpha STOP beta"}], stop=["STOP"]
    )
    assert r.choices[0].message.content == "Simulated reply to: alpha "
    assert r.choices[0].finish_reason == "stop"
    assert usage_tuple(r.usage) == (3, 4, 7)


def test_scripted_reply_is_returned_exactly(client):
    r = client.chat.completions.create(
        model="demo/claude-sonnet", messages=[{"role": "user", "content": "[[sim:reply=Bonjour, le monde !]]"}]
    )
    assert r.choices[0].message.content == "Bonjour, le monde !"
    assert r.usage.completion_tokens == 4


@pytest.mark.parametrize("served", sorted(MODELS))
@pytest.mark.parametrize("stream", [False, True], ids=["converse", "converse-stream"])
def test_every_model_form_reaches_bedrock_encoded(client, sim, served, stream):
    model_id, region, encoded = MODELS[served]
    text = f"which model is {served.split('/')[1]}"
    r = client.chat.completions.create(model=served, messages=[{"role": "user", "content": text}], stream=stream)
    if stream:
        chunks = list(r)
        assert assembled(chunks) == f"Simulated reply to: {text}"
        assert {c.model for c in chunks} == {served}
    else:
        assert r.choices[0].message.content == f"Simulated reply to: {text}"
        assert r.model == served
    op = "converse-stream" if stream else "converse"
    rec = only_call(sim, op)
    assert rec["path"] == f"/model/{encoded}/{op}"
    raw, decoded = label_of(rec)
    assert decoded == model_id
    assert ":" not in raw and "/" not in raw
    assert region_of(rec) == region


# ----------------------------------------------------------------- streaming
def test_stream_matches_non_stream(client, sim):
    messages = [{"role": "system", "content": "Stream it."}, {"role": "user", "content": HELLO}]
    plain = client.chat.completions.create(model="demo/claude-sonnet", messages=messages)
    chunks = list(client.chat.completions.create(model="demo/claude-sonnet", messages=messages, stream=True))

    assert chunks, "no chunks"
    assert assembled(chunks) == plain.choices[0].message.content == HELLO_REPLY
    assert chunks[0].choices[0].delta.role == "assistant"
    assert finish_reasons(chunks) == [plain.choices[0].finish_reason] == ["stop"]
    # the finish_reason chunk is the last one carrying a choice
    assert chunks[-1].choices and chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    assert all(c.model == "demo/claude-sonnet" for c in chunks)
    # without stream_options.include_usage: no usage anywhere, no empty-choices chunk
    assert all(c.usage is None for c in chunks)
    assert all(len(c.choices) == 1 and c.choices[0].index == 0 for c in chunks)
    # the same Bedrock request went to /converse and /converse-stream
    calls = converse_calls(sim)
    assert [c["path"].rsplit("/", 1)[1] for c in calls] == ["converse", "converse-stream"]
    assert body_of(calls[0]) == body_of(calls[1])


def test_stream_include_usage(client):
    chunks = list(
        client.chat.completions.create(
            model="demo/nova-lite",
            messages=[{"role": "user", "content": HELLO}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert assembled(chunks) == HELLO_REPLY
    last = chunks[-1]
    assert last.choices == []
    assert last.usage is not None and usage_tuple(last.usage) == HELLO_USAGE
    assert all(c.usage is None for c in chunks[:-1])
    assert sum(1 for c in chunks if not c.choices) == 1
    assert finish_reasons(chunks) == ["stop"]
    assert len({c.id for c in chunks}) == 1


def test_stream_max_tokens_and_stop(client):
    chunks = list(
        client.chat.completions.create(
            model="demo/nova-lite",
            messages=[{"role": "user", "content": "one two three four five six"}],
            max_tokens=3,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert assembled(chunks) == "Simulated reply to:"
    assert finish_reasons(chunks) == ["length"]
    assert usage_tuple(chunks[-1].usage) == (6, 3, 9)

    chunks = list(
        client.chat.completions.create(
            model="demo/nova-lite", messages=[{"role": "user", "content": "alpha STOP beta"}], stop="STOP", stream=True
        )
    )
    assert assembled(chunks) == "Simulated reply to: alpha "
    assert finish_reasons(chunks) == ["stop"]


def test_stream_raw_sse_ends_with_done(http):
    with http.stream(
        "POST",
        "/v1/chat/completions",
        headers={"Authorization": f"Bearer {QUICKSTART_KEY}"},
        json={"model": "demo/nova-lite", "messages": [{"role": "user", "content": HELLO}], "stream": True},
    ) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].split(";")[0].strip() == "text/event-stream"
        text = r.read().decode()
    events = [e for e in text.replace("\r\n", "\n").split("\n\n") if e.strip()]
    assert events[-1].strip() == "data: [DONE]"
    payloads = [json.loads(e.strip()[len("data: ") :]) for e in events[:-1]]
    assert "".join(p["choices"][0]["delta"].get("content") or "" for p in payloads if p["choices"]) == HELLO_REPLY


def test_stream_is_incremental(client):
    """Chunks are forwarded as Bedrock sends them, not buffered until the end."""
    stream = client.chat.completions.create(
        model="demo/nova-lite", messages=[{"role": "user", "content": "[[sim:gap=250]] a b c"}], stream=True
    )
    arrivals = []
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append((time.monotonic(), chunk.choices[0].delta.content))
    assert "".join(t for _, t in arrivals) == "Simulated reply to: a b c"
    # 6 deltas, 250 ms apart: the first must arrive well before the last
    assert arrivals[-1][0] - arrivals[0][0] >= 0.9, arrivals


# --------------------------------------------------------------------- async
def test_chat_async(async_client_for):
    async def go():
        async with async_client_for(QUICKSTART_KEY) as c:
            r = await c.chat.completions.create(model="demo/nova-lite", messages=[{"role": "user", "content": HELLO}])
            s = await c.chat.completions.create(
                model="demo/nova-lite",
                messages=[{"role": "user", "content": HELLO}],
                stream=True,
                stream_options={"include_usage": True},
            )
            chunks = [x async for x in s]
            return r, chunks

    r, chunks = asyncio.run(go())
    assert r.choices[0].message.content == HELLO_REPLY
    assert r.choices[0].finish_reason == "stop"
    assert usage_tuple(r.usage) == HELLO_USAGE
    assert assembled(chunks) == HELLO_REPLY
    assert chunks[0].choices[0].delta.role == "assistant"
    assert finish_reasons(chunks) == ["stop"]
    assert chunks[-1].choices == [] and usage_tuple(chunks[-1].usage) == HELLO_USAGE


def test_async_concurrent_requests_do_not_mix(async_client_for, sim):
    async def go():
        async with async_client_for(QUICKSTART_KEY) as c:

            async def one(i: int):
                model = ["demo/nova-lite", "demo/claude-sonnet", "demo/team-profile"][i % 3]
                if i % 2:
                    s = await c.chat.completions.create(
                        model=model, messages=[{"role": "user", "content": f"[[sim:gap=20]] request number {i}"}], stream=True
                    )
                    return model, assembled([x async for x in s])
                r = await c.chat.completions.create(model=model, messages=[{"role": "user", "content": f"request number {i}"}])
                return model, r.choices[0].message.content

            return await asyncio.gather(*(one(i) for i in range(8)))

    results = asyncio.run(go())
    assert [text for _, text in results] == [f"Simulated reply to: request number {i}" for i in range(8)]
    assert len(converse_calls(sim)) == 8
