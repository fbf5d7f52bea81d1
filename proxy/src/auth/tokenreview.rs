//! Kubernetes service-account tokens, checked with a TokenReview against the API server and
//! cached (by SHA-256 of the token, never the token) until the token expires. Refused tokens
//! are remembered for [`REFUSED_FOR`], so a caller retrying a bad token does not load the API
//! server.
//!
//! Callers send a projected token with the audience `bedrock-gateway`; the review asks for that
//! audience, so tokens minted for anything else are refused. The subject is
//! `system:serviceaccount:<namespace>:<name>` with its groups as teams, and the service account
//! that AccessPolicy `serviceAccount` subjects name.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http::Method;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::http::JsonClient;
use super::{ServiceAccount, Subject};
use crate::error::ApiError;

/// Longest a review is trusted, even for a long-lived token.
const MAX_CACHE: Duration = Duration::from_secs(3600);
/// How long a refused token is answered 401 without asking again.
pub const REFUSED_FOR: Duration = Duration::from_secs(30);
/// Cached reviews kept at most; expired ones go first.
const MAX_ENTRIES: usize = 10_000;

/// Where and how to ask for TokenReviews.
#[derive(Clone, Debug)]
pub struct TokenReviewConfig {
    /// API server base URL (`https://kubernetes.default.svc`).
    pub api_url: String,
    /// The proxy's own service-account token, sent to the API server (re-read: it rotates).
    pub token_file: PathBuf,
    /// CA bundle of the API server.
    pub ca_file: Option<PathBuf>,
    /// Audience caller tokens must carry.
    pub audience: String,
}

impl TokenReviewConfig {
    /// The in-cluster defaults: `KUBERNETES_SERVICE_HOST`/`PORT` and the mounted service account.
    pub fn in_cluster(audience: &str) -> Option<TokenReviewConfig> {
        let host = std::env::var("KUBERNETES_SERVICE_HOST").ok()?;
        let port = std::env::var("KUBERNETES_SERVICE_PORT").unwrap_or_else(|_| "443".into());
        let host = if host.contains(':') { format!("[{host}]") } else { host };
        let dir = PathBuf::from("/var/run/secrets/kubernetes.io/serviceaccount");
        Some(TokenReviewConfig {
            api_url: format!("https://{host}:{port}"),
            token_file: dir.join("token"),
            ca_file: Some(dir.join("ca.crt")),
            audience: audience.to_owned(),
        })
    }
}

/// Reviews tokens and caches the answers.
pub struct TokenReviewer {
    config: TokenReviewConfig,
    client: JsonClient,
    cache: Mutex<HashMap<[u8; 32], Reviewed>>,
}

/// A reviewed subject (`None`: refused) and until when the answer holds, by SHA-256 of the token.
type Reviewed = (Option<Arc<Subject>>, Instant);

#[derive(Deserialize)]
struct Review {
    #[serde(default)]
    status: ReviewStatus,
}

#[derive(Default, Deserialize)]
struct ReviewStatus {
    #[serde(default)]
    authenticated: bool,
    #[serde(default)]
    user: ReviewUser,
    #[serde(default)]
    audiences: Vec<String>,
}

#[derive(Default, Deserialize)]
struct ReviewUser {
    #[serde(default)]
    username: String,
    #[serde(default)]
    groups: Vec<String>,
}

impl TokenReviewer {
    /// A reviewer; fails when the CA file cannot be read.
    pub fn new(config: TokenReviewConfig) -> Result<TokenReviewer, String> {
        let ca = match &config.ca_file {
            Some(path) => {
                Some(std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?)
            }
            None => None,
        };
        let client = JsonClient::new(ca.as_deref())?;
        Ok(TokenReviewer { config, client, cache: Mutex::new(HashMap::new()) })
    }

    /// The subject of a service-account token, from the cache or a TokenReview.
    pub async fn review(&self, token: &str) -> Result<Arc<Subject>, ApiError> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = Instant::now();
        if let Some((subject, until)) = self.cache.lock().unwrap_or_else(|e| e.into_inner()).get(&digest)
            && *until > now
        {
            return subject.clone().ok_or_else(refused);
        }
        let own = tokio::fs::read_to_string(&self.config.token_file).await.map_err(|e| {
            tracing::error!(file = %self.config.token_file.display(), error = %e, "cannot read the proxy's service-account token");
            unavailable()
        })?;
        let body = json!({
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "spec": {"token": token, "audiences": [self.config.audience]},
        });
        let url = format!(
            "{}/apis/authentication.k8s.io/v1/tokenreviews",
            self.config.api_url.trim_end_matches('/')
        );
        let (status, bytes) = self
            .client
            .send(Method::POST, &url, Some(own.trim()), Some(body.to_string().into_bytes()))
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "TokenReview failed");
                unavailable()
            })?;
        if !status.is_success() {
            tracing::error!(%status, "the API server refused the TokenReview (does the proxy have RBAC for tokenreviews?)");
            return Err(unavailable());
        }
        let review: Review = serde_json::from_slice(&bytes).map_err(|e| {
            tracing::error!(error = %e, "unreadable TokenReview answer");
            unavailable()
        })?;
        let s = review.status;
        if !s.authenticated || !s.audiences.contains(&self.config.audience) {
            self.remember(digest, None, now + REFUSED_FOR);
            return Err(refused());
        }
        let service_account = s.user.username.strip_prefix("system:serviceaccount:").and_then(|rest| {
            rest.split_once(':').map(|(ns, name)| ServiceAccount { namespace: ns.into(), name: name.into() })
        });
        let subject = Arc::new(Subject { user: s.user.username, teams: s.user.groups, service_account });
        let ttl = token_expiry(token)
            .and_then(|exp| exp.duration_since(SystemTime::now()).ok())
            .map_or(Duration::from_secs(60), |left| left.min(MAX_CACHE));
        self.remember(digest, Some(subject.clone()), now + ttl);
        Ok(subject)
    }

    fn remember(&self, digest: [u8; 32], subject: Option<Arc<Subject>>, until: Instant) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= MAX_ENTRIES {
            let now = Instant::now();
            cache.retain(|_, (_, until)| *until > now);
            if cache.len() >= MAX_ENTRIES {
                cache.clear();
            }
        }
        cache.insert(digest, (subject, until));
    }
}

fn refused() -> ApiError {
    ApiError::unauthenticated("Incorrect API key or token provided.")
}

fn unavailable() -> ApiError {
    ApiError::unavailable("The gateway cannot verify service-account tokens right now; try again shortly.")
}

/// The `exp` claim of a JWT, read without verifying it: the API server just did.
pub fn token_expiry(token: &str) -> Option<SystemTime> {
    #[derive(Deserialize)]
    struct Exp {
        exp: u64,
    }
    let exp: Exp = super::unverified_claims(token)?;
    Some(UNIX_EPOCH + Duration::from_secs(exp.exp))
}
