"""Reasoning through the official OpenAI SDK: effort to thinking budget, reasoning text, and
thinking blocks round-tripped through a three-turn conversation with tools."""

from __future__ import annotations

import json

import openai
import pytest

from e2e_helpers import body_of, error_body, only_call

CLAUDE = "demo/claude-sonnet"
TIME = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}
WEATHER = {
    "type": "function",
    "function": {"name": "weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}},
}


def extra(message, name):
    return (message.model_extra or {}).get(name)


def test_effort_becomes_a_thinking_budget_and_reasoning_comes_back(client, sim):
    r = client.chat.completions.create(
        model=CLAUDE,
        messages=[{"role": "user", "content": "Why is the sky blue?"}],
        reasoning_effort="medium",
        max_tokens=4000,
        temperature=0.3,
    )
    msg = r.choices[0].message
    assert msg.content == "Simulated reply to: Why is the sky blue?"
    assert extra(msg, "reasoning_content") == "Thinking about: Why is the sky blue?"
    blocks = extra(msg, "thinking_blocks")
    assert [b["type"] for b in blocks] == ["thinking"]
    assert blocks[0]["thinking"] == "Thinking about: Why is the sky blue?" and blocks[0]["signature"]
    body = body_of(only_call(sim))
    assert body["additionalModelRequestFields"] == {"thinking": {"type": "enabled", "budget_tokens": 2400}}
    # Claude refuses a temperature other than 1 while thinking: it is left out.
    assert body["inferenceConfig"] == {"maxTokens": 4000}


def test_small_max_tokens_is_raised_above_the_floor_budget(client, sim):
    client.chat.completions.create(
        model=CLAUDE, messages=[{"role": "user", "content": "hi"}], reasoning_effort="low", max_tokens=100
    )
    body = body_of(only_call(sim))
    assert body["additionalModelRequestFields"]["thinking"]["budget_tokens"] == 1024
    assert body["inferenceConfig"]["maxTokens"] == 1124


def test_reasoning_streams_as_reasoning_content_with_the_signed_block(client, sim):
    chunks = list(
        client.chat.completions.create(
            model=CLAUDE,
            messages=[{"role": "user", "content": "think hard [[sim:redacted-thinking]]"}],
            reasoning_effort="high",
            max_tokens=2048,
            stream=True,
        )
    )
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    assert "".join(extra(d, "reasoning_content") or "" for d in deltas) == "Thinking about: think hard"
    assert "".join(d.content or "" for d in deltas) == "Simulated reply to: think hard"
    blocks = [b for d in deltas for b in (extra(d, "thinking_blocks") or [])]
    assert [b["type"] for b in blocks] == ["thinking", "redacted_thinking"]
    assert blocks[0]["thinking"] == "Thinking about: think hard" and blocks[0]["signature"]
    # Reasoning comes before the answer.
    first_reasoning = next(i for i, d in enumerate(deltas) if extra(d, "reasoning_content"))
    first_text = next(i for i, d in enumerate(deltas) if d.content)
    assert first_reasoning < first_text
    only_call(sim, "converse-stream")


def test_three_turns_with_tools_and_thinking(client, sim):
    kw = {"model": CLAUDE, "tools": [WEATHER, TIME], "reasoning_effort": "low", "max_tokens": 3000}
    messages = [{"role": "user", "content": 'Plan my day [[sim:tool=weather:{"city":"Oslo"}]] [[sim:redacted-thinking]]'}]
    r1 = client.chat.completions.create(messages=messages, **kw)
    m1 = r1.choices[0].message
    assert r1.choices[0].finish_reason == "tool_calls"
    assert [b["type"] for b in extra(m1, "thinking_blocks")] == ["thinking", "redacted_thinking"]
    messages.append(m1.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": m1.tool_calls[0].id, "content": "Snow [[sim:tool=get_time]]"})

    r2 = client.chat.completions.create(messages=messages, **kw)
    m2 = r2.choices[0].message
    assert [c.function.name for c in m2.tool_calls] == ["get_time"]
    assert extra(m2, "reasoning_content") == "Thinking about: Snow"
    messages.append(m2.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": m2.tool_calls[0].id, "content": "08:00"})

    sim.clear()
    r3 = client.chat.completions.create(messages=messages, **kw)
    assert r3.choices[0].message.content == "Simulated reply to: 08:00"
    assert r3.choices[0].finish_reason == "stop"
    body = body_of(only_call(sim))
    # Each assistant turn replays its thinking, unchanged, before its toolUse blocks.
    first, second = body["messages"][1]["content"], body["messages"][3]["content"]
    assert [next(iter(b)) for b in first] == ["reasoningContent", "reasoningContent", "toolUse"]
    assert first[0]["reasoningContent"]["reasoningText"]["signature"] == extra(m1, "thinking_blocks")[0]["signature"]
    assert first[1]["reasoningContent"] == {"redactedContent": extra(m1, "thinking_blocks")[1]["data"]}
    assert [next(iter(b)) for b in second] == ["reasoningContent", "toolUse"]


def test_dropping_the_thinking_blocks_is_refused_by_bedrock(client, sim):
    kw = {"model": CLAUDE, "tools": [TIME], "reasoning_effort": "low", "max_tokens": 3000}
    messages = [{"role": "user", "content": "time? [[sim:tool=get_time]]"}]
    m1 = client.chat.completions.create(messages=messages, **kw).choices[0].message
    stripped = m1.model_dump(exclude_none=True)
    stripped.pop("thinking_blocks")
    messages += [stripped, {"role": "tool", "tool_call_id": m1.tool_calls[0].id, "content": "08:00"}]
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(messages=messages, **kw)
    assert "must start with a thinking block" in error_body(e.value)["message"]
    # A tampered thinking text is refused too: the signature no longer matches.
    tampered = m1.model_dump(exclude_none=True)
    tampered["thinking_blocks"][0]["thinking"] += " (edited)"
    messages[1] = tampered
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(messages=messages, **kw)
    assert "signature" in error_body(e.value)["message"]


def test_forced_tool_choice_with_thinking_is_a_clear_400(client, sim):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(
            model=CLAUDE,
            messages=[{"role": "user", "content": "x"}],
            tools=[TIME],
            tool_choice="required",
            reasoning_effort="low",
        )
    err = error_body(e.value)
    assert err["param"] == "tool_choice" and "demo/claude-sonnet" in err["message"]
    sim.clear()


def test_a_model_without_reasoning_names_the_model_and_the_feature(client, sim):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(
            model="demo/nova-lite", messages=[{"role": "user", "content": "x"}], reasoning_effort="high"
        )
    err = error_body(e.value)
    assert err["message"] == "The model `demo/nova-lite` (Amazon Nova) does not support `reasoning_effort`."
    assert err["param"] == "reasoning_effort"
    # reasoning_effort "none" is always fine.
    r = client.chat.completions.create(
        model="demo/nova-lite", messages=[{"role": "user", "content": "x"}], reasoning_effort="none"
    )
    assert "additionalModelRequestFields" not in body_of(only_call(sim))
    assert r.choices[0].finish_reason == "stop"
