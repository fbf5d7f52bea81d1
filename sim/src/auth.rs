//! Authentication of Bedrock API requests: Bedrock API keys (bearer) or SigV4.
//!
//! The [`Keyring`] knows the configured long-term keys, temporary credentials registered through
//! `POST /_sim/credentials` (access key id, secret and session token, as an STS or a Pod Identity
//! agent would issue them), and, when pointed at a moto server, the credentials moto's STS issued:
//! an unknown access key id makes the keyring read moto's `/moto-api/data.json` once, the way
//! AWS itself knows every session STS handed out. Every request is still fully verified.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::SystemTime;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;

use crate::SimConfig;
use crate::errors::AwsError;
use crate::sigv4::{self, KnownKey, SignedRequest};

/// Temporary credentials as `POST /_sim/credentials` takes them.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Registration {
    access_key_id: String,
    secret_access_key: String,
    session_token: String,
}

/// Every key the simulator accepts.
pub(crate) struct Keyring {
    long_term: Vec<(String, String)>,
    bearer_tokens: Vec<String>,
    temporary: RwLock<HashMap<String, KnownKey>>,
    moto: Option<(String, Client<HttpConnector, Empty<Bytes>>)>,
}

impl Keyring {
    /// The keys of `config`.
    pub(crate) fn new(config: &SimConfig) -> Self {
        Keyring {
            long_term: config.credentials.clone(),
            bearer_tokens: config.bearer_tokens.clone(),
            temporary: RwLock::default(),
            moto: config.moto_url.as_ref().map(|url| {
                (url.trim_end_matches('/').to_owned(), Client::builder(TokioExecutor::new()).build_http())
            }),
        }
    }

    /// Accepts temporary credentials from now on.
    pub(crate) fn register(&self, access_key_id: &str, secret_access_key: &str, session_token: &str) {
        let key =
            KnownKey { secret: secret_access_key.to_owned(), session_token: Some(session_token.to_owned()) };
        self.temporary.write().unwrap_or_else(|p| p.into_inner()).insert(access_key_id.to_owned(), key);
    }

    /// Registers the JSON body of `POST /_sim/credentials`.
    pub(crate) fn register_json(&self, body: &[u8]) -> Result<(), AwsError> {
        let r: Registration = serde_json::from_slice(body).map_err(|e| {
            AwsError::validation(format!(
                "expected {{\"accessKeyId\", \"secretAccessKey\", \"sessionToken\"}}: {e}"
            ))
        })?;
        if r.access_key_id.is_empty() || r.secret_access_key.is_empty() || r.session_token.is_empty() {
            return Err(AwsError::validation(
                "accessKeyId, secretAccessKey and sessionToken must not be empty",
            ));
        }
        self.register(&r.access_key_id, &r.secret_access_key, &r.session_token);
        Ok(())
    }

    fn lookup(&self, access_key_id: &str) -> Option<KnownKey> {
        if let Some((_, secret)) = self.long_term.iter().find(|(id, _)| id == access_key_id) {
            return Some(KnownKey { secret: secret.clone(), session_token: None });
        }
        self.temporary.read().unwrap_or_else(|p| p.into_inner()).get(access_key_id).cloned()
    }

