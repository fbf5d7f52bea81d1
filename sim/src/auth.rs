//! Authentication of Bedrock API requests: Bedrock API keys (bearer) or SigV4.

use std::time::SystemTime;

use crate::SimConfig;
use crate::errors::AwsError;
use crate::sigv4::{self, SignedRequest};

/// Checks the `Authorization` header of a request against the configured keys.
pub(crate) fn authenticate(
    config: &SimConfig,
    req: &SignedRequest<'_>,
    now: SystemTime,
) -> Result<(), AwsError> {
    let Some(value) = req.headers.get(http::header::AUTHORIZATION) else {
        return Err(AwsError::forbidden(
            "MissingAuthenticationTokenException",
            "Missing Authentication Token",
        ));
    };
    let value = String::from_utf8_lossy(value.as_bytes());
    if let Some(token) = value.strip_prefix("Bearer ") {
        return if config.bearer_tokens.iter().any(|t| t == token.trim()) {
            Ok(())
        } else {
            Err(AwsError::forbidden(
                "AccessDeniedException",
                "Authentication failed: Please make sure your API Key is valid.",
            ))
        };
    }
    sigv4::verify(req, &value, &config.credentials, now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, HeaderValue};

    fn run(auth: Option<&str>) -> Result<(), AwsError> {
        let mut headers = HeaderMap::new();
        if let Some(a) = auth {
            headers.insert("authorization", HeaderValue::from_str(a).unwrap());
        }
        let req = SignedRequest {
            method: "POST",
            target: "/model/m/converse",
            headers: &headers,
            authority: None,
            body: b"{}",
        };
        authenticate(&SimConfig::default(), &req, SystemTime::now())
    }

    #[test]
    fn bearer_tokens() {
        assert_eq!(run(Some("Bearer bedrock-sim-api-key")), Ok(()));
        let err = run(Some("Bearer nope")).unwrap_err();
        assert_eq!((err.status.as_u16(), err.code), (403, "AccessDeniedException"));
    }

    #[test]
    fn missing_and_unknown_schemes() {
        let err = run(None).unwrap_err();
        assert_eq!(
            (err.code, err.message.as_str()),
            ("MissingAuthenticationTokenException", "Missing Authentication Token")
        );
        let err = run(Some("Basic abc")).unwrap_err();
        assert_eq!(err.code, "IncompleteSignatureException");
    }
}
