//! bedrock-gateway proxy: serves the OpenAI API on top of AWS Bedrock.
//!
//! Request path: `server` -> `auth` -> `policy` -> `translate` -> `upstream` -> back through
//! `translate` to the caller. Translators are pure; I/O lives in `server`, `upstream`, `config`.

pub mod bedrock;
pub mod error;
pub mod openai;
pub mod translate;
