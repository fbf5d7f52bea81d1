//! OpenAI batches <-> Bedrock batch inference jobs (bedrock-api.md §13, §16.2).
//!
//! - Input: each OpenAI batch line becomes one Bedrock record `{"recordId", "modelInput"}`. Chat
//!   lines go through the chat translator into Converse bodies (the job runs with
//!   `modelInvocationType: Converse`); embedding lines through the Titan / Cohere translators into
//!   model-native InvokeModel bodies. The record id is the line's 1-based number, zero-padded,
//!   so output records (which Bedrock does not keep in order) are joined back by `recordId`.
//! - Output: each Bedrock output record becomes an OpenAI batch output line whose `body` is the
//!   `chat.completion` or embeddings `list` the synchronous endpoint would have answered.
//! - Status: the ten job states map to OpenAI's eight; `request_counts` come from
//!   `manifest.json.out` when Bedrock has written it, else from the job.
//!
//! Pure: ids, times and served names come in as arguments.

use std::collections::BTreeMap;

use api::config::{Model, ModelKind};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::ResponseMeta;
use super::chat_converse::content::REMOTE_IMAGE;
use super::chat_converse::{ReplyContext, chat_completion, converse_request, guardrail_config};
use super::{embeddings_cohere, embeddings_titan};
use crate::auth::ServiceAccount;
use crate::bedrock::batch::{InputRecord, InvocationType, Job, JobStatus, Manifest, OutputRecord};
use crate::bedrock::converse::ConverseResponse;
use crate::bedrock::embeddings::{CohereEmbedResponse, TitanEmbedResponse};
use crate::bedrock::models::{EmbeddingFamily, embedding_family};
use crate::error::ApiError;
use crate::openai::batches::{
    Batch, BatchError, BatchErrors, BatchStatus, BatchUsage, CachedTokens, InputLine, OutputError,
    OutputLine, OutputResponse, ReasoningTokens, RequestCounts,
};
use crate::openai::chat::parse_chat_request;
use crate::openai::embeddings::{EmbeddingRequest, parse_embedding_request};
use crate::usage::{Tokens, chat_tokens};

/// What the gateway keeps beside each job (`<prefix>batches/<job id>.json`): who created it and
/// the OpenAI fields Bedrock does not store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchRecord {
    /// The Bedrock job ARN.
    pub job_arn: String,
    /// Account name.
    pub account: String,
    /// The caller that created the batch.
    pub owner: String,
    /// The caller's teams, for usage records.
    #[serde(default)]
    pub owner_teams: Vec<String>,
    /// The caller's Kubernetes service account, if it is one: its limits apply to the batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_service_account: Option<ServiceAccount>,
    /// Served model name.
    pub model: String,
    /// Endpoint of every request.
    pub endpoint: String,
    /// The uploaded input file.
    pub input_file_id: String,
    /// Always `24h`.
    pub completion_window: String,
    /// The caller's key/value pairs.
    #[serde(default)]
    pub metadata: Option<BTreeMap<String, String>>,
    /// Unix seconds of creation.
    pub created_at: u64,
    /// Requests in the input.
    pub requests: u64,
    /// Key of the Bedrock input object.
    pub input_key: String,
    /// Key of the gateway's copy of the input file, which the results are read against (so they
    /// can be written after the file was deleted or expired); records before it had none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_key: Option<String>,
    /// `output_expires_after.seconds`: the output and error files expire this long after they
    /// are written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_expires_after: Option<u64>,
    /// When a cancel was requested.
    #[serde(default)]
    pub cancelling_at: Option<u64>,
    /// The results, once the gateway has written them.
    #[serde(default)]
    pub results: Option<BatchResults>,
}

/// The output and error files of a finished job and what the job used.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchResults {
    /// File of the answered requests.
    pub output_file_id: String,
    /// File of the failed requests, when some failed.
    #[serde(default)]
    pub error_file_id: Option<String>,
    /// Requests answered.
    pub completed: u64,
    /// Requests failed.
    pub failed: u64,
    /// Tokens of the answered requests.
    pub input_tokens: u64,
    /// Cached input tokens of the answered requests.
    #[serde(default)]
    pub cached_tokens: u64,
    /// Output tokens of the answered requests.
    pub output_tokens: u64,
}

