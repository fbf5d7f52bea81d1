//! `/v1/files`: batch input files (and the gateway's batch results) kept in each account's S3
//! batch bucket, under `<prefix>files/<token>`, with the owner and the file's facts as S3 user
//! metadata, so the gateway keeps no state of its own.
//!
//! - `POST /v1/files` (multipart, `purpose=batch`): the file streams to S3 (one PutObject up to
//!   [`crate::s3::PART_BYTES`], multipart beyond), checked line by line on the way; nothing is kept but the
//!   part being filled. The first request's `body.model` decides the account. Limits:
//!   [`MAX_FILE_BYTES`], [`MAX_REQUESTS`] requests, [`MAX_LINE_BYTES`] per line.
//! - `GET /v1/files` (`purpose`, `limit`, `after`), `GET /v1/files/{id}`,
//!   `GET /v1/files/{id}/content`, `DELETE /v1/files/{id}`: the caller's own files only, unless
//!   an AccessPolicy grants more (`batch-owner:`, see [`crate::policy`]); another caller's file is
//!   a 404, as if it did not exist.
//! - Expiry: `expires_after` (`anchor: created_at`, `seconds`) on upload, or a batch's
//!   `output_expires_after` for its output files, is kept as metadata and reported as
//!   `expires_at`. An expired file is a 404 like a deleted one and is deleted when touched: by a
//!   get, content or delete of it, or by a listing that comes across it. An upload without a
//!   policy expires after [`DEFAULT_EXPIRY_SECONDS`] (OpenAI's default for `purpose=batch`, the
//!   only purpose served); batch output files without `output_expires_after` stay until deleted.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use api::config::ModelKind;
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use bytes::{Bytes, BytesMut};
use futures_util::{StreamExt, TryStreamExt, stream};
use http::header::CONTENT_TYPE;
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyDataStream;
use percent_encoding::{NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

use super::{FAN_OUT, authorize, json_response, resource_segments, snapshot, unix_now, unreadable_body};
use crate::auth::Subject;
use crate::body::ResponseBody;
use crate::error::ApiError;
use crate::openai::batches::LineChecker;
use crate::openai::files::{DeletedFile, ExpiresAfter, FileId, FileList, FileObject, Purpose};
use crate::openai::images::multipart_error;
use crate::openai::parse::invalid;
use crate::request_body::{RequestBody, RequestBodyError};
use crate::s3::{Listed, ObjectInfo, Store, Writer};
use crate::server::App;
use crate::snapshot::{AccountRoute, Snapshot};

/// How long an upload without `expires_after` is kept: 30 days, as OpenAI keeps `purpose=batch`
/// files.
pub const DEFAULT_EXPIRY_SECONDS: u64 = 30 * 86_400;

/// Largest file accepted, in bytes (OpenAI's limit for batch input).
pub const MAX_FILE_BYTES: u64 = 200 * 1024 * 1024;
/// Most requests in one file (OpenAI's limit; Bedrock's per-file record quota is 50,000 too).
pub const MAX_REQUESTS: usize = 50_000;
/// Longest line, in bytes.
pub const MAX_LINE_BYTES: usize = 8 * 1024 * 1024;
/// Default and largest `limit` of a listing.
const MAX_LIST: usize = 10_000;

/// Metadata names (`x-amz-meta-*`).
pub(crate) mod meta {
    /// The caller that created the file.
    pub const OWNER: &str = "owner";
    /// Percent-encoded file name (S3 metadata is ASCII).
    pub const FILENAME: &str = "filename";
    /// `batch` or `batch_output`.
    pub const PURPOSE: &str = "purpose";
    /// Unix seconds of the upload.
    pub const CREATED: &str = "created-at";
    /// Served model every request names.
    pub const MODEL: &str = "model";
    /// Endpoint every request targets.
    pub const ENDPOINT: &str = "endpoint";
    /// Unix seconds after which the file is gone (files with an expiration policy only).
    pub const EXPIRES: &str = "expires-at";
}

/// The SDK HTTPS client every S3 call shares (pooled connections).
pub(crate) fn s3_http() -> &'static SharedHttpClient {
    static HTTP: LazyLock<SharedHttpClient> = LazyLock::new(crate::credentials::sdk_http_client);
    &HTTP
}

