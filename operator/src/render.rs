//! `render -f DIR [--check-aws] [--out-dir OUT]`: manifests in, the non-secret GatewayConfig
//! out; secrets are only counted, or written with the config as the proxy's `--config-dir` files. It goes through the operator's own plan, so the output is what `run` would write.
//! With `--check-aws` it also asks AWS about every account, as `run` does, prints the conditions
//! each object would show, adds discovered models and fails when AWS says something is wrong.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use api::config::Rendered;
use api::crd::status::{
    CONDITION_CREDENTIALS_VERIFIED, CONDITION_MODEL_ACCESS, CONDITION_REACHABLE, CONDITION_READY,
};
use api::{Manifests, Problem};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use operator::aws::Aws;
use operator::aws::facts::Facts;
use operator::plan::{Plan, describe, plan};
use operator::status;

/// Loads and renders `dir`: config YAML on stdout, a summary (or every problem) on stderr; with
/// `out_dir`, also the proxy's `config.json` and `credentials.json` there.
pub fn run(dir: &Path, check_aws: bool, out_dir: Option<&Path>) -> ExitCode {
    let problems: Vec<String> = match Manifests::load_dir(dir) {
        Ok(manifests) => {
            for skipped in &manifests.skipped {
                eprintln!("skipped {skipped}: not a bedrock-gateway object or Secret");
            }
            let offline = plan(&manifests, &Facts::default());
            // What `run` could not write either: a config beyond the ConfigMap's limit.
            let too_large = offline.stored_config.too_large();
            if offline.problems.is_empty() && too_large.is_none() {
                if !check_aws {
                    return print(&offline.rendered, out_dir);
                }
                return check(&manifests, &offline, out_dir);
            }
            let problems = offline.problems.into_values().flatten().map(|p| p.to_string());
            problems.chain(too_large).collect()
        }
        Err(problems) => problems.0.iter().map(Problem::to_string).collect(),
    };
    for problem in &problems {
        eprintln!("error: {problem}");
    }
    eprintln!("{} problem(s) found in {}", problems.len(), dir.display());
    ExitCode::FAILURE
}

/// Prints the config as YAML and a summary of both documents (after writing them to `out_dir`).
fn print(rendered: &Rendered, out_dir: Option<&Path>) -> ExitCode {
    if let Some(out_dir) = out_dir
        && let Err(e) = crate::config_files::write(rendered, out_dir)
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

/// Asks AWS about every account, prints each object's conditions, then the config; fails when a
/// condition AWS decides is `False`.
fn check(manifests: &Manifests, offline: &Plan, out_dir: Option<&Path>) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let facts = runtime.block_on(async {
        let aws = Aws::new();
        let mut facts = Facts::new();
        for name in offline.rendered.config.accounts.keys() {
            if let Some(input) = offline.account_input(name) {
                facts.insert(name.clone(), Arc::new(aws.gather(&input).await));
            }
        }
        facts
    });
    let checked = plan(manifests, &facts);
    let mut healthy = true;
    for account in &manifests.accounts {
        healthy &= show(&describe(account), status::account(&checked, account).map(|s| s.conditions));
    }
    for model in &manifests.models {
        healthy &= show(&describe(model), status::model(&checked, model).map(|s| s.conditions));
    }
    for policy in &manifests.policies {
        healthy &= show(&describe(policy), status::policy(&checked, policy).map(|s| s.conditions));
    }
    let printed = print(&checked.rendered, out_dir);
    if healthy { printed } else { ExitCode::FAILURE }
}

/// Prints an object's conditions on stderr; false when one that blocks serving is `False`.
fn show(object: &str, conditions: Option<Vec<Condition>>) -> bool {
    let conditions = conditions.unwrap_or_default();
    eprintln!("{object}:");
    for c in &conditions {
        eprintln!("  {}={} {}: {}", c.type_, c.status, c.reason, c.message);
    }
    let blocking =
        [CONDITION_READY, CONDITION_CREDENTIALS_VERIFIED, CONDITION_MODEL_ACCESS, CONDITION_REACHABLE];
    !conditions.iter().any(|c| c.status == "False" && blocking.contains(&c.type_.as_str()))
}
