//! The bedrock-gateway operator: watches BedrockAccount, BedrockModel, AccessPolicy and the
//! Secrets they use, renders them through `api::render` into the proxy's ConfigMap and Secret,
//! and writes a status on every object that tells what AWS said about it.

pub mod aws;
pub mod plan;
pub mod status;
