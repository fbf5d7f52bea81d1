//! `/v1/batches` on Bedrock batch inference (model invocation jobs).
//!
//! - `POST /v1/batches`: the caller's `purpose=batch` file is translated line by line into
//!   Bedrock records (`translate::batch_bedrock`), written to `<prefix>batch-input/<token>.jsonl`,
//!   counted against Bedrock's minimum ([`BatchSettings::min_records`], a 400 before any job
//!   exists), and submitted with CreateModelInvocationJob (the account's batch role, output to
//!   `<prefix>batch-output/`). The gateway's record of the batch (owner, input file, metadata) is
//!   `<prefix>batches/<job id>.json`, listed newest first through empty markers
//!   `<prefix>batch-index/<inverted creation time>-<job id>`; if anything fails once the job
//!   exists, the job is stopped and the marker, record and Bedrock input are removed. A copy of
//!   the input file (`batch-input/<token>.source.jsonl`, server-side) is what the results are
//!   later read against, so deleting the file or its expiry does not lose them.
//! - `GET /v1/batches/{id}`: GetModelInvocationJob mapped to OpenAI's status, with counts from
//!   `manifest.json.out`. The first read of a finished job translates Bedrock's output records
//!   into OpenAI output lines, stored as two real files (output and errors, expiring after
//!   `output_expires_after` when the batch has one), prices the usage at the model's batch price,
//!   charges it to the limits the owner's own calls of the model count against (once, whoever
//!   writes the results), and notes both in the record.
//! - `POST /v1/batches/{id}/cancel`: StopModelInvocationJob. `GET /v1/batches`: newest first,
//!   `limit` and `after`. `GET /v1/batches/{id}/output`: the output file's content.
//!
//! A caller sees only its own batches unless an AccessPolicy grants more (see [`crate::policy`]);
//! anything else is a 404.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use api::config::ModelKind;
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use http::{Method, Request, Response};
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

use super::files::{self, form_pairs, json, meta, new_token, store_of};
use super::{
    authorize, collect_limited, read_body, read_json, resource_segments, snapshot, unix_now, upstream_error,
};
use crate::auth::Subject;
use crate::bedrock::batch::{
    CreateJobRequest, CreateJobResponse, InputDataConfig, Job, JobStatus, Manifest, OutputDataConfig,
    OutputRecord, S3Input, S3Output,
};
use crate::body::ResponseBody;
use crate::error::ApiError;
use crate::openai::batches::{Batch, BatchList, LineChecker, batch_id, job_arn, parse_create_batch};
use crate::openai::files::{FileId, Purpose};
use crate::openai::parse::invalid;
use crate::request_body::RequestBody;
use crate::s3::{Store, Writer};
use crate::server::App;
use crate::snapshot::{AccountRoute, Snapshot};
use crate::translate::batch_bedrock::{
    BatchRecord, BatchResults, LineContext, OutputMeta, batch_object, input_record, invocation_type,
    output_line, unix_seconds,
};
use crate::upstream::{Target, encode_label};
use crate::usage::{LineTotals, Record};

/// Default and largest `limit` of a listing.
const DEFAULT_LIST: usize = 20;
const MAX_LIST: usize = 100;

/// Batch settings of the proxy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchSettings {
    /// Fewest requests a batch may have: Bedrock's per-model "Minimum number of records per
    /// batch inference job" quota (commonly 100).
    pub min_records: usize,
}

impl Default for BatchSettings {
    fn default() -> Self {
        BatchSettings { min_records: 100 }
    }
}

