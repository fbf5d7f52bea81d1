//! Parsing and validation of chat completion requests: exact 400 messages and `param` paths.

use http::StatusCode;
use proxy::openai::chat::{
    CacheTtl, ChatCompletionRequest, ChatMessage, ContentPart, ServiceTier, StreamOptions, ToolChoice,
    parse_chat_request,
};
use serde_json::{Value, json};

/// Parses `body`, expecting a 400; returns (message, param).
fn refused(body: &str) -> (String, Option<String>) {
    let err = parse_chat_request(body.as_bytes()).expect_err("request must be refused");
    assert_eq!(err.status, StatusCode::BAD_REQUEST, "{err}");
    assert_eq!(err.kind, "invalid_request_error");
    assert_eq!(err.code, None);
    (err.message, err.param)
}

/// A valid request with `extra` merged in at the top level.
fn with(extra: Value) -> String {
    let mut body = json!({"model": "prod/claude", "messages": [{"role": "user", "content": "hi"}]});
    body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    body.to_string()
}

fn param(p: &str) -> Option<String> {
    Some(p.to_owned())
}

#[test]
fn malformed_json_is_refused_with_the_parse_position() {
    assert_eq!(
        refused(r#"{"model": "#),
        (
            "We could not parse the JSON body of your request. The API expects a JSON payload, but what \
             was sent was not valid JSON: EOF while parsing a value at line 1 column 10."
                .to_owned(),
            None
        )
    );
}

#[test]
fn trailing_characters_are_refused() {
    let (message, param) = refused(&format!("{} x", with(json!({}))));
    assert!(message.starts_with("We could not parse the JSON body of your request."), "{message}");
    assert!(message.contains("trailing characters"), "{message}");
    assert_eq!(param, None);
}

#[test]
fn a_body_that_is_not_an_object_is_refused() {
    for (body, kind) in
        [("[]", "sequence"), ("\"hi\"", "string \"hi\""), ("null", "null"), ("3", "integer `3`")]
    {
        assert_eq!(
            refused(body),
            (
                format!(
                    "We could not parse the JSON body of your request: invalid type: {kind}, expected a \
                     JSON object."
                ),
                None
            ),
            "{body}"
        );
    }
}

#[test]
fn duplicated_keys_are_refused() {
    assert_eq!(
        refused(r#"{"model": "a", "model": "b", "messages": []}"#),
        ("We could not parse the JSON body of your request: duplicate field `model`.".to_owned(), None)
    );
    assert_eq!(
        refused(r#"{"model": "a", "messages": [{"role": "user", "role": "user", "content": "x"}]}"#),
        ("Invalid value for `messages[0]`: duplicate field `role`.".to_owned(), param("messages[0]"))
    );
}

#[test]
fn missing_fields_are_named() {
    assert_eq!(
        refused(r#"{"messages": [{"role": "user", "content": "hi"}]}"#),
        ("Missing required parameter: `model`.".to_owned(), param("model"))
    );
    assert_eq!(
        refused(r#"{"model": "", "messages": [{"role": "user", "content": "hi"}]}"#),
        ("Missing required parameter: `model`.".to_owned(), param("model"))
    );
    assert_eq!(
        refused(r#"{"model": "m"}"#),
        ("Missing required parameter: `messages`.".to_owned(), param("messages"))
    );
    assert_eq!(
        refused(r#"{"model": "m", "messages": [{"role": "user", "content": "hi"}, {"role": "user"}]}"#),
        ("Missing required parameter: `messages[1].content`.".to_owned(), param("messages[1].content"))
    );
    assert_eq!(
        refused(r#"{"model": "m", "messages": [{"content": "hi"}]}"#),
        ("Missing required parameter: `messages[0].role`.".to_owned(), param("messages[0].role"))
    );
    assert_eq!(
        refused(r#"{"model": "m", "messages": [{"role": "user", "content": [{"text": "hi"}]}]}"#),
        (
            "Missing required parameter: `messages[0].content[0].type`.".to_owned(),
            param("messages[0].content[0].type")
        )
    );
    assert_eq!(
        refused(r#"{"model": "m", "messages": [{"role": "user", "content": [{"type": "text"}]}]}"#),
        (
            "Missing required parameter: `messages[0].content[0].text`.".to_owned(),
            param("messages[0].content[0].text")
        )
    );
    assert_eq!(
        refused(r#"{"model": "m", "messages": []}"#),
        ("`messages` must contain at least one message.".to_owned(), param("messages"))
    );
}

#[test]
fn ill_typed_fields_are_named_by_path() {
    assert_eq!(
        refused(
            r#"{"model": "m", "messages": [
                {"role": "user", "content": "hi"}, {"role": "user", "content": 5}]}"#
        ),
        (
            "Invalid value for `messages[1].content`: invalid type: integer `5`, expected a string or \
             an array."
                .to_owned(),
            param("messages[1].content")
        )
    );
    assert_eq!(
        refused(r#"{"model": "m", "messages": [{"role": "user", "content": ["x"]}]}"#),
        (
            "Invalid value for `messages[0].content[0]`: invalid type: string \"x\", expected a content \
             part object."
                .to_owned(),
            param("messages[0].content[0]")
        )
    );
    assert_eq!(
        refused(r#"{"model": "m", "messages": ["hi"]}"#),
        (
            "Invalid value for `messages[0]`: invalid type: string \"hi\", expected a message object."
                .to_owned(),
            param("messages[0]")
        )
    );
    assert_eq!(
        refused(r#"{"model": "m", "messages": [{"role": "robot", "content": "hi"}]}"#),
        (
            "Invalid value for `messages[0].role`: unknown variant `robot`, expected one of `system`, \
             `developer`, `user`, `assistant`, `tool`, `function`."
                .to_owned(),
            param("messages[0].role")
        )
    );
    assert_eq!(
        refused(&with(json!({"max_tokens": "10"}))),
        (
            "Invalid value for `max_tokens`: invalid type: string \"10\", expected u32.".to_owned(),
            param("max_tokens")
        )
    );
    assert_eq!(
        refused(&with(json!({"stop": 5}))),
        (
            "Invalid value for `stop`: invalid type: integer `5`, expected a string or an array.".to_owned(),
            param("stop")
        )
    );
    assert_eq!(
        refused(&with(json!({"stop": ["a", 1]}))),
        (
            "Invalid value for `stop[1]`: invalid type: integer `1`, expected a string.".to_owned(),
            param("stop[1]")
        )
    );
    assert_eq!(
        refused(&with(json!({"stream": "yes"}))),
        (
            "Invalid value for `stream`: invalid type: string \"yes\", expected a boolean.".to_owned(),
            param("stream")
        )
    );
    assert_eq!(
        refused(&with(json!({"stream_options": {"include_usage": 1}}))),
        (
            "Invalid value for `stream_options.include_usage`: invalid type: integer `1`, expected a boolean."
                .to_owned(),
            param("stream_options.include_usage")
        )
    );
}

#[test]
fn out_of_range_sampling_values_are_refused() {
    assert_eq!(
        refused(&with(json!({"temperature": 1.5}))),
        (
            "Invalid value for `temperature`: 1.5. Bedrock models accept a temperature between 0 and 1 \
             (OpenAI's range up to 2 is not available)."
                .to_owned(),
            param("temperature")
        )
    );
    assert_eq!(refused(&with(json!({"temperature": -0.5}))).1, param("temperature"));
    assert_eq!(
        refused(&with(json!({"top_p": 1.01}))),
        ("Invalid value for `top_p`: 1.01. It must be between 0 and 1.".to_owned(), param("top_p"))
    );
    assert_eq!(
        refused(&with(json!({"max_completion_tokens": 0, "max_tokens": 10}))),
        (
            "Invalid value for `max_completion_tokens`: it must be at least 1.".to_owned(),
            param("max_completion_tokens")
        )
    );
    assert_eq!(
        refused(&with(json!({"max_tokens": 0}))),
        ("Invalid value for `max_tokens`: it must be at least 1.".to_owned(), param("max_tokens"))
    );
    assert_eq!(
        refused(&with(json!({"n": 0}))),
        ("Invalid value for `n`: it must be between 1 and 8.".to_owned(), param("n"))
    );
}

#[test]
fn fields_bedrock_cannot_honour_are_refused_by_name() {
    for field in [
        json!({"functions": [{"name": "f"}]}),
        json!({"function_call": "auto"}),
        json!({"logprobs": true}),
        json!({"top_logprobs": 2}),
        json!({"logit_bias": {"1": 2}}),
        json!({"modalities": ["text", "audio"]}),
        json!({"prediction": {"type": "content", "content": "x"}}),
        json!({"verbosity": "low"}),
    ] {
        let name = field.as_object().unwrap().keys().next().unwrap().clone();
        assert_eq!(
            refused(&with(field)),
            (
                format!("`{name}` is not supported by this gateway: Bedrock has no equivalent."),
                Some(name.clone())
            ),
            "{name}"
        );
    }
    assert_eq!(
        refused(&with(json!({"n": 2, "stream": true}))),
        (
            "`n` greater than 1 is not supported with `stream: true` by this gateway: Bedrock streams one \
             choice per call."
                .to_owned(),
            param("n")
        )
    );
    assert_eq!(refused(&with(json!({"n": 9}))).1, param("n"));
    assert_eq!(parse_chat_request(with(json!({"n": 3})).as_bytes()).unwrap().n, 3);
}

#[test]
fn tools_and_tool_choice_are_checked() {
    let tool = json!({"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}});
    assert_eq!(
        refused(&with(json!({"tools": [{"type": "web_search"}]}))),
        (
            "Invalid value for `tools[0].type`: `web_search`; only `function` tools are supported."
                .to_owned(),
            param("tools[0].type")
        )
    );
    assert_eq!(
        refused(&with(json!({"tools": [{"type": "function", "function": {"description": "d"}}]}))),
        ("Missing required parameter: `tools[0].function.name`.".to_owned(), param("tools[0].function.name"))
    );
    assert_eq!(
        refused(&with(
            json!({"tools": [tool], "tool_choice": {"type": "function", "function": {"name": "g"}}})
        )),
        (
            "Invalid value for `tool_choice.function.name`: `g` is not one of the `tools`.".to_owned(),
            param("tool_choice.function.name")
        )
    );
    assert_eq!(
        refused(&with(json!({"tool_choice": "required"}))),
        ("`tool_choice` requires `tools` to be set.".to_owned(), param("tool_choice"))
    );
    assert_eq!(refused(&with(json!({"tools": [tool], "tool_choice": "sometimes"}))).1, param("tool_choice"));
    let req = parse_chat_request(with(json!({"tools": [tool], "tool_choice": "none"})).as_bytes()).unwrap();
    assert_eq!(req.tool_choice, Some(ToolChoice::None));
    assert_eq!(req.tools[0].name, "f");
}

#[test]
fn message_features_are_checked_by_path() {
    assert_eq!(
        refused(
            r#"{"model": "m", "messages": [{"role": "user", "content": "hi"},
                {"role": "tool", "content": "42"}]}"#
        ),
        (
            "Missing required parameter: `messages[1].tool_call_id`.".to_owned(),
            param("messages[1].tool_call_id")
        )
    );
    assert_eq!(
        refused(r#"{"model": "m", "messages": [{"role": "user", "content": "hi", "tool_calls": []}]}"#),
        (
            "Invalid value for `messages[0].tool_calls`: only `assistant` messages carry it.".to_owned(),
            param("messages[0].tool_calls")
        )
    );
    assert_eq!(
        refused(
            r#"{"model": "m", "messages": [{"role": "user", "content": "hi"},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "t1"}]}]}"#
        ),
        (
            "Missing required parameter: `messages[1].tool_calls[0].function`.".to_owned(),
            param("messages[1].tool_calls[0].function")
        )
    );
    assert_eq!(
        refused(
            r#"{"model": "m", "messages": [{"role": "system", "content": [
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}]}"#
        ),
        (
            "Invalid value for `messages[0].content[0].type`: `image_url` parts are not accepted in this \
             message's role."
                .to_owned(),
            param("messages[0].content[0].type")
        )
    );
    assert_eq!(
        refused(
            r#"{"model": "m", "messages": [{"role": "user", "content": [
                {"type": "text", "text": "long", "cache_control": {"type": "persistent"}}]}]}"#
        ),
        (
            "Invalid value for `messages[0].content[0].cache_control.type`: the only cache type is `ephemeral`."
                .to_owned(),
            param("messages[0].content[0].cache_control.type")
        )
    );
    assert_eq!(
        refused(
            r#"{"model": "m", "messages": [{"role": "user", "content": [
                {"type": "file", "file": {"file_id": "file-1"}}]}]}"#
        ),
        (
            "`messages[0].content[0].file.file_id` is not supported by this gateway: send the content in \
             `file_data`."
                .to_owned(),
            param("messages[0].content[0].file.file_id")
        )
    );
    assert_eq!(
        refused(
            r#"{"model": "m", "messages": [{"role": "user", "content": [{"type": "video", "video": 1}]}]}"#
        ),
        (
            "Invalid value for `messages[0].content[0].type`: unknown content part type `video`.".to_owned(),
            param("messages[0].content[0].type")
        )
    );
}

#[test]
fn cache_control_becomes_a_cache_point_after_its_part() {
    let req = parse_chat_request(
        br#"{"model": "m", "messages": [{"role": "user", "content": [
            {"type": "text", "text": "doc", "cache_control": {"type": "ephemeral", "ttl": "1h"}},
            {"type": "text", "text": "q"}]}]}"#,
    )
    .unwrap();
    assert_eq!(
        req.messages,
        vec![ChatMessage::User {
            content: vec![
                ContentPart::Text("doc".into()),
                ContentPart::CachePoint(CacheTtl::OneHour),
                ContentPart::Text("q".into())
            ]
        }]
    );
}

