//! Batch inference wire types (bedrock-api.md §13): the control-plane calls of the `bedrock`
//! service model (2023-04-20: CreateModelInvocationJob, GetModelInvocationJob,
//! StopModelInvocationJob) and the S3 data layout of a job (input records, output records,
//! `manifest.json.out`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `CreateModelInvocationJob` body (`POST /model-invocation-job`).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateJobRequest<'a> {
    /// 1-63 characters, `[a-zA-Z0-9]` then `-`, `+`, `.` allowed.
    pub job_name: &'a str,
    /// Service role Bedrock runs the job as.
    pub role_arn: &'a str,
    /// Idempotency token: a retried create does not start a second job.
    pub client_request_token: &'a str,
    /// Model id, inference profile id or ARN.
    pub model_id: &'a str,
    /// Where the records are.
    pub input_data_config: InputDataConfig<'a>,
    /// Where Bedrock writes the results.
    pub output_data_config: OutputDataConfig<'a>,
    /// 24 to 168 hours.
    pub timeout_duration_in_hours: u32,
    /// `Converse` (records are Converse bodies) or `InvokeModel` (model-native bodies).
    pub model_invocation_type: InvocationType,
}

/// `ModelInvocationJobInputDataConfig` (union; the only member is S3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InputDataConfig<'a> {
    /// The S3 location.
    pub s3_input_data_config: S3Input<'a>,
}

/// `ModelInvocationJobS3InputDataConfig`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct S3Input<'a> {
    /// Always `JSONL`.
    pub s3_input_format: &'static str,
    /// `s3://bucket/key` of the one input file.
    pub s3_uri: &'a str,
}

/// `ModelInvocationJobOutputDataConfig` (union; the only member is S3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OutputDataConfig<'a> {
    /// The S3 location.
    pub s3_output_data_config: S3Output<'a>,
}

/// `ModelInvocationJobS3OutputDataConfig`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct S3Output<'a> {
    /// `s3://bucket/prefix/`; Bedrock writes under `<prefix><job id>/`.
    pub s3_uri: &'a str,
}

/// `ModelInvocationType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum InvocationType {
    /// Records are model-native InvokeModel bodies.
    InvokeModel,
    /// Records are Converse bodies.
    Converse,
}

/// `CreateModelInvocationJob` response.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateJobResponse {
    /// `arn:aws:bedrock:<region>:<account>:model-invocation-job/<id>`.
    pub job_arn: String,
}

/// `ModelInvocationJobStatus`, all ten states.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobStatus {
    /// Accepted, not yet validated.
    Submitted,
    /// Checking the input.
    Validating,
    /// Waiting for capacity.
    Scheduled,
    /// Running.
    InProgress,
    /// A stop was requested.
    Stopping,
    /// Stopped before the end.
    Stopped,
    /// Every record answered.
    Completed,
    /// Done, some records failed.
    PartiallyCompleted,
    /// The job failed.
    Failed,
    /// The job ran past its timeout.
    Expired,
}

impl JobStatus {
    /// Whether the job will not change any more.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobStatus::Stopped
                | JobStatus::Completed
                | JobStatus::PartiallyCompleted
                | JobStatus::Failed
                | JobStatus::Expired
        )
    }
}

/// `GetModelInvocationJob` response: the members the gateway reads (timestamps ISO-8601).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    /// The job ARN.
    pub job_arn: String,
    /// Current state (absent only in malformed answers; read as `Submitted`).
    #[serde(default = "submitted")]
    pub status: JobStatus,
    /// Why the job failed or stopped.
    #[serde(default)]
    pub message: Option<String>,
    /// When the job was submitted.
    #[serde(default)]
    pub submit_time: Option<String>,
    /// Last state change.
    #[serde(default)]
    pub last_modified_time: Option<String>,
    /// When the job ended.
    #[serde(default)]
    pub end_time: Option<String>,
    /// When an unfinished job expires.
    #[serde(default)]
    pub job_expiration_time: Option<String>,
    /// Records in the input.
    #[serde(default)]
    pub total_record_count: Option<u64>,
    /// Records answered or failed so far.
    #[serde(default)]
    pub processed_record_count: Option<u64>,
    /// Records answered.
    #[serde(default)]
    pub success_record_count: Option<u64>,
    /// Records that failed.
    #[serde(default)]
    pub error_record_count: Option<u64>,
}

fn submitted() -> JobStatus {
    JobStatus::Submitted
}

/// One input record: `{"recordId", "modelInput"}`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InputRecord<'a, T: Serialize> {
    /// The gateway's record id (the input line number).
    pub record_id: &'a str,
    /// Converse body or model-native InvokeModel body.
    pub model_input: T,
}

/// One output record: `{"recordId", "modelInput", "modelOutput"}` or `{..., "error"}`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutputRecord {
    /// The id of the input record.
    #[serde(default)]
    pub record_id: Option<String>,
    /// The model's answer (a Converse response or the model-native body).
    #[serde(default)]
    pub model_output: Option<Value>,
    /// Why the record failed.
    #[serde(default)]
    pub error: Option<RecordError>,
}

/// The error of a failed record.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordError {
    /// HTTP-like status (`400`, `429`, `500`); Bedrock writes a number or a string.
    #[serde(default)]
    pub error_code: Option<Value>,
    /// What went wrong.
    #[serde(default)]
    pub error_message: Option<String>,
}

/// `manifest.json.out`: the job's counts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// Records in the input.
    #[serde(default)]
    pub total_record_count: u64,
    /// Records answered or failed.
    #[serde(default)]
    pub processed_record_count: u64,
    /// Records answered.
    #[serde(default)]
    pub success_record_count: u64,
    /// Records that failed.
    #[serde(default)]
    pub error_record_count: u64,
    /// Input tokens of the answered records.
    #[serde(default)]
    pub input_token_count: u64,
    /// Output tokens of the answered records.
    #[serde(default)]
    pub output_token_count: u64,
}
