//! One model invocation job: what CreateModelInvocationJob asked for, where the job is in
//! Bedrock's status walk, its record counts, and its JSON as GetModelInvocationJob and
//! ListModelInvocationJobs return it. Pure: the caller passes the clock.

use std::time::{Duration, SystemTime};

use serde_json::{Map, Value, json};

use super::create::JobSpec;

/// `ModelInvocationJobStatus`, the 10 values of the AWS model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    /// Created, not yet looked at.
    Submitted,
    /// The input is being read and checked.
    Validating,
    /// Waiting for capacity.
    Scheduled,
    /// Records are being answered.
    InProgress,
    /// Every record was answered successfully.
    Completed,
    /// Done, with some error records.
    PartiallyCompleted,
    /// The input could not be used (see `message`).
    Failed,
    /// StopModelInvocationJob was called; the job winds down.
    Stopping,
    /// Stopped before finishing.
    Stopped,
    /// Not finished by `jobExpirationTime`.
    Expired,
}

impl Status {
    /// Every status, as the AWS model lists them.
    pub(crate) const ALL: [Status; 10] = [
        Status::Submitted,
        Status::InProgress,
        Status::Completed,
        Status::Failed,
        Status::Stopping,
        Status::Stopped,
        Status::PartiallyCompleted,
        Status::Expired,
        Status::Validating,
        Status::Scheduled,
    ];

    /// The wire name.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Status::Submitted => "Submitted",
            Status::Validating => "Validating",
            Status::Scheduled => "Scheduled",
            Status::InProgress => "InProgress",
            Status::Completed => "Completed",
            Status::PartiallyCompleted => "PartiallyCompleted",
            Status::Failed => "Failed",
            Status::Stopping => "Stopping",
            Status::Stopped => "Stopped",
            Status::Expired => "Expired",
        }
    }

    /// The status named `name`, if it is one.
    pub(crate) fn parse(name: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Whether the job is over (no further transition).
    pub(crate) fn is_final(self) -> bool {
        matches!(
            self,
            Status::Completed
                | Status::PartiallyCompleted
                | Status::Failed
                | Status::Stopped
                | Status::Expired
        )
    }
}

/// Record counts, known once the input was read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    /// Records in the input.
    pub total: u64,
    /// Records answered so far (successes and errors).
    pub processed: u64,
    /// Records answered with a `modelOutput`.
    pub success: u64,
    /// Records answered with an `error`.
    pub error: u64,
}

/// A job and its progress.
#[derive(Clone, Debug)]
pub(crate) struct Job {
    /// The 12-character id (last segment of the ARN).
    pub id: String,
    /// `arn:aws:bedrock:<region>:<account>:model-invocation-job/<id>`.
    pub arn: String,
    /// What CreateModelInvocationJob asked for.
    pub spec: JobSpec,
    /// Current status.
    pub status: Status,
    /// Why the job failed, stopped or expired.
    pub message: Option<String>,
    /// When it was created.
    pub submit_time: SystemTime,
    /// When its status last changed.
    pub last_modified: SystemTime,
    /// When it reached a final status.
    pub end_time: Option<SystemTime>,
    /// When it expires if still unfinished.
    pub expiration: SystemTime,
    /// Record counts, once the input was read.
    pub counts: Option<Counts>,
}

impl Job {
    /// A new Submitted job; `hour` is how long one hour of `timeoutDurationInHours` lasts.
    pub(crate) fn new(
        id: String,
        region: &str,
        account: &str,
        spec: JobSpec,
        now: SystemTime,
        hour: Duration,
    ) -> Job {
        let arn = format!("arn:aws:bedrock:{region}:{account}:model-invocation-job/{id}");
        // Whole milliseconds, as reported, so the list filters compare what callers saw.
        let since = now.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
        let now = SystemTime::UNIX_EPOCH
            + Duration::from_millis(u64::try_from(since.as_millis()).unwrap_or(u64::MAX));
        let expiration = now + hour * spec.timeout_hours;
        Job {
            id,
            arn,
            spec,
            status: Status::Submitted,
            message: None,
            submit_time: now,
            last_modified: now,
            end_time: None,
            expiration,
            counts: None,
        }
    }

    /// Moves to `status` at `now`; a final status also sets `endTime`. No change once final.
    pub(crate) fn set(&mut self, status: Status, now: SystemTime) {
        if self.status.is_final() || self.status == status {
            return;
        }
        self.status = status;
        self.last_modified = now;
        if status.is_final() {
            self.end_time = Some(now);
        }
    }

    /// Fails the job with `message`.
    pub(crate) fn fail(&mut self, message: impl Into<String>, now: SystemTime) {
        if !self.status.is_final() {
            self.message = Some(message.into());
            self.set(Status::Failed, now);
        }
    }

    /// StopModelInvocationJob: an unfinished job starts stopping; a finished one cannot be stopped.
    pub(crate) fn stop(&mut self, now: SystemTime) -> Result<(), String> {
        match self.status {
            s if s.is_final() => Err(format!(
                "The job {} cannot be stopped because it is in the {} state.",
                self.arn,
                s.as_str()
            )),
            Status::Stopping => Ok(()),
            _ => {
                self.set(Status::Stopping, now);
                Ok(())
            }
        }
    }

    /// Whether `now` is past the job's expiration time.
    pub(crate) fn expired_at(&self, now: SystemTime) -> bool {
        now >= self.expiration
    }

