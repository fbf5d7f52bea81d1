//! Batch inference over HTTP: the four operations, the status walk on a fast clock, and a whole
//! job against moto's S3 (moto comes from the e2e venv, `.venv/bin/moto_server`, installed by
//! `scripts/test`; without it that test prints why and passes without running).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::primitives::ByteStream;
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use bedrock_sim::{BatchConfig, SimConfig, SimHandle};
use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use serde_json::{Value, json};

use crate::common::*;

/// A sim whose jobs step every 5 ms, need `min_records` records and use the S3 at `s3_url`.
async fn batch_sim(s3_url: Option<String>, min_records: u64) -> SimHandle {
    let batch = BatchConfig { s3_url, step: Duration::from_millis(5), min_records, ..BatchConfig::default() };
    start_with(SimConfig { batch, ..SimConfig::default() }).await
}

fn get(base: &str, path: &str) -> Request<Full<Bytes>> {
    Request::get(format!("{base}{path}"))
        .header("authorization", format!("Bearer {}", bedrock_sim::TEST_BEARER_TOKEN))
        .body(Full::new(Bytes::new()))
        .unwrap()
}

fn create_body(bucket: &str, input_key: &str, name: &str) -> Value {
    json!({
        "jobName": name,
        "roleArn": "arn:aws:iam::123456789012:role/Batch",
        "modelId": "us.anthropic.claude-3-haiku-20240307-v1:0",
        "modelInvocationType": "Converse",
        "inputDataConfig": {"s3InputDataConfig": {"s3Uri": format!("s3://{bucket}/{input_key}")}},
        "outputDataConfig": {"s3OutputDataConfig": {"s3Uri": format!("s3://{bucket}/results")}},
    })
}

async fn create(sim: &SimHandle, body: &Value) -> Resp {
    let req = post(&sim.url(), "/model-invocation-job", body.to_string().into_bytes(), test_sigv4());
    send(&http1(), req).await
}

