//! Wire types of the OpenAI API, one file per surface.
//!
//! Request types are parsed and validated in one step (`parse_*_request`): a body that parses
//! is one the gateway knows how to translate, and everything else is a 400 naming the field.
//! Response types serialize exactly as the OpenAI OpenAPI spec requires, including the fields it
//! marks required even when they are always `null` here (`logprobs`, `refusal`).

pub mod batches;
pub mod chat;
pub mod embeddings;
pub mod files;
pub mod images;
pub(crate) mod parse;
