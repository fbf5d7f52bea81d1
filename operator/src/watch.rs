//! Shared caches of the watched kinds over a set of namespaces (one, a list, or all), and a
//! signal that fires on every change so the config is rendered again.
//!
//! kube-runtime's store swaps its whole content when a watch (re)lists, which would let the list
//! of one namespace wipe the objects of another. So every namespace's relist is turned into
//! applies plus deletes of what that namespace no longer holds, and readiness is tracked here.

use std::collections::HashSet;
use std::fmt::Debug;
use std::sync::Arc;

use futures_util::stream::{self, BoxStream};
use futures_util::{Stream, StreamExt};
use k8s_openapi::NamespaceResourceScope;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt, reflector::store::Writer};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::{Notify, watch};

/// Which namespaces the operator watches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every namespace (needs cluster-wide read access).
    All,
    /// These namespaces only.
    Namespaces(Vec<String>),
}

/// A cache of one kind: the store, the trigger stream controllers consume, and readiness.
pub struct Cache<K: Resource<DynamicType = ()> + Clone + 'static> {
    /// The objects, shared with controllers and the renderer.
    pub store: Store<K>,
    /// Applied and deleted objects as they arrive; consume it (a controller does) or the store
    /// never fills.
    pub stream: BoxStream<'static, Result<K, watcher::Error>>,
    /// True once every namespace has been listed once.
    pub ready: watch::Receiver<bool>,
}

impl<K> Cache<K>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + Debug
        + DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    /// Watches `K` in `scope`; every event wakes `changed`.
    pub fn new(client: &Client, scope: &Scope, changed: Arc<Notify>) -> Self {
        let (store, writer) = reflector::store();
        let apis: Vec<(Api<K>, Option<String>)> = match scope {
            Scope::All => vec![(Api::all(client.clone()), None)],
            Scope::Namespaces(list) => {
                list.iter().map(|ns| (Api::namespaced(client.clone(), ns), Some(ns.clone()))).collect()
            }
        };
        let watches = apis.into_iter().map(|(api, ns)| (watcher(api), ns));
        Self::from_watches(watches, store, writer, changed)
    }

    /// Builds the cache from one event stream per namespace (`None`: all namespaces).
    pub fn from_watches<S>(
        watches: impl IntoIterator<Item = (S, Option<String>)>,
        store: Store<K>,
        writer: Writer<K>,
        changed: Arc<Notify>,
    ) -> Self
    where
        S: Stream<Item = Result<Event<K>, watcher::Error>> + Send + 'static,
    {
        let watches: Vec<(S, Option<String>)> = watches.into_iter().collect();
        let (ready_tx, ready) = watch::channel(watches.is_empty());
        let ready_tx = Arc::new(ready_tx);
        let pending = Arc::new(std::sync::atomic::AtomicUsize::new(watches.len()));
        let merged = stream::select_all(watches.into_iter().map(|(events, namespace)| {
            let relist = Relist::new(store.clone(), namespace, Arc::clone(&pending), Arc::clone(&ready_tx));
            events.flat_map(move |event| stream::iter(relist.map(event))).boxed()
        }));
        // The replay runs on the merged stream, so no other namespace's event lands inside it.
        let replay_store = store.clone();
        let stream = merged
            .flat_map(move |step| {
                stream::iter(match step {
                    Step::Pass(event) => vec![event],
                    Step::Replay => {
                        let objects = replay_store
                            .state()
                            .into_iter()
                            .map(|o| Ok(Event::InitApply(o.as_ref().clone())));
                        std::iter::once(Ok(Event::Init)).chain(objects).chain([Ok(Event::InitDone)]).collect()
                    }
                })
            })
            .inspect(move |_| changed.notify_one())
            .reflect(writer)
            .touched_objects()
            .boxed();
        Cache { store, stream, ready }
    }
}

/// The watch of one API with the default backoff.
fn watcher<K>(api: Api<K>) -> impl Stream<Item = Result<Event<K>, watcher::Error>> + Send
where
    K: Resource + Clone + Debug + DeserializeOwned + Send + 'static,
{
    watcher::watcher(api, watcher::Config::default()).default_backoff()
}

/// What the store should see for one watch event.
enum Step<K> {
    /// This event.
    Pass(Result<Event<K>, watcher::Error>),
    /// The whole store as one list, which makes it ready.
    Replay,
}

/// Turns one namespace's relist (Init, InitApply..., InitDone) into Apply and Delete events.
struct Relist<K: Resource<DynamicType = ()> + Clone + 'static> {
    store: Store<K>,
    namespace: Option<String>,
    seen: std::sync::Mutex<Option<HashSet<ObjectRef<K>>>>,
    listed_once: std::sync::atomic::AtomicBool,
    pending: Arc<std::sync::atomic::AtomicUsize>,
    ready: Arc<watch::Sender<bool>>,
}