/// Answers every `/v1/batches` request.
pub async fn handle(app: &Arc<App>, req: Request<RequestBody>) -> Result<Response<ResponseBody>, ApiError> {
    let snapshot = snapshot(app)?;
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().trim_end_matches('/').to_owned();
    let segments = resource_segments(&parts.method, &path, "/v1/batches", &["cancel", "output"])?;
    let subject = app.auth.authenticate(&parts.headers, &snapshot).await?;
    match (&parts.method, segments.as_slice()) {
        (&Method::POST, []) => create(app, &snapshot, &subject, body).await,
        (&Method::GET, []) => list(app, &snapshot, &subject, parts.uri.query().unwrap_or_default()).await,
        (&Method::GET, [id]) => {
            let found = find(&snapshot, &subject, id).await?;
            Ok(json(&current(app, &snapshot, id, found).await?))
        }
        (&Method::POST, [id, "cancel"]) => cancel(app, &snapshot, &subject, id).await,
        (&Method::GET, [id, "output"]) => output(app, &snapshot, &subject, id).await,
        _ => Err(ApiError::method_not_allowed(format!("{} is not allowed on {path}.", parts.method))),
    }
}

/// A batch the caller may see: its record, account and store.
struct Found {
    record: BatchRecord,
    account: Arc<AccountRoute>,
    store: Store,
}

/// The accounts that serve batches (an S3 location and SigV4 credentials), by name.
fn batch_accounts(snapshot: &Snapshot) -> Vec<&String> {
    let mut names: Vec<&String> = snapshot
        .accounts
        .values()
        .filter(|a| a.account.batch.is_some() && a.signer.sigv4())
        .map(|a| &a.account.name)
        .collect();
    names.sort_unstable();
    names
}

