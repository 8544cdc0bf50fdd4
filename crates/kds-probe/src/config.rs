//! What the probe connects to and how it presents itself, validated once so the rest of
//! the crate never sees a contradictory setting.

use std::time::Duration;

pub use kds_wire::{AddressError, ClientIdentity, KdsAddress, TlsSettings};
use kuma_model::ResourceType;

/// The zone name the probe uses unless told otherwise. It never collides with a real
/// zone by accident, and it is a DNS label, as a Kubernetes global requires (kuma-semantics 5).
pub const DEFAULT_ZONE_NAME: &str = "kuma-sync-probe";

/// How often the probe calls HealthCheck by default. Kuma's own zones ping every
/// 5 minutes; once a minute keeps the exported result fresh at negligible cost.
pub const DEFAULT_HEALTH_CHECK_INTERVAL: Duration = Duration::from_secs(60);

/// Bounds of the reconnect backoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffSettings {
    /// Delay before the first retry.
    pub initial: Duration,
    /// Longest delay between attempts; the global may be down for long and the probe
    /// must notice within this bound once it is back.
    pub max: Duration,
}

impl Default for BackoffSettings {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(30),
        }
    }
}

/// Everything the probe needs. Build it with [`ProbeConfig::new`] and adjust the public
/// fields; [`ProbeConfig::validate`] runs again when the probe starts.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeConfig {
    pub address: KdsAddress,
    pub tls: TlsSettings,
    /// Sent as `client-id` and `node.id`; the global creates a Zone of this name.
    pub zone_name: String,
    /// The types subscribed to, one wildcard subscription each.
    pub types: Vec<ResourceType>,
    pub health_check_interval: Duration,
    /// Zones the global already knows (e.g. from its REST API). The probe refuses to use
    /// one of these names: two streams under one name stall the real zone (kuma-semantics 5).
    pub known_zones: Vec<String>,
    pub backoff: BackoffSettings,
    /// Bound on TCP connect plus TLS handshake.
    pub connect_timeout: Duration,
    /// Keep trying after an error that needs a person (the global refuses the identity,
    /// does not serve KDS, or its certificate fails verification), at the backoff's
    /// longest delay, instead of stopping: what the daemon wants, so that it recovers once
    /// the global is fixed and shows the failure in its metrics meanwhile. The CLI stops
    /// and says why.
    pub retry_refusals: bool,
    /// Write every response received to this directory (`probe --record`).
    pub record: Option<std::path::PathBuf>,
}

impl ProbeConfig {
    /// Defaults for everything but the address: the default zone name, every targetRef
    /// policy type that flows global-to-zone, TLS settings empty (system trust is not
    /// used: set a CA file or `skip_verify` for `grpcs://`).
    pub fn new(address: &str) -> Result<Self, ConfigError> {
        Ok(Self {
            address: KdsAddress::parse(address)?,
            tls: TlsSettings::default(),
            zone_name: DEFAULT_ZONE_NAME.to_owned(),
            types: ResourceType::targetref_policies().collect(),
            health_check_interval: DEFAULT_HEALTH_CHECK_INTERVAL,
            known_zones: Vec::new(),
            backoff: BackoffSettings::default(),
            connect_timeout: Duration::from_secs(10),
            retry_refusals: false,
            record: None,
        })
    }