/// Answers every `/v1/files` request.
pub async fn handle(app: &Arc<App>, req: Request<RequestBody>) -> Result<Response<ResponseBody>, ApiError> {
    let snapshot = snapshot(app)?;
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().trim_end_matches('/').to_owned();
    let segments = resource_segments(&parts.method, &path, "/v1/files", &["content"])?;
    let subject = app.auth.authenticate(&parts.headers, &snapshot).await?;
    match (&parts.method, segments.as_slice()) {
        (&Method::POST, []) => {
            let content_type = parts.headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
            upload(&snapshot, &subject, content_type, body).await
        }
        (&Method::GET, []) => list(&snapshot, &subject, parts.uri.query().unwrap_or_default()).await,
        (&Method::GET, [id]) => Ok(json(&find(&snapshot, &subject, id).await?.file)),
        (&Method::DELETE, [id]) => {
            let stored = find(&snapshot, &subject, id).await?;
            stored.store.delete(&stored.key).await?;
            Ok(json(&DeletedFile { id: (*id).to_owned(), object: "file", deleted: true }))
        }
        (&Method::GET, [id, "content"]) => content(&snapshot, &subject, id).await,
        _ => Err(ApiError::method_not_allowed(format!("{} is not allowed on {path}.", parts.method))),
    }
}

/// A 200 JSON response of `value`.
pub(crate) fn json(value: &impl serde::Serialize) -> Response<ResponseBody> {
    json_response(StatusCode::OK, serde_json::to_vec(value).expect("response serializes"))
}

/// The account route of `name` and its store.
pub(crate) fn store_of(snapshot: &Snapshot, name: &str) -> Result<(Arc<AccountRoute>, Store), ApiError> {
    let account = snapshot
        .accounts
        .get(name)
        .ok_or_else(|| ApiError::not_found(format!("The account `{name}` is not served by this gateway.")))?;
    let store = Store::for_account(s3_http(), &account.account, &account.signer)?;
    Ok((account.clone(), store))
}

/// A new object token: the inverted time in milliseconds (newest sorts first), then randomness.
pub(crate) fn new_token() -> String {
    let millis = u64::try_from(
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis(),
    )
    .unwrap_or(u64::MAX);
    let random: String = std::iter::repeat_with(fastrand::lowercase).take(16).collect();
    format!("{:016x}-{random}", u64::MAX - millis)
}

/// The `file` object of a stored file.
fn file_object(id: String, info: &ObjectInfo) -> FileObject {
    let get = |k: &str| info.metadata.get(k).map(String::as_str).unwrap_or_default();
    let filename = percent_decode_str(get(meta::FILENAME)).decode_utf8_lossy().into_owned();
    let purpose = Purpose::parse(get(meta::PURPOSE)).unwrap_or(Purpose::Batch);
    FileObject {
        expires_at: expires_at(info),
        ..FileObject::new(id, info.size, get(meta::CREATED).parse().unwrap_or(0), filename, purpose)
    }
}

/// When a stored file expires, if it has an expiration policy.
fn expires_at(info: &ObjectInfo) -> Option<u64> {
    info.metadata.get(meta::EXPIRES).and_then(|v| v.parse().ok())
}

/// Whether a stored file has expired by `now` (Unix seconds).
fn expired(info: &ObjectInfo, now: u64) -> bool {
    expires_at(info).is_some_and(|at| at <= now)
}

/// Deletes an expired file found at `key`; a failure is only logged (the file is a 404 either
/// way, and the next touch tries again).
async fn remove_expired(store: &Store, key: &str) {
    if let Err(e) = store.delete(key).await {
        tracing::warn!(error = %e, "could not delete an expired file");
    }
}

/// A stored file the caller may see.
pub(crate) struct StoredFile {
    /// Its `file` object.
    pub file: FileObject,
    /// Size and metadata.
    pub info: ObjectInfo,
    /// The store holding it.
    pub store: Store,
    /// Its key there.
    pub key: String,
}

/// The 404 of a file that does not exist (or that the caller may not see, or that expired).
pub(crate) fn missing(id: &str) -> ApiError {
    ApiError::not_found(format!("No such File object: {id}"))
        .with_param("file_id")
        .with_code("file_not_found")
}

