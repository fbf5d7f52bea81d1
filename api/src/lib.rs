//! The contract between operator and proxy: CRD types, the rendered config and `render`.

pub mod config;
pub mod crd;
