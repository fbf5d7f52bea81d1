//! `crdgen`: the committed `crds/` must match what the code generates, and stdout is one stream.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_bedrock-gateway-operator");
const FILES: [&str; 3] = ["bedrockaccounts.yaml", "bedrockmodels.yaml", "accesspolicies.yaml"];

/// Runs `crdgen` with `args`, returning stdout; fails the test on a non-zero exit.
fn crdgen(args: &[&str]) -> String {
    let output = Command::new(BIN).arg("crdgen").args(args).output().unwrap();
    assert!(output.status.success(), "crdgen failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn committed_crds_match_the_generated_ones() {
    let generated: PathBuf = std::env::temp_dir().join(format!("bgw-crdgen-{}", std::process::id()));
    let _ = fs::remove_dir_all(&generated);
    crdgen(&["--out-dir", generated.to_str().unwrap()]);
    let committed = Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("run by cargo")).join("../crds");
    for file in FILES {
        let want = fs::read_to_string(generated.join(file)).unwrap();
        let have = fs::read_to_string(committed.join(file)).unwrap_or_default();
        assert!(
            have == want,
            "crds/{file} is out of date: run `cargo run -p bedrock-gateway-operator -- crdgen --out-dir crds` \
             from the workspace root and commit the result"
        );
    }
    fs::remove_dir_all(&generated).unwrap();
}

#[test]
fn stdout_is_the_three_crds_in_order() {
    let stdout = crdgen(&[]);
    let names: Vec<&str> =
        stdout.lines().filter_map(|l| l.strip_prefix("  name: ")).filter(|n| n.ends_with(".io")).collect();
    assert_eq!(
        names,
        [
            "bedrockaccounts.bedrockgateway.io",
            "bedrockmodels.bedrockgateway.io",
            "accesspolicies.bedrockgateway.io"
        ]
    );
    assert_eq!(stdout.matches("\n---\n").count(), 2);
}
