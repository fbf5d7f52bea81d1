//! Wire types of the Bedrock runtime APIs, and of the control plane's batch jobs ([`batch`]).
//!
//! Field names follow the AWS service model (`bedrock-runtime` 2023-09-30) exactly. Request types
//! borrow from the validated OpenAI request and never serialize `null`; response types ignore
//! unknown fields, so new Bedrock members (and the `p` padding on stream events) pass through.

pub mod batch;
pub mod converse;
pub mod embeddings;
pub mod errors;
pub mod eventstream;
pub mod images;
pub mod models;
