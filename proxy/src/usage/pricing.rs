//! Bedrock prices: the built-in table (`proxy/data/bedrock-prices.json`, with its sources and
//! date) resolved for one served model by region and inference tier, then overridden by the
//! BedrockModel's `spec.cost`.
//!
//! Resolution, each step overriding the fields it sets: the table's base (in-region) prices,
//! then its `regions.<region>` entry, then its `tiers.<geo|global>` entry, then `spec.cost`.
//! A model's `longContext` surcharge scales whatever that resolved to, so it follows the tier
//! and a private `spec.cost` alike.

use std::collections::HashMap;
use std::sync::LazyLock;

use api::config::{Cost, Model};
use serde::Deserialize;

/// The embedded price table, parsed once.
static BUILTIN: LazyLock<PriceTable> = LazyLock::new(|| {
    PriceTable::parse(include_str!("../../data/bedrock-prices.json")).expect("built-in price table parses")
});

/// Prefixes of geographic cross-region inference profiles (`us.anthropic...`).
const GEO_PREFIXES: &[&str] = &["us", "us-gov", "eu", "apac", "ca", "jp", "au"];

/// How a call is routed, which Bedrock prices differently for some models.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Tier {
    /// A model id or foundation-model ARN called in its own region.
    InRegion,
    /// A geographic cross-region inference profile (`us.`, `eu.`, `apac.`, ...).
    Geo,
    /// A global cross-region inference profile (`global.`).
    Global,
}

/// A price table: where the numbers come from and the prices per underlying model.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PriceTable {
    /// Day the prices were read from the sources (`YYYY-MM-DD`).
    pub date: String,
    /// Pages the prices come from.
    pub sources: Vec<String>,
    /// Share of the on-demand price batch inference saves (0.5: half price).
    pub batch_discount: f64,
    /// Where the prices of each model family were checked, and whether an AWS page confirmed them.
    #[serde(default)]
    pub provenance: Vec<Provenance>,
    models: HashMap<String, TableEntry>,
}

/// Where the prices of some models come from.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Provenance {
    /// Underlying model ids this entry covers.
    pub models: Vec<String>,
    /// Page the prices were read from.
    pub source: String,
    /// Day they were checked (`YYYY-MM-DD`).
    pub checked: String,
    /// Whether an AWS page (or a verbatim copy of it) confirmed them; `false`: third-party only.
    pub verified: bool,
    /// What was read where, and what is uncertain.
    #[serde(default)]
    pub note: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TableEntry {
    #[serde(flatten)]
    base: Cost,
    #[serde(default)]
    regions: HashMap<String, Cost>,
    #[serde(default)]
    tiers: HashMap<Tier, Cost>,
    #[serde(default)]
    long_context: Option<LongContext>,
}

/// Bedrock's long-context surcharge (Claude Sonnet 4 and 4.5 with the 1M-token context): past a
/// number of input tokens, every token of the request is billed at higher rates.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LongContext {
    /// Input tokens (uncached, cache read and cache write together) above which it applies.
    pub above_input_tokens: u64,
    /// Factor on the input, cache-read and cache-write prices.
    pub input_factor: f64,
    /// Factor on the output price.
    pub output_factor: f64,
}

/// The prices one served model is billed at, USD.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Prices {
    /// Per million uncached input tokens.
    pub input_per_million: f64,
    /// Per million output tokens (reasoning included).
    pub output_per_million: f64,
    /// Per million tokens read from the prompt cache.
    pub cache_read_per_million: f64,
    /// Per million tokens written to the prompt cache.
    pub cache_write_per_million: f64,
    /// Per generated image.
    pub per_image: f64,
    /// Share of the price batch inference saves.
    pub batch_discount: f64,
    /// The surcharge for requests with a long input, when the model has one.
    pub long_context: Option<LongContext>,
}

