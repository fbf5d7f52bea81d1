//! What each Bedrock model family accepts through Converse, keyed by the underlying model.
//!
//! Inference profile ids (`us.`, `eu.`, `apac.`, `global.`, ...) and foundation-model or
//! inference-profile ARNs resolve to their base model id. Application inference profile ARNs
//! hide the model: they get [`Capabilities::UNKNOWN`], which allows everything and lets Bedrock
//! judge. Sources: the Bedrock "supported models and model features" table for Converse (every
//! family there takes stop sequences, so they need no flag), the prompt-caching and extended-
//! thinking pages.

/// How a model is told to think.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReasoningStyle {
    /// No reasoning control: `reasoning_effort` other than `none` is refused.
    None,
    /// `additionalModelRequestFields.thinking: {type: enabled, budget_tokens}` (Claude 3.7 to 4.5).
    Budget,
    /// `thinking: {type: adaptive}` plus `outputConfig.effort` (Claude 4.6 and later).
    Adaptive,
    /// `additionalModelRequestFields.reasoning_effort` (OpenAI gpt-oss).
    EffortField,
    /// Always reasons, no control (DeepSeek R1): the effort is accepted and has no effect.
    Always,
}

/// Where `top_k` goes for a family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TopK {
    /// Not supported: ignored.
    None,
    /// `additionalModelRequestFields.<name>`: `top_k` (Anthropic, Mistral 7B / Mixtral), `k` (Cohere).
    Field(&'static str),
    /// `additionalModelRequestFields.inferenceConfig.topK` (Amazon Nova).
    NovaInferenceConfig,
}

/// Features of one model family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// Family name for error messages.
    pub family: &'static str,
    /// `system` blocks.
    pub system: bool,
    /// `toolConfig`.
    pub tools: bool,
    /// Tool use through ConverseStream.
    pub streaming_tools: bool,
    /// `image` blocks in user messages.
    pub images: bool,
    /// `document` blocks.
    pub documents: bool,
    /// `image` blocks inside `toolResult`.
    pub tool_result_images: bool,
    /// `cachePoint` in system and messages.
    pub caching: bool,
    /// `cachePoint` among the tools.
    pub tool_caching: bool,
    /// `ttl: 1h` on cache points (else the default TTL is used).
    pub cache_1h: bool,
    /// Reasoning control.
    pub reasoning: ReasoningStyle,
    /// `outputConfig.textFormat` (native JSON-schema output).
    pub native_json: bool,
    /// `top_k`.
    pub top_k: TopK,
    /// `seed`, `frequency_penalty` and `presence_penalty` as native fields (Cohere); ignored elsewhere.
    pub seed_and_penalties: bool,
}

const ALL: Capabilities = Capabilities {
    family: "unknown",
    system: true,
    tools: true,
    streaming_tools: true,
    images: true,
    documents: true,
    tool_result_images: true,
    caching: true,
    tool_caching: true,
    cache_1h: true,
    reasoning: ReasoningStyle::None,
    native_json: false,
    top_k: TopK::None,
    seed_and_penalties: false,
};

const CLAUDE: Capabilities = Capabilities {
    family: "Anthropic Claude",
    caching: false,
    tool_caching: false,
    cache_1h: false,
    top_k: TopK::Field("top_k"),
    ..ALL
};

const NOVA: Capabilities = Capabilities {
    family: "Amazon Nova",
    tool_result_images: false,
    tool_caching: false,
    cache_1h: false,
    top_k: TopK::NovaInferenceConfig,
    ..ALL
};

const TEXT_ONLY: Capabilities = Capabilities {
    images: false,
    documents: false,
    tool_result_images: false,
    caching: false,
    tool_caching: false,
    cache_1h: false,
    ..ALL
};

const LLAMA: Capabilities =
    Capabilities { family: "Meta Llama", streaming_tools: false, documents: true, ..TEXT_ONLY };

const MISTRAL: Capabilities = Capabilities { family: "Mistral", ..TEXT_ONLY };

