//! The background task of one job: Submitted -> Validating (read and check the input) ->
//! Scheduled -> InProgress (answer the records) -> Completed | PartiallyCompleted, or Failed
//! with a message; Stopping -> Stopped after StopModelInvocationJob; Expired past the job's
//! expiration time. Each step lasts `BatchConfig::step`.

use std::sync::Arc;
use std::time::SystemTime;

use super::Batch;
use super::job::{Counts, Status};
use super::records::{self, Manifest, Outcome, Record};
use super::s3::Storage;

/// The records of one input file.
struct InputRecords {
    /// Base name of the input object, e.g. `records.jsonl`.
    name: String,
    records: Vec<Record>,
}

/// Starts the runner of job `id`, whose records `model_id` answers.
pub(super) fn spawn(batch: Arc<Batch>, id: String, model_id: &'static str) {
    let mut shutdown = batch.shutdown.clone();
    tokio::spawn(async move {
        tokio::select! {
            () = run(&batch, &id, model_id) => {}
            _ = shutdown.changed() => {}
        }
    });
}

/// What the runner may do next.
enum Next {
    /// Carry on.
    Go,
    /// The job was stopped or expired, or is otherwise over.
    Halt,
}

/// Moves job `id` to `status` unless it is stopping (then Stopped), expired (then Expired) or over.
fn advance(batch: &Batch, id: &str, status: Status) -> Next {
    let now = SystemTime::now();
    batch
        .with_job(id, |job| {
            if job.status == Status::Stopping {
                job.set(Status::Stopped, now);
            } else if !job.status.is_final() && job.expired_at(now) {
                job.message = Some(format!(
                    "The job did not finish within its timeout of {} hours.",
                    job.spec.timeout_hours
                ));
                job.set(Status::Expired, now);
            } else if !job.status.is_final() {
                job.set(status, now);
                return Next::Go;
            }
            Next::Halt
        })
        .unwrap_or(Next::Halt)
}

fn fail(batch: &Batch, id: &str, message: String) {
    batch.with_job(id, |job| job.fail(message, SystemTime::now()));
}

async fn run(batch: &Batch, id: &str, model_id: &'static str) {
    let step = batch.config.step;
    tokio::time::sleep(step).await;
    if let Next::Halt = advance(batch, id, Status::Validating) {
        return;
    }
    let Some(spec) = batch.with_job(id, |job| job.spec.clone()) else { return };
    let Some(storage) = &batch.storage else {
        fail(batch, id, "bedrock-sim: no S3 endpoint is configured (start it with --s3-url).".into());
        return;
    };
    let inputs = match read(storage, &spec.input).await {
        Ok(inputs) => inputs,
        Err(message) => return fail(batch, id, message),
    };
    let total: usize = inputs.iter().map(|f| f.records.len()).sum();
    if (total as u64) < batch.config.min_records {
        let message = format!(
            "The job has {total} records, fewer than the minimum of {} records per batch inference job.",
            batch.config.min_records
        );
        return fail(batch, id, message);
    }
    batch.with_job(id, |job| job.counts = Some(Counts { total: total as u64, ..Counts::default() }));
    tokio::time::sleep(step).await;
    if let Next::Halt = advance(batch, id, Status::Scheduled) {
        return;
    }
    tokio::time::sleep(step).await;
    if let Next::Halt = advance(batch, id, Status::InProgress) {
        return;
    }
    let mut manifest = Manifest { total_record_count: total as u64, ..Manifest::default() };
    let mut outputs = Vec::with_capacity(inputs.len());
    let mut halted = false;
    for input in &inputs {
        let mut answered: Vec<(usize, Outcome)> = Vec::with_capacity(input.records.len());
        for (i, record) in input.records.iter().enumerate() {
            if must_halt(batch, id) {
                halted = true;
                break;
            }
            let outcome = records::answer(spec.kind(), model_id, &record.input).await;
            manifest.add(&outcome);
            batch.with_job(id, |job| {
                job.counts = Some(Counts {
                    total: manifest.total_record_count,
                    processed: manifest.processed_record_count,
                    success: manifest.success_record_count,
                    error: manifest.error_record_count,
                })
            });
            answered.push((i, outcome));
        }
        outputs.push((input, answered));
        if halted {
            break;
        }
    }
    let prefix = output_prefix(&spec.output.key, id);
    for (input, answered) in &outputs {
        let mut body = String::new();
        let answered_records: Vec<Record> = answered.iter().map(|(i, _)| input.records[*i].clone()).collect();
        for k in records::output_order(&answered_records) {
            body.push_str(&records::output_line(&answered_records[k], &answered[k].1));
            body.push('\n');
        }
        let key = format!("{prefix}{}.out", input.name);
        if let Err(message) =
            storage.put(&spec.output.bucket, &key, body.into_bytes(), "application/jsonl").await
        {
            return fail(batch, id, message);
        }
    }
    let manifest_body = serde_json::to_vec(&manifest).unwrap_or_default();
    let key = format!("{prefix}manifest.json.out");
    if let Err(message) = storage.put(&spec.output.bucket, &key, manifest_body, "application/json").await {
        return fail(batch, id, message);
    }
    // A stopping or expired job becomes Stopped or Expired here, once its partial output is written.
    let done = if manifest.error_record_count > 0 { Status::PartiallyCompleted } else { Status::Completed };
    advance(batch, id, done);
}

/// Whether job `id` was asked to stop or is past its expiration time.
fn must_halt(batch: &Batch, id: &str) -> bool {
    let now = SystemTime::now();
    batch.with_job(id, |job| job.status != Status::InProgress || job.expired_at(now)).unwrap_or(true)
}

/// Reads and parses every input file; the error is the job's failure message.
async fn read(storage: &Storage, at: &super::create::S3Location) -> Result<Vec<InputRecords>, String> {
    let files = storage.read_input(at).await?;
    files
        .into_iter()
        .map(|file| {
            let name = file.key.rsplit('/').next().unwrap_or(&file.key).to_owned();
            let records = records::parse_input(&name, &file.text)?;
            Ok(InputRecords { name, records })
        })
        .collect()
}

/// `<output key>/<job id>/`: the output prefix taken as a folder.
fn output_prefix(key: &str, id: &str) -> String {
    match key.trim_end_matches('/') {
        "" => format!("{id}/"),
        folder => format!("{folder}/{id}/"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_goes_to_a_folder_named_after_the_job() {
        assert_eq!(output_prefix("", "abc"), "abc/");
        assert_eq!(output_prefix("out/", "abc"), "out/abc/");
        assert_eq!(output_prefix("a/b", "abc"), "a/b/abc/");
    }
}
