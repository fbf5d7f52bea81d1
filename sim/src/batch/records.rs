//! Batch records: the input JSONL (`{"recordId", "modelInput"}` per line), each record answered
//! by the simulator's own InvokeModel or Converse logic, the output lines
//! (`{"recordId", "modelInput", "modelOutput"}` or `... "error": {"errorCode", "errorMessage"}`)
//! in an order that is not the input order (Bedrock does not keep it), and `manifest.json.out`.

use serde::Serialize;
use serde_json::{Map, Value, json};

use super::create::InvocationType;
use crate::errors::AwsError;
use crate::{converse, invoke};

/// One input record.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Record {
    /// `recordId` (generated when the line has none, as Bedrock does).
    pub id: String,
    /// `modelInput`.
    pub input: Value,
}

/// Parses one input file. A line that is not a JSON object with an object `modelInput` (and
/// at most a string `recordId` beside it) fails the whole job, with a message naming the line.
pub(crate) fn parse_input(file: &str, text: &str) -> Result<Vec<Record>, String> {
    let mut records = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |why: &str| format!("Invalid record in {file} at line {}: {why}", i + 1);
        let value: Value = serde_json::from_str(line).map_err(|e| bad(&format!("not valid JSON ({e})")))?;
        let Value::Object(mut obj) = value else { return Err(bad("a record must be a JSON object")) };
        if let Some(key) = obj.keys().find(|k| *k != "recordId" && *k != "modelInput") {
            return Err(bad(&format!("unexpected key '{key}'; a record holds only recordId and modelInput")));
        }
        let id = match obj.remove("recordId") {
            None => generated_id(),
            Some(Value::String(s)) if !s.is_empty() => s,
            Some(_) => return Err(bad("recordId must be a non-empty string")),
        };
        match obj.remove("modelInput") {
            Some(input @ Value::Object(_)) => records.push(Record { id, input }),
            Some(_) => return Err(bad("modelInput must be a JSON object")),
            None => return Err(bad("modelInput is missing")),
        }
    }
    Ok(records)
}

/// An 11-character alphanumeric record id, the form Bedrock adds.
fn generated_id() -> String {
    std::iter::repeat_with(|| fastrand::alphanumeric().to_ascii_uppercase()).take(11).collect()
}

/// What answering one record gave.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Outcome {
    /// The model answered.
    Output {
        /// The InvokeModel response body or the Converse response.
        body: Value,
        /// Input tokens the answer used.
        input_tokens: u64,
        /// Output tokens it produced.
        output_tokens: u64,
    },
    /// The record failed (invalid input, a `[[sim:error=...]]` directive, ...).
    Error {
        /// HTTP status of the error, e.g. 400.
        code: u16,
        /// Its message.
        message: String,
    },
}

impl Outcome {
    fn from_error(e: AwsError) -> Outcome {
        Outcome::Error { code: e.status.as_u16(), message: e.message }
    }
}

/// Answers one record's `modelInput` for `model_id` as a `kind` call would be answered.
pub(crate) async fn answer(kind: InvocationType, model_id: &str, input: &Value) -> Outcome {
    let body = serde_json::to_vec(input).unwrap_or_default();
    match kind {
        InvocationType::Converse => match converse::answer(model_id, &body, None, None).await {
            Ok((reply, directives)) => {
                let latency_ms = u64::try_from(directives.latency.as_millis()).unwrap_or(u64::MAX);
                let response = converse::response_body(&reply, latency_ms);
                Outcome::Output {
                    body: serde_json::from_slice(&response).unwrap_or_default(),
                    input_tokens: reply.input_tokens,
                    output_tokens: reply.output_tokens,
                }
            }
            Err(e) => Outcome::from_error(e),
        },
        InvocationType::InvokeModel => {
            let reply = match invoke::family(model_id) {
                Ok(family) => invoke::answer_json(model_id, family, &body).await,
                Err(e) => Err(e),
            };
            match reply {
                Ok(reply) => Outcome::Output {
                    body: serde_json::from_slice(&reply.body).unwrap_or_default(),
                    input_tokens: reply.input_tokens.unwrap_or(0),
                    output_tokens: reply.output_tokens,
                },
                Err(e) => Outcome::from_error(e),
            }
        }
    }
}

/// One output line (without the newline).
pub(crate) fn output_line(record: &Record, outcome: &Outcome) -> String {
    let mut line = Map::new();
    line.insert("recordId".into(), json!(record.id));
    line.insert("modelInput".into(), record.input.clone());
    match outcome {
        Outcome::Output { body, .. } => line.insert("modelOutput".into(), body.clone()),
        Outcome::Error { code, message } => {
            line.insert("error".into(), json!({"errorCode": code, "errorMessage": message}))
        }
    };
    Value::Object(line).to_string()
}

/// The order the output lists `records` in: by a hash of the record id, and never the input
/// order when there are two records or more.
pub(crate) fn output_order(records: &[Record]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..records.len()).collect();
    order.sort_by_key(|&i| (invoke::seed(&[records[i].id.as_bytes()]), i));
    if order.windows(2).all(|w| w[0] < w[1]) && order.len() > 1 {
        order.swap(0, 1);
    }
    order
}

/// `manifest.json.out`.
#[derive(Serialize, Debug, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Manifest {
    /// Records submitted.
    pub total_record_count: u64,
    /// Records processed.
    pub processed_record_count: u64,
    /// Records with a `modelOutput`.
    pub success_record_count: u64,
    /// Records with an `error`.
    pub error_record_count: u64,
    /// Input tokens of the processed records.
    pub input_token_count: u64,
    /// Output tokens of the processed records.
    pub output_token_count: u64,
}

