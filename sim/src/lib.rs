//! bedrock-sim: a local stand-in for the AWS bedrock-runtime Converse / ConverseStream API,
//! InvokeModel for the embedding and image models, and the control-plane calls the operator
//! makes (model and inference-profile listings).
//!
//! It speaks the real wire formats (rest-json bodies, `x-amzn-ErrorType` errors,
//! `application/vnd.amazon.eventstream` frames), verifies SigV4 and bearer authentication,
//! answers deterministically and injects faults chosen by `[[sim:...]]` directives in the
//! last user message. It also runs Bedrock batch inference jobs against an S3 (moto in the
//! tests): see [`BatchConfig`]. Used by unit tests, the e2e tests, benchmarks and the proxy's
//! `--simulator` mode.

mod auth;
mod batch;
mod cache;
mod cancel;
mod control;
mod converse;
mod embed;
mod errors;
pub mod eventstream;
mod faults;
mod image;
mod invoke;
mod png;
mod record;
mod reply;
mod request;
mod schema;
mod server;
mod sigv4;
mod stream;
mod text;

use std::time::Duration;

pub use embed::embedding_vector;
pub use png::grey_png;
pub use record::RecordedRequest;
pub use server::{SimHandle, spawn};

/// Access key id of the default test credentials.
pub const TEST_ACCESS_KEY_ID: &str = "AKIASIMULATOR0000001";
/// Secret access key of the default test credentials.
pub const TEST_SECRET_ACCESS_KEY: &str = "bedrock-sim-secret-access-key-0000000000";
/// Bedrock API key (bearer token) accepted by default.
pub const TEST_BEARER_TOKEN: &str = "bedrock-sim-api-key";

/// Default of [`BatchConfig::min_records`]: AWS's default quota "Minimum number of records per
/// batch inference job".
pub const DEFAULT_BATCH_MIN_RECORDS: u64 = 100;

/// How batch inference jobs run.
#[derive(Clone, Debug)]
pub struct BatchConfig {
    /// S3 endpoint (e.g. a moto server) jobs read their input from and write their output to;
    /// without it every job fails validation.
    pub s3_url: Option<String>,
    /// How long a job stays in each status before the next (Submitted, Validating, Scheduled).
    pub step: Duration,
    /// A job with fewer records fails validation.
    pub min_records: u64,
    /// How long one hour of `timeoutDurationInHours` lasts: a job still running after
    /// `timeoutDurationInHours * hour` expires.
    pub hour: Duration,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            s3_url: None,
            step: Duration::from_millis(100),
            min_records: DEFAULT_BATCH_MIN_RECORDS,
            hour: Duration::from_secs(3600),
        }
    }
}

/// What the simulator accepts and whether it records requests.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Accepted SigV4 credentials as (access key id, secret access key) pairs.
    pub credentials: Vec<(String, String)>,
    /// Accepted Bedrock API keys (`Authorization: Bearer <token>`).
    pub bearer_tokens: Vec<String>,
    /// Keep a copy of every Bedrock API request for inspection.
    pub record_requests: bool,
    /// Base URL of a moto server whose STS-issued temporary credentials are accepted too.
    pub moto_url: Option<String>,
    /// How batch inference jobs run.
    pub batch: BatchConfig,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            credentials: vec![(TEST_ACCESS_KEY_ID.to_owned(), TEST_SECRET_ACCESS_KEY.to_owned())],
            bearer_tokens: vec![TEST_BEARER_TOKEN.to_owned()],
            record_requests: true,
            moto_url: None,
            batch: BatchConfig::default(),
        }
    }
}
