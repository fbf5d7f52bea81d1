//! AWS credentials end to end: IRSA web identity and AssumeRole against moto's STS, the session
//! credentials verified by the simulator (which trusts what moto issued), refreshes under load,
//! denials, and static-key rotation through a Secret change.
//!
//! moto comes from the e2e venv (`.venv/bin/moto_server`, installed by `scripts/test`); without
//! it the STS tests print why and pass without running.

mod fixtures;

use std::io::Read;
use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use fixtures::Harness;
use proxy::credentials::{CredentialMetrics, PodIdentityEnv, Registry};
use serde_json::{Value, json};

/// One STS call moto received: action, form parameters, `Authorization` header.
type StsCall = (String, Vec<(String, String)>, String);

/// A `moto_server` child process recording every request it serves.
struct Moto {
    child: Child,
    url: String,
    recording: PathBuf,
}

impl Moto {
    fn start() -> Option<Moto> {
        let bin = Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("run by cargo"))
            .join("../.venv/bin/moto_server");
        if !bin.exists() {
            eprintln!(
                "SKIPPED: {} not found; run scripts/test (it installs tests/e2e/requirements.txt) to test STS",
                bin.display()
            );
            return None;
        }
        let port = StdListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let recording = scratch("moto-recording.jsonl");
        let child = Command::new(bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("MOTO_ENABLE_RECORDING", "True")
            .env("MOTO_RECORDER_FILEPATH", &recording)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto_server did not listen on {port} within 30s");
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(Moto { child, url: format!("http://127.0.0.1:{port}"), recording })
    }

    /// The STS calls moto received, oldest first.
    fn sts_calls(&self) -> Vec<StsCall> {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.recording) {
            f.read_to_string(&mut text).unwrap();
        }
        text.lines()
            .filter_map(|line| {
                let entry: Value = serde_json::from_str(line).ok()?;
                let body = entry["body"].as_str().unwrap_or_default();
                let body = if entry["body_encoded"] == true {
                    String::from_utf8(base64::engine::general_purpose::STANDARD.decode(body).ok()?).ok()?
                } else {
                    body.to_owned()
                };
                let params = form(&body);
                let action = params.iter().find(|(k, _)| k == "Action")?.1.clone();
                let auth = entry["headers"]["Authorization"].as_str().unwrap_or_default().to_owned();
                Some((action, params, auth))
            })
            .collect()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.recording);
    }
}

fn form(body: &str) -> Vec<(String, String)> {
    let decode =
        |s: &str| percent_encoding::percent_decode_str(&s.replace('+', " ")).decode_utf8_lossy().into_owned();
    body.split('&').filter_map(|p| p.split_once('=')).map(|(k, v)| (decode(k), decode(v))).collect()
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn scratch(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("bgw-cred-{}-{}-{name}", std::process::id(), fastrand::u64(..)))
}

const GATEWAY_ROLE: &str = "arn:aws:iam::111111111111:role/bedrock-gateway";
const TARGET_ROLE: &str = "arn:aws:iam::222222222222:role/bedrock-invoke";

/// Accounts `irsa` (pod identity) and `cross` (assumed role), both on the simulator and moto.
fn accounts(moto: &str) -> String {
    format!(
        r#"apiVersion: bedrockgateway.io/v1alpha1
kind: BedrockAccount
metadata: {{name: irsa, namespace: ai-gateway}}
spec:
  defaultRegion: us-east-1
  auth: {{podIdentity: {{}}}}
  endpoints: {{runtime: "http://127.0.0.1:9090", sts: "{moto}"}}
---
apiVersion: bedrockgateway.io/v1alpha1
kind: BedrockAccount
metadata: {{name: cross, namespace: ai-gateway}}
spec:
  defaultRegion: us-east-1
  auth:
    assumeRole: {{roleArn: "{TARGET_ROLE}", externalId: ext-123, durationSeconds: 900}}
  endpoints: {{runtime: "http://127.0.0.1:9090", sts: "{moto}"}}
---
apiVersion: bedrockgateway.io/v1alpha1
kind: BedrockModel
metadata: {{name: nova, namespace: ai-gateway}}
spec: {{accountRef: irsa, modelId: "amazon.nova-lite-v1:0"}}
---
apiVersion: bedrockgateway.io/v1alpha1
kind: BedrockModel
metadata: {{name: nova-x, namespace: ai-gateway}}
spec: {{accountRef: cross, modelId: "amazon.nova-lite-v1:0"}}
---
apiVersion: bedrockgateway.io/v1alpha1
kind: AccessPolicy
metadata: {{name: sts, namespace: ai-gateway}}
spec:
  subjects: [{{team: quickstart}}]
  models: ["irsa/*", "cross/*"]
"#
    )
}

