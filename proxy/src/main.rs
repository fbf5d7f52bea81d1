//! `bedrock-gateway-proxy`: serves the OpenAI API on top of AWS Bedrock.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser};
use proxy::auth::oidc::{OidcConfig, OidcVerifier, REFRESH_EVERY};
use proxy::auth::tokenreview::{TokenReviewConfig, TokenReviewer};
use proxy::config::{ConfigDir, ConfigStore, KubeSource, ManifestDir, Publisher, Source};
use proxy::credentials::{CredentialMetrics, PodIdentityEnv, Registry};
use proxy::limits::Limiter;
use proxy::metrics::Metrics;
use proxy::otel::{TraceSettings, Traces};
use proxy::resilience::Policy;
use proxy::server::{App, serve, serve_ops, serve_tls};
use proxy::snapshot::SimulatorOverride;
use proxy::tls::ReloadingCert;
use proxy::upstream::Upstream;
use proxy::usage::Recorder;
use tokio::net::TcpListener;

/// Command line of the proxy.
#[derive(Parser, Debug)]
#[command(name = "bedrock-gateway-proxy", version, about = "OpenAI API on top of AWS Bedrock")]
struct Cli {
    #[command(flatten)]
    source: SourceArgs,
    /// Namespace of --kube-configmap and --kube-secret (default: the pod's own namespace).
    #[arg(long, env = "POD_NAMESPACE")]
    kube_namespace: Option<String>,
    /// Address to serve the API on.
    #[arg(long, env = "BGW_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Serve the API over TLS with this PEM certificate chain (with --tls-key); both files are
    /// read again every --reload-interval-ms and a changed pair that loads is served to new connections.
    #[arg(long, env = "BGW_TLS_CERT", value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, env = "BGW_TLS_KEY", value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Serve /metrics, /healthz and /readyz on this separate address; /metrics then leaves the API listener.
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<SocketAddr>,
    /// Serve every account from the built-in Bedrock simulator instead of AWS.
    #[arg(long)]
    simulator: bool,
    /// How often --manifests, --config-dir and the --tls-cert files are checked for changes, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    reload_interval_ms: u64,
    /// Largest request body accepted, in bytes. The default holds the most Bedrock takes in one
    /// message, base64-encoded: 20 images of 3.75 MB and 5 documents of 4.5 MB (130 MiB), plus text.
    #[arg(long, default_value_t = 136 * 1024 * 1024)]
    max_body_bytes: usize,
    #[command(flatten)]
    upstream: UpstreamArgs,
    /// Most API requests in flight at once (streams count until they end); more are answered
    /// 503 with `Retry-After`. 0: no cap.
    #[arg(long, env = "BGW_MAX_CONCURRENT_REQUESTS", default_value_t = 0)]
    max_concurrent_requests: usize,
    /// Milliseconds a client may take to send a request's headers, on the API and ops listeners
    /// (slowloris guard); also how long an idle HTTP/1.1 keep-alive connection stays open, and
    /// how long an HTTP/2 client may stay silent before a ping and then take to answer it, and
    /// the longest gap in a request body (408).
    #[arg(long, env = "BGW_HEADER_READ_TIMEOUT_MS", default_value_t = 30_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    header_read_timeout_ms: u64,
    /// Seconds open requests and streams may take to finish after SIGTERM; then the remaining
    /// connections are closed. The default lets a long stream (thousands of tokens) end.
    #[arg(long, default_value_t = 120)]
    shutdown_grace_seconds: u64,
    /// Serve the web playground at /playground (`--playground false` turns it off).
    #[arg(long, env = "BGW_PLAYGROUND", default_value_t = true, action = clap::ArgAction::Set)]
    playground: bool,
    /// Let chat requests make the gateway fetch images from loopback, link-local and private
    /// addresses (refused by default: SSRF guard).
    #[arg(long, env = "BGW_ALLOW_PRIVATE_IMAGE_URLS")]
    allow_private_image_urls: bool,
    /// Fewest requests a batch may have: Bedrock's "Minimum number of records per batch
    /// inference job" quota of the models served (smaller batches are refused with a 400).
    #[arg(long, env = "BGW_BATCH_MIN_RECORDS", default_value_t = 100)]
    batch_min_records: usize,
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
    /// Log chat prompts and completions (target bedrock_gateway::content); never logged without it.
    #[arg(long, env = "BGW_LOG_CONTENT")]
    log_content: bool,
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
    /// Export OpenTelemetry traces over OTLP/HTTP to OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, or
    /// OTEL_EXPORTER_OTLP_ENDPOINT + /v1/traces (default http://localhost:4318/v1/traces).
    #[arg(long, env = "BGW_OTEL_TRACES")]
    otel_traces: bool,
    /// Fraction of new traces sampled (0 to 1); a caller's `traceparent` sampled flag is followed.
    #[arg(long, env = "OTEL_TRACES_SAMPLER_ARG", default_value_t = 1.0)]
    otel_sample_ratio: f64,
}

