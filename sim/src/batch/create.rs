//! CreateModelInvocationJob's request body checked against the AWS model
//! (`CreateModelInvocationJobRequest`): required members, lengths, ranges, enums and the
//! patterns of `jobName`, `roleArn`, `s3Uri`, `clientRequestToken`, tags and VPC ids. Every
//! violation is listed in one ValidationException, worded like AWS's
//! (`N validation errors detected: Value 'x' at 'jobName' failed to satisfy constraint: ...`).

use serde_json::{Map, Value};

use crate::errors::AwsError;

/// Members of CreateModelInvocationJobRequest.
const MEMBERS: &[&str] = &[
    "jobName",
    "roleArn",
    "clientRequestToken",
    "modelId",
    "inputDataConfig",
    "outputDataConfig",
    "vpcConfig",
    "timeoutDurationInHours",
    "tags",
    "modelInvocationType",
];
/// `timeoutDurationInHours` when the request leaves it out (the model's minimum, AWS's default).
pub(crate) const DEFAULT_TIMEOUT_HOURS: u32 = 24;

/// `modelInvocationType`: what each record's `modelInput` is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum InvocationType {
    /// A model-native InvokeModel body (the default).
    InvokeModel,
    /// A Converse request body.
    Converse,
}

impl InvocationType {
    /// The wire name.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            InvocationType::InvokeModel => "InvokeModel",
            InvocationType::Converse => "Converse",
        }
    }
}

/// A location `s3://bucket/key-or-prefix`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct S3Location {
    /// Bucket name.
    pub bucket: String,
    /// Key or prefix, without the leading `/` (may be empty or end with `/`).
    pub key: String,
}

/// A validated CreateModelInvocationJob request.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct JobSpec {
    /// `jobName`.
    pub name: String,
    /// `roleArn`.
    pub role_arn: String,
    /// `clientRequestToken`.
    pub client_request_token: Option<String>,
    /// `modelId` as given.
    pub model_id: String,
    /// `inputDataConfig` as given (returned by Get).
    pub input_data_config: Value,
    /// `outputDataConfig` as given.
    pub output_data_config: Value,
    /// `vpcConfig` as given.
    pub vpc_config: Option<Value>,
    /// `timeoutDurationInHours`, defaulted.
    pub timeout_hours: u32,
    /// `modelInvocationType` when given (InvokeModel otherwise).
    pub invocation_type: Option<InvocationType>,
    /// Where the input is.
    pub input: S3Location,
    /// Where the output goes.
    pub output: S3Location,
}

impl JobSpec {
    /// The invocation type in effect.
    pub(crate) fn kind(&self) -> InvocationType {
        self.invocation_type.unwrap_or(InvocationType::InvokeModel)
    }
}

/// Collects constraint violations in AWS's wording.
#[derive(Default)]
struct Violations(Vec<String>);

impl Violations {
    fn add(&mut self, value: Option<&Value>, at: &str, rule: &str) {
        let shown = match value {
            None | Some(Value::Null) => "null".to_owned(),
            Some(Value::String(s)) => format!("'{s}'"),
            Some(other) => format!("'{other}'"),
        };
        self.0.push(format!("Value {shown} at '{at}' failed to satisfy constraint: Member must {rule}"));
    }

    fn into_result(self) -> Result<(), AwsError> {
        match self.0.len() {
            0 => Ok(()),
            1 => Err(AwsError::validation(format!("1 validation error detected: {}", self.0[0]))),
            n => Err(AwsError::validation(format!("{n} validation errors detected: {}", self.0.join("; ")))),
        }
    }
}

/// A pattern as the AWS model writes it and the check that implements it.
type Pattern<'a> = (&'a str, fn(&str) -> bool);

/// A string member checked for presence, type, length (in characters) and `pattern`.
fn string<'a>(
    v: &mut Violations,
    obj: &'a Map<String, Value>,
    key: &str,
    at: &str,
    required: bool,
    (min, max): (usize, usize),
    pattern: Option<Pattern<'_>>,
) -> Option<&'a str> {
    let value = obj.get(key);
    let Some(Value::String(s)) = value else {
        match value {
            None | Some(Value::Null) if !required => {}
            None | Some(Value::Null) => v.add(value, at, "not be null"),
            Some(_) => v.add(value, at, "be a string"),
        }
        return None;
    };
    let n = s.chars().count();
    if n < min {
        v.add(value, at, &format!("have length greater than or equal to {min}"));
    } else if n > max {
        v.add(value, at, &format!("have length less than or equal to {max}"));
    } else if let Some((regex, matches)) = pattern
        && !matches(s)
    {
        v.add(value, at, &format!("satisfy regular expression pattern: {regex}"));
    } else {
        return Some(s);
    }
    None
}

