//! `--config-dir DIR`: the operator's rendered config and `credentials.json` as files.
//!
//! The config is `config.json.gz` (gzip, as the operator stores it in its ConfigMap) or
//! `config.json` (as `render --out-dir` writes it); a folder holding both is refused, as it is
//! unclear which one is meant.
//!
//! In a pod DIR is typically a projected volume of the `<release>-config` ConfigMap and the
//! `<release>-credentials` Secret. The kubelet updates such a volume by writing a new
//! timestamped folder and renaming the `..data` symlink onto it, so both files change in one
//! atomic step; reading both through one resolved `..data` never mixes two versions.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use api::config::{CONFIG_FILE, CONFIG_GZ_FILE, CREDENTIALS_FILE, Rendered};
use sha2::{Digest, Sha256};

use super::document::{self, StoredConfig};
use super::polling::LocalSource;

/// The symlink the kubelet swaps atomically in a mounted ConfigMap, Secret or projected volume.
const DATA_LINK: &str = "..data";

/// A folder holding `config.json` and `credentials.json`.
#[derive(Clone, Debug)]
pub struct ConfigDir {
    dir: PathBuf,
    interval: Duration,
}

impl ConfigDir {
    /// A source reading `dir`, checked for changes every `interval`.
    pub fn new(dir: impl Into<PathBuf>, interval: Duration) -> Self {
        ConfigDir { dir: dir.into(), interval }
    }

    /// The folder the files are read from: the target of `..data` when the folder is a
    /// Kubernetes volume, else the folder itself.
    fn resolved(&self) -> PathBuf {
        std::fs::canonicalize(self.dir.join(DATA_LINK)).unwrap_or_else(|_| self.dir.clone())
    }

    /// The config in either form and the credentials in `base`.
    fn read_both(base: &Path) -> io::Result<(StoredConfig, Vec<u8>)> {
        let config =
            match (read_optional(&base.join(CONFIG_GZ_FILE))?, read_optional(&base.join(CONFIG_FILE))?) {
                (Some(gz), None) => StoredConfig::Gzip(gz),
                (None, Some(json)) => StoredConfig::Json(json),
                (Some(_), Some(_)) => {
                    return Err(io::Error::other(format!(
                        "both {CONFIG_GZ_FILE} and {CONFIG_FILE} exist; remove the one that is not meant"
                    )));
                }
                (None, None) => {
                    return Err(io::Error::new(
                        io::ErrorKind::NotFound,
                        format!("neither {CONFIG_GZ_FILE} nor {CONFIG_FILE} exists"),
                    ));
                }
            };
        Ok((config, std::fs::read(base.join(CREDENTIALS_FILE))?))
    }
}

impl LocalSource for ConfigDir {
    fn origin(&self) -> String {
        format!("config dir {}", self.dir.display())
    }

    fn interval(&self) -> Duration {
        self.interval
    }

    /// SHA-256 over where each file resolves to, its size and modification time: a `..data`
    /// swap changes the resolved path, an edit the size or time. No file content is read.
    fn fingerprint(&self) -> io::Result<[u8; 32]> {
        let mut hash = Sha256::new();
        for name in [CONFIG_GZ_FILE, CONFIG_FILE, CREDENTIALS_FILE] {
            let path = self.dir.join(name);
            let resolved = std::fs::canonicalize(&path).unwrap_or(path);
            hash.update(resolved.as_os_str().as_encoded_bytes());
            match std::fs::metadata(&resolved) {
                Ok(meta) => {
                    hash.update(meta.len().to_le_bytes());
                    let modified = meta.modified()?.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
                    hash.update(modified.as_nanos().to_le_bytes());
                }
                // A missing file is a state too: its appearance must trigger a load.
                Err(e) if e.kind() == io::ErrorKind::NotFound => hash.update(b"missing"),
                Err(e) => return Err(e),
            }
        }
        Ok(hash.finalize().into())
    }

    fn load(&self) -> Result<Rendered, String> {
        let base = self.resolved();
        let read = match Self::read_both(&base) {
            // The kubelet removes the old timestamped folder right after a swap: resolve again.
            Err(e) if e.kind() == io::ErrorKind::NotFound && base != self.dir => {
                Self::read_both(&self.resolved())
            }
            read => read,
        };
        let (config, credentials) = read.map_err(|e| {
            format!("cannot read the config and {CREDENTIALS_FILE} in {}: {e}", self.dir.display())
        })?;
        document::parse_stored(config, &credentials)
    }
}

/// The content of `path`, or `None` when it does not exist.
fn read_optional(path: &Path) -> io::Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}