/// Retries and timeouts of Bedrock calls (see `proxy::resilience`).
#[derive(Args, Debug)]
struct UpstreamArgs {
    /// Attempts per model before its fallbacks (or the error), the first included; 1 turns retries off.
    #[arg(long, env = "BGW_RETRY_MAX_ATTEMPTS", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=10))]
    retry_max_attempts: u32,
    /// Backoff before the first retry in milliseconds (full jitter, doubling per retry).
    #[arg(long, env = "BGW_RETRY_BACKOFF_BASE_MS", default_value_t = 100)]
    retry_backoff_base_ms: u64,
    /// Longest backoff between two attempts, in milliseconds.
    #[arg(long, env = "BGW_RETRY_BACKOFF_MAX_MS", default_value_t = 2000)]
    retry_backoff_max_ms: u64,
    /// No retry or fallback starts later than this after the first attempt, in milliseconds.
    #[arg(long, env = "BGW_RETRY_DEADLINE_MS", default_value_t = 20_000)]
    retry_deadline_ms: u64,
    /// Milliseconds to connect to Bedrock; a connect that takes longer is retried like a broken
    /// connection.
    #[arg(long, env = "BGW_CONNECT_TIMEOUT_MS", default_value_t = 10_000)]
    connect_timeout_ms: u64,
    /// Milliseconds Bedrock may take to start answering (the response headers, a whole answer
    /// without streaming; a stream's first frame), then the model's next fallback is tried (or
    /// 504); BedrockModel spec.timeouts.firstByteMs overrides it per model.
    #[arg(long, env = "BGW_FIRST_BYTE_TIMEOUT_MS", default_value_t = 120_000)]
    first_byte_timeout_ms: u64,
    /// Longest silence between two stream events from Bedrock, in milliseconds; the stream then
    /// ends with an error event.
    #[arg(long, env = "BGW_STREAM_IDLE_TIMEOUT_MS", default_value_t = 60_000)]
    stream_idle_timeout_ms: u64,
}

impl UpstreamArgs {
    fn policy(&self) -> Policy {
        Policy {
            max_attempts: self.retry_max_attempts,
            backoff_base: Duration::from_millis(self.retry_backoff_base_ms),
            backoff_max: Duration::from_millis(self.retry_backoff_max_ms),
            deadline: Duration::from_millis(self.retry_deadline_ms),
            first_byte_timeout: Duration::from_millis(self.first_byte_timeout_ms),
            idle_timeout: Duration::from_millis(self.stream_idle_timeout_ms),
        }
    }
}