/// The last segment of a job ARN.
fn job_id(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

/// The record of batch `id` (looked up in every account with a batch bucket); a 404 when there
/// is none or the caller may not see it.
async fn find(snapshot: &Snapshot, subject: &Subject, id: &str) -> Result<Found, ApiError> {
    let arn = job_arn(id)?;
    let missing = || {
        ApiError::not_found(format!("No batch found with id '{id}'."))
            .with_param("batch_id")
            .with_code("batch_not_found")
    };
    let names = batch_accounts(snapshot);
    for name in names {
        let (account, store) = store_of(snapshot, name)?;
        let Some(bytes) = store.get_bytes(&record_key(&store, &arn)).await? else {
            continue;
        };
        let record: BatchRecord = serde_json::from_slice(&bytes).map_err(|_| {
            ApiError::bad_gateway(format!("The gateway's record of batch {id} is unreadable."))
        })?;
        if record.job_arn != arn || record.account != account.account.name {
            continue;
        }
        if !snapshot.policies.sees_owner(subject, &record.owner) {
            return Err(missing());
        }
        return Ok(Found { record, account, store });
    }
    Err(missing())
}

/// A signed control-plane call of `account` for a batch of `model`; a Bedrock error becomes the
/// caller's error.
async fn control(
    app: &App,
    account: &AccountRoute,
    model: &str,
    method: Method,
    path: &str,
    body: Vec<u8>,
) -> Result<Bytes, ApiError> {
    let target = Target::at(&account.control, path, &account.account.default_region).ok_or_else(|| {
        ApiError::unavailable(format!(
            "The control-plane endpoint `{}` of account `{}` is not a URL.",
            account.control, account.account.name
        ))
    })?;
    let response =
        app.upstream.send(method, &target, &account.signer, body.into(), "application/json").await?;
    if !response.status().is_success() {
        return Err(upstream_error(&app.metrics, model, response).await);
    }
    collect_limited(response.into_body()).await
}

/// GetModelInvocationJob.
async fn get_job(app: &App, account: &AccountRoute, model: &str, arn: &str) -> Result<Job, ApiError> {
    let body = control(
        app,
        account,
        model,
        Method::GET,
        &format!("/model-invocation-job/{}", encode_label(arn)),
        Vec::new(),
    )
    .await?;
    read_json(model, &body)
}

/// StopModelInvocationJob.
async fn stop_job(app: &App, account: &AccountRoute, model: &str, arn: &str) -> Result<(), ApiError> {
    let path = format!("/model-invocation-job/{}/stop", encode_label(arn));
    control(app, account, model, Method::POST, &path, Vec::new()).await.map(drop)
}

/// The lines of an S3 object (without their line breaks), numbered from 1, read as they arrive.
struct Lines {
    body: ByteStream,
    chunk: Bytes,
    carry: Vec<u8>,
    number: usize,
    done: bool,
}

impl Lines {
    fn new(body: ByteStream) -> Self {
        Lines { body, chunk: Bytes::new(), carry: Vec::new(), number: 0, done: false }
    }

    /// The next line and its number; a line within one chunk is not copied.
    async fn next(&mut self) -> Result<Option<(usize, Bytes)>, ApiError> {
        loop {
            if let Some(end) = self.chunk.iter().position(|b| *b == b'\n') {
                let head = self.chunk.split_to(end + 1).slice(..end);
                self.number += 1;
                if self.carry.is_empty() {
                    return Ok(Some((self.number, head)));
                }
                self.carry.extend_from_slice(&head);
                return Ok(Some((self.number, Bytes::from(std::mem::take(&mut self.carry)))));
            }
            self.carry.extend_from_slice(&self.chunk);
            self.chunk = Bytes::new();
            if self.done {
                if self.carry.is_empty() {
                    return Ok(None);
                }
                self.number += 1;
                return Ok(Some((self.number, Bytes::from(std::mem::take(&mut self.carry)))));
            }
            match self.body.try_next().await {
                Ok(Some(chunk)) => self.chunk = chunk,
                Ok(None) => self.done = true,
                Err(_) => return Err(ApiError::bad_gateway("An S3 object ended before it was complete.")),
            }
        }
    }
}

/// The body of `key`, or a 404 saying the file is gone.
async fn object(store: &Store, key: &str, what: &str) -> Result<ByteStream, ApiError> {
    store.get(key).await?.ok_or_else(|| ApiError::not_found(format!("The {what} is no longer stored.")))
}

/// `POST /v1/batches`.
async fn create(
    app: &Arc<App>,
    snapshot: &Snapshot,
    subject: &Subject,
    body: RequestBody,
) -> Result<Response<ResponseBody>, ApiError> {
    let request = parse_create_batch(&read_body(app, body).await?)?;
    let output_expires_after = request
        .output_expires_after
        .as_ref()
        .map(|p| p.checked_seconds("output_expires_after"))
        .transpose()?;
    let stored = files::find(snapshot, subject, &request.input_file_id)
        .await
        .map_err(|e| e.with_param("input_file_id"))?;
    if stored.file.purpose != Purpose::Batch {
        return Err(invalid("input_file_id".into(), "the file's purpose is not `batch`"));
    }
    let info = &stored.info;
    let file_key = stored.key.clone();
    let model = info.metadata.get(meta::MODEL).cloned().unwrap_or_default();
    let file_endpoint = info.metadata.get(meta::ENDPOINT).cloned().unwrap_or_default();
    if file_endpoint != request.endpoint {
        return Err(invalid(
            "endpoint".into(),
            format!("`{}`, but the requests of the input file are for `{file_endpoint}`", request.endpoint),
        ));
    }
    let route = snapshot.routes.get(&model).ok_or_else(|| ApiError::model_not_found(&model))?;
    let kind = if request.endpoint == "/v1/embeddings" { ModelKind::Embedding } else { ModelKind::Chat };
    authorize(snapshot, subject, route, kind)?;
    let account_name = FileId::parse(&request.input_file_id)?.account;
    let (account, store) = store_of(snapshot, &account_name)?;
    let role_arn = crate::s3::batch_of(&account.account)?.role_arn.clone();
    let admission = app.usage.admit(subject, &snapshot.policies, &model).await?;
    drop(admission);

    // The Bedrock input, translated line by line and streamed to S3.
    let token = new_token();
    let input_key = store.key(&format!("batch-input/{token}.jsonl"));
    let mut writer = Writer::new(store.clone(), input_key.clone(), HashMap::new());
    let mut checker = LineChecker::default();
    let mut lines = Lines::new(object(&store, &file_key, "input file").await?);
    let translated = async {
        while let Some((_, raw)) = lines.next().await? {
            let Some(line) = checker.check(&raw).map_err(|e| e.to_api_error())? else { continue };
            let (mut record, _) = input_record(checker.lines(), &line, &route.model)?;
            record.push(b'\n');
            writer.write(&record).await?;
        }
        Ok::<_, ApiError>(())
    }
    .await;
    if let Err(e) = translated {
        writer.abort().await;
        return Err(e.with_param("input_file_id"));
    }
    let requests = checker.requests();
    let min = app.batch.min_records;
    if requests < min {
        writer.abort().await;
        return Err(ApiError::invalid_request(format!(
            "The input file has {requests} requests; Bedrock batch jobs take at least {min} (its \"Minimum number \
             of records per batch inference job\" quota). Send fewer requests through {} instead.",
            request.endpoint
        ))
        .with_param("input_file_id")
        .with_code("too_few_requests"));
    }
    writer.finish().await?;
    // The results are read against the input file: a copy keeps them readable however soon the
    // caller deletes the file or it expires.
    let source_key = store.key(&format!("batch-input/{token}.source.jsonl"));
    let copied = match store.copy(&file_key, &source_key).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(files::missing(&request.input_file_id).with_param("input_file_id")),
        Err(e) => Err(e),
    };
    if let Err(e) = copied {
        remove(&store, &[&input_key], "the input of a batch whose file went away").await;
        return Err(e);
    }

    let job_name = format!("bgw-{token}");
    let input_uri = store.uri(&format!("batch-input/{token}.jsonl"));
    let output_uri = store.uri("batch-output/");
    let create = CreateJobRequest {
        job_name: &job_name,
        role_arn: &role_arn,
        client_request_token: &job_name,
        model_id: &route.model.model_id,
        input_data_config: InputDataConfig {
            s3_input_data_config: S3Input { s3_input_format: "JSONL", s3_uri: &input_uri },
        },
        output_data_config: OutputDataConfig { s3_output_data_config: S3Output { s3_uri: &output_uri } },
        timeout_duration_in_hours: 24,
        model_invocation_type: invocation_type(route.model.kind),
    };
    let body = serde_json::to_vec(&create).expect("job request serializes");
    let created = match control(app, &account, &model, Method::POST, "/model-invocation-job", body).await {
        Ok(bytes) => read_json::<CreateJobResponse>(&model, &bytes),
        Err(e) => Err(e),
    };
    let arn = match created {
        Ok(created) => created.job_arn,
        Err(e) => {
            remove(&store, &[&input_key, &source_key], "the input of a batch Bedrock refused").await;
            return Err(e);
        }
    };
    let record = BatchRecord {
        job_arn: arn.clone(),
        account: account.account.name.clone(),
        owner: subject.user.clone(),
        owner_teams: subject.teams.clone(),
        owner_service_account: subject.service_account.clone(),
        output_expires_after,
        model: model.clone(),
        endpoint: request.endpoint.clone(),
        input_file_id: request.input_file_id.clone(),
        completion_window: request.completion_window.clone(),
        metadata: request.metadata.clone(),
        created_at: unix_now(),
        requests: requests as u64,
        input_key,
        source_key: Some(source_key.clone()),
        cancelling_at: None,
        results: None,
    };
    let id = batch_id(&arn);
    // An immutable marker whose key sorts the newest batch first (records are rewritten).
    let index =
        store.key(&format!("batch-index/{}-{}", token.split('-').next().unwrap_or_default(), job_id(&arn)));
    let finished = async {
        save(&store, &record).await?;
        store.put(&index, Bytes::new(), HashMap::new()).await?;
        let job = get_job(app, &account, &model, &arn).await?;
        Ok::<_, ApiError>(batch_object(id.clone(), &record, &job, None))
    }
    .await;
    match finished {
        Ok(batch) => Ok(json(&batch)),
        Err(e) => {
            // The caller got an error, so no batch exists for it: the job is stopped (no billed
            // orphan) and the gateway's traces of it go, marker first so no listing shows it.
            if let Err(stop) = stop_job(app, &account, &model, &arn).await {
                tracing::error!(job = %arn, error = %stop, "could not stop a batch job after a failure");
            }
            let saved = record_key(&store, &arn);
            remove(&store, &[&index, &saved, &record.input_key, &source_key], "a stopped batch's object")
                .await;
            Err(e)
        }
    }
}

