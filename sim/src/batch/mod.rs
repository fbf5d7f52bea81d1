//! Bedrock batch inference (model invocation jobs, bedrock-2023-04-20): CreateModelInvocationJob,
//! GetModelInvocationJob, ListModelInvocationJobs and StopModelInvocationJob, and the runner that
//! reads each job's JSONL input from S3, answers every record with the simulator's own
//! InvokeModel or Converse logic and writes `<input file>.out` and `manifest.json.out` under
//! `<outputDataConfig.s3Uri>/<job id>/`, walking the job through Bedrock's statuses one
//! `BatchConfig::step` at a time.

mod create;
mod faults;
mod job;
mod records;
mod runner;
mod s3;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use percent_encoding::percent_decode_str;
use serde_json::{Value, json};
use tokio::sync::watch;

use self::create::InvocationType;
use self::job::{Job, Status};
use crate::auth::Keyring;
use crate::errors::AwsError;
use crate::{BatchConfig, control};

/// The batch operations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Operation {
    /// `POST /model-invocation-job`.
    Create,
    /// `GET /model-invocation-job/{jobIdentifier}` with the still-encoded label.
    Get(String),
    /// `GET /model-invocation-jobs`.
    List,
    /// `POST /model-invocation-job/{jobIdentifier}/stop` with the still-encoded label.
    Stop(String),
}

/// Matches a batch route.
pub(crate) fn route(method: &http::Method, path: &str) -> Option<Operation> {
    let get = method == http::Method::GET;
    let post = method == http::Method::POST;
    match path {
        "/model-invocation-job" if post => Some(Operation::Create),
        "/model-invocation-jobs" if get => Some(Operation::List),
        _ => {
            let rest = path.strip_prefix("/model-invocation-job/")?;
            match rest.split_once('/') {
                None if get && !rest.is_empty() => Some(Operation::Get(rest.to_owned())),
                Some((label, "stop")) if post && !label.is_empty() => Some(Operation::Stop(label.to_owned())),
                _ => None,
            }
        }
    }
}

/// The jobs, the settings they run with and the S3 they use.
pub(crate) struct Batch {
    jobs: Mutex<Vec<Job>>,
    config: BatchConfig,
    storage: Option<s3::Storage>,
    shutdown: watch::Receiver<()>,
    /// Armed control-plane faults (`/_sim/batch-faults`).
    faults: Mutex<Vec<faults::Fault>>,
}

impl Batch {
    /// No jobs yet; runners stop when `shutdown`'s sender is dropped. S3 requests are signed
    /// with `credentials` (moto accepts any).
    pub(crate) fn new(
        config: BatchConfig,
        credentials: (&str, &str),
        shutdown: watch::Receiver<()>,
    ) -> Batch {
        let storage = config.s3_url.as_deref().map(|url| s3::Storage::new(url, credentials.0, credentials.1));
        Batch { jobs: Mutex::default(), config, storage, shutdown, faults: Mutex::default() }
    }

    /// `POST /_sim/batch-faults`: arms the fault `body` describes.
    pub(crate) fn arm_fault(&self, body: &[u8]) -> Result<(), AwsError> {
        let fault = faults::Fault::parse(body)?;
        self.faults.lock().unwrap_or_else(|e| e.into_inner()).push(fault);
        Ok(())
    }

