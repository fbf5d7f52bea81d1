//! Measures the render of a large cluster: `cargo run -p bedrock-gateway-operator --example
//! render_scale [--release] [MODELS POLICIES]` (default 5000 models, 1000 policies). Prints the
//! time of `api::render` alone and of the operator's whole plan (isolation, discovery, hashes).

use std::time::Instant;

use api::Manifests;
use operator::aws::facts::Facts;

fn main() {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>().expect("counts are numbers"));
    let models = args.next().unwrap_or(5000);
    let policies = args.next().unwrap_or(1000);
    let accounts = 10;
    let mut yaml = String::new();
    for a in 0..accounts {
        yaml.push_str(&format!(
            "---\napiVersion: bedrockgateway.io/v1alpha1\nkind: BedrockAccount\nmetadata: {{name: acct{a}, namespace: ns{a}}}\n\
             spec: {{defaultRegion: us-east-1, auth: {{accessKey: {{secretRef: {{name: keys}}}}}}}}\n\
             ---\napiVersion: v1\nkind: Secret\nmetadata: {{name: keys, namespace: ns{a}}}\n\
             stringData: {{accessKeyId: AKIA{a:016}, secretAccessKey: secret-{a}}}\n"
        ));
    }
    for m in 0..models {
        let a = m % accounts;
        yaml.push_str(&format!(
            "---\napiVersion: bedrockgateway.io/v1alpha1\nkind: BedrockModel\nmetadata: {{name: model{m}, namespace: ns{a}}}\n\
             spec: {{accountRef: acct{a}, modelId: \"us.anthropic.claude-3-7-sonnet-20250219-v1:0\", region: us-west-2}}\n"
        ));
    }
    for p in 0..policies {
        let a = p % accounts;
        yaml.push_str(&format!(
            "---\napiVersion: bedrockgateway.io/v1alpha1\nkind: AccessPolicy\nmetadata: {{name: policy{p}, namespace: ns{a}}}\n\
             spec: {{subjects: [{{team: team{p}}}, {{user: user{p}@example.com}}], models: [\"acct{a}/*\"], \
             limits: {{requestsPerMinute: 600}}}}\n"
        ));
    }
    let manifests = Manifests::parse(&yaml, "generated").expect("generated manifests are valid");
    let started = Instant::now();
    let rendered = api::render(&manifests).expect("generated manifests render");
    let render = started.elapsed();
    let started = Instant::now();
    let plan = operator::plan::plan(&manifests, &Facts::default());
    let whole = started.elapsed();
    let config_bytes = serde_json::to_vec(&plan.rendered.config).map(|v| v.len()).unwrap_or_default();
    println!(
        "{models} models, {policies} policies, {accounts} accounts: api::render {render:?}, operator plan {whole:?}, \
         config.json {config_bytes} bytes ({} models served)",
        rendered.config.models.len()
    );
}