/// Deletes `keys` after a failed creation; one that cannot be deleted (`what` it is) is logged and
/// left, as the caller's error matters more.
async fn remove(store: &Store, keys: &[&str], what: &str) {
    for key in keys {
        if let Err(cleanup) = store.delete(key).await {
            tracing::warn!(key, error = %cleanup, "could not delete {what}");
        }
    }
}

/// Key of the gateway's record of the job `arn`.
fn record_key(store: &Store, arn: &str) -> String {
    store.key(&format!("batches/{}.json", job_id(arn)))
}

/// Writes the record of a batch.
async fn save(store: &Store, record: &BatchRecord) -> Result<(), ApiError> {
    let key = record_key(store, &record.job_arn);
    store.put(&key, Bytes::from(serde_json::to_vec(record).expect("record serializes")), HashMap::new()).await
}

/// The batch as it is now; the first read of a finished job writes its results.
async fn current(app: &App, snapshot: &Snapshot, id: &str, found: Found) -> Result<Batch, ApiError> {
    let Found { mut record, account, store } = found;
    let job = get_job(app, &account, &record.model, &record.job_arn).await?;
    let out_dir = format!("batch-output/{}/", job_id(&record.job_arn));
    let mut manifest = None;
    if record.results.is_none() {
        manifest = store
            .get_bytes(&store.key(&format!("{out_dir}manifest.json.out")))
            .await?
            .and_then(|b| serde_json::from_slice::<Manifest>(&b).ok());
        if job.status.is_final()
            && let Some(results) = write_results(app, snapshot, id, &record, &job, &store, &out_dir).await?
        {
            record.results = Some(results);
            save(&store, &record).await?;
        }
    }
    Ok(batch_object(id.to_owned(), &record, &job, manifest.as_ref()))
}