/// What one request used, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tokens {
    /// Uncached input tokens.
    pub input: u64,
    /// Output tokens, reasoning included.
    pub output: u64,
    /// Input tokens read from the prompt cache.
    pub cache_read: u64,
    /// Input tokens written to the prompt cache.
    pub cache_write: u64,
    /// Part of `output` spent on reasoning, when the backend reports it.
    pub reasoning: u64,
}

impl Tokens {
    /// Every token billed: input of all kinds plus output.
    pub fn total(&self) -> u64 {
        self.input
            .saturating_add(self.cache_read)
            .saturating_add(self.cache_write)
            .saturating_add(self.output)
    }
}

impl Prices {
    /// USD for `tokens` and `images`, at batch prices when `batch`.
    pub fn cost(&self, tokens: &Tokens, images: u64, batch: bool) -> f64 {
        let per_million = |n: u64, price: f64| n as f64 * price / 1_000_000.0;
        let rates =
            self.for_input(tokens.input.saturating_add(tokens.cache_read).saturating_add(tokens.cache_write));
        let on_demand = per_million(tokens.input, rates.input_per_million)
            + per_million(tokens.output, rates.output_per_million)
            + per_million(tokens.cache_read, rates.cache_read_per_million)
            + per_million(tokens.cache_write, rates.cache_write_per_million)
            + images as f64 * rates.per_image;
        if batch { on_demand * (1.0 - self.batch_discount) } else { on_demand }
    }

    /// The prices a request with `input_tokens` of input (all kinds) is billed at: these, or
    /// the long-context ones past the model's threshold.
    pub fn for_input(&self, input_tokens: u64) -> Prices {
        match self.long_context {
            Some(long) if input_tokens > long.above_input_tokens => self.long_context_prices(long),
            _ => *self,
        }
    }

    /// These prices with the long-context surcharge `long` applied.
    pub fn long_context_prices(&self, long: LongContext) -> Prices {
        Prices {
            input_per_million: self.input_per_million * long.input_factor,
            output_per_million: self.output_per_million * long.output_factor,
            cache_read_per_million: self.cache_read_per_million * long.input_factor,
            cache_write_per_million: self.cache_write_per_million * long.input_factor,
            ..*self
        }
    }
}

impl PriceTable {
    /// The table compiled into the proxy.
    pub fn builtin() -> &'static PriceTable {
        &BUILTIN
    }

    /// Parses a table in the format of `proxy/data/bedrock-prices.json`.
    pub fn parse(json: &str) -> Result<PriceTable, serde_json::Error> {
        serde_json::from_str(json)
    }

    /// The prices of a served model, or `None` when neither the table nor `spec.cost` knows it
    /// (a custom model, or an application inference profile whose foundation model the operator
    /// has not resolved, without `spec.cost`).
    pub fn prices(&self, model: &Model) -> Option<Prices> {
        let (tier, from_id, arn_region) = underlying_model(&model.model_id);
        // The operator names the foundation model behind application inference profiles.
        let underlying = model.underlying_model_id.as_deref().map_or(from_id, |u| underlying_model(u).1);
        let entry = self.models.get(underlying);
        if entry.is_none() && model.cost.is_none() {
            return None;
        }
        let mut cost = Cost::default();
        if let Some(entry) = entry {
            overlay(&mut cost, &entry.base);
            if let Some(regional) = entry.regions.get(arn_region.unwrap_or(&model.region)) {
                overlay(&mut cost, regional);
            }
            if let Some(tiered) = entry.tiers.get(&tier) {
                overlay(&mut cost, tiered);
            }
        }
        if let Some(private) = &model.cost {
            overlay(&mut cost, private);
        }
        let input = cost.input_per_million_tokens.unwrap_or(0.0);
        Some(Prices {
            input_per_million: input,
            output_per_million: cost.output_per_million_tokens.unwrap_or(0.0),
            // Models without prompt-cache prices bill cache traffic as plain input.
            cache_read_per_million: cost.cache_read_per_million_tokens.unwrap_or(input),
            cache_write_per_million: cost.cache_write_per_million_tokens.unwrap_or(input),
            per_image: cost.per_image.unwrap_or(0.0),
            batch_discount: self.batch_discount,
            long_context: entry.and_then(|e| e.long_context),
        })
    }
}