const COHERE: Capabilities = Capabilities {
    family: "Cohere Command R",
    documents: true,
    top_k: TopK::Field("k"),
    seed_and_penalties: true,
    ..TEXT_ONLY
};

/// Base model id prefix -> capabilities; the first match wins, so specific prefixes come first.
const TABLE: &[(&str, Capabilities)] = &[
    // Claude 3 Haiku/Sonnet/Opus and 3.5 Sonnet: no caching, no reasoning.
    ("anthropic.claude-3-haiku", CLAUDE),
    ("anthropic.claude-3-sonnet", CLAUDE),
    ("anthropic.claude-3-opus", CLAUDE),
    ("anthropic.claude-3-5-sonnet", CLAUDE),
    // Claude 3.5 Haiku reads no images.
    (
        "anthropic.claude-3-5-haiku",
        Capabilities { caching: true, images: false, tool_result_images: false, ..CLAUDE },
    ),
    (
        "anthropic.claude-3-7-sonnet",
        Capabilities { caching: true, tool_caching: true, reasoning: ReasoningStyle::Budget, ..CLAUDE },
    ),
    (
        "anthropic.claude-sonnet-4-5",
        Capabilities {
            caching: true,
            tool_caching: true,
            cache_1h: true,
            reasoning: ReasoningStyle::Budget,
            native_json: true,
            ..CLAUDE
        },
    ),
    (
        "anthropic.claude-haiku-4-5",
        Capabilities {
            caching: true,
            tool_caching: true,
            cache_1h: true,
            reasoning: ReasoningStyle::Budget,
            native_json: true,
            ..CLAUDE
        },
    ),
    (
        "anthropic.claude-opus-4-5",
        Capabilities {
            caching: true,
            tool_caching: true,
            cache_1h: true,
            reasoning: ReasoningStyle::Budget,
            native_json: true,
            ..CLAUDE
        },
    ),
    // Claude 4 and 4.1 (Sonnet 4, Opus 4, Opus 4.1).
    (
        "anthropic.claude-sonnet-4-2",
        Capabilities { caching: true, tool_caching: true, reasoning: ReasoningStyle::Budget, ..CLAUDE },
    ),
    (
        "anthropic.claude-opus-4-2",
        Capabilities { caching: true, tool_caching: true, reasoning: ReasoningStyle::Budget, ..CLAUDE },
    ),
    (
        "anthropic.claude-opus-4-1",
        Capabilities { caching: true, tool_caching: true, reasoning: ReasoningStyle::Budget, ..CLAUDE },
    ),
    // Claude 4.6 and later: adaptive thinking with an effort level.
    (
        "anthropic.claude-",
        Capabilities {
            caching: true,
            tool_caching: true,
            cache_1h: true,
            reasoning: ReasoningStyle::Adaptive,
            native_json: true,
            ..CLAUDE
        },
    ),
    ("amazon.nova-micro", Capabilities { images: false, documents: false, ..NOVA }),
    ("amazon.nova-", NOVA),
    ("meta.llama3-2-11b", Capabilities { images: true, ..LLAMA }),
    ("meta.llama3-2-90b", Capabilities { images: true, ..LLAMA }),
    ("meta.llama4", Capabilities { images: true, ..LLAMA }),
    ("meta.llama3-1", LLAMA),
    ("meta.llama3-2", LLAMA),
    ("meta.llama3-3", LLAMA),
    // Llama 3.0 predates tool use.
    ("meta.llama3", Capabilities { tools: false, streaming_tools: false, ..LLAMA }),
    ("mistral.pixtral", Capabilities { family: "Mistral Pixtral", images: true, documents: true, ..MISTRAL }),
    ("mistral.mistral-large", Capabilities { documents: true, streaming_tools: false, ..MISTRAL }),
    ("mistral.mistral-small", Capabilities { streaming_tools: false, ..MISTRAL }),
    // Mistral 7B Instruct and Mixtral 8x7B: no system prompt, no tools.
    (
        "mistral.",
        Capabilities {
            system: false,
            tools: false,
            streaming_tools: false,
            documents: true,
            top_k: TopK::Field("top_k"),
            ..MISTRAL
        },
    ),
    ("cohere.command-r", COHERE),
    (
        "deepseek.r1",
        Capabilities {
            family: "DeepSeek R1",
            tools: false,
            streaming_tools: false,
            documents: true,
            reasoning: ReasoningStyle::Always,
            ..TEXT_ONLY
        },
    ),
    ("deepseek.", Capabilities { family: "DeepSeek V3", documents: true, ..TEXT_ONLY }),
    (
        "openai.gpt-oss",
        Capabilities {
            family: "OpenAI gpt-oss",
            reasoning: ReasoningStyle::EffortField,
            native_json: true,
            ..TEXT_ONLY
        },
    ),
    ("qwen.qwen3", Capabilities { family: "Qwen 3", native_json: true, ..TEXT_ONLY }),
];

