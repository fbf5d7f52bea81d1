//! The whole operator (caches, render loop, controllers, AWS checks) against the in-memory API
//! server, bedrock-sim and moto: what a user would see in a cluster.

use std::time::{Duration, Instant};

use operator::context::Settings;
use operator::metrics::Metrics;
use operator::run::operate;
use operator::watch::Scope;
use serde_json::Value;

use crate::fake_apiserver::{FakeApiServer, path_of};
use crate::fixtures::{Moto, endpoints, manifests, sim, stored_config};

/// Polls `probe` until it returns `Some`; fails naming `what`.
async fn eventually<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(found) = probe() {
            return found;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The condition `type_` of an object's status, as (status, reason, message).
fn condition(object: &Value, type_: &str) -> Option<(String, String, String)> {
    let found = object["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == type_)?;
    Some((
        found["status"].as_str()?.to_string(),
        found["reason"].as_str()?.to_string(),
        found["message"].as_str()?.to_string(),
    ))
}

#[tokio::test]
async fn the_operator_renders_the_namespace_and_tells_the_truth_in_status() {
    let (moto, sim) = (Moto::start(), sim().await);
    let fake = FakeApiServer::default();
    let m = manifests(|m| {
        endpoints(&sim.url(), &moto.url)(m).replace(
            "  defaultRegion: us-east-1\n",
            "  defaultRegion: us-east-1\n  discovery: {enabled: true, include: [\"amazon.titan-embed-*\"]}\n",
        )
    });
    for account in &m.accounts {
        fake.put(serde_json::to_value(account).unwrap());
    }
    for model in &m.models {
        fake.put(serde_json::to_value(model).unwrap());
    }
    for secret in &m.secrets {
        fake.put(serde_json::to_value(secret).unwrap());
    }
    let settings = Settings {
        release: "gw".into(),
        namespace: "bedrock-system".into(),
        scope: Scope::Namespaces(vec!["ai-gateway".into()]),
        aws_refresh: Duration::from_secs(300),
    };
    let metrics = Metrics::new();
    let operator = tokio::spawn(operate(fake.client(), settings, metrics.clone(), "operator-0".into()));

    let config_path = path_of("ConfigMap", "bedrock-system", "gw-config");
    let served = || -> Option<Vec<String>> {
        let cm = fake.get(&config_path)?;
        let config = stored_config(&cm)?;
        Some(config["models"].as_object()?.keys().cloned().collect())
    };
    // Declared models first; the discovered one once the account's catalogue is known.
    assert_eq!(
        eventually("the discovered model in the ConfigMap", || served().filter(|s| s.len() == 3)).await,
        ["demo/amazon.titan-embed-text-v2:0", "demo/claude", "demo/nova-lite"]
    );
    assert!(fake.get(&path_of("Secret", "bedrock-system", "gw-credentials")).is_some());

    let account_path = path_of("BedrockAccount", "ai-gateway", "demo");
    let account = eventually("CredentialsVerified on the account", || {
        let account = fake.get(&account_path)?;
        (condition(&account, "CredentialsVerified")?.0 == "True").then_some(account)
    })
    .await;
    assert_eq!(
        condition(&account, "CredentialsVerified").unwrap(),
        (
            "True".into(),
            "Verified".into(),
            "sts:GetCallerIdentity succeeded as arn:aws:sts::123456789012:user/moto (account 123456789012)"
                .into()
        )
    );
    assert_eq!(condition(&account, "Ready").unwrap().0, "True");
    let account = eventually("the discovered count", || {
        let account = fake.get(&account_path)?;
        account["status"]["servedDiscoveredModels"].is_number().then_some(account)
    })
    .await;
    assert_eq!(account["status"]["servedDiscoveredModels"], 1);
    assert_eq!(account["status"]["discoveredModels"], 14, "8 on-demand models and 6 profiles");
    assert_eq!(
        condition(&account, "ModelAccess").unwrap().2,
        "us-east-1: 10 foundation model(s), 6 inference profile(s); us-west-2: 10 foundation model(s), 6 inference profile(s)"
    );

    let claude = eventually("the underlying model of the claude profile", || {
        let model = fake.get(&path_of("BedrockModel", "ai-gateway", "claude"))?;
        model["status"]["underlyingModelId"].is_string().then_some(model)
    })
    .await;
    assert_eq!(claude["status"]["underlyingModelId"], "anthropic.claude-3-7-sonnet-20250219-v1:0");
    assert_eq!(claude["status"]["region"], "us-west-2");
    assert_eq!(condition(&claude, "Reachable").unwrap().1, "ProfileFound");
    // What GetInferenceProfile said reaches the proxy too.
    let config = stored_config(&fake.get(&config_path).unwrap()).unwrap();
    assert_eq!(
        config["models"]["demo/claude"]["underlyingModelId"],
        "anthropic.claude-3-7-sonnet-20250219-v1:0"
    );

    // A Secret change requeues the account that reads it; its models leave the config.
    let mut secret = serde_json::to_value(&m.secrets[0]).unwrap();
    secret["data"].as_object_mut().unwrap().remove("secretAccessKey");
    fake.put(secret);
    let broken = eventually("the account to report the broken Secret", || {
        let account = fake.get(&account_path)?;
        (condition(&account, "Ready")?.0 == "False").then_some(account)
    })
    .await;
    assert_eq!(
        condition(&broken, "Ready").unwrap(),
        (
            "False".into(),
            "SecretInvalid".into(),
            "spec.auth.accessKey.secretRef: Secret aws-keys has no key secretAccessKey (fix: add secretAccessKey to \
             Secret aws-keys (under data or stringData))"
                .into()
        )
    );
    assert_eq!(
        eventually("the models to leave the config", || served().filter(|s| s.is_empty())).await,
        Vec::<String>::new()
    );
    let nova = eventually("nova-lite to follow its account", || {
        let model = fake.get(&path_of("BedrockModel", "ai-gateway", "nova-lite"))?;
        (condition(&model, "Ready")?.1 == "AccountNotReady").then_some(model)
    })
    .await;
    assert_eq!(condition(&nova, "Ready").unwrap().0, "False");

    // Every transition of Ready was an event; the config was applied with the field manager.
    let writes = fake.writes();
    let events: Vec<(&str, &str)> = writes
        .iter()
        .filter(|w| w.path.ends_with("/events"))
        .map(|w| (w.body["regarding"]["name"].as_str().unwrap(), w.body["reason"].as_str().unwrap()))
        .collect();
    assert!(events.contains(&("demo", "Ready")) && events.contains(&("demo", "SecretInvalid")), "{events:?}");
    assert!(events.contains(&("nova-lite", "AccountNotReady")), "{events:?}");
    let config_writes = writes.iter().filter(|w| w.path == config_path).count();
    assert!(config_writes >= 2, "written at start and after the Secret broke");

    // What the operator did is in its metrics, under Prometheus names.
    let text = metrics.render();
    let value = |series: &str| -> f64 {
        let line =
            text.lines().find(|l| l.starts_with(series)).unwrap_or_else(|| panic!("no {series} in {text}"));
        line.rsplit_once(' ').unwrap().1.parse().unwrap()
    };
    for kind in ["BedrockAccount", "BedrockModel"] {
        assert!(
            value(&format!("bedrock_gateway_operator_reconciles_total{{kind=\"{kind}\",result=\"ok\"}}"))
                >= 1.0
        );
        assert!(
            value(&format!("bedrock_gateway_operator_reconcile_duration_seconds_count{{kind=\"{kind}\"}}"))
                >= 1.0
        );
    }
    assert!(value("bedrock_gateway_operator_render_duration_seconds_count") >= 2.0);
    assert_eq!(
        value("bedrock_gateway_operator_applies_total{object=\"config\"}"),
        config_writes as f64,
        "one count per ConfigMap write"
    );
    assert!(value("bedrock_gateway_operator_problem_objects") >= 1.0, "the account with the broken Secret");
    let gz = fake.get(&config_path).unwrap()["binaryData"]["config.json.gz"].as_str().unwrap().len() / 4 * 3;
    let gzip_bytes = value("bedrock_gateway_operator_config_bytes{encoding=\"gzip\"}") as usize;
    assert!(gzip_bytes.abs_diff(gz) <= 2, "{gzip_bytes} bytes, about {gz} in the ConfigMap");
    assert!(value("bedrock_gateway_operator_config_bytes{encoding=\"json\"}") > 0.0);
    operator.abort();
}