fn overlay(into: &mut Cost, from: &Cost) {
    let pick = |a: &mut Option<f64>, b: Option<f64>| {
        if b.is_some() {
            *a = b;
        }
    };
    pick(&mut into.input_per_million_tokens, from.input_per_million_tokens);
    pick(&mut into.output_per_million_tokens, from.output_per_million_tokens);
    pick(&mut into.cache_read_per_million_tokens, from.cache_read_per_million_tokens);
    pick(&mut into.cache_write_per_million_tokens, from.cache_write_per_million_tokens);
    pick(&mut into.per_image, from.per_image);
}

/// The tier, the underlying model id and, for ARNs, the region named in the ARN.
///
/// `us.anthropic.claude-...` -> (Geo, `anthropic.claude-...`); `global.x` -> (Global, `x`);
/// `arn:aws:bedrock:r::foundation-model/x` -> (InRegion, `x`, r); inference-profile ARNs are
/// read like their profile id. Anything else is returned as is, in-region.
pub fn underlying_model(model_id: &str) -> (Tier, &str, Option<&str>) {
    let (id, arn_region) = match model_id.strip_prefix("arn:") {
        Some(arn) => {
            // arn:<partition>:bedrock:<region>:<account>:<resource-type>/<id>
            let mut parts = arn.splitn(5, ':');
            let region = parts.nth(2).filter(|r| !r.is_empty());
            let resource = parts.nth(1).unwrap_or_default();
            match resource.split_once('/') {
                Some(("foundation-model" | "inference-profile", id)) => (id, region),
                _ => return (Tier::InRegion, model_id, region),
            }
        }
        None => (model_id, None),
    };
    if let Some(rest) = id.strip_prefix("global.") {
        return (Tier::Global, rest, arn_region);
    }
    match id.split_once('.') {
        Some((prefix, rest)) if GEO_PREFIXES.contains(&prefix) && rest.contains('.') => {
            (Tier::Geo, rest, arn_region)
        }
        _ => (Tier::InRegion, id, arn_region),
    }
}

#[cfg(test)]
mod tests {
    use api::config::ModelKind;

    use super::*;

    fn model(model_id: &str, region: &str, cost: Option<Cost>) -> Model {
        Model {
            served_name: "a/m".into(),
            account: "a".into(),
            namespace: "ns".into(),
            model_id: model_id.into(),
            region: region.into(),
            kind: ModelKind::Chat,
            cost,
            embedding_input_type: None,
            underlying_model_id: None,
            guardrail: None,
            fallbacks: Vec::new(),
            first_byte_timeout_ms: None,
        }
    }

    #[test]
    fn underlying_ids_and_tiers() {
        let sonnet = "anthropic.claude-3-7-sonnet-20250219-v1:0";
        assert_eq!(underlying_model(sonnet), (Tier::InRegion, sonnet, None));
        assert_eq!(underlying_model(&format!("us.{sonnet}")), (Tier::Geo, sonnet, None));
        assert_eq!(underlying_model(&format!("apac.{sonnet}")), (Tier::Geo, sonnet, None));
        assert_eq!(underlying_model(&format!("global.{sonnet}")), (Tier::Global, sonnet, None));
        assert_eq!(
            underlying_model(&format!("arn:aws:bedrock:eu-west-1::foundation-model/{sonnet}")),
            (Tier::InRegion, sonnet, Some("eu-west-1"))
        );
        assert_eq!(
            underlying_model(&format!(
                "arn:aws:bedrock:eu-west-1:123456789012:inference-profile/eu.{sonnet}"
            )),
            (Tier::Geo, sonnet, Some("eu-west-1"))
        );
        let app = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc";
        assert_eq!(underlying_model(app), (Tier::InRegion, app, Some("us-east-1")));
        // A provider name is not a geo prefix.
        assert_eq!(
            underlying_model("amazon.nova-lite-v1:0"),
            (Tier::InRegion, "amazon.nova-lite-v1:0", None)
        );
    }

