//! Parsing and validation of Converse / ConverseStream request bodies, as strict as Bedrock
//! (and stricter about unknown members, so the proxy never sends fields the AWS model lacks).

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

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

/// One message with what the simulator reads of its blocks.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct InputMessage {
    /// Who said it.
    pub role: Option<Role>,
    /// Texts of its `text` blocks and of the text of its `toolResult` blocks, in order.
    pub texts: Vec<String>,
    /// Ids of its `toolUse` blocks.
    pub tool_uses: Vec<String>,
    /// Ids of its `toolResult` blocks.
    pub tool_results: Vec<String>,
    /// Whether its first block is a `reasoningContent` block.
    pub starts_with_reasoning: bool,
}

/// A tool of `toolConfig`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ToolSpec {
    /// Its name.
    pub name: String,
    /// `inputSchema.json`.
    pub schema: Value,
}

/// `toolConfig.toolChoice`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) enum ToolChoice {
    /// The model decides (also when absent).
    #[default]
    Auto,
    /// Some tool must be called.
    Any,
    /// This tool must be called.
    Tool(String),
}

/// The prompt prefix up to the last `cachePoint`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CachePrefix {
    /// SHA-256 of the prefix content, hex.
    pub key: String,
    /// Its tokens (words).
    pub tokens: u64,
}

/// The parts of a validated request the simulator uses.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct ConverseInput {
    /// Texts of the `system` text blocks.
    pub system: Vec<String>,
    /// The conversation.
    pub messages: Vec<InputMessage>,
    /// `inferenceConfig.maxTokens`.
    pub max_tokens: Option<u64>,
    /// `inferenceConfig.stopSequences`.
    pub stop_sequences: Vec<String>,
    /// `toolConfig.tools` (tool specs only).
    pub tools: Vec<ToolSpec>,
    /// `toolConfig.toolChoice`.
    pub tool_choice: ToolChoice,
    /// Thinking is on (`additionalModelRequestFields.thinking` enabled or adaptive).
    pub thinking: bool,
    /// `outputConfig.textFormat` schema: the reply must be JSON matching it.
    pub json_schema: Option<Value>,
    /// The cached prefix, when the request marks one.
    pub cache_prefix: Option<CachePrefix>,
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

    /// Text of the last user message (text blocks and tool results), joined by a space.
    pub fn last_user_text(&self) -> String {
        self.messages
            .iter()
            .rev()
            .find(|m| m.role == Some(Role::User))
            .map(|m| m.texts.join(" "))
            .unwrap_or_default()
    }

    /// Whether the last user message carries tool results.
    pub fn answers_tools(&self) -> bool {
        self.messages
            .iter()
            .rev()
            .find(|m| m.role == Some(Role::User))
            .is_some_and(|m| !m.tool_results.is_empty())
    }
}

/// The signature the simulated model puts on its thinking `text`: replaying the block with
/// another text (or another signature) is refused, as Bedrock does.
pub(crate) fn thinking_signature(text: &str) -> String {
    use base64::Engine;
    let digest =
        Sha256::new().chain_update(b"bedrock-sim-thinking\n").chain_update(text.as_bytes()).finalize();
    base64::engine::general_purpose::STANDARD.encode(digest)
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

fn as_str<'a>(v: Option<&'a Value>, path: &str) -> Result<&'a str, AwsError> {
    match v {
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(malformed(format!("expected a string at '{path}'"))),
        None => {
            Err(malformed(format!("required key [{}] not found", path.rsplit('.').next().unwrap_or(path))))
        }
    }
}

/// The one member of a union object.
fn union_member<'a>(v: &'a Value, path: &str, members: &[&str]) -> Result<(&'a str, &'a Value), AwsError> {
    let obj = as_object(v, path)?;
    reject_unknown(obj, members)?;
    match obj.iter().next() {
        Some((k, v)) if obj.len() == 1 => Ok((k, v)),
        _ => Err(malformed(format!("exactly one member must be set in the union at '{path}'"))),
    }
}

/// Running state of the prompt prefix, for cache points.
#[derive(Default)]
struct Prefix {
    hasher: Sha256,
    tokens: u64,
    last: Option<CachePrefix>,
}

