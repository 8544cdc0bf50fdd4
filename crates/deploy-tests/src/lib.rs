//! Test support for what kuma-sync ships under `deploy/`: the alert rules, the Grafana
//! dashboard, the Alertmanager example and the Kubernetes manifests are checked with the
//! real Prometheus tools (Debian packages `prometheus` and `prometheus-alertmanager`),
//! the Helm chart with the real `helm` (from the Go module proxy), and every Kubernetes
//! object strictly against the Kubernetes API types.
//!
//! The process guards are meant for reuse by end-to-end tests: each starts its server on a
//! free `127.0.0.1` port in a private temporary directory, waits (bounded) until it is
//! ready, and kills it when dropped, also when a test panics. Everything here is blocking;
//! call it from `tokio::task::spawn_blocking` inside async tests.
//!
//! A missing tool is an error saying how to install it, never a silent skip.
//!
//! # Layout
//! - [`process`]: locating the tools, running them with a timeout, the kill-on-drop guard.
//! - [`http`]: a minimal blocking HTTP/1.1 client for the servers' loopback APIs.
//! - [`prom`]: [`prom::Prometheus`] guard, instant queries, alerts, TSDB backfill.
//! - [`alertmanager`]: [`alertmanager::Alertmanager`] guard, posting and listing alerts.
//! - [`exposition`]: every metric family kuma-sync exports, read from its golden `/metrics`.
//! - [`synthetic`]: OpenMetrics data covering every metric `kuma-sync serve` exports.
//! - [`repo`]: paths of the shipped files inside the workspace, the image name and tag.
//! - [`k8s`]: strict validation of Kubernetes (and Prometheus Operator) objects.
//! - [`helm`]: `helm lint` and `helm template` of the chart.
//! - [`serve_config`]: the file paths a `kuma-sync serve` configuration names.
//! - [`webhook`]: a loopback receiver for Alertmanager webhook notifications.

pub mod alertmanager;
pub mod exposition;
pub mod helm;
pub mod http;
pub mod k8s;
pub mod process;
pub mod prom;
pub mod repo;
pub mod serve_config;
pub mod synthetic;
pub mod webhook;

use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong while driving the Prometheus tools.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The executable is not on `PATH`; the message says how to install it.
    #[error("`{tool}` not found on PATH: {install}")]
    ToolMissing {
        tool: &'static str,
        install: process::Install,
    },
    /// A file or process operation failed.
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// A tool ran longer than its budget and was killed.
    #[error("`{tool}` did not finish within {after:?} and was killed")]
    Timeout { tool: String, after: Duration },
    /// A server exited before it became ready.
    #[error("{server} exited with {status} before becoming ready; its log ends with:\n{log}")]
    Exited {
        server: &'static str,
        status: std::process::ExitStatus,
        log: String,
    },
    /// A server kept answering "not ready" (or nothing) for the whole wait.
    #[error("{server} was not ready within {after:?}; its log ends with:\n{log}")]
    NotReady {
        server: &'static str,
        after: Duration,
        log: String,
    },
    /// The HTTP exchange itself failed or the response was not HTTP.
    #[error("HTTP {method} {target} failed: {reason}")]
    Http {
        method: &'static str,
        target: String,
        reason: String,
    },
    /// The server answered with an error status or an API error body.
    #[error("{target} answered {status}: {body}")]
    Api {
        target: String,
        status: u16,
        body: String,
    },
    /// A response body was not the JSON the API documents.
    #[error("cannot decode the answer of {target}")]
    Decode {
        target: String,
        #[source]
        source: serde_json::Error,
    },
}

impl Error {
    /// Only a server that is still starting up is worth asking again.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::NotReady { .. } | Error::Http { .. })
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The last lines of a server log, for error messages.
pub(crate) fn log_tail(path: &PathBuf) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(20);
    lines[from..].join("\n")
}
