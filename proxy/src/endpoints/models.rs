//! `GET /v1/models`: the served models the caller may use.

use http::{Request, Response, StatusCode};
use serde::Serialize;

use super::{json_response, snapshot};
use api::config::{Model, ModelKind};

use crate::body::ResponseBody;
use crate::error::ApiError;
use crate::server::App;
use crate::translate::chat_converse::family::{Capabilities, ReasoningStyle};
use crate::usage::Prices;

#[derive(Serialize)]
struct ModelList<'a> {
    object: &'static str,
    data: Vec<ModelEntry<'a>>,
}

#[derive(Serialize)]
struct ModelEntry<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    owned_by: &'a str,
    /// Gateway extension: `chat`, `embedding` or `image`, so clients (the playground) pick the API.
    kind: ModelKind,
    /// Gateway extension, chat models only: what the model accepts besides text.
    #[serde(skip_serializing_if = "Option::is_none")]
    capabilities: Option<ChatCapabilities>,
    /// Gateway extension: the USD prices the caller is billed at (after `spec.cost`), absent for
    /// unpriced models. Browsers cannot read the cost trailer of a stream; with these they price
    /// its usage chunk themselves.
    #[serde(skip_serializing_if = "Option::is_none")]
    pricing: Option<Pricing>,
}

/// A model's effective prices, USD.
#[derive(Serialize)]
struct Pricing {
    input_per_million_tokens: f64,
    output_per_million_tokens: f64,
    cache_read_per_million_tokens: f64,
    cache_write_per_million_tokens: f64,
    per_image: f64,
    /// The prices of a request whose input (all kinds) is above `above_input_tokens`.
    #[serde(skip_serializing_if = "Option::is_none")]
    long_context: Option<LongContextPricing>,
}

/// The long-context prices of a model that has them, USD.
#[derive(Serialize)]
struct LongContextPricing {
    above_input_tokens: u64,
    input_per_million_tokens: f64,
    output_per_million_tokens: f64,
    cache_read_per_million_tokens: f64,
    cache_write_per_million_tokens: f64,
}

impl From<Prices> for Pricing {
    fn from(p: Prices) -> Self {
        Pricing {
            input_per_million_tokens: p.input_per_million,
            output_per_million_tokens: p.output_per_million,
            cache_read_per_million_tokens: p.cache_read_per_million,
            cache_write_per_million_tokens: p.cache_write_per_million,
            per_image: p.per_image,
            long_context: p.long_context.map(|long| {
                let l = p.long_context_prices(long);
                LongContextPricing {
                    above_input_tokens: long.above_input_tokens,
                    input_per_million_tokens: l.input_per_million,
                    output_per_million_tokens: l.output_per_million,
                    cache_read_per_million_tokens: l.cache_read_per_million,
                    cache_write_per_million_tokens: l.cache_write_per_million,
                }
            }),
        }
    }
}

/// The chat features a client may offer for a model (from the model-family table).
#[derive(Serialize)]
struct ChatCapabilities {
    images: bool,
    documents: bool,
    tools: bool,
    reasoning: bool,
}

impl ChatCapabilities {
    fn of(model: &Model) -> Option<Self> {
        if model.kind != ModelKind::Chat {
            return None;
        }
        let caps = Capabilities::of(model.underlying_model_id.as_deref().unwrap_or(&model.model_id));
        Some(ChatCapabilities {
            images: caps.images,
            documents: caps.documents,
            tools: caps.tools,
            reasoning: caps.reasoning != ReasoningStyle::None,
        })
    }
}

/// Lists the models the caller's policies grant, sorted by served name.
pub async fn list<B>(app: &App, req: &Request<B>) -> Result<Response<ResponseBody>, ApiError> {
    let snapshot = snapshot(app)?;
    let subject = app.auth.authenticate(req.headers(), &snapshot).await?;
    let data = snapshot
        .visible_models(&subject)
        .into_iter()
        .map(|r| ModelEntry {
            id: &r.model.served_name,
            object: "model",
            created: 0,
            owned_by: &r.model.account,
            kind: r.model.kind,
            capabilities: ChatCapabilities::of(&r.model),
            pricing: app.usage.prices(&r.model).map(Pricing::from),
        })
        .collect();
    let body = serde_json::to_vec(&ModelList { object: "list", data }).expect("model list serializes");
    Ok(json_response(StatusCode::OK, body))
}
