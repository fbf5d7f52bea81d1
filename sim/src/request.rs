//! Parsing and validation of Converse / ConverseStream request bodies, as strict as Bedrock
//! (and stricter about unknown members, so the proxy never sends fields the AWS model lacks).

use serde_json::{Map, Value};

use crate::errors::AwsError;

/// Top-level members of ConverseRequest / ConverseStreamRequest carried in the body.
const TOP_LEVEL: &[&str] = &[
    "messages",
    "system",
    "inferenceConfig",
    "toolConfig",
    "guardrailConfig",
    "projectIdentifier",
    "additionalModelRequestFields",
    "promptVariables",
    "additionalModelResponseFieldPaths",
    "requestMetadata",
    "performanceConfig",
    "serviceTier",
    "outputConfig",
];
/// Members of the ContentBlock union.
const CONTENT_BLOCK: &[&str] = &[
    "text",
    "image",
    "document",
    "video",
    "audio",
    "toolUse",
    "toolResult",
    "guardContent",
    "cachePoint",
    "reasoningContent",
    "citationsContent",
    "searchResult",
    "toolAddition",
    "toolRemoval",
];
/// Members of the SystemContentBlock union.
const SYSTEM_BLOCK: &[&str] = &["text", "guardContent", "cachePoint"];
/// Members of InferenceConfiguration.
const INFERENCE_CONFIG: &[&str] = &["maxTokens", "temperature", "topP", "stopSequences"];
/// Upper bound of `inferenceConfig.stopSequences` in the AWS model.
const MAX_STOP_SEQUENCES: usize = 2500;

/// Conversation role of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// `user`
    User,
    /// `assistant`
    Assistant,
    /// `system` (allowed by the model, but breaks the user/assistant alternation)
    System,
}

/// One message with the texts of its `text` content blocks.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct InputMessage {
    /// Who said it.
    pub role: Role,
    /// Texts of its `text` blocks, in order.
    pub texts: Vec<String>,
}

/// The parts of a validated request the simulator uses.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ConverseInput {
    /// Texts of the `system` text blocks.
    pub system: Vec<String>,
    /// The conversation.
    pub messages: Vec<InputMessage>,
    /// `inferenceConfig.maxTokens`.
    pub max_tokens: Option<u64>,
    /// `inferenceConfig.stopSequences`.
    pub stop_sequences: Vec<String>,
}

impl ConverseInput {
    /// Words across system texts and all message texts, at least 1.
    pub fn input_tokens(&self) -> u64 {
        let words = self
            .system
            .iter()
            .chain(self.messages.iter().flat_map(|m| m.texts.iter()))
            .map(|t| t.split_whitespace().count() as u64)
            .sum::<u64>();
        words.max(1)
    }

    /// Text of the last user message, its text blocks joined by a space.
    pub fn last_user_text(&self) -> String {
        self.messages
            .iter()
            .rev()
            .find(|m| m.role == Role::User)
            .map(|m| m.texts.join(" "))
            .unwrap_or_default()
    }
}

pub(crate) fn malformed(detail: impl std::fmt::Display) -> AwsError {
    AwsError::validation(format!(
        "Malformed input request: {detail}, please reformat your input and try again."
    ))
}

fn constraint(value: impl std::fmt::Display, path: &str, rule: &str) -> AwsError {
    AwsError::validation(format!(
        "1 validation error detected: Value '{value}' at '{path}' failed to satisfy constraint: Member must {rule}"
    ))
}

fn reject_unknown(obj: &Map<String, Value>, allowed: &[&str]) -> Result<(), AwsError> {
    match obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(key) => Err(malformed(format!("extraneous key [{key}] is not permitted"))),
        None => Ok(()),
    }
}

fn as_object<'a>(v: &'a Value, path: &str) -> Result<&'a Map<String, Value>, AwsError> {
    v.as_object().ok_or_else(|| malformed(format!("expected an object at '{path}'")))
}

fn as_array<'a>(v: &'a Value, path: &str) -> Result<&'a Vec<Value>, AwsError> {
    v.as_array().ok_or_else(|| malformed(format!("expected a list at '{path}'")))
}

/// Parses and validates a request body.
pub(crate) fn parse(body: &[u8]) -> Result<ConverseInput, AwsError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| malformed(format!("invalid JSON ({e})")))?;
    let obj = value.as_object().ok_or_else(|| malformed("the request body must be a JSON object"))?;
    reject_unknown(obj, TOP_LEVEL)?;
    let system = match obj.get("system") {
        Some(v) => parse_blocks(v, "system", SYSTEM_BLOCK)?,
        None => Vec::new(),
    };
    let messages = parse_messages(obj.get("messages"))?;
    let (max_tokens, stop_sequences) = match obj.get("inferenceConfig") {
        Some(v) => parse_inference_config(v)?,
        None => (None, Vec::new()),
    };
    Ok(ConverseInput { system, messages, max_tokens, stop_sequences })
}

