//! The Kubernetes config source at the HTTP level: a local server stands in for the apiserver,
//! answers exactly the list and watch requests for the two named objects, and pushes watch events
//! (`MODIFIED`, `ERROR 410 Gone`, disconnects) that the proxy must follow within two seconds.

#[allow(dead_code)]
mod config_support;
mod fixtures;

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use config_support::{
    DEMO, Parts, documents, models, reloads, say, wait_for_models, with_model, without_model,
};
use http::{Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use proxy::config::{ConfigDir, KubeSource, Source};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

const NAMESPACE: &str = "ai-gateway";
const CONFIGMAP: &str = "bgw-config";
const SECRET: &str = "bgw-credentials";
/// The contract: an apply is served within two seconds.
const DEADLINE: Duration = Duration::from_secs(2);

/// The two resources the proxy may read, and the one object name it may ask for in each.
const CONFIGMAPS: &str = "configmaps";
const SECRETS: &str = "secrets";

fn name_of(resource: &str) -> &'static str {
    if resource == CONFIGMAPS { CONFIGMAP } else { SECRET }
}

/// The ConfigMap the operator writes: the config gzip-compressed in `binaryData` (base64, as the
/// API returns it).
fn configmap(version: u32, config: &str) -> Value {
    let gz = api::gzip::compress(config.as_bytes());
    let mut object = configmap_json(version, config);
    object.as_object_mut().unwrap().remove("data");
    object["binaryData"] = json!({"config.json.gz": base64::engine::general_purpose::STANDARD.encode(gz)});
    object
}

/// The ConfigMap with the config as plain JSON in `data` (as written by hand or by an older operator).
fn configmap_json(version: u32, config: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": CONFIGMAP, "namespace": NAMESPACE, "resourceVersion": version.to_string(),
                     "annotations": {"bedrockgateway.io/config-hash": format!("hash-{version}")}},
        "data": {"config.json": config},
    })
}

/// The Secret the operator writes (values base64-encoded, as the API returns them).
fn secret(version: u32, credentials: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": SECRET, "namespace": NAMESPACE, "resourceVersion": version.to_string(),
                     "annotations": {"bedrockgateway.io/config-hash": format!("hash-{version}")}},
        "data": {"credentials.json": base64::engine::general_purpose::STANDARD.encode(credentials)},
    })
}

/// One request the fake apiserver received: resource and decoded query.
#[derive(Clone, Debug, PartialEq)]
struct Seen {
    resource: String,
    query: BTreeMap<String, String>,
}

#[derive(Default)]
struct ApiState {
    requests: Vec<Seen>,
    /// The current object per resource, returned by lists.
    objects: HashMap<&'static str, Value>,
    /// Open watch streams per resource.
    watches: HashMap<&'static str, mpsc::UnboundedSender<Bytes>>,
    /// Answer every request with 503, as an apiserver that is down behind its load balancer.
    failing: bool,
}

/// A local HTTP server answering the apiserver calls of the Kubernetes source.
struct FakeApi {
    url: String,
    state: Arc<Mutex<ApiState>>,
}

impl FakeApi {
    async fn start(configmap: Value, secret: Value, failing: bool) -> FakeApi {
        let state = Arc::new(Mutex::new(ApiState { failing, ..ApiState::default() }));
        {
            let mut s = state.lock().unwrap();
            s.objects.insert(CONFIGMAPS, configmap);
            s.objects.insert(SECRETS, secret);
        }
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let shared = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let state = shared.clone();
                let service = service_fn(move |req| {
                    let state = state.clone();
                    async move { Ok::<_, Infallible>(answer(&state, req)) }
                });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        FakeApi { url, state }
    }

    fn client(&self) -> kube::Client {
        kube::Client::try_from(kube::Config::new(self.url.parse().unwrap())).unwrap()
    }

    /// Requests for `resource`, in arrival order.
    fn requests(&self, resource: &str) -> Vec<Seen> {
        self.state.lock().unwrap().requests.iter().filter(|r| r.resource == resource).cloned().collect()
    }

    fn set_failing(&self, failing: bool) {
        self.state.lock().unwrap().failing = failing;
    }