/// How to read the answer to one line.
#[derive(Clone, Debug, PartialEq)]
pub enum LineReply {
    /// A chat request: the reply context of its translation.
    Chat(ReplyContext),
    /// An embeddings request of a model family.
    Embedding(Box<EmbeddingRequest>, EmbeddingFamily),
}

/// What the output translation needs from one input line.
#[derive(Clone, Debug, PartialEq)]
pub struct LineContext {
    /// The caller's id of the request.
    pub custom_id: String,
    /// How to read the answer.
    pub reply: LineReply,
}

/// The invocation type of a job for models of `kind`.
pub fn invocation_type(kind: ModelKind) -> InvocationType {
    match kind {
        ModelKind::Chat => InvocationType::Converse,
        ModelKind::Embedding | ModelKind::Image => InvocationType::InvokeModel,
    }
}

/// The record id of the 1-based line `line`.
pub fn record_id(line: usize) -> String {
    format!("{line:011}")
}

/// A chat translation error of a batch line, saying why an http(s) image URL is refused there:
/// fetching every image of up to 50,000 requests would hold the batch's creation, and Bedrock's
/// batch job fetches nothing itself.
fn remote_image_in_batch(e: ApiError) -> ApiError {
    if e.code != Some(REMOTE_IMAGE) {
        return e;
    }
    let path = e.param.as_deref().unwrap_or("image_url.url");
    ApiError {
        message: format!(
            "`{path}` is an http(s) image URL; batch requests take images as base64 `data:` URLs only (the \
             gateway does not download images while it creates a batch, and Bedrock batch jobs fetch nothing)."
        ),
        ..e
    }
}

/// Line `number` of the input, for `model`, as a Bedrock record (one JSONL line, no line break)
/// and what reading its answer needs. Errors are 400s saying `Line N: ...`.
pub fn input_record(
    number: usize,
    line: &InputLine,
    model: &Model,
) -> Result<(Vec<u8>, LineContext), ApiError> {
    let at_line = |e: ApiError| ApiError {
        message: format!("Line {number}: {}", e.message),
        param: Some("file".into()),
        ..e
    };
    let body = serde_json::to_vec(&line.body).expect("JSON value serializes");
    let id = record_id(number);
    let (record, reply) = match model.kind {
        ModelKind::Chat => {
            let req = parse_chat_request(&body).map_err(at_line)?;
            if req.stream {
                return Err(at_line(ApiError::invalid_request("`stream` is not supported in a batch.")));
            }
            if req.n > 1 {
                return Err(at_line(ApiError::invalid_request(
                    "`n` greater than 1 is not supported in a batch.",
                )));
            }
            let family_model = model.underlying_model_id.as_deref().unwrap_or(&model.model_id);
            let mut translation =
                converse_request(&req, family_model).map_err(|e| at_line(remote_image_in_batch(e)))?;
            translation.body.guardrail_config = model.guardrail.as_ref().map(guardrail_config);
            let record = InputRecord { record_id: &id, model_input: &translation.body };
            (serde_json::to_vec(&record).expect("record serializes"), LineReply::Chat(translation.reply))
        }
        ModelKind::Embedding => {
            let req = parse_embedding_request(&body).map_err(at_line)?;
            let family = embedding_family(&model.model_id).ok_or_else(|| {
                at_line(ApiError::invalid_request(format!(
                    "The model `{}` is not an embedding model this gateway can batch.",
                    model.served_name
                )))
            })?;
            let record = match family {
                EmbeddingFamily::TitanV1 | EmbeddingFamily::TitanV2 => {
                    let calls = embeddings_titan::titan_requests(&req, family == EmbeddingFamily::TitanV2)
                        .map_err(at_line)?;
                    one_call(calls, "Titan Text Embeddings takes one `input` text per batch request")
                        .map_err(at_line)
                        .map(|c| serde_json::to_vec(&InputRecord { record_id: &id, model_input: c }))?
                }
                EmbeddingFamily::Cohere => {
                    let default_type = model
                        .embedding_input_type
                        .map_or(embeddings_cohere::DEFAULT_INPUT_TYPE, |t| t.as_str());
                    let calls = embeddings_cohere::cohere_requests(&req, default_type).map_err(at_line)?;
                    one_call(calls, "Cohere Embed takes at most 96 `input` texts per batch request")
                        .map_err(at_line)
                        .map(|c| serde_json::to_vec(&InputRecord { record_id: &id, model_input: c }))?
                }
            };
            (record.expect("record serializes"), LineReply::Embedding(Box::new(req), family))
        }
        ModelKind::Image => {
            return Err(at_line(ApiError::invalid_request(format!(
                "The model `{}` is an image model; batches take chat and embedding models.",
                model.served_name
            ))));
        }
    };
    Ok((record, LineContext { custom_id: line.custom_id.clone(), reply }))
}