impl Prefix {
    /// Text counted as input tokens (system, message and tool-result texts).
    fn add(&mut self, text: &str) {
        self.add_raw(text);
        self.tokens += text.split_whitespace().count() as u64;
    }

    /// Content that shapes the prefix but is not counted (tool specs, media bytes).
    fn add_raw(&mut self, text: &str) {
        self.hasher.update(text.as_bytes());
        self.hasher.update(b"\0");
    }

    fn mark(&mut self) {
        self.last =
            Some(CachePrefix { key: hex::encode(self.hasher.clone().finalize()), tokens: self.tokens });
    }
}

/// Parses and validates a request body.
pub(crate) fn parse(body: &[u8]) -> Result<ConverseInput, AwsError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| malformed(format!("invalid JSON ({e})")))?;
    let obj = value.as_object().ok_or_else(|| malformed("the request body must be a JSON object"))?;
    reject_unknown(obj, TOP_LEVEL)?;
    let mut input = ConverseInput::default();
    let mut prefix = Prefix::default();
    if let Some(v) = obj.get("toolConfig") {
        parse_tool_config(v, &mut input, &mut prefix)?;
    }
    if let Some(v) = obj.get("system") {
        for (i, block) in as_array(v, "system")?.iter().enumerate() {
            let path = format!("system.{i}");
            match union_member(block, &path, SYSTEM_BLOCK)? {
                ("text", text) => {
                    let text = as_str(Some(text), &format!("{path}.text"))?;
                    prefix.add(text);
                    input.system.push(text.to_owned());
                }
                ("cachePoint", point) => {
                    parse_cache_point(point, &format!("{path}.cachePoint"))?;
                    prefix.mark();
                }
                _ => {}
            }
        }
    }
    input.messages = parse_messages(obj.get("messages"), &mut prefix)?;
    if let Some(v) = obj.get("inferenceConfig") {
        (input.max_tokens, input.stop_sequences) = parse_inference_config(v)?;
    }
    if let Some(v) = obj.get("outputConfig") {
        parse_output_config(v, &mut input)?;
    }
    if let Some(v) = obj.get("additionalModelRequestFields") {
        parse_additional_fields(v, obj.get("inferenceConfig"), &mut input)?;
    }
    check_tools(&input)?;
    input.cache_prefix = prefix.last;
    Ok(input)
}

fn parse_cache_point(v: &Value, path: &str) -> Result<(), AwsError> {
    let obj = as_object(v, path)?;
    reject_unknown(obj, &["type", "ttl"])?;
    let kind = as_str(obj.get("type"), &format!("{path}.type"))?;
    if kind != "default" {
        return Err(constraint(kind, &format!("{path}.type"), "satisfy enum value set: [default]"));
    }
    if let Some(ttl) = obj.get("ttl") {
        let ttl = as_str(Some(ttl), &format!("{path}.ttl"))?;
        if !matches!(ttl, "5m" | "1h") {
            return Err(constraint(ttl, &format!("{path}.ttl"), "satisfy enum value set: [5m, 1h]"));
        }
    }
    Ok(())
}

