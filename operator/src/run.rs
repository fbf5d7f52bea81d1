//! `run`: the operator in a cluster: metrics and health endpoints, leader election, then the
//! caches, the render loop and the controllers until a signal or the loss of the Lease.

use std::net::SocketAddr;
use std::sync::Arc;

use api::crd::{AccessPolicy, BedrockAccount, BedrockModel};
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};

use crate::apply::Applier;
use crate::context::{Context, Settings};
use crate::leader::Elector;
use crate::metrics::Metrics;
use crate::plan::Plan;
use crate::renderer::{self, Stores};
use crate::watch::Cache;

/// Options of `run` beyond the [`Settings`].
#[derive(Clone, Debug)]
pub struct Options {
    /// The release, namespaces and refresh interval.
    pub settings: Settings,
    /// Address of `/metrics`, `/healthz` and `/readyz`.
    pub metrics_listen: SocketAddr,
    /// Hold the Lease `<release>-operator` before doing anything.
    pub leader_election: bool,
    /// Holder identity (the pod name).
    pub identity: String,
}

/// Runs the operator; the error says why it stopped.
pub async fn run(options: Options) -> Result<(), String> {
    let client =
        Client::try_default().await.map_err(|e| format!("cannot configure the Kubernetes client: {e}"))?;
    let metrics = Metrics::new();
    let listener = TcpListener::bind(options.metrics_listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", options.metrics_listen))?;
    tokio::spawn(metrics.clone().serve(listener));
    let settings = options.settings;
    let elector = Elector::new(
        client.clone(),
        &settings.namespace,
        &format!("{}-operator", settings.release),
        &options.identity,
    );
    if options.leader_election {
        // A standby replica is healthy and ready: it is waiting by design.
        metrics.set_ready(true);
        tracing::info!(identity = %options.identity, "waiting for the leader Lease");
        elector.acquire().await;
        metrics.set_ready(false);
        tracing::info!(identity = %options.identity, "became the leader");
    }
    metrics.leader.set(1);
    let work = operate(client, settings, metrics, options.identity);
    let lost = async {
        if options.leader_election {
            elector.hold().await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        () = work => Err("the controllers stopped".to_string()),
        () = lost => Err("lost the leader Lease; exiting so a new leader takes over".to_string()),
        () = shutdown_signal() => {
            if options.leader_election
                && let Err(e) = elector.release().await
            {
                tracing::warn!(error = %e, "cannot release the leader Lease; it expires on its own");
            }
            Ok(())
        }
    }
}

/// Caches, renderer and controllers, until they stop (they do not).
pub async fn operate(client: Client, settings: Settings, metrics: Metrics, identity: String) {
    let changed = Arc::new(Notify::new());
    let accounts = Cache::<BedrockAccount>::new(&client, &settings.scope, Arc::clone(&changed));
    let models = Cache::<BedrockModel>::new(&client, &settings.scope, Arc::clone(&changed));
    let policies = Cache::<AccessPolicy>::new(&client, &settings.scope, Arc::clone(&changed));
    let secrets = Cache::<Secret>::new(&client, &settings.scope, Arc::clone(&changed));
    let stores = Stores {
        accounts: accounts.store.clone(),
        models: models.store.clone(),
        policies: policies.store.clone(),
        secrets: secrets.store.clone(),
    };
    let ready =
        vec![accounts.ready.clone(), models.ready.clone(), policies.ready.clone(), secrets.ready.clone()];
    let (plan_tx, plan_rx) = watch::channel(Arc::new(Plan::default()));
    let applier = Applier::new(client.clone(), &settings.release, &settings.namespace);
    let ctx =
        Arc::new(Context::new(client, settings, plan_rx, metrics, Arc::clone(&changed), Some(identity)));
    let (senders, triggers) = renderer::triggers();
    let render = renderer::run(Arc::clone(&ctx), stores, ready, plan_tx, applier, senders);
    let controllers = crate::controller::run(ctx, accounts, models, policies, secrets, triggers);
    tokio::join!(render, controllers);
}

/// Resolves on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