    #[test]
    fn builtin_table_has_sources_date_and_prices() {
        let t = PriceTable::builtin();
        assert!(t.sources.iter().all(
            |s| s.starts_with("https://aws.amazon.com/") || s.starts_with("https://docs.aws.amazon.com/")
        ));
        assert_eq!(t.date.len(), 10);
        assert_eq!(t.batch_discount, 0.5);
        let p = t.prices(&model("us.anthropic.claude-3-7-sonnet-20250219-v1:0", "us-west-2", None)).unwrap();
        assert_eq!(
            p,
            Prices {
                input_per_million: 3.0,
                output_per_million: 15.0,
                cache_read_per_million: 0.3,
                cache_write_per_million: 3.75,
                per_image: 0.0,
                batch_discount: 0.5,
                long_context: None,
            }
        );
    }

    #[test]
    fn every_built_in_price_names_its_source() {
        let t = PriceTable::builtin();
        let mut covered: Vec<&str> =
            t.provenance.iter().flat_map(|p| p.models.iter().map(String::as_str)).collect();
        covered.sort_unstable();
        let mut priced: Vec<&str> = t.models.keys().map(String::as_str).collect();
        priced.sort_unstable();
        assert_eq!(covered, priced, "each priced model appears in exactly one provenance entry");
        // Checked against the pricing page: Nova Premier reads its prompt cache at a quarter price.
        let premier = t.prices(&model("us.amazon.nova-premier-v1:0", "us-east-1", None)).unwrap();
        assert_eq!((premier.input_per_million, premier.cache_read_per_million), (2.5, 0.625));
        for p in &t.provenance {
            assert!(p.source.starts_with("https://"), "{p:?}");
            assert_eq!(p.checked.len(), 10, "{p:?}");
            assert!(!p.note.is_empty(), "{p:?}");
        }
    }

    #[test]
    fn tiers_price_differently() {
        let t = PriceTable::builtin();
        let id = "anthropic.claude-sonnet-4-5-20250929-v1:0";
        let geo = t.prices(&model(&format!("us.{id}"), "us-east-1", None)).unwrap();
        let global = t.prices(&model(&format!("global.{id}"), "us-east-1", None)).unwrap();
        let local = t.prices(&model(id, "us-east-1", None)).unwrap();
        assert_eq!((geo.input_per_million, geo.output_per_million), (3.3, 16.5));
        assert_eq!((global.input_per_million, global.output_per_million), (3.0, 15.0));
        assert_eq!(local.input_per_million, 3.3);
    }