fn valid_tool_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn parse_tool_config(v: &Value, input: &mut ConverseInput, prefix: &mut Prefix) -> Result<(), AwsError> {
    let cfg = as_object(v, "toolConfig")?;
    reject_unknown(cfg, &["tools", "toolChoice"])?;
    let tools = as_array(
        cfg.get("tools").ok_or_else(|| malformed("required key [tools] not found"))?,
        "toolConfig.tools",
    )?;
    if tools.is_empty() {
        return Err(AwsError::validation(
            "1 validation error detected: Value '[]' at 'toolConfig.tools' failed to satisfy constraint: Member must \
             have length greater than or equal to 1",
        ));
    }
    for (i, tool) in tools.iter().enumerate() {
        let path = format!("toolConfig.tools.{i}");
        match union_member(tool, &path, &["toolSpec", "systemTool", "cachePoint"])? {
            ("toolSpec", spec) => {
                let spec = as_object(spec, &format!("{path}.toolSpec"))?;
                reject_unknown(spec, &["name", "description", "inputSchema", "strict"])?;
                let name = as_str(spec.get("name"), &format!("{path}.toolSpec.name"))?;
                if !valid_tool_name(name) {
                    return Err(constraint(
                        name,
                        &format!("toolConfig.tools.{}.member.toolSpec.name", i + 1),
                        "satisfy regular expression pattern: [a-zA-Z0-9_-]+",
                    ));
                }
                if input.tools.iter().any(|t| t.name == name) {
                    return Err(AwsError::validation(format!(
                        "The tool name {name} is duplicated in toolConfig. Tool names must be unique."
                    )));
                }
                let (kind, schema) = union_member(
                    spec.get("inputSchema")
                        .ok_or_else(|| malformed("required key [inputSchema] not found"))?,
                    &format!("{path}.toolSpec.inputSchema"),
                    &["json"],
                )?;
                if kind != "json" || !schema.is_object() {
                    return Err(malformed(format!(
                        "expected a JSON schema object at '{path}.toolSpec.inputSchema.json'"
                    )));
                }
                prefix.add_raw(name);
                if let Some(d) = spec.get("description") {
                    prefix.add_raw(as_str(Some(d), &format!("{path}.toolSpec.description"))?);
                }
                input.tools.push(ToolSpec { name: name.to_owned(), schema: schema.clone() });
            }
            ("cachePoint", point) => {
                parse_cache_point(point, &format!("{path}.cachePoint"))?;
                prefix.mark();
            }
            _ => {}
        }
    }
    if let Some(choice) = cfg.get("toolChoice") {
        input.tool_choice = match union_member(choice, "toolConfig.toolChoice", &["auto", "any", "tool"])? {
            ("auto", _) => ToolChoice::Auto,
            ("any", _) => ToolChoice::Any,
            (_, named) => {
                let name = as_str(
                    as_object(named, "toolConfig.toolChoice.tool")?.get("name"),
                    "toolConfig.toolChoice.tool.name",
                )?;
                if !input.tools.iter().any(|t| t.name == name) {
                    return Err(AwsError::validation(format!(
                        "The tool {name} specified in toolChoice is not defined in toolConfig.tools."
                    )));
                }
                ToolChoice::Tool(name.to_owned())
            }
        };
    }
    Ok(())
}

fn parse_output_config(v: &Value, input: &mut ConverseInput) -> Result<(), AwsError> {
    let cfg = as_object(v, "outputConfig")?;
    reject_unknown(cfg, &["textFormat", "effort"])?;
    if let Some(effort) = cfg.get("effort") {
        as_str(Some(effort), "outputConfig.effort")?;
    }
    let Some(format) = cfg.get("textFormat") else { return Ok(()) };
    let format = as_object(format, "outputConfig.textFormat")?;
    reject_unknown(format, &["type", "structure"])?;
    if as_str(format.get("type"), "outputConfig.textFormat.type")? != "json_schema" {
        return Err(malformed("outputConfig.textFormat.type must be json_schema"));
    }
    let structure = format.get("structure").ok_or_else(|| malformed("required key [structure] not found"))?;
    let (_, def) = union_member(structure, "outputConfig.textFormat.structure", &["jsonSchema"])?;
    let def = as_object(def, "outputConfig.textFormat.structure.jsonSchema")?;
    reject_unknown(def, &["schema", "name", "description"])?;
    let schema = as_str(def.get("schema"), "outputConfig.textFormat.structure.jsonSchema.schema")?;
    let schema: Value = serde_json::from_str(schema)
        .map_err(|e| AwsError::validation(format!("The provided JSON schema is not valid JSON: {e}")))?;
    input.json_schema = Some(schema);
    Ok(())
}