impl Manifest {
    /// Counts one answered record.
    pub(crate) fn add(&mut self, outcome: &Outcome) {
        self.processed_record_count += 1;
        match outcome {
            Outcome::Output { input_tokens, output_tokens, .. } => {
                self.success_record_count += 1;
                self.input_token_count += input_tokens;
                self.output_token_count += output_tokens;
            }
            Outcome::Error { .. } => self.error_record_count += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_lines_become_records() {
        let text = "{\"recordId\":\"r1\",\"modelInput\":{\"inputText\":\"a\"}}\n\n{\"modelInput\":{\"inputText\":\"b\"}}\n";
        let records = parse_input("in.jsonl", text).unwrap();
        assert_eq!(records[0], Record { id: "r1".into(), input: json!({"inputText": "a"}) });
        assert_eq!(records[1].id.len(), 11);
        assert!(records[1].id.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()));
    }

    #[test]
    fn malformed_lines_name_the_file_and_line() {
        let cases = [
            ("{\"modelInput\":{}}\nnot json", "Invalid record in f.jsonl at line 2: not valid JSON"),
            ("[1]", "at line 1: a record must be a JSON object"),
            ("{\"recordId\":\"a\"}", "at line 1: modelInput is missing"),
            ("{\"recordId\":\"a\",\"modelInput\":\"hi\"}", "modelInput must be a JSON object"),
            ("{\"recordId\":7,\"modelInput\":{}}", "recordId must be a non-empty string"),
            ("{\"modelId\":\"m\",\"modelInput\":{}}", "unexpected key 'modelId'"),
        ];
        for (text, expected) in cases {
            let err = parse_input("f.jsonl", text).unwrap_err();
            assert!(err.contains(expected), "{text}: {err}");
        }
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
    }

    #[test]
    fn converse_records_get_converse_responses() {
        let input = json!({"messages": [{"role": "user", "content": [{"text": "Hello there"}]}]});
        let out = runtime().block_on(answer(
            InvocationType::Converse,
            "anthropic.claude-3-haiku-20240307-v1:0",
            &input,
        ));
        let Outcome::Output { body, input_tokens, output_tokens } = out else { panic!("{out:?}") };
        assert_eq!(body["output"]["message"]["content"][0]["text"], "Simulated reply to: Hello there");
        assert_eq!(body["stopReason"], "end_turn");
        assert_eq!((input_tokens, output_tokens), (2, 5));
        assert_eq!(body["usage"]["totalTokens"], 7);
    }

    #[test]
    fn invoke_records_get_model_native_bodies() {
        let input = json!({"inputText": "hello world", "dimensions": 256});
        let out =
            runtime().block_on(answer(InvocationType::InvokeModel, "amazon.titan-embed-text-v2:0", &input));
        let Outcome::Output { body, input_tokens, .. } = out else { panic!("{out:?}") };
        assert_eq!(body["embedding"].as_array().unwrap().len(), 256);
        assert_eq!(body["inputTextTokenCount"].as_u64(), Some(input_tokens));
    }

    #[test]
    fn invalid_inputs_and_directives_become_error_records() {
        let rt = runtime();
        let claude = "anthropic.claude-3-haiku-20240307-v1:0";
        let bad =
            rt.block_on(answer(InvocationType::Converse, claude, &json!({"messages": [], "temperature": 1})));
        let Outcome::Error { code: 400, message } = bad else { panic!("{bad:?}") };
        assert!(message.contains("temperature"), "{message}");
        let throttled = json!({"messages": [{"role": "user", "content": [{"text": "x [[sim:error=ThrottlingException]]"}]}]});
        let out = rt.block_on(answer(InvocationType::Converse, claude, &throttled));
        assert!(matches!(out, Outcome::Error { code: 429, .. }), "{out:?}");
        let embed = rt.block_on(answer(
            InvocationType::InvokeModel,
            "amazon.titan-embed-text-v2:0",
            &json!({"texts": ["a"]}),
        ));
        assert!(matches!(embed, Outcome::Error { code: 400, .. }), "{embed:?}");
    }

    #[test]
    fn output_lines_carry_input_and_output_or_error() {
        let record = Record { id: "r1".into(), input: json!({"inputText": "a"}) };
        let ok = Outcome::Output { body: json!({"x": 1}), input_tokens: 1, output_tokens: 0 };
        let line = |o: &Outcome| serde_json::from_str::<Value>(&output_line(&record, o)).unwrap();
        assert_eq!(
            line(&ok),
            json!({"recordId": "r1", "modelInput": {"inputText": "a"}, "modelOutput": {"x": 1}})
        );
        let err = Outcome::Error { code: 400, message: "bad".into() };
        assert_eq!(
            line(&err),
            json!({"recordId": "r1", "modelInput": {"inputText": "a"}, "error": {"errorCode": 400, "errorMessage": "bad"}})
        );
        assert!(!output_line(&record, &err).contains('\n'));
        let mut manifest = Manifest::default();
        manifest.add(&ok);
        manifest.add(&err);
        assert_eq!(
            serde_json::to_value(manifest).unwrap(),
            json!({"totalRecordCount": 0, "processedRecordCount": 2, "successRecordCount": 1, "errorRecordCount": 1, "inputTokenCount": 1, "outputTokenCount": 0})
        );
    }

    #[test]
    fn output_order_is_a_permutation_other_than_the_input_order() {
        for n in 2..40 {
            let records: Vec<Record> =
                (0..n).map(|i| Record { id: format!("r{i}"), input: json!({}) }).collect();
            let order = output_order(&records);
            let mut sorted = order.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, (0..n).collect::<Vec<_>>());
            assert_ne!(order, sorted, "n = {n}");
            assert_eq!(order, output_order(&records), "deterministic");
        }
        assert_eq!(output_order(&[Record { id: "a".into(), input: json!({}) }]), [0]);
    }
}
