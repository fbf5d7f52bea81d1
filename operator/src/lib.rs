//! The bedrock-gateway operator: watches BedrockAccount, BedrockModel, AccessPolicy and the
//! Secrets they use, renders them through `api::render` into the proxy's ConfigMap and Secret,
//! and writes a status on every object that tells what AWS said about it.

pub mod apply;
pub mod aws;
pub mod context;
pub mod controller;
pub mod leader;
pub mod metrics;
pub mod plan;
pub mod rbac;
pub mod renderer;
pub mod run;
pub mod status;
pub mod telemetry;
pub mod watch;
