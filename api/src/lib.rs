//! The contract between operator and proxy: CRD types, the rendered config and `render`.

pub mod config;
pub mod crd;
pub mod gzip;
pub mod manifests;
pub mod problems;
pub mod render;

pub use manifests::Manifests;
pub use problems::{Problem, Problems};
pub use render::render;
