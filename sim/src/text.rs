//! InvokeModel bodies of the text families: Anthropic Messages (`anthropic_version`) and Amazon
//! Nova (`messages-v1`). Each body is translated to the Converse request it stands for, which the
//! simulator validates and answers as usual (directives included), and the reply is rendered in
//! the family's native response.

use serde_json::{Map, Value, json};

use crate::converse;
use crate::errors::AwsError;
use crate::invoke::{Fields, InvokeReply};
use crate::reply::Reply;
use crate::request::malformed;

/// Members of an Anthropic Messages body on Bedrock.
const ANTHROPIC_MEMBERS: &[&str] = &[
    "anthropic_version",
    "anthropic_beta",
    "max_tokens",
    "messages",
    "system",
    "temperature",
    "top_p",
    "top_k",
    "stop_sequences",
    "tools",
    "tool_choice",
    "thinking",
    "metadata",
];
/// Members of a Nova body.
const NOVA_MEMBERS: &[&str] = &["schemaVersion", "system", "messages", "inferenceConfig", "toolConfig"];

/// Answers an Anthropic Messages body.
pub(crate) async fn anthropic(model_id: &str, body: &Map<String, Value>) -> Result<InvokeReply, AwsError> {
    let request = anthropic_to_converse(body)?;
    let (reply, _) = converse::answer(model_id, request.to_string().as_bytes(), None, None).await?;
    Ok(reply_of(&reply, anthropic_response(model_id, &reply)))
}

/// Answers a Nova body.
pub(crate) async fn nova(model_id: &str, body: &Map<String, Value>) -> Result<InvokeReply, AwsError> {
    let request = nova_to_converse(body)?;
    let (reply, _) = converse::answer(model_id, request.to_string().as_bytes(), None, None).await?;
    let usage = json!({
        "inputTokens": reply.input_tokens,
        "outputTokens": reply.output_tokens,
        "totalTokens": reply.input_tokens + reply.output_tokens,
        "cacheReadInputTokenCount": 0,
        "cacheWriteInputTokenCount": 0,
    });
    let response = json!({
        "output": {"message": {"role": "assistant", "content": converse::content_blocks(&reply)}},
        "stopReason": reply.stop_reason,
        "usage": usage,
    });
    Ok(reply_of(&reply, response))
}

fn reply_of(reply: &Reply, response: Value) -> InvokeReply {
    InvokeReply {
        body: serde_json::to_vec(&response).unwrap_or_default(),
        input_tokens: Some(reply.input_tokens),
        output_tokens: reply.output_tokens,
    }
}

