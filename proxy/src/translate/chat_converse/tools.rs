//! Tools: `tools` -> `toolConfig`, `tool_choice` -> `toolChoice`, tool names sanitised for
//! Bedrock (`[a-zA-Z0-9_-]{1,64}`) and restored on the way back, assistant `tool_calls` ->
//! `toolUse` blocks, `tool` messages -> `toolResult` blocks.
//!
//! `tool_choice: none` has no Converse form: without tool calls in the history the tools are
//! left out; with them, Bedrock insists on a `toolConfig`, so the tools are sent and any call the
//! model still makes is dropped from the reply (see [`ToolUse::Suppressed`]).

use std::borrow::Cow;

use serde_json::{Map, Value};

use super::family::Capabilities;
use super::structured::strip_schema;
use crate::bedrock::converse::{
    CachePoint, Empty, InputSchema, NamedTool, Tool, ToolChoice, ToolConfig, ToolSpec, ToolUseBlock,
};
use crate::error::ApiError;
use crate::openai::chat::{ChatCompletionRequest, ChatMessage, ToolCall, ToolChoice as OpenAiChoice};

/// Longest tool name Bedrock accepts.
const MAX_NAME: usize = 64;

/// Caller tool name <-> Bedrock tool name, for the names that had to change.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ToolNames {
    /// `(bedrock, caller)` pairs; empty when every name was valid already.
    renamed: Vec<(String, String)>,
}

fn valid_name(name: &str) -> bool {
    (1..=MAX_NAME).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl ToolNames {
    /// Names for every tool of the request and every tool its history called.
    pub fn new(req: &ChatCompletionRequest) -> Self {
        let history = req.messages.iter().flat_map(|m| match m {
            ChatMessage::Assistant { tool_calls, .. } => tool_calls.as_slice(),
            _ => &[],
        });
        let all: Vec<&str> =
            req.tools.iter().map(|t| t.name.as_str()).chain(history.map(|c| c.name.as_str())).collect();
        let mut names = ToolNames::default();
        for name in all.iter().copied().filter(|n| !valid_name(n)) {
            if names.renamed.iter().any(|(_, caller)| caller == name) {
                continue;
            }
            let base: String = name
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' })
                .take(MAX_NAME)
                .collect();
            let taken = |n: &str| all.contains(&n) || names.renamed.iter().any(|(b, _)| b == n);
            let mut candidate = base.clone();
            let mut k = 2;
            while taken(&candidate) {
                let suffix = format!("_{k}");
                candidate = format!("{}{suffix}", &base[..base.len().min(MAX_NAME - suffix.len())]);
                k += 1;
            }
            names.renamed.push((candidate, name.to_owned()));
        }
        names
    }

    /// The name Bedrock sees for the caller's `name`.
    pub fn to_bedrock<'a>(&self, name: &'a str) -> Cow<'a, str> {
        match self.renamed.iter().find(|(_, caller)| caller == name) {
            Some((bedrock, _)) => Cow::Owned(bedrock.clone()),
            None => Cow::Borrowed(name),
        }
    }

    /// The caller's name for the tool Bedrock calls `name`.
    pub fn to_caller<'a>(&'a self, name: &'a str) -> &'a str {
        self.renamed.iter().find(|(bedrock, _)| bedrock == name).map_or(name, |(_, caller)| caller)
    }
}

/// What the reply translator does with a `toolUse` block of a given name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ToolUse {
    /// Returned as a tool call.
    Call,
    /// Its input is the answer (`response_format` through a forced tool): returned as content.
    Content,
    /// Dropped (`tool_choice: none`).
    Suppressed,
}

/// The `toolConfig` of a request, and whether calls in the reply must be dropped.
pub(super) struct ToolPlan<'a> {
    /// What to send.
    pub config: Option<ToolConfig<'a>>,
    /// Drop tool calls from the reply: `tool_choice: none`, or tools declared only because the
    /// history calls them.
    pub suppress: bool,
}

