//! `bedrock-sim` binary: serves the simulator until SIGINT/SIGTERM.

use std::io::Write;
use std::net::SocketAddr;

use std::time::Duration;

use bedrock_sim::{
    BatchConfig, DEFAULT_BATCH_MIN_RECORDS, SimConfig, TEST_ACCESS_KEY_ID, TEST_BEARER_TOKEN,
    TEST_SECRET_ACCESS_KEY,
};
use clap::Parser;

/// Local stand-in for AWS bedrock-runtime (Converse, ConverseStream, InvokeModel).
#[derive(Parser, Debug)]
#[command(name = "bedrock-sim", version)]
struct Args {
    /// Address to listen on (port 0 picks a free port; the chosen address is printed).
    #[arg(long, default_value = "127.0.0.1:9090")]
    listen: SocketAddr,
    /// Accepted SigV4 access key id.
    #[arg(long, default_value = TEST_ACCESS_KEY_ID, requires = "secret_access_key")]
    access_key_id: String,
    /// Accepted SigV4 secret access key.
    #[arg(long, default_value = TEST_SECRET_ACCESS_KEY)]
    secret_access_key: String,
    /// Accepted Bedrock API key (repeatable).
    #[arg(long = "bearer-token", default_values_t = [TEST_BEARER_TOKEN.to_owned()])]
    bearer_tokens: Vec<String>,
    /// Do not record requests (for benchmarks).
    #[arg(long)]
    no_record: bool,
    /// Also accept the temporary credentials issued by the moto server at this URL (its STS).
    #[arg(long)]
    moto_url: Option<String>,
    /// S3 endpoint (e.g. moto_server) batch inference jobs read their input from and write their output to.
    #[arg(long)]
    s3_url: Option<String>,
    /// Milliseconds a batch job spends in each status (Submitted, Validating, Scheduled).
    #[arg(long, default_value_t = 100)]
    batch_step_ms: u64,
    /// Minimum records per batch job (AWS's default quota); a job with fewer fails validation.
    #[arg(long, default_value_t = DEFAULT_BATCH_MIN_RECORDS)]
    batch_min_records: u64,
    /// Milliseconds one hour of a batch job's timeoutDurationInHours lasts (an unfinished job expires after it).
    #[arg(long, default_value_t = 3_600_000)]
    batch_hour_ms: u64,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let config = SimConfig {
        credentials: vec![(args.access_key_id, args.secret_access_key)],
        bearer_tokens: args.bearer_tokens,
        record_requests: !args.no_record,
        moto_url: args.moto_url,
        batch: BatchConfig {
            s3_url: args.s3_url,
            step: Duration::from_millis(args.batch_step_ms),
            min_records: args.batch_min_records,
            hour: Duration::from_millis(args.batch_hour_ms),
        },
    };
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let handle = bedrock_sim::spawn(config, listener).await;
    println!("bedrock-sim listening on {}", handle.url());
    std::io::stdout().flush()?;
    wait_for_signal().await?;
    handle.shutdown();
    Ok(())
}

#[cfg(unix)]
async fn wait_for_signal() -> std::io::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r,
        _ = term.recv() => Ok(()),
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() -> std::io::Result<()> {
    tokio::signal::ctrl_c().await
}
