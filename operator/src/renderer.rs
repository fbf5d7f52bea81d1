//! The render loop: whenever a watched object or an AWS fact changes, render everything into a
//! new [`Plan`], write the ConfigMap and Secret when their hashes changed, publish the plan to
//! the controllers and ask them to reconcile exactly the objects whose status it changes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use api::Manifests;
use api::crd::{API_KEY_SECRET_TYPE, AccessPolicy, BedrockAccount, BedrockModel};
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use tokio::sync::{mpsc, watch};

use crate::apply::{Applier, ApplyError};
use crate::context::Context;
use crate::controller::{Reconciled, Triggers, reads_secret};
use crate::plan::{Plan, describe, plan};

/// Bursts of changes within this window render once.
const DEBOUNCE: Duration = Duration::from_millis(200);
/// Render at least this often, so a lost update cannot stick.
const RESYNC: Duration = Duration::from_secs(300);
/// Pause before retrying a failed write of the config.
const RETRY: Duration = Duration::from_secs(5);

/// The stores the renderer reads.
#[derive(Clone)]
pub struct Stores {
    /// BedrockAccounts.
    pub accounts: Store<BedrockAccount>,
    /// BedrockModels.
    pub models: Store<BedrockModel>,
    /// AccessPolicies.
    pub policies: Store<AccessPolicy>,
    /// Secrets.
    pub secrets: Store<Secret>,
}

impl Stores {
    /// The watched objects as render input; only the Secrets render reads are copied.
    pub fn manifests(&self) -> Manifests {
        let accounts: Vec<BedrockAccount> =
            self.accounts.state().iter().map(|a| a.as_ref().clone()).collect();
        let secrets = self
            .secrets
            .state()
            .iter()
            .filter(|s| {
                s.type_.as_deref() == Some(API_KEY_SECRET_TYPE) || accounts.iter().any(|a| reads_secret(a, s))
            })
            .map(|s| s.as_ref().clone())
            .collect();
        Manifests {
            models: self.models.state().iter().map(|m| m.as_ref().clone()).collect(),
            policies: self.policies.state().iter().map(|p| p.as_ref().clone()).collect(),
            accounts,
            secrets,
            skipped: Vec::new(),
        }
    }
}

/// Senders of the controllers' trigger streams.
pub struct TriggerSenders {
    accounts: mpsc::UnboundedSender<ObjectRef<BedrockAccount>>,
    models: mpsc::UnboundedSender<ObjectRef<BedrockModel>>,
    policies: mpsc::UnboundedSender<ObjectRef<AccessPolicy>>,
}

/// A stream of what `rx` receives.
fn receiver_stream<T: Send + 'static>(
    rx: mpsc::UnboundedReceiver<T>,
) -> std::pin::Pin<Box<dyn futures_util::Stream<Item = T> + Send>> {
    Box::pin(futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) }))
}

/// Connected trigger senders and streams.
pub fn triggers() -> (TriggerSenders, Triggers) {
    let (accounts, accounts_rx) = mpsc::unbounded_channel();
    let (models, models_rx) = mpsc::unbounded_channel();
    let (policies, policies_rx) = mpsc::unbounded_channel();
    let streams = Triggers {
        accounts: receiver_stream(accounts_rx),
        models: receiver_stream(models_rx),
        policies: receiver_stream(policies_rx),
    };
    (TriggerSenders { accounts, models, policies }, streams)
}

/// The objects of `store` whose desired status differs between `old` and `new`.
fn changed<K: Reconciled>(store: &Store<K>, old: &Plan, new: &Plan) -> Vec<ObjectRef<K>> {
    store
        .state()
        .iter()
        .filter(|o| K::desired(old, o) != K::desired(new, o))
        .map(|o| ObjectRef::from_obj(o.as_ref()))
        .collect()
}

/// Accounts whose AWS inputs (auth, secret, endpoints, models) differ between the plans.
fn inputs_changed(store: &Store<BedrockAccount>, old: &Plan, new: &Plan) -> Vec<ObjectRef<BedrockAccount>> {
    store
        .state()
        .iter()
        .filter(|a| {
            let name = a.name_any();
            old.account_input(&name).map(|i| i.fingerprint())
                != new.account_input(&name).map(|i| i.fingerprint())
        })
        .map(|a| ObjectRef::from_obj(a.as_ref()))
        .collect()
}

