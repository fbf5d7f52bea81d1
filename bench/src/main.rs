//! `bgw-loadgen`: the load generator behind `bench/run`.
//!
//! hey and wrk report latency in steps of 100 us and know nothing of streams, so the benchmark's
//! latency, time-to-first-byte and held-stream numbers come from this small hyper 1 client. It
//! has three modes and prints one JSON object with the results:
//!
//! - closed loop (default): `--concurrency` workers send requests back to back for `--duration`
//!   seconds after `--warmup` seconds;
//! - fixed rate (`--rate R`): a request is started every 1/R seconds whatever the answers do, and
//!   latency counts from the scheduled start, so a stall is not hidden (no coordinated omission).
//!   The starts are paced by a dedicated OS thread (see [`pace`]) and a short yield loop on the
//!   runtime, not by tokio's timer, whose 1 ms granularity would dwarf the latencies measured;
//!   the pacing lag (scheduled start to the request body being written) is reported as
//!   `lag_*_us` so the harness error is visible;
//! - hold (`--hold S`): `--concurrency` streams are opened at once; when all have delivered their
//!   first bytes a line `{"event":"open",...}` is printed, the streams are held open for S seconds
//!   and then dropped.
//!
//! Time to first byte (`ttfb`) is the time until the first non-empty body frame: for an
//! event stream the first frame, for SSE the first chunk.

use std::convert::Infallible;
use std::num::NonZeroU64;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use http::{HeaderName, HeaderValue, Method, Request, Uri};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// Command line of the load generator.
#[derive(Parser, Debug, Clone)]
#[command(name = "bgw-loadgen", about = "HTTP load generator with microsecond latencies and stream timing")]
struct Args {
    /// URL to POST to.
    #[arg(long)]
    url: Uri,
    /// Request header `Name: value` (repeatable).
    #[arg(long = "header", short = 'H')]
    headers: Vec<String>,
    /// File whose contents are the request body.
    #[arg(long)]
    body_file: PathBuf,
    /// Workers (closed loop), most requests in flight (fixed rate) or streams (hold).
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Seconds measured.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds run before measuring (warms connection pools and caches).
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Requests per second (fixed-rate mode).
    #[arg(long)]
    rate: Option<f64>,
    /// Seconds to hold `--concurrency` streams open (hold mode).
    #[arg(long)]
    hold: Option<f64>,
    /// Runtime worker threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
}

type HttpClient = Client<HttpConnector, TimedBody>;

/// A request body that notes when the connection first polls it, which hyper does right before
/// writing the request out: the end of the pacing lag.
struct TimedBody {
    inner: Full<Bytes>,
    written: Option<Arc<OnceLock<Instant>>>,
}

