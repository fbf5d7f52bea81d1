//! An in-memory API server for running the whole operator without a cluster: it lists and
//! watches the objects it holds (per namespace or across all of them) (watch events are pushed when a test changes an object), applies
//! server-side patches (status patches replace `.status`) and records every write.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::StreamExt;
use http::{Method, Request, Response};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// One write the operator made.
#[derive(Clone, Debug)]
pub struct Write {
    /// Path (no query).
    pub path: String,
    /// Request body.
    pub body: Value,
}

#[derive(Default)]
struct State {
    /// Objects by path (`/api/v1/namespaces/ns/secrets/name`).
    objects: BTreeMap<String, Value>,
    /// Open watches: collection path and the sender of its event lines.
    watches: Vec<(String, mpsc::UnboundedSender<Bytes>)>,
    writes: Vec<Write>,
    version: u64,
}

/// The fake; clones share state.
#[derive(Clone, Default)]
pub struct FakeApiServer(Arc<Mutex<State>>);

/// API path prefix and plural of a kind.
fn collection(kind: &str) -> (&'static str, &'static str) {
    match kind {
        "BedrockAccount" => ("/apis/bedrockgateway.io/v1alpha1", "bedrockaccounts"),
        "BedrockModel" => ("/apis/bedrockgateway.io/v1alpha1", "bedrockmodels"),
        "AccessPolicy" => ("/apis/bedrockgateway.io/v1alpha1", "accesspolicies"),
        "Secret" => ("/api/v1", "secrets"),
        "ConfigMap" => ("/api/v1", "configmaps"),
        other => panic!("the fake API server does not serve {other}"),
    }
}

/// The kinds the fake serves.
const KINDS: [&str; 5] = ["BedrockAccount", "BedrockModel", "AccessPolicy", "Secret", "ConfigMap"];

/// `(prefix, plural)` when `path` is the cluster-wide collection of a served kind.
fn cluster_wide(path: &str) -> Option<(&'static str, &'static str)> {
    KINDS.iter().map(|k| collection(k)).find(|(prefix, plural)| path == format!("{prefix}/{plural}"))
}

/// Path of an object.
pub fn path_of(kind: &str, ns: &str, name: &str) -> String {
    let (prefix, plural) = collection(kind);
    format!("{prefix}/namespaces/{ns}/{plural}/{name}")
}

impl FakeApiServer {
    /// A client talking to this server.
    pub fn client(&self) -> Client {
        let server = self.clone();
        let service = tower::service_fn(move |req: Request<Body>| {
            let server = server.clone();
            async move { Ok::<_, Infallible>(server.handle(req).await) }
        });
        Client::new(service, "default")
    }

    /// Creates or replaces an object (typed JSON with apiVersion and kind) and tells its watchers.
    pub fn put(&self, mut object: Value) {
        let kind = object["kind"].as_str().unwrap().to_string();
        let ns = object["metadata"]["namespace"].as_str().unwrap().to_string();
        let name = object["metadata"]["name"].as_str().unwrap().to_string();
        let path = path_of(&kind, &ns, &name);
        let mut state = self.0.lock().unwrap();
        state.version += 1;
        let version = state.version;
        object["metadata"]["resourceVersion"] = json!(version.to_string());
        if object["metadata"].get("generation").is_none() && kind != "Secret" {
            object["metadata"]["generation"] = json!(1);
        }
        if object["metadata"].get("uid").is_none() {
            object["metadata"]["uid"] = json!(format!("uid-{name}"));
        }
        let event_type = if state.objects.contains_key(&path) { "MODIFIED" } else { "ADDED" };
        state.objects.insert(path.clone(), object.clone());
        let event = Bytes::from(format!("{}\n", json!({"type": event_type, "object": object})));
        let watched = path.rsplit_once('/').unwrap().0.to_string();
        let (prefix, plural) = collection(&kind);
        let everywhere = format!("{prefix}/{plural}");
        state.watches.retain(|(collection, tx)| {
            (collection != &watched && collection != &everywhere) || tx.send(event.clone()).is_ok()
        });
    }

    /// The object at `path`.
    pub fn get(&self, path: &str) -> Option<Value> {
        self.0.lock().unwrap().objects.get(path).cloned()
    }

    /// Every write so far.
    pub fn writes(&self) -> Vec<Write> {
        self.0.lock().unwrap().writes.clone()
    }

    async fn handle(&self, req: Request<Body>) -> Response<UnsyncBoxBody<Bytes, Infallible>> {
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let query = req.uri().query().unwrap_or_default().to_string();
        let bytes = req.into_body().collect_bytes().await.unwrap_or_default();
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if method != Method::GET {
            self.0.lock().unwrap().writes.push(Write { path: path.clone(), body: body.clone() });
        }
        match method {
            Method::GET if query.contains("watch=true") => self.watch(path),
            Method::GET => {
                let state = self.0.lock().unwrap();
                if let Some(object) = state.objects.get(&path) {
                    return reply(200, object.clone());
                }
                let prefix = format!("{path}/");
                let in_collection = |p: &str| match cluster_wide(&path) {
                    // `{prefix}/namespaces/{ns}/{plural}/{name}` in any namespace.
                    Some((api, plural)) => {
                        p.strip_prefix(&format!("{api}/namespaces/")).is_some_and(|rest| {
                            let parts: Vec<&str> = rest.split('/').collect();
                            parts.len() == 3 && parts[1] == plural
                        })
                    }
                    None => p.starts_with(&prefix) && !p[prefix.len()..].contains('/'),
                };
                let items: Vec<Value> =
                    state.objects.iter().filter(|(p, _)| in_collection(p)).map(|(_, o)| o.clone()).collect();
                let segments = path.trim_start_matches('/').split('/').count();
                let is_collection = cluster_wide(&path).is_some()
                    || segments == if path.starts_with("/apis/") { 6 } else { 5 };
                if !is_collection {
                    return reply(404, not_found());
                }
                reply(
                    200,
                    json!({"metadata": {"resourceVersion": state.version.to_string()}, "items": items}),
                )
            }
            Method::PATCH => {
                let (object_path, status_only) = match path.strip_suffix("/status") {
                    Some(p) => (p.to_string(), true),
                    None => (path.clone(), false),
                };
                let mut object = match (self.get(&object_path), status_only) {
                    (Some(mut existing), true) => {
                        existing["status"] = body["status"].clone();
                        existing
                    }
                    (None, true) => return reply(404, not_found()),
                    (_, false) => body,
                };
                let served = matches!(
                    object["kind"].as_str(),
                    Some("BedrockAccount" | "BedrockModel" | "AccessPolicy" | "Secret" | "ConfigMap")
                );
                if served {
                    self.put(object.clone());
                    object = self.get(&object_path).unwrap();
                }
                reply(200, object)
            }
            Method::POST => reply(201, body),
            Method::DELETE => reply(404, not_found()),
            _ => reply(405, json!({})),
        }
    }

    /// A watch that stays open and carries the events [`FakeApiServer::put`] sends.
    fn watch(&self, collection: String) -> Response<UnsyncBoxBody<Bytes, Infallible>> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.0.lock().unwrap().watches.push((collection, tx));
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|line| (Ok::<_, Infallible>(Frame::data(line)), rx))
        });
        Response::builder().status(200).body(StreamBody::new(stream.boxed()).boxed_unsync()).unwrap()
    }
}

fn reply(status: u16, body: Value) -> Response<UnsyncBoxBody<Bytes, Infallible>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())).boxed_unsync())
        .unwrap()
}

fn not_found() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "reason": "NotFound", "code": 404})
}