/// A proxy whose pod identity is IRSA with `token_file`, moto as STS, the sim trusting moto.
async fn start(moto: &Moto, token_file: &Path, web_identity_seconds: Option<u32>) -> Harness {
    let env = PodIdentityEnv {
        role_arn: Some(GATEWAY_ROLE.into()),
        web_identity_token_file: Some(token_file.to_owned()),
        web_identity_duration_seconds: web_identity_seconds,
        imds_disabled: true,
        ..Default::default()
    };
    let registry = Arc::new(Registry::new(env, CredentialMetrics::new()));
    let sim = bedrock_sim::SimConfig { moto_url: Some(moto.url.clone()), ..Default::default() };
    Harness::start_with(sim, &[("sts-accounts.yaml", &accounts(&moto.url))], Some(registry)).await
}

fn chat(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hi"}]})
}

fn access_key_of(authorization: &str) -> &str {
    authorization.split("Credential=").nth(1).and_then(|c| c.split('/').next()).unwrap_or_default()
}

#[tokio::test]
async fn irsa_and_assumed_role_sign_with_session_credentials_and_share_one_sts_call() {
    let Some(moto) = Moto::start() else { return };
    let token = scratch("token");
    std::fs::write(&token, "web-identity-token-1\n").unwrap();
    let h = start(&moto, &token, None).await;

    // Concurrent first requests of both accounts: all succeed, one STS call each.
    let calls = (0..16).map(|i| {
        let h = &h;
        async move { h.chat(chat(if i % 2 == 0 { "irsa/nova" } else { "cross/nova-x" })).await }
    });
    for reply in futures_util::future::join_all(calls).await {
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    let sts = moto.sts_calls();
    let actions: Vec<&str> = sts.iter().map(|(a, _, _)| a.as_str()).collect();
    assert_eq!(actions.iter().filter(|a| **a == "AssumeRoleWithWebIdentity").count(), 1, "{actions:?}");
    assert_eq!(actions.iter().filter(|a| **a == "AssumeRole").count(), 1, "{actions:?}");

    let (_, web, web_auth) = sts.iter().find(|(a, _, _)| a == "AssumeRoleWithWebIdentity").unwrap();
    assert_eq!(param(web, "RoleArn"), Some(GATEWAY_ROLE));
    assert_eq!(param(web, "RoleSessionName"), Some("bedrock-gateway"));
    assert_eq!(param(web, "WebIdentityToken"), Some("web-identity-token-1"));
    assert!(web_auth.is_empty(), "AssumeRoleWithWebIdentity is unsigned: {web_auth}");

    let (_, assume, assume_auth) = sts.iter().find(|(a, _, _)| a == "AssumeRole").unwrap();
    assert_eq!(param(assume, "RoleArn"), Some(TARGET_ROLE));
    assert_eq!(param(assume, "RoleSessionName"), Some("bedrock-gateway"));
    assert_eq!(param(assume, "ExternalId"), Some("ext-123"));
    assert_eq!(param(assume, "DurationSeconds"), Some("900"));
    let mut tags: Vec<(&str, &str)> = (1..=3)
        .map(|n| {
            let key = param(assume, &format!("Tags.member.{n}.Key")).unwrap();
            (key, param(assume, &format!("Tags.member.{n}.Value")).unwrap())
        })
        .collect();
    tags.sort();
    assert_eq!(
        tags,
        [
            ("bedrock-gateway:account", "cross"),
            ("bedrock-gateway:gateway", "bedrock-gateway"),
            ("bedrock-gateway:namespace", "ai-gateway")
        ]
    );
    // The AssumeRole call is signed with the IRSA session, which is not what Bedrock sees for `cross`.
    let irsa_key = access_key_of(assume_auth).to_owned();
    assert!(irsa_key.starts_with("ASIA"), "{assume_auth}");

    let requests = h.sim.requests();
    assert_eq!(requests.len(), 16);
    let mut keys = std::collections::BTreeMap::new();
    for r in &requests {
        let auth = r.header("authorization").unwrap();
        assert!(r.header("x-amz-security-token").is_some_and(|t| !t.is_empty()));
        assert!(auth.contains("x-amz-security-token"), "the session token is signed: {auth}");
        keys.entry(access_key_of(auth).to_owned()).or_insert_with(Vec::new).push(r.path.clone());
    }
    assert_eq!(keys.len(), 2, "one session per account: {keys:?}");
    assert!(keys.contains_key(&irsa_key), "irsa/nova is signed with the IRSA session");
    let _ = std::fs::remove_file(token);
}

#[tokio::test]
async fn short_lived_irsa_sessions_refresh_under_load_reading_the_rotated_token() {
    let Some(moto) = Moto::start() else { return };
    let token = scratch("token");
    std::fs::write(&token, "token-a").unwrap();
    // 5-second sessions: refreshed about every 3.5 seconds (moto, unlike AWS, allows so short).
    let h = start(&moto, &token, Some(5)).await;
    let started = Instant::now();
    let mut rotated = false;
    let mut sent = 0;
    while started.elapsed() < Duration::from_secs(11) {
        if !rotated && started.elapsed() > Duration::from_secs(5) {
            // kubelet replaces the projected token: write aside, then rename over.
            let next = token.with_extension("next");
            std::fs::write(&next, "token-b").unwrap();
            std::fs::rename(&next, &token).unwrap();
            rotated = true;
        }
        let batch = (0..4).map(|_| h.chat(chat("irsa/nova")));
        for reply in futures_util::future::join_all(batch).await {
            assert_eq!(reply.status, 200, "no request fails across refreshes: {}", reply.text());
            sent += 1;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(sent > 20, "{sent}");
    let tokens: Vec<String> = moto
        .sts_calls()
        .into_iter()
        .filter(|(a, _, _)| a == "AssumeRoleWithWebIdentity")
        .map(|(_, p, _)| param(&p, "WebIdentityToken").unwrap().to_owned())
        .collect();
    assert!(tokens.len() >= 3, "several refreshes: {tokens:?}");
    assert_eq!(tokens[0], "token-a");
    assert_eq!(tokens.last().unwrap(), "token-b", "the rotated token is read on refresh: {tokens:?}");
    let keys: std::collections::BTreeSet<String> = h
        .sim
        .requests()
        .iter()
        .map(|r| access_key_of(r.header("authorization").unwrap()).to_owned())
        .collect();
    assert!(keys.len() >= 3, "requests moved to each new session: {keys:?}");
    let _ = std::fs::remove_file(token);
}

#[tokio::test]
async fn unreadable_token_file_is_a_503_naming_the_account_and_the_file() {
    let Some(moto) = Moto::start() else { return };
    let token = scratch("missing-token");
    let h = start(&moto, &token, None).await;
    let reply = h.chat(chat("cross/nova-x")).await;
    assert_eq!(reply.status, 503);
    let error = &reply.json()["error"];
    assert_eq!(error["type"], "server_error");
    assert_eq!(error["code"], "aws_credentials_unavailable");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!(
            "The gateway has no AWS credentials for account `cross`: the pod identity to assume {TARGET_ROLE} from \
             is unavailable: the web identity token file {} (AWS_WEB_IDENTITY_TOKEN_FILE) cannot be read: ",
            token.display()
        )),
        "{message}"
    );
    assert!(h.sim.requests().is_empty(), "nothing unsigned reaches Bedrock");
    // The token appears: the retrying refresh picks it up without a restart.
    std::fs::write(&token, "late-token").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reply = h.chat(chat("cross/nova-x")).await;
        if reply.status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "still failing: {}", reply.text());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = std::fs::remove_file(token);
}