/// The Converse request an Anthropic Messages body stands for.
fn anthropic_to_converse(body: &Map<String, Value>) -> Result<Value, AwsError> {
    let f = Fields::new(body, "#", ANTHROPIC_MEMBERS)?;
    f.require("anthropic_version")?;
    if f.str("anthropic_version")? != Some("bedrock-2023-05-31") {
        return Err(malformed(format!("{}: must be bedrock-2023-05-31", f.at("anthropic_version"))));
    }
    f.require("max_tokens")?;
    let max_tokens = f.int("max_tokens", 1, i64::MAX)?;
    let mut config = json!({ "maxTokens": max_tokens });
    if let Some(t) = f.number("temperature", 0.0, 1.0)? {
        config["temperature"] = json!(t);
    }
    if let Some(p) = f.number("top_p", 0.0, 1.0)? {
        config["topP"] = json!(p);
    }
    if let Some(stops) = f.array("stop_sequences")? {
        config["stopSequences"] = Value::Array(stops.clone());
    }
    let mut request = json!({ "inferenceConfig": config });
    let messages = f.required_array("messages")?;
    let converted: Result<Vec<Value>, AwsError> =
        messages.iter().enumerate().map(|(i, m)| anthropic_message(m, i)).collect();
    request["messages"] = Value::Array(converted?);
    match body.get("system") {
        None => {}
        Some(Value::String(s)) => request["system"] = json!([{ "text": s }]),
        Some(Value::Array(blocks)) => {
            let texts: Result<Vec<Value>, AwsError> = blocks
                .iter()
                .enumerate()
                .map(|(i, b)| match anthropic_block(b, &format!("#/system/{i}"))? {
                    text @ Value::Object(_) if text.get("text").is_some() => Ok(text),
                    _ => Err(malformed(format!("#/system/{i}: only text blocks are allowed"))),
                })
                .collect();
            request["system"] = Value::Array(texts?);
        }
        Some(_) => return Err(malformed("#/system: expected type: String or JSONArray")),
    }
    let mut extra = Map::new();
    for key in ["top_k", "thinking"] {
        if let Some(v) = body.get(key) {
            extra.insert(key.to_owned(), v.clone());
        }
    }
    if !extra.is_empty() {
        request["additionalModelRequestFields"] = Value::Object(extra);
    }
    if let Some(tools) = f.array("tools")? {
        let specs: Result<Vec<Value>, AwsError> = tools
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let tool = t
                    .as_object()
                    .ok_or_else(|| malformed(format!("#/tools/{i}: expected type: JSONObject")))?;
                let tf = Fields::new(
                    tool,
                    format!("#/tools/{i}"),
                    &["name", "description", "input_schema", "type", "cache_control"],
                )?;
                let mut spec = json!({
                    "name": tf.text("name", 1, 64)?,
                    "inputSchema": { "json": tf.required_object("input_schema")? },
                });
                if let Some(d) = tf.str("description")? {
                    spec["description"] = json!(d);
                }
                Ok(json!({ "toolSpec": spec }))
            })
            .collect();
        let mut tool_config = json!({ "tools": specs? });
        if let Some(choice) = f.object("tool_choice")? {
            let cf = Fields::new(choice, "#/tool_choice", &["type", "name", "disable_parallel_tool_use"])?;
            tool_config["toolChoice"] = match cf.one_of("type", &["auto", "any", "tool"])? {
                Some("tool") => json!({ "tool": { "name": cf.text("name", 1, 64)? } }),
                Some("any") => json!({ "any": {} }),
                _ => json!({ "auto": {} }),
            };
        }
        request["toolConfig"] = tool_config;
    }
    Ok(request)
}

/// One Anthropic message as a Converse message.
fn anthropic_message(message: &Value, i: usize) -> Result<Value, AwsError> {
    let path = format!("#/messages/{i}");
    let obj = message.as_object().ok_or_else(|| malformed(format!("{path}: expected type: JSONObject")))?;
    let f = Fields::new(obj, path.clone(), &["role", "content"])?;
    f.require("role")?;
    let role = f.one_of("role", &["user", "assistant"])?.unwrap_or_default();
    let content = match obj.get("content") {
        Some(Value::String(s)) => vec![json!({ "text": s })],
        Some(Value::Array(blocks)) => blocks
            .iter()
            .enumerate()
            .map(|(k, b)| anthropic_block(b, &format!("{path}/content/{k}")))
            .collect::<Result<_, _>>()?,
        _ => {
            return Err(malformed(format!(
                "{path}: required key [content] not found or not a String/JSONArray"
            )));
        }
    };
    Ok(json!({ "role": role, "content": content }))
}

/// One Anthropic content block as a Converse ContentBlock.
fn anthropic_block(block: &Value, path: &str) -> Result<Value, AwsError> {
    let obj = block.as_object().ok_or_else(|| malformed(format!("{path}: expected type: JSONObject")))?;
    let kind = obj.get("type").and_then(Value::as_str).unwrap_or_default();
    let keys: &[&str] = match kind {
        "text" => &["type", "text", "cache_control"],
        "tool_use" => &["type", "id", "name", "input", "cache_control"],
        "tool_result" => &["type", "tool_use_id", "content", "is_error", "cache_control"],
        "thinking" => &["type", "thinking", "signature"],
        _ => return Err(malformed(format!("{path}/type: {kind} is not a simulated content block type"))),
    };
    let f = Fields::new(obj, path.to_owned(), keys)?;
    Ok(match kind {
        "text" => json!({ "text": f.text("text", 0, usize::MAX)? }),
        "tool_use" => json!({ "toolUse": {
            "toolUseId": f.text("id", 1, 64)?,
            "name": f.text("name", 1, 64)?,
            "input": obj.get("input").cloned().unwrap_or_else(|| json!({})),
        }}),
        "tool_result" => {
            let content = match obj.get("content") {
                None => Vec::new(),
                Some(Value::String(s)) => vec![json!({ "text": s })],
                Some(Value::Array(parts)) => parts
                    .iter()
                    .enumerate()
                    .map(|(k, p)| anthropic_block(p, &format!("{path}/content/{k}")))
                    .collect::<Result<_, _>>()?,
                Some(_) => {
                    return Err(malformed(format!("{path}/content: expected type: String or JSONArray")));
                }
            };
            let mut result = json!({ "toolUseId": f.text("tool_use_id", 1, 64)?, "content": content });
            if f.bool("is_error")? == Some(true) {
                result["status"] = json!("error");
            }
            json!({ "toolResult": result })
        }
        _ => json!({ "reasoningContent": { "reasoningText": {
            "text": f.text("thinking", 0, usize::MAX)?,
            "signature": f.text("signature", 1, usize::MAX)?,
        }}}),
    })
}

