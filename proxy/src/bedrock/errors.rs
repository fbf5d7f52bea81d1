//! Bedrock errors (HTTP responses and in-stream exceptions) mapped to OpenAI-shaped [`ApiError`]s.
//!
//! Bedrock's own message is passed on only where it is about the caller's request (validation,
//! throttling, not found, server-side failures). Access and credential errors get a message of
//! the gateway's own: AWS's text there names roles and accounts and, for signature errors, can
//! carry the access key id.

use http::StatusCode;
use serde::Deserialize;

use crate::error::ApiError;

/// AWS errors meaning the gateway's credentials were refused: the operator's problem.
const CREDENTIAL_ERRORS: &[&str] = &[
    "InvalidSignatureException",
    "UnrecognizedClientException",
    "ExpiredTokenException",
    "MissingAuthenticationTokenException",
    "IncompleteSignatureException",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
];

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default, alias = "Message")]
    message: Option<String>,
    #[serde(default, rename = "__type")]
    kind: Option<String>,
    #[serde(default)]
    code: Option<String>,
}

/// Maps a non-2xx Bedrock response to the error the caller sees.
///
/// `error_type` is the `x-amzn-ErrorType` header (`Code` or `Code:namespace`); without it the
/// code comes from the body's `__type` (`namespace#Code`) or `code`. `model` is the served
/// model name, used in messages instead of anything AWS-side.
pub fn api_error(status: u16, error_type: Option<&str>, body: &[u8], model: &str) -> ApiError {
    let parsed: Option<ErrorBody> = serde_json::from_slice(body).ok();
    let (message, body_code) = match parsed {
        Some(b) => (b.message.unwrap_or_default(), b.kind.or(b.code)),
        None => (String::new(), None),
    };
    let code = error_type
        .filter(|t| !t.trim().is_empty())
        .map(|t| t.split(':').next().unwrap_or(t))
        .or_else(|| body_code.as_deref().map(|c| c.rsplit('#').next().unwrap_or(c)))
        .map(str::trim)
        .unwrap_or("");
    map(code, &message, model).unwrap_or_else(|| {
        let code = if code.is_empty() { "no error type" } else { code };
        ApiError::bad_gateway(format!(
            "Bedrock failed the request for model `{model}` (HTTP {status}, {code}){}",
            detail(&message)
        ))
    })
}

/// Maps an exception or error frame received inside a ConverseStream body.
///
/// `exception_type` is the `:exception-type` (camelCase member name, e.g. `throttlingException`)
/// or the `:error-code` header.
pub fn stream_exception_error(exception_type: &str, message: &str, model: &str) -> ApiError {
    map(exception_type, message, model).unwrap_or_else(|| {
        ApiError::bad_gateway(format!(
            "Bedrock failed while streaming model `{model}` ({exception_type}){}",
            detail(message)
        ))
    })
}

/// `": <message>"`, or `"."` when Bedrock gave none.
fn detail(message: &str) -> String {
    let message = message.trim();
    if message.is_empty() { ".".to_owned() } else { format!(": {message}") }
}

/// The known codes; `None` for anything else. Case-insensitive because stream exceptions use
/// the camelCase member name and HTTP errors the PascalCase shape name.
fn map(code: &str, message: &str, model: &str) -> Option<ApiError> {
    let is = |name: &str| code.eq_ignore_ascii_case(name);
    let err = if is("ValidationException") {
        let message = message.trim();
        let message = if message.is_empty() { "Bedrock rejected the request as invalid." } else { message };
        ApiError::invalid_request(message)
    } else if is("AccessDeniedException") {
        ApiError::forbidden(format!(
            "The gateway is not allowed to invoke model `{model}` on Bedrock. Ask the gateway operator to \
             enable access to this model for its AWS account."
        ))
        .with_code("model_access_denied")
    } else if is("ResourceNotFoundException") {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            format!("Bedrock could not find the model behind `{model}`{}", detail(message)),
        )
        .with_param("model")
        .with_code("model_not_found")
    } else if is("ThrottlingException") || is("ServiceQuotaExceededException") {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_error",
            format!("Bedrock is rate limiting requests to model `{model}`{}", detail(message)),
        )
        .with_code("rate_limit_exceeded")
    } else if is("ModelNotReadyException") || is("ServiceUnavailableException") {
        ApiError::unavailable(format!(
            "Model `{model}` is temporarily unavailable on Bedrock{}",
            detail(message)
        ))
    } else if is("ModelTimeoutException") {
        ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "server_error",
            format!("Model `{model}` timed out on Bedrock{}", detail(message)),
        )
        .with_code("timeout")
    } else if CREDENTIAL_ERRORS.iter().any(|c| is(c)) {
        ApiError::bad_gateway(format!(
            "Bedrock rejected the gateway's AWS credentials for the account serving model `{model}` \
             ({code}). This is not a problem with your request; the gateway operator must fix the \
             account's credentials."
        ))
    } else {
        return None;
    };
    Some(err)
}