#[tokio::test]
async fn unreachable_sts_fails_fast_with_the_endpoint_in_the_message() {
    let port = StdListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let token = scratch("token");
    std::fs::write(&token, "t").unwrap();
    let env = PodIdentityEnv {
        role_arn: Some(GATEWAY_ROLE.into()),
        web_identity_token_file: Some(token.clone()),
        imds_disabled: true,
        ..Default::default()
    };
    let registry = Arc::new(Registry::new(env, CredentialMetrics::new()));
    let dead = format!("http://127.0.0.1:{port}");
    let h = Harness::start_with(
        bedrock_sim::SimConfig::default(),
        &[("a.yaml", &accounts(&dead))],
        Some(registry),
    )
    .await;
    let reply = h.chat(chat("irsa/nova")).await;
    assert_eq!(reply.status, 503);
    let message = reply.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(
        message.starts_with(&format!(
            "The gateway has no AWS credentials for account `irsa`: AssumeRoleWithWebIdentity on {GATEWAY_ROLE} \
             failed: STS at {dead} could not be reached"
        )),
        "{message}"
    );
    // Later requests answer at once with the same reason instead of waiting on STS again.
    let again = Instant::now();
    let reply = h.chat(chat("irsa/nova")).await;
    assert_eq!(reply.status, 503);
    assert!(again.elapsed() < Duration::from_secs(2));
    let _ = std::fs::remove_file(token);
}

