//! TLS towards the global, including Kuma's auto-generated certificate.
//!
//! That certificate is self-signed with CA:TRUE (kuma-semantics 2.4), which webpki refuses as
//! an end-entity (`CaUsedAsEndEntity`) even when it is the trust anchor itself. Operators
//! hand the client exactly that file as the CA, so [`PinningVerifier`] verifies normally
//! first and, only when the presented certificate is byte-identical to one the operator
//! trusts, accepts it after checking its validity period and name itself. The handshake
//! signature is still verified against the certificate's key, so the server must hold
//! the private key.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
    client::{
        WebPkiServerVerifier,
        danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    },
    crypto::{CryptoProvider, WebPkiSupportedAlgorithms},
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime, pem::PemObject};

use crate::error::{Error, Result};

/// How a client trusts the global's certificate and proves its own identity. Without a
/// CA file, [`client_config`] accepts any certificate: a caller that wants that said
/// out loud (the probe's `--skip-verify`) checks `skip_verify` itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// PEM file of trusted certificates. Kuma's auto-generated certificate may be given
    /// here as is, although it is a CA:TRUE certificate (kuma-semantics 10.6).
    pub ca_file: Option<PathBuf>,
    /// Accept any server certificate. For tests and first contact only.
    pub skip_verify: bool,
    /// PEM certificate chain and private key presented to the global, when it asks.
    pub client_identity: Option<ClientIdentity>,
}

/// A client certificate and its key, both PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// The TLS client configuration for `settings`: ring provider, ALPN `h2` (grpc-go 1.82
/// refuses connections without it, kuma-semantics 10.6), optional client certificate.
pub fn client_config(settings: &TlsSettings) -> Result<Arc<ClientConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier: Arc<dyn ServerCertVerifier> = match &settings.ca_file {
        Some(path) => Arc::new(PinningVerifier::from_ca_file(path, provider.clone())?),
        None => Arc::new(NoVerification {
            algorithms: provider.signature_verification_algorithms,
        }),
    };
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports the default protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match &settings.client_identity {
        None => builder.with_no_client_auth(),
        Some(id) => {
            let bad = |reason: String| Error::ClientIdentity {
                cert: id.cert_file.clone(),
                key: id.key_file.clone(),
                reason,
            };
            let chain = read_certificates(&id.cert_file).map_err(bad)?;
            let key = PrivateKeyDer::from_pem_file(&id.key_file)
                .map_err(|e| bad(format!("cannot read a PEM private key: {e}")))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| bad(e.to_string()))?
        }
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

fn read_certificates(path: &Path) -> std::result::Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read: {e}"))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| format!("invalid PEM: {e}"))?;
    if certs.is_empty() {
        return Err("no PEM certificate in the file".to_owned());
    }
    Ok(certs)
}

/// Verifies with webpki against the CA file, and accepts a certificate that is itself
/// in the CA file when webpki cannot (see the module docs).
#[derive(Debug)]
pub struct PinningVerifier {
    webpki: Arc<WebPkiServerVerifier>,
    /// The CA file's certificates, compared byte for byte with the presented one.
    trusted: Vec<CertificateDer<'static>>,
}

impl PinningVerifier {
    pub fn from_ca_file(path: &Path, provider: Arc<CryptoProvider>) -> Result<Self> {
        let bad = |reason: String| Error::CaFile {
            path: path.to_owned(),
            reason,
        };
        let trusted = read_certificates(path).map_err(bad)?;
        let mut roots = RootCertStore::empty();
        let (added, ignored) = roots.add_parsable_certificates(trusted.iter().cloned());
        if added == 0 {
            return Err(bad(format!(
                "none of its {ignored} certificate(s) could be parsed"
            )));
        }
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| bad(e.to_string()))?;
        Ok(Self { webpki, trusted })
    }

    /// The checks webpki would have made on an end-entity, for a certificate the operator
    /// trusts directly: validity period and name.
    fn verify_pinned(
        &self,
        cert: &CertificateDer<'_>,
        server_name: &ServerName<'_>,
        now: UnixTime,
    ) -> Result<(), rustls::Error> {
        use x509_cert::der::Decode;
        let parsed = x509_cert::Certificate::from_der(cert.as_ref())
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
        let validity = &parsed.tbs_certificate().validity();
        let now_secs = now.as_secs();
        if now_secs < validity.not_before.to_unix_duration().as_secs() {
            return Err(rustls::Error::InvalidCertificate(CertificateError::NotValidYet));
        }
        if now_secs > validity.not_after.to_unix_duration().as_secs() {
            return Err(rustls::Error::InvalidCertificate(CertificateError::Expired));
        }
        let ee = webpki::EndEntityCert::try_from(cert)
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
        ee.verify_is_valid_for_subject_name(server_name)
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::NotValidForName))
    }
}

