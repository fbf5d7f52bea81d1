//! OIDC JWTs: the issuer's keys found through discovery
//! (`<issuer>/.well-known/openid-configuration` -> `jwks_uri`), cached, and fetched again when a
//! token names an unknown `kid` (at most every `min_refresh_interval`, so random kids cannot make the
//! proxy hammer the issuer). Signature, `iss`, `aud`, `exp` and `nbf` are checked; the user and
//! teams come from configurable claims.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::Method;
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::{Mutex, RwLock};

use super::Subject;
use super::http::JsonClient;
use crate::error::ApiError;

/// Default shortest time between two JWKS fetches.
pub const REFRESH_EVERY: Duration = Duration::from_secs(10);
/// Clock skew tolerated on `exp` and `nbf`, in seconds.
const LEEWAY: u64 = 30;

/// Which issuer to trust and how to read its tokens.
#[derive(Clone, Debug)]
pub struct OidcConfig {
    /// Issuer URL, exactly as in the tokens' `iss`.
    pub issuer: String,
    /// Audience the tokens must carry.
    pub audience: String,
    /// Claim naming the user (`sub`, `email`, `preferred_username`).
    pub user_claim: String,
    /// Claim listing the teams (`groups`); a string or an array of strings.
    pub teams_claim: String,
    /// Extra CA bundle for the issuer's HTTPS endpoints.
    pub ca_file: Option<PathBuf>,
    /// Shortest time between two JWKS fetches ([`REFRESH_EVERY`]).
    pub min_refresh_interval: Duration,
}

/// Verifies the issuer's JWTs.
pub struct OidcVerifier {
    config: OidcConfig,
    client: JsonClient,
    keys: RwLock<HashMap<String, (DecodingKey, Option<Algorithm>)>>,
    /// When keys were last fetched; held while fetching so concurrent misses fetch once.
    fetched: Mutex<Option<Instant>>,
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

impl OidcVerifier {
    /// A verifier; nothing is fetched until the first token.
    pub fn new(config: OidcConfig) -> Result<OidcVerifier, String> {
        let ca = match &config.ca_file {
            Some(path) => {
                Some(std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?)
            }
            None => None,
        };
        Ok(OidcVerifier {
            client: JsonClient::new(ca.as_deref())?,
            config,
            keys: RwLock::new(HashMap::new()),
            fetched: Mutex::new(None),
        })
    }

    /// Whether a token claims to come from this issuer (unverified: decides who verifies it).
    pub fn issued(&self, token: &str) -> bool {
        #[derive(Deserialize)]
        struct Iss {
            iss: String,
        }
        super::unverified_claims::<Iss>(token).is_some_and(|c| c.iss == self.config.issuer)
    }

    /// The subject of a valid token, or the 401 naming what is wrong (never the token).
    pub async fn verify(&self, token: &str) -> Result<Arc<Subject>, ApiError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|_| invalid("it is not a well-formed JWT"))?;
        let kid = header.kid.ok_or_else(|| invalid("its header has no `kid`"))?;
        let (key, alg) = match self.key(&kid).await {
            Some(found) => found,
            None => {
                self.refresh().await?;
                self.key(&kid)
                    .await
                    .ok_or_else(|| invalid("it is signed by a key the issuer does not publish"))?
            }
        };
        if alg.is_some_and(|a| a != header.alg)
            || matches!(header.alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
        {
            return Err(invalid("its algorithm does not match the issuer's key"));
        }
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&[&self.config.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY;
        let claims = jsonwebtoken::decode::<Value>(token, &key, &validation)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind;
                invalid(match e.kind() {
                    ErrorKind::ExpiredSignature => "it has expired",
                    ErrorKind::ImmatureSignature => "it is not valid yet (nbf)",
                    ErrorKind::InvalidAudience => "it is not meant for this gateway (aud)",
                    ErrorKind::InvalidIssuer => "it comes from another issuer (iss)",
                    ErrorKind::InvalidSignature => "its signature does not verify",
                    ErrorKind::MissingRequiredClaim(_) => "it lacks exp, iss or aud",
                    _ => "it could not be verified",
                })
            })?
            .claims;
        let user = claims
            .get(&self.config.user_claim)
            .and_then(Value::as_str)
            .filter(|u| !u.is_empty())
            .ok_or_else(|| invalid("it has no user claim"))?;
        let teams = match claims.get(&self.config.teams_claim) {
            Some(Value::String(team)) => vec![team.clone()],
            Some(Value::Array(teams)) => teams.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
            _ => Vec::new(),
        };
        Ok(Arc::new(Subject::user(user, teams)))
    }

    async fn key(&self, kid: &str) -> Option<(DecodingKey, Option<Algorithm>)> {
        self.keys.read().await.get(kid).cloned()
    }

    /// Fetches discovery and the JWKS again, unless that happened within the minimum interval.
    async fn refresh(&self) -> Result<(), ApiError> {
        let mut fetched = self.fetched.lock().await;
        if fetched.is_some_and(|at| at.elapsed() < self.config.min_refresh_interval) {
            return Ok(());
        }
        *fetched = Some(Instant::now());
        let keys = self.fetch().await.map_err(|e| {
            tracing::error!(issuer = %self.config.issuer, error = %e, "cannot fetch the OIDC issuer's keys");
            ApiError::unavailable("The gateway cannot verify OIDC tokens right now; try again shortly.")
        })?;
        tracing::info!(issuer = %self.config.issuer, keys = keys.len(), "OIDC keys fetched");
        *self.keys.write().await = keys;
        Ok(())
    }

    async fn fetch(&self) -> Result<HashMap<String, (DecodingKey, Option<Algorithm>)>, String> {
        let url = format!("{}/.well-known/openid-configuration", self.config.issuer.trim_end_matches('/'));
        let discovery: Discovery = self.get_json(&url).await?;
        if discovery.issuer != self.config.issuer {
            return Err(format!(
                "discovery names the issuer {:?}, not {:?}",
                discovery.issuer, self.config.issuer
            ));
        }
        let jwks: JwkSet = self.get_json(&discovery.jwks_uri).await?;
        let mut keys = HashMap::new();
        for jwk in &jwks.keys {
            let (Some(kid), false) =
                (&jwk.common.key_id, matches!(jwk.algorithm, AlgorithmParameters::OctetKey(_)))
            else {
                continue;
            };
            let alg = jwk.common.key_algorithm.and_then(|a| Algorithm::try_from(a).ok());
            match DecodingKey::from_jwk(jwk) {
                Ok(key) => {
                    keys.insert(kid.clone(), (key, alg));
                }
                Err(e) => tracing::warn!(kid = %kid, error = %e, "unusable key in the OIDC JWKS"),
            }
        }
        Ok(keys)
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, String> {
        let (status, body) = self.client.send(Method::GET, url, None, None).await?;
        if !status.is_success() {
            return Err(format!("{url}: HTTP {status}"));
        }
        serde_json::from_slice(&body).map_err(|e| format!("{url}: {e}"))
    }
}

fn invalid(why: &str) -> ApiError {
    ApiError::unauthenticated(format!("The bearer token was not accepted: {why}."))
}
