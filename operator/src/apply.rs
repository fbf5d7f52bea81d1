//! Writing the rendered config: ConfigMap `<release>-config` (`binaryData` `config.json.gz`, no
//! secrets) and Secret `<release>-credentials` (`credentials.json`), by server-side apply under one
//! field manager, each only when its content hash changes.
//!
//! The config is always stored gzip-compressed, whatever its size: one form means the path that
//! carries 5,000 models is the one every small install and every test runs, there is no
//! threshold at which the key flips, and each change sent to every watching proxy replica is 10
//! to 20 times smaller. Readable JSON stays one command away (`render -f`, or `base64 -d | gunzip`).
//! Server-side apply drops the `data` key an older operator wrote, as the field manager is the same.

use std::collections::BTreeMap;
use std::fmt;

use api::config::CONFIG_GZ_FILE;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use tokio::sync::Mutex;

use crate::plan::Plan;

/// Field manager of every object the operator writes.
pub const FIELD_MANAGER: &str = "bedrock-gateway-operator";
/// Annotation holding the SHA-256 of the written document.
pub const HASH_ANNOTATION: &str = "bedrockgateway.io/config-hash";
/// Secret key of the rendered credentials.
pub const CREDENTIALS_KEY: &str = "credentials.json";

/// Name of the ConfigMap of `release`.
pub fn config_map_name(release: &str) -> String {
    format!("{release}-config")
}

/// Name of the Secret of `release`.
pub fn secret_name(release: &str) -> String {
    format!("{release}-credentials")
}

/// Metadata shared by both objects: name, namespace, labels and the hash annotation.
fn meta(name: String, namespace: &str, release: &str, hash: &str) -> ObjectMeta {
    let labels = BTreeMap::from([
        ("app.kubernetes.io/name".to_string(), "bedrock-gateway".to_string()),
        ("app.kubernetes.io/instance".to_string(), release.to_string()),
        ("app.kubernetes.io/managed-by".to_string(), FIELD_MANAGER.to_string()),
    ]);
    ObjectMeta {
        name: Some(name),
        namespace: Some(namespace.to_string()),
        labels: Some(labels),
        annotations: Some(BTreeMap::from([(HASH_ANNOTATION.to_string(), hash.to_string())])),
        ..ObjectMeta::default()
    }
}

/// The ConfigMap holding `plan`'s config, compressed.
pub fn config_map(plan: &Plan, release: &str, namespace: &str) -> ConfigMap {
    let gz = ByteString(plan.stored_config.gz.clone());
    ConfigMap {
        metadata: meta(config_map_name(release), namespace, release, &plan.config_hash),
        binary_data: Some(BTreeMap::from([(CONFIG_GZ_FILE.to_string(), gz)])),
        ..ConfigMap::default()
    }
}

/// The Secret holding `plan`'s credentials.
pub fn secret(plan: &Plan, release: &str, namespace: &str) -> Secret {
    let json = serde_json::to_vec(&plan.rendered.credentials).unwrap_or_default();
    Secret {
        metadata: meta(secret_name(release), namespace, release, &plan.credentials_hash),
        type_: Some("Opaque".to_string()),
        data: Some(BTreeMap::from([(CREDENTIALS_KEY.to_string(), ByteString(json))])),
        ..Secret::default()
    }
}

/// Largest ConfigMap or Secret the API server stores (its data, all keys together).
pub const MAX_OBJECT_DATA: usize = 1024 * 1024;

/// The config document as the ConfigMap stores it: gzip of its JSON.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct StoredConfig {
    /// The compressed document (`binaryData` `config.json.gz`).
    pub gz: Vec<u8>,
    /// Size of the JSON it inflates to.
    pub json_bytes: usize,
}

impl StoredConfig {
    /// Compresses the config document `json`.
    pub fn new(json: &[u8]) -> Self {
        StoredConfig { gz: api::gzip::compress(json), json_bytes: json.len() }
    }

