//! `/v1/batches` wire types: the batch input line and its checks, `CreateBatchRequest`, the
//! `batch` object, lists, batch output lines, and batch ids.
//!
//! A batch id is `batch_` + the unpadded lower-case base32 of the Bedrock job ARN: URL-safe,
//! opaque to clients, and the gateway needs nothing else to find the job.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::files::{ExpiresAfter, base32_decode, base32_into};
use crate::error::ApiError;

/// Prefix of every batch id.
const BATCH_PREFIX: &str = "batch_";
/// Endpoints a batch may target.
pub const BATCH_ENDPOINTS: [&str; 2] = ["/v1/chat/completions", "/v1/embeddings"];
/// Image endpoints OpenAI batches and Bedrock batch inference does not (no image model takes
/// batch jobs).
const IMAGE_ENDPOINTS: [&str; 2] = ["/v1/images/generations", "/v1/images/edits"];
/// Why a batch cannot target an image endpoint.
const NO_IMAGE_BATCHES: &str = "Bedrock batch inference does not run image generation models, so image requests cannot be batched; \
     send them to the endpoint one at a time";
/// Longest `custom_id`, in bytes.
const MAX_CUSTOM_ID: usize = 512;

/// Encodes a Bedrock job ARN as a batch id.
pub fn batch_id(job_arn: &str) -> String {
    let mut id = String::from(BATCH_PREFIX);
    base32_into(job_arn.as_bytes(), &mut id);
    id
}

/// The job ARN a batch id stands for; a 404 for ids the gateway did not issue.
pub fn job_arn(batch_id: &str) -> Result<String, ApiError> {
    batch_id
        .strip_prefix(BATCH_PREFIX)
        .and_then(base32_decode)
        .and_then(|b| String::from_utf8(b).ok())
        .filter(|arn| arn.starts_with("arn:") && arn.contains(":model-invocation-job/"))
        .ok_or_else(|| {
            ApiError::not_found(format!("No batch found with id '{batch_id}'."))
                .with_param("batch_id")
                .with_code("batch_not_found")
        })
}

/// One line of a batch input file: `{"custom_id", "method", "url", "body"}`.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputLine {
    /// The caller's id of the request, unique in the file.
    pub custom_id: String,
    /// Always `POST`.
    pub method: String,
    /// `/v1/chat/completions` or `/v1/embeddings`.
    pub url: String,
    /// The request body, with `model`.
    pub body: Value,
}

/// Where a check of a batch input file failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong with it.
    pub message: String,
}

impl LineError {
    /// The 400 the caller gets: `Line N: ...`, with `param: file`.
    pub fn to_api_error(&self) -> ApiError {
        ApiError::invalid_request(format!("Line {}: {}", self.line, self.message))
            .with_param("file")
            .with_code("invalid_batch_file")
    }
}

/// Checks the lines of a batch input file one at a time: JSON objects with a unique
/// `custom_id`, `method` POST, one `url` and one `body.model` for the whole file.
#[derive(Debug, Default)]
pub struct LineChecker {
    lines: usize,
    ids: HashSet<String>,
    url: Option<String>,
    model: Option<String>,
}

impl LineChecker {
    /// Checks the next line (without its line break); blank lines are skipped. Returns the
    /// parsed line, or `None` for a blank one.
    pub fn check(&mut self, raw: &[u8]) -> Result<Option<InputLine>, LineError> {
        let number = self.lines + 1;
        let fail = |message: String| LineError { line: number, message };
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.iter().all(u8::is_ascii_whitespace) {
            self.lines += 1;
            return Ok(None);
        }
        self.lines += 1;
        let line: InputLine = serde_json::from_slice(raw).map_err(|e| {
            let detail = e.to_string();
            fail(if e.is_data() {
                format!("not a batch request line ({detail}); expected {{\"custom_id\", \"method\", \"url\", \"body\"}}")
            } else {
                format!("not valid JSON ({detail})")
            })
        })?;
        if line.custom_id.is_empty() || line.custom_id.len() > MAX_CUSTOM_ID {
            return Err(fail(format!("`custom_id` must be 1 to {MAX_CUSTOM_ID} bytes long")));
        }
        if line.method != "POST" {
            return Err(fail(format!("`method` is `{}`; only `POST` is supported", line.method)));
        }
        if IMAGE_ENDPOINTS.contains(&line.url.as_str()) {
            return Err(fail(format!("`url` is `{}`: {NO_IMAGE_BATCHES}", line.url)));
        }
        if !BATCH_ENDPOINTS.contains(&line.url.as_str()) {
            return Err(fail(format!(
                "`url` `{}` is not supported; use {}",
                line.url,
                BATCH_ENDPOINTS.join(" or ")
            )));
        }
        match &self.url {
            Some(url) if *url != line.url => {
                return Err(fail(format!(
                    "`url` is `{}` but earlier lines use `{url}`; a batch targets one endpoint",
                    line.url
                )));
            }
            Some(_) => {}
            None => self.url = Some(line.url.clone()),
        }
        let model = match line.body.get("model") {
            Some(Value::String(m)) if !m.is_empty() => m,
            Some(_) | None if !line.body.is_object() => {
                return Err(fail("`body` must be a JSON object".to_owned()));
            }
            _ => return Err(fail("`body.model` is missing; every request names the model".to_owned())),
        };
        match &self.model {
            Some(first) if first != model => {
                return Err(fail(format!(
                    "`body.model` is `{model}` but earlier lines use `{first}`; a batch uses one model"
                )));
            }
            Some(_) => {}
            None => self.model = Some(model.clone()),
        }
        if !self.ids.insert(line.custom_id.clone()) {
            return Err(fail(format!("`custom_id` `{}` is used by an earlier line", line.custom_id)));
        }
        Ok(Some(line))
    }

