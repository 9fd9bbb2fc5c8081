//! The `s2r-pipe` command line (see `cli/`).

mod cli;

use std::process::ExitCode;

use clap::Parser;
use s2r_pipe::Diagnostics;

use cli::args::Cli;
use cli::ConfigError;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("S2R_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli::dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            if let Some(d) = e.downcast_ref::<Diagnostics>() {
                eprintln!("{d}");
                return ExitCode::from(2);
            }
            if e.downcast_ref::<ConfigError>().is_some() {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