    /// The ModelInvocationJobSummary / GetModelInvocationJobResponse JSON (same members).
    pub(crate) fn to_json(&self) -> Value {
        let spec = &self.spec;
        let mut out = Map::new();
        let mut put = |key: &str, value: Value| {
            out.insert(key.to_owned(), value);
        };
        put("jobArn", json!(self.arn));
        put("jobName", json!(spec.name));
        put("modelId", json!(spec.model_id));
        if let Some(token) = &spec.client_request_token {
            put("clientRequestToken", json!(token));
        }
        put("roleArn", json!(spec.role_arn));
        put("status", json!(self.status.as_str()));
        if let Some(message) = &self.message {
            put("message", json!(message));
        }
        put("submitTime", json!(timestamp(self.submit_time)));
        put("lastModifiedTime", json!(timestamp(self.last_modified)));
        if let Some(end) = self.end_time {
            put("endTime", json!(timestamp(end)));
        }
        put("inputDataConfig", spec.input_data_config.clone());
        put("outputDataConfig", spec.output_data_config.clone());
        if let Some(vpc) = &spec.vpc_config {
            put("vpcConfig", vpc.clone());
        }
        put("timeoutDurationInHours", json!(spec.timeout_hours));
        put("jobExpirationTime", json!(timestamp(self.expiration)));
        if let Some(kind) = spec.invocation_type {
            put("modelInvocationType", json!(kind.as_str()));
        }
        if let Some(c) = self.counts {
            put("totalRecordCount", json!(c.total));
            put("processedRecordCount", json!(c.processed));
            put("successRecordCount", json!(c.success));
            put("errorRecordCount", json!(c.error));
        }
        Value::Object(out)
    }
}

/// ISO-8601 UTC with milliseconds, e.g. `2026-01-02T03:04:05.678Z`.
pub(crate) fn timestamp(t: SystemTime) -> String {
    let since = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let millis = i128::from(since.as_secs()) * 1000 + i128::from(since.subsec_millis());
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(millis * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    at.format(&format).unwrap_or_default()
}

/// Parses the ISO-8601 timestamps botocore sends in query strings (`2026-01-02T03:04:05Z`,
/// with optional fractional seconds and a `Z` or `+00:00` offset).
pub(crate) fn parse_timestamp(text: &str) -> Option<SystemTime> {
    let at = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    let nanos = u64::try_from(at.unix_timestamp_nanos()).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_nanos(nanos))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::create::tests::spec;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn statuses_round_trip_their_wire_names() {
        for s in Status::ALL {
            assert_eq!(Status::parse(s.as_str()), Some(s));
        }
        assert_eq!(Status::parse("Running"), None);
        let finals: Vec<_> = Status::ALL.into_iter().filter(|s| s.is_final()).map(Status::as_str).collect();
        assert_eq!(finals, ["Completed", "Failed", "Stopped", "PartiallyCompleted", "Expired"]);
    }

    #[test]
    fn final_statuses_stick_and_set_the_end_time() {
        let mut job = Job::new(
            "abcdefghijkl".into(),
            "us-east-1",
            "123456789012",
            spec(),
            at(10),
            Duration::from_secs(3600),
        );
        assert_eq!(job.expiration, at(10 + 24 * 3600));
        job.set(Status::Validating, at(11));
        assert_eq!((job.status, job.last_modified, job.end_time), (Status::Validating, at(11), None));
        job.fail("The input is empty.", at(12));
        assert_eq!((job.status, job.end_time), (Status::Failed, Some(at(12))));
        job.set(Status::Completed, at(13));
        assert_eq!((job.status, job.last_modified), (Status::Failed, at(12)));
        let err = job.stop(at(14)).unwrap_err();
        assert!(err.contains("cannot be stopped because it is in the Failed state"), "{err}");
    }

    #[test]
    fn stopping_is_idempotent_until_stopped() {
        let mut job = Job::new(
            "abcdefghijkl".into(),
            "us-east-1",
            "123456789012",
            spec(),
            at(0),
            Duration::from_secs(1),
        );
        job.set(Status::InProgress, at(1));
        job.stop(at(2)).unwrap();
        job.stop(at(3)).unwrap();
        assert_eq!((job.status, job.last_modified), (Status::Stopping, at(2)));
        job.set(Status::Stopped, at(4));
        assert!(job.stop(at(5)).is_err());
        assert!(job.expired_at(at(24)) && !job.expired_at(at(23)));
    }

    #[test]
    fn json_has_the_model_members() {
        let mut job = Job::new(
            "abcdefghijkl".into(),
            "eu-west-1",
            "123456789012",
            spec(),
            at(0),
            Duration::from_secs(3600),
        );
        job.counts = Some(Counts { total: 3, processed: 2, success: 1, error: 1 });
        let v = job.to_json();
        assert_eq!(v["jobArn"], "arn:aws:bedrock:eu-west-1:123456789012:model-invocation-job/abcdefghijkl");
        assert_eq!(v["submitTime"], "1970-01-01T00:00:00.000Z");
        assert_eq!(v["jobExpirationTime"], "1970-01-02T00:00:00.000Z");
        assert_eq!(v["status"], "Submitted");
        assert_eq!((v["totalRecordCount"].as_u64(), v["errorRecordCount"].as_u64()), (Some(3), Some(1)));
        assert!(v.get("endTime").is_none() && v.get("message").is_none());
    }

    #[test]
    fn timestamps_round_trip() {
        let t = at(1_700_000_000) + Duration::from_millis(123);
        assert_eq!(timestamp(t), "2023-11-14T22:13:20.123Z");
        assert_eq!(parse_timestamp(&timestamp(t)), Some(t));
        assert_eq!(parse_timestamp("2023-11-14T22:13:20+00:00"), Some(at(1_700_000_000)));
        assert_eq!(parse_timestamp("yesterday"), None);
    }
}