    /// Requests seen so far (blank lines not counted).
    pub fn requests(&self) -> usize {
        self.ids.len()
    }

    /// Lines seen so far.
    pub fn lines(&self) -> usize {
        self.lines
    }

    /// The model every request names (once a request was seen).
    pub fn model(&self) -> Option<&str> {
        self.model.as_deref()
    }

    /// The endpoint every request targets (once a request was seen).
    pub fn url(&self) -> Option<&str> {
        self.url.as_deref()
    }
}

/// A validated `CreateBatchRequest`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct CreateBatch {
    /// The uploaded `purpose=batch` file.
    pub input_file_id: String,
    /// `/v1/chat/completions` or `/v1/embeddings`.
    pub endpoint: String,
    /// Always `24h`.
    pub completion_window: String,
    /// Up to 16 key/value pairs kept with the batch.
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, String>>,
    /// When the output and error files expire, after their creation.
    #[serde(default)]
    pub output_expires_after: Option<ExpiresAfter>,
}

/// Parses and validates a `POST /v1/batches` body; errors name the field.
pub fn parse_create_batch(body: &[u8]) -> Result<CreateBatch, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    let req: CreateBatch = serde_path_to_error::deserialize(de).map_err(super::parse::parse_error)?;
    if IMAGE_ENDPOINTS.contains(&req.endpoint.as_str()) {
        return Err(super::parse::invalid(
            "endpoint".into(),
            format!("`{}`: {NO_IMAGE_BATCHES}", req.endpoint),
        ));
    }
    if !BATCH_ENDPOINTS.contains(&req.endpoint.as_str()) {
        return Err(super::parse::invalid(
            "endpoint".into(),
            format!("`{}`; this gateway batches {}", req.endpoint, BATCH_ENDPOINTS.join(" and ")),
        ));
    }
    if req.completion_window != "24h" {
        return Err(super::parse::invalid(
            "completion_window".into(),
            format!("`{}`; only `24h` is supported", req.completion_window),
        ));
    }
    if let Some(policy) = &req.output_expires_after {
        policy.checked_seconds("output_expires_after")?;
    }
    if let Some(metadata) = &req.metadata {
        if metadata.len() > 16 {
            return Err(super::parse::invalid("metadata".into(), "at most 16 keys"));
        }
        if let Some((k, _)) = metadata.iter().find(|(k, v)| k.len() > 64 || v.len() > 512) {
            return Err(super::parse::invalid(
                format!("metadata.{k}"),
                "keys are at most 64 characters and values at most 512",
            ));
        }
    }
    Ok(req)
}

/// `status` of a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchStatus {
    /// Bedrock is checking the input.
    Validating,
    /// The job failed.
    Failed,
    /// Running.
    InProgress,
    /// Writing results (no Bedrock state maps here).
    Finalizing,
    /// Done.
    Completed,
    /// Ran past its window.
    Expired,
    /// A cancel is under way.
    Cancelling,
    /// Cancelled.
    Cancelled,
}

/// `request_counts`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RequestCounts {
    /// Requests in the batch.
    pub total: u64,
    /// Requests answered.
    pub completed: u64,
    /// Requests that failed.
    pub failed: u64,
}

/// `errors` of a batch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BatchErrors {
    /// Always `list`.
    pub object: &'static str,
    /// The errors.
    pub data: Vec<BatchError>,
}

