//! `render -f DIR --check-aws`: the GitOps preflight asks AWS (bedrock-sim, moto) what the
//! operator would, prints every object's conditions and fails when AWS says no.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::fixtures::{Moto, sim};

const BIN: &str = env!("CARGO_BIN_EXE_bedrock-gateway-operator");

/// The quick start with its endpoints on the sim and STS on moto, plus `extra`, in a fresh folder.
fn quickstart(sim: &str, sts: &str, extra: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bgw-check-aws-{}-{}", std::process::id(), next_suffix()));
    std::fs::create_dir_all(&dir).unwrap();
    let source =
        Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("run by cargo")).join("../examples/quickstart");
    for entry in std::fs::read_dir(source).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap().replace(
            "    control: \"http://127.0.0.1:9090\"",
            &format!("    control: \"http://127.0.0.1:9090\"\n    sts: \"{sts}\""),
        );
        std::fs::write(dir.join(path.file_name().unwrap()), text.replace("http://127.0.0.1:9090", sim))
            .unwrap();
    }
    std::fs::write(dir.join("extra.yaml"), extra).unwrap();
    dir
}

/// A distinct suffix per call.
fn next_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::SeqCst)
}

fn check(dir: &Path) -> Output {
    let output = Command::new(BIN).args(["render", "--check-aws", "-f"]).arg(dir).output().unwrap();
    std::fs::remove_dir_all(dir).unwrap();
    output
}

#[tokio::test(flavor = "multi_thread")]
async fn the_quickstart_passes_and_shows_what_aws_said() {
    let (moto, sim) = (Moto::start(), sim().await);
    let output = check(&quickstart(&sim.url(), &moto.url, ""));
    let (stdout, stderr) =
        (String::from_utf8(output.stdout).unwrap(), String::from_utf8(output.stderr).unwrap());
    assert!(output.status.success(), "{stderr}");
    for line in [
        "BedrockAccount ai-gateway/demo:\n  Ready=True Ready: served as demo/* with 7 model(s)\n",
        "  CredentialsVerified=True Verified: sts:GetCallerIdentity succeeded as arn:aws:sts::123456789012:user/moto \
         (account 123456789012)\n",
        "BedrockModel ai-gateway/team-profile:\n  Ready=True Served: served as demo/team-profile in us-east-1\n  \
         Reachable=True ProfileFound: inference profile abc123def456 in us-east-1 routes to \
         anthropic.claude-3-7-sonnet-20250219-v1:0\n",
        "AccessPolicy ai-gateway/quickstart:\n  Ready=True InForce:",
    ] {
        assert!(stderr.contains(line), "missing {line:?} in:\n{stderr}");
    }
    assert!(stdout.contains("underlyingModelId: anthropic.claude-3-7-sonnet-20250219-v1:0"), "{stdout}");
    assert!(
        !stdout.contains("bedrock-sim-secret-access-key")
            && !stderr.contains("bedrock-sim-secret-access-key")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_model_the_region_does_not_list_fails_the_check() {
    let (moto, sim) = (Moto::start(), sim().await);
    let extra = "apiVersion: bedrockgateway.io/v1alpha1\nkind: BedrockModel\n\
                 metadata: {name: micro, namespace: ai-gateway}\nspec: {accountRef: demo, modelId: \"amazon.nova-micro-v1:0\"}\n";
    let output = check(&quickstart(&sim.url(), &moto.url, extra));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "BedrockModel ai-gateway/micro:\n  Ready=False Unreachable: bedrock:ListFoundationModels in us-east-1 does not \
             list amazon.nova-micro-v1:0"
        ),
        "{stderr}"
    );
}