/// Polls GetModelInvocationJob until the job is final; returns it and the statuses seen.
async fn wait(sim: &SimHandle, arn: &str) -> (Value, Vec<String>) {
    let label = arn.replace(':', "%3A").replace('/', "%2F");
    let mut seen: Vec<String> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let job = send(&http1(), get(&sim.url(), &format!("/model-invocation-job/{label}"))).await.json();
        let status = job["status"].as_str().unwrap().to_owned();
        if seen.last() != Some(&status) {
            seen.push(status.clone());
        }
        if ["Completed", "PartiallyCompleted", "Failed", "Stopped", "Expired"].contains(&status.as_str()) {
            return (job, seen);
        }
        assert!(Instant::now() < deadline, "job stuck: {seen:?}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test]
async fn without_s3_a_job_fails_validation_and_cannot_be_stopped() {
    let sim = batch_sim(None, 1).await;
    let created = create(&sim, &create_body("bucket-a", "in.jsonl", "no-s3")).await;
    assert_eq!(created.status, 200, "{:?}", created.body);
    let arn = created.json()["jobArn"].as_str().unwrap().to_owned();
    assert_eq!(created.json().as_object().unwrap().len(), 1, "create returns only jobArn");
    assert!(arn.starts_with("arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/"), "{arn}");

    let (job, seen) = wait(&sim, &arn).await;
    assert_eq!(seen.last().map(String::as_str), Some("Failed"));
    assert_eq!(job["message"], "bedrock-sim: no S3 endpoint is configured (start it with --s3-url).");
    assert_eq!(job["modelId"], "us.anthropic.claude-3-haiku-20240307-v1:0");
    assert!(job["endTime"].is_string() && job.get("totalRecordCount").is_none());

    let id = arn.rsplit('/').next().unwrap();
    let stop = send(
        &http1(),
        post(&sim.url(), &format!("/model-invocation-job/{id}/stop"), Vec::new(), test_sigv4()),
    )
    .await;
    let message = stop.assert_error(400, "ValidationException");
    assert_eq!(message, format!("The job {arn} cannot be stopped because it is in the Failed state."));

    let listed = send(&http1(), get(&sim.url(), "/model-invocation-jobs?statusEquals=Failed")).await.json();
    assert_eq!(listed["invocationJobSummaries"][0]["jobArn"], arn.as_str());
    assert!(listed.get("nextToken").is_none());
}

#[tokio::test]
async fn bad_requests_get_aws_errors() {
    let sim = batch_sim(None, 1).await;
    let mut body = create_body("bucket-a", "in.jsonl", "bad name!");
    body["timeoutDurationInHours"] = json!(200);
    let message = create(&sim, &body).await.assert_error(400, "ValidationException");
    assert!(message.starts_with("2 validation errors detected: Value 'bad name!' at 'jobName'"), "{message}");
    assert!(
        message.contains("Value '200' at 'timeoutDurationInHours' failed to satisfy constraint"),
        "{message}"
    );

    let mut body = create_body("bucket-a", "in.jsonl", "ok");
    body["modelId"] = json!("eu.anthropic.claude-3-haiku-20240307-v1:0");
    create(&sim, &body).await.assert_error(404, "ResourceNotFoundException");

    let missing = send(&http1(), get(&sim.url(), "/model-invocation-job/abcdefabcdef")).await;
    missing.assert_error(404, "ResourceNotFoundException");
    let arn = create(&sim, &create_body("bucket-a", "in.jsonl", "elsewhere")).await.json()["jobArn"]
        .as_str()
        .unwrap()
        .to_owned();
    let other_region = arn.replace("us-east-1", "eu-west-1").replace(':', "%3A").replace('/', "%2F");
    let moved = send(&http1(), get(&sim.url(), &format!("/model-invocation-job/{other_region}"))).await;
    moved.assert_error(404, "ResourceNotFoundException");
    let unsigned =
        Request::get(format!("{}/model-invocation-jobs", sim.url())).body(Full::new(Bytes::new())).unwrap();
    send(&http1(), unsigned).await.assert_error(403, "MissingAuthenticationTokenException");
    let bad_page = send(&http1(), get(&sim.url(), "/model-invocation-jobs?maxResults=0")).await;
    bad_page.assert_error(400, "ValidationException");
}

/// A `moto_server` child process, killed on drop.
struct Moto {
    child: Child,
    url: String,
}

impl Moto {
    fn start() -> Option<Moto> {
        let bin = Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("run by cargo"))
            .join("../.venv/bin/moto_server");
        if !bin.exists() {
            eprintln!(
                "SKIPPED: {} not found; run scripts/test (it installs tests/e2e/requirements.txt)",
                bin.display()
            );
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto_server did not listen on {port} within 30s");
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(Moto { child, url: format!("http://127.0.0.1:{port}") })
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn a_job_on_s3_answers_every_record_out_of_order() {
    let Some(moto) = Moto::start() else { return };
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(&moto.url)
            .force_path_style(true)
            .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
            .http_client(
                aws_smithy_http_client::Builder::new()
                    .tls_provider(Provider::Rustls(CryptoMode::Ring))
                    .build_https(),
            )
            .build(),
    );
    s3.create_bucket().bucket("jobs").send().await.unwrap();
    let mut input = String::new();
    for i in 0..5 {
        let text =
            if i == 3 { "x [[sim:error=ModelErrorException]]".to_owned() } else { format!("record {i}") };
        let line = json!({"recordId": format!("r{i}"), "modelInput": {"messages": [{"role": "user", "content": [{"text": text}]}]}});
        input.push_str(&format!("{line}\n"));
    }
    s3.put_object()
        .bucket("jobs")
        .key("in/five.jsonl")
        .body(ByteStream::from(input.into_bytes()))
        .send()
        .await
        .unwrap();

    let sim = batch_sim(Some(moto.url.clone()), 5).await;
    let created = create(&sim, &create_body("jobs", "in/five.jsonl", "five")).await;
    let arn = created.json()["jobArn"].as_str().unwrap().to_owned();
    let (job, seen) = wait(&sim, &arn).await;
    assert_eq!(seen.last().map(String::as_str), Some("PartiallyCompleted"), "{job}");
    let walk = ["Submitted", "Validating", "Scheduled", "InProgress", "PartiallyCompleted"];
    assert!(seen.iter().all(|s| walk.contains(&s.as_str())), "{seen:?}");
    let counts = ["totalRecordCount", "processedRecordCount", "successRecordCount", "errorRecordCount"];
    assert_eq!(counts.map(|k| job[k].as_u64().unwrap()), [5, 5, 4, 1]);

    let id = arn.rsplit('/').next().unwrap();
    let read = |key: String| {
        let s3 = s3.clone();
        async move {
            let object = s3.get_object().bucket("jobs").key(key).send().await.unwrap();
            String::from_utf8(object.body.collect().await.unwrap().to_vec()).unwrap()
        }
    };
    let out = read(format!("results/{id}/five.jsonl.out")).await;
    let lines: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let ids: Vec<&str> = lines.iter().map(|l| l["recordId"].as_str().unwrap()).collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, ["r0", "r1", "r2", "r3", "r4"]);
    assert_ne!(ids, sorted, "not the input order");
    let failed = lines.iter().find(|l| l["recordId"] == "r3").unwrap();
    assert_eq!(failed["error"]["errorCode"], 424);
    assert!(failed.get("modelOutput").is_none());
    let ok = lines.iter().find(|l| l["recordId"] == "r1").unwrap();
    assert_eq!(ok["modelOutput"]["output"]["message"]["content"][0]["text"], "Simulated reply to: record 1");

    let manifest: Value =
        serde_json::from_str(&read(format!("results/{id}/manifest.json.out")).await).unwrap();
    assert_eq!(
        manifest,
        json!({"totalRecordCount": 5, "processedRecordCount": 5, "successRecordCount": 4, "errorRecordCount": 1,
               "inputTokenCount": 8, "outputTokenCount": 20})
    );
}
