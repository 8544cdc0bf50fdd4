//! The `kuma-sync` command: verification of Kuma multi-zone sync from files today, and the
//! metrics server and live verification as they land. `main.rs` only parses arguments and
//! maps outcomes to exit codes; everything else lives here so tests can reach it.
//!
//! # Layout
//! - [`cli`]: command-line definitions.
//! - [`verify`]: `kuma-sync verify` on files.
//! - [`output`]: table, JSON and YAML rendering of a verdict.
//! - [`error`]: the command's errors.
//! - [`shutdown`]: SIGINT/SIGTERM as a future.
//! - [`telemetry`]: logging setup.

pub mod cli;
pub mod error;
pub mod output;
pub mod shutdown;
pub mod telemetry;
pub mod verify;

pub use error::Error;

/// Exit codes, as `argocd app diff` uses them.
pub mod exit {
    /// Every monitored zone converged.
    pub const CONVERGED: u8 = 0;
    /// At least one discrepancy, or a zone in an unknown state.
    pub const NOT_CONVERGED: u8 = 1;
    /// Bad input or usage: nothing was verified.
    pub const ERROR: u8 = 2;
}
