"""Tools and structured output through the official OpenAI SDK: names, choices, history, streaming."""

from __future__ import annotations

import json

import pytest

from e2e_helpers import body_of, converse_calls, error_body, only_call

WEATHER = {
    "type": "function",
    "function": {
        "name": "weather.get",
        "description": "Current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1, "maximum": 7}},
            "required": ["city"],
        },
    },
}
TIME = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}
CLAUDE = "demo/claude-sonnet"


def call_directive(name: str, args: dict | None = None) -> str:
    return f"[[sim:tool={name}:{json.dumps(args)}]]" if args is not None else f"[[sim:tool={name}]]"


def test_parallel_tool_calls_restore_names_and_reach_bedrock_sanitised(client, sim):
    text = "Weather and time? " + call_directive("weather_get", {"city": "Paris"}) + call_directive("get_time")
    r = client.chat.completions.create(model=CLAUDE, messages=[{"role": "user", "content": text}], tools=[WEATHER, TIME])
    choice = r.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls
    assert [c.function.name for c in calls] == ["weather.get", "get_time"]
    assert [json.loads(c.function.arguments) for c in calls] == [{"city": "Paris"}, {}]
    assert all(c.type == "function" and c.id.startswith("tooluse_") for c in calls)
    assert choice.message.content is None

    body = body_of(only_call(sim, "converse"))
    specs = [t["toolSpec"] for t in body["toolConfig"]["tools"]]
    assert [s["name"] for s in specs] == ["weather_get", "get_time"]
    # Keywords Bedrock refuses are stripped from the schema sent.
    assert specs[0]["inputSchema"]["json"]["properties"]["days"] == {"type": "integer"}
    assert "toolChoice" not in body["toolConfig"]


def test_tool_results_go_back_as_one_user_turn_in_order(client, sim):
    text = "Plan " + call_directive("weather_get", {"city": "Oslo"}) + call_directive("get_time")
    messages = [{"role": "user", "content": text}]
    first = client.chat.completions.create(model=CLAUDE, messages=messages, tools=[WEATHER, TIME])
    calls = first.choices[0].message.tool_calls
    messages.append(first.choices[0].message.model_dump(exclude_none=True))
    messages += [
        {"role": "tool", "tool_call_id": calls[0].id, "content": "Snow"},
        {"role": "tool", "tool_call_id": calls[1].id, "content": [{"type": "text", "text": "09:30"}]},
    ]
    sim.clear()
    second = client.chat.completions.create(model=CLAUDE, messages=messages, tools=[WEATHER, TIME])
    assert second.choices[0].message.content == "Simulated reply to: Snow 09:30"
    assert second.choices[0].finish_reason == "stop"
    body = body_of(only_call(sim, "converse"))
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    uses = [b["toolUse"] for b in body["messages"][1]["content"]]
    assert [(u["toolUseId"], u["name"], u["input"]) for u in uses] == [
        (calls[0].id, "weather_get", {"city": "Oslo"}),
        (calls[1].id, "get_time", {}),
    ]
    results = [b["toolResult"] for b in body["messages"][2]["content"]]
    assert [(x["toolUseId"], x["content"]) for x in results] == [
        (calls[0].id, [{"text": "Snow"}]),
        (calls[1].id, [{"text": "09:30"}]),
    ]


def test_empty_or_blank_arguments_are_an_empty_object(client, sim):
    messages = [
        {"role": "user", "content": "time?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_time", "arguments": ""}},
                {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": "  \n"}},
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "10:00"},
        {"role": "tool", "tool_call_id": "call_2", "content": "10:01"},
    ]
    r = client.chat.completions.create(model="demo/nova-lite", messages=messages, tools=[TIME])
    assert r.choices[0].message.content == "Simulated reply to: 10:00 10:01"
    body = body_of(only_call(sim))
    assert [b["toolUse"]["input"] for b in body["messages"][1]["content"]] == [{}, {}]


def test_a_tool_history_without_tools_still_gets_the_tool_config_bedrock_requires(client, sim):
    messages = [
        {"role": "user", "content": "time?"},
        {"role": "assistant", "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "clock.now", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "10:00 [[sim:tool=clock_now]]"},
    ]
    r = client.chat.completions.create(model=CLAUDE, messages=messages)
    # The tools are declared from the history (Bedrock refuses toolUse blocks without a toolConfig)
    # and, since the caller offered none, a call the model makes is not returned.
    assert r.choices[0].message.tool_calls is None
    assert r.choices[0].finish_reason == "stop"
    body = body_of(only_call(sim))
    assert body["toolConfig"]["tools"] == [{"toolSpec": {"name": "clock_now", "inputSchema": {"json": {"type": "object"}}}}]


def test_a_missing_tool_result_is_a_clear_400_before_bedrock(client, sim):
    import openai

    messages = [
        {"role": "user", "content": "x"},
        {
            "role": "assistant",
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_time", "arguments": "{}"}},
                {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}},
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "10:00"},
        {"role": "user", "content": "and?"},
    ]
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=CLAUDE, messages=messages, tools=[TIME])
    err = error_body(e.value)
    assert err["param"] == "messages[3]"
    assert "`call_2`" in err["message"]
    assert converse_calls(sim) == []


