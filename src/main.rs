//! The `execgov` binary: parses the command line and calls into the library.

use clap::Parser;
use execgov::cli::{Cli, Cmd, logging};
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    // The server logs what it does; one-shot commands print only warnings.
    let default = if matches!(cli.command, Cmd::Serve | Cmd::Runner(_)) {
        "warn,execgov=info"
    } else {
        "warn"
    };
    let format = std::env::var("EXECGOV_LOG_FORMAT").ok();
    match logging::LogFormat::parse(format.as_deref()) {
        Ok(format) => logging::init(format, default),
        Err(why) => {
            eprintln!("error: {why}");
            return ExitCode::from(execgov::cli::EXIT_USAGE);
        }
    }
    match execgov::cli::run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(execgov::cli::exit_code_of(&e))
        }
    }
}
