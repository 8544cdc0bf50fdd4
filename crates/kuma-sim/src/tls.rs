//! A self-signed server certificate shaped like the one Kuma's global generates when no
//! certificate is configured (kuma-semantics 2.4, `pkg/tls/cert.go`): empty subject, CA:TRUE,
//! EKU serverAuth, SANs for the given hosts.
//!
//! Kuma's key is RSA-2048; rcgen with the `ring` backend can only generate ECDSA keys, so
//! this one is ECDSA P-256. What clients trip over (a CA:TRUE certificate used as an end
//! entity, `CaUsedAsEndEntity` in webpki) is the same either way. Validity is rcgen's
//! default (1975 to 4096) rather than Kuma's ten years.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

use crate::Error;

/// A certificate and its private key, both PEM.
#[derive(Clone)]
pub struct SelfSigned {
    /// Also the CA file a client needs, since the certificate signs itself.
    pub cert_pem: String,
    /// PKCS#8.
    pub key_pem: String,
}

impl std::fmt::Debug for SelfSigned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Keep the private key out of logs and test failure output.
        f.debug_struct("SelfSigned")
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

/// Generates a certificate for `hosts`: each is an IP SAN if it parses as an address,
/// else a DNS SAN. Kuma's own lists the hostname, `localhost` and every host IP.
pub fn generate(hosts: &[&str]) -> Result<SelfSigned, Error> {
    let mut params = CertificateParams::new(hosts.iter().map(|h| (*h).to_owned()).collect::<Vec<_>>())
        .map_err(Error::Certificate)?;
    params.distinguished_name = DistinguishedName::new();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
        KeyUsagePurpose::KeyCertSign,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate().map_err(Error::Certificate)?;
    let cert = params.self_signed(&key).map_err(Error::Certificate)?;
    Ok(SelfSigned {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_pem_pair() {
        let pair = generate(&["localhost", "127.0.0.1"]).expect("generation works offline");
        assert!(pair.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(pair.key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        assert!(
            !format!("{pair:?}").contains("PRIVATE KEY"),
            "Debug must not leak the key"
        );
    }
}