/// `additionalModelRequestFields`: the Anthropic `thinking` rules are checked as Bedrock does.
fn parse_additional_fields(
    v: &Value,
    inference: Option<&Value>,
    input: &mut ConverseInput,
) -> Result<(), AwsError> {
    let fields = as_object(v, "additionalModelRequestFields")?;
    let Some(thinking) = fields.get("thinking") else { return Ok(()) };
    let kind = thinking.get("type").and_then(Value::as_str);
    match kind {
        Some("enabled") => {
            let budget = thinking
                .get("budget_tokens")
                .and_then(Value::as_u64)
                .ok_or_else(|| AwsError::validation("thinking.enabled.budget_tokens: Field required"))?;
            if budget < 1024 {
                return Err(AwsError::validation(
                    "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024",
                ));
            }
            if input.max_tokens.is_some_and(|max| budget >= max) {
                return Err(AwsError::validation(
                    "`max_tokens` must be greater than `thinking.budget_tokens`. Please consult our documentation \
                     at https://docs.claude.com/en/docs/build-with-claude/extended-thinking#max-tokens-and-context-window-size",
                ));
            }
        }
        Some("adaptive") => {}
        Some("disabled") => return Ok(()),
        _ => return Err(AwsError::validation("thinking: Input tag does not match any of the expected tags")),
    }
    input.thinking = true;
    let config = inference.and_then(Value::as_object);
    if config.and_then(|c| c.get("temperature")).and_then(Value::as_f64).is_some_and(|t| t != 1.0) {
        return Err(AwsError::validation(
            "`temperature` may only be set to 1 when thinking is enabled. Please consult our documentation at \
             https://docs.claude.com/en/docs/build-with-claude/extended-thinking#feature-compatibility",
        ));
    }
    if config.and_then(|c| c.get("topP")).and_then(Value::as_f64).is_some_and(|p| p < 0.95) {
        return Err(AwsError::validation(
            "`top_p` must be greater than or equal to 0.95 or unset when thinking is enabled.",
        ));
    }
    if fields.contains_key("top_k") {
        return Err(AwsError::validation("`top_k` must be unset when thinking is enabled."));
    }
    if input.tool_choice != ToolChoice::Auto {
        return Err(AwsError::validation("Thinking may not be enabled when tool_choice forces tool use."));
    }
    Ok(())
}

/// Tool rules Bedrock enforces across the conversation.
fn check_tools(input: &ConverseInput) -> Result<(), AwsError> {
    let uses_tools = input.messages.iter().any(|m| !m.tool_uses.is_empty() || !m.tool_results.is_empty());
    if uses_tools && input.tools.is_empty() {
        return Err(AwsError::validation(
            "The toolConfig field must be defined when using toolUse and toolResult content blocks.",
        ));
    }
    let mut previous_uses: &[String] = &[];
    for (i, m) in input.messages.iter().enumerate() {
        if m.role == Some(Role::User) {
            if m.tool_results.len() > previous_uses.len() {
                return Err(AwsError::validation(format!(
                    "The number of toolResult blocks at messages.{i}.content exceeds the number of toolUse blocks of \
                     previous turn."
                )));
            }
            let missing: Vec<&str> =
                previous_uses.iter().filter(|id| !m.tool_results.contains(id)).map(String::as_str).collect();
            if !missing.is_empty() {
                return Err(AwsError::validation(format!(
                    "Expected toolResult blocks at messages.{i}.content for the following Ids: {}",
                    missing.join(", ")
                )));
            }
        }
        previous_uses = &m.tool_uses;
    }
    // With thinking on, the assistant turn whose tool calls are being answered must start with
    // its thinking, replayed unchanged.
    if input.thinking
        && input.answers_tools()
        && let Some((i, m)) =
            input.messages.iter().enumerate().rev().find(|(_, m)| m.role == Some(Role::Assistant))
        && !m.tool_uses.is_empty()
        && !m.starts_with_reasoning
    {
        return Err(AwsError::validation(format!(
            "messages.{i}.content.0.type: Expected `thinking` or `redacted_thinking`, but found `tool_use`. When \
             `thinking` is enabled, a final `assistant` message must start with a thinking block (preceeding the \
             lastmost set of `tool_use` and `tool_result` blocks). We recommend you include thinking blocks from \
             previous turns."
        )));
    }
    Ok(())
}

