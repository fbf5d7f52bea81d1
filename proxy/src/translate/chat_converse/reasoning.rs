//! Reasoning: `reasoning_effort` -> the model's thinking control, and thinking blocks replayed.
//!
//! - Budget models (Claude 3.7 to 4.5): `additionalModelRequestFields.thinking = {type: enabled,
//!   budget_tokens}` with the budget at low 30% / medium 60% / high 90% of `max_tokens` (4096
//!   when not given), at least 1024; when the budget does not fit below `max_tokens`, `maxTokens`
//!   becomes budget + `max_tokens`, so the answer keeps the room the caller asked for. `none`
//!   sends nothing; `minimal` reads as `low`.
//! - Adaptive models (Claude 4.6+): `thinking = {type: adaptive}` and `outputConfig.effort`.
//! - gpt-oss: `additionalModelRequestFields.reasoning_effort`.
//! - DeepSeek R1 always reasons: the effort is accepted and changes nothing.
//! - Other models: any effort but `none` is a 400 naming the model.
//!
//! While Claude thinks, Bedrock refuses sampling changes: `temperature` other than 1, `top_p`
//! below 0.95 and `top_k` are left out (documented here so callers can rely on it), and a
//! forced `tool_choice` is a 400. Thinking blocks (`thinking_blocks` of an assistant message)
//! are replayed before that turn's other blocks only while thinking is on: Bedrock needs them
//! then, and they are meaningless otherwise.

use serde_json::{Map, Value, json};

use super::family::{Capabilities, ReasoningStyle};
use crate::bedrock::converse::{ContentBlock, ReasoningBlock, ReasoningText};
use crate::error::ApiError;
use crate::openai::chat::{ChatCompletionRequest, ReasoningEffort, ThinkingBlock, ToolChoice};

/// `max_tokens` assumed for the budget when the caller gave none.
const DEFAULT_MAX_TOKENS: u32 = 4096;
/// Smallest budget Bedrock accepts.
const MIN_BUDGET: u32 = 1024;

/// What the effort turns into.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Reasoning {
    /// Claude is thinking: sampling limits apply and thinking blocks are replayed.
    pub thinking: bool,
    /// Entries for `additionalModelRequestFields`.
    pub fields: Map<String, Value>,
    /// `outputConfig.effort`.
    pub effort: Option<&'static str>,
    /// `inferenceConfig.maxTokens` replacing the caller's.
    pub max_tokens: Option<u32>,
}

fn level(effort: ReasoningEffort) -> Option<&'static str> {
    match effort {
        ReasoningEffort::None => None,
        ReasoningEffort::Minimal | ReasoningEffort::Low => Some("low"),
        ReasoningEffort::Medium => Some("medium"),
        ReasoningEffort::High => Some("high"),
    }
}

/// Plans the reasoning of `req` on a model with `caps`.
pub(super) fn plan(req: &ChatCompletionRequest, caps: &Capabilities) -> Result<Reasoning, ApiError> {
    let Some(effort) = req.reasoning_effort else { return Ok(Reasoning::default()) };
    let Some(level) = level(effort) else { return Ok(Reasoning::default()) };
    let mut out = Reasoning::default();
    match caps.reasoning {
        ReasoningStyle::None => {
            return Err(super::unsupported(req, caps, "`reasoning_effort`", "reasoning_effort"));
        }
        ReasoningStyle::Always => return Ok(out),
        ReasoningStyle::EffortField => {
            out.fields.insert("reasoning_effort".into(), Value::String(level.into()));
            return Ok(out);
        }
        ReasoningStyle::Budget => {
            let max = req.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS);
            let percent: u64 = match level {
                "low" => 30,
                "medium" => 60,
                _ => 90,
            };
            let budget = u32::try_from(u64::from(max) * percent / 100).unwrap_or(u32::MAX).max(MIN_BUDGET);
            if budget >= max || req.max_tokens.is_none() {
                out.max_tokens = Some(if budget >= max { budget.saturating_add(max) } else { max });
            }
            out.fields.insert("thinking".into(), json!({"type": "enabled", "budget_tokens": budget}));
        }
        ReasoningStyle::Adaptive => {
            out.fields.insert("thinking".into(), json!({"type": "adaptive"}));
            out.effort = Some(level);
        }
    }
    if matches!(req.tool_choice, Some(ToolChoice::Required | ToolChoice::Function(_))) {
        return Err(ApiError::invalid_request(format!(
            "The model `{}` ({}) cannot be forced to call a tool while it thinks: use `tool_choice` \
             `auto` or leave out `reasoning_effort`.",
            req.model, caps.family
        ))
        .with_param("tool_choice"));
    }
    out.thinking = true;
    Ok(out)
}

/// The `reasoningContent` blocks replaying an assistant message's thinking.
pub(super) fn replay(thinking: &[ThinkingBlock]) -> impl Iterator<Item = ContentBlock<'_>> {
    thinking.iter().map(|block| {
        ContentBlock::ReasoningContent(match block {
            ThinkingBlock::Thinking { thinking, signature } => ReasoningBlock::ReasoningText(ReasoningText {
                text: thinking,
                signature: signature.as_deref(),
            }),
            ThinkingBlock::RedactedThinking { data } => ReasoningBlock::RedactedContent(data),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(max_tokens: Option<u32>, effort: ReasoningEffort) -> (Value, Option<u32>) {
        let req = ChatCompletionRequest { max_tokens, reasoning_effort: Some(effort), ..Default::default() };
        let caps = Capabilities::of("anthropic.claude-3-7-sonnet-20250219-v1:0");
        let r = plan(&req, &caps).unwrap();
        (r.fields.get("thinking").cloned().unwrap_or(Value::Null), r.max_tokens)
    }

    #[test]
    fn budgets_follow_the_design_table() {
        assert_eq!(
            budget(Some(10000), ReasoningEffort::Low),
            (json!({"type": "enabled", "budget_tokens": 3000}), None)
        );
        assert_eq!(budget(Some(10000), ReasoningEffort::Medium).0["budget_tokens"], 6000);
        assert_eq!(budget(Some(10000), ReasoningEffort::High).0["budget_tokens"], 9000);
        assert_eq!(budget(Some(10000), ReasoningEffort::None), (Value::Null, None));
        // The floor, and max_tokens raised so the answer keeps its room.
        assert_eq!(
            budget(Some(100), ReasoningEffort::Low),
            (json!({"type": "enabled", "budget_tokens": 1024}), Some(1124))
        );
        // No max_tokens: 4096 assumed and sent.
        assert_eq!(
            budget(None, ReasoningEffort::Medium),
            (json!({"type": "enabled", "budget_tokens": 2457}), Some(4096))
        );
    }
}