/// The caller's file `id`; a 404 for a file it may not see.
pub(crate) async fn find(snapshot: &Snapshot, subject: &Subject, id: &str) -> Result<StoredFile, ApiError> {
    let file = FileId::parse(id)?;
    let (_, store) =
        store_of(snapshot, &file.account).map_err(|e| if e.status == 404 { missing(id) } else { e })?;
    let key = store.key(&format!("files/{}", file.token));
    let info = store.head(&key).await?.ok_or_else(|| missing(id))?;
    if expired(&info, unix_now()) {
        remove_expired(&store, &key).await;
        return Err(missing(id));
    }
    let owner = info.metadata.get(meta::OWNER).map(String::as_str).unwrap_or_default();
    if !snapshot.policies.sees_owner(subject, owner) {
        return Err(missing(id));
    }
    Ok(StoredFile { file: file_object(id.to_owned(), &info), info, store, key })
}

/// `GET /v1/files/{id}/content`: the bytes as stored, streamed.
pub(crate) async fn content(
    snapshot: &Snapshot,
    subject: &Subject,
    id: &str,
) -> Result<Response<ResponseBody>, ApiError> {
    let StoredFile { file, store, key, .. } = find(snapshot, subject, id).await?;
    let body = store.get(&key).await?.ok_or_else(|| missing(id))?;
    let chunks = stream::unfold(body, |mut body| async move {
        match body.try_next().await {
            Ok(Some(bytes)) => Some((Ok(http_body::Frame::data(bytes)), body)),
            Ok(None) => None,
            Err(e) => {
                // Headers are out: ending the body early is all that is left; the length tells.
                tracing::warn!(error = %e, "S3 object body ended early");
                None
            }
        }
    });
    let mut response = Response::new(ResponseBody::Stream(Box::pin(http_body_util::StreamBody::new(chunks))));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, http::HeaderValue::from_static("application/jsonl"));
    headers.insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(file.bytes));
    Ok(response)
}

/// `GET /v1/files`: the files the caller may see in every account with a batch bucket, newest
/// first within an account. Each candidate costs a HEAD (owner and name are metadata).
async fn list(
    snapshot: &Snapshot,
    subject: &Subject,
    query: &str,
) -> Result<Response<ResponseBody>, ApiError> {
    let mut purpose = None;
    let mut limit = MAX_LIST;
    let mut after = None;
    for (key, value) in form_pairs(query) {
        match key.as_str() {
            "purpose" => {
                purpose = Some(Purpose::parse(&value).ok_or_else(|| {
                    invalid(
                        "purpose".into(),
                        format!("`{value}`; this gateway keeps `batch` and `batch_output` files"),
                    )
                })?);
            }
            "limit" => {
                limit = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_LIST).contains(n))
                    .ok_or_else(|| invalid("limit".into(), format!("`{value}`; use 1 to {MAX_LIST}")))?;
            }
            "after" => {
                after = Some(FileId::parse(&value).map_err(|_| invalid("after".into(), "not a file id"))?)
            }
            _ => {}
        }
    }
    let mut accounts: Vec<&str> = snapshot
        .accounts
        .values()
        .filter(|a| a.account.batch.is_some() && a.signer.sigv4())
        .map(|a| a.account.name.as_str())
        .collect();
    accounts.sort_unstable();
    if let Some(after) = &after {
        accounts.retain(|a| *a >= after.account.as_str());
    }
    let mut found = Vec::new();
    let mut has_more = false;
    let now = unix_now();
    'accounts: for name in accounts {
        let (_, store) = store_of(snapshot, name)?;
        let mut start =
            after.as_ref().filter(|a| a.account == name).map(|a| store.key(&format!("files/{}", a.token)));
        loop {
            let (page, truncated) = store.list("files/", start.as_deref(), 1000).await?;
            start = page.last().map(|l| l.key.clone());
            let heads: Vec<(Listed, Option<ObjectInfo>)> = stream::iter(page)
                .map(|l| async { store.head(&l.key).await.map(|info| (l, info)) })
                .buffered(FAN_OUT)
                .try_collect()
                .await?;
            for (listed, info) in heads {
                let Some(info) = info else { continue };
                if expired(&info, now) {
                    remove_expired(&store, &listed.key).await;
                    continue;
                }
                let owner = info.metadata.get(meta::OWNER).map(String::as_str).unwrap_or_default();
                let file_purpose = info.metadata.get(meta::PURPOSE).and_then(|p| Purpose::parse(p));
                if !snapshot.policies.sees_owner(subject, owner)
                    || purpose.is_some_and(|p| Some(p) != file_purpose)
                {
                    continue;
                }
                if found.len() == limit {
                    has_more = true;
                    break 'accounts;
                }
                let token = listed.key.rsplit('/').next().unwrap_or_default().to_owned();
                let id = FileId { account: name.to_owned(), token }.encode();
                found.push(file_object(id, &info));
            }
            if !truncated || start.is_none() {
                break;
            }
        }
    }
    Ok(json(&FileList::new(found, has_more)))
}