/// One entry of `errors.data`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BatchError {
    /// Machine-readable code.
    pub code: String,
    /// What went wrong.
    pub message: String,
    /// The parameter at fault.
    pub param: Option<String>,
    /// The input line at fault.
    pub line: Option<u64>,
}

/// Token usage of a finished batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct BatchUsage {
    /// Input tokens.
    pub input_tokens: u64,
    /// Cached input tokens.
    pub input_tokens_details: CachedTokens,
    /// Output tokens.
    pub output_tokens: u64,
    /// Reasoning tokens.
    pub output_tokens_details: ReasoningTokens,
    /// Input plus output.
    pub total_tokens: u64,
}

/// `input_tokens_details`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CachedTokens {
    /// Tokens read from the prompt cache.
    pub cached_tokens: u64,
}

/// `output_tokens_details`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ReasoningTokens {
    /// Reasoning tokens (Bedrock does not report them apart).
    pub reasoning_tokens: u64,
}

/// The `batch` object; timestamps and file ids appear once they exist.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Batch {
    /// `batch_...`.
    pub id: String,
    /// Always `batch`.
    pub object: &'static str,
    /// The endpoint of every request.
    pub endpoint: String,
    /// Served model name.
    pub model: String,
    /// Failures of the batch as a whole.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<BatchErrors>,
    /// The input file.
    pub input_file_id: String,
    /// Always `24h`.
    pub completion_window: String,
    /// Current status.
    pub status: BatchStatus,
    /// Answers of the successful requests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_file_id: Option<String>,
    /// Answers of the failed requests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_file_id: Option<String>,
    /// Unix seconds of creation.
    pub created_at: u64,
    /// When processing started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_progress_at: Option<u64>,
    /// When the batch expires.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    /// When it completed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<u64>,
    /// When it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed_at: Option<u64>,
    /// When it expired.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expired_at: Option<u64>,
    /// When the cancel was requested.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancelling_at: Option<u64>,
    /// When it was cancelled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancelled_at: Option<u64>,
    /// Request counts.
    pub request_counts: RequestCounts,
    /// Token usage, once the batch is finished.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<BatchUsage>,
    /// The caller's key/value pairs.
    pub metadata: Option<BTreeMap<String, String>>,
}

/// A page of batches (`ListBatchesResponse`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BatchList {
    /// Always `list`.
    pub object: &'static str,
    /// Newest first.
    pub data: Vec<Batch>,
    /// First id of the page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_id: Option<String>,
    /// Last id of the page: the `after` of the next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_id: Option<String>,
    /// Whether another page follows.
    pub has_more: bool,
}

impl BatchList {
    /// A page of `data`.
    pub fn new(data: Vec<Batch>, has_more: bool) -> Self {
        let first_id = data.first().map(|b| b.id.clone());
        let last_id = data.last().map(|b| b.id.clone());
        BatchList { object: "list", data, first_id, last_id, has_more }
    }
}

/// One line of a batch output or error file.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OutputLine {
    /// `batch_req_...`.
    pub id: String,
    /// The caller's id of the request.
    pub custom_id: String,
    /// The answer, for a request that got one.
    pub response: Option<OutputResponse>,
    /// Why the request failed, for one that did not.
    pub error: Option<OutputError>,
}

/// `response` of an output line.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OutputResponse {
    /// HTTP status the request would have had.
    pub status_code: u16,
    /// Request id.
    pub request_id: String,
    /// The response body (`chat.completion`, embeddings `list`, or an error object).
    pub body: Value,
}

