//! The quick-start manifests users copy must render without problems.

use std::path::Path;

use api::config::{AccountAuth, ModelKind, SubjectRef};
use api::{Manifests, render};

#[test]
fn quickstart_renders_without_problems() {
    let dir =
        Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("run by cargo")).join("../examples/quickstart");
    let manifests = Manifests::load_dir(&dir).unwrap_or_else(|p| panic!("quickstart does not load:\n{p}"));
    let rendered = render(&manifests).unwrap_or_else(|p| panic!("quickstart does not render:\n{p}"));
    let config = &rendered.config;
    assert_eq!(config.accounts["demo"].auth, AccountAuth::AccessKey);
    assert_eq!(config.accounts["demo"].endpoints.runtime, "http://127.0.0.1:9090");
    let served: Vec<&str> = config.models.keys().map(String::as_str).collect();
    assert_eq!(
        served,
        [
            "demo/claude-sonnet",
            "demo/cohere-embed",
            "demo/nova-canvas",
            "demo/nova-lite",
            "demo/sd35",
            "demo/team-profile",
            "demo/titan-embed-v2"
        ]
    );
    assert_eq!(config.models["demo/titan-embed-v2"].kind, ModelKind::Embedding);
    assert_eq!(config.models["demo/nova-canvas"].kind, ModelKind::Image);
    assert_eq!(
        config.models["demo/cohere-embed"].embedding_input_type,
        Some(api::config::EmbeddingInputType::SearchDocument)
    );
    assert_eq!(config.models["demo/claude-sonnet"].region, "us-west-2");
    assert_eq!(config.models["demo/nova-lite"].region, "us-east-1");
    assert_eq!(config.models["demo/nova-lite"].kind, ModelKind::Chat);
    assert_eq!(config.policies[0].subjects, [SubjectRef::Team("quickstart".into())]);
    assert_eq!(rendered.credentials.accounts.len(), 1);
    let identity = &rendered.credentials.api_keys[&api::config::hash_api_key("sk-bgw-quickstart")];
    assert_eq!(identity.user, "dev@example.com");
    assert_eq!(identity.teams, ["quickstart"]);
}
