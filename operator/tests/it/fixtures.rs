//! A scripted API server: each `expect` takes the next request the client sends, asserts its
//! method and URI, and answers it; plus objects and plans for the tests.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use api::Manifests;
use base64::Engine as _;
use bedrock_sim::{SimConfig, SimHandle};
use bytes::Bytes;
use http::{Request, Response};
use kube::Client;
use kube::client::Body;
use operator::aws::facts::Facts;
use operator::plan::{Plan, plan};
use serde_json::{Value, json};
use tower_test::mock::{Handle, pair};

/// The quick-start account (keys in a Secret), two models and a policy in namespace ai-gateway.
pub const MANIFESTS: &str = r#"
apiVersion: bedrockgateway.io/v1alpha1
kind: BedrockAccount
metadata: {name: demo, namespace: ai-gateway, generation: 1, uid: 6d1e0a52-0000-4000-8000-000000000001}
spec:
  defaultRegion: us-east-1
  auth: {accessKey: {secretRef: {name: aws-keys}}}
  collaborators: [{user: bob@example.com, role: manager}]
---
apiVersion: v1
kind: Secret
metadata: {name: aws-keys, namespace: ai-gateway}
stringData: {accessKeyId: AKIASIMULATOR0000001, secretAccessKey: bedrock-sim-secret-access-key-0000000000}
---
apiVersion: bedrockgateway.io/v1alpha1
kind: BedrockModel
metadata: {name: nova-lite, namespace: ai-gateway, generation: 1}
spec: {accountRef: demo, modelId: "amazon.nova-lite-v1:0"}
---
apiVersion: bedrockgateway.io/v1alpha1
kind: BedrockModel
metadata: {name: claude, namespace: ai-gateway, generation: 1}
spec: {accountRef: demo, modelId: "us.anthropic.claude-3-7-sonnet-20250219-v1:0", region: us-west-2}
"#;

/// The parsed [`MANIFESTS`], optionally edited first.
pub fn manifests(edit: impl FnOnce(String) -> String) -> Manifests {
    Manifests::parse(&edit(MANIFESTS.to_string()), "fixtures").unwrap()
}

/// The plan of `manifests` without AWS facts.
pub fn plan_of(manifests: &Manifests) -> Plan {
    plan(manifests, &Facts::default())
}

/// The config document in a ConfigMap (or a patch of one) as the operator writes it: base64 of
/// the gzip in `binaryData` `config.json.gz`, and no plain `data`.
pub fn stored_config(configmap: &Value) -> Option<Value> {
    assert!(configmap.get("data").is_none(), "the config is stored only compressed: {configmap}");
    let encoded = configmap["binaryData"]["config.json.gz"].as_str()?;
    let gz = base64::engine::general_purpose::STANDARD.decode(encoded).ok()?;
    serde_json::from_slice(&api::gzip::decompress(&gz).ok()?).ok()
}

/// The client side and the scripted server side of a mock API server.
pub fn mock() -> (Client, ApiServer) {
    let (service, handle) = pair::<Request<Body>, Response<Body>>();
    (Client::new(service, "default"), ApiServer(handle))
}

/// The server side of the mock.
pub struct ApiServer(Handle<Request<Body>, Response<Body>>);

/// What the client sent.
pub struct Sent {
    /// Request body as JSON (`Null` when empty).
    pub body: Value,
    /// `Content-Type` header.
    pub content_type: String,
}

impl ApiServer {
    /// Takes the next request, asserts `METHOD uri`, answers `status` with `response`.
    pub async fn expect(&mut self, method: &str, uri: &str, status: u16, response: Value) -> Sent {
        let (request, send) = tokio::time::timeout(std::time::Duration::from_secs(5), self.0.next_request())
            .await
            .unwrap_or_else(|_| panic!("no request came; expected {method} {uri}"))
            .expect("the client hung up");
        assert_eq!(format!("{} {}", request.method(), request.uri()), format!("{method} {uri}"));
        let content_type = request
            .headers()
            .get(http::header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let bytes = request.into_body().collect_bytes().await.unwrap();
        let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap() };
        let reply = Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Body::from(Bytes::from(serde_json::to_vec(&response).unwrap()).to_vec()))
            .unwrap();
        send.send_response(reply);
        Sent { body, content_type }
    }

    /// Asserts that no request is pending.
    pub async fn expect_nothing(&mut self) {
        let next = tokio::time::timeout(std::time::Duration::from_millis(100), self.0.next_request()).await;
        if let Ok(Some((request, _))) = next {
            panic!("unexpected request {} {}", request.method(), request.uri());
        }
    }
}

/// A 404 `Status` as the API server sends it.
pub fn not_found(kind: &str, name: &str) -> Value {
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("{kind} \"{name}\" not found"), "reason": "NotFound", "code": 404,
    })
}

/// A 409 `Status`.
pub fn conflict(kind: &str, name: &str) -> Value {
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("Operation cannot be fulfilled on {kind} \"{name}\": the object has been modified"),
        "reason": "Conflict", "code": 409,
    })
}

/// A moto server on a free port, stopped on drop.
pub struct Moto {
    child: Child,
    /// Base URL.
    pub url: String,
}

impl Moto {
    /// Starts `moto_server` (from the e2e venv, or `MOTO_SERVER`) and waits until it listens.
    pub fn start() -> Moto {
        let bin = std::env::var_os("MOTO_SERVER").map(PathBuf::from).unwrap_or_else(|| {
            PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("run by cargo"))
                .join("../.venv/bin/moto_server")
        });
        assert!(
            bin.exists(),
            "{} not found: install tests/e2e/requirements.txt into .venv (scripts/test does) or set MOTO_SERVER",
            bin.display()
        );
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap().local_addr().unwrap().port();
        let child = Command::new(bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let started = Instant::now();
        while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(30), "moto_server did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        Moto { child, url: format!("http://127.0.0.1:{port}") }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A bedrock-sim on a free loopback port.
pub async fn sim() -> SimHandle {
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    bedrock_sim::spawn(SimConfig::default(), listener).await
}

/// Points the fixture account's control plane at the simulator and STS at `sts`.
pub fn endpoints(sim: &str, sts: &str) -> impl FnOnce(String) -> String {
    let block = format!("  endpoints: {{runtime: \"{sim}\", control: \"{sim}\", sts: \"{sts}\"}}\n");
    move |m: String| {
        m.replace("  defaultRegion: us-east-1\n", &format!("  defaultRegion: us-east-1\n{block}"))
    }
}
