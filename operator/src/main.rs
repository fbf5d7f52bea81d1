//! `bedrock-gateway-operator`: generates the CRDs (`crdgen`) and renders manifests offline (`render`).

mod config_files;
mod crdgen;
mod render;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
        /// Also write config.json and credentials.json here, as the proxy's --config-dir reads them.
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Crdgen { out_dir } => crdgen::run(out_dir.as_deref()),
        Command::Render { dir, out_dir } => render::run(&dir, out_dir.as_deref()),
    }
}