/// Validates a list of union blocks and returns the texts of its `text` members.
fn parse_blocks(v: &Value, path: &str, members: &[&str]) -> Result<Vec<String>, AwsError> {
    let mut texts = Vec::new();
    for (i, block) in as_array(v, path)?.iter().enumerate() {
        let path = format!("{path}.{i}");
        let block = as_object(block, &path)?;
        reject_unknown(block, members)?;
        if block.len() != 1 {
            return Err(malformed(format!("exactly one member must be set in the union at '{path}'")));
        }
        if let Some(text) = block.get("text") {
            let text =
                text.as_str().ok_or_else(|| malformed(format!("expected a string at '{path}.text'")))?;
            texts.push(text.to_owned());
        }
    }
    Ok(texts)
}

fn parse_messages(v: Option<&Value>) -> Result<Vec<InputMessage>, AwsError> {
    const START: &str = "A conversation must start with a user message. Try again with a conversation that starts with a user message.";
    const ALTERNATE: &str = "A conversation must alternate between user and assistant roles. \
Make sure the conversation alternates between user and assistant roles and try again.";
    let Some(v) = v else { return Err(AwsError::validation(START)) };
    let mut out: Vec<InputMessage> = Vec::new();
    for (i, m) in as_array(v, "messages")?.iter().enumerate() {
        let path = format!("messages.{i}");
        let m = as_object(m, &path)?;
        reject_unknown(m, &["role", "content"])?;
        let role = match m.get("role").and_then(Value::as_str) {
            Some("user") => Role::User,
            Some("assistant") => Role::Assistant,
            Some("system") => Role::System,
            Some(other) => {
                return Err(constraint(
                    other,
                    &format!("messages.{}.member.role", i + 1),
                    "satisfy enum value set: [user, assistant, system]",
                ));
            }
            None => return Err(malformed(format!("required key [role] not found at '{path}'"))),
        };
        let content = m
            .get("content")
            .ok_or_else(|| malformed(format!("required key [content] not found at '{path}'")))?;
        if as_array(content, &format!("{path}.content"))?.is_empty() {
            return Err(AwsError::validation(format!(
                "The content field in the Message object at {path} is empty. \
                 Add a ContentBlock object to the content field and try again."
            )));
        }
        let texts = parse_blocks(content, &format!("{path}.content"), CONTENT_BLOCK)?;
        match out.last() {
            None if role != Role::User => return Err(AwsError::validation(START)),
            Some(prev) if prev.role == role || role == Role::System || prev.role == Role::System => {
                return Err(AwsError::validation(ALTERNATE));
            }
            _ => {}
        }
        out.push(InputMessage { role, texts });
    }
    if out.is_empty() {
        return Err(AwsError::validation(START));
    }
    Ok(out)
}