impl PinningVerifier {
    /// webpki checks basic constraints before the issuer, so a CA:TRUE certificate from
    /// a global whose CA the operator did not give (the usual mistake: another global's
    /// `kuma-cp.crt`) is refused as `CaUsedAsEndEntity`, which sends the operator looking
    /// at the certificate's shape instead of at the CA file. When no trusted certificate
    /// could have issued it (same name as its issuer and, for a self-signed one, the same
    /// key), the truthful reason is an unknown issuer.
    fn explain(&self, webpki_error: rustls::Error, end_entity: &CertificateDer<'_>) -> rustls::Error {
        use x509_cert::der::Decode;
        if !is_ca_used_as_end_entity(&webpki_error) {
            return webpki_error;
        }
        let Ok(presented) = x509_cert::Certificate::from_der(end_entity.as_ref()) else {
            return webpki_error;
        };
        let presented = presented.tbs_certificate();
        let self_signed = presented.issuer() == presented.subject();
        let possible_issuer = self.trusted.iter().any(|t| {
            x509_cert::Certificate::from_der(t.as_ref()).is_ok_and(|trusted| {
                let trusted = trusted.tbs_certificate();
                trusted.subject() == presented.issuer()
                    && (!self_signed
                        || trusted.subject_public_key_info() == presented.subject_public_key_info())
            })
        });
        if possible_issuer {
            webpki_error
        } else {
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)
        }
    }
}

/// rustls has no variant of its own for webpki's `CaUsedAsEndEntity`; it carries it as
/// `Other`.
fn is_ca_used_as_end_entity(error: &rustls::Error) -> bool {
    match error {
        rustls::Error::InvalidCertificate(CertificateError::Other(other)) => {
            other.0.downcast_ref::<webpki::Error>() == Some(&webpki::Error::CaUsedAsEndEntity)
        }
        _ => false,
    }
}

