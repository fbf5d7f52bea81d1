//! `BedrockModel.spec.fallbacks`: the flattened list each served model gets, and every problem.

use api::config::Fallback;
use api::{Manifests, render};

const ACCOUNT: &str = "apiVersion: bedrockgateway.io/v1alpha1
kind: BedrockAccount
metadata: {name: prod, namespace: ai-gateway}
spec: {defaultRegion: us-east-1, auth: {podIdentity: {}}}
";

/// The account plus one BedrockModel per `(name, modelId, fallbacks flow YAML)`.
fn manifests(models: &[(&str, &str, &str)]) -> Manifests {
    let mut yaml = ACCOUNT.to_owned();
    for (name, id, fallbacks) in models {
        yaml.push_str(&format!(
            "---\napiVersion: bedrockgateway.io/v1alpha1\nkind: BedrockModel\n\
             metadata: {{name: {name}, namespace: ai-gateway}}\n\
             spec: {{accountRef: prod, modelId: \"{id}\", fallbacks: {fallbacks}}}\n"
        ));
    }
    Manifests::parse(&yaml, "test.yaml").unwrap()
}

fn problems(models: &[(&str, &str, &str)]) -> Vec<String> {
    match render(&manifests(models)) {
        Ok(r) => panic!("rendered without problems: {:?}", r.config.models),
        Err(p) => p.0.iter().map(ToString::to_string).collect(),
    }
}

fn fb(served_name: &str, region: &str) -> Fallback {
    Fallback { served_name: served_name.into(), region: region.into() }
}

const NOVA: &str = "amazon.nova-lite-v1:0";
const CLAUDE: &str = "anthropic.claude-3-haiku-20240307-v1:0";

#[test]
fn fallbacks_are_resolved_and_flattened_depth_first() {
    let rendered = render(&manifests(&[
        ("a", NOVA, "[{region: us-west-2}, {model: b}]"),
        ("b", CLAUDE, "[{model: c, region: eu-west-1}, {model: a}]"),
        ("c", NOVA, "[]"),
    ]));
    // a -> b -> a is a cycle: refused.
    assert!(rendered.is_err());

    let rendered = render(&manifests(&[
        ("a", NOVA, "[{region: us-west-2}, {model: b}]"),
        ("b", CLAUDE, "[{model: c, region: eu-west-1}, {model: c}, {region: us-west-2}]"),
        ("c", NOVA, "[{model: b}]"),
    ]));
    assert!(rendered.is_err(), "b -> c -> b is a cycle");

    let rendered = render(&manifests(&[
        ("a", NOVA, "[{region: us-west-2}, {model: b}]"),
        ("b", CLAUDE, "[{model: c, region: eu-west-1}, {model: c}, {region: us-west-2}]"),
        ("c", NOVA, "[{model: a}]"),
    ]));
    assert!(rendered.is_err(), "a -> b -> c -> a is a cycle");

    let rendered = render(&manifests(&[
        ("a", NOVA, "[{region: us-west-2}, {model: b}]"),
        ("b", CLAUDE, "[{model: c, region: eu-west-1}, {model: c}, {region: us-west-2}]"),
        ("c", NOVA, "[{region: us-west-2}]"),
    ]))
    .unwrap();
    let models = &rendered.config.models;
    assert_eq!(
        models["prod/a"].fallbacks,
        [
            fb("prod/a", "us-west-2"),
            fb("prod/b", "us-east-1"),
            fb("prod/c", "eu-west-1"),
            fb("prod/c", "us-west-2"),
            fb("prod/c", "us-east-1"),
            fb("prod/b", "us-west-2"),
        ]
    );
    assert_eq!(
        models["prod/b"].fallbacks,
        [
            fb("prod/c", "eu-west-1"),
            fb("prod/c", "us-west-2"),
            fb("prod/c", "us-east-1"),
            fb("prod/b", "us-west-2")
        ]
    );
    assert_eq!(models["prod/c"].fallbacks, [fb("prod/c", "us-west-2")]);
}

#[test]
fn cycles_name_their_path() {
    assert_eq!(
        problems(&[("a", NOVA, "[{model: b}]"), ("b", NOVA, "[{model: a}]")]),
        [
            "BedrockModel ai-gateway/a spec.fallbacks: fallbacks form a cycle: a -> b -> a (fix: remove one of the \
             fallbacks so that no model falls back to itself through others)",
            "BedrockModel ai-gateway/b spec.fallbacks: fallbacks form a cycle: b -> a -> b (fix: remove one of the \
             fallbacks so that no model falls back to itself through others)",
        ]
    );
}

#[test]
fn bad_entries_are_problems() {
    assert_eq!(
        problems(&[
            ("a", NOVA, "[{model: nope}, {}, {region: us-east-1}, {model: a}, {model: embed}]"),
            ("embed", "amazon.titan-embed-text-v2:0", "[]"),
        ]),
        [
            "BedrockModel ai-gateway/a spec.fallbacks[0].model: BedrockModel nope not found in namespace \
             ai-gateway (fix: create BedrockModel nope in namespace ai-gateway, or name a model there)",
            "BedrockModel ai-gateway/a spec.fallbacks[1]: the fallback names neither a model nor a region (fix: \
             set model (another BedrockModel of this namespace), region, or both)",
            "BedrockModel ai-gateway/a spec.fallbacks[2]: the fallback is the model itself (prod/a in us-east-1) \
             (fix: name another model or another region)",
            "BedrockModel ai-gateway/a spec.fallbacks[3]: the fallback is the model itself (prod/a in us-east-1) \
             (fix: name another model or another region)",
            "BedrockModel ai-gateway/a spec.fallbacks[4].model: prod/embed serves Embedding requests but prod/a \
             serves Chat (fix: fall back to a model of the same kind)",
        ]
    );
}

#[test]
fn only_chat_models_have_fallbacks() {
    assert_eq!(
        problems(&[("embed", "amazon.titan-embed-text-v2:0", "[{region: us-west-2}]"),]),
        [
            "BedrockModel ai-gateway/embed spec.fallbacks: prod/embed is not a chat model (Embedding); fallbacks serve chat \
          models only (fix: remove spec.fallbacks: another model's embeddings or image parameters would not match)"
        ]
    );
}

#[test]
fn first_byte_timeout_reaches_the_config() {
    let yaml = format!(
        "{ACCOUNT}---\napiVersion: bedrockgateway.io/v1alpha1\nkind: BedrockModel\n\
         metadata: {{name: a, namespace: ai-gateway}}\n\
         spec: {{accountRef: prod, modelId: \"{NOVA}\", timeouts: {{firstByteMs: 2500}}}}\n"
    );
    let rendered = render(&Manifests::parse(&yaml, "t.yaml").unwrap()).unwrap();
    assert_eq!(rendered.config.models["prod/a"].first_byte_timeout_ms, Some(2500));
    assert!(rendered.config.models["prod/a"].fallbacks.is_empty());
}
