//! Bedrock HTTP errors and in-stream exceptions mapped to OpenAI-shaped errors.

use proxy::bedrock::errors::{api_error, stream_exception_error};
use proxy::error::ApiError;
use serde_json::{Value, json};

const MODEL: &str = "prod/claude-sonnet";

/// (status, full JSON body) of an error.
fn seen(err: &ApiError) -> (u16, Value) {
    (err.status.as_u16(), serde_json::from_slice(&err.to_json()).unwrap())
}

fn body(message: &str) -> Vec<u8> {
    json!({ "message": message }).to_string().into_bytes()
}

#[test]
fn validation_passes_bedrock_message_on() {
    let err = api_error(
        400,
        Some("ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/"),
        &body("The model returned the following errors: max_tokens: must be <= 8192"),
        MODEL,
    );
    assert_eq!(
        seen(&err),
        (
            400,
            json!({"error": {
                "message": "The model returned the following errors: max_tokens: must be <= 8192",
                "type": "invalid_request_error", "param": null, "code": null}})
        )
    );
}

#[test]
fn access_denied_names_the_model_and_nothing_from_aws() {
    let aws = "User: arn:aws:sts::123456789012:assumed-role/gw/i-1 is not authorized to perform: \
               bedrock:InvokeModel";
    let err = api_error(403, Some("AccessDeniedException"), &body(aws), MODEL);
    assert_eq!(
        seen(&err),
        (
            403,
            json!({"error": {
                "message": "The gateway is not allowed to invoke model `prod/claude-sonnet` on Bedrock. \
                            Ask the gateway operator to enable access to this model for its AWS account.",
                "type": "permission_error", "param": null, "code": "model_access_denied"}})
        )
    );
}

#[test]
fn not_found_is_model_not_found() {
    let err = api_error(404, Some("ResourceNotFoundException"), &body("Model not found."), MODEL);
    assert_eq!(
        seen(&err),
        (
            404,
            json!({"error": {
                "message": "Bedrock could not find the model behind `prod/claude-sonnet`: Model not found.",
                "type": "invalid_request_error", "param": "model", "code": "model_not_found"}})
        )
    );
}

#[test]
fn throttling_and_quota_are_429() {
    for code in ["ThrottlingException", "ServiceQuotaExceededException"] {
        let err =
            api_error(429, Some(code), &body("Too many requests, please wait before trying again."), MODEL);
        assert_eq!(
            seen(&err),
            (
                429,
                json!({"error": {
                    "message": "Bedrock is rate limiting requests to model `prod/claude-sonnet`: Too many \
                                requests, please wait before trying again.",
                    "type": "rate_limit_error", "param": null, "code": "rate_limit_exceeded"}})
            ),
            "{code}"
        );
    }
}

#[test]
fn not_ready_and_unavailable_are_503_and_timeout_is_504() {
    for code in ["ModelNotReadyException", "ServiceUnavailableException"] {
        let (status, json) = seen(&api_error(503, Some(code), &body("Try later."), MODEL));
        assert_eq!(status, 503, "{code}");
        assert_eq!(json["error"]["code"], "service_unavailable");
        assert_eq!(
            json["error"]["message"],
            "Model `prod/claude-sonnet` is temporarily unavailable on Bedrock: Try later."
        );
    }
    let (status, json) = seen(&api_error(408, Some("ModelTimeoutException"), &body(""), MODEL));
    assert_eq!(status, 504);
    assert_eq!(
        json,
        json!({"error": {
            "message": "Model `prod/claude-sonnet` timed out on Bedrock.",
            "type": "server_error", "param": null, "code": "timeout"}})
    );
}

#[test]
fn credential_errors_blame_the_gateway_and_never_echo_aws_text() {
    let aws = "The request signature we calculated does not match. Credential=AKIAIOSFODNN7EXAMPLE/20250101";
    for code in [
        "InvalidSignatureException",
        "UnrecognizedClientException",
        "ExpiredTokenException",
        "MissingAuthenticationTokenException",
    ] {
        let err = api_error(403, Some(code), &body(aws), MODEL);
        assert_eq!(
            seen(&err),
            (
                502,
                json!({"error": {
                    "message": format!(
                        "Bedrock rejected the gateway's AWS credentials for the account serving model \
                         `prod/claude-sonnet` ({code}). This is not a problem with your request; the \
                         gateway operator must fix the account's credentials."),
                    "type": "server_error", "param": null, "code": "upstream_error"}})
            ),
            "{code}"
        );
        assert!(!err.message.contains("AKIA"));
    }
}

#[test]
fn the_code_falls_back_to_the_body_type() {
    let raw = br#"{"__type": "com.amazon.coral.service#ThrottlingException", "Message": "slow down"}"#;
    let err = api_error(429, None, raw, MODEL);
    assert_eq!(err.status.as_u16(), 429);
    assert_eq!(err.message, "Bedrock is rate limiting requests to model `prod/claude-sonnet`: slow down");
}

#[test]
fn anything_else_is_502() {
    let err = api_error(500, Some("InternalServerException"), &body("Internal error."), MODEL);
    assert_eq!(
        seen(&err),
        (
            502,
            json!({"error": {
                "message": "Bedrock failed the request for model `prod/claude-sonnet` (HTTP 500, \
                            InternalServerException): Internal error.",
                "type": "server_error", "param": null, "code": "upstream_error"}})
        )
    );
    let err = api_error(502, Some(""), b"<html>Bad Gateway</html>", MODEL);
    assert_eq!(
        err.message,
        "Bedrock failed the request for model `prod/claude-sonnet` (HTTP 502, no error type)."
    );
}

#[test]
fn stream_exceptions_use_the_same_mapping() {
    let err = stream_exception_error("throttlingException", "Too many requests", MODEL);
    assert_eq!(
        (err.status.as_u16(), err.kind, err.code),
        (429, "rate_limit_error", Some("rate_limit_exceeded"))
    );
    let err = stream_exception_error("validationException", "Input is too long.", MODEL);
    assert_eq!((err.status.as_u16(), err.message.as_str()), (400, "Input is too long."));
    let err = stream_exception_error("modelStreamErrorException", "The model failed.", MODEL);
    assert_eq!(
        seen(&err),
        (
            502,
            json!({"error": {
                "message": "Bedrock failed while streaming model `prod/claude-sonnet` \
                            (modelStreamErrorException): The model failed.",
                "type": "server_error", "param": null, "code": "upstream_error"}})
        )
    );
}
