//! AWS rest-json error responses: status, `x-amzn-ErrorType`, `x-amzn-RequestId`, `{"message": ...}`.

use http::StatusCode;
use serde_json::{Map, Value};

/// One AWS service error, ready to be rendered as an HTTP response.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AwsError {
    /// HTTP status of the response.
    pub status: StatusCode,
    /// Error code sent in `x-amzn-ErrorType`.
    pub code: &'static str,
    /// Human readable message (`message` in the body).
    pub message: String,
    /// Extra body members some exceptions carry (e.g. `originalStatusCode`).
    pub extra: Vec<(&'static str, Value)>,
}

/// Exceptions the Converse operations declare, with their HTTP status (bedrock-api.md §7).
const MODELED: &[(&str, u16, &str)] = &[
    ("ValidationException", 400, "The provided request is not valid."),
    ("AccessDeniedException", 403, "You don't have access to the model with the specified model ID."),
    ("ResourceNotFoundException", 404, "The requested model was not found."),
    ("ModelTimeoutException", 408, "Model has timed out in processing the request. Try your request again."),
    (
        "ModelErrorException",
        424,
        "The system encountered an unexpected error during processing. Try your request again.",
    ),
    ("ThrottlingException", 429, "Too many requests, please wait before trying again."),
    ("ServiceQuotaExceededException", 400, "Too many tokens, please wait before trying again."),
    ("ModelNotReadyException", 429, "Model is not ready to serve inference requests. Try again later."),
    (
        "InternalServerException",
        500,
        "The server encountered an internal error while processing the request.",
    ),
    ("ServiceUnavailableException", 503, "Bedrock is unable to process your request."),
];

impl AwsError {
    /// Builds an error with an explicit status and code.
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        Self { status, code, message: message.into(), extra: Vec::new() }
    }

    /// 400 ValidationException with the given message.
    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(400, "ValidationException", message)
    }

    /// 403 error used by the authentication checks.
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(403, code, message)
    }

    /// 404 UnknownOperationException for a path that is no Bedrock operation.
    pub fn unknown_operation() -> Self {
        Self::new(404, "UnknownOperationException", "Unknown operation")
    }

    /// The modeled exception `name` with its usual message, or None if the name is not one of them.
    pub fn modeled(name: &str, model_id: &str) -> Option<Self> {
        let &(code, status, message) = MODELED.iter().find(|(code, _, _)| *code == name)?;
        let mut err = Self::new(status, code, message);
        if code == "ModelErrorException" {
            err.extra =
                vec![("originalStatusCode", Value::from(500)), ("resourceName", Value::from(model_id))];
        }
        Some(err)
    }

    /// JSON body: `{"message": ...}` plus any extra members.
    pub fn body(&self) -> Vec<u8> {
        let mut map = Map::new();
        map.insert("message".to_owned(), Value::from(self.message.clone()));
        for (key, value) in &self.extra {
            map.insert((*key).to_owned(), value.clone());
        }
        serde_json::to_vec(&Value::Object(map)).unwrap_or_default()
    }
}

/// A fresh request id in the UUID form AWS uses for `x-amzn-RequestId`.
pub(crate) fn request_id() -> String {
    let v = fastrand::u128(..);
    let h = format!("{v:032x}");
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modeled_errors_have_their_status() {
        let cases = [
            ("ThrottlingException", 429),
            ("ServiceQuotaExceededException", 400),
            ("ModelTimeoutException", 408),
            ("ModelErrorException", 424),
            ("ServiceUnavailableException", 503),
        ];
        for (name, status) in cases {
            let err = AwsError::modeled(name, "m").unwrap();
            assert_eq!(err.status.as_u16(), status, "{name}");
            assert_eq!(err.code, name);
        }
        assert!(AwsError::modeled("NoSuchException", "m").is_none());
    }

    #[test]
    fn model_error_carries_original_status_and_resource() {
        let body = AwsError::modeled("ModelErrorException", "my-model").unwrap().body();
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["originalStatusCode"], 500);
        assert_eq!(v["resourceName"], "my-model");
    }

    #[test]
    fn request_id_is_uuid_shaped() {
        let id = request_id();
        let lens: Vec<usize> = id.split('-').map(str::len).collect();
        assert_eq!(lens, [8, 4, 4, 4, 12]);
    }
}
