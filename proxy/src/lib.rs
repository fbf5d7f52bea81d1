//! bedrock-gateway proxy: serves the OpenAI API on top of AWS Bedrock.
//!
//! Request path: `server` -> `endpoints` -> `auth` -> `policy` -> `limits` (through `usage`) ->
//! `translate` -> `resilience` (retries, fallbacks, timeouts) -> `upstream` and back through
//! `translate` to the caller; `usage` prices and records what was used. Translators are pure; I/O
//! lives in `server`, `upstream`, `credentials`, `config`, `s3`.

pub mod auth;
pub mod bedrock;
pub mod body;
pub mod concurrency;
pub mod config;
pub mod credentials;
pub mod endpoints;
pub mod error;
pub mod header_timeout;
pub mod limits;
pub mod metrics;
pub mod openai;
pub mod otel;
pub mod policy;
pub mod request_body;
pub mod resilience;
pub mod s3;
pub mod server;
pub mod snapshot;
pub mod tls;
pub mod translate;
pub mod upstream;
pub mod usage;
