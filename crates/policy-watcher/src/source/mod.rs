//! Where observations come from. Each source reads one control plane and reports whole
//! snapshots (or changes) to the engine; a source that cannot read reports an error, and
//! its control plane becomes `unknown`, never `converged`.
//!
//! Always built: [`SourceError`] (the monitor records it), and the parsing of what the
//! REST API answers ([`insight`], [`api_index`]). With the `sources` feature (default),
//! the readers themselves:
//! - [`http`]: an HTTP(S) client with the control plane's CA and token.
//! - [`rest`]: Kuma's REST API (universal control planes, or any CP's API server).
//! - [`api_index`]: the API's `GET /`, which says which Kuma answers.
//! - [`poll`]: a full REST read every interval, into the monitor.
//! - [`kube`]: kube-rs watchers on a control plane's cluster.
//! - [`insight`]: the global's ZoneInsights (online, NACKs, versions).
//! - [`first_reads`]: how many control planes are read for the first time at once.

pub mod api_index;
#[cfg(feature = "sources")]
pub mod first_reads;
#[cfg(feature = "sources")]
pub mod http;
pub mod insight;
#[cfg(feature = "sources")]
pub mod kube;
#[cfg(feature = "sources")]
pub mod poll;
#[cfg(feature = "sources")]
pub mod rest;

/// Why a control plane could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// No connection: refused, unresolvable, TLS handshake failure.
    #[error("cannot reach {url}: {reason}")]
    Unreachable { url: String, reason: String },
    /// The control plane accepted the connection but did not answer in time.
    #[error("no answer from {url} within {seconds}s")]
    Timeout { url: String, seconds: u64 },
    /// The control plane answered with an error status.
    #[error("{url} answered {status}: {body}")]
    Status { url: String, status: u16, body: String },
    /// The answer was not what Kuma sends (malformed JSON, unknown shape).
    #[error("{url}: {reason}")]
    Decode { url: String, reason: String },
    /// The TLS settings cannot work (unreadable or invalid CA file).
    #[error("TLS configuration: {0}")]
    TlsConfig(String),
    /// The configuration names something the source cannot use.
    #[error("{0}")]
    Config(String),
    /// A Kubernetes watch failed (the watcher retries with backoff).
    #[error("watching {what}: {reason}")]
    Watch { what: String, reason: String },
    /// An answer, or a whole read, beyond a bound kuma-sync sets (body bytes, pages,
    /// items): refused rather than buffered without end.
    #[error("{url}: refused, too large: {reason}")]
    TooLarge { url: String, reason: String },
    /// A `next` link that loops or leads off the control plane's address.
    #[error("{url}: paging: {reason}")]
    Paging { url: String, reason: String },
    /// The source itself failed (a panic, a bug): it is started again.
    #[error("the source stopped: {0}")]
    Stopped(String),
    /// A whole read (every page of every type) did not finish in time, though each
    /// answer may have: the control plane is `unknown`, not its last read for ever.
    #[error("reading {url} did not finish within {deadline:?}")]
    ReadDeadline {
        url: String,
        deadline: std::time::Duration,
    },
}

impl SourceError {
    /// Worth another try on the next interval. Authentication and configuration errors
    /// need a person; trying again only repeats them.
    pub fn is_retryable(&self) -> bool {
        match self {
            SourceError::Unreachable { .. }
            | SourceError::Timeout { .. }
            | SourceError::Decode { .. }
            | SourceError::Watch { .. }
            | SourceError::ReadDeadline { .. }
            | SourceError::Stopped(_) => true,
            // What the server sends, not a passing fault: the same read hits it again.
            SourceError::TooLarge { .. } | SourceError::Paging { .. } => false,
            SourceError::Status { status, .. } => !matches!(status, 400 | 401 | 403 | 404),
            SourceError::TlsConfig(_) | SourceError::Config(_) => false,
        }
    }

    /// A fixed, low-cardinality label for `kuma_sync_source_errors_total{class}`.
    pub fn metric_label(&self) -> &'static str {
        match self {
            SourceError::Unreachable { .. } => "unreachable",
            SourceError::Timeout { .. } => "timeout",
            SourceError::Status {
                status: 401 | 403, ..
            } => "unauthorized",
            SourceError::Status { .. } => "http_status",
            SourceError::Decode { .. } => "decode",
            SourceError::TlsConfig(_) => "tls_config",
            SourceError::Config(_) => "config",
            SourceError::Watch { .. } => "watch",
            SourceError::TooLarge { .. } => "too_large",
            SourceError::Paging { .. } => "paging",
            SourceError::ReadDeadline { .. } => "timeout",
            SourceError::Stopped(_) => "internal",
        }
    }
}