/// Translates the output records of a finished job into the output and error files and prices
/// the usage; `None` when Bedrock wrote no output (a job that failed validation).
async fn write_results(
    app: &App,
    snapshot: &Snapshot,
    id: &str,
    record: &BatchRecord,
    job: &Job,
    store: &Store,
    out_dir: &str,
) -> Result<Option<BatchResults>, ApiError> {
    let input_name = record.input_key.rsplit('/').next().unwrap_or_default();
    let Some(outputs) = store.get(&store.key(&format!("{out_dir}{input_name}.out"))).await? else {
        return Ok(None);
    };
    let model = snapshot.routes.get(&record.model).map(|r| r.model.clone());
    let Some(model) = model else {
        return Err(ApiError::model_not_found(&record.model));
    };
    // What reading each answer needs, from the copy of the caller's input file (or, for a batch
    // recorded before copies were kept, the file itself).
    let source = match &record.source_key {
        Some(key) => key.clone(),
        None => store.key(&format!("files/{}", FileId::parse(&record.input_file_id)?.token)),
    };
    let mut contexts: Vec<Option<LineContext>> = Vec::with_capacity(record.requests as usize);
    let mut lines = Lines::new(object(store, &source, "batch's input file").await?);
    let mut checker = LineChecker::default();
    while let Some((_, raw)) = lines.next().await? {
        let line = checker.check(&raw).map_err(|e| e.to_api_error())?;
        let context = line.map(|line| input_record(checker.lines(), &line, &model)).transpose()?;
        contexts.push(context.map(|c| c.1));
    }
    // `contexts[n - 1]` belongs to line n (`None`: a blank line), as record ids are line numbers.
    let end = job.end_time.as_deref().and_then(unix_seconds).unwrap_or_else(unix_now);
    let jid = job_id(&record.job_arn).to_owned();
    let out_meta = OutputMeta { job_id: jid.clone(), model: record.model.clone(), created: end };
    let file = |suffix: &str, name: &str| {
        let token = format!("{:016x}-{jid}-{suffix}", u64::MAX - end.saturating_mul(1000));
        let mut metadata = HashMap::from([
            (meta::OWNER.to_owned(), record.owner.clone()),
            (
                meta::FILENAME.to_owned(),
                utf8_percent_encode(&format!("{id}_{name}.jsonl"), NON_ALPHANUMERIC).to_string(),
            ),
            (meta::PURPOSE.to_owned(), Purpose::BatchOutput.as_str().to_owned()),
            (meta::CREATED.to_owned(), end.to_string()),
            (meta::MODEL.to_owned(), record.model.clone()),
            (meta::ENDPOINT.to_owned(), record.endpoint.clone()),
        ]);
        // `output_expires_after` counts from the files' creation, the job's end.
        if let Some(seconds) = record.output_expires_after {
            metadata.insert(meta::EXPIRES.to_owned(), (end + seconds).to_string());
        }
        let fid = FileId { account: record.account.clone(), token: token.clone() }.encode();
        (fid, Writer::new(store.clone(), store.key(&format!("files/{token}")), metadata))
    };
    let (output_file_id, mut ok_writer) = file("output", "output");
    let (error_file_id, mut err_writer) = file("errors", "errors");
    let prices = app.usage.prices(&model);
    let mut totals = LineTotals::default();
    let (mut completed, mut failed) = (0u64, 0u64);
    let mut line_buf = Vec::new();
    let mut lines = Lines::new(outputs);
    let written = async {
        while let Some((_, raw)) = lines.next().await? {
            if raw.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let Ok(out) = serde_json::from_slice::<OutputRecord>(&raw) else {
                tracing::warn!(batch = id, "skipped an unreadable Bedrock output record");
                continue;
            };
            let Some(t) = output_line(out, &contexts, &out_meta) else { continue };
            line_buf.clear();
            serde_json::to_writer(&mut line_buf, &t.line).expect("output line serializes");
            line_buf.push(b'\n');
            totals.add(&t.tokens, prices.as_ref());
            if t.ok {
                completed += 1;
                ok_writer.write(&line_buf).await?;
            } else {
                failed += 1;
                err_writer.write(&line_buf).await?;
            }
        }
        Ok::<_, ApiError>(())
    }
    .await;
    if let Err(e) = written {
        ok_writer.abort().await;
        err_writer.abort().await;
        return Err(e);
    }
    ok_writer.finish().await?;
    let error_file_id = if failed > 0 {
        err_writer.finish().await?;
        Some(error_file_id)
    } else {
        err_writer.abort().await;
        None
    };
    let owner = Subject {
        user: record.owner.clone(),
        teams: record.owner_teams.clone(),
        service_account: record.owner_service_account.clone(),
    };
    // Charged to the limits the owner's synchronous calls of the model count against, at the
    // batch price (`batch: true`).
    let admission = app.usage.charge_to(&owner, &snapshot.policies, &record.model);
    let tokens = totals.tokens;
    let usage = Record {
        tokens,
        batch: true,
        cost_usd: prices.map(|_| totals.cost_usd),
        ..Record::new("batches", id, &owner, &model, Instant::now(), &admission)
    };
    // Two first retrieves (or two replicas) may both get here: only one bills the batch.
    if store.create_once(&store.key(&format!("batches/{jid}.billed"))).await? {
        app.usage.record(&usage);
    }
    Ok(Some(BatchResults {
        output_file_id,
        error_file_id,
        completed,
        failed,
        input_tokens: tokens.input + tokens.cache_read + tokens.cache_write,
        cached_tokens: tokens.cache_read,
        output_tokens: tokens.output,
    }))
}