fn alnum(c: char) -> bool {
    c.is_ascii_alphanumeric()
}

/// `[a-zA-Z0-9]{1,63}(-*[a-zA-Z0-9\+\-\.]){0,63}`.
fn job_name(s: &str) -> bool {
    s.starts_with(alnum) && s.chars().all(|c| alnum(c) || "+-.".contains(c))
}

/// `[a-zA-Z0-9]{1,256}(-*[a-zA-Z0-9]){0,256}`.
fn idempotency_token(s: &str) -> bool {
    s.starts_with(alnum) && s.ends_with(alnum) && s.chars().all(|c| alnum(c) || c == '-')
}

/// `arn:aws(-[^:]+)?:iam::([0-9]{12})?:role/.+`.
fn role_arn(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("arn:aws") else { return false };
    let Some((partition, rest)) = rest.split_once(":iam::") else { return false };
    let partition_ok = partition.is_empty()
        || partition.strip_prefix('-').is_some_and(|p| !p.is_empty() && !p.contains(':'));
    let Some((account, role)) = rest.split_once(":role/") else { return false };
    let account_ok =
        account.is_empty() || (account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()));
    partition_ok && account_ok && !role.is_empty()
}

/// `[0-9]{12}`.
fn account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// `[-0-9a-zA-Z]+`.
fn vpc_id(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| alnum(c) || c == '-')
}

/// `[a-zA-Z0-9\s._:/=+@-]*`.
fn tag_text(s: &str) -> bool {
    s.chars().all(|c| alnum(c) || c.is_whitespace() || "._:/=+@-".contains(c))
}

/// `s3://[a-z0-9][-.a-z0-9]{1,61}[a-z0-9](?:/[-!_*'().a-z0-9A-Z]+(?:/[-!_*'().a-z0-9A-Z]+)*)?/?`,
/// split into bucket and key.
pub(crate) fn s3_location(uri: &str) -> Option<S3Location> {
    let rest = uri.strip_prefix("s3://")?;
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    let edge = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let bucket_ok = (3..=63).contains(&bucket.len())
        && bucket.starts_with(edge)
        && bucket.ends_with(edge)
        && bucket.chars().all(|c| edge(c) || c == '-' || c == '.');
    let segment_char = |c: char| c.is_ascii_alphanumeric() || "-!_*'().".contains(c);
    let segments = key.strip_suffix('/').unwrap_or(key);
    let key_ok =
        segments.is_empty() || segments.split('/').all(|s| !s.is_empty() && s.chars().all(segment_char));
    (bucket_ok && key_ok).then(|| S3Location { bucket: bucket.to_owned(), key: key.to_owned() })
}

/// The `ModelId` pattern of the AWS model.
const MODEL_ID_PATTERN: &str = "(arn:aws(-[^:]+)?:bedrock:[a-z0-9-]{1,20}:(([0-9]{12}:custom-model/[a-z0-9-]{1,63}[.]{1}[a-z0-9-:]{1,63}/[a-z0-9]{12}$)|(:foundation-model/([a-z0-9-]{1,63}[.]{1}[a-z0-9-]{1,63}([.]?[a-z0-9-]{1,63})([:][a-z0-9-]{1,63}){0,2})|(([0-9a-zA-Z][_-]?)+)$)|([0-9]{12}:(inference-profile|application-inference-profile)/[a-zA-Z0-9-:.]+$)))|([a-z0-9-]{1,63}[.]{1}[a-z0-9-]{1,63}([.]?[a-z0-9-]{1,63})([:][a-z0-9-]{1,63}){0,2})|(([0-9a-zA-Z][_-]?)+)";

/// The characters [`MODEL_ID_PATTERN`] allows; which catalogue model the id names is checked
/// against the catalogue afterwards.
fn model_id(s: &str) -> bool {
    s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.:/".contains(c))
}

const S3_URI_PATTERN: &str =
    "s3://[a-z0-9][-.a-z0-9]{1,61}[a-z0-9](?:/[-!_*'().a-z0-9A-Z]+(?:/[-!_*'().a-z0-9A-Z]+)*)?/?";

