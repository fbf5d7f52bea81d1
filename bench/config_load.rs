//! Config load benchmark: how long the proxy takes to load a 10,000-model config, plain and as the
//! operator's gzip-compressed `config.json.gz` (target < 200 ms), and `api::render` takes for 5,000 BedrockModels and 1,000 AccessPolicies (target < 1 s).
//!
//! `cargo bench -p bedrock-gateway-proxy --bench config_load` (release profile); results and how
//! to read them are in `bench/README.md`. Prints one table row per measurement.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use api::Manifests;
use api::config::{CONFIG_FILE, CONFIG_GZ_FILE, CREDENTIALS_FILE};
use proxy::config::polling::LocalSource;
use proxy::config::{ConfigDir, ConfigStore, Publisher};
use proxy::metrics::Metrics;

/// Runs per measurement; the table shows the median and the slowest.
const RUNS: usize = 15;

/// Manifests with `accounts` accounts (one namespace each, with its key Secret), `models` models
/// and `policies` access policies spread evenly over them, and one caller key per policy.
fn manifests(accounts: usize, models: usize, policies: usize) -> String {
    let mut yaml = String::with_capacity(models * 300 + policies * 400);
    for a in 0..accounts {
        let _ = write!(
            yaml,
            "apiVersion: bedrockgateway.io/v1alpha1\nkind: BedrockAccount\nmetadata: {{name: acct-{a}, namespace: team-{a}}}\n\
             spec:\n  defaultRegion: us-east-1\n  auth:\n    accessKey:\n      secretRef: {{name: aws-keys}}\n---\n\
             apiVersion: v1\nkind: Secret\nmetadata: {{name: aws-keys, namespace: team-{a}}}\n\
             stringData: {{accessKeyId: AKIABENCH{a:011}, secretAccessKey: bench-secret-{a}}}\n---\n"
        );
    }
    for m in 0..models {
        let a = m % accounts;
        let (id, region) = match m % 3 {
            0 => ("amazon.nova-lite-v1:0", "us-east-1"),
            1 => ("us.anthropic.claude-3-7-sonnet-20250219-v1:0", "us-west-2"),
            _ => ("amazon.titan-embed-text-v2:0", "eu-west-1"),
        };
        let _ = write!(
            yaml,
            "apiVersion: bedrockgateway.io/v1alpha1\nkind: BedrockModel\nmetadata: {{name: model-{m}, namespace: team-{a}}}\n\
             spec:\n  accountRef: acct-{a}\n  modelId: {id}\n  region: {region}\n  cost: {{inputPerMillionTokens: 3.0, outputPerMillionTokens: 15.0}}\n---\n"
        );
    }
    for p in 0..policies {
        let a = p % accounts;
        let _ = write!(
            yaml,
            "apiVersion: bedrockgateway.io/v1alpha1\nkind: AccessPolicy\nmetadata: {{name: policy-{p}, namespace: team-{a}}}\n\
             spec:\n  subjects:\n    - user: user-{p}@example.com\n    - team: team-{a}\n  models: [\"acct-{a}/*\", \"acct-{}/model-{}\"]\n\
             \x20 limits: {{requestsPerMinute: 600, tokensPerMinute: 200000}}\n---\n\
             apiVersion: v1\nkind: Secret\nmetadata: {{name: key-{p}, namespace: team-{a}}}\ntype: bedrockgateway.io/api-key\n\
             stringData: {{key: sk-bench-{p}, user: user-{p}@example.com, teams: team-{a}}}\n---\n",
            (a + 1) % accounts,
            p + 1
        );
    }
    yaml
}

/// Median and slowest of `RUNS` timed calls of `f`.
fn measure(mut f: impl FnMut()) -> (Duration, Duration) {
    let mut times: Vec<Duration> = (0..RUNS)
        .map(|_| {
            let started = Instant::now();
            f();
            started.elapsed()
        })
        .collect();
    times.sort_unstable();
    (times[RUNS / 2], times[RUNS - 1])
}

/// One table row; `target` is the bound on the slowest run, if it sets one.
fn row(what: &str, size: &str, (median, slowest): (Duration, Duration), target: Option<Duration>) {
    let target = target.map_or("-".to_owned(), |t| {
        format!("< {} ms ({})", t.as_millis(), if slowest < t { "met" } else { "MISSED" })
    });
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!("| {what} | {size} | {:.1} ms | {:.1} ms | {target} |", ms(median), ms(slowest));
}

fn main() {
    println!("| measurement | size | median | slowest of {RUNS} | target |");
    println!("|---|---|---|---|---|");

    // api::render: 5,000 BedrockModels and 1,000 AccessPolicies (parsing the YAML is not counted).
    let parsed = Manifests::parse(&manifests(50, 5_000, 1_000), "bench").expect("bench manifests parse");
    let timing = measure(|| {
        api::render(&parsed).expect("bench manifests render");
    });
    row("`api::render`", "5,000 models, 1,000 policies, 50 accounts", timing, Some(Duration::from_secs(1)));
    let timing = measure(|| {
        Manifests::parse(&manifests(50, 5_000, 1_000), "bench").expect("bench manifests parse");
    });
    row("`Manifests::parse` of that YAML (not part of render)", "same", timing, None);

    // The proxy loading the operator's documents for 10,000 models from a --config-dir: read both
    // files, parse, check, compile the snapshot and swap it in.
    let rendered = api::render(&Manifests::parse(&manifests(20, 10_000, 1_000), "bench").unwrap()).unwrap();
    let dir = std::env::temp_dir().join(format!("bgw-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = serde_json::to_vec(&rendered.config).unwrap();
    std::fs::write(dir.join(CONFIG_FILE), &config).unwrap();
    std::fs::write(dir.join(CREDENTIALS_FILE), serde_json::to_vec(&rendered.credentials).unwrap()).unwrap();
    let source = ConfigDir::new(&dir, Duration::from_secs(1));
    let store = Arc::new(ConfigStore::default());
    let publisher = Publisher::new(
        store.clone(),
        Metrics::new(),
        None,
        Arc::new(proxy::credentials::Registry::from_process()),
    );
    let timing = measure(|| {
        assert!(publisher.apply("bench", source.load()), "bench config loads");
    });
    assert_eq!(store.current().map(|s| s.routes.len()), Some(10_000));
    let size =
        format!("10,000 models, 1,000 policies, 20 accounts ({} KiB config.json)", config.len() / 1024);
    row("proxy `--config-dir` load + swap", &size, timing, Some(Duration::from_millis(200)));

    // The same config as the operator stores it: config.json.gz (inflated on every load).
    std::fs::remove_file(dir.join(CONFIG_FILE)).unwrap();
    let gz = api::gzip::compress(&config);
    std::fs::write(dir.join(CONFIG_GZ_FILE), &gz).unwrap();
    let timing = measure(|| {
        assert!(publisher.apply("bench", source.load()), "bench gzip config loads");
    });
    assert_eq!(store.current().map(|s| s.routes.len()), Some(10_000));
    let size = format!("same, as {} KiB config.json.gz", gz.len() / 1024);
    row("proxy `--config-dir` load + swap, gzip", &size, timing, Some(Duration::from_millis(200)));
    let timing = measure(|| {
        api::gzip::decompress(&gz).expect("bench gzip inflates");
    });
    row("of which: inflating config.json.gz", "same", timing, None);
    let _ = std::fs::remove_dir_all(&dir);
}
