//! Why the probe lost (or never got) its stream, and whether trying again can help.

use std::{error::Error as StdError, io, path::PathBuf};

use tonic::Code;

use crate::config::ConfigError;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Every way the probe can fail. Fatal variants stop the probe with their message;
/// retryable ones end the current stream and the probe reconnects with backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The CA file cannot be read or holds no usable certificate.
    #[error("CA file {path}: {reason}")]
    CaFile { path: PathBuf, reason: String },
    /// The client certificate or key cannot be read or does not form a usable identity.
    #[error("client certificate {cert} / key {key}: {reason}")]
    ClientIdentity {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
    /// The global's certificate failed verification: wrong CA file, wrong host name or
    /// an expired certificate. Retrying cannot fix it.
    #[error("the certificate of {address} was rejected: {reason} (check --ca-file and the host name)")]
    CertificateRejected { address: String, reason: String },
    /// TCP connect failed or timed out (refused, unreachable, DNS).
    #[error("cannot connect to {address}: {source}")]
    Connect {
        address: String,
        #[source]
        source: io::Error,
    },
    /// The TLS handshake failed for a reason other than the certificate.
    #[error("TLS handshake with {address} failed: {source}")]
    Handshake {
        address: String,
        #[source]
        source: io::Error,
    },
    /// The global refused the probe's identity (a Kong Mesh global wants a zone token).
    #[error(
        "the global refused the probe ({code:?}): {message}; a zone token is needed, which the probe does not send"
    )]
    Refused { code: Code, message: String },
    /// The server does not speak KDS (wrong port or not a global control plane).
    #[error("{rpc} is not served at this address ({code:?}: {message}); is this a Kuma global's KDS port?")]
    NotKds {
        rpc: &'static str,
        code: Code,
        message: String,
    },
    /// A message was larger than the 10 MiB decode limit; the stream is torn down.
    #[error("{rpc}: a message exceeded the 10 MiB limit: {message}")]
    MessageTooLarge { rpc: &'static str, message: String },
    /// The stream or connection failed with a gRPC status (unavailable, reset, ...).
    #[error("{rpc} failed ({code:?}): {message}")]
    Stream {
        rpc: &'static str,
        code: Code,
        message: String,
    },
    /// The metrics could not be registered (a name already taken in the registry).
    #[error("cannot register the probe's metrics: {0}")]
    Metrics(String),
    /// The `--record` directory cannot be created.
    #[error("cannot record into {dir}: {error}")]
    Record { dir: PathBuf, error: io::Error },
    /// The global ended the stream cleanly; Kuma never does this while healthy.
    #[error("the global closed the GlobalToZoneSync stream")]
    StreamClosed,
}

impl Error {
    /// Whether reconnecting can help.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Config(_)
            | Error::CaFile { .. }
            | Error::ClientIdentity { .. }
            | Error::CertificateRejected { .. }
            | Error::Refused { .. }
            | Error::NotKds { .. }
            | Error::Metrics(_)
            | Error::Record { .. } => false,
            Error::Connect { .. }
            | Error::Handshake { .. }
            | Error::MessageTooLarge { .. }
            | Error::Stream { .. }
            | Error::StreamClosed => true,
        }
    }

    /// A fixed, low-cardinality label for `kuma_sync_kds_errors_total{class}`.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Config(_) => "config",
            Error::CaFile { .. } => "ca_file",
            Error::ClientIdentity { .. } => "client_identity",
            Error::CertificateRejected { .. } => "certificate",
            Error::Connect { .. } => "connect",
            Error::Handshake { .. } => "handshake",
            Error::Refused { .. } => "refused",
            Error::NotKds { .. } => "not_kds",
            Error::Metrics(_) | Error::Record { .. } => "config",
            Error::MessageTooLarge { .. } => "message_too_large",
            Error::Stream {
                code: Code::Unavailable,
                ..
            } => "unavailable",
            Error::Stream {
                code: Code::DeadlineExceeded,
                ..
            } => "deadline",
            Error::Stream { .. } => "stream_reset",
            Error::StreamClosed => "stream_closed",
        }
    }

    /// Every label [`Error::metric_label`] can return, so the counter can be
    /// pre-registered at zero.
    pub const METRIC_LABELS: &'static [&'static str] = &[
        "config",
        "ca_file",
        "client_identity",
        "certificate",
        "connect",
        "handshake",
        "refused",
        "not_kds",
        "metrics",
        "message_too_large",
        "unavailable",
        "deadline",
        "stream_reset",
        "stream_closed",
    ];

    /// Classifies a gRPC status from `rpc`. A status that wraps one of the probe's own
    /// connect errors (the channel reconnects inside tonic) becomes that error.
    pub fn from_status(rpc: &'static str, status: tonic::Status) -> Self {
        if let Some(e) = find_connect_error(&status) {
            return e;
        }
        let message = status.message().to_owned();
        match status.code() {
            Code::Unauthenticated | Code::PermissionDenied => Error::Refused {
                code: status.code(),
                message,
            },
            Code::Unimplemented => Error::NotKds {
                rpc,
                code: status.code(),
                message,
            },
            // tonic reports an over-limit message as OutOfRange (decoder) or
            // ResourceExhausted (grpc-go peers).
            Code::OutOfRange | Code::ResourceExhausted if message.contains("too large") => {
                Error::MessageTooLarge { rpc, message }
            }
            code => Error::Stream { rpc, code, message },
        }
    }

    /// Classifies a failure of `Endpoint::connect_with_connector`.
    pub fn from_transport(address: &str, err: tonic::transport::Error) -> Self {
        if let Some(e) = find_connect_error(&err) {
            return e;
        }
        Error::Connect {
            address: address.to_owned(),
            source: io::Error::other(chain_message(&err)),
        }
    }
}