/// Checks one `s3InputDataConfig` / `s3OutputDataConfig` and returns its location.
fn s3_config(
    v: &mut Violations,
    parent: &Map<String, Value>,
    outer: &str,
    inner: &str,
    members: &[&str],
) -> Option<S3Location> {
    let at = format!("{outer}.{inner}");
    let Some(config) = parent.get(inner) else {
        v.add(None, &at, "not be null");
        return None;
    };
    let Some(config) = config.as_object() else {
        v.add(Some(config), &at, "be a structure");
        return None;
    };
    for key in config.keys().filter(|k| !members.contains(&k.as_str())) {
        v.add(config.get(key), &format!("{at}.{key}"), "be a member of the structure (unknown member)");
    }
    let uri = string(
        v,
        config,
        "s3Uri",
        &format!("{at}.s3Uri"),
        true,
        (1, 1024),
        Some((S3_URI_PATTERN, |s| s3_location(s).is_some())),
    );
    string(
        v,
        config,
        "s3BucketOwner",
        &format!("{at}.s3BucketOwner"),
        false,
        (0, usize::MAX),
        Some(("[0-9]{12}", account_id)),
    );
    if members.contains(&"s3InputFormat")
        && let Some(format) = config.get("s3InputFormat")
        && format.as_str() != Some("JSONL")
    {
        v.add(Some(format), &format!("{at}.s3InputFormat"), "satisfy enum value set: [JSONL]");
    }
    if members.contains(&"s3EncryptionKeyId") {
        string(v, config, "s3EncryptionKeyId", &format!("{at}.s3EncryptionKeyId"), false, (1, 2048), None);
    }
    uri.and_then(s3_location)
}

/// The object member `key`, or a violation when it is missing (and required) or not an object.
fn structure<'a>(
    v: &mut Violations,
    obj: &'a Map<String, Value>,
    key: &str,
    required: bool,
) -> Option<&'a Map<String, Value>> {
    match obj.get(key) {
        Some(Value::Object(o)) => Some(o),
        None | Some(Value::Null) => {
            if required {
                v.add(None, key, "not be null");
            }
            None
        }
        Some(other) => {
            v.add(Some(other), key, "be a structure");
            None
        }
    }
}

/// A list member of strings, each checked with `check`, with `min..=max` entries.
fn id_list(v: &mut Violations, obj: &Map<String, Value>, key: &str, at: &str, max: usize) {
    match obj.get(key) {
        Some(Value::Array(items)) => {
            if items.is_empty() || items.len() > max {
                v.add(obj.get(key), at, &format!("have length between 1 and {max}"));
            }
            for (i, item) in items.iter().enumerate() {
                let ok = item.as_str().is_some_and(|s| s.len() <= 32 && vpc_id(s));
                if !ok {
                    v.add(
                        Some(item),
                        &format!("{at}.{}", i + 1),
                        "satisfy regular expression pattern: [-0-9a-zA-Z]+",
                    );
                }
            }
        }
        value => v.add(value, at, "not be null"),
    }
}