/// `POST /v1/batches/{id}/cancel`.
async fn cancel(
    app: &Arc<App>,
    snapshot: &Snapshot,
    subject: &Subject,
    id: &str,
) -> Result<Response<ResponseBody>, ApiError> {
    let mut found = find(snapshot, subject, id).await?;
    let job = get_job(app, &found.account, &found.record.model, &found.record.job_arn).await?;
    if job.status.is_final() {
        return Err(ApiError::invalid_request(format!(
            "Cannot cancel a batch with status `{}`.",
            serde_json::to_value(crate::translate::batch_bedrock::openai_status(job.status))
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        ))
        .with_code("batch_not_cancellable"));
    }
    if job.status != JobStatus::Stopping {
        stop_job(app, &found.account, &found.record.model, &found.record.job_arn).await?;
    }
    if found.record.cancelling_at.is_none() {
        found.record.cancelling_at = Some(unix_now());
        save(&found.store, &found.record).await?;
    }
    Ok(json(&current(app, snapshot, id, found).await?))
}

/// `GET /v1/batches/{id}/output`: the output file's content once the batch is finished.
async fn output(
    app: &Arc<App>,
    snapshot: &Snapshot,
    subject: &Subject,
    id: &str,
) -> Result<Response<ResponseBody>, ApiError> {
    let found = find(snapshot, subject, id).await?;
    let batch = current(app, snapshot, id, found).await?;
    let Some(file_id) = batch.output_file_id else {
        return Err(ApiError::invalid_request(format!(
            "The batch {id} has no output yet (status `{}`).",
            serde_json::to_value(batch.status)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        ))
        .with_code("batch_not_finished"));
    };
    files::content(snapshot, subject, &file_id).await
}