/// The Anthropic Messages response for `reply`.
fn anthropic_response(model_id: &str, reply: &Reply) -> Value {
    let mut content = Vec::new();
    if let Some(text) = &reply.reasoning {
        content.push(json!({"type": "thinking", "thinking": text, "signature": crate::request::thinking_signature(text)}));
    }
    if let Some(data) = &reply.redacted {
        content.push(json!({"type": "redacted_thinking", "data": data}));
    }
    if !reply.text.is_empty() || (content.is_empty() && reply.tool_calls.is_empty()) {
        content.push(json!({"type": "text", "text": reply.text}));
    }
    for call in &reply.tool_calls {
        content.push(json!({"type": "tool_use", "id": call.id, "name": call.name, "input": call.input}));
    }
    let stop_reason = match reply.stop_reason {
        "guardrail_intervened" => "end_turn",
        other => other,
    };
    let id: String = std::iter::repeat_with(fastrand::alphanumeric).take(24).collect();
    // Bedrock names the model without its provider prefix and version suffix.
    let name = model_id.rsplit_once("anthropic.").map_or(model_id, |(_, n)| n);
    let name = name.rsplit_once("-v").map_or(name, |(n, _)| n);
    json!({
        "id": format!("msg_bdrk_{id}"),
        "type": "message",
        "role": "assistant",
        "model": name,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": reply.stop_sequence,
        "usage": {"input_tokens": reply.input_tokens, "output_tokens": reply.output_tokens},
    })
}