/// Validates the request body; the model id is checked against the catalogue by the caller.
pub(crate) fn parse(body: &[u8]) -> Result<JobSpec, AwsError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        AwsError::new(400, "SerializationException", format!("The request body is not valid JSON: {e}"))
    })?;
    let obj = value.as_object().ok_or_else(|| {
        AwsError::new(400, "SerializationException", "The request body must be a JSON object.")
    })?;
    let mut v = Violations::default();
    for key in obj.keys().filter(|k| !MEMBERS.contains(&k.as_str())) {
        v.add(obj.get(key), key, "be a member of CreateModelInvocationJobRequest (unknown member)");
    }
    let name = string(
        &mut v,
        obj,
        "jobName",
        "jobName",
        true,
        (1, 63),
        Some(("[a-zA-Z0-9]{1,63}(-*[a-zA-Z0-9\\+\\-\\.]){0,63}", job_name)),
    );
    let role = string(
        &mut v,
        obj,
        "roleArn",
        "roleArn",
        true,
        (0, 2048),
        Some(("arn:aws(-[^:]+)?:iam::([0-9]{12})?:role/.+", role_arn)),
    );
    let token = string(
        &mut v,
        obj,
        "clientRequestToken",
        "clientRequestToken",
        false,
        (1, 256),
        Some(("[a-zA-Z0-9]{1,256}(-*[a-zA-Z0-9]){0,256}", idempotency_token)),
    );
    let model =
        string(&mut v, obj, "modelId", "modelId", true, (1, 2048), Some((MODEL_ID_PATTERN, model_id)));
    let input = structure(&mut v, obj, "inputDataConfig", true).and_then(|c| {
        s3_config(
            &mut v,
            c,
            "inputDataConfig",
            "s3InputDataConfig",
            &["s3InputFormat", "s3Uri", "s3BucketOwner"],
        )
    });
    let output = structure(&mut v, obj, "outputDataConfig", true).and_then(|c| {
        s3_config(
            &mut v,
            c,
            "outputDataConfig",
            "s3OutputDataConfig",
            &["s3Uri", "s3EncryptionKeyId", "s3BucketOwner"],
        )
    });
    if let Some(vpc) = structure(&mut v, obj, "vpcConfig", false) {
        id_list(&mut v, vpc, "subnetIds", "vpcConfig.subnetIds", 16);
        id_list(&mut v, vpc, "securityGroupIds", "vpcConfig.securityGroupIds", 5);
    }
    let timeout = match obj.get("timeoutDurationInHours") {
        None | Some(Value::Null) => Some(DEFAULT_TIMEOUT_HOURS),
        Some(n) => match n.as_u64() {
            Some(h @ 24..=168) => u32::try_from(h).ok(),
            _ => {
                v.add(Some(n), "timeoutDurationInHours", "have value between 24 and 168");
                None
            }
        },
    };
    match obj.get("tags") {
        None | Some(Value::Null) => {}
        Some(Value::Array(tags)) => {
            if tags.len() > 200 {
                v.add(obj.get("tags"), "tags", "have length less than or equal to 200");
            }
            for (i, tag) in tags.iter().enumerate() {
                let at = format!("tags.{}", i + 1);
                match tag.as_object() {
                    Some(t) => {
                        string(
                            &mut v,
                            t,
                            "key",
                            &format!("{at}.member.key"),
                            true,
                            (1, 128),
                            Some(("[a-zA-Z0-9\\s._:/=+@-]*", tag_text)),
                        );
                        string(
                            &mut v,
                            t,
                            "value",
                            &format!("{at}.member.value"),
                            true,
                            (0, 256),
                            Some(("[a-zA-Z0-9\\s._:/=+@-]*", tag_text)),
                        );
                    }
                    None => v.add(Some(tag), &at, "be a structure"),
                }
            }
        }
        Some(other) => v.add(Some(other), "tags", "be a list"),
    }
    let invocation_type = match obj.get("modelInvocationType") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s == "InvokeModel" => Some(InvocationType::InvokeModel),
        Some(Value::String(s)) if s == "Converse" => Some(InvocationType::Converse),
        Some(other) => {
            v.add(Some(other), "modelInvocationType", "satisfy enum value set: [InvokeModel, Converse]");
            None
        }
    };
    v.into_result()?;
    // Every required part is present once there are no violations.
    let missing = || AwsError::validation("The request is missing a required member.");
    Ok(JobSpec {
        name: name.ok_or_else(missing)?.to_owned(),
        role_arn: role.ok_or_else(missing)?.to_owned(),
        client_request_token: token.map(str::to_owned),
        model_id: model.ok_or_else(missing)?.to_owned(),
        input_data_config: obj["inputDataConfig"].clone(),
        output_data_config: obj["outputDataConfig"].clone(),
        vpc_config: obj.get("vpcConfig").filter(|v| !v.is_null()).cloned(),
        timeout_hours: timeout.ok_or_else(missing)?,
        invocation_type,
        input: input.ok_or_else(missing)?,
        output: output.ok_or_else(missing)?,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    /// A valid request body.
    pub(crate) fn body() -> Value {
        json!({
            "jobName": "nightly-run.1",
            "roleArn": "arn:aws:iam::123456789012:role/BedrockBatch",
            "modelId": "amazon.titan-embed-text-v2:0",
            "inputDataConfig": {"s3InputDataConfig": {"s3Uri": "s3://bucket-a/in/records.jsonl", "s3InputFormat": "JSONL"}},
            "outputDataConfig": {"s3OutputDataConfig": {"s3Uri": "s3://bucket-a/out/"}},
        })
    }

    /// The spec of [`body`].
    pub(crate) fn spec() -> JobSpec {
        parse(&serde_json::to_vec(&body()).unwrap()).unwrap()
    }

    fn error_of(body: Value) -> String {
        let err = parse(&serde_json::to_vec(&body).unwrap()).unwrap_err();
        assert_eq!((err.status.as_u16(), err.code), (400, "ValidationException"));
        err.message
    }

    #[test]
    fn a_valid_request_gives_its_spec() {
        let s = spec();
        assert_eq!(
            (s.name.as_str(), s.timeout_hours, s.kind()),
            ("nightly-run.1", 24, InvocationType::InvokeModel)
        );
        assert_eq!(s.input, S3Location { bucket: "bucket-a".into(), key: "in/records.jsonl".into() });
        assert_eq!(s.output, S3Location { bucket: "bucket-a".into(), key: "out/".into() });
        let mut b = body();
        b["modelInvocationType"] = json!("Converse");
        b["timeoutDurationInHours"] = json!(72);
        b["clientRequestToken"] = json!("tok-1");
        b["tags"] = json!([{"key": "team", "value": "a b"}]);
        b["vpcConfig"] = json!({"subnetIds": ["subnet-1"], "securityGroupIds": ["sg-1"]});
        let s = parse(&serde_json::to_vec(&b).unwrap()).unwrap();
        assert_eq!(
            (s.kind(), s.timeout_hours, s.client_request_token.as_deref()),
            (InvocationType::Converse, 72, Some("tok-1"))
        );
    }

    #[test]
    fn missing_members_are_listed() {
        assert_eq!(
            error_of(json!({})),
            "5 validation errors detected: Value null at 'jobName' failed to satisfy constraint: Member must not be null; \
             Value null at 'roleArn' failed to satisfy constraint: Member must not be null; \
             Value null at 'modelId' failed to satisfy constraint: Member must not be null; \
             Value null at 'inputDataConfig' failed to satisfy constraint: Member must not be null; \
             Value null at 'outputDataConfig' failed to satisfy constraint: Member must not be null"
        );
    }

    #[test]
    fn patterns_ranges_and_enums_are_enforced() {
        let cases = [
            (
                "jobName",
                json!("-lead"),
                "Value '-lead' at 'jobName' failed to satisfy constraint: Member must satisfy regular expression pattern",
            ),
            ("jobName", json!("a".repeat(64)), "Member must have length less than or equal to 63"),
            (
                "roleArn",
                json!("arn:aws:iam::12:role/x"),
                "at 'roleArn' failed to satisfy constraint: Member must satisfy regular expression pattern",
            ),
            (
                "timeoutDurationInHours",
                json!(12),
                "Value '12' at 'timeoutDurationInHours' failed to satisfy constraint: Member must have value between 24 and 168",
            ),
            (
                "modelInvocationType",
                json!("Chat"),
                "Member must satisfy enum value set: [InvokeModel, Converse]",
            ),
            ("clientRequestToken", json!("a_b"), "at 'clientRequestToken' failed to satisfy constraint"),
            (
                "modelId",
                json!(""),
                "Value '' at 'modelId' failed to satisfy constraint: Member must have length greater than or equal to 1",
            ),
            (
                "extra",
                json!(1),
                "at 'extra' failed to satisfy constraint: Member must be a member of CreateModelInvocationJobRequest",
            ),
        ];
        for (key, value, expected) in cases {
            let mut b = body();
            b[key] = value;
            let message = error_of(b);
            assert!(
                message.starts_with("1 validation error detected: ") && message.contains(expected),
                "{key}: {message}"
            );
        }
    }

    #[test]
    fn s3_uris_follow_the_pattern() {
        assert_eq!(s3_location("s3://b1c/"), Some(S3Location { bucket: "b1c".into(), key: String::new() }));
        assert_eq!(
            s3_location("s3://my.bucket-1"),
            Some(S3Location { bucket: "my.bucket-1".into(), key: String::new() })
        );
        for bad in [
            "s3://B/x",
            "s3://ab/x",
            "https://bucket/x",
            "s3://bucket//x",
            "s3://bucket/a b",
            "s3://-bucket/x",
        ] {
            assert_eq!(s3_location(bad), None, "{bad}");
        }
        let mut b = body();
        b["inputDataConfig"]["s3InputDataConfig"]["s3Uri"] = json!("s3://Bucket/in.jsonl");
        b["outputDataConfig"]["s3OutputDataConfig"]["s3Uri"] = json!(null);
        b["inputDataConfig"]["s3InputDataConfig"]["s3InputFormat"] = json!("CSV");
        let message = error_of(b);
        assert!(message.starts_with("3 validation errors detected: "), "{message}");
        assert!(message.contains("at 'inputDataConfig.s3InputDataConfig.s3Uri' failed to satisfy constraint: Member must satisfy regular expression pattern: s3://"), "{message}");
        assert!(message.contains("Value null at 'outputDataConfig.s3OutputDataConfig.s3Uri'"), "{message}");
        assert!(
            message.contains("Value 'CSV' at 'inputDataConfig.s3InputDataConfig.s3InputFormat'"),
            "{message}"
        );
    }

    #[test]
    fn bodies_that_are_not_json_objects_are_serialization_errors() {
        for body in [&b"{"[..], b"[]"] {
            assert_eq!(parse(body).unwrap_err().code, "SerializationException");
        }
    }
}
