//! The three controllers (kube-runtime): a BedrockAccount reconcile refreshes what AWS says about
//! the account and its collaborator RBAC; every reconcile writes the status the latest plan
//! implies (server-side apply on `/status`) and an event when `Ready` changes.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::{Duration, Instant};

use api::crd::{
    AccessPolicy, AccountStatus, BedrockAccount, BedrockModel, ModelStatus, ObjectStatus, PolicyStatus,
};
use futures_util::{Stream, StreamExt};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::apply::FIELD_MANAGER;
use crate::context::Context;
use crate::plan::{Plan, describe};
use crate::watch::Cache;
use crate::{rbac, status};

/// Why a reconcile failed; it is retried.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server refused or could not be reached.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
}

/// A kind whose status the operator writes.
pub trait Reconciled:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + Debug
    + DeserializeOwned
    + Serialize
    + Send
    + Sync
    + 'static
{
    /// Its status type.
    type Status: ObjectStatus + Serialize + PartialEq + Debug;
    /// Label value of the `kind` metric label.
    const METRIC: &'static str;
    /// The status on the object now.
    fn current(&self) -> Option<&Self::Status>;
    /// The status `plan` implies, without transition times.
    fn desired(plan: &Plan, object: &Self) -> Option<Self::Status>;
}

impl Reconciled for BedrockAccount {
    type Status = AccountStatus;
    const METRIC: &'static str = "BedrockAccount";
    fn current(&self) -> Option<&AccountStatus> {
        self.status.as_ref()
    }
    fn desired(plan: &Plan, object: &Self) -> Option<AccountStatus> {
        status::account(plan, object)
    }
}

impl Reconciled for BedrockModel {
    type Status = ModelStatus;
    const METRIC: &'static str = "BedrockModel";
    fn current(&self) -> Option<&ModelStatus> {
        self.status.as_ref()
    }
    fn desired(plan: &Plan, object: &Self) -> Option<ModelStatus> {
        status::model(plan, object)
    }
}

impl Reconciled for AccessPolicy {
    type Status = PolicyStatus;
    const METRIC: &'static str = "AccessPolicy";
    fn current(&self) -> Option<&PolicyStatus> {
        self.status.as_ref()
    }
    fn desired(plan: &Plan, object: &Self) -> Option<PolicyStatus> {
        status::policy(plan, object)
    }
}

/// Writes the status `plan` implies when it differs from the object's, and an event when
/// `Ready` changed. Returns whether a patch was sent.
pub async fn write_status<K: Reconciled>(ctx: &Context, object: &K, plan: &Plan) -> Result<bool, Error> {
    let Some(mut desired) = K::desired(plan, object) else { return Ok(false) };
    let previous = object.current();
    let before = previous.map_or(&[][..], |s| s.conditions());
    let conditions = std::mem::take(desired.conditions_mut());
    *desired.conditions_mut() = status::stamp(conditions, before, object.meta().generation, Timestamp::now());
    if previous == Some(&desired) {
        return Ok(false);
    }
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &object.namespace().unwrap_or_default());
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": &desired,
    });
    api.patch_status(&object.name_any(), &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch))
        .await?;
    if let Some(event) = status::ready_event(status::ready(before), status::ready(desired.conditions())) {
        // An event that cannot be written must not undo the status that was.
        if let Err(e) = ctx.recorder.publish(&event, &object.object_ref(&())).await {
            tracing::warn!(object = %describe(object), error = %e, "cannot publish an event");
        }
    }
    Ok(true)
}

/// Gathers AWS facts for `account` when it is served and its facts are missing, stale or were
/// gathered with other inputs; wakes the renderer when they change.
pub async fn refresh_facts(ctx: &Context, plan: &Plan, account: &BedrockAccount) {
    let name = account.name_any();
    let served = plan.problems_of(&describe(account)).is_empty()
        && plan
            .rendered
            .config
            .accounts
            .get(&name)
            .is_some_and(|a| Some(&a.namespace) == account.namespace().as_ref());
    let Some(input) = plan.account_input(&name).filter(|_| served) else {
        return;
    };
    let fingerprint = input.fingerprint();
    let fresh = {
        let facts = ctx.facts.read().unwrap_or_else(|e| e.into_inner());
        facts
            .get(&name)
            .is_some_and(|(f, at)| f.fingerprint == fingerprint && at.elapsed() < ctx.settings.aws_refresh)
    };
    if fresh {
        return;
    }
    let gathered = Arc::new(ctx.aws.gather(&input).await);
    let mut facts = ctx.facts.write().unwrap_or_else(|e| e.into_inner());
    let changed = facts.get(&name).is_none_or(|(f, _)| **f != *gathered);
    facts.insert(name, (gathered, Instant::now()));
    drop(facts);
    if changed {
        ctx.changed.notify_one();
    }
}

