//! Reading values out of the Secrets that accounts reference, without ever quoting them.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;

use super::{name, namespace};
use crate::problems::{Problem, Problems};

/// Secrets by namespace and name.
pub(super) struct SecretIndex<'a> {
    by_name: BTreeMap<(&'a str, &'a str), &'a Secret>,
}

impl<'a> SecretIndex<'a> {
    /// Indexes the given Secrets.
    pub(super) fn new(secrets: &[&'a Secret]) -> Self {
        let by_name = secrets.iter().map(|s| ((namespace(&s.metadata), name(&s.metadata)), *s)).collect();
        SecretIndex { by_name }
    }

    /// The Secret `name` in `namespace`.
    pub(super) fn get(&self, namespace: &str, name: &str) -> Option<&'a Secret> {
        self.by_name.get(&(namespace, name)).copied()
    }
}

/// Where a value is read for: the object and field problems are reported against.
pub(super) struct Reader<'p> {
    /// `Kind namespace/name` of the object referencing the Secret.
    pub object: &'p str,
    /// Field of that object holding the reference.
    pub field: &'p str,
    /// Problems collected so far.
    pub problems: &'p mut Problems,
}

impl Reader<'_> {
    /// The value of `key`, UTF-8 decoded and without trailing newlines. `Ok(None)` when an optional
    /// key is absent; `Err(())` after recording a problem.
    pub(super) fn read(&mut self, secret: &Secret, key: &str, required: bool) -> Result<Option<String>, ()> {
        let secret_name = name(&secret.metadata);
        let Some(bytes) = secret.data.as_ref().and_then(|data| data.get(key)) else {
            if !required {
                return Ok(None);
            }
            self.problems.push(Problem::new(
                self.object,
                self.field,
                format!("Secret {secret_name} has no key {key}"),
                format!("add {key} to Secret {secret_name} (under data or stringData)"),
            ));
            return Err(());
        };
        let Ok(text) = std::str::from_utf8(&bytes.0) else {
            self.problems.push(Problem::new(
                self.object,
                self.field,
                format!("Secret {secret_name} key {key} is not UTF-8 text"),
                format!("store {key} in Secret {secret_name} as UTF-8 text"),
            ));
            return Err(());
        };
        let text = text.trim_end_matches(['\n', '\r']);
        if text.is_empty() && required {
            self.problems.push(Problem::new(
                self.object,
                self.field,
                format!("Secret {secret_name} key {key} is empty"),
                format!("put the value of {key} in Secret {secret_name}"),
            ));
            return Err(());
        }
        Ok(Some(text.to_string()))
    }
}