#[tokio::test]
async fn a_rotated_access_key_secret_is_used_by_new_requests_without_a_restart() {
    let old = ("ASIAOLDKEY0000000001", "old-secret", "old-token");
    let new = ("ASIANEWKEY0000000002", "new-secret", "new-token");
    let secret = |(id, key, token): (&str, &str, &str)| {
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: aws-keys, namespace: ai-gateway}}\nstringData:\n  \
             accessKeyId: {id}\n  secretAccessKey: {key}\n  sessionToken: {token}\n"
        )
    };
    let h = Harness::start_with(bedrock_sim::SimConfig::default(), &[], None).await;
    h.sim.register_credentials(old.0, old.1, old.2);
    h.sim.register_credentials(new.0, new.1, new.2);
    // Let the folder watcher take its first look before the files change.
    assert_eq!(h.chat(chat("demo/nova-lite")).await.status, 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The quick-start keys live in account.yaml; move them to their own file to rotate it.
    let account = std::fs::read_to_string(h.dir.join("account.yaml")).unwrap();
    let account = account.split("\n---\n").next().unwrap().to_owned();
    std::fs::write(h.dir.join("account.yaml"), account).unwrap();
    std::fs::write(h.dir.join("aws-keys.yaml"), secret(old)).unwrap();
    let used_key = |h: &Harness| {
        let requests = h.sim.requests();
        let r = requests.last().unwrap();
        (
            access_key_of(r.header("authorization").unwrap()).to_owned(),
            r.header("x-amz-security-token").map(str::to_owned),
        )
    };
    let wait_for = |want: &'static str| {
        let h = &h;
        async move {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let reply = h.chat(chat("demo/nova-lite")).await;
                assert_eq!(reply.status, 200, "{}", reply.text());
                if used_key(h).0 == want {
                    return;
                }
                assert!(Instant::now() < deadline, "the proxy never switched to {want}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    wait_for(old.0).await;
    assert_eq!(used_key(&h).1.as_deref(), Some(old.2));
    std::fs::write(h.dir.join("aws-keys.yaml"), secret(new)).unwrap();
    wait_for(new.0).await;
    assert_eq!(used_key(&h).1.as_deref(), Some(new.2));
    // Every request in between succeeded (asserted in wait_for): none saw a half-rotated key.
}
