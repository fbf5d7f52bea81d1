//! Golden tests of the InvokeModel translators: `embeddings_titan`, `embeddings_cohere`,
//! `images_nova`, `images_stability`.
//!
//! Each folder under `tests/golden/<translator>/` is one case:
//! - `model_id.txt`: the Bedrock model id (it picks the family);
//! - `openai_request.json` (embeddings, generations) or `openai_edit.json` (edits:
//!   `{"fields": {name: text}, "files": {name: [base64, ...]}}`, sent as a real multipart body);
//! - `bedrock_requests.json`: the expected InvokeModel bodies, in order, or `error.json`
//!   (`{"status", "body"}`) when the request is refused;
//! - `bedrock_responses.json` (input; for Cohere `[{"body", "input_tokens"}]`) and
//!   `openai_response.json` or `response_error.json` (expected);
//! - `bedrock_error.json` (input, `{"status", "type", "body"}`): a Bedrock error, with the error
//!   the caller gets in `response_error.json`.
//!
//! `UPDATE_GOLDEN=1 cargo test -p bedrock-gateway-proxy --test invoke_golden` rewrites the
//! expected files; review the diff before committing.

mod golden_support;

use std::fs;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use golden_support::{check_json, error_value, update};
use proxy::bedrock::embeddings::{CohereEmbedResponse, TitanEmbedResponse};
use proxy::bedrock::errors::api_error;
use proxy::bedrock::images::{CanvasResponse, StabilityResponse};
use proxy::bedrock::models::{EmbeddingFamily, ImageFamily, embedding_family, image_family};
use proxy::error::ApiError;
use proxy::openai::embeddings::parse_embedding_request;
use proxy::openai::images::{parse_edit_request, parse_generation_request};
use proxy::translate::{embeddings_cohere, embeddings_titan, images_nova, images_stability};
use serde::Serialize;
use serde_json::Value;

const CREATED: u64 = 1_700_000_000;
const BOUNDARY: &str = "golden-boundary-7MA4YWxkTrZu0gW";

fn cases(translator: &str) -> Vec<PathBuf> {
    let root = Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("run by cargo"))
        .join("tests/golden")
        .join(translator);
    let mut cases: Vec<_> = fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|entry| entry.expect("readable entry").path())
        .filter(|path| path.is_dir())
        .collect();
    cases.sort();
    cases
}

async fn run_all(translator: &str, min_cases: usize) {
    let cases = cases(translator);
    assert!(cases.len() >= min_cases, "expected at least {min_cases} golden cases for {translator}");
    let mut failures = Vec::new();
    for case in &cases {
        if let Err(e) = run_case(translator, case).await {
            failures.push(format!("{}: {e}", case.display()));
        }
    }
    assert!(failures.is_empty(), "{} golden case(s) failed:\n\n{}", failures.len(), failures.join("\n\n"));
}

#[tokio::test]
async fn embeddings_titan_golden() {
    run_all("embeddings_titan", 5).await;
}

#[tokio::test]
async fn embeddings_cohere_golden() {
    run_all("embeddings_cohere", 4).await;
}

#[tokio::test]
async fn images_nova_golden() {
    run_all("images_nova", 8).await;
}

#[tokio::test]
async fn images_stability_golden() {
    run_all("images_stability", 5).await;
}

fn read(dir: &Path, name: &str) -> Result<Vec<u8>, String> {
    fs::read(dir.join(name)).map_err(|e| format!("{name}: {e}"))
}

fn read_json<T: serde::de::DeserializeOwned>(dir: &Path, name: &str) -> Result<T, String> {
    serde_json::from_slice(&read(dir, name)?).map_err(|e| format!("{name}: {e}"))
}

/// The expected-request check, or the refusal check when the translator refused.
fn requests<T: Serialize>(dir: &Path, result: Result<Vec<T>, ApiError>) -> Result<bool, String> {
    match result {
        Ok(requests) => {
            if dir.join("error.json").exists() {
                return Err("error.json is present but the request was accepted".into());
            }
            check_json(dir, "bedrock_requests.json", &requests, update())?;
            Ok(true)
        }
        Err(err) => check_json(dir, "error.json", &error_value(&err), update()).map(|()| false),
    }
}

fn outcome<T: Serialize>(dir: &Path, result: Result<T, ApiError>) -> Result<(), String> {
    match result {
        Ok(response) => check_json(dir, "openai_response.json", &response, update()),
        Err(err) => check_json(dir, "response_error.json", &error_value(&err), update()),
    }
}