/// The connector's own error, carried through tonic's and hyper's error chains.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectFailure {
    #[error("cannot connect to {address}: {source}")]
    Tcp { address: String, source: io::Error },
    #[error("certificate of {address} rejected: {reason}")]
    Certificate { address: String, reason: String },
    #[error("TLS handshake with {address} failed: {source}")]
    Handshake { address: String, source: io::Error },
}

impl ConnectFailure {
    fn to_error(&self) -> Error {
        let copy = |e: &io::Error| io::Error::new(e.kind(), e.to_string());
        match self {
            ConnectFailure::Tcp { address, source } => Error::Connect {
                address: address.clone(),
                source: copy(source),
            },
            ConnectFailure::Certificate { address, reason } => Error::CertificateRejected {
                address: address.clone(),
                reason: reason.clone(),
            },
            ConnectFailure::Handshake { address, source } => Error::Handshake {
                address: address.clone(),
                source: copy(source),
            },
        }
    }
}

fn find_connect_error(err: &(dyn StdError + 'static)) -> Option<Error> {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(f) = e.downcast_ref::<ConnectFailure>() {
            return Some(f.to_error());
        }
        if let Some(io) = e.downcast_ref::<io::Error>()
            && let Some(f) = io
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<ConnectFailure>())
        {
            return Some(f.to_error());
        }
        cur = e.source();
    }
    None
}

/// The messages of an error and its causes, joined: tonic's top-level transport error
/// alone says only "transport error".
fn chain_message(err: &(dyn StdError + 'static)) -> String {
    let mut parts = vec![err.to_string()];
    let mut cur = err.source();
    while let Some(e) = cur {
        let s = e.to_string();
        if parts.last() != Some(&s) {
            parts.push(s);
        }
        cur = e.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified_by_code_and_cause() {
        let refused = Error::from_status("GlobalToZoneSync", tonic::Status::unauthenticated("no token"));
        assert!(!refused.is_retryable());
        assert_eq!(refused.metric_label(), "refused");
        let denied = Error::from_status("GlobalToZoneSync", tonic::Status::permission_denied("no"));
        assert!(!denied.is_retryable());
        let down = Error::from_status(
            "GlobalToZoneSync",
            tonic::Status::unavailable("connection refused"),
        );
        assert!(down.is_retryable());
        assert_eq!(down.metric_label(), "unavailable");
        let reset = Error::from_status(
            "GlobalToZoneSync",
            tonic::Status::internal("h2 protocol error: stream reset"),
        );
        assert!(reset.is_retryable());
        assert_eq!(reset.metric_label(), "stream_reset");
        let big = Error::from_status(
            "GlobalToZoneSync",
            tonic::Status::out_of_range("Error, decoded message length too large: found 11000000 bytes"),
        );
        assert!(big.is_retryable());
        assert_eq!(big.metric_label(), "message_too_large");
        let wrong_port = Error::from_status("HealthCheck", tonic::Status::unimplemented(""));
        assert!(!wrong_port.is_retryable());
        assert_eq!(wrong_port.metric_label(), "not_kds");
    }

    #[test]
    fn connect_failures_inside_a_status_keep_their_class() {
        let failure = ConnectFailure::Certificate {
            address: "h:1".into(),
            reason: "UnknownIssuer".into(),
        };
        let status = tonic::Status::from_error(Box::new(failure));
        let e = Error::from_status("GlobalToZoneSync", status);
        assert!(matches!(e, Error::CertificateRejected { .. }), "{e:?}");
        assert!(!e.is_retryable());
        let refused = io::Error::other(ConnectFailure::Tcp {
            address: "h:1".into(),
            source: io::Error::from(io::ErrorKind::ConnectionRefused),
        });
        let e = Error::from_status("GlobalToZoneSync", tonic::Status::from_error(Box::new(refused)));
        assert!(matches!(e, Error::Connect { .. }), "{e:?}");
        assert!(e.is_retryable());
    }

    #[test]
    fn labels_are_a_closed_set() {
        let samples = [
            Error::StreamClosed,
            Error::Config(ConfigError::NoTypes),
            Error::Stream {
                rpc: "x",
                code: Code::DeadlineExceeded,
                message: String::new(),
            },
            Error::CaFile {
                path: "x".into(),
                reason: String::new(),
            },
        ];
        for e in samples {
            assert!(
                Error::METRIC_LABELS.contains(&e.metric_label()),
                "{}",
                e.metric_label()
            );
        }
        assert!(!Error::Config(ConfigError::NoTypes).is_retryable());
        assert!(Error::StreamClosed.is_retryable());
    }
}
