//! Golden tests of the OpenAI batch <-> Bedrock batch inference translator.
//!
//! Each folder under `tests/golden/batch_bedrock/` is one case:
//! - `model.json`: the served model (rendered `Model`) the batch runs on (input);
//! - `input.jsonl`: the caller's batch file (input);
//! - `bedrock_records.jsonl`: the expected Bedrock input records, one per request, or
//!   `error.json` (`{"status", "body"}`) when the file must be refused;
//! - `bedrock_output.jsonl.out` (input, in Bedrock's own order) and `openai_output.json`
//!   (expected): each record's OpenAI output line, which file it goes to and its tokens.
//!
//! `UPDATE_GOLDEN=1 cargo test -p bedrock-gateway-proxy --test batch_bedrock_golden` rewrites the
//! expected files from the current output; review the diff before committing.

mod golden_support;

use std::fs;
use std::path::Path;

use api::config::Model;
use golden_support::{check_bytes, check_json, error_value};
use proxy::bedrock::batch::OutputRecord;
use proxy::openai::batches::LineChecker;
use proxy::translate::batch_bedrock::{LineContext, OutputMeta, input_record, output_line};
use serde_json::json;

#[test]
fn batch_bedrock_golden() {
    let root = Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("run by cargo"))
        .join("tests/golden/batch_bedrock");
    let update = golden_support::update();
    let mut cases: Vec<_> = fs::read_dir(&root)
        .expect("golden folder exists")
        .map(|entry| entry.expect("readable entry").path())
        .filter(|path| path.is_dir())
        .collect();
    cases.sort();
    assert!(cases.len() >= 5, "expected the golden cases under {}", root.display());
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|case| run_case(case, update).err().map(|e| format!("{}: {e}", case.display())))
        .collect();
    assert!(failures.is_empty(), "{} golden case(s) failed:\n\n{}", failures.len(), failures.join("\n\n"));
}

fn run_case(dir: &Path, update: bool) -> Result<(), String> {
    let model: Model = serde_json::from_slice(&fs::read(dir.join("model.json")).map_err(|e| e.to_string())?)
        .map_err(|e| format!("model.json: {e}"))?;
    let input = fs::read(dir.join("input.jsonl")).map_err(|e| format!("input.jsonl: {e}"))?;
    let mut checker = LineChecker::default();
    let mut records = Vec::new();
    let mut contexts: Vec<Option<LineContext>> = Vec::new();
    for raw in input.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let translated = checker
            .check(raw)
            .map_err(|e| e.to_api_error())
            .and_then(|line| line.map(|line| input_record(checker.lines(), &line, &model)).transpose());
        match translated {
            Ok(Some((record, context))) => {
                records.extend_from_slice(&record);
                records.push(b'\n');
                contexts.push(Some(context));
            }
            Ok(None) => contexts.push(None),
            Err(e) => return check_json(dir, "error.json", &error_value(&e), update),
        }
    }
    if dir.join("error.json").exists() && !update {
        return Err("expected error.json, but the file was accepted".into());
    }
    check_bytes(dir, "bedrock_records.jsonl", &records, update)?;
    let meta = OutputMeta {
        job_id: "abcdef123456".into(),
        model: model.served_name.clone(),
        created: 1_700_000_000,
    };
    let output = fs::read(dir.join("bedrock_output.jsonl.out"))
        .map_err(|e| format!("bedrock_output.jsonl.out: {e}"))?;
    let mut lines = Vec::new();
    for raw in output.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let record: OutputRecord = serde_json::from_slice(raw).map_err(|e| format!("output record: {e}"))?;
        let t = output_line(record, &contexts, &meta).ok_or("a record named no request")?;
        lines.push(json!({
            "file": if t.ok { "output" } else { "error" },
            "tokens": {"input": t.tokens.input, "output": t.tokens.output, "cache_read": t.tokens.cache_read},
            "line": t.line,
        }));
    }
    check_json(dir, "openai_output.json", &lines, update)
}
