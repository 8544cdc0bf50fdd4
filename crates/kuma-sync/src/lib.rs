//! The `kuma-sync` command: `verify` (on files or live control planes), `serve` (the
//! daemon with `/metrics`, `/status` and health), `probe` (the live KDS view) and `demo`
//! (all of it on a kuma-sim lab). `main.rs` only parses arguments and maps outcomes to exit
//! codes; everything else lives here so tests can reach it.
//!
//! # Layout
//! - [`canary`]: the opt-in canary write and its arrival in every zone.
//! - [`cli`]: command-line definitions.
//! - [`config`]: the `serve` configuration file, validated.
//! - [`serve`]: sources, monitor, probe and HTTP server wired together.
//! - [`probe`]: `kuma-sync probe`, flags and the live display of kds-probe's view.
//! - `demo` (feature `demo`, on by default): `kuma-sync demo` on a kuma-sim lab.
//! - [`server`]: `/metrics`, `/status`, `/healthz`, `/readyz`.
//! - [`collectors`]: Prometheus collectors.
//! - [`stall`]: the KDS stall check.
//! - [`leader`]: leader election on a Kubernetes Lease (only the leader runs the probe).
//! - [`status`]: the `/status` document.
//! - [`verify`]: `kuma-sync verify` on files.
//! - [`live`]: `kuma-sync verify --config` on live control planes.
//! - [`output`]: table, JSON and YAML rendering of a verdict.
//! - [`error`]: the command's errors.
//! - [`shutdown`]: SIGINT/SIGTERM as a future.
//! - [`telemetry`]: logging setup.

pub mod canary;
pub mod cli;
pub mod collectors;
pub mod config;
#[cfg(feature = "demo")]
pub mod demo;
pub mod error;
pub mod leader;
pub mod live;
pub mod output;
pub mod probe;
pub mod serve;
pub mod server;
pub mod shutdown;
pub mod stall;
pub mod status;
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
    /// `serve` with a configuration that cannot work (`EX_USAGE`).
    pub const BAD_CONFIG: u8 = 64;
}