impl ServerCertVerifier for PinningVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .webpki
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Ok(v) => Ok(v),
            Err(webpki_error) => {
                if !self.trusted.iter().any(|t| t.as_ref() == end_entity.as_ref()) {
                    return Err(self.explain(webpki_error, end_entity));
                }
                self.verify_pinned(end_entity, server_name, now)?;
                tracing::debug!(%webpki_error, "accepted the server certificate as a trusted certificate itself");
                Ok(ServerCertVerified::assertion())
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// `skip_verify`: any certificate is accepted, but the handshake signature is still
/// checked so the session keys belong to whoever holds the presented certificate.
#[derive(Debug)]
struct NoVerification {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};

    use super::*;

    struct TempPem(std::path::PathBuf);
    impl Drop for TempPem {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn write_pem(tag: &str, pem: &str) -> TempPem {
        let path = std::env::temp_dir().join(format!("kds-wire-tls-{tag}-{}.pem", std::process::id()));
        std::fs::write(&path, pem).unwrap();
        TempPem(path)
    }

    /// A certificate shaped like Kuma's auto-generated one: self-signed, CA:TRUE,
    /// SANs for localhost and 127.0.0.1.
    fn kuma_like_cert() -> rcgen::Certificate {
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2036, 1, 1);
        params.self_signed(&KeyPair::generate().unwrap()).unwrap()
    }

    fn verifier(pem: &TempPem) -> PinningVerifier {
        PinningVerifier::from_ca_file(&pem.0, Arc::new(rustls::crypto::ring::default_provider())).unwrap()
    }

    fn now() -> UnixTime {
        UnixTime::now()
    }

    #[test]
    fn a_ca_true_self_signed_certificate_is_accepted_as_its_own_ca() {
        let cert = kuma_like_cert();
        let pem = write_pem("self", &cert.pem());
        let v = verifier(&pem);
        let name = ServerName::try_from("127.0.0.1").unwrap();
        // Plain webpki refuses it; this is why the verifier exists.
        assert!(
            v.webpki
                .verify_server_cert(cert.der(), &[], &name, &[], now())
                .is_err()
        );
        assert!(v.verify_server_cert(cert.der(), &[], &name, &[], now()).is_ok());
        let other_name = ServerName::try_from("kuma.example").unwrap();
        assert_eq!(
            v.verify_server_cert(cert.der(), &[], &other_name, &[], now())
                .unwrap_err(),
            rustls::Error::InvalidCertificate(CertificateError::NotValidForName)
        );
        let year_2040 = UnixTime::since_unix_epoch(Duration::from_secs(2_208_988_800));
        assert_eq!(
            v.verify_server_cert(cert.der(), &[], &name, &[], year_2040)
                .unwrap_err(),
            rustls::Error::InvalidCertificate(CertificateError::Expired)
        );
        let year_2019 = UnixTime::since_unix_epoch(Duration::from_secs(1_546_300_800));
        assert_eq!(
            v.verify_server_cert(cert.der(), &[], &name, &[], year_2019)
                .unwrap_err(),
            rustls::Error::InvalidCertificate(CertificateError::NotValidYet)
        );
    }

    #[test]
    fn a_certificate_not_in_the_ca_file_is_rejected() {
        let trusted = write_pem("trusted", &kuma_like_cert().pem());
        let v = verifier(&trusted);
        let stranger = kuma_like_cert();
        let name = ServerName::try_from("localhost").unwrap();
        // Another global's certificate is CA:TRUE too; webpki alone calls that
        // CaUsedAsEndEntity, but what is wrong is the CA file.
        assert!(is_ca_used_as_end_entity(
            &v.webpki
                .verify_server_cert(stranger.der(), &[], &name, &[], now())
                .unwrap_err()
        ));
        assert_eq!(
            v.verify_server_cert(stranger.der(), &[], &name, &[], now())
                .unwrap_err(),
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)
        );
    }

    #[test]
    fn client_identities_load_or_fail_clearly() {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["kuma-sync-probe".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let cert_file = write_pem("client-cert", &cert.pem());
        let key_file = write_pem("client-key", &key.serialize_pem());
        let ca = write_pem("client-ca", &kuma_like_cert().pem());
        let mut settings = TlsSettings {
            ca_file: Some(ca.0.clone()),
            skip_verify: false,
            client_identity: Some(ClientIdentity {
                cert_file: cert_file.0.clone(),
                key_file: key_file.0.clone(),
            }),
        };
        let config = client_config(&settings).expect("a matching certificate and key");
        assert_eq!(config.alpn_protocols, [b"h2".to_vec()]);
        assert!(config.client_auth_cert_resolver.has_certs());
        // The certificate given as key: no private key in it.
        settings.client_identity = Some(ClientIdentity {
            cert_file: cert_file.0.clone(),
            key_file: cert_file.0.clone(),
        });
        let err = client_config(&settings).unwrap_err();
        assert!(matches!(err, Error::ClientIdentity { .. }), "{err}");
        assert!(!err.is_retryable());
    }

    #[test]
    fn unusable_ca_files_are_clear_errors() {
        let empty = write_pem("empty", "not a certificate\n");
        let err = PinningVerifier::from_ca_file(&empty.0, Arc::new(rustls::crypto::ring::default_provider()))
            .unwrap_err();
        assert!(matches!(err, Error::CaFile { .. }), "{err}");
        assert!(err.to_string().contains("no PEM certificate"), "{err}");
        let missing = Path::new("/nonexistent/ca.pem");
        let err = PinningVerifier::from_ca_file(missing, Arc::new(rustls::crypto::ring::default_provider()))
            .unwrap_err();
        assert!(!err.is_retryable());
        assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
    }
}