/// Decoded `key=value` pairs of a query string.
pub(crate) fn form_pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    query.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| percent_decode_str(&s.replace('+', " ")).decode_utf8_lossy().into_owned();
        (decode(k), decode(v))
    })
}

/// Where an upload goes, known once its first request is read.
struct Destination {
    account: String,
    store: Store,
    key: String,
    created: u64,
    expires_at: u64,
}

/// One upload in flight: the checker, the unfinished line, and the S3 writer once the first
/// request has told where the file goes (bytes before that wait in `pending`).
struct Streaming<'a> {
    snapshot: &'a Snapshot,
    subject: &'a Subject,
    filename: &'a str,
    /// `expires_after.seconds`, or [`DEFAULT_EXPIRY_SECONDS`].
    expires_after: u64,
    checker: LineChecker,
    carry: Vec<u8>,
    pending: BytesMut,
    destination: Option<Destination>,
    writer: Option<Writer>,
}

impl<'a> Streaming<'a> {
    fn new(snapshot: &'a Snapshot, subject: &'a Subject, filename: &'a str, expires_after: u64) -> Self {
        Streaming {
            snapshot,
            subject,
            filename,
            expires_after,
            checker: LineChecker::default(),
            carry: Vec::new(),
            pending: BytesMut::new(),
            destination: None,
            writer: None,
        }
    }

    /// Checks the lines `chunk` completes and passes it on to S3.
    async fn feed(&mut self, chunk: &Bytes) -> Result<(), ApiError> {
        let mut start = 0;
        for end in chunk.iter().enumerate().filter(|(_, b)| **b == b'\n').map(|(i, _)| i) {
            if self.carry.is_empty() {
                self.line(&chunk[start..end])?;
            } else {
                self.carry.extend_from_slice(&chunk[start..end]);
                let line = std::mem::take(&mut self.carry);
                self.line(&line)?;
            }
            start = end + 1;
        }
        self.carry.extend_from_slice(&chunk[start..]);
        if self.carry.len() > MAX_LINE_BYTES {
            return Err(ApiError::invalid_request(format!(
                "Line {} is longer than the gateway's limit of {MAX_LINE_BYTES} bytes.",
                self.checker.lines() + 1
            ))
            .with_param("file"));
        }
        match &mut self.writer {
            Some(writer) => {
                if !self.pending.is_empty() {
                    writer.write(&self.pending.split()).await?;
                }
                writer.write(chunk).await
            }
            None => {
                self.pending.extend_from_slice(chunk);
                Ok(())
            }
        }
    }

    /// Checks one complete line; the first request decides the destination.
    fn line(&mut self, raw: &[u8]) -> Result<(), ApiError> {
        let Some(line) = self.checker.check(raw).map_err(|e| e.to_api_error())? else { return Ok(()) };
        if self.checker.requests() > MAX_REQUESTS {
            return Err(ApiError::invalid_request(format!(
                "Line {}: the file has more than {MAX_REQUESTS} requests, the gateway's limit per file.",
                self.checker.lines()
            ))
            .with_param("file"));
        }
        if self.writer.is_none() {
            let number = self.checker.lines();
            let model = self.checker.model().unwrap_or_default().to_owned();
            let (destination, writer) = self.destination(number, &model, &line.url)?;
            self.destination = Some(destination);
            self.writer = Some(writer);
        }
        Ok(())
    }

