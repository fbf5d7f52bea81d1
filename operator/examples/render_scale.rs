//! Measures the render of a large cluster: `cargo run -p bedrock-gateway-operator --example
//! render_scale [--release] [MODELS POLICIES]` (default 5000 models, 1000 policies). Prints the
//! time of `api::render` alone and of the operator's whole plan (isolation, discovery, hashes, the
//! gzip of the ConfigMap's `config.json.gz`), the compressed size, and gzip at other levels.

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
    let json = serde_json::to_vec(&plan.rendered.config).unwrap_or_default();
    let started = Instant::now();
    let fast = flate2_level(&json, 1);
    let fast_time = started.elapsed();
    let started = Instant::now();
    let best = flate2_level(&json, 9);
    let best_time = started.elapsed();
    let started = Instant::now();
    let default = api::gzip::compress(&json);
    let gzip = started.elapsed();
    println!(
        "{models} models, {policies} policies, {accounts} accounts: api::render {render:?}, operator plan {whole:?} \
         (gzip included), config.json {} bytes ({} models served); gzip default level {gzip:?} -> {} bytes \
         ({:.1}x), level 1 {fast_time:?} -> {} bytes, level 9 {best_time:?} -> {} bytes; the ConfigMap holds {}",
        json.len(),
        rendered.config.models.len(),
        default.len(),
        json.len() as f64 / default.len() as f64,
        fast.len(),
        best.len(),
        operator::apply::MAX_OBJECT_DATA,
    );
    assert_eq!(plan.stored_config.gz, default, "the plan stores exactly this");
}

/// gzip of `json` at `level`, to compare with the default level the operator uses.
fn flate2_level(json: &[u8], level: u32) -> Vec<u8> {
    use std::io::Write as _;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
    encoder.write_all(json).expect("gzip into memory");
    encoder.finish().expect("gzip into memory")
}
