//! Caller identity: who is calling, from the `Authorization: Bearer <credential>` header.
//!
//! The credential is, in this order: an API key (never stored: the proxy hashes what the caller
//! sends, looks the hash up and confirms it with a constant-time comparison), or, when enabled,
//! a JWT: an OIDC token when its `iss` is the configured issuer ([`oidc`]), else a Kubernetes
//! service-account token ([`tokenreview`]). Every way ends in one [`Subject`].

pub mod http;
pub mod oidc;
pub mod tokenreview;

use std::sync::Arc;

use ::http::HeaderMap;
use ::http::header::AUTHORIZATION;
use subtle::ConstantTimeEq;

use base64::Engine;
use serde::de::DeserializeOwned;

use self::oidc::OidcVerifier;
use self::tokenreview::TokenReviewer;
use crate::error::ApiError;
use crate::snapshot::Snapshot;

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subject {
    /// User name (for a service account, `system:serviceaccount:<namespace>:<name>`).
    pub user: String,
    /// Teams the user belongs to.
    pub teams: Vec<String>,
    /// The Kubernetes service account, for callers with a service-account token.
    pub service_account: Option<ServiceAccount>,
}

/// A Kubernetes service account (kept with a batch, to charge its usage to the same limits).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ServiceAccount {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl Subject {
    /// A user with teams (API key or OIDC caller).
    pub fn user(user: impl Into<String>, teams: Vec<String>) -> Subject {
        Subject { user: user.into(), teams, service_account: None }
    }

    /// What limits and usage are counted under: the user name, unique per caller.
    pub fn key(&self) -> &str {
        &self.user
    }

    /// The team shown in metrics: the first team, or `-`.
    pub fn team_label(&self) -> &str {
        self.teams.first().map_or("-", String::as_str)
    }
}

/// The bearer credential of a request, or the 401 to answer.
pub fn bearer(headers: &HeaderMap) -> Result<&str, ApiError> {
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Err(ApiError::unauthenticated(
            "You didn't provide an API key. Send it in the Authorization header as `Bearer <key>`.",
        ));
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .ok_or_else(|| {
            ApiError::unauthenticated("The Authorization header must have the form `Bearer <key>`.")
        })
}

/// The ways callers may prove who they are, besides API keys (always on).
#[derive(Default)]
pub struct Authenticator {
    /// Kubernetes service-account tokens, when enabled.
    pub token_review: Option<TokenReviewer>,
    /// OIDC JWTs, when an issuer is configured.
    pub oidc: Option<OidcVerifier>,
}

impl Authenticator {
    /// Resolves the caller of a request, or the 401 (503 when a token cannot be checked now).
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
        snapshot: &Snapshot,
    ) -> Result<Arc<Subject>, ApiError> {
        let credential = bearer(headers)?;
        if let Some(subject) = api_key(credential, snapshot) {
            return Ok(subject.clone());
        }
        if looks_like_jwt(credential) {
            if let Some(oidc) = self.oidc.as_ref().filter(|o| o.issued(credential)) {
                return oidc.verify(credential).await;
            }
            if let Some(reviewer) = &self.token_review {
                return reviewer.review(credential).await;
            }
        }
        Err(ApiError::unauthenticated("Incorrect API key provided."))
    }
}

/// The claims of a JWT, read without verifying it (to route it to a verifier, or for the
/// expiry of a token the API server just verified).
pub fn unverified_claims<T: DeserializeOwned>(token: &str) -> Option<T> {
    let payload = token.split('.').nth(1)?;
    let bytes =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Three base64url segments: a JWT, never an API key the operator renders.
fn looks_like_jwt(credential: &str) -> bool {
    credential.starts_with("eyJ") && credential.split('.').count() == 3
}

/// The subject of an API key. The table is keyed by SHA-256, so lookup timing depends on the
/// hash, never on the key; the final match is a constant-time comparison of the digests.
pub fn api_key<'a>(key: &str, snapshot: &'a Snapshot) -> Option<&'a Arc<Subject>> {
    let digest = api::config::hash_api_key(key);
    let (stored, subject) = snapshot.callers.get_key_value(&digest)?;
    bool::from(stored.as_bytes().ct_eq(digest.as_bytes())).then_some(subject)
}