    /// Where the file goes: the bucket of `model`'s account; the caller must be allowed `model`.
    fn destination(&self, number: usize, model: &str, url: &str) -> Result<(Destination, Writer), ApiError> {
        let at_line = |e: ApiError| ApiError { message: format!("Line {number}: {}", e.message), ..e };
        let route =
            self.snapshot.routes.get(model).ok_or_else(|| at_line(ApiError::model_not_found(model)))?;
        let kind = if url == "/v1/embeddings" { ModelKind::Embedding } else { ModelKind::Chat };
        authorize(self.snapshot, self.subject, route, kind).map_err(at_line)?;
        let (_, store) = store_of(self.snapshot, &route.model.account)?;
        let key = store.key(&format!("files/{}", new_token()));
        let created = unix_now();
        let expires_at = created + self.expires_after;
        let metadata = HashMap::from([
            (meta::OWNER.to_owned(), self.subject.user.clone()),
            (meta::FILENAME.to_owned(), utf8_percent_encode(self.filename, NON_ALPHANUMERIC).to_string()),
            (meta::PURPOSE.to_owned(), Purpose::Batch.as_str().to_owned()),
            (meta::CREATED.to_owned(), created.to_string()),
            (meta::MODEL.to_owned(), model.to_owned()),
            (meta::ENDPOINT.to_owned(), url.to_owned()),
            (meta::EXPIRES.to_owned(), expires_at.to_string()),
        ]);
        let writer = Writer::new(store.clone(), key.clone(), metadata);
        let destination =
            Destination { account: route.model.account.clone(), store, key, created, expires_at };
        Ok((destination, writer))
    }

    /// Checks the last line (one without a line break) and completes the object.
    async fn finish(mut self) -> Result<(u64, Destination), ApiError> {
        if !self.carry.is_empty() {
            let line = std::mem::take(&mut self.carry);
            self.line(&line)?;
        }
        let (Some(mut writer), Some(destination)) = (self.writer.take(), self.destination.take()) else {
            return Err(ApiError::invalid_request(
                "The file holds no requests; a batch file has one JSON request per line.",
            )
            .with_param("file"));
        };
        if !self.pending.is_empty() {
            let pending = self.pending.split();
            if let Err(e) = writer.write(&pending).await {
                writer.abort().await;
                return Err(e);
            }
        }
        Ok((writer.finish().await?, destination))
    }

    /// Drops what was uploaded of a refused file.
    async fn abort(mut self) {
        if let Some(writer) = self.writer.take() {
            writer.abort().await;
        }
    }
}