/// Reconciles one BedrockAccount.
pub async fn reconcile_account(account: Arc<BedrockAccount>, ctx: Arc<Context>) -> Result<Action, Error> {
    measure(&ctx, BedrockAccount::METRIC, async {
        let plan = ctx.plan();
        refresh_facts(&ctx, &plan, &account).await;
        rbac::reconcile(&ctx.client, &account).await?;
        write_status(&ctx, account.as_ref(), &ctx.plan()).await?;
        Ok(Action::requeue(ctx.settings.aws_refresh))
    })
    .await
}

/// Reconciles one BedrockModel or AccessPolicy: its status only.
pub async fn reconcile_status<K: Reconciled>(object: Arc<K>, ctx: Arc<Context>) -> Result<Action, Error> {
    measure(&ctx, K::METRIC, async {
        write_status(&ctx, object.as_ref(), &ctx.plan()).await?;
        Ok(Action::await_change())
    })
    .await
}

/// Runs a reconcile, recording its duration and result.
async fn measure(
    ctx: &Context,
    kind: &str,
    work: impl std::future::Future<Output = Result<Action, Error>>,
) -> Result<Action, Error> {
    let started = Instant::now();
    let result = work.await;
    ctx.metrics.reconcile_duration.with_label_values(&[kind]).observe(started.elapsed().as_secs_f64());
    let outcome = if result.is_ok() { "ok" } else { "error" };
    ctx.metrics.reconciles.with_label_values(&[kind, outcome]).inc();
    result
}

/// Retries a failed reconcile after a pause.
fn error_policy<K: Reconciled>(object: Arc<K>, error: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(object = %describe(object.as_ref()), error = %error, "reconcile failed");
    ctx.metrics.reconcile_errors.with_label_values(&[K::METRIC]).inc();
    Action::requeue(Duration::from_secs(10))
}

/// True when `account` reads its credentials from `secret`.
pub fn reads_secret(account: &BedrockAccount, secret: &Secret) -> bool {
    let name = secret.name_any();
    let auth = &account.spec.auth;
    account.namespace() == secret.namespace()
        && (auth.access_key.as_ref().is_some_and(|k| k.secret_ref.name == name)
            || auth.api_key.as_ref().is_some_and(|k| k.secret_ref.name == name))
}

/// The accounts in `accounts` that read `secret`.
pub fn accounts_using(accounts: &Store<BedrockAccount>, secret: &Secret) -> Vec<ObjectRef<BedrockAccount>> {
    accounts
        .state()
        .iter()
        .filter(|a| reads_secret(a, secret))
        .map(|a| ObjectRef::from_obj(a.as_ref()))
        .collect()
}

/// Requests to reconcile objects whose status the latest plan changed, one stream per kind.
pub struct Triggers {
    /// BedrockAccounts.
    pub accounts: std::pin::Pin<Box<dyn Stream<Item = ObjectRef<BedrockAccount>> + Send>>,
    /// BedrockModels.
    pub models: std::pin::Pin<Box<dyn Stream<Item = ObjectRef<BedrockModel>> + Send>>,
    /// AccessPolicies.
    pub policies: std::pin::Pin<Box<dyn Stream<Item = ObjectRef<AccessPolicy>> + Send>>,
}

/// Runs the three controllers until they stop (they do not, short of a shutdown).
pub async fn run(
    ctx: Arc<Context>,
    accounts: Cache<BedrockAccount>,
    models: Cache<BedrockModel>,
    policies: Cache<AccessPolicy>,
    secrets: Cache<Secret>,
    triggers: Triggers,
) {
    let account_store = accounts.store.clone();
    let accounts = Controller::for_stream(accounts.stream, accounts.store)
        .watches_stream(secrets.stream, move |secret| accounts_using(&account_store, &secret))
        .reconcile_on(triggers.accounts)
        .run(reconcile_account, error_policy, Arc::clone(&ctx))
        .for_each(log_result);
    let models = Controller::for_stream(models.stream, models.store)
        .reconcile_on(triggers.models)
        .run(reconcile_status, error_policy, Arc::clone(&ctx))
        .for_each(log_result);
    let policies = Controller::for_stream(policies.stream, policies.store)
        .reconcile_on(triggers.policies)
        .run(reconcile_status, error_policy, ctx)
        .for_each(log_result);
    tokio::join!(accounts, models, policies);
}

/// Logs the outcome of one reconcile.
async fn log_result<T: Debug, E: std::fmt::Display>(result: Result<T, E>) {
    match result {
        Ok(object) => tracing::debug!(?object, "reconciled"),
        Err(e) => tracing::debug!(error = %e, "reconcile not run"),
    }
}