/// `GET /v1/batches`: the caller's batches, newest first.
async fn list(
    app: &Arc<App>,
    snapshot: &Snapshot,
    subject: &Subject,
    query: &str,
) -> Result<Response<ResponseBody>, ApiError> {
    let mut limit = DEFAULT_LIST;
    let mut after = None;
    for (key, value) in form_pairs(query) {
        match key.as_str() {
            "limit" => {
                limit = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_LIST).contains(n))
                    .ok_or_else(|| invalid("limit".into(), format!("`{value}`; use 1 to {MAX_LIST}")))?;
            }
            "after" => after = Some(job_arn(&value).map_err(|_| invalid("after".into(), "not a batch id"))?),
            _ => {}
        }
    }
    let names = batch_accounts(snapshot);
    // Every batch's index key (inverted creation time, then job id), newest first.
    let mut keys = Vec::new();
    for name in names {
        let (account, store) = store_of(snapshot, name)?;
        let mut start: Option<String> = None;
        loop {
            let (page, truncated) = store.list("batch-index/", start.as_deref(), 1000).await?;
            start = page.last().map(|l| l.key.clone());
            for listed in page {
                let Some(marker) = listed.key.rsplit('/').next().map(str::to_owned) else { continue };
                let Some((_, job)) = marker.split_once('-') else { continue };
                let key = record_key(&store, job);
                keys.push((marker, key, account.clone(), store.clone()));
            }
            if !truncated || start.is_none() {
                break;
            }
        }
    }
    keys.sort_by(|a, b| a.0.cmp(&b.0));
    if let Some(after) = &after {
        let suffix = format!("-{}", job_id(after));
        if let Some(at) = keys.iter().position(|k| k.0.ends_with(&suffix)) {
            keys.drain(..=at);
        }
    }
    let mut data = Vec::new();
    let mut has_more = false;
    for (_, key, account, store) in keys {
        let Some(bytes) = store.get_bytes(&key).await? else { continue };
        let Ok(record) = serde_json::from_slice::<BatchRecord>(&bytes) else { continue };
        if !snapshot.policies.sees_owner(subject, &record.owner) {
            continue;
        }
        if data.len() == limit {
            has_more = true;
            break;
        }
        let id = batch_id(&record.job_arn);
        data.push(current(app, snapshot, &id, Found { record, account, store }).await?);
    }
    Ok(json(&BatchList::new(data, has_more)))
}
