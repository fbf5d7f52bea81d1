//! `render --out-dir DIR`: the rendered config as the two files the proxy's `--config-dir` reads,
//! with the same content the operator puts into the ConfigMap and the Secret.

use std::fs;
use std::io::Write as _;
use std::path::Path;

use api::config::{CONFIG_FILE, CREDENTIALS_FILE, Rendered};

/// Writes `credentials.json` (owner-only) and then `config.json` into `dir`, each replaced
/// atomically, so a proxy polling the folder never reads a half-written file.
pub fn write(rendered: &Rendered, dir: &Path) -> Result<(), String> {
    fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let credentials = serde_json::to_vec(&rendered.credentials).map_err(|e| e.to_string())?;
    let config = serde_json::to_vec(&rendered.config).map_err(|e| e.to_string())?;
    // Credentials first: a config naming a new account finds its keys already there.
    replace(dir, CREDENTIALS_FILE, &credentials)?;
    replace(dir, CONFIG_FILE, &config)
}

/// Writes `name` through a temporary file renamed over it.
fn replace(dir: &Path, name: &str, content: &[u8]) -> Result<(), String> {
    let path = dir.join(name);
    let temporary = dir.join(format!(".{name}.tmp"));
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written =
        options.open(&temporary).and_then(|mut file| file.write_all(content).and_then(|()| file.sync_all()));
    written
        .and_then(|()| fs::rename(&temporary, &path))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}
