//! Logging: structured, to stderr (stdout carries reports), filtered by `RUST_LOG` with
//! `info` as the default. JSON is the in-cluster format.

use std::io::IsTerminal;

use tracing_subscriber::{EnvFilter, fmt};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Compact,
    Json,
}

/// Installs the global subscriber at `info` (`RUST_LOG` overrides); a second call is a no-op.
pub fn init(format: Format) {
    init_at(format, "info");
}

/// Like [`init`], with another default level: the demo keeps its terminal for the verdict.
pub fn init_at(format: Format, default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match format {
        Format::Compact => builder.compact().try_init(),
        Format::Json => builder.json().try_init(),
    };
}
