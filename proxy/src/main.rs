//! `bedrock-gateway-proxy`: serves the OpenAI API on top of AWS Bedrock.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use proxy::auth::oidc::{OidcConfig, OidcVerifier, REFRESH_EVERY};
use proxy::auth::tokenreview::{TokenReviewConfig, TokenReviewer};
use proxy::config::{ConfigStore, ManifestDir};
use proxy::limits::Limiter;
use proxy::metrics::Metrics;
use proxy::server::{App, serve};
use proxy::snapshot::SimulatorOverride;
use proxy::usage::Recorder;
use tokio::net::TcpListener;

/// Command line of the proxy.
#[derive(Parser, Debug)]
#[command(name = "bedrock-gateway-proxy", version, about = "OpenAI API on top of AWS Bedrock")]
struct Cli {
    /// Folder of BedrockAccount, BedrockModel, AccessPolicy and Secret manifests, reloaded on change.
    #[arg(long, env = "BGW_MANIFESTS")]
    manifests: PathBuf,
    /// Address to serve the API on.
    #[arg(long, env = "BGW_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Serve every account from the built-in Bedrock simulator instead of AWS.
    #[arg(long)]
    simulator: bool,
    /// How often the manifests folder is checked for changes, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    reload_interval_ms: u64,
    /// Largest request body accepted, in bytes.
    #[arg(long, default_value_t = 32 * 1024 * 1024)]
    max_body_bytes: usize,
    /// Seconds open requests may take to finish after SIGTERM.
    #[arg(long, default_value_t = 30)]
    shutdown_grace_seconds: u64,
    /// Log format.
    #[arg(long, value_parser = ["text", "json"], default_value = "text")]
    log_format: String,
    /// Redis for usage limits shared by every replica (`redis://host:6379/0`); default: per process.
    #[arg(long, env = "BGW_REDIS_URL")]
    redis_url: Option<String>,
    /// Refuse requests with 503 while Redis is unreachable, instead of admitting them unlimited.
    #[arg(long)]
    limits_fail_closed: bool,
    /// Add a per-user label to the cost metric (one series per user: mind the cardinality).
    #[arg(long)]
    metrics_user_label: bool,
    /// Accept Kubernetes service-account tokens, checked with TokenReview (needs RBAC `create tokenreviews`).
    #[arg(long)]
    service_account_tokens: bool,
    /// Audience service-account tokens must be minted for.
    #[arg(long, default_value = "bedrock-gateway")]
    token_audience: String,
    /// API server for TokenReview; default the in-cluster one (with the mounted token and CA).
    #[arg(long, env = "BGW_KUBE_API_URL")]
    kube_api_url: Option<String>,
    /// The proxy's own token for TokenReview, with --kube-api-url.
    #[arg(long, default_value = "/var/run/secrets/kubernetes.io/serviceaccount/token")]
    kube_token_file: PathBuf,
    /// CA bundle of the API server, with --kube-api-url (default: public roots only).
    #[arg(long)]
    kube_ca_file: Option<PathBuf>,
    /// Accept OIDC JWTs from this issuer (exactly as in their `iss`); keys found by discovery.
    #[arg(long, env = "BGW_OIDC_ISSUER")]
    oidc_issuer: Option<String>,
    /// Audience OIDC tokens must carry.
    #[arg(long, env = "BGW_OIDC_AUDIENCE", default_value = "bedrock-gateway")]
    oidc_audience: String,
    /// Claim of OIDC tokens naming the user.
    #[arg(long, env = "BGW_OIDC_USER_CLAIM", default_value = "sub")]
    oidc_user_claim: String,
    /// Claim of OIDC tokens listing the user's teams.
    #[arg(long, env = "BGW_OIDC_TEAMS_CLAIM", default_value = "groups")]
    oidc_teams_claim: String,
    /// Extra CA bundle for the OIDC issuer's HTTPS endpoints.
    #[arg(long)]
    oidc_ca_file: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.log_format);
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("bedrock-gateway-proxy: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    let sim = if cli.simulator {
        let listener = TcpListener::bind("127.0.0.1:0").await.map_err(|e| format!("simulator bind: {e}"))?;
        let handle = bedrock_sim::spawn(
            bedrock_sim::SimConfig { record_requests: false, ..Default::default() },
            listener,
        )
        .await;
        tracing::info!(url = %handle.url(), "serving every account from the built-in Bedrock simulator");
        Some(handle)
    } else {
        None
    };
    let source = ManifestDir::new(&cli.manifests, sim.as_ref().map(|h| SimulatorOverride { url: h.url() }));
    let metrics = Metrics::with_user_label(cli.metrics_user_label);
    let limiter = match &cli.redis_url {
        Some(url) => Limiter::redis(url, !cli.limits_fail_closed)?,
        None => Limiter::local(),
    };
    let store = Arc::new(ConfigStore::default());
    match source.load(1) {
        Ok(snapshot) => {
            tracing::info!(models = snapshot.routes.len(), "config loaded");
            store.publish(snapshot);
            metrics.config_reloads.with_label_values(&["success"]).inc();
            metrics.config_generation.set(1);
        }
        // Start anyway and keep watching: /readyz stays 503 until the folder renders.
        Err(problems) => {
            tracing::error!(%problems, "config not loaded; /readyz answers 503 until the manifests are fixed");
            metrics.config_reloads.with_label_values(&["failure"]).inc();
        }
    }
    tokio::spawn(source.watch(store.clone(), metrics.clone(), Duration::from_millis(cli.reload_interval_ms)));
    let listener =
        TcpListener::bind(cli.listen).await.map_err(|e| format!("cannot listen on {}: {e}", cli.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!(%addr, "bedrock-gateway-proxy listening");
    println!("bedrock-gateway-proxy listening on http://{addr}");
    let mut app = App::new(store, metrics, cli.max_body_bytes);
    app.usage = Recorder::new(app.metrics.clone(), limiter);
    if cli.service_account_tokens {
        let config = match cli.kube_api_url {
            Some(api_url) => TokenReviewConfig {
                api_url,
                token_file: cli.kube_token_file,
                ca_file: cli.kube_ca_file,
                audience: cli.token_audience,
            },
            None => TokenReviewConfig::in_cluster(&cli.token_audience)
                .ok_or("--service-account-tokens outside a cluster needs --kube-api-url")?,
        };
        app.auth.token_review = Some(TokenReviewer::new(config)?);
    }
    if let Some(issuer) = cli.oidc_issuer {
        app.auth.oidc = Some(OidcVerifier::new(OidcConfig {
            issuer,
            audience: cli.oidc_audience,
            user_claim: cli.oidc_user_claim,
            teams_claim: cli.oidc_teams_claim,
            ca_file: cli.oidc_ca_file,
            min_refresh_interval: REFRESH_EVERY,
        })?);
    }
    let app = Arc::new(app);
    serve(listener, app, shutdown_signal(), Duration::from_secs(cli.shutdown_grace_seconds)).await;
    drop(sim);
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler installs");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutdown requested; draining");
}

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}