    /// Checks every rule; the first broken one is returned.
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate_dns_label(&self.zone_name)?;
        if self.known_zones.iter().any(|z| z == &self.zone_name) {
            return Err(ConfigError::ZoneNameTaken(self.zone_name.clone()));
        }
        if self.types.is_empty() {
            return Err(ConfigError::NoTypes);
        }
        for t in &self.types {
            if t.info().is_secret() {
                return Err(ConfigError::SecretType(t.name()));
            }
            if !t.info().flows_global_to_zone() {
                return Err(ConfigError::NotGlobalToZone(t.name()));
            }
        }
        let mut seen = self.types.clone();
        seen.sort();
        if let Some(w) = seen.windows(2).find(|w| w[0] == w[1]) {
            return Err(ConfigError::DuplicateType(w[0].name()));
        }
        let tls = &self.tls;
        if !self.address.tls && (tls.ca_file.is_some() || tls.skip_verify || tls.client_identity.is_some()) {
            return Err(ConfigError::TlsOptionsWithoutTls);
        }
        if self.address.tls {
            match (&tls.ca_file, tls.skip_verify) {
                (Some(_), true) => return Err(ConfigError::CaFileAndSkipVerify),
                (None, false) => return Err(ConfigError::NoTrust),
                _ => {}
            }
        }
        if self.health_check_interval < Duration::from_secs(1) {
            return Err(ConfigError::HealthCheckInterval(self.health_check_interval));
        }
        if self.backoff.initial.is_zero() || self.backoff.max < self.backoff.initial {
            return Err(ConfigError::Backoff);
        }
        Ok(())
    }
}

/// Kuma zone names become Kubernetes object names: lowercase RFC 1123 labels; Kuma 3
/// also requires them to start with a letter (RFC 1035, `pkg/config/multizone` and the
/// global's Zone validator at Kuma's main branch). The probe's name must pass both.
pub fn validate_dns_label(name: &str) -> Result<(), ConfigError> {
    kuma_model::zone_name::check_for_kuma_3(name).map_err(|reason| ConfigError::ZoneName {
        name: name.to_owned(),
        reason,
    })
}

