//! Why the probe lost (or never got) its stream, and whether trying again can help.

use std::{io, path::PathBuf};

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
    /// No channel to the global: a TLS file, the certificate, TCP or the handshake.
    #[error(transparent)]
    Transport(#[from] kds_wire::Error),
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
            Error::Transport(e) => e.is_retryable(),
            Error::Config(_)
            | Error::Refused { .. }
            | Error::NotKds { .. }
            | Error::Metrics(_)
            | Error::Record { .. } => false,
            Error::MessageTooLarge { .. } | Error::Stream { .. } | Error::StreamClosed => true,
        }
    }

    /// A fixed, low-cardinality label for `kuma_sync_kds_errors_total{class}`.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Config(_) => "config",
            Error::Transport(e) => match e {
                kds_wire::Error::CaFile { .. } => "ca_file",
                kds_wire::Error::ClientIdentity { .. } => "client_identity",
                kds_wire::Error::CertificateRejected { .. } => "certificate",
                kds_wire::Error::Connect { .. } => "connect",
                kds_wire::Error::Handshake { .. } => "handshake",
            },
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

    /// Classifies a gRPC status from `rpc`. A status that wraps one of the connector's
    /// own errors (the channel reconnects inside tonic) becomes that error.
    pub fn from_status(rpc: &'static str, status: tonic::Status) -> Self {
        if let Some(e) = kds_wire::Error::in_chain(&status) {
            return Error::Transport(e);
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
    fn labels_are_a_closed_set() {
        let samples = [
            Error::StreamClosed,
            Error::Config(ConfigError::NoTypes),
            Error::Stream {
                rpc: "x",
                code: Code::DeadlineExceeded,
                message: String::new(),
            },
            Error::Transport(kds_wire::Error::CaFile {
                path: "x".into(),
                reason: String::new(),
            }),
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