/// Builds the `toolConfig`. `history_uses_tools`: the messages hold toolUse/toolResult blocks.
/// `forced`: the structured-output tool and the choice it needs (replacing the caller's).
pub(super) fn tool_config<'a>(
    req: &'a ChatCompletionRequest,
    caps: &Capabilities,
    names: &ToolNames,
    history_uses_tools: bool,
    forced: Option<(ToolSpec<'a>, ToolChoice<'a>)>,
    cache: &mut super::content::CachePoints,
) -> Result<ToolPlan<'a>, ApiError> {
    let choice = req.tool_choice.as_ref().unwrap_or(&OpenAiChoice::Auto);
    let none = *choice == OpenAiChoice::None;
    let wants_tools = (!req.tools.is_empty() && !none) || forced.is_some() || history_uses_tools;
    if !wants_tools {
        return Ok(ToolPlan { config: None, suppress: false });
    }
    if !caps.tools {
        return Err(super::unsupported(
            req,
            caps,
            "tools",
            if req.tools.is_empty() { "messages" } else { "tools" },
        ));
    }
    if req.stream && !caps.streaming_tools {
        return Err(super::unsupported(req, caps, "tools with `stream: true`", "stream"));
    }
    let mut tools = Vec::with_capacity(req.tools.len() + 2);
    for tool in &req.tools {
        let schema = tool.parameters.as_ref().map_or_else(|| Cow::Owned(any_object()), |p| strip_schema(p));
        tools.push(Tool::ToolSpec(ToolSpec {
            name: names.to_bedrock(&tool.name),
            description: tool.description.as_deref().filter(|d| !d.is_empty()),
            input_schema: InputSchema { json: schema },
        }));
        if let Some(ttl) = tool.cache
            && let Some(point) = cache.tool_point(ttl)
        {
            tools.push(Tool::CachePoint(point));
        }
    }
    if req.tools.is_empty() && history_uses_tools {
        // The history calls tools the request no longer declares: Bedrock still wants them
        // declared, so each one gets an open schema, and calls in the reply are dropped.
        for name in history_tool_names(req) {
            if !tools.iter().any(|t| matches!(t, Tool::ToolSpec(s) if s.name == names.to_bedrock(name))) {
                tools.push(Tool::ToolSpec(ToolSpec {
                    name: names.to_bedrock(name),
                    description: None,
                    input_schema: InputSchema { json: Cow::Owned(any_object()) },
                }));
            }
        }
    }
    let suppress = none || (req.tools.is_empty() && forced.is_none());
    let tool_choice = match forced {
        Some((spec, choice)) => {
            tools.push(Tool::ToolSpec(spec));
            Some(choice)
        }
        None => match choice {
            OpenAiChoice::Required => Some(ToolChoice::Any(Empty {})),
            OpenAiChoice::Function(name) => {
                Some(ToolChoice::Tool(NamedTool { name: names.to_bedrock(name) }))
            }
            // `auto` is Converse's default; sending nothing works on every family.
            OpenAiChoice::Auto | OpenAiChoice::None => None,
        },
    };
    Ok(ToolPlan { config: Some(ToolConfig { tools, tool_choice }), suppress })
}

/// `{"type": "object"}`: the schema of a tool without `parameters`.
pub(super) fn any_object() -> Value {
    let mut m = Map::with_capacity(1);
    m.insert("type".into(), Value::String("object".into()));
    Value::Object(m)
}

fn history_tool_names(req: &ChatCompletionRequest) -> impl Iterator<Item = &str> {
    req.messages
        .iter()
        .flat_map(|m| match m {
            ChatMessage::Assistant { tool_calls, .. } => tool_calls.as_slice(),
            _ => &[],
        })
        .map(|c| c.name.as_str())
}

/// The `toolUse` block of an earlier assistant tool call; empty or blank arguments are `{}`.
pub(super) fn tool_use<'a>(
    call: &'a ToolCall,
    names: &ToolNames,
    path: impl Fn() -> String,
) -> Result<ToolUseBlock<'a>, ApiError> {
    let input = if call.arguments.trim().is_empty() {
        Value::Object(Map::new())
    } else {
        match serde_json::from_str::<Value>(&call.arguments) {
            Ok(v @ Value::Object(_)) => v,
            Ok(_) => {
                let path = path();
                return Err(ApiError::invalid_request(format!(
                    "Invalid value for `{path}`: the arguments must be a JSON object."
                ))
                .with_param(path));
            }
            Err(e) => {
                let path = path();
                return Err(ApiError::invalid_request(format!(
                    "Invalid value for `{path}`: the arguments are not valid JSON ({e})."
                ))
                .with_param(path));
            }
        }
    };
    if !valid_tool_use_id(&call.id) {
        return Err(ApiError::invalid_request(format!(
            "Invalid value for `{}`: Bedrock tool call ids are 1 to 64 letters, digits, `_`, `.`, `:` or `-`.",
            path().replace("function.arguments", "id")
        ))
        .with_param(path().replace("function.arguments", "id")));
    }
    Ok(ToolUseBlock { tool_use_id: &call.id, name: names.to_bedrock(&call.name), input })
}

/// Bedrock's `toolUseId` pattern `[a-zA-Z0-9_.:-]{1,64}`.
pub(super) fn valid_tool_use_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
}

/// A `cachePoint` with the TTL Bedrock spells `1h`, or the default.
pub(super) fn cache_point(one_hour: bool) -> CachePoint {
    CachePoint { kind: "default", ttl: one_hour.then_some("1h") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openai::chat::Tool as OpenAiTool;

    fn tool(name: &str) -> OpenAiTool {
        OpenAiTool { name: name.into(), description: None, parameters: None, cache: None }
    }

    #[test]
    fn invalid_names_are_sanitised_uniquely_and_restored() {
        let req = ChatCompletionRequest {
            tools: vec![tool("get.weather"), tool("get_weather"), tool("ok-name"), tool(&"x".repeat(70))],
            ..Default::default()
        };
        let names = ToolNames::new(&req);
        assert_eq!(names.to_bedrock("get.weather"), "get_weather_2");
        assert_eq!(names.to_bedrock("get_weather"), "get_weather");
        assert_eq!(names.to_bedrock("ok-name"), "ok-name");
        assert_eq!(names.to_bedrock(&"x".repeat(70)), "x".repeat(64));
        assert_eq!(names.to_caller("get_weather_2"), "get.weather");
        assert_eq!(names.to_caller("get_weather"), "get_weather");
        assert_eq!(names.to_caller("unknown"), "unknown");
    }
}