    /// Checks the `Authorization` header of a request against the known keys.
    pub(crate) async fn authenticate(
        &self,
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
            return if self.bearer_tokens.iter().any(|t| t == token.trim()) {
                Ok(())
            } else {
                Err(AwsError::forbidden(
                    "AccessDeniedException",
                    "Authentication failed: Please make sure your API Key is valid.",
                ))
            };
        }
        if let Some(id) = sigv4::access_key_id(&value)
            && self.lookup(id).is_none()
        {
            self.learn_from_moto().await;
        }
        sigv4::verify(req, &value, |id| self.lookup(id), now)
    }

    /// Registers every session moto's STS has issued (AssumeRole, AssumeRoleWithWebIdentity).
    async fn learn_from_moto(&self) {
        let Some((url, client)) = &self.moto else { return };
        let Ok(uri) = format!("{url}/moto-api/data.json").parse::<http::Uri>() else { return };
        let body = match client.get(uri).await {
            Ok(resp) if resp.status().is_success() => resp.into_body().collect().await.map(|b| b.to_bytes()),
            Ok(resp) => {
                tracing::warn!(status = %resp.status(), "moto /moto-api/data.json failed");
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "moto is unreachable");
                return;
            }
        };
        let Ok(body) = body else { return };
        #[derive(Deserialize)]
        struct Session {
            access_key_id: String,
            secret_access_key: String,
            session_token: String,
        }
        #[derive(Deserialize)]
        struct Sts {
            #[serde(rename = "AssumedRole", default)]
            assumed_roles: Vec<Session>,
        }
        #[derive(Deserialize)]
        struct Data {
            sts: Option<Sts>,
        }
        match serde_json::from_slice::<Data>(&body) {
            Ok(data) => {
                for s in data.sts.map(|s| s.assumed_roles).unwrap_or_default() {
                    self.register(&s.access_key_id, &s.secret_access_key, &s.session_token);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "moto /moto-api/data.json is not what the simulator expects")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, HeaderValue};

    fn run(keyring: &Keyring, auth: Option<&str>, token: Option<&str>) -> Result<(), AwsError> {
        let mut headers = HeaderMap::new();
        if let Some(a) = auth {
            headers.insert("authorization", HeaderValue::from_str(a).unwrap());
        }
        if let Some(t) = token {
            headers.insert("x-amz-security-token", HeaderValue::from_str(t).unwrap());
        }
        let req = SignedRequest {
            method: "POST",
            target: "/model/m/converse",
            headers: &headers,
            authority: None,
            body: b"{}",
        };
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(keyring.authenticate(&req, SystemTime::now()))
    }

    #[test]
    fn bearer_tokens() {
        let keys = Keyring::new(&SimConfig::default());
        assert_eq!(run(&keys, Some("Bearer bedrock-sim-api-key"), None), Ok(()));
        let err = run(&keys, Some("Bearer nope"), None).unwrap_err();
        assert_eq!((err.status.as_u16(), err.code), (403, "AccessDeniedException"));
    }

    #[test]
    fn missing_and_unknown_schemes() {
        let keys = Keyring::new(&SimConfig::default());
        let err = run(&keys, None, None).unwrap_err();
        assert_eq!(
            (err.code, err.message.as_str()),
            ("MissingAuthenticationTokenException", "Missing Authentication Token")
        );
        let err = run(&keys, Some("Basic abc"), None).unwrap_err();
        assert_eq!(err.code, "IncompleteSignatureException");
    }

    #[test]
    fn registered_temporary_keys_are_looked_up_with_their_token() {
        let keys = Keyring::new(&SimConfig::default());
        assert_eq!(keys.lookup("ASIATEMP"), None);
        keys.register_json(br#"{"accessKeyId":"ASIATEMP","secretAccessKey":"s3cr3t","sessionToken":"tok"}"#)
            .unwrap();
        assert_eq!(
            keys.lookup("ASIATEMP"),
            Some(KnownKey { secret: "s3cr3t".into(), session_token: Some("tok".into()) })
        );
        assert_eq!(keys.lookup(crate::TEST_ACCESS_KEY_ID).unwrap().session_token, None);
        // A signature from an unknown key never passes, whatever the token.
        let auth = "AWS4-HMAC-SHA256 Credential=ASIAOTHER/20250601/us-east-1/bedrock/aws4_request, \
                    SignedHeaders=host;x-amz-date, Signature=00";
        assert_eq!(run(&keys, Some(auth), Some("tok")).unwrap_err().code, "UnrecognizedClientException");
    }

    #[test]
    fn registrations_must_be_complete() {
        let keys = Keyring::new(&SimConfig::default());
        let err = keys.register_json(br#"{"accessKeyId":"A","secretAccessKey":"s"}"#).unwrap_err();
        assert_eq!(err.code, "ValidationException");
        assert!(err.message.contains("sessionToken"), "{}", err.message);
        let err = keys
            .register_json(br#"{"accessKeyId":"","secretAccessKey":"s","sessionToken":"t"}"#)
            .unwrap_err();
        assert_eq!(err.message, "accessKeyId, secretAccessKey and sessionToken must not be empty");
    }
}