/// The Converse request a Nova body stands for: the same shapes, except `inferenceConfig`'s
/// native spellings (`max_new_tokens`, `top_p`, `top_k`).
fn nova_to_converse(body: &Map<String, Value>) -> Result<Value, AwsError> {
    let f = Fields::new(body, "#", NOVA_MEMBERS)?;
    if let Some(v) = f.str("schemaVersion")?
        && v != "messages-v1"
    {
        return Err(malformed(format!("{}: {v} is not a valid enum value", f.at("schemaVersion"))));
    }
    let mut request = Map::new();
    for key in ["system", "messages", "toolConfig"] {
        if let Some(v) = body.get(key) {
            request.insert(key.to_owned(), v.clone());
        }
    }
    if let Some(config) = f.object("inferenceConfig")? {
        let cf = Fields::new(
            config,
            "#/inferenceConfig",
            &[
                "max_new_tokens",
                "maxTokens",
                "temperature",
                "top_p",
                "topP",
                "top_k",
                "topK",
                "stopSequences",
            ],
        )?;
        let mut converse_config = Map::new();
        for (native, converse_key) in [("max_new_tokens", "maxTokens"), ("maxTokens", "maxTokens")] {
            if let Some(n) = cf.int(native, 1, i64::MAX)? {
                converse_config.insert(converse_key.to_owned(), json!(n));
            }
        }
        if let Some(t) = cf.number("temperature", 0.0, 1.0)? {
            converse_config.insert("temperature".to_owned(), json!(t));
        }
        for key in ["top_p", "topP"] {
            if let Some(p) = cf.number(key, 0.0, 1.0)? {
                converse_config.insert("topP".to_owned(), json!(p));
            }
        }
        for key in ["top_k", "topK"] {
            cf.int(key, 0, 128)?;
        }
        if let Some(stops) = cf.array("stopSequences")? {
            converse_config.insert("stopSequences".to_owned(), Value::Array(stops.clone()));
        }
        request.insert("inferenceConfig".to_owned(), Value::Object(converse_config));
    }
    Ok(Value::Object(request))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
    }

    #[test]
    fn anthropic_bodies_are_answered_natively() {
        let body = obj(json!({
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": 100,
            "system": "be brief",
            "messages": [{"role": "user", "content": "Hello there"}],
        }));
        let reply = block_on(anthropic("anthropic.claude-3-haiku-20240307-v1:0", &body)).unwrap();
        let v: Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(v["content"], json!([{"type": "text", "text": "Simulated reply to: Hello there"}]));
        assert_eq!(
            (v["type"].as_str(), v["model"].as_str()),
            (Some("message"), Some("claude-3-haiku-20240307"))
        );
        assert_eq!((v["stop_reason"].as_str(), v["stop_sequence"].clone()), (Some("end_turn"), Value::Null));
        assert_eq!(v["usage"], json!({"input_tokens": 4, "output_tokens": 5}));
        assert_eq!((reply.input_tokens, reply.output_tokens), (Some(4), 5));
        assert!(v["id"].as_str().unwrap().starts_with("msg_bdrk_"));
    }

    #[test]
    fn anthropic_tools_stops_and_errors() {
        let body = obj(json!({
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": 100,
            "stop_sequences": ["zzz", "to:"],
            "messages": [{"role": "user", "content": [{"type": "text", "text": "go"}]}],
        }));
        let v: Value = serde_json::from_slice(
            &block_on(anthropic("anthropic.claude-3-haiku-20240307-v1:0", &body)).unwrap().body,
        )
        .unwrap();
        assert_eq!(
            (v["stop_reason"].as_str(), v["stop_sequence"].as_str()),
            (Some("stop_sequence"), Some("to:"))
        );
        let tools = obj(json!({
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": 100,
            "tools": [{"name": "f", "input_schema": {"type": "object", "properties": {"x": {"type": "integer"}}}}],
            "tool_choice": {"type": "tool", "name": "f"},
            "messages": [{"role": "user", "content": "call it"}],
        }));
        let v: Value = serde_json::from_slice(&block_on(anthropic("m", &tools)).unwrap().body).unwrap();
        assert_eq!(v["stop_reason"], "tool_use");
        assert_eq!(
            (v["content"][0]["type"].as_str(), v["content"][0]["input"].clone()),
            (Some("tool_use"), json!({"x": 1}))
        );
        for (bad, needle) in [
            (json!({"max_tokens": 1, "messages": []}), "required key [anthropic_version] not found"),
            (
                json!({"anthropic_version": "bedrock-2023-05-31", "messages": []}),
                "required key [max_tokens] not found",
            ),
            (
                json!({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 5, "messages": [], "inputText": "x"}),
                "extraneous key [inputText]",
            ),
            (
                json!({"anthropic_version": "bedrock-2023-05-31", "max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "video"}]}]}),
                "not a simulated content block type",
            ),
        ] {
            let e = block_on(anthropic("m", &obj(bad))).unwrap_err();
            assert!(e.message.contains(needle), "{}", e.message);
        }
    }

    #[test]
    fn nova_bodies_are_answered_natively() {
        let body = obj(json!({
            "schemaVersion": "messages-v1",
            "system": [{"text": "sys"}],
            "messages": [{"role": "user", "content": [{"text": "one two three"}]}],
            "inferenceConfig": {"max_new_tokens": 3, "top_p": 0.9, "top_k": 20},
        }));
        let reply = block_on(nova("amazon.nova-lite-v1:0", &body)).unwrap();
        let v: Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(v["output"]["message"]["content"], json!([{"text": "Simulated reply to:"}]));
        assert_eq!(v["stopReason"], "max_tokens");
        assert_eq!(v["usage"]["outputTokens"], 3);
        assert_eq!(v["usage"]["totalTokens"], 7);
        let bad = obj(json!({"messages": [], "inferenceConfig": {"maxNewTokens": 3}}));
        assert!(block_on(nova("m", &bad)).unwrap_err().message.contains("extraneous key [maxNewTokens]"));
    }
}