    /// Stores `object` and sends it as a `MODIFIED` event on the open watch.
    fn modify(&self, resource: &'static str, object: Value) {
        let mut s = self.state.lock().unwrap();
        let event = json!({"type": "MODIFIED", "object": object});
        s.objects.insert(resource, object);
        s.watches[resource].send(Bytes::from(format!("{event}\n"))).unwrap();
    }

    /// Ends the watch with `ERROR 410 Gone` (the resourceVersion expired); the next list answers
    /// `object`, which the watch never announced.
    fn expire(&self, resource: &'static str, object: Value) {
        let mut s = self.state.lock().unwrap();
        s.objects.insert(resource, object);
        let gone = json!({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": "too old resource version: 10 (30)", "reason": "Expired", "code": 410}});
        let watch = s.watches.remove(resource).unwrap();
        watch.send(Bytes::from(format!("{gone}\n"))).unwrap();
    }

    /// Closes the watch stream without an event, as an apiserver restart or idle timeout does.
    fn disconnect(&self, resource: &'static str) {
        self.state.lock().unwrap().watches.remove(resource);
    }

    /// Waits until a watch on `resource` is open.
    async fn watching(&self, resource: &'static str) {
        for _ in 0..200 {
            if self.state.lock().unwrap().watches.get(resource).is_some_and(|w| !w.is_closed()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no watch on {resource} was opened");
    }
}

type Body = BoxBody<Bytes, Infallible>;

fn respond(status: StatusCode, body: Value) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())).boxed());
    *response.status_mut() = status;
    response.headers_mut().insert("content-type", "application/json".parse().unwrap());
    response
}

fn status(code: StatusCode, message: &str) -> Response<Body> {
    respond(
        code,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": code.canonical_reason(), "code": code.as_u16()}),
    )
}

/// Answers one request: only list and watch of the two objects, by name.
fn answer(state: &Mutex<ApiState>, req: Request<Incoming>) -> Response<Body> {
    let query: BTreeMap<String, String> = req
        .uri()
        .query()
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let decode =
                |s: &str| percent_encoding::percent_decode_str(s).decode_utf8().unwrap().into_owned();
            (decode(k), decode(v))
        })
        .collect();
    let resource = match req.uri().path().strip_prefix(&format!("/api/v1/namespaces/{NAMESPACE}/")) {
        Some(CONFIGMAPS) => CONFIGMAPS,
        Some(SECRETS) => SECRETS,
        _ => return status(StatusCode::FORBIDDEN, &format!("not allowed: {} {}", req.method(), req.uri())),
    };
    let mut s = state.lock().unwrap();
    s.requests.push(Seen { resource: resource.to_owned(), query: query.clone() });
    if s.failing {
        return status(StatusCode::SERVICE_UNAVAILABLE, "apiserver is restarting");
    }
    // RBAC by resourceNames: only requests naming the one object are allowed.
    if req.method() != http::Method::GET
        || query.get("fieldSelector").map(String::as_str)
            != Some(&format!("metadata.name={}", name_of(resource)))
    {
        return status(StatusCode::FORBIDDEN, &format!("not allowed: {} {}", req.method(), req.uri()));
    }
    if query.get("watch").map(String::as_str) == Some("true") {
        let (tx, rx) = mpsc::unbounded_channel::<Bytes>();
        s.watches.insert(resource, tx);
        let events = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|chunk| (Ok::<_, Infallible>(Frame::data(chunk)), rx))
        });
        let mut response = Response::new(BodyExt::boxed(StreamBody::new(events)));
        response.headers_mut().insert("content-type", "application/json".parse().unwrap());
        return response;
    }
    let object = s.objects[resource].clone();
    let kind = if resource == CONFIGMAPS { "ConfigMapList" } else { "SecretList" };
    let version = object["metadata"]["resourceVersion"].clone();
    respond(
        StatusCode::OK,
        json!({"apiVersion": "v1", "kind": kind, "metadata": {"resourceVersion": version}, "items": [object]}),
    )
}