fn parse_inference_config(v: &Value) -> Result<(Option<u64>, Vec<String>), AwsError> {
    let cfg = as_object(v, "inferenceConfig")?;
    reject_unknown(cfg, INFERENCE_CONFIG)?;
    let max_tokens = match cfg.get("maxTokens") {
        None | Some(Value::Null) => None,
        Some(v) => {
            let n =
                v.as_i64().ok_or_else(|| malformed("expected an integer at 'inferenceConfig.maxTokens'"))?;
            if n < 1 {
                return Err(constraint(
                    n,
                    "inferenceConfig.maxTokens",
                    "have value greater than or equal to 1",
                ));
            }
            Some(n as u64)
        }
    };
    for key in ["temperature", "topP"] {
        let Some(v) = cfg.get(key).filter(|v| !v.is_null()) else { continue };
        let x =
            v.as_f64().ok_or_else(|| malformed(format!("expected a number at 'inferenceConfig.{key}'")))?;
        let path = format!("inferenceConfig.{key}");
        if x < 0.0 {
            return Err(constraint(x, &path, "have value greater than or equal to 0"));
        }
        if x > 1.0 {
            return Err(constraint(x, &path, "have value less than or equal to 1"));
        }
    }
    let mut stop_sequences = Vec::new();
    if let Some(v) = cfg.get("stopSequences").filter(|v| !v.is_null()) {
        let list = as_array(v, "inferenceConfig.stopSequences")?;
        if list.len() > MAX_STOP_SEQUENCES {
            return Err(AwsError::validation(format!(
                "1 validation error detected: Value at 'inferenceConfig.stopSequences' failed to satisfy \
                 constraint: Member must have length less than or equal to {MAX_STOP_SEQUENCES}"
            )));
        }
        for (i, s) in list.iter().enumerate() {
            let s = s.as_str().ok_or_else(|| {
                malformed(format!("expected a string at 'inferenceConfig.stopSequences.{i}'"))
            })?;
            if s.is_empty() {
                return Err(constraint(
                    s,
                    &format!("inferenceConfig.stopSequences.{}.member", i + 1),
                    "have length greater than or equal to 1",
                ));
            }
            stop_sequences.push(s.to_owned());
        }
    }
    Ok((max_tokens, stop_sequences))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err(v: Value) -> String {
        let e = parse(v.to_string().as_bytes()).unwrap_err();
        assert_eq!((e.status.as_u16(), e.code), (400, "ValidationException"));
        e.message
    }

    fn user(text: &str) -> Value {
        json!({"role": "user", "content": [{"text": text}]})
    }

    #[test]
    fn parses_texts_and_config() {
        let body = json!({
            "system": [{"text": "be brief"}, {"cachePoint": {"type": "default"}}],
            "messages": [user("one two"), {"role": "assistant", "content": [{"text": "x"}]}, user("three")],
            "inferenceConfig": {"maxTokens": 5, "temperature": 0.5, "topP": 1, "stopSequences": ["END"]}
        });
        let input = parse(body.to_string().as_bytes()).unwrap();
        assert_eq!(input.system, ["be brief"]);
        assert_eq!(input.max_tokens, Some(5));
        assert_eq!(input.stop_sequences, ["END"]);
        assert_eq!(input.input_tokens(), 6);
        assert_eq!(input.last_user_text(), "three");
    }

    #[test]
    fn rejects_bad_conversations() {
        assert!(err(json!([1])).contains("must be a JSON object"));
        assert!(parse(b"not json").is_err());
        assert!(err(json!({"messages": []})).starts_with("A conversation must start with a user message"));
        assert!(err(json!({})).starts_with("A conversation must start with a user message"));
        let starts_assistant = json!({"messages": [{"role": "assistant", "content": [{"text": "a"}]}]});
        assert!(err(starts_assistant).starts_with("A conversation must start with a user message"));
        assert!(
            err(json!({"messages": [user("a"), user("b")]})).starts_with("A conversation must alternate")
        );
        assert_eq!(
            err(json!({"messages": [{"role": "user", "content": []}]})),
            "The content field in the Message object at messages.0 is empty. \
             Add a ContentBlock object to the content field and try again."
        );
        assert!(
            err(json!({"messages": [{"role": "bot", "content": [{"text": "a"}]}]}))
                .contains("enum value set")
        );
        assert!(
            err(json!({"messages": [{"role": "user", "content": [{"text": "a", "image": {}}]}]}))
                .contains("exactly one member")
        );
    }

    #[test]
    fn rejects_unknown_fields() {
        assert_eq!(
            err(json!({"messages": [user("a")], "temperature": 1})),
            "Malformed input request: extraneous key [temperature] is not permitted, please reformat your input \
             and try again."
        );
        assert!(err(json!({"messages": [user("a")], "inferenceConfig": {"topK": 3}})).contains("[topK]"));
        assert!(err(json!({"messages": [{"role": "user", "content": [{"txt": "a"}]}]})).contains("[txt]"));
    }

    #[test]
    fn rejects_out_of_range_inference_config() {
        let with = |cfg: Value| json!({"messages": [user("a")], "inferenceConfig": cfg});
        assert_eq!(
            err(with(json!({"maxTokens": 0}))),
            "1 validation error detected: Value '0' at 'inferenceConfig.maxTokens' failed to satisfy constraint: \
             Member must have value greater than or equal to 1"
        );
        assert!(err(with(json!({"temperature": 1.5}))).contains("less than or equal to 1"));
        assert!(err(with(json!({"topP": -0.1}))).contains("greater than or equal to 0"));
        let many: Vec<String> = (0..2501).map(|i| i.to_string()).collect();
        assert!(err(with(json!({"stopSequences": many}))).contains("length less than or equal to 2500"));
        let ok: Vec<String> = (0..2500).map(|i| i.to_string()).collect();
        assert!(parse(with(json!({"stopSequences": ok})).to_string().as_bytes()).is_ok());
    }
}
