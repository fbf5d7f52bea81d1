//! Caller API-key Secrets into [`ApiKeyIdentity`]s keyed by the key's hash; keys never leave here.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;

use super::secrets::Reader;
use super::{describe, name, namespace};
use crate::config::{ApiKeyIdentity, hash_api_key};
use crate::crd::API_KEY_SECRET_TYPE;
use crate::problems::{Problem, Problems};

/// Identities by key hash, from every Secret of type [`API_KEY_SECRET_TYPE`].
pub(super) fn render(secrets: &[&Secret], problems: &mut Problems) -> BTreeMap<String, ApiKeyIdentity> {
    let mut out: BTreeMap<String, ApiKeyIdentity> = BTreeMap::new();
    for secret in secrets.iter().filter(|s| s.type_.as_deref() == Some(API_KEY_SECRET_TYPE)) {
        let object = describe(*secret);
        let mut reader = Reader { object: &object, field: "data", problems };
        let key = reader.read(secret, "key", true);
        let user = reader.read(secret, "user", true);
        let teams = reader.read(secret, "teams", false);
        let (Ok(Some(key)), Ok(Some(user)), Ok(teams)) = (key, user, teams) else { continue };
        let source = format!("{}/{}", namespace(&secret.metadata), name(&secret.metadata));
        let hash = hash_api_key(&key);
        if let Some(first) = out.get(&hash) {
            problems.push(Problem::new(
                &object,
                "data.key",
                format!("the key is the same as the key of Secret {}", first.source),
                "give every API key Secret its own random key, e.g. from `openssl rand -hex 32`",
            ));
            continue;
        }
        let teams = teams
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect();
        out.insert(hash, ApiKeyIdentity { user: user.trim().to_string(), teams, source });
    }
    out
}