/// Renders, applies and publishes until the process ends.
pub async fn run(
    ctx: Arc<Context>,
    stores: Stores,
    mut ready: Vec<watch::Receiver<bool>>,
    plan_tx: watch::Sender<Arc<Plan>>,
    applier: Applier,
    senders: TriggerSenders,
) {
    for r in &mut ready {
        if r.wait_for(|ready| *ready).await.is_err() {
            return;
        }
    }
    tracing::info!("caches are filled; rendering");
    loop {
        let started = Instant::now();
        let manifests = stores.manifests();
        prune_facts(&ctx, &manifests);
        let next = Arc::new(plan(&manifests, &ctx.facts()));
        ctx.metrics.render_duration.observe(started.elapsed().as_secs_f64());
        ctx.metrics.problem_objects.set(next.problems.len() as i64);
        let sizes = [("json", next.stored_config.json_bytes), ("gzip", next.stored_config.gz.len())];
        for (encoding, bytes) in sizes {
            ctx.metrics.config_bytes.with_label_values(&[encoding]).set(bytes as i64);
        }
        let applied = applier.apply(&next).await;
        match &applied {
            Ok(applied) => {
                if applied.config {
                    ctx.metrics.applies.with_label_values(&["config"]).inc();
                }
                if applied.credentials {
                    ctx.metrics.applies.with_label_values(&["credentials"]).inc();
                }
                if applied.config || applied.credentials {
                    tracing::info!(
                        config_hash = %next.config_hash,
                        models = next.rendered.config.models.len(),
                        problems = next.problems.len(),
                        "applied the rendered config"
                    );
                }
                ctx.metrics.set_ready(true);
            }
            Err(e @ ApplyError::TooLarge(_)) => {
                tracing::error!(error = %e, "cannot write the rendered config; waiting for a change")
            }
            Err(e) => tracing::warn!(error = %e, "cannot write the rendered config; retrying"),
        }
        let old = plan_tx.send_replace(Arc::clone(&next));
        send_all(&senders.accounts, changed(&stores.accounts, &old, &next));
        send_all(&senders.accounts, inputs_changed(&stores.accounts, &old, &next));
        send_all(&senders.models, changed(&stores.models, &old, &next));
        send_all(&senders.policies, changed(&stores.policies, &old, &next));
        // Secrets have no status: a new problem with an API-key Secret becomes an event on it.
        for (secret, event) in secret_events(&stores.secrets, &old, &next) {
            if let Err(e) = ctx.recorder.publish(&event, &secret.object_ref(&())).await {
                tracing::warn!(secret = %secret.name_any(), error = %e, "cannot publish an event");
            }
        }
        // Too large stays too large until something changes; an API failure may pass.
        if let Err(ApplyError::Kube(_)) = applied {
            applier.forget().await;
            tokio::time::sleep(RETRY).await;
            continue;
        }
        tokio::select! {
            () = ctx.changed.notified() => {}
            () = tokio::time::sleep(RESYNC) => {}
        }
        tokio::time::sleep(DEBOUNCE).await;
    }
}

/// A Warning event for each Secret with problems in `new` it did not have in `old`.
fn secret_events(store: &Store<Secret>, old: &Plan, new: &Plan) -> Vec<(Arc<Secret>, Event)> {
    store
        .state()
        .into_iter()
        .filter_map(|secret| {
            let object = describe(secret.as_ref());
            let problems = new.problems_of(&object);
            if problems.is_empty() || old.problems_of(&object) == problems {
                return None;
            }
            let note = problems
                .iter()
                .map(|p| format!("{}: {} (fix: {})", p.field, p.message, p.fix))
                .collect::<Vec<_>>();
            let event = Event {
                type_: EventType::Warning,
                reason: "InvalidSecret".to_string(),
                note: Some(note.join("; ")),
                action: "Render".to_string(),
                secondary: None,
            };
            Some((secret, event))
        })
        .collect()
}

/// Queues every reference on `tx`.
fn send_all<K: kube::Resource<DynamicType = ()>>(
    tx: &mpsc::UnboundedSender<ObjectRef<K>>,
    refs: Vec<ObjectRef<K>>,
) {
    for r in refs {
        let _ = tx.send(r);
    }
}

/// Forgets the facts of accounts that no longer exist.
fn prune_facts(ctx: &Context, manifests: &Manifests) {
    let mut facts = ctx.facts.write().unwrap_or_else(|e| e.into_inner());
    facts.retain(|name, _| manifests.accounts.iter().any(|a| &a.name_any() == name));
}

#[cfg(test)]
mod tests {
    use api::crd::{AccessPolicy, BedrockAccount, BedrockModel};
    use kube::runtime::reflector;
    use kube::runtime::watcher::Event;

