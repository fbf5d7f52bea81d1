//! `--manifests DIR`: a folder of CRD manifests and Secrets, rendered in-process by `api::render`.
//!
//! A change is detected by hashing the folder's files (names and contents), which also catches
//! the atomic symlink swaps Kubernetes uses for mounted ConfigMaps and Secrets.

use std::path::{Path, PathBuf};
use std::time::Duration;

use api::config::Rendered;
use api::manifests::Manifests;
use sha2::{Digest, Sha256};

use super::polling::LocalSource;

/// A folder of BedrockAccount, BedrockModel, AccessPolicy and Secret manifests.
#[derive(Clone, Debug)]
pub struct ManifestDir {
    dir: PathBuf,
    interval: Duration,
}

impl ManifestDir {
    /// A source reading `dir`, checked for changes every `interval`.
    pub fn new(dir: impl Into<PathBuf>, interval: Duration) -> Self {
        ManifestDir { dir: dir.into(), interval }
    }
}

impl LocalSource for ManifestDir {
    fn origin(&self) -> String {
        format!("manifests {}", self.dir.display())
    }

    fn interval(&self) -> Duration {
        self.interval
    }

    fn fingerprint(&self) -> std::io::Result<[u8; 32]> {
        fingerprint(&self.dir)
    }

    /// Loads the folder and renders it with `api::render`.
    fn load(&self) -> Result<Rendered, String> {
        let manifests = Manifests::load_dir(&self.dir).map_err(|p| p.to_string())?;
        api::render::render(&manifests).map_err(|p| p.to_string())
    }
}

/// SHA-256 over the sorted (name, content) pairs of the folder's regular files.
fn fingerprint(dir: &Path) -> std::io::Result<[u8; 32]> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.filter_map(Result::ok).map(|e| e.path()).collect();
    entries.sort();
    let mut hash = Sha256::new();
    for path in entries {
        // Follows symlinks, as mounted ConfigMaps are symlinks into a timestamped folder.
        let Ok(content) = std::fs::read(&path) else { continue };
        hash.update(path.file_name().map(|n| n.as_encoded_bytes()).unwrap_or_default());
        hash.update((content.len() as u64).to_le_bytes());
        hash.update(&content);
    }
    Ok(hash.finalize().into())
}