/// Validates one message content block, recording what it holds in `msg`.
fn parse_block(
    block: &Value,
    path: &str,
    msg: &mut InputMessage,
    prefix: &mut Prefix,
) -> Result<(), AwsError> {
    let (member, v) = union_member(block, path, CONTENT_BLOCK)?;
    let path = format!("{path}.{member}");
    match member {
        "text" => {
            let text = as_str(Some(v), &path)?;
            if text.trim().is_empty() {
                return Err(AwsError::validation(
                    "The text field in the ContentBlock object is blank. Add text to the text field, and try again.",
                ));
            }
            prefix.add(text);
            msg.texts.push(text.to_owned());
        }
        "image" => parse_media(v, &path, &["png", "jpeg", "gif", "webp"], None, prefix)?,
        "document" => {
            parse_media(
                v,
                &path,
                &["pdf", "csv", "doc", "docx", "xls", "xlsx", "html", "txt", "md"],
                Some(&[][..]),
                prefix,
            )?;
        }
        "toolUse" => {
            let obj = as_object(v, &path)?;
            reject_unknown(obj, &["toolUseId", "name", "input", "type"])?;
            let id = as_str(obj.get("toolUseId"), &format!("{path}.toolUseId"))?;
            if !(1..=64).contains(&id.len())
                || !id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
            {
                return Err(constraint(
                    id,
                    &format!("{path}.toolUseId"),
                    "satisfy regular expression pattern: [a-zA-Z0-9_.:-]+",
                ));
            }
            as_str(obj.get("name"), &format!("{path}.name"))?;
            obj.get("input")
                .ok_or_else(|| malformed(format!("required key [input] not found at '{path}'")))?;
            msg.tool_uses.push(id.to_owned());
        }
        "toolResult" => {
            let obj = as_object(v, &path)?;
            reject_unknown(obj, &["toolUseId", "content", "status", "type"])?;
            let id = as_str(obj.get("toolUseId"), &format!("{path}.toolUseId"))?;
            let content = as_array(obj.get("content").unwrap_or(&Value::Null), &format!("{path}.content"))?;
            for (j, item) in content.iter().enumerate() {
                let item_path = format!("{path}.content.{j}");
                match union_member(
                    item,
                    &item_path,
                    &["json", "text", "image", "document", "video", "searchResult"],
                )? {
                    ("text", t) => {
                        let t = as_str(Some(t), &item_path)?;
                        prefix.add(t);
                        msg.texts.push(t.to_owned());
                    }
                    ("image", img) => parse_media(
                        img,
                        &format!("{item_path}.image"),
                        &["png", "jpeg", "gif", "webp"],
                        None,
                        prefix,
                    )?,
                    _ => {}
                }
            }
            msg.tool_results.push(id.to_owned());
        }
        "reasoningContent" => {
            let (kind, r) = union_member(v, &path, &["reasoningText", "redactedContent"])?;
            if kind == "reasoningText" {
                let r = as_object(r, &path)?;
                reject_unknown(r, &["text", "signature"])?;
                let text = as_str(r.get("text"), &format!("{path}.reasoningText.text"))?;
                let signature = r.get("signature").and_then(Value::as_str);
                // Signature-only blocks carry an empty text: only the signature is checked then.
                if signature.is_none_or(|s| !text.is_empty() && s != thinking_signature(text)) {
                    return Err(AwsError::validation(format!(
                        "{path}: Invalid `signature` in `thinking` block"
                    )));
                }
            } else if r.as_str().is_none_or(str::is_empty) {
                return Err(malformed(format!("expected base64 data at '{path}.redactedContent'")));
            }
            if msg.texts.is_empty() && msg.tool_uses.is_empty() {
                msg.starts_with_reasoning = true;
            }
        }
        "cachePoint" => {
            parse_cache_point(v, &path)?;
            prefix.mark();
        }
        _ => {}
    }
    Ok(())
}

/// Validates an image or document block (`names` given for documents, which need a name).
fn parse_media(
    v: &Value,
    path: &str,
    formats: &[&str],
    names: Option<&[&str]>,
    prefix: &mut Prefix,
) -> Result<(), AwsError> {
    use base64::Engine;
    let obj = as_object(v, path)?;
    let format = as_str(obj.get("format"), &format!("{path}.format"))?;
    if !formats.contains(&format) {
        return Err(constraint(
            format,
            &format!("{path}.format"),
            &format!("satisfy enum value set: [{}]", formats.join(", ")),
        ));
    }
    if names.is_some() {
        let name = as_str(obj.get("name"), &format!("{path}.name"))?;
        let valid = !name.is_empty()
            && name.len() <= 200
            && !name.contains("  ")
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, ' ' | '-' | '(' | ')' | '[' | ']'));
        if !valid {
            return Err(AwsError::validation(format!(
                "The document file name can only contain alphanumeric characters, whitespace characters, hyphens, \
                 parentheses, and square brackets. The name can't contain more than one consecutive whitespace \
                 character. ({path}.name)"
            )));
        }
    }
    let source =
        obj.get("source").ok_or_else(|| malformed(format!("required key [source] not found at '{path}'")))?;
    let (_, bytes) =
        union_member(source, &format!("{path}.source"), &["bytes", "s3Location", "text", "content"])?;
    if let Some(b64) = bytes.as_str() {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|_| malformed(format!("invalid base64 at '{path}.source.bytes'")))?;
        if formats.contains(&"png") && !image_matches(format, &raw) {
            return Err(AwsError::validation(format!(
                "The image format in {path} does not match the image bytes: expected {format}."
            )));
        }
        prefix.add_raw(b64);
    }
    Ok(())
}

