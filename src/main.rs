//! The `execgov` binary: parses the command line and calls into the library.

use clap::Parser;
use execgov::cli::{Cli, Cmd};
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // The server logs what it does; one-shot commands print only warnings.
    let default = if matches!(cli.command, Cmd::Serve | Cmd::Worker) {
        "warn,execgov=info"
    } else {
        "warn"
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("EXECGOV_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default)),
        )
        .with_writer(std::io::stderr)
        .init();
    match execgov::cli::run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(execgov::cli::EXIT_REFUSED)
        }
    }
}