/// Where the config comes from: exactly one of --manifests, --config-dir, or --kube-configmap
/// with --kube-secret (which may add --config-dir as the fallback while the API is unreachable).
#[derive(Args, Debug)]
#[group(required = true, multiple = true)]
struct SourceArgs {
    /// Folder of BedrockAccount, BedrockModel, AccessPolicy and Secret manifests, rendered here and reloaded on change.
    #[arg(long, env = "BGW_MANIFESTS", value_name = "DIR", conflicts_with_all = ["config_dir", "kube_configmap", "kube_secret"])]
    manifests: Option<PathBuf>,
    /// Folder holding the operator's config.json and credentials.json (e.g. the ConfigMap and Secret as one projected volume), reloaded on change.
    #[arg(long, value_name = "DIR")]
    config_dir: Option<PathBuf>,
    /// Watch this ConfigMap (key config.json) through the Kubernetes API.
    #[arg(long, value_name = "NAME", requires = "kube_secret")]
    kube_configmap: Option<String>,
    /// Watch this Secret (key credentials.json) through the Kubernetes API.
    #[arg(long, value_name = "NAME", requires = "kube_configmap")]
    kube_secret: Option<String>,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    init_logging(&cli.log_format);
    // One TLS provider for every client in the process (Bedrock upstream, Kubernetes API).
    let _ = rustls::crypto::ring::default_provider().install_default();
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
    let source = source(&cli).await?;
    let metrics = Metrics::with_user_label(cli.metrics_user_label);
    let credential_metrics = CredentialMetrics::new();
    metrics.register(Box::new(credential_metrics.clone())).map_err(|e| format!("metrics: {e}"))?;
    let credentials = Arc::new(Registry::new(PodIdentityEnv::from_process(), credential_metrics));
    let limiter = match &cli.redis_url {
        Some(url) => Limiter::redis(url, !cli.limits_fail_closed)?,
        None => Limiter::local(),
    };
    let store = Arc::new(ConfigStore::default());
    let publisher = Publisher::new(
        store.clone(),
        metrics.clone(),
        sim.as_ref().map(|h| SimulatorOverride { url: h.url() }),
        credentials,
    );
    // Until the first config loads, /readyz answers 503.
    tokio::spawn(source.run(publisher));
    let listener =
        TcpListener::bind(cli.listen).await.map_err(|e| format!("cannot listen on {}: {e}", cli.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let mut app = App::new(store, metrics, cli.max_body_bytes)
        .allowing_private_image_urls(cli.allow_private_image_urls)
        .serving_playground(cli.playground)
        .limiting_concurrency(cli.max_concurrent_requests);
    app.metrics_on_api = cli.metrics_listen.is_none();
    app.header_read_timeout = Duration::from_millis(cli.header_read_timeout_ms);
    app.upstream = Upstream::with_connect_timeout(Duration::from_millis(cli.upstream.connect_timeout_ms));
    app.resilience = cli.upstream.policy();
    app.batch.min_records = cli.batch_min_records;
    app.usage = Recorder::new(app.metrics.clone(), limiter).logging_content(cli.log_content);
    if cli.service_account_tokens {
        let config = match cli.kube_api_url.clone() {
            Some(api_url) => TokenReviewConfig {
                api_url,
                token_file: cli.kube_token_file.clone(),
                ca_file: cli.kube_ca_file.clone(),
                audience: cli.token_audience.clone(),
            },
            None => TokenReviewConfig::in_cluster(&cli.token_audience)
                .ok_or("--service-account-tokens outside a cluster needs --kube-api-url")?,
        };
        app.auth.token_review = Some(TokenReviewer::new(config)?);
    }
    if let Some(issuer) = cli.oidc_issuer.clone() {
        app.auth.oidc = Some(OidcVerifier::new(OidcConfig {
            issuer,
            audience: cli.oidc_audience.clone(),
            user_claim: cli.oidc_user_claim.clone(),
            teams_claim: cli.oidc_teams_claim.clone(),
            ca_file: cli.oidc_ca_file.clone(),
            min_refresh_interval: REFRESH_EVERY,
        })?);
    }
    if cli.otel_traces {
        let settings = TraceSettings::from_env(cli.otel_sample_ratio)?;
        app.traces = Some(Traces::start(&settings, &app.metrics)?);
    }
    let app = Arc::new(app);
    if let Some(ops) = cli.metrics_listen {
        let ops_listener =
            TcpListener::bind(ops).await.map_err(|e| format!("cannot listen on {ops}: {e}"))?;
        let ops = ops_listener.local_addr().map_err(|e| e.to_string())?;
        tracing::info!(%ops, "metrics and probes listening");
        println!("bedrock-gateway-proxy metrics on http://{ops}");
        tokio::spawn(serve_ops(ops_listener, app.clone()));
    }
    let grace = Duration::from_secs(cli.shutdown_grace_seconds);
    if let (Some(cert), Some(key)) = (&cli.tls_cert, &cli.tls_key) {
        let cert = Arc::new(ReloadingCert::load(cert, key, &app.metrics)?);
        let acceptor = cert.acceptor()?;
        tokio::spawn(cert.reload_every(Duration::from_millis(cli.reload_interval_ms)));
        tracing::info!(%addr, "bedrock-gateway-proxy listening (TLS)");
        println!("bedrock-gateway-proxy listening on https://{addr}");
        serve_tls(listener, app.clone(), acceptor, shutdown_signal(), grace).await;
    } else {
        tracing::info!(%addr, "bedrock-gateway-proxy listening");
        println!("bedrock-gateway-proxy listening on http://{addr}");
        serve(listener, app.clone(), shutdown_signal(), grace).await;
    }
    if let Some(traces) = &app.traces {
        traces.flush(Duration::from_secs(5)).await;
    }
    drop(sim);
    Ok(())
}

/// The config source the flags select.
async fn source(cli: &Cli) -> Result<Source, String> {
    let interval = Duration::from_millis(cli.reload_interval_ms);
    let args = &cli.source;
    let config_dir = args.config_dir.as_ref().map(|dir| ConfigDir::new(dir, interval));
    if let Some(dir) = &args.manifests {
        return Ok(Source::Manifests(ManifestDir::new(dir, interval)));
    }
    let (Some(configmap), Some(secret)) = (&args.kube_configmap, &args.kube_secret) else {
        return config_dir.map(Source::Files).ok_or_else(|| "no config source given".to_owned());
    };
    let config = match kube::Config::infer().await {
        Ok(config) => config,
        Err(e) => {
            let Some(dir) = config_dir else {
                return Err(format!(
                    "cannot find the Kubernetes API ({e}): run in a pod, set KUBECONFIG, or add --config-dir as a fallback"
                ));
            };
            tracing::warn!(error = %e, "cannot find the Kubernetes API; serving --config-dir only");
            return Ok(Source::Files(dir));
        }
    };
    let namespace = cli.kube_namespace.clone().unwrap_or_else(|| config.default_namespace.clone());
    let client =
        kube::Client::try_from(config).map_err(|e| format!("cannot build the Kubernetes client: {e}"))?;
    tracing::info!(%namespace, %configmap, %secret, "following the operator's config through the Kubernetes API");
    let kube = KubeSource::new(client, namespace, configmap, secret);
    Ok(Source::Kubernetes(match config_dir {
        Some(dir) => kube.with_fallback(dir),
        None => kube,
    }))
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
    // Colour codes only for a terminal: in a log file they are noise, and styling every field of
    // the per-request usage line was a fifth of a request's CPU.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder =
        tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}