/// The single call of `calls`, or a 400 saying `why`.
fn one_call<T>(calls: Vec<T>, why: &str) -> Result<T, ApiError> {
    let mut calls = calls.into_iter();
    match (calls.next(), calls.next()) {
        (Some(call), None) => Ok(call),
        _ => Err(ApiError::invalid_request(format!("{why}.")).with_param("input")),
    }
}

/// Facts of a job the output lines carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputMeta {
    /// The Bedrock job id (last ARN segment).
    pub job_id: String,
    /// Served model name.
    pub model: String,
    /// Unix seconds the answers are dated (the job's end).
    pub created: u64,
}

/// One translated output line and what it counts for.
#[derive(Clone, Debug, PartialEq)]
pub struct Translated {
    /// The OpenAI output line.
    pub line: OutputLine,
    /// Whether it goes to the output file (true) or the error file.
    pub ok: bool,
    /// Tokens it used.
    pub tokens: Tokens,
}

/// Translates one Bedrock output record. `contexts[n - 1]` belongs to input line `n` (`None`
/// for a blank line); a record whose id names no request is `None` (Bedrock never writes one).
pub fn output_line(
    record: OutputRecord,
    contexts: &[Option<LineContext>],
    meta: &OutputMeta,
) -> Option<Translated> {
    let number: usize = record.record_id.as_deref()?.parse().ok()?;
    let context = contexts.get(number.checked_sub(1)?)?.as_ref()?;
    let request_id = format!("{}-{}", meta.job_id, record_id(number));
    let id = format!("batch_req_{}_{}", meta.job_id, record_id(number));
    let line = |response, error| OutputLine {
        id: id.clone(),
        custom_id: context.custom_id.clone(),
        response,
        error,
    };
    if let Some(error) = record.error {
        let status = match &error.error_code {
            Some(Value::Number(n)) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
            Some(Value::String(s)) => s.parse().ok(),
            _ => None,
        }
        .filter(|s| (400..600).contains(s))
        .unwrap_or(500);
        let message = error.error_message.unwrap_or_else(|| "Bedrock could not answer this request.".into());
        let (kind, code) = match status {
            429 => ("rate_limit_error", "rate_limit_exceeded"),
            400..500 => ("invalid_request_error", "invalid_request"),
            _ => ("server_error", "server_error"),
        };
        let body =
            serde_json::json!({"error": {"message": message, "type": kind, "param": null, "code": code}});
        let response = OutputResponse { status_code: status, request_id, body };
        return Some(Translated {
            line: line(Some(response), Some(OutputError { code: code.into(), message })),
            ok: false,
            tokens: Tokens::default(),
        });
    }
    let unreadable = || Translated {
        line: line(
            None,
            Some(OutputError {
                code: "server_error".into(),
                message: "Bedrock returned an answer the gateway could not read.".into(),
            }),
        ),
        ok: false,
        tokens: Tokens::default(),
    };
    let Some(output) = record.model_output else { return Some(unreadable()) };
    let translated = match &context.reply {
        LineReply::Chat(reply) => serde_json::from_value::<ConverseResponse>(output).ok().map(|converse| {
            let response_meta = ResponseMeta {
                id: format!("chatcmpl-{}-{}", meta.job_id, record_id(number)),
                created: meta.created,
                model: meta.model.clone(),
            };
            let completion = chat_completion(converse, &response_meta, reply);
            (
                serde_json::to_value(&completion).expect("completion serializes"),
                chat_tokens(&completion.usage),
            )
        }),
        LineReply::Embedding(req, family) => {
            let list = match family {
                EmbeddingFamily::TitanV1 | EmbeddingFamily::TitanV2 => {
                    serde_json::from_value::<TitanEmbedResponse>(output)
                        .ok()
                        .and_then(|r| embeddings_titan::embedding_list(vec![r], req).ok())
                }
                EmbeddingFamily::Cohere => serde_json::from_value::<CohereEmbedResponse>(output)
                    .ok()
                    .and_then(|r| embeddings_cohere::embedding_list(vec![(r, 0)], req).ok()),
            };
            list.map(|mut list| {
                list.model.clone_from(&meta.model);
                let tokens = Tokens { input: list.usage.prompt_tokens, ..Tokens::default() };
                (serde_json::to_value(&list).expect("embedding list serializes"), tokens)
            })
        }
    };
    let Some((body, tokens)) = translated else { return Some(unreadable()) };
    Some(Translated {
        line: line(Some(OutputResponse { status_code: 200, request_id, body }), None),
        ok: true,
        tokens,
    })
}