/// A configuration the probe refuses to run with. Always fatal.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// The KDS address is not `grpcs://host[:port]` or `grpc://host[:port]`.
    #[error(transparent)]
    Address(#[from] AddressError),
    /// The zone name is not a DNS label.
    #[error("invalid zone name {name:?}: {reason} (the global creates a Zone of this name)")]
    ZoneName { name: String, reason: &'static str },
    /// The zone name belongs to a zone the global already knows.
    #[error(
        "zone name {0:?} is already a zone of this global; a probe under a real zone's name would stall that zone's sync (choose another --zone-name)"
    )]
    ZoneNameTaken(String),
    /// No type to subscribe to.
    #[error("no resource type to subscribe to")]
    NoTypes,
    /// Secret or GlobalSecret was requested.
    #[error(
        "{0} cannot be subscribed to: the probe never pulls secrets (they include mesh CA and token-signing keys)"
    )]
    SecretType(&'static str),
    /// A type the global never sends to zones.
    #[error("{0} does not flow from the global to zones; subscribing would only ever return nothing")]
    NotGlobalToZone(&'static str),
    /// A type was listed twice.
    #[error("{0} is listed twice")]
    DuplicateType(&'static str),
    /// A type name that Kuma does not have.
    #[error("unknown resource type {0:?}")]
    UnknownType(String),
    /// TLS options were given for a `grpc://` address.
    #[error("--ca-file, --skip-verify and client certificates need a grpcs:// address")]
    TlsOptionsWithoutTls,
    /// Both a CA file and skip-verify.
    #[error("--ca-file and --skip-verify contradict each other; give one")]
    CaFileAndSkipVerify,
    /// `grpcs://` without a way to trust the server.
    #[error("grpcs:// needs --ca-file (Kuma's kuma-cp.crt works as is) or --skip-verify")]
    NoTrust,
    /// Only one of client certificate and key.
    #[error("--client-cert and --client-key go together")]
    HalfClientIdentity,
    /// A health check interval too short to be polite.
    #[error("health check interval {0:?} is shorter than 1s")]
    HealthCheckInterval(Duration),
    /// A duration that does not parse.
    #[error("invalid duration {0:?}: expected a positive duration like 500ms, 30s or 1m30s")]
    Duration(String),
    /// Backoff bounds out of order.
    #[error("backoff: initial delay must be positive and not above the maximum")]
    Backoff,
}

/// The probe's client certificate from a certificate file and a key file, given together
/// or not at all: one without the other is refused, by the flags and the file alike.
pub fn client_identity(
    cert_file: Option<std::path::PathBuf>,
    key_file: Option<std::path::PathBuf>,
) -> Result<Option<ClientIdentity>, ConfigError> {
    match (cert_file, key_file) {
        (Some(cert_file), Some(key_file)) => Ok(Some(ClientIdentity { cert_file, key_file })),
        (None, None) => Ok(None),
        _ => Err(ConfigError::HalfClientIdentity),
    }
}

/// A positive duration in Go's grammar (`500ms`, `30s`, `1m30s`), the grammar of the
/// configuration file too ([`kuma_model::fingerprint::parse_go_duration`]).
pub fn parse_duration(s: &str) -> Result<Duration, ConfigError> {
    kuma_model::fingerprint::parse_go_duration(s).ok_or_else(|| ConfigError::Duration(s.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls_config() -> ProbeConfig {
        let mut c = ProbeConfig::new("grpcs://127.0.0.1:5685").unwrap();
        c.tls.skip_verify = true;
        c
    }

    #[test]
    fn zone_names_must_be_dns_labels() {
        for ok in ["kuma-sync-probe", "z1", "a", "probe-2", &"a".repeat(63)] {
            assert_eq!(validate_dns_label(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "Zone",
            "zone_1",
            "-zone",
            "zone-",
            "zone.one",
            "1zone",
            &"a".repeat(64),
        ] {
            assert!(
                matches!(validate_dns_label(bad), Err(ConfigError::ZoneName { .. })),
                "{bad}"
            );
        }
        let mut c = tls_config();
        c.zone_name = "Probe".into();
        assert!(matches!(c.validate(), Err(ConfigError::ZoneName { .. })));
    }

    #[test]
    fn secret_types_are_refused() {
        for secret in ["Secret", "GlobalSecret"] {
            let mut c = tls_config();
            c.types.push(ResourceType::from_name(secret).unwrap());
            assert_eq!(c.validate(), Err(ConfigError::SecretType(secret)));
        }
    }

    #[test]
    fn known_zone_names_are_refused() {
        let mut c = tls_config();
        c.known_zones = vec!["zone-1".into(), "kuma-sync-probe".into()];
        assert_eq!(
            c.validate(),
            Err(ConfigError::ZoneNameTaken("kuma-sync-probe".into()))
        );
        c.zone_name = "probe-2".into();
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn default_types_are_the_global_to_zone_policies() {
        let c = tls_config();
        assert_eq!(c.types.len(), 16);
        assert_eq!(c.validate(), Ok(()));
        let mut c = tls_config();
        c.types = vec![ResourceType::from_name("Dataplane").unwrap()];
        assert_eq!(c.validate(), Err(ConfigError::NotGlobalToZone("Dataplane")));
        c.types = vec![];
        assert_eq!(c.validate(), Err(ConfigError::NoTypes));
        let mtp = ResourceType::from_name("MeshTrafficPermission").unwrap();
        c.types = vec![mtp, mtp];
        assert_eq!(
            c.validate(),
            Err(ConfigError::DuplicateType("MeshTrafficPermission"))
        );
    }

    #[test]
    fn tls_options_must_be_coherent() {
        let mut c = ProbeConfig::new("grpcs://h").unwrap();
        assert_eq!(c.validate(), Err(ConfigError::NoTrust));
        c.tls.skip_verify = true;
        c.tls.ca_file = Some("ca.pem".into());
        assert_eq!(c.validate(), Err(ConfigError::CaFileAndSkipVerify));
        let mut c = ProbeConfig::new("grpc://h").unwrap();
        assert_eq!(c.validate(), Ok(()));
        c.tls.skip_verify = true;
        assert_eq!(c.validate(), Err(ConfigError::TlsOptionsWithoutTls));
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        // The configuration file's grammar: compound and fractional durations too.
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        for bad in ["", "s", "1d", "-1s", "0s", "45", "18446744073709551616ns"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
