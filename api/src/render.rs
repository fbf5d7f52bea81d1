//! `render`: manifests in, the proxy's [`Rendered`] config out, or every problem found.
//!
//! Pure: no I/O, no clock. The same function runs in the operator (objects from the cluster),
//! in `bedrock-gateway-operator render -f DIR` and in the proxy's `--manifests DIR` mode.

mod accounts;
mod api_keys;
mod fallbacks;
mod model_id;
mod models;
mod policies;
mod secrets;

use std::collections::BTreeSet;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;

use crate::config::{CONFIG_VERSION, Rendered};
use crate::manifests::Manifests;
use crate::problems::{Problem, Problems};

pub use accounts::{DEFAULT_API_KEY_KEY, DEFAULT_SESSION_NAME};
pub use model_id::{infer_kind, validate_model_id};

/// Renders the manifests into the proxy's config and credentials; all problems are reported at once.
pub fn render(m: &Manifests) -> Result<Rendered, Problems> {
    let mut problems = Problems::default();
    let accounts = unique(&m.accounts, &mut problems);
    let models = unique(&m.models, &mut problems);
    let policies = unique(&m.policies, &mut problems);
    let secrets = unique(&m.secrets, &mut problems);
    let index = secrets::SecretIndex::new(&secrets);

    let mut rendered = Rendered::default();
    rendered.config.version = CONFIG_VERSION;
    accounts::render(&accounts, &index, &mut rendered, &mut problems);
    rendered.config.models = models::render(&models, &accounts, &mut problems);
    fallbacks::resolve(&models, &mut rendered.config.models, &mut problems);
    rendered.config.policies = policies::render(&policies, &mut problems);
    rendered.credentials.api_keys = api_keys::render(&secrets, &mut problems);
    problems.into_result(rendered)
}

/// Namespace of an object (set by manifest loading; empty if a caller left it unset).
fn namespace(meta: &ObjectMeta) -> &str {
    meta.namespace.as_deref().unwrap_or_default()
}

/// Name of an object.
fn name(meta: &ObjectMeta) -> &str {
    meta.name.as_deref().unwrap_or_default()
}

/// `Kind namespace/name`, how problems name an object.
fn describe<K: Resource<DynamicType = ()>>(object: &K) -> String {
    format!("{} {}/{}", K::kind(&()), namespace(object.meta()), name(object.meta()))
}

/// The objects sorted by namespace and name, keeping the first of objects defined twice.
fn unique<'a, K: Resource<DynamicType = ()>>(items: &'a [K], problems: &mut Problems) -> Vec<&'a K> {
    let mut sorted: Vec<&K> = items.iter().collect();
    sorted.sort_by(|a, b| (namespace(a.meta()), name(a.meta())).cmp(&(namespace(b.meta()), name(b.meta()))));
    let mut seen = BTreeSet::new();
    sorted.retain(|item| {
        let first = seen.insert((namespace(item.meta()), name(item.meta())));
        if !first {
            problems.push(Problem::new(
                describe(*item),
                "metadata.name",
                format!("{} is defined more than once", describe(*item)),
                "keep a single definition of the object",
            ));
        }
        first
    });
    sorted
}