/// `error` of an output line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct OutputError {
    /// Machine-readable code.
    pub code: String,
    /// What went wrong.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(custom_id: &str, model: &str) -> String {
        format!(
            r#"{{"custom_id":"{custom_id}","method":"POST","url":"/v1/chat/completions","body":{{"model":"{model}","messages":[{{"role":"user","content":"hi"}}]}}}}"#
        )
    }

    #[test]
    fn batch_ids_round_trip() {
        let arn = "arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/abcdef123456";
        let id = batch_id(arn);
        assert!(id.starts_with("batch_"));
        assert!(id[6..].bytes().all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b)), "{id}");
        assert_eq!(job_arn(&id).unwrap(), arn);
        let e = job_arn("batch_abc").unwrap_err();
        assert_eq!((e.status.as_u16(), e.message.as_str()), (404, "No batch found with id 'batch_abc'."));
    }

    #[test]
    fn checker_accepts_a_good_file_and_skips_blank_lines() {
        let mut c = LineChecker::default();
        assert!(c.check(line("a", "demo/nova").as_bytes()).unwrap().is_some());
        assert!(c.check(b"  ").unwrap().is_none());
        assert!(c.check(format!("{}\r", line("b", "demo/nova")).as_bytes()).unwrap().is_some());
        assert_eq!((c.requests(), c.lines(), c.model()), (2, 3, Some("demo/nova")));
        assert_eq!(c.url(), Some("/v1/chat/completions"));
    }

    #[test]
    fn checker_names_the_line_and_the_problem() {
        let cases: Vec<(Vec<String>, &str)> = vec![
            (
                vec![line("a", "m"), "{not json".into()],
                "Line 2: not valid JSON (key must be a string at line 1 column 2)",
            ),
            (vec![line("a", "m"), line("a", "m")], "Line 2: `custom_id` `a` is used by an earlier line"),
            (
                vec![line("a", "demo/one"), line("b", "demo/two")],
                "Line 2: `body.model` is `demo/two` but earlier lines use `demo/one`; a batch uses one model",
            ),
            (
                vec![
                    r#"{"custom_id":"a","method":"GET","url":"/v1/embeddings","body":{"model":"m"}}"#.into(),
                ],
                "Line 1: `method` is `GET`; only `POST` is supported",
            ),
            (
                vec![
                    r#"{"custom_id":"a","method":"POST","url":"/v1/completions","body":{"model":"m"}}"#
                        .into(),
                ],
                "Line 1: `url` `/v1/completions` is not supported; use /v1/chat/completions or /v1/embeddings",
            ),
            (
                vec![
                    r#"{"custom_id":"a","method":"POST","url":"/v1/embeddings","body":{"input":"x"}}"#.into(),
                ],
                "Line 1: `body.model` is missing; every request names the model",
            ),
            (
                vec![r#"{"custom_id":"a","method":"POST","url":"/v1/embeddings"}"#.into()],
                "Line 1: not a batch request line (missing field `body` at line 1 column 56); expected {\"custom_id\", \"method\", \"url\", \"body\"}",
            ),
        ];
        for (lines, expected) in cases {
            let mut c = LineChecker::default();
            let err = lines.iter().find_map(|l| c.check(l.as_bytes()).err()).expect(expected);
            let api = err.to_api_error();
            assert_eq!(api.message, expected);
            assert_eq!((api.status.as_u16(), api.param.as_deref()), (400, Some("file")));
        }
    }

    #[test]
    fn create_batch_requests_are_checked() {
        let ok = parse_create_batch(
            br#"{"input_file_id":"file-x","endpoint":"/v1/embeddings","completion_window":"24h","metadata":{"k":"v"}}"#,
        )
        .unwrap();
        assert_eq!(ok.endpoint, "/v1/embeddings");
        let e = parse_create_batch(
            br#"{"input_file_id":"f","endpoint":"/v1/chat/completions","completion_window":"1h"}"#,
        )
        .unwrap_err();
        assert_eq!(e.message, "Invalid value for `completion_window`: `1h`; only `24h` is supported.");
        let e = parse_create_batch(br#"{"endpoint":"/v1/chat/completions","completion_window":"24h"}"#)
            .unwrap_err();
        assert_eq!(
            e.message,
            "We could not parse the JSON body of your request: missing field `input_file_id`."
        );
    }

    #[test]
    fn output_expiry_is_checked_naming_the_field() {
        let body = |policy: &str| {
            format!(
                r#"{{"input_file_id":"f","endpoint":"/v1/chat/completions","completion_window":"24h","output_expires_after":{policy}}}"#
            )
        };
        let ok = parse_create_batch(body(r#"{"anchor":"created_at","seconds":7200}"#).as_bytes()).unwrap();
        assert_eq!(
            ok.output_expires_after,
            Some(ExpiresAfter { anchor: "created_at".into(), seconds: 7200 })
        );
        for (policy, param) in [
            (r#"{"anchor":"created_at","seconds":60}"#, "output_expires_after.seconds"),
            (r#"{"anchor":"now","seconds":7200}"#, "output_expires_after.anchor"),
            (r#"{"anchor":"created_at"}"#, "output_expires_after"),
            (r#"{"anchor":"created_at","seconds":"7200"}"#, "output_expires_after.seconds"),
        ] {
            let e = parse_create_batch(body(policy).as_bytes()).unwrap_err();
            assert_eq!(
                (e.status.as_u16(), e.param.as_deref()),
                (400, Some(param)),
                "{policy}: {}",
                e.message
            );
        }
    }
}