    #[test]
    fn region_entries_override_the_base() {
        let t = PriceTable::parse(
            r#"{"date":"2025-01-01","sources":[],"batchDiscount":0.5,"models":{"x.m-v1:0":{
                "inputPerMillionTokens":1.0,"outputPerMillionTokens":2.0,
                "regions":{"eu-west-3":{"inputPerMillionTokens":1.5}},
                "tiers":{"global":{"outputPerMillionTokens":1.8}}}}}"#,
        )
        .unwrap();
        let p = t.prices(&model("x.m-v1:0", "eu-west-3", None)).unwrap();
        assert_eq!((p.input_per_million, p.output_per_million), (1.5, 2.0));
        let p = t.prices(&model("global.x.m-v1:0", "eu-west-3", None)).unwrap();
        assert_eq!((p.input_per_million, p.output_per_million), (1.5, 1.8));
    }

    #[test]
    fn spec_cost_overrides_fields_and_prices_unknown_models() {
        let t = PriceTable::builtin();
        let private = Cost { input_per_million_tokens: Some(1.0), ..Default::default() };
        let p = t.prices(&model("amazon.nova-lite-v1:0", "us-east-1", Some(private.clone()))).unwrap();
        assert_eq!((p.input_per_million, p.output_per_million), (1.0, 0.24));
        let app = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc";
        assert_eq!(t.prices(&model(app, "us-east-1", None)), None);
        let mut resolved = model(app, "us-east-1", None);
        resolved.underlying_model_id =
            Some("arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-lite-v1:0".into());
        assert_eq!(t.prices(&resolved).unwrap().input_per_million, 0.06);
        let p = t.prices(&model(app, "us-east-1", Some(private))).unwrap();
        assert_eq!((p.input_per_million, p.output_per_million, p.cache_read_per_million), (1.0, 0.0, 1.0));
    }

    #[test]
    fn cost_of_tokens_images_and_batches() {
        let p = Prices {
            input_per_million: 3.0,
            output_per_million: 15.0,
            cache_read_per_million: 0.3,
            cache_write_per_million: 3.75,
            per_image: 0.04,
            batch_discount: 0.5,
            long_context: None,
        };
        let t = Tokens {
            input: 1_000_000,
            output: 100_000,
            cache_read: 1_000_000,
            cache_write: 100_000,
            reasoning: 0,
        };
        let expected = 3.0 + 1.5 + 0.3 + 0.375;
        assert!((p.cost(&t, 0, false) - expected).abs() < 1e-9);
        assert!((p.cost(&t, 0, true) - expected / 2.0).abs() < 1e-9);
        assert!((p.cost(&Tokens::default(), 3, false) - 0.12).abs() < 1e-9);
        assert_eq!(t.total(), 2_200_000);
    }

    #[test]
    fn long_context_bills_every_token_at_the_surcharged_rates() {
        let t = PriceTable::builtin();
        // Bedrock's table: Sonnet 4 long context $6 / $22.50, cache write $7.50, read $0.60.
        let sonnet4 =
            t.prices(&model("us.anthropic.claude-sonnet-4-20250514-v1:0", "us-east-1", None)).unwrap();
        let long = sonnet4.for_input(200_001);
        assert_eq!(
            (
                long.input_per_million,
                long.output_per_million,
                long.cache_write_per_million,
                long.cache_read_per_million
            ),
            (6.0, 22.5, 7.5, 0.6)
        );
        assert_eq!(sonnet4.for_input(200_000), sonnet4, "200K input tokens are still the base rate");
        // The threshold counts cache reads and writes as input too.
        let at = |input, cache_read, cache_write| Tokens {
            input,
            output: 1_000,
            cache_read,
            cache_write,
            reasoning: 0,
        };
        let below = sonnet4.cost(&at(100_000, 100_000, 0), 0, false);
        assert!((below - (0.3 + 0.03 + 0.015)).abs() < 1e-9, "{below}");
        let above = sonnet4.cost(&at(100_000, 100_000, 1), 0, false);
        assert!((above - (0.6 + 0.06 + 0.0000075 + 0.0225)).abs() < 1e-9, "{above}");
        assert!((sonnet4.cost(&at(100_000, 100_000, 1), 0, true) - above / 2.0).abs() < 1e-9);
        // Sonnet 4.5: the surcharge follows the tier (geographic $6.60 / $24.75, global $6 / $22.50).
        let id = "anthropic.claude-sonnet-4-5-20250929-v1:0";
        let geo = t.prices(&model(&format!("eu.{id}"), "eu-west-1", None)).unwrap().for_input(300_000);
        let global = t.prices(&model(&format!("global.{id}"), "eu-west-1", None)).unwrap().for_input(300_000);
        assert!((geo.input_per_million - 6.6).abs() < 1e-9 && (geo.output_per_million - 24.75).abs() < 1e-9);
        assert_eq!((global.input_per_million, global.output_per_million), (6.0, 22.5));
        // Models without long context keep one price at any length.
        let nova = t.prices(&model("amazon.nova-pro-v1:0", "us-east-1", None)).unwrap();
        assert_eq!(nova.for_input(900_000), nova);
    }
}
