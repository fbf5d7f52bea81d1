//! `render -f DIR --out-dir OUT`: the proxy's `config.json` and `credentials.json`, written only
//! when the manifests render.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use api::config::{Credentials, GatewayConfig, hash_api_key};

const BIN: &str = env!("CARGO_BIN_EXE_bedrock-gateway-operator");

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bgw-render-out-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    dir
}

#[test]
fn writes_the_documents_the_proxy_reads() {
    let out = scratch("ok");
    let quickstart =
        Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("run by cargo")).join("../examples/quickstart");
    let output = Command::new(BIN)
        .args(["render", "-f"])
        .arg(&quickstart)
        .arg("--out-dir")
        .arg(&out)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));

    let config: GatewayConfig = serde_json::from_slice(&fs::read(out.join("config.json")).unwrap()).unwrap();
    let models: Vec<&str> = config.models.keys().map(String::as_str).collect();
    assert_eq!(
        models,
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
    let credentials: Credentials =
        serde_json::from_slice(&fs::read(out.join("credentials.json")).unwrap()).unwrap();
    assert_eq!(credentials.accounts.keys().collect::<Vec<_>>(), ["demo"]);
    assert!(credentials.api_keys.contains_key(&hash_api_key("sk-bgw-quickstart")));
    // Secrets stay out of the world-readable config and out of stdout; the credentials file is owner-only.
    let config_text = fs::read_to_string(out.join("config.json")).unwrap();
    assert!(!config_text.contains("sk-bgw-quickstart") && !config_text.contains("apiKeys"));
    assert_eq!(fs::metadata(out.join("credentials.json")).unwrap().permissions().mode() & 0o777, 0o600);
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(stdout.contains("demo/nova-lite") && !stdout.contains("apiKeys"), "{stdout}");
    let _ = fs::remove_dir_all(&out);
}

#[test]
fn writes_nothing_when_the_manifests_have_problems() {
    let manifests = scratch("bad-manifests");
    fs::create_dir_all(&manifests).unwrap();
    fs::write(
        manifests.join("model.yaml"),
        "apiVersion: bedrockgateway.io/v1alpha1\nkind: BedrockModel\nmetadata: {name: m, namespace: ns}\n\
         spec: {accountRef: missing, modelId: amazon.nova-lite-v1:0}\n",
    )
    .unwrap();
    let out = scratch("bad-out");
    let output =
        Command::new(BIN).args(["render", "-f"]).arg(&manifests).arg("--out-dir").arg(&out).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(!out.exists(), "files were written for manifests with problems");
    let _ = fs::remove_dir_all(&manifests);
}