/// `POST /v1/files`: streams the `file` part to S3, checking each line; the first request's
/// model picks the account (the caller must be allowed to use it).
async fn upload(
    snapshot: &Snapshot,
    subject: &Subject,
    content_type: Option<&str>,
    body: RequestBody,
) -> Result<Response<ResponseBody>, ApiError> {
    let boundary = content_type.and_then(|ct| multer::parse_boundary(ct).ok()).ok_or_else(|| {
        ApiError::invalid_request(
            "/v1/files takes a multipart/form-data body (with a boundary), as the OpenAI SDKs send it.",
        )
    })?;
    let limits = multer::SizeLimit::new()
        .whole_stream(MAX_FILE_BYTES + 64 * 1024)
        .per_field(4096)
        .for_field("file", MAX_FILE_BYTES);
    let mut form = multer::Multipart::with_constraints(
        BodyDataStream::new(body),
        boundary,
        multer::Constraints::new().size_limit(limits),
    );
    let mut purpose: Option<String> = None;
    let mut expiry = ExpiryFields::default();
    let mut uploaded: Option<(String, u64, Destination)> = None;
    let result = async {
        while let Some(mut field) = form.next_field().await.map_err(upload_error)? {
            match field.name().unwrap_or_default() {
                "purpose" => purpose = Some(field.text().await.map_err(upload_error)?),
                "file" if uploaded.is_none() => {
                    if let Some(p) = purpose.as_deref().filter(|p| *p != "batch") {
                        return Err(unsupported_purpose(p));
                    }
                    let filename = field.file_name().unwrap_or("upload.jsonl").to_owned();
                    let expires_after = expiry.seconds()?.unwrap_or(DEFAULT_EXPIRY_SECONDS);
                    let mut streaming = Streaming::new(snapshot, subject, &filename, expires_after);
                    let fed = async {
                        while let Some(chunk) = field.chunk().await.map_err(upload_error)? {
                            streaming.feed(&chunk).await?;
                        }
                        Ok(())
                    }
                    .await;
                    if let Err(e) = fed {
                        streaming.abort().await;
                        return Err(e);
                    }
                    let (bytes, destination) = streaming.finish().await?;
                    uploaded = Some((filename, bytes, destination));
                }
                "file" => {
                    return Err(
                        ApiError::invalid_request("Send one `file` part per upload.").with_param("file")
                    );
                }
                // The object's metadata is written with its first bytes: the policy comes first.
                name @ ("expires_after[anchor]" | "expires_after[seconds]") if uploaded.is_some() => {
                    return Err(ApiError::invalid_request(format!(
                        "Send `{name}` before the `file` part: the gateway stores the file as it arrives."
                    ))
                    .with_param("expires_after"));
                }
                "expires_after[anchor]" => expiry.anchor = Some(field.text().await.map_err(multipart_error)?),
                "expires_after[seconds]" => {
                    expiry.seconds = Some(field.text().await.map_err(multipart_error)?)
                }
                other => {
                    return Err(ApiError::invalid_request(format!("Unknown multipart field `{other}`."))
                        .with_param(other.to_owned()));
                }
            }
        }
        Ok(())
    }
    .await;
    let written = uploaded.as_ref().map(|(_, _, d)| (&d.store, d.key.as_str()));
    let refused = match (&result, purpose.as_deref(), &uploaded) {
        (Err(e), _, _) => Some(e.clone()),
        (Ok(()), _, None) => {
            Some(ApiError::invalid_request("Missing required parameter: `file`.").with_param("file"))
        }
        (Ok(()), None, _) => {
            Some(ApiError::invalid_request("Missing required parameter: `purpose`.").with_param("purpose"))
        }
        (Ok(()), Some(p), _) if p != "batch" => Some(unsupported_purpose(p)),
        _ => None,
    };
    if let Some(error) = refused {
        if let Some((store, key)) = written {
            store.delete(key).await?;
        }
        return Err(error);
    }
    let (filename, bytes, destination) = uploaded.expect("checked above");
    let token = destination.key.rsplit('/').next().unwrap_or_default().to_owned();
    let id = FileId { account: destination.account, token }.encode();
    Ok(json(&FileObject {
        expires_at: Some(destination.expires_at),
        ..FileObject::new(id, bytes, destination.created, filename, Purpose::Batch)
    }))
}

/// The `expires_after[anchor]` and `expires_after[seconds]` parts of an upload (the form the
/// OpenAI SDKs send a nested object in).
#[derive(Default)]
struct ExpiryFields {
    anchor: Option<String>,
    seconds: Option<String>,
}

impl ExpiryFields {
    /// The checked `seconds` of the policy, `None` without one; a 400 naming the part at fault.
    fn seconds(&self) -> Result<Option<u64>, ApiError> {
        let required = |name: &str| {
            ApiError::invalid_request(format!("Missing required parameter: `expires_after.{name}`."))
                .with_param(format!("expires_after.{name}"))
        };
        match (&self.anchor, &self.seconds) {
            (None, None) => Ok(None),
            (None, Some(_)) => Err(required("anchor")),
            (Some(_), None) => Err(required("seconds")),
            (Some(anchor), Some(seconds)) => {
                let seconds = seconds.trim().parse().map_err(|_| {
                    invalid(
                        "expires_after.seconds".into(),
                        format!("`{seconds}`; it is a whole number of seconds"),
                    )
                })?;
                ExpiresAfter { anchor: anchor.clone(), seconds }.checked_seconds("expires_after").map(Some)
            }
        }
    }
}

/// The caller's error for an upload multer could not read: the request body's own error (a
/// 408 for a stalled upload) when that is the cause, else the multipart error.
fn upload_error(error: multer::Error) -> ApiError {
    if let multer::Error::StreamReadFailed(cause) = &error
        && let Some(body) = cause.downcast_ref::<RequestBodyError>()
    {
        return unreadable_body(body);
    }
    multipart_error(error)
}

fn unsupported_purpose(purpose: &str) -> ApiError {
    ApiError::invalid_request(format!(
        "Invalid value for `purpose`: `{purpose}`; this gateway stores `batch` files only."
    ))
    .with_param("purpose")
}