async fn run_case(translator: &str, dir: &Path) -> Result<(), String> {
    let model_id = String::from_utf8(read(dir, "model_id.txt")?).unwrap().trim().to_owned();
    match translator {
        "embeddings_titan" | "embeddings_cohere" => {
            let req = match parse_embedding_request(&read(dir, "openai_request.json")?) {
                Ok(req) => req,
                Err(err) => return requests::<()>(dir, Err(err)).map(drop),
            };
            let family = embedding_family(&model_id).ok_or("model_id.txt names no embedding family")?;
            if family == EmbeddingFamily::Cohere {
                if !requests(
                    dir,
                    embeddings_cohere::cohere_requests(&req, embeddings_cohere::DEFAULT_INPUT_TYPE),
                )? || !has(dir, "bedrock_responses.json")
                {
                    return Ok(());
                }
                let raw: Vec<Value> = read_json(dir, "bedrock_responses.json")?;
                let batches = raw
                    .into_iter()
                    .map(|b| {
                        let body: CohereEmbedResponse = serde_json::from_value(b["body"].clone()).unwrap();
                        (body, b["input_tokens"].as_u64().unwrap_or(0))
                    })
                    .collect();
                outcome(dir, embeddings_cohere::embedding_list(batches, &req))
            } else {
                let v2 = family == EmbeddingFamily::TitanV2;
                if !requests(dir, embeddings_titan::titan_requests(&req, v2))?
                    || !has(dir, "bedrock_responses.json")
                {
                    return Ok(());
                }
                let responses: Vec<TitanEmbedResponse> = read_json(dir, "bedrock_responses.json")?;
                outcome(dir, embeddings_titan::embedding_list(responses, &req))
            }
        }
        _ => {
            let family = image_family(&model_id).ok_or("model_id.txt names no image family")?;
            let stability = matches!(family, ImageFamily::Sd35Large | ImageFamily::StableImage);
            let accepted = if has(dir, "openai_edit.json") {
                let (content_type, body) = multipart(&read_json(dir, "openai_edit.json")?);
                match parse_edit_request(Some(&content_type), body).await {
                    Err(err) => requests::<()>(dir, Err(err))?,
                    Ok(req) if stability => requests(dir, images_stability::edit_requests(&req, family))?,
                    Ok(req) => requests(dir, images_nova::edit_request(&req, family).map(|r| vec![r]))?,
                }
            } else {
                match parse_generation_request(&read(dir, "openai_request.json")?) {
                    Err(err) => requests::<()>(dir, Err(err))?,
                    Ok(req) if stability => requests(dir, images_stability::generation_requests(&req))?,
                    Ok(req) => requests(dir, images_nova::generation_request(&req, family).map(|r| vec![r]))?,
                }
            };
            if !accepted {
                return Ok(());
            }
            if has(dir, "bedrock_error.json") {
                let e: Value = read_json(dir, "bedrock_error.json")?;
                let body = serde_json::to_vec(&e["body"]).unwrap();
                let err =
                    api_error(e["status"].as_u64().unwrap() as u16, e["type"].as_str(), &body, "demo/model");
                return check_json(
                    dir,
                    "response_error.json",
                    &error_value(&images_nova::refine_error(err)),
                    update(),
                );
            }
            if !has(dir, "bedrock_responses.json") {
                return Ok(());
            }
            if stability {
                let responses: Vec<StabilityResponse> = read_json(dir, "bedrock_responses.json")?;
                outcome(dir, images_stability::images_response(responses, CREATED))
            } else {
                let mut responses: Vec<CanvasResponse> = read_json(dir, "bedrock_responses.json")?;
                outcome(dir, images_nova::images_response(responses.remove(0), CREATED))
            }
        }
    }
}

fn has(dir: &Path, name: &str) -> bool {
    dir.join(name).exists()
}

/// A multipart/form-data body from `{"fields": {...}, "files": {name: [base64, ...]}}`.
fn multipart(spec: &Value) -> (String, Bytes) {
    let mut body = Vec::new();
    for (name, value) in spec["fields"].as_object().into_iter().flatten() {
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{}\r\n",
                value.as_str().unwrap()
            )
            .as_bytes(),
        );
    }
    for (name, files) in spec["files"].as_object().into_iter().flatten() {
        for (i, file) in files.as_array().unwrap().iter().enumerate() {
            body.extend_from_slice(
                format!(
                    "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{name}{i}.png\"\r\n\
                     Content-Type: image/png\r\n\r\n"
                )
                .as_bytes(),
            );
            body.extend_from_slice(&STANDARD.decode(file.as_str().unwrap()).unwrap());
            body.extend_from_slice(b"\r\n");
        }
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={BOUNDARY}"), Bytes::from(body))
}
