//! Logging setup shared by the functions and the CLI.

use tracing_subscriber::EnvFilter;

/// JSON logs on standard error, as Lambda expects; the level from `RUST_LOG` (default `info`).
/// EMF metric lines go to standard output, so the two never interleave within a line.
pub fn init_lambda_logging() {
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_current_span(false)
        .with_target(false)
        .without_time()
        .with_writer(std::io::stderr)
        .try_init();
}

/// Human-readable logs on standard error for the CLI (default level `warn`).
pub fn init_cli_logging(verbose: bool) {
    let default = if verbose { "info" } else { "warn" };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default)),
        )
        .with_target(false)
        .with_writer(std::io::stderr)
        .try_init();
}