impl<K: Resource<DynamicType = ()> + Clone + 'static> Relist<K> {
    fn new(
        store: Store<K>,
        namespace: Option<String>,
        pending: Arc<std::sync::atomic::AtomicUsize>,
        ready: Arc<watch::Sender<bool>>,
    ) -> Self {
        Relist {
            store,
            namespace,
            seen: std::sync::Mutex::new(None),
            listed_once: false.into(),
            pending,
            ready,
        }
    }

    /// The events the store should see for one watch event.
    fn map(&self, event: Result<Event<K>, watcher::Error>) -> Vec<Step<K>> {
        use std::sync::atomic::Ordering;
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        match event {
            Ok(Event::Init) => {
                *seen = Some(HashSet::new());
                Vec::new()
            }
            Ok(Event::InitApply(object)) => {
                if let Some(seen) = seen.as_mut() {
                    seen.insert(ObjectRef::from_obj(&object));
                }
                vec![Step::Pass(Ok(Event::Apply(object)))]
            }
            Ok(Event::InitDone) => {
                let listed = seen.take().unwrap_or_default();
                let mut steps: Vec<Step<K>> = self
                    .store
                    .state()
                    .into_iter()
                    .filter(|o| self.namespace.is_none() || o.namespace() == self.namespace)
                    .filter(|o| !listed.contains(&ObjectRef::from_obj(o.as_ref())))
                    .map(|o| Step::Pass(Ok(Event::Delete(o.as_ref().clone()))))
                    .collect();
                if !self.listed_once.swap(true, Ordering::SeqCst)
                    && self.pending.fetch_sub(1, Ordering::SeqCst) == 1
                {
                    // Every namespace is listed: replay the store as one list, so it (and the
                    // controllers waiting on it) becomes ready, with the same content.
                    steps.push(Step::Replay);
                    self.ready.send_replace(true);
                }
                steps
            }
            other => vec![Step::Pass(other)],
        }
    }
}

#[cfg(test)]
mod tests {
    use futures_util::stream;
    use k8s_openapi::api::core::v1::ConfigMap;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn object(ns: &str, name: &str) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                namespace: Some(ns.into()),
                name: Some(name.into()),
                ..ObjectMeta::default()
            },
            ..ConfigMap::default()
        }
    }

    fn names(store: &Store<ConfigMap>) -> Vec<String> {
        let mut names: Vec<String> =
            store.state().iter().map(|o| format!("{}/{}", o.namespace().unwrap(), o.name_any())).collect();
        names.sort();
        names
    }

    #[tokio::test]
    async fn a_relist_of_one_namespace_keeps_the_others_and_drops_its_own_gone_objects() {
        type Events = Vec<Result<Event<ConfigMap>, watcher::Error>>;
        let a: Events = vec![
            Ok(Event::Init),
            Ok(Event::InitApply(object("a", "one"))),
            Ok(Event::InitApply(object("a", "two"))),
            Ok(Event::InitDone),
        ];
        let b: Events = vec![
            Ok(Event::Init),
            Ok(Event::InitApply(object("b", "three"))),
            Ok(Event::InitDone),
            // The watch of b restarts and lists again: "three" is gone, "four" is new.
            Ok(Event::Init),
            Ok(Event::InitApply(object("b", "four"))),
            Ok(Event::InitDone),
        ];
        let (store, writer) = reflector::store();
        let changed = Arc::new(Notify::new());
        let mut cache = Cache::from_watches(
            [(stream::iter(a), Some("a".to_string())), (stream::iter(b), Some("b".to_string()))],
            store,
            writer,
            Arc::clone(&changed),
        );
        assert!(!*cache.ready.borrow());
        let mut touched = Vec::new();
        while let Some(object) = cache.stream.next().await {
            touched.push(object.unwrap().name_any());
        }
        assert_eq!(names(&cache.store), ["a/one", "a/two", "b/four"]);
        assert!(*cache.ready.borrow(), "ready once every namespace was listed");
        tokio::time::timeout(std::time::Duration::from_millis(50), cache.store.wait_until_ready())
            .await
            .expect("controllers wait for the store to be ready")
            .unwrap();
        touched.sort();
        touched.dedup();
        // Every object reached the controllers, the deleted one included.
        assert_eq!(touched, ["four", "one", "three", "two"]);
        // Every event woke the renderer (a permit is stored even with no waiter).
        tokio::time::timeout(std::time::Duration::from_millis(50), changed.notified()).await.unwrap();
    }
}
