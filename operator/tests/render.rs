//! `render -f DIR`: config on stdout, counts on stderr, never a secret; problems (a config too
//! large for the ConfigMap included) exit 1.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_bedrock-gateway-operator");

/// Runs `render -f dir`.
fn render(dir: &Path) -> Output {
    Command::new(BIN).args(["render", "-f"]).arg(dir).output().unwrap()
}

#[test]
fn quickstart_renders_config_without_secrets() {
    let output = render(
        &Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("run by cargo"))
            .join("../examples/quickstart"),
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(output.status.success(), "{stderr}");
    assert!(stdout.contains("demo/claude-sonnet:"), "{stdout}");
    assert!(stdout.contains("- team: quickstart"), "{stdout}");
    assert_eq!(
        stderr,
        "rendered 1 account(s), 7 model(s), 1 policy(ies); credentials: 1 account secret(s), 1 API key(s) \
         (values not shown)\n"
    );
    for secret in ["sk-bgw-quickstart", "AKIASIMULATOR0000001", "bedrock-sim-secret-access-key"] {
        assert!(!stdout.contains(secret) && !stderr.contains(secret), "output shows {secret}");
    }
}

#[test]
fn problems_go_to_stderr_and_exit_1() {
    let dir = std::env::temp_dir().join(format!("bgw-render-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    fs::write(
        dir.join("m.yaml"),
        "apiVersion: bedrockgateway.io/v1alpha1\nkind: BedrockModel\nmetadata: {name: m, namespace: ns}\n\
         spec: {accountRef: nope, modelId: amazon.nova-lite-v1:0}\n---\n\
         apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm, namespace: ns}\n",
    )
    .unwrap();
    let output = render(&dir);
    fs::remove_dir_all(&dir).unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(String::from_utf8(output.stdout).unwrap(), "");
    assert_eq!(
        String::from_utf8(output.stderr).unwrap(),
        format!(
            "skipped ConfigMap ns/cm: not a bedrock-gateway object or Secret\n\
             error: BedrockModel ns/m spec.accountRef: BedrockAccount nope not found in namespace ns (fix: \
             create BedrockAccount nope in namespace ns, or set accountRef to an account there)\n\
             1 problem(s) found in {}\n",
            dir.display()
        )
    );
}

#[test]
fn a_config_too_large_for_a_configmap_even_compressed_fails_with_both_sizes() {
    let dir = std::env::temp_dir().join(format!("bgw-render-large-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let mut yaml = String::from(
        "apiVersion: bedrockgateway.io/v1alpha1\nkind: BedrockAccount\nmetadata: {name: acct, namespace: ns}\n\
         spec: {defaultRegion: us-east-1, auth: {accessKey: {secretRef: {name: keys}}}}\n---\n\
         apiVersion: v1\nkind: Secret\nmetadata: {name: keys, namespace: ns}\n\
         stringData: {accessKeyId: AKIAEXAMPLE, secretAccessKey: example}\n",
    );
    // Names that do not compress (xorshift hex, 240 characters): about 120 bytes of gzip each.
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    for _ in 0..10_000 {
        let name: String = (0..15)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                format!("{state:016x}")
            })
            .collect();
        yaml.push_str(&format!(
            "---\napiVersion: bedrockgateway.io/v1alpha1\nkind: BedrockModel\nmetadata: {{name: m{name}, namespace: ns}}\n\
             spec: {{accountRef: acct, modelId: amazon.nova-lite-v1:0}}\n"
        ));
    }
    fs::write(dir.join("all.yaml"), yaml).unwrap();
    let output = render(&dir);
    fs::remove_dir_all(&dir).unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_eq!(String::from_utf8(output.stdout).unwrap(), "");
    assert!(stderr.starts_with("error: the rendered config is 1"), "{stderr}");
    assert!(
        stderr.ends_with(&format!(
            "bytes of JSON), more than the 1048576 a ConfigMap holds, so it is not written and the proxies keep \
             serving the last one written: serve fewer models (narrow spec.discovery.include) or split the release\n\
             1 problem(s) found in {}\n",
            dir.display()
        )),
        "{stderr}"
    );
}