/// OpenAI's status for a Bedrock job state (bedrock-api.md §16.2).
pub fn openai_status(status: JobStatus) -> BatchStatus {
    match status {
        JobStatus::Submitted | JobStatus::Validating => BatchStatus::Validating,
        JobStatus::Scheduled | JobStatus::InProgress => BatchStatus::InProgress,
        JobStatus::Completed | JobStatus::PartiallyCompleted => BatchStatus::Completed,
        JobStatus::Failed => BatchStatus::Failed,
        JobStatus::Stopping => BatchStatus::Cancelling,
        JobStatus::Stopped => BatchStatus::Cancelled,
        JobStatus::Expired => BatchStatus::Expired,
    }
}

/// Unix seconds of an ISO-8601 timestamp.
pub fn unix_seconds(iso: &str) -> Option<u64> {
    iso.parse::<jiff::Timestamp>().ok().and_then(|t| u64::try_from(t.as_second()).ok())
}

/// The `batch` object of a job: `record` as the gateway stored it, `job` as Bedrock reports
/// it now, `manifest` once Bedrock has written it.
pub fn batch_object(id: String, record: &BatchRecord, job: &Job, manifest: Option<&Manifest>) -> Batch {
    let status = openai_status(job.status);
    let end = job.end_time.as_deref().and_then(unix_seconds);
    let changed = job.last_modified_time.as_deref().and_then(unix_seconds);
    let request_counts = match (&record.results, manifest) {
        (Some(r), _) => RequestCounts { total: record.requests, completed: r.completed, failed: r.failed },
        (None, Some(m)) => RequestCounts {
            total: m.total_record_count.max(record.requests),
            completed: m.success_record_count,
            failed: m.error_record_count,
        },
        (None, None) => RequestCounts {
            total: job.total_record_count.unwrap_or(record.requests),
            completed: job.success_record_count.unwrap_or(0),
            failed: job.error_record_count.unwrap_or(0),
        },
    };
    let errors = (job.status == JobStatus::Failed).then(|| BatchErrors {
        object: "list",
        data: vec![BatchError {
            code: "batch_failed".into(),
            message: job
                .message
                .clone()
                .unwrap_or_else(|| "Bedrock reported the batch job as failed.".into()),
            param: None,
            line: None,
        }],
    });
    let at = |wanted: bool| if wanted { end.or(changed) } else { None };
    let started = !matches!(job.status, JobStatus::Submitted | JobStatus::Validating);
    Batch {
        id,
        object: "batch",
        endpoint: record.endpoint.clone(),
        model: record.model.clone(),
        errors,
        input_file_id: record.input_file_id.clone(),
        completion_window: record.completion_window.clone(),
        status,
        output_file_id: record.results.as_ref().map(|r| r.output_file_id.clone()),
        error_file_id: record.results.as_ref().and_then(|r| r.error_file_id.clone()),
        created_at: record.created_at,
        // Bedrock keeps no start time; the last change is the closest it reports.
        in_progress_at: (started && job.status != JobStatus::Failed)
            .then(|| changed.or(end).unwrap_or(record.created_at)),
        expires_at: job
            .job_expiration_time
            .as_deref()
            .and_then(unix_seconds)
            .or(Some(record.created_at + 24 * 3600)),
        completed_at: at(status == BatchStatus::Completed),
        failed_at: at(status == BatchStatus::Failed),
        expired_at: at(status == BatchStatus::Expired),
        cancelling_at: record
            .cancelling_at
            .filter(|_| matches!(status, BatchStatus::Cancelling | BatchStatus::Cancelled)),
        cancelled_at: at(status == BatchStatus::Cancelled),
        request_counts,
        usage: record.results.as_ref().map(|r| BatchUsage {
            input_tokens: r.input_tokens,
            input_tokens_details: CachedTokens { cached_tokens: r.cached_tokens },
            output_tokens: r.output_tokens,
            output_tokens_details: ReasoningTokens::default(),
            total_tokens: r.input_tokens + r.output_tokens,
        }),
        metadata: record.metadata.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> BatchRecord {
        BatchRecord {
            job_arn: "arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/abcdef123456".into(),
            account: "demo".into(),
            owner: "dev@example.com".into(),
            owner_teams: vec![],
            owner_service_account: None,
            output_expires_after: None,
            source_key: None,
            model: "demo/nova-lite".into(),
            endpoint: "/v1/chat/completions".into(),
            input_file_id: "file-x".into(),
            completion_window: "24h".into(),
            metadata: None,
            created_at: 1_700_000_000,
            requests: 5,
            input_key: "gateway/batch-input/t.jsonl".into(),
            cancelling_at: None,
            results: None,
        }
    }

    fn job(status: &str) -> Job {
        serde_json::from_value(serde_json::json!({
            "jobArn": "arn", "status": status, "message": "bad input",
            "submitTime": "2023-11-14T22:13:20Z", "lastModifiedTime": "2023-11-14T22:15:00.500Z",
            "endTime": "2023-11-14T22:16:40Z", "jobExpirationTime": "2023-11-15T22:13:20Z",
            "totalRecordCount": 5, "successRecordCount": 3, "errorRecordCount": 1
        }))
        .unwrap()
    }

    #[test]
    fn every_bedrock_state_maps_to_openais() {
        let cases = [
            ("Submitted", BatchStatus::Validating),
            ("Validating", BatchStatus::Validating),
            ("Scheduled", BatchStatus::InProgress),
            ("InProgress", BatchStatus::InProgress),
            ("Stopping", BatchStatus::Cancelling),
            ("Stopped", BatchStatus::Cancelled),
            ("Completed", BatchStatus::Completed),
            ("PartiallyCompleted", BatchStatus::Completed),
            ("Failed", BatchStatus::Failed),
            ("Expired", BatchStatus::Expired),
        ];
        for (bedrock, openai) in cases {
            assert_eq!(
                batch_object("batch_x".into(), &record(), &job(bedrock), None).status,
                openai,
                "{bedrock}"
            );
        }
    }

    #[test]
    fn a_failed_job_carries_bedrocks_message_and_its_end() {
        let batch = batch_object("batch_x".into(), &record(), &job("Failed"), None);
        let errors = batch.errors.unwrap();
        assert_eq!(errors.data[0].message, "bad input");
        assert_eq!(errors.data[0].code, "batch_failed");
        assert_eq!(batch.failed_at, Some(1_700_000_200));
        assert_eq!((batch.completed_at, batch.in_progress_at), (None, None));
        assert_eq!(batch.expires_at, Some(1_700_086_400));
    }

    #[test]
    fn counts_come_from_the_manifest_then_the_job() {
        let from_job = batch_object("b".into(), &record(), &job("InProgress"), None).request_counts;
        assert_eq!(from_job, RequestCounts { total: 5, completed: 3, failed: 1 });
        let manifest = Manifest {
            total_record_count: 5,
            success_record_count: 4,
            error_record_count: 1,
            ..Manifest::default()
        };
        let done = batch_object("b".into(), &record(), &job("PartiallyCompleted"), Some(&manifest));
        assert_eq!(done.request_counts, RequestCounts { total: 5, completed: 4, failed: 1 });
        assert_eq!(done.completed_at, Some(1_700_000_200));
        assert_eq!(done.in_progress_at, Some(1_700_000_100));
    }

    #[test]
    fn record_ids_are_line_numbers() {
        assert_eq!(record_id(7), "00000000007");
        assert_eq!(unix_seconds("2023-11-14T22:13:20.999Z"), Some(1_700_000_000));
        assert_eq!(unix_seconds("yesterday"), None);
    }
}