    /// `DELETE /_sim/batch-faults`: disarms every fault.
    pub(crate) fn clear_faults(&self) {
        self.faults.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Job>> {
        // Every update leaves a job whole, so a poisoned lock still holds consistent jobs.
        self.jobs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the job `id`, if it exists.
    fn with_job<T>(&self, id: &str, f: impl FnOnce(&mut Job) -> T) -> Option<T> {
        self.lock().iter_mut().find(|j| j.id == id).map(f)
    }

    /// Runs `f` on the job a `jobIdentifier` label names (its id, or exactly its ARN), or
    /// answers ResourceNotFoundException.
    fn with_named_job<T>(&self, id: &str, label: &str, f: impl FnOnce(&mut Job) -> T) -> Result<T, AwsError> {
        let identifier = percent_decode_str(label).decode_utf8_lossy();
        let mut jobs = self.lock();
        let job = jobs.iter_mut().find(|j| j.id == id && (identifier == id || identifier == j.arn));
        job.map(f).ok_or_else(|| {
            AwsError::new(
                404,
                "ResourceNotFoundException",
                format!("The model invocation job {identifier} was not found."),
            )
        })
    }
}

/// Authenticates a batch request and answers it with JSON bytes.
pub(crate) async fn serve(
    batch: &Arc<Batch>,
    keyring: &Keyring,
    parts: &http::request::Parts,
    target: &str,
    body: &[u8],
    op: &Operation,
) -> Result<Vec<u8>, AwsError> {
    let region = control::authenticate(keyring, parts, target, body).await?;
    if let Some(error) = faults::strike(&mut batch.faults.lock().unwrap_or_else(|e| e.into_inner()), op) {
        return Err(error);
    }
    let now = SystemTime::now();
    let answer = match op {
        Operation::Create => {
            let job = create_job(batch, &region, body, now)?;
            json!({ "jobArn": job })
        }
        Operation::Get(label) => {
            let id = job_id(label)?;
            batch.with_named_job(&id, label, |job| job.to_json())?
        }
        Operation::List => list(batch, parts.uri.query().unwrap_or_default())?,
        Operation::Stop(label) => {
            let id = job_id(label)?;
            batch.with_named_job(&id, label, |job| job.stop(now))?.map_err(AwsError::validation)?;
            json!({})
        }
    };
    Ok(serde_json::to_vec(&answer).unwrap_or_default())
}

/// Validates a CreateModelInvocationJob body, stores the job and starts its runner; returns
/// the job ARN (the existing job's for a repeated `clientRequestToken`).
fn create_job(batch: &Arc<Batch>, region: &str, body: &[u8], now: SystemTime) -> Result<String, AwsError> {
    let spec = create::parse(body)?;
    let model = control::resolve_model(region, &spec.model_id).ok_or_else(|| {
        AwsError::new(404, "ResourceNotFoundException", format!("The model {} was not found.", spec.model_id))
    })?;
    if spec.kind() == InvocationType::Converse && !model.text {
        return Err(AwsError::validation(format!(
            "The model {} does not support the Converse model invocation type.",
            spec.model_id
        )));
    }
    let mut jobs = batch.lock();
    if let Some(token) = &spec.client_request_token
        && let Some(same) = jobs.iter().find(|j| j.spec.client_request_token.as_ref() == Some(token))
    {
        return Ok(same.arn.clone());
    }
    if jobs.iter().any(|j| j.spec.name == spec.name) {
        return Err(AwsError::new(
            409,
            "ConflictException",
            format!("A model invocation job with the name {} already exists.", spec.name),
        ));
    }
    let id: String = std::iter::repeat_with(|| {
        let c = fastrand::alphanumeric();
        c.to_ascii_lowercase()
    })
    .take(12)
    .collect();
    let job = Job::new(id.clone(), region, control::ACCOUNT_ID, spec, now, batch.config.hour);
    let arn = job.arn.clone();
    jobs.push(job);
    drop(jobs);
    runner::spawn(Arc::clone(batch), id, model.id);
    Ok(arn)
}

/// The job id of a `jobIdentifier` label: the 12-character id itself or the job ARN.
fn job_id(label: &str) -> Result<String, AwsError> {
    let identifier = percent_decode_str(label).decode_utf8_lossy();
    let id = match identifier.rsplit_once('/') {
        Some((prefix, id)) => {
            let parts: Vec<&str> = prefix.split(':').collect();
            let arn_ok = matches!(
                parts.as_slice(),
                [arn, partition, "bedrock", region, account, "model-invocation-job"]
                    if *arn == "arn"
                        && (*partition == "aws" || partition.starts_with("aws-"))
                        && (1..=20).contains(&region.len())
                        && region.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                        && account.len() == 12
                        && account.bytes().all(|b| b.is_ascii_digit())
            );
            arn_ok.then_some(id)
        }
        None => Some(identifier.as_ref()),
    };
    match id {
        Some(id) if id.len() == 12 && id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()) => {
            Ok(id.to_owned())
        }
        _ => Err(AwsError::validation(format!(
            "1 validation error detected: Value '{identifier}' at 'jobIdentifier' failed to satisfy constraint: \
             Member must satisfy regular expression pattern: \
             ((arn:aws(-[^:]+)?:bedrock:[a-z0-9-]{{1,20}}:[0-9]{{12}}:model-invocation-job/)?[a-z0-9]{{12}})"
        ))),
    }
}

/// ListModelInvocationJobs with its filters, sort order and pagination.
fn list(batch: &Batch, query: &str) -> Result<Value, AwsError> {
    let params = control::parse_query(query)?;
    let param = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let invalid = |name: &str, value: &str, rule: &str| {
        AwsError::validation(format!(
            "1 validation error detected: Value '{value}' at '{name}' failed to satisfy constraint: Member must {rule}"
        ))
    };
    let time = |name: &str| match param(name) {
        None => Ok(None),
        Some(v) => {
            job::parse_timestamp(v).map(Some).ok_or_else(|| invalid(name, v, "be an ISO-8601 timestamp"))
        }
    };
    let (after, before) = (time("submitTimeAfter")?, time("submitTimeBefore")?);
    let status = match param("statusEquals") {
        None => None,
        Some(v) => Some(Status::parse(v).ok_or_else(|| {
            let names: Vec<&str> = Status::ALL.iter().map(|s| s.as_str()).collect();
            invalid("statusEquals", v, &format!("satisfy enum value set: [{}]", names.join(", ")))
        })?),
    };
    let name = param("nameContains");
    let max = match param("maxResults") {
        None => 1000,
        Some(v) => match v.parse::<usize>() {
            Ok(n @ 1..=1000) => n,
            _ => return Err(invalid("maxResults", v, "have value between 1 and 1000")),
        },
    };
    if let Some(v) = param("sortBy").filter(|v| *v != "CreationTime") {
        return Err(invalid("sortBy", v, "satisfy enum value set: [CreationTime]"));
    }
    let ascending = match param("sortOrder") {
        None | Some("Descending") => false,
        Some("Ascending") => true,
        Some(v) => return Err(invalid("sortOrder", v, "satisfy enum value set: [Ascending, Descending]")),
    };
    let start = match param("nextToken") {
        None => 0,
        Some(token) => token
            .parse::<usize>()
            .map_err(|_| AwsError::validation("The nextToken provided is not valid."))?,
    };
    let jobs = batch.lock();
    let mut matching: Vec<&Job> = jobs
        .iter()
        .filter(|j| after.is_none_or(|t| j.submit_time > t))
        .filter(|j| before.is_none_or(|t| j.submit_time < t))
        .filter(|j| status.is_none_or(|s| j.status == s))
        .filter(|j| name.is_none_or(|n| j.spec.name.contains(n)))
        .collect();
    // Jobs are stored in creation order; ties keep it.
    if !ascending {
        matching.reverse();
    }
    let page: Vec<Value> = matching.iter().skip(start).take(max).map(|j| j.to_json()).collect();
    let mut body = json!({ "invocationJobSummaries": page });
    if start + max < matching.len() {
        body["nextToken"] = Value::from((start + max).to_string());
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_the_four_operations() {
        let (get, post) = (http::Method::GET, http::Method::POST);
        assert_eq!(route(&post, "/model-invocation-job"), Some(Operation::Create));
        assert_eq!(route(&get, "/model-invocation-jobs"), Some(Operation::List));
        assert_eq!(route(&get, "/model-invocation-job/abc"), Some(Operation::Get("abc".into())));
        assert_eq!(route(&post, "/model-invocation-job/a%2Fb/stop"), Some(Operation::Stop("a%2Fb".into())));
        assert_eq!(route(&get, "/model-invocation-job"), None);
        assert_eq!(route(&post, "/model-invocation-job/abc"), None);
        assert_eq!(route(&get, "/model-invocation-job/abc/stop"), None);
        assert_eq!(route(&get, "/model-invocation-job/"), None);
        assert_eq!(route(&post, "/model-invocation-job/abc/start"), None);
    }

    #[test]
    fn job_identifiers_are_ids_or_arns() {
        assert_eq!(job_id("abcdef123456").unwrap(), "abcdef123456");
        let arn = "arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Amodel-invocation-job%2Fabcdef123456";
        assert_eq!(job_id(arn).unwrap(), "abcdef123456");
        for bad in [
            "ABCDEF123456",
            "abc",
            "arn%3Aaws%3As3%3Aus-east-1%3A123456789012%3Amodel-invocation-job%2Fabcdef123456",
        ] {
            let e = job_id(bad).unwrap_err();
            assert!(
                e.message.contains("at 'jobIdentifier' failed to satisfy constraint"),
                "{bad}: {}",
                e.message
            );
        }
    }
}
