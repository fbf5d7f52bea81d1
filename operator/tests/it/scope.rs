//! The namespace set (`--namespace`, `--watch-namespaces a,b`, `--all-namespaces`): which
//! namespaces' objects the caches hold, from the first list and from later watch events.

use std::sync::Arc;
use std::time::Duration;

use api::crd::BedrockModel;
use futures_util::StreamExt;
use kube::ResourceExt;
use operator::watch::{Cache, Scope};
use serde_json::json;
use tokio::sync::Notify;

use crate::fake_apiserver::FakeApiServer;

/// A BedrockModel `name` in namespace `ns`.
fn model(ns: &str, name: &str) -> serde_json::Value {
    json!({
        "apiVersion": "bedrockgateway.io/v1alpha1", "kind": "BedrockModel",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"accountRef": "demo", "modelId": "amazon.nova-lite-v1:0"},
    })
}

/// `namespace/name` of every cached model, sorted.
fn cached(cache: &Cache<BedrockModel>) -> Vec<String> {
    let mut names: Vec<String> =
        cache.store.state().iter().map(|m| format!("{}/{}", m.namespace().unwrap(), m.name_any())).collect();
    names.sort();
    names
}

/// Waits until the cache holds exactly `expected`.
async fn holds(cache: &Cache<BedrockModel>, expected: &[&str]) {
    let reached = tokio::time::timeout(Duration::from_secs(10), async {
        while cached(cache) != expected {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(reached.is_ok(), "expected {expected:?}, cached {:?}", cached(cache));
}

#[tokio::test]
async fn one_namespace_a_list_or_all_of_them() {
    let fake = FakeApiServer::default();
    for ns in ["team-a", "team-b", "team-c"] {
        fake.put(model(ns, "nova"));
    }
    let scopes = [
        (Scope::Namespaces(vec!["team-a".into()]), vec!["team-a/nova"], vec!["team-a/nova"]),
        (
            Scope::Namespaces(vec!["team-a".into(), "team-c".into()]),
            vec!["team-a/nova", "team-c/nova"],
            vec!["team-a/nova", "team-c/late", "team-c/nova"],
        ),
        (
            Scope::All,
            vec!["team-a/nova", "team-b/nova", "team-c/nova"],
            vec!["team-a/nova", "team-b/late", "team-b/nova", "team-c/late", "team-c/nova"],
        ),
    ];
    let mut caches = Vec::new();
    for (scope, listed, _) in &scopes {
        let mut cache = Cache::<BedrockModel>::new(&fake.client(), scope, Arc::new(Notify::new()));
        let stream = std::mem::replace(&mut cache.stream, futures_util::stream::empty().boxed());
        tokio::spawn(stream.for_each(|_| async {}));
        holds(&cache, listed).await;
        assert!(*cache.ready.borrow(), "{scope:?}: ready once listed");
        caches.push(cache);
    }
    // Objects created later arrive through the watches of the namespaces in the set only (the
    // widest set first: once it has both, the narrower watches have had their chance too).
    fake.put(model("team-b", "late"));
    fake.put(model("team-c", "late"));
    for ((scope, _, watched), cache) in scopes.iter().zip(&caches).rev() {
        holds(cache, watched).await;
        assert_eq!(&cached(cache), watched, "{scope:?}");
    }
}