impl Capabilities {
    /// What a model whose family is not known gets: everything allowed, Bedrock judges.
    pub const UNKNOWN: Capabilities = ALL;

    /// The capabilities of the model behind `model_id` (model id, profile id or ARN).
    pub fn of(model_id: &str) -> Capabilities {
        let base = base_model_id(model_id);
        TABLE.iter().find(|(prefix, _)| base.starts_with(prefix)).map_or(Self::UNKNOWN, |(_, caps)| *caps)
    }
}

/// Geography prefixes of system-defined inference profiles.
const PROFILE_PREFIXES: &[&str] = &["us.", "eu.", "apac.", "jp.", "au.", "ca.", "us-gov.", "global."];

/// The base model id: ARN resource part, without an inference-profile geography prefix.
pub fn base_model_id(model_id: &str) -> &str {
    let id = match model_id.strip_prefix("arn:") {
        Some(arn) => arn.rsplit_once('/').map_or(arn, |(_, resource)| resource),
        None => model_id,
    };
    PROFILE_PREFIXES.iter().find_map(|p| id.strip_prefix(p)).unwrap_or(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_and_arns_resolve_to_the_base_model() {
        assert_eq!(
            base_model_id("us.anthropic.claude-3-7-sonnet-20250219-v1:0"),
            "anthropic.claude-3-7-sonnet-20250219-v1:0"
        );
        assert_eq!(
            base_model_id("global.anthropic.claude-sonnet-4-5-20250929-v1:0"),
            "anthropic.claude-sonnet-4-5-20250929-v1:0"
        );
        assert_eq!(
            base_model_id("arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-lite-v1:0"),
            "amazon.nova-lite-v1:0"
        );
        assert_eq!(
            base_model_id("arn:aws:bedrock:us-east-1:1:inference-profile/eu.amazon.nova-pro-v1:0"),
            "amazon.nova-pro-v1:0"
        );
    }

    #[test]
    fn families() {
        assert_eq!(
            Capabilities::of("us.anthropic.claude-3-7-sonnet-20250219-v1:0").reasoning,
            ReasoningStyle::Budget
        );
        assert_eq!(Capabilities::of("anthropic.claude-opus-4-6-v1").reasoning, ReasoningStyle::Adaptive);
        assert_eq!(
            Capabilities::of("anthropic.claude-sonnet-4-20250514-v1:0").reasoning,
            ReasoningStyle::Budget
        );
        assert!(!Capabilities::of("anthropic.claude-3-haiku-20240307-v1:0").caching);
        assert!(!Capabilities::of("amazon.nova-micro-v1:0").images);
        assert!(Capabilities::of("amazon.nova-lite-v1:0").images);
        assert!(!Capabilities::of("mistral.mistral-7b-instruct-v0:2").system);
        assert!(!Capabilities::of("deepseek.r1-v1:0").tools);
        assert_eq!(
            Capabilities::of("arn:aws:bedrock:us-east-1:1:application-inference-profile/abc"),
            Capabilities::UNKNOWN
        );
    }
}