#[test]
fn unknown_top_level_fields_join_additional_model_request_fields() {
    // `extra_body={"top_k": ...}`-style parameters reach Bedrock; the explicit object wins a clash.
    let body = with(json!({
        "anthropic_beta": ["context-1m"],
        "guardrail_hint": "x",
        "additional_model_request_fields": {"guardrail_hint": "explicit"},
        "store": true,
        "audio_tag": null
    }));
    let request = parse_chat_request(body.as_bytes()).expect("accepted");
    assert_eq!(
        Value::Object(request.additional_model_request_fields),
        json!({"anthropic_beta": ["context-1m"], "guardrail_hint": "explicit"})
    );
}

#[test]
fn unknown_message_fields_are_refused() {
    assert_eq!(
        refused(r#"{"model": "m", "messages": [{"role": "user", "content": "hi", "mood": "happy"}]}"#),
        ("Unrecognized request argument supplied: `messages[0].mood`.".to_owned(), param("messages[0].mood"))
    );
}

#[test]
fn harmless_fields_and_nulls_are_accepted() {
    let body = with(json!({
        "user": "user-1", "seed": 42, "presence_penalty": 0.5,
        "frequency_penalty": 0.1, "parallel_tool_calls": true, "store": false, "service_tier": "auto",
        "prompt_cache_key": "k", "safety_identifier": "s", "n": 1, "logprobs": false,
        "tools": null, "tool_choice": null, "response_format": null, "max_tokens": null,
        "stream_options": {"include_usage": true, "include_obfuscation": false}
    }));
    let req = parse_chat_request(body.as_bytes()).unwrap();
    assert_eq!(
        req,
        ChatCompletionRequest {
            model: "prod/claude".into(),
            messages: vec![ChatMessage::User { content: vec![ContentPart::Text("hi".into())] }],
            max_tokens: None,
            temperature: None,
            top_p: None,
            stop: vec![],
            stream: false,
            stream_options: StreamOptions { include_usage: true },
            user: Some("user-1".into()),
            n: 1,
            service_tier: Some(ServiceTier::Auto),
            seed: Some(42),
            frequency_penalty: Some(0.1),
            presence_penalty: Some(0.5),
            ..Default::default()
        }
    );
}

#[test]
fn a_full_request_parses_into_the_typed_form() {
    let body = r#"{
        "model": "prod/claude", "stream": true, "max_tokens": 100, "max_completion_tokens": 50,
        "temperature": 0.7, "top_p": 1, "stop": "END",
        "messages": [
            {"role": "system", "content": "sys", "name": "ops"},
            {"role": "developer", "content": [{"type": "text", "text": "dev"}]},
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
            {"role": "assistant", "content": null},
            {"role": "assistant", "content": "c", "refusal": null}
        ]
    }"#;
    let text = |s: &str| vec![ContentPart::Text(s.into())];
    assert_eq!(
        parse_chat_request(body.as_bytes()).unwrap(),
        ChatCompletionRequest {
            model: "prod/claude".into(),
            messages: vec![
                ChatMessage::System { content: text("sys") },
                ChatMessage::Developer { content: text("dev") },
                ChatMessage::User {
                    content: vec![ContentPart::Text("a".into()), ContentPart::Text("b".into())]
                },
                ChatMessage::Assistant { content: vec![], tool_calls: vec![], thinking: vec![] },
                ChatMessage::Assistant { content: text("c"), tool_calls: vec![], thinking: vec![] },
            ],
            max_tokens: Some(50),
            temperature: Some(0.7),
            top_p: Some(1.0),
            stop: vec!["END".into()],
            stream: true,
            stream_options: StreamOptions { include_usage: false },
            n: 1,
            ..Default::default()
        }
    );
}
