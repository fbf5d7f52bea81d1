//! `render -f DIR`: manifests in, the non-secret GatewayConfig out; secrets are only counted.

use std::path::Path;
use std::process::ExitCode;

use api::Manifests;

/// Loads and renders `dir`: config YAML on stdout, a summary (or every problem) on stderr; with
/// `out_dir`, also the proxy's `config.json` and `credentials.json` there.
pub fn run(dir: &Path, out_dir: Option<&Path>) -> ExitCode {
    let rendered = Manifests::load_dir(dir).and_then(|manifests| {
        for skipped in &manifests.skipped {
            eprintln!("skipped {skipped}: not a bedrock-gateway object or Secret");
        }
        api::render(&manifests)
    });
    let rendered = match rendered {
        Ok(rendered) => rendered,
        Err(problems) => {
            for problem in &problems.0 {
                eprintln!("error: {problem}");
            }
            eprintln!("{} problem(s) found in {}", problems.0.len(), dir.display());
            return ExitCode::FAILURE;
        }
    };
    if let Some(out_dir) = out_dir
        && let Err(e) = crate::config_files::write(&rendered, out_dir)
    {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    // Through JSON so enums print as `team: x` like the JSON form, not as YAML `!team` tags.
    let yaml = match serde_json::to_value(&rendered.config)
        .map_err(|e| e.to_string())
        .and_then(|value| yaml_serde::to_string(&value).map_err(|e| e.to_string()))
    {
        Ok(yaml) => yaml,
        Err(e) => {
            eprintln!("error: cannot serialize the config: {e}");
            return ExitCode::FAILURE;
        }
    };
    print!("{yaml}");
    let config = &rendered.config;
    let credentials = &rendered.credentials;
    eprintln!(
        "rendered {} account(s), {} model(s), {} policy(ies); credentials: {} account secret(s), \
         {} API key(s) (values not shown)",
        config.accounts.len(),
        config.models.len(),
        config.policies.len(),
        credentials.accounts.len(),
        credentials.api_keys.len(),
    );
    ExitCode::SUCCESS
}
