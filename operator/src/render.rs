//! `render -f DIR`: manifests in, the non-secret GatewayConfig out; secrets are only counted.
//! It goes through the operator's own plan, so the output is what `run` would write (without the
//! models discovery would add, which need AWS).

use std::path::Path;
use std::process::ExitCode;

use api::config::Rendered;
use api::{Manifests, Problem};
use operator::aws::facts::Facts;
use operator::plan::plan;

/// Loads and renders `dir`: config YAML on stdout, a summary (or every problem) on stderr.
pub fn run(dir: &Path) -> ExitCode {
    let problems: Vec<Problem> = match Manifests::load_dir(dir) {
        Ok(manifests) => {
            for skipped in &manifests.skipped {
                eprintln!("skipped {skipped}: not a bedrock-gateway object or Secret");
            }
            let plan = plan(&manifests, &Facts::default());
            if plan.problems.is_empty() {
                return print(&plan.rendered);
            }
            plan.problems.into_values().flatten().collect()
        }
        Err(problems) => problems.0,
    };
    for problem in &problems {
        eprintln!("error: {problem}");
    }
    eprintln!("{} problem(s) found in {}", problems.len(), dir.display());
    ExitCode::FAILURE
}

/// Prints the config as YAML and a summary of both documents.
fn print(rendered: &Rendered) -> ExitCode {
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
