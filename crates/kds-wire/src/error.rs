//! Why a channel to the global could not be opened, and whether trying again can help.

use std::{error::Error as StdError, io, path::PathBuf};

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Every way [`crate::tls::client_config`] and [`crate::Connector`] fail. Fatal variants
/// need a person (a file, a certificate); retryable ones may pass on the next attempt.
#[derive(Debug, thiserror::Error)]
pub enum Error {
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
}

impl Error {
    /// Whether connecting again can help.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::CaFile { .. } | Error::ClientIdentity { .. } | Error::CertificateRejected { .. } => false,
            Error::Connect { .. } | Error::Handshake { .. } => true,
        }
    }

    /// The connector's own failure, when `err` or one of its causes is one: the channel
    /// reconnects inside tonic, so a stream's status may carry it.
    pub fn in_chain(err: &(dyn StdError + 'static)) -> Option<Error> {
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

    /// Classifies a failure of `Endpoint::connect_with_connector`.
    pub fn from_transport(address: &str, err: tonic::transport::Error) -> Self {
        if let Some(e) = Self::in_chain(&err) {
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
    fn connect_failures_inside_a_status_keep_their_class() {
        let failure = ConnectFailure::Certificate {
            address: "h:1".into(),
            reason: "UnknownIssuer".into(),
        };
        let status = tonic::Status::from_error(Box::new(failure));
        let e = Error::in_chain(&status).expect("found");
        assert!(matches!(e, Error::CertificateRejected { .. }), "{e:?}");
        assert!(!e.is_retryable());
        let refused = io::Error::other(ConnectFailure::Tcp {
            address: "h:1".into(),
            source: io::Error::from(io::ErrorKind::ConnectionRefused),
        });
        let e = Error::in_chain(&tonic::Status::from_error(Box::new(refused))).expect("found");
        assert!(matches!(e, Error::Connect { .. }), "{e:?}");
        assert!(e.is_retryable());
        assert!(Error::in_chain(&tonic::Status::unavailable("down")).is_none());
    }
}