fn image_matches(format: &str, raw: &[u8]) -> bool {
    match format {
        "png" => raw.starts_with(b"\x89PNG"),
        "jpeg" => raw.starts_with(&[0xFF, 0xD8, 0xFF]),
        "gif" => raw.starts_with(b"GIF8"),
        _ => raw.len() >= 12 && &raw[8..12] == b"WEBP",
    }
}

fn parse_messages(v: Option<&Value>, prefix: &mut Prefix) -> Result<Vec<InputMessage>, AwsError> {
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
        let blocks = as_array(content, &format!("{path}.content"))?;
        if blocks.is_empty() {
            return Err(AwsError::validation(format!(
                "The content field in the Message object at {path} is empty. \
                 Add a ContentBlock object to the content field and try again."
            )));
        }
        let mut msg = InputMessage { role: Some(role), ..InputMessage::default() };
        for (j, block) in blocks.iter().enumerate() {
            parse_block(block, &format!("{path}.content.{j}"), &mut msg, prefix)?;
        }
        match out.last() {
            None if role != Role::User => return Err(AwsError::validation(START)),
            Some(prev)
                if prev.role == Some(role) || role == Role::System || prev.role == Some(Role::System) =>
            {
                return Err(AwsError::validation(ALTERNATE));
            }
            _ => {}
        }
        out.push(msg);
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

    fn tool_turns(results: Value) -> Value {
        json!({
            "messages": [
                user("go"),
                {"role": "assistant", "content": [
                    {"toolUse": {"toolUseId": "t1", "name": "f", "input": {}}},
                    {"toolUse": {"toolUseId": "t2", "name": "f", "input": {}}}
                ]},
                {"role": "user", "content": results}
            ],
            "toolConfig": {"tools": [{"toolSpec": {"name": "f", "inputSchema": {"json": {"type": "object"}}}}]}
        })
    }

    fn result(id: &str) -> Value {
        json!({"toolResult": {"toolUseId": id, "content": [{"text": "ok"}]}})
    }

    #[test]
    fn tool_results_must_answer_the_previous_turn_exactly() {
        let ok = parse(tool_turns(json!([result("t1"), result("t2")])).to_string().as_bytes()).unwrap();
        assert_eq!(ok.messages[2].tool_results, ["t1", "t2"]);
        assert_eq!(ok.last_user_text(), "ok ok");
        assert_eq!(
            err(tool_turns(json!([result("t1")]))),
            "Expected toolResult blocks at messages.2.content for the following Ids: t2"
        );
        assert_eq!(
            err(tool_turns(json!([result("t1"), result("t2"), result("t3")]))),
            "The number of toolResult blocks at messages.2.content exceeds the number of toolUse blocks of previous turn."
        );
        let mut without_config = tool_turns(json!([result("t1"), result("t2")]));
        without_config.as_object_mut().unwrap().remove("toolConfig");
        assert_eq!(
            err(without_config),
            "The toolConfig field must be defined when using toolUse and toolResult content blocks."
        );
    }

    #[test]
    fn tool_config_is_checked() {
        let with = |cfg: Value| json!({"messages": [user("a")], "toolConfig": cfg});
        assert!(err(with(json!({"tools": []}))).contains("length greater than or equal to 1"));
        let bad_name = json!({"tools": [{"toolSpec": {"name": "a.b", "inputSchema": {"json": {}}}}]});
        assert!(err(with(bad_name)).contains("regular expression pattern"));
        let unknown_choice = json!({
            "tools": [{"toolSpec": {"name": "a", "inputSchema": {"json": {}}}}],
            "toolChoice": {"tool": {"name": "b"}}
        });
        assert!(err(with(unknown_choice)).contains("not defined in toolConfig.tools"));
        let bad_ttl = json!({"tools": [
            {"toolSpec": {"name": "a", "inputSchema": {"json": {}}}},
            {"cachePoint": {"type": "default", "ttl": "2h"}}
        ]});
        assert!(err(with(bad_ttl)).contains("[5m, 1h]"));
    }

    #[test]
    fn thinking_rules_are_bedrocks() {
        let with = |fields: Value, cfg: Value| json!({"messages": [user("a")], "additionalModelRequestFields": fields, "inferenceConfig": cfg});
        let enabled = |budget: u64| json!({"thinking": {"type": "enabled", "budget_tokens": budget}});
        assert!(
            parse(with(enabled(1024), json!({"maxTokens": 2000})).to_string().as_bytes()).unwrap().thinking
        );
        assert!(err(with(enabled(1000), json!({}))).contains("greater than or equal to 1024"));
        assert!(
            err(with(enabled(2000), json!({"maxTokens": 2000})))
                .contains("must be greater than `thinking.budget_tokens`")
        );
        assert!(
            err(with(enabled(1024), json!({"temperature": 0.5})))
                .contains("`temperature` may only be set to 1")
        );
        assert!(err(with(enabled(1024), json!({"topP": 0.5}))).contains("`top_p`"));
    }

    #[test]
    fn replayed_thinking_must_be_signed_and_first() {
        let body = |reasoning: Value| {
            json!({
                "messages": [
                    user("go"),
                    {"role": "assistant", "content": [reasoning, {"toolUse": {"toolUseId": "t1", "name": "f", "input": {}}}]},
                    {"role": "user", "content": [result("t1")]}
                ],
                "toolConfig": {"tools": [{"toolSpec": {"name": "f", "inputSchema": {"json": {"type": "object"}}}}]},
                "additionalModelRequestFields": {"thinking": {"type": "enabled", "budget_tokens": 1024}}
            })
        };
        let signed = |text: &str, sig: &str| json!({"reasoningContent": {"reasoningText": {"text": text, "signature": sig}}});
        assert!(parse(body(signed("hmm", &thinking_signature("hmm"))).to_string().as_bytes()).is_ok());
        assert!(
            parse(body(json!({"reasoningContent": {"redactedContent": "abcd"}})).to_string().as_bytes())
                .is_ok()
        );
        assert!(err(body(signed("hmm!", &thinking_signature("hmm")))).contains("Invalid `signature`"));
        assert!(err(body(json!({"text": "no thinking"}))).contains("must start with a thinking block"));
    }

    #[test]
    fn media_blocks_are_checked() {
        let png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";
        let image = |format: &str| json!({"messages": [{"role": "user", "content": [{"image": {"format": format, "source": {"bytes": png}}}]}]});
        assert!(parse(image("png").to_string().as_bytes()).is_ok());
        assert!(err(image("jpeg")).contains("does not match the image bytes"));
        let doc = |name: &str| json!({"messages": [{"role": "user", "content": [{"document": {"format": "pdf", "name": name, "source": {"bytes": "JVBERi0x"}}}]}]});
        assert!(parse(doc("Q3 report (2)").to_string().as_bytes()).is_ok());
        assert!(err(doc("report_v2.pdf")).contains("document file name"));
        assert!(err(doc("a  b")).contains("document file name"));
    }

    #[test]
    fn the_cache_prefix_ends_at_the_last_cache_point() {
        let body = json!({
            "system": [{"text": "one two"}, {"cachePoint": {"type": "default"}}],
            "messages": [{"role": "user", "content": [{"text": "three"}, {"cachePoint": {"type": "default", "ttl": "1h"}}, {"text": "four"}]}]
        });
        let a = parse(body.to_string().as_bytes()).unwrap().cache_prefix.unwrap();
        assert_eq!(a.tokens, 3);
        let mut other = body.clone();
        other["messages"][0]["content"][2]["text"] = json!("five");
        assert_eq!(parse(other.to_string().as_bytes()).unwrap().cache_prefix.unwrap(), a);
        other["messages"][0]["content"][0]["text"] = json!("six");
        assert_ne!(parse(other.to_string().as_bytes()).unwrap().cache_prefix.unwrap().key, a.key);
    }
}
