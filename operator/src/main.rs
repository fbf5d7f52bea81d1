//! `bedrock-gateway-operator`: runs the controllers (`run`), generates the CRDs (`crdgen`) and
//! renders manifests offline (`render`).

mod config_files;
mod crdgen;
mod render;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{ArgAction, Parser, Subcommand};
use operator::context::Settings;
use operator::watch::Scope;

/// Command line of the operator binary.
#[derive(Parser)]
#[command(name = "bedrock-gateway-operator", version, about = "Kubernetes operator of bedrock-gateway")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// What to do.
#[derive(Subcommand)]
enum Command {
    /// Run the controllers in a cluster: render the watched objects into ConfigMap
    /// `<release>-config` and Secret `<release>-credentials`, and write every object's status.
    Run(RunArgs),
    /// Print the BedrockAccount, BedrockModel and AccessPolicy CRDs as multi-document YAML.
    Crdgen {
        /// Write one file per CRD into this directory instead of printing them.
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
    },
    /// Render a directory of manifests into the proxy config (stdout); problems go to stderr.
    Render {
        /// Directory of *.yaml, *.yml and *.json manifests (Secrets included).
        #[arg(short = 'f', long = "filename", value_name = "DIR")]
        dir: PathBuf,
        /// Also ask AWS about every account (credentials, model access, profiles, discovery) and
        /// print the conditions each object would show; fail when AWS says something is wrong.
        #[arg(long)]
        check_aws: bool,
        /// Also write config.json and credentials.json here, as the proxy's --config-dir reads them.
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
    },
}

/// Options of `run`.
#[derive(clap::Args)]
struct RunArgs {
    /// Helm release name: names the ConfigMap, the Secret and the Lease `<release>-operator`.
    #[arg(long)]
    release: String,
    /// Namespace of the rendered objects and the Lease.
    #[arg(long, env = "POD_NAMESPACE")]
    namespace: String,
    /// Namespaces whose objects are rendered (comma-separated); default the --namespace.
    #[arg(long, value_delimiter = ',', conflicts_with = "all_namespaces")]
    watch_namespaces: Vec<String>,
    /// Render the objects of every namespace (needs cluster-wide read access).
    #[arg(long)]
    all_namespaces: bool,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, default_value = "0.0.0.0:9090")]
    metrics_listen: SocketAddr,
    /// Hold the Lease `<release>-operator` before acting, so replicas are safe (default on).
    #[arg(long = "leader-election", overrides_with = "no_leader_election", action = ArgAction::SetTrue)]
    leader_election: bool,
    /// Act without leader election (a single replica only).
    #[arg(long = "no-leader-election", action = ArgAction::SetTrue)]
    no_leader_election: bool,
    /// Holder identity in the Lease.
    #[arg(long, env = "POD_NAME", default_value = "bedrock-gateway-operator")]
    pod_name: String,
    /// Seconds between AWS checks of an account (credentials, model access, profiles).
    #[arg(long, default_value_t = 300)]
    aws_refresh_seconds: u64,
}

impl RunArgs {
    /// The namespace set: every namespace, the `--watch-namespaces` list, or `--namespace`.
    fn scope(&self) -> Scope {
        if self.all_namespaces {
            Scope::All
        } else if self.watch_namespaces.is_empty() {
            Scope::Namespaces(vec![self.namespace.clone()])
        } else {
            Scope::Namespaces(self.watch_namespaces.clone())
        }
    }
}

/// Starts the runtime and runs the operator.
fn run(args: RunArgs) -> ExitCode {
    operator::telemetry::init();
    let scope = args.scope();
    let options = operator::run::Options {
        settings: Settings {
            release: args.release,
            namespace: args.namespace,
            scope,
            aws_refresh: Duration::from_secs(args.aws_refresh_seconds.max(10)),
        },
        metrics_listen: args.metrics_listen,
        leader_election: !args.no_leader_election,
        identity: args.pod_name,
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(operator::run::run(options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            tracing::error!("{message}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Run(args) => run(args),
        Command::Crdgen { out_dir } => crdgen::run(out_dir.as_deref()),
        Command::Render { dir, check_aws, out_dir } => render::run(&dir, check_aws, out_dir.as_deref()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The scope `run` would watch with `flags`, or clap's error.
    fn scope(flags: &[&str]) -> Result<Scope, String> {
        let args = ["bedrock-gateway-operator", "run", "--release", "gw", "--namespace", "gw-system"];
        let Command::Run(run) =
            Cli::try_parse_from(args.iter().chain(flags)).map_err(|e| e.kind().to_string())?.command
        else {
            return Err("not parsed as run".into());
        };
        Ok(run.scope())
    }

    #[test]
    fn the_namespace_set_is_the_release_namespace_a_list_or_all() {
        assert_eq!(scope(&[]), Ok(Scope::Namespaces(vec!["gw-system".into()])));
        assert_eq!(
            scope(&["--watch-namespaces", "team-a,team-b"]),
            Ok(Scope::Namespaces(vec!["team-a".into(), "team-b".into()]))
        );
        assert_eq!(scope(&["--all-namespaces"]), Ok(Scope::All));
        assert_eq!(
            scope(&["--all-namespaces", "--watch-namespaces", "team-a"]),
            Err("an argument cannot be used with one or more of the other specified arguments".into())
        );
    }
}