    /// What to tell users when even the compressed document does not fit in a ConfigMap.
    pub fn too_large(&self) -> Option<String> {
        (self.gz.len() > MAX_OBJECT_DATA).then(|| {
            format!(
                "the rendered config is {} bytes gzip-compressed ({} bytes of JSON), more than the \
                 {MAX_OBJECT_DATA} a ConfigMap holds, so it is not written and the proxies keep serving \
                 the last one written: serve fewer models (narrow spec.discovery.include) or split the release",
                self.gz.len(),
                self.json_bytes
            )
        })
    }
}

/// Sizes only: the bytes themselves would flood any log that prints a plan.
impl fmt::Debug for StoredConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoredConfig {{ gz: {} bytes, json: {} bytes }}", self.gz.len(), self.json_bytes)
    }
}

/// Why the rendered objects could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// A document does not fit in its object; the message says by how much and what to do.
    #[error("{0}")]
    TooLarge(String),
    /// The API server refused or could not be reached.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
}

/// What one [`Applier::apply`] wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// The ConfigMap was written.
    pub config: bool,
    /// The Secret was written.
    pub credentials: bool,
}

/// Writes the two objects of a release, remembering the hashes last written.
pub struct Applier {
    client: Client,
    release: String,
    namespace: String,
    /// Hashes known to be on the server (`None`: not read yet).
    written: Mutex<Written>,
}

/// The hashes on the server, once known.
#[derive(Default)]
struct Written {
    config: Option<String>,
    credentials: Option<String>,
}

impl Applier {
    /// An applier for `release` in `namespace`.
    pub fn new(client: Client, release: &str, namespace: &str) -> Self {
        Applier {
            client,
            release: release.to_string(),
            namespace: namespace.to_string(),
            written: Mutex::new(Written::default()),
        }
    }

    /// Server-side applies whichever object's hash differs from the one on the server.
    pub async fn apply(&self, plan: &Plan) -> Result<Applied, ApplyError> {
        let mut written = self.written.lock().await;
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let mut applied = Applied::default();
        let config_maps: Api<ConfigMap> = Api::namespaced(self.client.clone(), &self.namespace);
        let name = config_map_name(&self.release);
        if written.config.is_none() {
            written.config = config_maps.get_opt(&name).await?.and_then(|o| hash_of(&o.metadata));
        }
        if written.config.as_deref() != Some(plan.config_hash.as_str()) {
            if let Some(message) = plan.stored_config.too_large() {
                return Err(ApplyError::TooLarge(message));
            }
            let object = config_map(plan, &self.release, &self.namespace);
            config_maps.patch(&name, &params, &Patch::Apply(&object)).await?;
            written.config = Some(plan.config_hash.clone());
            applied.config = true;
        }
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &self.namespace);
        let name = secret_name(&self.release);
        if written.credentials.is_none() {
            written.credentials = secrets.get_metadata_opt(&name).await?.and_then(|o| hash_of(&o.metadata));
        }
        if written.credentials.as_deref() != Some(plan.credentials_hash.as_str()) {
            let object = secret(plan, &self.release, &self.namespace);
            let bytes: usize = object.data.iter().flatten().map(|(_, v)| v.0.len()).sum();
            if bytes > MAX_OBJECT_DATA {
                return Err(ApplyError::TooLarge(format!(
                    "{CREDENTIALS_KEY} is {bytes} bytes, more than the {MAX_OBJECT_DATA} a Secret holds: \
                     issue fewer caller keys or split the release"
                )));
            }
            secrets.patch(&name, &params, &Patch::Apply(&object)).await?;
            written.credentials = Some(plan.credentials_hash.clone());
            applied.credentials = true;
        }
        Ok(applied)
    }

    /// Forgets what is on the server, so the next apply reads it again (after a lost leadership).
    pub async fn forget(&self) {
        *self.written.lock().await = Written::default();
    }
}

/// The hash annotation of an object.
fn hash_of(meta: &ObjectMeta) -> Option<String> {
    meta.annotations.as_ref()?.get(HASH_ANNOTATION).cloned()
}