impl Body for TimedBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        if let Some(written) = &this.written {
            written.get_or_init(Instant::now);
        }
        Pin::new(&mut this.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// What every request carries.
struct Target {
    url: Uri,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Bytes,
}

impl Target {
    /// The request; with `written`, the instant its body is first polled is stored there.
    fn request(&self, written: Option<Arc<OnceLock<Instant>>>) -> Request<TimedBody> {
        let mut req = Request::new(TimedBody { inner: Full::new(self.body.clone()), written });
        *req.method_mut() = Method::POST;
        *req.uri_mut() = self.url.clone();
        req.headers_mut().extend(self.headers.iter().cloned());
        req
    }
}

/// Timings of one successful request.
#[derive(Clone, Copy)]
struct Sample {
    ttfb: Duration,
    total: Duration,
    /// Fixed rate: scheduled start to the request being written.
    lag: Option<Duration>,
}

/// Everything recorded during the measured window.
#[derive(Default)]
struct Record {
    samples: Vec<Sample>,
    errors: usize,
    first_error: Option<String>,
}

impl Record {
    fn add(&mut self, result: Result<Sample, String>) {
        match result {
            Ok(s) => self.samples.push(s),
            Err(e) => {
                self.errors += 1;
                self.first_error.get_or_insert(e);
            }
        }
    }
}

/// Sends one request and reads the whole body (or, with `until`, stops reading at that instant).
async fn exchange(
    client: &HttpClient,
    target: &Target,
    start: Instant,
    opened: Option<&AtomicUsize>,
    until: Option<Instant>,
    written: Option<Arc<OnceLock<Instant>>>,
) -> Result<Sample, String> {
    let response =
        client.request(target.request(written.clone())).await.map_err(|e| format!("request: {e}"))?;
    let status = response.status();
    let mut body = response.into_body();
    let mut ttfb = None;
    loop {
        let frame = match until {
            Some(deadline) => match tokio::time::timeout_at(deadline, body.frame()).await {
                Ok(frame) => frame,
                Err(_) => break,
            },
            None => body.frame().await,
        };
        let Some(frame) = frame else { break };
        let frame = frame.map_err(|e| format!("body: {e}"))?;
        if ttfb.is_none() && frame.data_ref().is_some_and(|d| !d.is_empty()) {
            ttfb = Some(start.elapsed());
            if let Some(counter) = opened {
                counter.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
    if !status.is_success() {
        return Err(format!("status {status}"));
    }
    let total = start.elapsed();
    let lag = written.and_then(|w| w.get().map(|at| at.saturating_duration_since(start)));
    Ok(Sample { ttfb: ttfb.unwrap_or(total), total, lag })
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1].as_secs_f64() * 1e6
}

fn report(record: &Record, seconds: f64, extra: serde_json::Value) -> serde_json::Value {
    let mut total: Vec<Duration> = record.samples.iter().map(|s| s.total).collect();
    let mut ttfb: Vec<Duration> = record.samples.iter().map(|s| s.ttfb).collect();
    total.sort_unstable();
    ttfb.sort_unstable();
    let mut out = serde_json::json!({
        "requests": record.samples.len(),
        "errors": record.errors,
        "first_error": record.first_error,
        "seconds": seconds,
        "rps": record.samples.len() as f64 / seconds,
        "p50_us": percentile(&total, 50.0),
        "p90_us": percentile(&total, 90.0),
        "p99_us": percentile(&total, 99.0),
        "max_us": percentile(&total, 100.0),
        "ttfb_p50_us": percentile(&ttfb, 50.0),
        "ttfb_p99_us": percentile(&ttfb, 99.0),
    });
    let mut lag: Vec<Duration> = record.samples.iter().filter_map(|s| s.lag).collect();
    if let (Some(out), false) = (out.as_object_mut(), lag.is_empty()) {
        lag.sort_unstable();
        out.insert("lag_p50_us".into(), percentile(&lag, 50.0).into());
        out.insert("lag_p99_us".into(), percentile(&lag, 99.0).into());
        out.insert("lag_max_us".into(), percentile(&lag, 100.0).into());
    }
    if let (Some(out), serde_json::Value::Object(extra)) = (out.as_object_mut(), extra) {
        out.extend(extra);
    }
    out
}

/// Closed loop: each worker sends its next request when the last one is answered.
async fn closed_loop(client: HttpClient, target: Arc<Target>, args: &Args) -> serde_json::Value {
    let measure_from = Instant::now() + Duration::from_secs_f64(args.warmup);
    let end = measure_from + Duration::from_secs_f64(args.duration);
    let record = Arc::new(Mutex::new(Record::default()));
    let workers: Vec<_> = (0..args.concurrency)
        .map(|_| {
            let (client, target, record) = (client.clone(), target.clone(), record.clone());
            tokio::spawn(async move {
                let mut local = Record::default();
                loop {
                    let start = Instant::now();
                    if start >= end {
                        break;
                    }
                    let result = exchange(&client, &target, start, None, None, None).await;
                    if start >= measure_from && Instant::now() <= end {
                        local.add(result);
                    }
                }
                let mut shared = record.lock().await;
                shared.samples.extend(local.samples);
                shared.errors += local.errors;
                if shared.first_error.is_none() {
                    shared.first_error = local.first_error;
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.await;
    }
    let record = record.lock().await;
    report(&record, args.duration, serde_json::json!({"mode": "closed", "concurrency": args.concurrency}))
}

/// How long before a scheduled start the pacer hands it to the runtime. A kernel sleep on a VM
/// ends some 50 us late even with 1 ns timer slack, and waking a parked runtime worker takes as
/// long again: handed over this early, the task is already running when its instant comes.
const HANDOFF_AHEAD: Duration = Duration::from_micros(150);

/// Waits on the runtime until `at` without parking the worker: yielding lets other tasks and
/// I/O run meanwhile, and the worker stays awake, so the start is not late by a wakeup.
async fn start_at(at: Instant) {
    while Instant::now() < at {
        tokio::task::yield_now().await;
    }
}

/// The fixed-rate schedule, run on its own OS thread: sleeps until [`HANDOFF_AHEAD`] before each
/// scheduled start and hands it to the runtime as a task that starts the request at the instant
/// (skipped when `--concurrency` requests are already in flight).
/// Returns the spawned tasks and how many measured starts were skipped.
fn pace(
    runtime: tokio::runtime::Handle,
    client: HttpClient,
    target: Arc<Target>,
    record: Arc<std::sync::Mutex<Record>>,
    args: Args,
    rate: f64,
) -> (Vec<tokio::task::JoinHandle<()>>, usize) {
    // Tighter sleeps for this thread only (the default 50 us slack makes them end later still).
    let _ = rustix::thread::set_current_timer_slack(NonZeroU64::new(1));
    let period = Duration::from_secs_f64(1.0 / rate);
    let first = Instant::now() + period;
    let measure_from = first + Duration::from_secs_f64(args.warmup);
    let end = measure_from + Duration::from_secs_f64(args.duration);
    let in_flight = Arc::new(AtomicUsize::new(0));
    let (mut tasks, mut skipped) = (Vec::new(), 0usize);
    for n in 0u32.. {
        // Each start is computed from the first, so sleep errors never accumulate.
        let scheduled = first + period * n;
        if scheduled >= end {
            break;
        }
        if let Some(ahead) = scheduled.checked_duration_since(Instant::now() + HANDOFF_AHEAD) {
            std::thread::sleep(ahead);
        }
        let measured = scheduled >= measure_from;
        if in_flight.load(Ordering::SeqCst) >= args.concurrency {
            skipped += usize::from(measured);
            continue;
        }
        in_flight.fetch_add(1, Ordering::SeqCst);
        let (client, target, record, in_flight) =
            (client.clone(), target.clone(), record.clone(), in_flight.clone());
        tasks.push(runtime.spawn(async move {
            start_at(scheduled).await;
            let written = Arc::new(OnceLock::new());
            let result = exchange(&client, &target, scheduled, None, None, Some(written)).await;
            in_flight.fetch_sub(1, Ordering::SeqCst);
            if measured {
                record.lock().unwrap_or_else(|e| e.into_inner()).add(result);
            }
        }));
    }
    (tasks, skipped)
}

/// Fixed rate: starts are scheduled on a clock by [`pace`]; latency counts from the scheduled start.
async fn fixed_rate(
    client: HttpClient,
    target: Arc<Target>,
    args: &Args,
    rate: f64,
) -> Result<serde_json::Value, String> {
    let record = Arc::new(std::sync::Mutex::new(Record::default()));
    let (runtime, shared, schedule) = (tokio::runtime::Handle::current(), record.clone(), args.clone());
    // A blocking-pool thread is an OS thread of its own for as long as the schedule runs.
    let pacer = tokio::task::spawn_blocking(move || pace(runtime, client, target, shared, schedule, rate));
    let (tasks, skipped) = pacer.await.map_err(|e| format!("the pacer thread failed: {e}"))?;
    for t in tasks {
        let _ = t.await;
    }
    let record = std::mem::take(&mut *record.lock().unwrap_or_else(|e| e.into_inner()));
    Ok(report(
        &record,
        args.duration,
        serde_json::json!({"mode": "rate", "target_rps": rate, "skipped_over_concurrency": skipped}),
    ))
}

/// Hold: opens `concurrency` streams, announces when all are open, keeps them for `hold` seconds.
async fn hold(client: HttpClient, target: Arc<Target>, args: &Args, hold: f64) -> serde_json::Value {
    let opened = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let record = Arc::new(Mutex::new(Record::default()));
    let started = Instant::now();
    // Streams stop reading at this instant at the latest; normally they are aborted earlier.
    let deadline = started + Duration::from_secs_f64(args.duration + hold);
    let tasks: Vec<_> = (0..args.concurrency)
        .map(|_| {
            let (client, target, record, opened, failed) =
                (client.clone(), target.clone(), record.clone(), opened.clone(), failed.clone());
            tokio::spawn(async move {
                let result =
                    exchange(&client, &target, Instant::now(), Some(&opened), Some(deadline), None).await;
                if result.is_err() {
                    failed.fetch_add(1, Ordering::SeqCst);
                }
                record.lock().await.add(result);
            })
        })
        .collect();
    // Wait (at most --duration seconds) until every stream has sent bytes or failed.
    let open_by = started + Duration::from_secs_f64(args.duration);
    while opened.load(Ordering::SeqCst) + failed.load(Ordering::SeqCst) < args.concurrency
        && Instant::now() < open_by
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let open_seconds = started.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({"event": "open", "opened": opened.load(Ordering::SeqCst),
            "failed": failed.load(Ordering::SeqCst), "seconds": open_seconds})
    );
    tokio::time::sleep(Duration::from_secs_f64(hold)).await;
    let still_open = tasks.iter().filter(|t| !t.is_finished()).count();
    for t in &tasks {
        t.abort();
    }
    let record = record.lock().await;
    report(
        &record,
        open_seconds,
        serde_json::json!({"mode": "hold", "streams": args.concurrency,
            "opened": opened.load(Ordering::SeqCst), "still_open_at_end": still_open}),
    )
}

fn parse_header(line: &str) -> Result<(HeaderName, HeaderValue), String> {
    let (name, value) = line.split_once(':').ok_or_else(|| format!("header `{line}` needs `Name: value`"))?;
    let name = HeaderName::from_bytes(name.trim().as_bytes()).map_err(|e| format!("header name: {e}"))?;
    let value = HeaderValue::from_str(value.trim()).map_err(|e| format!("header value: {e}"))?;
    Ok((name, value))
}

/// The pooled keep-alive client every mode sends with.
fn client() -> HttpClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(usize::MAX)
        .pool_idle_timeout(Duration::from_secs(90))
        .build(connector)
}

fn main() -> Result<(), String> {
    let args = Args::parse();
    let body = std::fs::read(&args.body_file).map_err(|e| format!("{}: {e}", args.body_file.display()))?;
    let mut headers = args.headers.iter().map(|h| parse_header(h)).collect::<Result<Vec<_>, _>>()?;
    headers.push((http::header::CONTENT_TYPE, HeaderValue::from_static("application/json")));
    let target = Arc::new(Target { url: args.url.clone(), headers, body: body.into() });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let result = runtime.block_on(async {
        let client = client();
        match (args.rate, args.hold) {
            (Some(rate), _) => fixed_rate(client, target, &args, rate).await,
            (None, Some(seconds)) => Ok(hold(client, target, &args, seconds).await),
            (None, None) => Ok(closed_loop(client, target, &args).await),
        }
    })?;
    println!("{result}");
    // Held streams may still be open: exit without waiting for them.
    runtime.shutdown_background();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;

    /// A local HTTP/1.1 server answering every request `ok`; returns its URL and request count.
    async fn server() -> (Uri, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap()).parse().unwrap();
        let seen = Arc::new(AtomicUsize::new(0));
        let counter = seen.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let counter = counter.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |_req: Request<hyper::body::Incoming>| {
                        counter.fetch_add(1, Ordering::SeqCst);
                        async {
                            Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from_static(b"ok"))))
                        }
                    });
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
            }
        });
        (url, seen)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn fixed_rate_starts_every_scheduled_request_and_reports_the_pacing_lag() {
        let (url, seen) = server().await;
        let args = Args::parse_from([
            "bgw-loadgen",
            "--url",
            "http://unused/",
            "--body-file",
            "unused",
            "--rate",
            "100",
            "--warmup",
            "0.1",
            "--duration",
            "0.5",
            "--concurrency",
            "1000",
        ]);
        let target = Arc::new(Target { url, headers: Vec::new(), body: Bytes::from_static(b"{}") });
        let out = fixed_rate(client(), target, &args, 100.0).await.unwrap();
        // Starts every 10 ms: 10 in the warm-up, 50 measured, none skipped whatever the timing.
        assert_eq!(out["requests"], 50, "{out}");
        assert_eq!(out["errors"], 0, "{out}");
        assert_eq!(out["skipped_over_concurrency"], 0, "{out}");
        assert_eq!(seen.load(Ordering::SeqCst), 60);
        let (lag50, lag99) = (out["lag_p50_us"].as_f64().unwrap(), out["lag_p99_us"].as_f64().unwrap());
        assert!(lag50 >= 0.0 && lag99 >= lag50, "{out}");
        assert!(out["p50_us"].as_f64().unwrap() >= lag50, "latency counts from the scheduled start: {out}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn closed_loop_reports_no_pacing_lag() {
        let (url, _) = server().await;
        let args = Args::parse_from([
            "bgw-loadgen",
            "--url",
            "http://unused/",
            "--body-file",
            "unused",
            "--warmup",
            "0",
            "--duration",
            "0.2",
            "--concurrency",
            "2",
        ]);
        let target = Arc::new(Target { url, headers: Vec::new(), body: Bytes::from_static(b"{}") });
        let out = closed_loop(client(), target, &args).await;
        assert!(out["requests"].as_u64().unwrap() > 0, "{out}");
        assert!(out.get("lag_p50_us").is_none(), "{out}");
    }
}