def test_tool_choice_required_and_named(client, sim):
    r = client.chat.completions.create(
        model=CLAUDE, messages=[{"role": "user", "content": "go"}], tools=[WEATHER, TIME], tool_choice="required"
    )
    # Forced with `any`, the simulated model calls the first tool with arguments from its schema.
    assert [(c.function.name, json.loads(c.function.arguments)) for c in r.choices[0].message.tool_calls] == [
        ("weather.get", {"city": "text"})
    ]
    assert body_of(only_call(sim))["toolConfig"]["toolChoice"] == {"any": {}}
    sim.clear()
    r = client.chat.completions.create(
        model=CLAUDE,
        messages=[{"role": "user", "content": "go"}],
        tools=[WEATHER, TIME],
        tool_choice={"type": "function", "function": {"name": "get_time"}},
    )
    assert [c.function.name for c in r.choices[0].message.tool_calls] == ["get_time"]
    assert r.choices[0].finish_reason == "tool_calls"
    assert body_of(only_call(sim))["toolConfig"]["toolChoice"] == {"tool": {"name": "get_time"}}


def test_tool_choice_none_accepts_a_tool_history_and_returns_no_calls(client, sim):
    messages = [
        {"role": "user", "content": "time?"},
        {
            "role": "assistant",
            "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}],
        },
        # The simulated model would call a tool again; `none` keeps it out of the answer.
        {"role": "tool", "tool_call_id": "call_1", "content": "10:00 [[sim:tool=get_time]] [[sim:reply=It is ten.]]"},
    ]
    r = client.chat.completions.create(model=CLAUDE, messages=messages, tools=[TIME], tool_choice="none")
    assert r.choices[0].message.content == "It is ten."
    assert r.choices[0].message.tool_calls is None
    assert r.choices[0].finish_reason == "stop"
    body = body_of(only_call(sim))
    assert [t["toolSpec"]["name"] for t in body["toolConfig"]["tools"]] == ["get_time"]


def test_streamed_tool_calls_have_dense_indexes_and_fragments(client, sim):
    text = "[[sim:reply=Checking.]] " + call_directive("weather_get", {"city": "Rome"}) + call_directive("get_time")
    stream = client.chat.completions.create(
        model=CLAUDE,
        messages=[{"role": "user", "content": text}],
        tools=[WEATHER, TIME],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    assert "".join(d.content or "" for d in deltas) == "Checking."
    fragments = [tc for d in deltas for tc in (d.tool_calls or [])]
    # Text is Bedrock block 0, so the calls are blocks 1 and 2: the index must still be 0 and 1.
    firsts = [f for f in fragments if f.id is not None]
    assert [(f.index, f.type, f.function.name, f.function.arguments) for f in firsts] == [
        (0, "function", "weather.get", ""),
        (1, "function", "get_time", ""),
    ]
    for f in fragments:
        if f.id is None:
            assert f.type is None and f.function.name is None
    args = {i: "".join(f.function.arguments or "" for f in fragments if f.index == i) for i in (0, 1)}
    assert json.loads(args[0]) == {"city": "Rome"} and json.loads(args[1]) == {}
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["tool_calls"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
    assert only_call(sim, "converse-stream")


SCHEMA = {
    "type": "json_schema",
    "json_schema": {
        "name": "city",
        "strict": True,
        "schema": {
            "type": "object",
            "properties": {"name": {"type": "string", "maxLength": 20}, "population": {"type": "integer", "minimum": 0}},
            "required": ["name", "population"],
            "additionalProperties": False,
        },
    },
}


@pytest.mark.parametrize("stream", [False, True], ids=["converse", "converse-stream"])
def test_json_schema_through_a_forced_tool_comes_back_as_content(client, sim, stream):
    text = "Paris " + call_directive("city", {"name": "Paris", "population": 2100000})
    r = client.chat.completions.create(
        model=CLAUDE, messages=[{"role": "user", "content": text}], response_format=SCHEMA, stream=stream
    )
    if stream:
        chunks = list(r)
        content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert not any(c.choices[0].delta.tool_calls for c in chunks if c.choices)
        finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    else:
        content = r.choices[0].message.content
        assert r.choices[0].message.tool_calls is None
        finish = [r.choices[0].finish_reason]
    assert json.loads(content) == {"name": "Paris", "population": 2100000}
    assert finish == ["stop"]
    body = body_of(only_call(sim))
    assert body["toolConfig"]["toolChoice"] == {"tool": {"name": "city"}}
    schema = body["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"]["json"]
    assert schema["properties"] == {"name": {"type": "string"}, "population": {"type": "integer"}}


def test_json_object_is_honoured(client, sim):
    r = client.chat.completions.create(
        model=CLAUDE,
        messages=[{"role": "user", "content": "Give JSON " + call_directive("json_object", {"ok": True})}],
        response_format={"type": "json_object"},
    )
    assert json.loads(r.choices[0].message.content) == {"ok": True}
    assert r.choices[0].finish_reason == "stop"
    tools = body_of(only_call(sim))["toolConfig"]["tools"]
    assert tools[0]["toolSpec"]["inputSchema"]["json"] == {"type": "object"}


@pytest.mark.parametrize("stream", [False, True], ids=["converse", "converse-stream"])
def test_a_guardrail_stop_is_content_filter(client, sim, stream):
    r = client.chat.completions.create(
        model=CLAUDE, messages=[{"role": "user", "content": "bad words [[sim:guardrail]]"}], stream=stream
    )
    if stream:
        chunks = list(r)
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    else:
        text, finish = r.choices[0].message.content, [r.choices[0].finish_reason]
    assert text == "Sorry, the model cannot answer this question."
    assert finish == ["content_filter"]
    assert len(converse_calls(sim)) == 1
