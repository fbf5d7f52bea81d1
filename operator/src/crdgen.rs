//! `crdgen`: the CRDs as YAML, printed or written to `crds/`-style files.

use std::fs;
use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

use api::crd::{crd_yaml, crds};

/// Prints the CRDs as one multi-document stream, or writes one file each into `out_dir`.
pub fn run(out_dir: Option<&Path>) -> ExitCode {
    match generate(out_dir) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Does the work of [`run`]; the error is a message for the user.
fn generate(out_dir: Option<&Path>) -> Result<(), String> {
    let mut documents = Vec::new();
    for generated in crds() {
        let yaml = crd_yaml(&generated.crd).map_err(|e| format!("cannot serialize a CRD: {e}"))?;
        match out_dir {
            Some(dir) => {
                fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
                let path = dir.join(generated.file_name);
                fs::write(&path, yaml).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            }
            None => documents.push(yaml),
        }
    }
    if out_dir.is_none() {
        let mut stdout = std::io::stdout().lock();
        stdout
            .write_all(documents.join("---\n").as_bytes())
            .map_err(|e| format!("cannot write to stdout: {e}"))?;
    }
    Ok(())
}