    use super::*;
    use crate::aws::facts::Facts;
    use crate::plan::tests::{BASE, facts_of, manifests, verified_facts};

    /// A store holding `objects`.
    fn store<K: kube::Resource<DynamicType = ()> + Clone + 'static>(objects: &[K]) -> Store<K> {
        let (reader, mut writer) = reflector::store();
        for o in objects {
            writer.apply_watcher_event(&Event::Apply(o.clone()));
        }
        reader
    }

    fn stores(m: &Manifests) -> Stores {
        let mut secrets = m.secrets.clone();
        let mut unrelated = secrets[0].clone();
        unrelated.metadata.name = Some("tls-cert".into());
        secrets.push(unrelated);
        Stores {
            accounts: store::<BedrockAccount>(&m.accounts),
            models: store::<BedrockModel>(&m.models),
            policies: store::<AccessPolicy>(&m.policies),
            secrets: store::<Secret>(&secrets),
        }
    }

    #[test]
    fn only_secrets_that_render_reads_are_copied() {
        let m = manifests(BASE);
        let copied = stores(&m).manifests();
        let names: Vec<String> = copied.secrets.iter().map(|s| s.name_any()).collect();
        assert_eq!(names, ["aws-keys"]);
        assert_eq!((copied.accounts.len(), copied.models.len(), copied.policies.len()), (1, 2, 1));
    }

    #[test]
    fn new_facts_requeue_exactly_the_objects_whose_status_they_change() {
        let m = manifests(BASE);
        let stores = stores(&m);
        let before = plan(&m, &Facts::default());
        let after = plan(&m, &facts_of("demo", verified_facts(&["us-east-1", "us-west-2"])));
        let accounts: Vec<String> =
            changed(&stores.accounts, &before, &after).iter().map(|r| r.name.clone()).collect();
        let mut models: Vec<String> =
            changed(&stores.models, &before, &after).iter().map(|r| r.name.clone()).collect();
        models.sort();
        assert_eq!(accounts, ["demo"]);
        assert_eq!(models, ["claude", "nova-lite"]);
        assert!(changed(&stores.policies, &before, &after).is_empty(), "served names did not change");
        assert!(inputs_changed(&stores.accounts, &before, &after).is_empty(), "same AWS inputs");

        let moved = manifests(&BASE.replace("region: us-west-2", "region: eu-west-1"));
        let moved = plan(&moved, &Facts::default());
        let refs = inputs_changed(&stores.accounts, &before, &moved);
        assert_eq!(
            refs.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
            ["demo"],
            "a new region to list"
        );
    }

    #[test]
    fn a_new_caller_key_secret_requeues_the_policy_that_names_its_user() {
        let m = manifests(BASE);
        let key = "---\napiVersion: v1\nkind: Secret\nmetadata: {name: carol, namespace: ai-gateway}\n\
                   type: bedrockgateway.io/api-key\nstringData: {key: sk-carol, user: carol@example.com}\n";
        let with_key = manifests(&format!("{BASE}{key}"));
        let stores = stores(&m);
        let (before, after) = (plan(&m, &Facts::default()), plan(&with_key, &Facts::default()));
        let policies: Vec<String> =
            changed(&stores.policies, &before, &after).iter().map(|r| r.name.clone()).collect();
        assert_eq!(policies, [m.policies[0].name_any()], "its SubjectsMatched changes");
        assert!(changed(&stores.models, &before, &after).is_empty(), "no model depends on a caller key");
        assert!(changed(&stores.accounts, &before, &after).is_empty());
    }

    #[test]
    fn a_broken_api_key_secret_gets_one_warning_event() {
        let key = "---\napiVersion: v1\nkind: Secret\nmetadata: {name: caller, namespace: ai-gateway}\n\
                   type: bedrockgateway.io/api-key\nstringData: {key: sk-1}\n";
        let m = manifests(&format!("{BASE}{key}"));
        let secrets = store::<Secret>(&m.secrets);
        let fine = plan(&manifests(BASE), &Facts::default());
        let broken = plan(&m, &Facts::default());
        let events = secret_events(&secrets, &fine, &broken);
        assert_eq!(events.len(), 1);
        let (secret, event) = &events[0];
        assert_eq!(
            (secret.name_any().as_str(), event.type_, event.reason.as_str()),
            ("caller", EventType::Warning, "InvalidSecret")
        );
        assert_eq!(
            event.note.as_deref(),
            Some(
                "data: Secret caller has no key user (fix: add user to Secret caller (under data or stringData))"
            )
        );
        assert!(secret_events(&secrets, &broken, &broken).is_empty(), "no repeat while nothing changes");
    }
}