/// The list request of `resource`, exactly.
fn list(resource: &str) -> Seen {
    let query =
        [("fieldSelector", format!("metadata.name={}", name_of(resource))), ("limit", "500".to_owned())];
    Seen { resource: resource.to_owned(), query: query.into_iter().map(|(k, v)| (k.to_owned(), v)).collect() }
}

/// The watch request of `resource` from `version`, exactly.
fn watch(resource: &str, version: u32) -> Seen {
    let query = [
        ("allowWatchBookmarks", "true".to_owned()),
        ("fieldSelector", format!("metadata.name={}", name_of(resource))),
        ("resourceVersion", version.to_string()),
        ("timeoutSeconds", "290".to_owned()),
        ("watch", "true".to_owned()),
    ];
    Seen { resource: resource.to_owned(), query: query.into_iter().map(|(k, v)| (k.to_owned(), v)).collect() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_modified_events_relists_after_gone_and_never_fails_a_request() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let parts = Parts::new().await;
    let v1 = parts.rendered.clone();
    let (config, credentials) = documents(&v1);
    let api = FakeApi::start(configmap(10, &config), secret(11, &credentials), false).await;
    let source = KubeSource::new(api.client(), NAMESPACE, CONFIGMAP, SECRET);
    tokio::spawn(Source::Kubernetes(source).run(parts.publisher.clone()));
    let h = Arc::new(parts.serve().await);
    wait_for_models(&h, &DEMO, DEADLINE * 5).await;
    api.watching(CONFIGMAPS).await;
    api.watching(SECRETS).await;
    assert_eq!(api.requests(CONFIGMAPS), [list(CONFIGMAPS), watch(CONFIGMAPS, 10)]);
    assert_eq!(api.requests(SECRETS), [list(SECRETS), watch(SECRETS, 11)]);

    // A slow request on a model the next config drops, and a stream of requests on a model both
    // configs serve, run across the swap.
    let slow = {
        let h = h.clone();
        tokio::spawn(async move { h.chat(say("demo/nova-lite", "[[sim:latency=1500]]slow")).await })
    };
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let steady = {
        let (h, stop) = (h.clone(), stop.clone());
        tokio::spawn(async move {
            let mut statuses = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                statuses.push(h.chat(say("demo/claude-sonnet", "steady")).await.status);
            }
            statuses
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;

    // MODIFIED: the new config replaces demo/nova-lite by demo/llama.
    let v2 =
        without_model(&with_model(&v1, "demo/llama", "meta.llama3-1-70b-instruct-v1:0"), "demo/nova-lite");
    api.modify(CONFIGMAPS, configmap(12, &documents(&v2).0));
    wait_for_models(&h, &["demo/claude-sonnet", "demo/llama", "demo/team-profile"], DEADLINE).await;
    let r = h.chat(say("demo/llama", "new model")).await;
    assert_eq!(
        (r.status, r.json()["choices"][0]["message"]["content"].clone()),
        (StatusCode::OK, json!("Simulated reply to: new model"))
    );
    assert_eq!(h.chat(say("demo/nova-lite", "gone")).await.status, StatusCode::NOT_FOUND);
    let slow = slow.await.unwrap();
    assert_eq!(slow.status, StatusCode::OK, "the request in flight during the swap failed: {}", slow.text());
    assert_eq!(slow.json()["choices"][0]["message"]["content"], "Simulated reply to: slow");
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let statuses = steady.await.unwrap();
    assert!(!statuses.is_empty() && statuses.iter().all(|s| *s == StatusCode::OK), "{statuses:?}");

    // 410 Gone: the watcher relists and serves what the list returns (here the plain-JSON form).
    let v3 = with_model(&v2, "demo/titan", "amazon.titan-text-express-v1");
    api.expire(CONFIGMAPS, configmap_json(20, &documents(&v3).0));
    wait_for_models(&h, &["demo/claude-sonnet", "demo/llama", "demo/team-profile", "demo/titan"], DEADLINE)
        .await;
    api.watching(CONFIGMAPS).await;
    assert_eq!(
        api.requests(CONFIGMAPS),
        [list(CONFIGMAPS), watch(CONFIGMAPS, 10), list(CONFIGMAPS), watch(CONFIGMAPS, 20)]
    );

    // A dropped connection resumes the watch from the last resourceVersion, without a relist.
    api.disconnect(SECRETS);
    api.watching(SECRETS).await;
    assert_eq!(api.requests(SECRETS), [list(SECRETS), watch(SECRETS, 11), watch(SECRETS, 11)]);
    let mut v4 = v3.clone();
    v4.credentials.api_keys.clear();
    api.modify(SECRETS, secret(13, &documents(&v4).1));
    tokio::time::timeout(DEADLINE, async {
        while h.call(http::Method::GET, "/v1/models", Some(fixtures::KEY), None).await.status
            != StatusCode::UNAUTHORIZED
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the Secret's new caller keys were not served within 2 s");

    // An invalid document is counted and the last good config keeps serving.
    assert_eq!(reloads(&h, "error").await, 0);
    api.modify(SECRETS, secret(14, &credentials));
    wait_for_models(&h, &["demo/claude-sonnet", "demo/llama", "demo/team-profile", "demo/titan"], DEADLINE)
        .await;
    let mut orphan = v3.clone();
    orphan.config.models.get_mut("demo/titan").unwrap().account = "nobody".into();
    let mut keyless = configmap_json(23, "{}");
    keyless["data"] = json!({"config.yaml": "version: 1"});
    let mut not_gzip = configmap(24, "{}");
    not_gzip["binaryData"]["config.json.gz"] = json!(base64::engine::general_purpose::STANDARD.encode("{}"));
    let mut both = configmap(25, &documents(&v3).0);
    both["data"] = json!({"config.json": documents(&v3).0});
    let invalid = [
        configmap(21, "{\"version\": 1, \"accounts\": {"),
        configmap(22, &documents(&orphan).0),
        keyless,
        not_gzip,
        both,
    ];
    for (i, object) in invalid.into_iter().enumerate() {
        api.modify(CONFIGMAPS, object);
        tokio::time::timeout(DEADLINE, async {
            while reloads(&h, "error").await < i as u64 + 1 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("the invalid config was not reported");
        assert_eq!(models(&h).await, ["demo/claude-sonnet", "demo/llama", "demo/team-profile", "demo/titan"]);
    }
    assert_eq!(reloads(&h, "error").await, 5);
    assert_eq!(reloads(&h, "success").await, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_the_config_dir_until_the_api_answers() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let parts = Parts::new().await;
    let v1 = parts.rendered.clone();
    let (config, credentials) = documents(&v1);
    let fallback = parts.dir.join("fallback");
    std::fs::create_dir(&fallback).unwrap();
    let offline = with_model(&v1, "demo/offline", "amazon.nova-micro-v1:0");
    let (offline_config, _) = documents(&offline);
    std::fs::write(fallback.join("config.json"), &offline_config).unwrap();
    std::fs::write(fallback.join("credentials.json"), &credentials).unwrap();
    let api = FakeApi::start(configmap(10, &config), secret(11, &credentials), true).await;
    let source = KubeSource::new(api.client(), NAMESPACE, CONFIGMAP, SECRET)
        .with_fallback(ConfigDir::new(&fallback, Duration::from_millis(50)));
    tokio::spawn(Source::Kubernetes(source).run(parts.publisher.clone()));
    let h = parts.serve().await;

    // The API fails: the mounted files are served.
    let mut offline_models: Vec<&str> = DEMO.to_vec();
    offline_models.push("demo/offline");
    offline_models.sort_unstable();
    wait_for_models(&h, &offline_models, DEADLINE * 5).await;
    assert_eq!(h.call(http::Method::GET, "/readyz", None, None).await.status, StatusCode::OK);

    // The API comes back: its config replaces the fallback, which is not read any more.
    api.set_failing(false);
    wait_for_models(&h, &DEMO, DEADLINE * 5).await;
    let later = with_model(&v1, "demo/stale", "amazon.nova-micro-v1:0");
    std::fs::write(fallback.join("config.json"), documents(&later).0).unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(models(&h).await, DEMO);
    assert!(api.requests(CONFIGMAPS).len() >= 3, "{:?}", api.requests(CONFIGMAPS));
}
