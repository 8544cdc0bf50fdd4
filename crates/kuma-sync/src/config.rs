//! `kuma-sync serve` configuration: one YAML file (unknown keys rejected), validated into
//! [`ServeConfig`] before anything starts. A bad file is one clear line and exit 64.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use kuma_model::{Environment, KumaLine, ResourceType, fingerprint::parse_go_duration};
use policy_watcher::Shard;
use serde::Deserialize;

/// The file as written. Field names are camelCase like Kuma's own configuration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FileConfig {
    pub listen: Option<String>,
    pub global: CpFile,
    #[serde(default)]
    pub zones: Vec<ZoneFile>,
    pub kds: Option<KdsFile>,
    #[serde(default)]
    pub types: Vec<String>,
    #[serde(default)]
    pub meshes: Vec<String>,
    pub intervals: Option<IntervalsFile>,
    pub metrics: Option<MetricsFile>,
    pub system_namespace: Option<String>,
    /// The Kuma whose sync rules apply (`2`, `3`, `2.14.3`); default: what the global's
    /// API reports at start-up.
    pub kuma_version: Option<String>,
    /// Run as one of several shards, each judging its share of the zones.
    pub shards: Option<ShardsFile>,
    /// Run as one of several replicas: a Kubernetes Lease elects the one that runs the KDS
    /// probe (`crate::leader`).
    pub leader_election: Option<LeaderElectionFile>,
    /// Write a canary policy on the global every interval and time its arrival in every
    /// zone (`crate::canary`): the only write kuma-sync makes, off unless set.
    pub canary: Option<CanaryFile>,
}

/// `canary: {mesh: default, interval: 60s}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CanaryFile {
    pub mesh: String,
    pub interval: Option<String>,
    #[serde(rename = "type")]
    pub rtype: Option<String>,
    pub name: Option<String>,
}

impl CanaryFile {
    fn validate(self) -> Result<crate::canary::CanaryConfig, ConfigError> {
        if kuma_model::zone_name::check(&self.mesh).is_err() {
            return Err(ConfigError(format!("canary.mesh {:?}: a mesh's name", self.mesh)));
        }
        let interval = match &self.interval {
            None => Duration::from_secs(60),
            Some(text) => parse_go_duration(text)
                .filter(|d| *d >= Duration::from_secs(5))
                .ok_or_else(|| ConfigError(format!("canary.interval {text:?}: a duration of 5s or more")))?,
        };
        // Each type's spec is written out in `canary::default_conf`.
        let type_name = self.rtype.as_deref().unwrap_or("MeshTimeout");
        let rtype = match ResourceType::from_name(type_name) {
            Some(t) if crate::canary::TYPES.contains(&t.name()) => t,
            _ => {
                return Err(ConfigError(format!(
                    "canary.type {type_name:?}: one of {}",
                    crate::canary::TYPES.join(", ")
                )));
            }
        };
        let name = self
            .name
            .unwrap_or_else(|| crate::canary::DEFAULT_NAME.to_owned());
        if kuma_model::zone_name::check(&name).is_err() {
            return Err(ConfigError(format!("canary.name {name:?}: a DNS label")));
        }
        Ok(crate::canary::CanaryConfig {
            mesh: self.mesh,
            interval,
            rtype,
            name,
        })
    }
}

/// `leaderElection: {namespace: kuma-sync}`: the Lease (default name `kuma-sync`) in the
/// cluster of `kubeconfig` (default: in-cluster), this replica named `identity` (default:
/// `HOSTNAME`, the pod's name), client-go's timings unless given.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LeaderElectionFile {
    pub namespace: String,
    pub lease_name: Option<String>,
    pub identity: Option<String>,
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    pub lease_duration: Option<String>,
    pub renew_deadline: Option<String>,
    pub retry_period: Option<String>,
}

/// A validated `leaderElection`; the identity, when the file gives none, is the host name
/// at start.
#[derive(Debug, Clone, PartialEq)]
pub struct LeaderElectionConfig {
    pub election: crate::leader::ElectionConfig,
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
}

impl LeaderElectionFile {
    fn validate(self, base: &Path) -> Result<LeaderElectionConfig, ConfigError> {
        if self.namespace.is_empty() {
            return Err(ConfigError(
                "leaderElection.namespace: the Lease's namespace is required".into(),
            ));
        }
        let lease_name = self.lease_name.unwrap_or_else(|| "kuma-sync".into());
        // Checked with a stand-in identity: the real one may be the host name, at start.
        let mut election = crate::leader::ElectionConfig::new(
            &self.namespace,
            &lease_name,
            self.identity.as_deref().unwrap_or("kuma-sync"),
        );
        for (field, value, slot) in [
            (
                "leaseDuration",
                &self.lease_duration,
                &mut election.lease_duration,
            ),
            (
                "renewDeadline",
                &self.renew_deadline,
                &mut election.renew_deadline,
            ),
            ("retryPeriod", &self.retry_period, &mut election.retry_period),
        ] {
            if let Some(text) = value {
                *slot = parse_go_duration(text).filter(|d| !d.is_zero()).ok_or_else(|| {
                    ConfigError(format!(
                        "leaderElection.{field}: {text:?} is not a duration like 15s"
                    ))
                })?;
            }
        }
        election.check().map_err(|e| ConfigError(e.to_string()))?;
        election.identity = self.identity.unwrap_or_default();
        Ok(LeaderElectionConfig {
            election,
            kubeconfig: self.kubeconfig.map(|p| base.join(p)),
            context: self.context,
        })
    }
}

/// `shards: {total: 3, index: 1}`. Without `index`, the ordinal at the end of the pod's
/// name (`HOSTNAME`, as a StatefulSet names pods: `kuma-sync-2`) is the index. With
/// `replicas: R`, each shard runs R pods that elect a leader (`leaderElection`): the
/// StatefulSet has `total` x R pods, and pod N is a replica of shard N mod `total`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ShardsFile {
    pub total: u32,
    pub index: Option<u32>,
    #[serde(default)]
    pub replicas: Option<u32>,
}

impl ShardsFile {
    /// The shard this process is; `hostname` is consulted only without an `index`.
    pub fn shard(&self, hostname: Option<&str>) -> Result<Shard, ConfigError> {
        let index = match self.index {
            Some(index) => index,
            None => {
                let ordinal: u32 = hostname
                    .and_then(|h| h.rsplit_once('-'))
                    .and_then(|(_, ordinal)| ordinal.parse().ok())
                    .ok_or_else(|| {
                        ConfigError(format!(
                            "shards: no index, and the host name {:?} does not end in a StatefulSet ordinal (name-N)",
                            hostname.unwrap_or("")
                        ))
                    })?;
                // Beyond `total`, a pod is another replica of a shard, when replicas are
                // configured; otherwise it is a StatefulSet larger than the shard count.
                match self.replicas {
                    Some(replicas) if ordinal < self.total.saturating_mul(replicas) && self.total > 0 => {
                        ordinal % self.total
                    }
                    _ => ordinal,
                }
            }
        };
        Shard::new(index, self.total).map_err(|e| ConfigError(format!("shards: {e}")))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CpFile {
    pub api: Option<ApiFile>,
    pub kubernetes: Option<KubeFile>,
    pub environment: Option<EnvFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ZoneFile {
    pub name: String,
    pub api: Option<ApiFile>,
    pub kubernetes: Option<KubeFile>,
    pub environment: Option<EnvFile>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum EnvFile {
    Universal,
    Kubernetes,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ApiFile {
    pub url: String,
    pub token: Option<String>,
    pub token_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KubeFile {
    /// Omitted: in-cluster configuration.
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KdsFile {
    pub address: String,
    pub ca_file: Option<PathBuf>,
    #[serde(default)]
    pub skip_verify: bool,
    pub zone_name: Option<String>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
}

impl KdsFile {
    /// The probe's configuration for `serve`: one home for turning the file's `kds:` into
    /// what the probe runs with, checked by the probe's own validation (as the `probe`
    /// command's flags are), so a setting the probe would refuse is refused when the
    /// file is loaded, not ignored. It probes the global-to-zone types of `types` (never
    /// Secrets) and never poses as one of `zones`.
    pub fn probe_config(
        &self,
        types: &[ResourceType],
        zones: &[String],
    ) -> Result<kds_probe::ProbeConfig, kds_probe::ConfigError> {
        let mut pc = kds_probe::ProbeConfig::new(&self.address)?;
        pc.tls.ca_file = self.ca_file.clone();
        pc.tls.skip_verify = self.skip_verify;
        pc.tls.client_identity =
            kds_probe::config::client_identity(self.client_cert.clone(), self.client_key.clone())?;
        if let Some(name) = &self.zone_name {
            pc.zone_name = name.clone();
        }
        // A daemon never gives up on the probe: a refusal shows on /metrics and is retried.
        pc.retry_refusals = true;
        pc.types = types
            .iter()
            .copied()
            .filter(|t| !t.info().is_secret() && t.info().flows_global_to_zone())
            .collect();
        // Never pose as a zone we monitor: the real zone's stream would stall (kuma-semantics 5).
        pc.known_zones = zones.to_vec();
        pc.validate()?;
        Ok(pc)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct IntervalsFile {
    pub poll: Option<String>,
    pub stall_threshold: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MetricsFile {
    pub tls: Option<TlsFile>,
    pub basic_auth: Option<BasicAuthFile>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TlsFile {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BasicAuthFile {
    pub username: String,
    pub password: Option<String>,
    pub password_file: Option<PathBuf>,
}

/// How to read one control plane.
#[derive(Debug, Clone)]
pub enum SourceConfig {
    /// Kuma's REST API. Files are read when the source starts (and again on each retry),
    /// so a Secret mounted late or rotated is picked up without a restart.
    Api {
        url: String,
        token: Option<String>,
        token_file: Option<PathBuf>,
        ca_file: Option<PathBuf>,
    },
    /// The Kubernetes API of the control plane's cluster.
    Kubernetes {
        kubeconfig: Option<PathBuf>,
        context: Option<String>,
    },
}

#[derive(Debug, Clone)]
pub struct CpConfig {
    pub source: SourceConfig,
    pub environment: Environment,
}

/// Everything `serve` needs, validated.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub global: CpConfig,
    pub zones: Vec<(String, CpConfig)>,
    pub kds: Option<KdsFile>,
    pub types: Vec<ResourceType>,
    pub meshes: Option<Vec<String>>,
    pub poll_interval: Duration,
    pub stall_threshold: Duration,
    pub tls: Option<TlsFile>,
    /// `(username, password)` required on `/metrics` and `/status`.
    pub basic_auth: Option<(String, String)>,
    /// The Kuma line set in the file (or by `--kuma-version`); `None`: learn it from the
    /// global at start-up.
    pub kuma_version: Option<KumaLine>,
    /// When kuma-sync runs as several shards (`shards:`, `--total-shards`): `serve`
    /// works out which one it is when it starts ([`ShardsFile::shard`]); `verify`
    /// judges every zone whatever this says.
    pub shards: Option<ShardsFile>,
    /// Several replicas, one leader (`leaderElection:`); `None`: this process leads.
    pub leader_election: Option<LeaderElectionConfig>,
    /// The canary, when turned on (`canary:`).
    pub canary: Option<crate::canary::CanaryConfig>,
}

pub const DEFAULT_LISTEN: &str = "0.0.0.0:9465";

/// A configuration that cannot work. Printed as one line; `serve` exits 64.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl ServeConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
        Self::parse(&text, path)
    }

    /// Parses and validates `text`, the content of the file at `path` (named in errors;
    /// relative paths in it are relative to its folder).
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let file: FileConfig = serde_saphyr::from_str(text)
            .map_err(|e| ConfigError(format!("{}: {}", path.display(), one_line(&e.to_string()))))?;
        Self::from_file(file, path.parent().unwrap_or(Path::new(".")))
    }

    /// Validates `file`; relative paths in it are relative to `base`.
    pub fn from_file(file: FileConfig, base: &Path) -> Result<Self, ConfigError> {
        let system_namespace = file
            .system_namespace
            .unwrap_or_else(|| kuma_model::resource::DEFAULT_SYSTEM_NAMESPACE.into());
        let listen_text = file.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
        let listen = parse_listen(listen_text)?;
        let global = cp(
            &file.global.api,
            &file.global.kubernetes,
            file.global.environment,
            &system_namespace,
            "global",
            base,
        )?;
        let mut zones = Vec::new();
        for z in file.zones {
            if let Err(reason) = kuma_model::zone_name::check(&z.name) {
                return Err(ConfigError(format!(
                    "zone name {:?} is not a DNS label: {reason}",
                    z.name
                )));
            }
            if zones.iter().any(|(n, _)| *n == z.name) {
                return Err(ConfigError(format!("zone {:?} is listed twice", z.name)));
            }
            let c = cp(
                &z.api,
                &z.kubernetes,
                z.environment,
                &system_namespace,
                &format!("zone {}", z.name),
                base,
            )?;
            zones.push((z.name, c));
        }
        let kuma_version = file
            .kuma_version
            .as_deref()
            .map(|v| {
                v.parse::<KumaLine>()
                    .map_err(|e| ConfigError(format!("kumaVersion: {e}")))
            })
            .transpose()?;
        // Without `types`, every synced type of the widest line; the types a control
        // plane's Kuma lacks are dropped once its version is known (`serve`).
        let types = if file.types.is_empty() {
            ResourceType::default_checked(KumaLine::V2).collect()
        } else {
            file.types
                .iter()
                .map(|t| {
                    ResourceType::parse(t).ok_or_else(|| ConfigError(format!("unknown resource type {t:?}")))
                })
                .collect::<Result<Vec<_>, _>>()?
        };
        let intervals = file.intervals.unwrap_or(IntervalsFile {
            poll: None,
            stall_threshold: None,
        });
        let poll_interval = duration(
            intervals.poll.as_deref(),
            Duration::from_secs(10),
            POLL_RANGE,
            "intervals.poll",
        )?;
        let stall_threshold = duration(
            intervals.stall_threshold.as_deref(),
            Duration::from_secs(60),
            STALL_THRESHOLD_RANGE,
            "intervals.stallThreshold",
        )?;
        let (tls, basic_auth) = match file.metrics {
            None => (None, None),
            Some(m) => {
                let auth = match m.basic_auth {
                    None => None,
                    Some(a) => {
                        if a.username.trim().is_empty() {
                            return Err(ConfigError("metrics.basicAuth.username is empty".into()));
                        }
                        let password = match (a.password, a.password_file) {
                            (Some(p), None) => p,
                            (None, Some(f)) => read_secret(&base.join(f), "metrics.basicAuth.passwordFile")?,
                            _ => {
                                return Err(ConfigError(
                                    "metrics.basicAuth needs exactly one of password, passwordFile".into(),
                                ));
                            }
                        };
                        // An empty password lets anyone who guesses the user in.
                        if password.trim().is_empty() {
                            return Err(ConfigError(
                                "metrics.basicAuth: the password is empty or only whitespace".into(),
                            ));
                        }
                        Some((a.username, password))
                    }
                };
                let tls = m.tls.map(|t| TlsFile {
                    cert_file: base.join(t.cert_file),
                    key_file: base.join(t.key_file),
                });
                (tls, auth)
            }
        };
        let kds = file.kds.map(|k| KdsFile {
            ca_file: k.ca_file.map(|f| base.join(f)),
            client_cert: k.client_cert.map(|f| base.join(f)),
            client_key: k.client_key.map(|f| base.join(f)),
            ..k
        });
        if let Some(kds) = &kds {
            let zone_names: Vec<String> = zones.iter().map(|(name, _)| name.clone()).collect();
            kds.probe_config(&types, &zone_names)
                .map_err(|e| ConfigError(format!("kds: {e}")))?;
        }
        Ok(Self {
            listen,
            global,
            zones,
            kds,
            types,
            meshes: (!file.meshes.is_empty()).then_some(file.meshes),
            poll_interval,
            stall_threshold,
            tls,
            basic_auth,
            kuma_version,
            shards: match file.shards {
                // Checked now when it can be; the host name is the pod's, at start.
                Some(s) if s.index.is_some() => {
                    s.shard(None)?;
                    Some(s)
                }
                Some(s) if s.total == 0 => {
                    return Err(ConfigError("shards: the shard count must be at least 1".into()));
                }
                other => other,
            },
            leader_election: file.leader_election.map(|l| l.validate(base)).transpose()?,
            canary: file.canary.map(CanaryFile::validate).transpose()?,
        })
    }
}

fn cp(
    api: &Option<ApiFile>,
    kube: &Option<KubeFile>,
    env: Option<EnvFile>,
    system_namespace: &str,
    what: &str,
    base: &Path,
) -> Result<CpConfig, ConfigError> {
    let source = match (api, kube) {
        (Some(_), Some(_)) => {
            return Err(ConfigError(format!(
                "{what}: give either api or kubernetes, not both"
            )));
        }
        (Some(a), None) => {
            if !(a.url.starts_with("http://") || a.url.starts_with("https://")) {
                return Err(ConfigError(format!(
                    "{what}: api.url {:?} must start with http:// or https://",
                    a.url
                )));
            }
            // A URL that does not parse would fail every read, each one logged: refuse it
            // here, once, with the reason.
            match a.url.parse::<hyper::Uri>() {
                Ok(uri) if uri.authority().is_some_and(|au| !au.host().is_empty()) => {}
                Ok(_) => {
                    return Err(ConfigError(format!("{what}: api.url {:?} has no host", a.url)));
                }
                Err(e) => {
                    return Err(ConfigError(format!(
                        "{what}: api.url {:?} is not a URL: {e}",
                        a.url
                    )));
                }
            }
            if a.token.is_some() && a.token_file.is_some() {
                return Err(ConfigError(format!("{what}: give token or tokenFile, not both")));
            }
            SourceConfig::Api {
                url: a.url.clone(),
                token: a.token.clone(),
                token_file: a.token_file.as_ref().map(|f| base.join(f)),
                ca_file: a.ca_file.as_ref().map(|f| base.join(f)),
            }
        }
        // No source given: the Kubernetes API of the cluster kuma-sync runs in.
        (None, k) => SourceConfig::Kubernetes {
            kubeconfig: k
                .as_ref()
                .and_then(|k| k.kubeconfig.as_ref().map(|p| base.join(p))),
            context: k.as_ref().and_then(|k| k.context.clone()),
        },
    };
    // A Kubernetes source implies a Kubernetes control plane unless told otherwise.
    let env = env.unwrap_or(match source {
        SourceConfig::Api { .. } => EnvFile::Universal,
        SourceConfig::Kubernetes { .. } => EnvFile::Kubernetes,
    });
    let environment = match env {
        EnvFile::Universal => Environment::Universal,
        EnvFile::Kubernetes => Environment::Kubernetes {
            system_namespace: system_namespace.to_owned(),
        },
    };
    Ok(CpConfig { source, environment })
}

fn read_secret(path: &Path, what: &str) -> Result<String, ConfigError> {
    let s =
        std::fs::read_to_string(path).map_err(|e| ConfigError(format!("{what} {}: {e}", path.display())))?;
    Ok(s.trim().to_owned())
}

pub fn parse_listen(s: &str) -> Result<SocketAddr, ConfigError> {
    // ":9465" means every interface, as in Go.
    let full = if s.starts_with(':') {
        format!("0.0.0.0{s}")
    } else {
        s.to_owned()
    };
    full.parse().map_err(|_| {
        ConfigError(format!(
            "listen {s:?} is not an address like :9465 or 127.0.0.1:9465"
        ))
    })
}

/// What `intervals.poll` may be: each poll reads every page of every type, so below a
/// second it hammers the API server shared with the GUI and kumactl; above an hour the
/// verdict is too old to alert on.
const POLL_RANGE: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(3600));
/// What `intervals.stallThreshold` may be: below a second every KDS round trip is a
/// stall; above a day a stall is never seen.
const STALL_THRESHOLD_RANGE: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(86_400));

fn duration(
    s: Option<&str>,
    default: Duration,
    (min, max): (Duration, Duration),
    what: &str,
) -> Result<Duration, ConfigError> {
    let Some(s) = s else { return Ok(default) };
    let d = parse_go_duration(s)
        .ok_or_else(|| ConfigError(format!("{what} {s:?} is not a positive duration like 10s or 1m")))?;
    if d < min || d > max {
        return Err(ConfigError(format!(
            "{what} {s:?} is out of range: between {} and {}",
            go_duration(min),
            go_duration(max)
        )));
    }
    Ok(d)
}

/// `1s`, `1h0m0s`: how a user wrote it in the file.
fn go_duration(d: Duration) -> String {
    let secs = d.as_secs();
    match (secs / 3600, secs % 3600 / 60, secs % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, m, s) => format!("{h}h{m}m{s}s"),
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<ServeConfig, ConfigError> {
        let file: FileConfig = serde_saphyr::from_str(yaml).map_err(|e| ConfigError(e.to_string()))?;
        ServeConfig::from_file(file, Path::new("/etc/kuma-sync"))
    }

    #[test]
    fn a_full_config_validates() {
        let c = parse(
            "listen: \":9465\"\nglobal:\n  api: {url: \"http://global:5681\", token: t}\nzones:\n  - name: zone-1\n    kubernetes: {kubeconfig: kubeconfigs/zone-1}\n  - name: zone-2\n    api: {url: \"http://zone-2:5681\"}\nintervals: {poll: 5s, stallThreshold: 2m}\ntypes: [mcb, MeshTimeout]\n",
        )
        .unwrap();
        assert_eq!(c.listen, "0.0.0.0:9465".parse().unwrap());
        assert_eq!(c.zones.len(), 2);
        assert!(
            matches!(&c.zones[0].1.source, SourceConfig::Kubernetes { kubeconfig: Some(p), .. } if p == Path::new("/etc/kuma-sync/kubeconfigs/zone-1"))
        );
        assert!(matches!(c.zones[0].1.environment, Environment::Kubernetes { .. }));
        assert_eq!(c.zones[1].1.environment, Environment::Universal);
        assert_eq!(c.poll_interval, Duration::from_secs(5));
        assert_eq!(c.stall_threshold, Duration::from_secs(120));
        assert_eq!(c.types.len(), 2);
    }

    #[test]
    fn leader_election_is_validated_when_the_file_is_loaded() {
        let c = parse(
            "global: {api: {url: \"http://g\"}}\nleaderElection: {namespace: kuma-sync, kubeconfig: kc, leaseDuration: 30s, renewDeadline: 20s, retryPeriod: 5s}\n",
        )
        .unwrap();
        let le = c.leader_election.expect("configured");
        assert_eq!(le.election.lease_name, "kuma-sync");
        assert_eq!(le.election.lease_duration, Duration::from_secs(30));
        assert_eq!(le.election.identity, "", "the host name's, at start");
        assert!(
            le.kubeconfig
                .is_some_and(|p| p.ends_with("kc") && p.is_absolute())
        );
        for (bad, says) in [
            ("leaderElection: {namespace: \"\"}", "namespace"),
            (
                "leaderElection: {namespace: ns, renewDeadline: 20s}",
                "renewDeadline",
            ),
            (
                "leaderElection: {namespace: ns, retryPeriod: soon}",
                "retryPeriod",
            ),
            ("leaderElection: {namespace: ns, leases: 2}", "leases"),
        ] {
            let err = parse(&format!("global: {{api: {{url: \"http://g\"}}}}\n{bad}\n")).unwrap_err();
            assert!(err.0.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn the_canary_is_off_unless_set_and_validated_when_set() {
        assert!(
            parse("global: {api: {url: \"http://g\"}}\n")
                .unwrap()
                .canary
                .is_none()
        );
        let c = parse("global: {api: {url: \"http://g\"}}\ncanary: {mesh: default}\n").unwrap();
        let canary = c.canary.expect("on");
        assert_eq!(canary.interval, Duration::from_secs(60));
        assert_eq!(canary.rtype.name(), "MeshTimeout");
        assert_eq!(canary.name, crate::canary::DEFAULT_NAME);
        for (bad, says) in [
            (
                "global: {api: {url: \"http://g\"}}\ncanary: {mesh: default, interval: 1s}",
                "canary.interval",
            ),
            (
                "global: {api: {url: \"http://g\"}}\ncanary: {mesh: default, type: MeshTrace}",
                "canary.type",
            ),
            (
                "global: {api: {url: \"http://g\"}}\ncanary: {mesh: \"No Such\"}",
                "canary.mesh",
            ),
        ] {
            let err = parse(&format!("{bad}\n")).unwrap_err();
            assert!(err.0.contains(says), "{bad}: {err}");
        }
    }

    /// The example shipped in deploy/ is a valid configuration.
    #[test]
    fn the_shipped_example_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/kubernetes/kuma-sync.yaml");
        let text = std::fs::read_to_string(&path).expect("example exists");
        let file: FileConfig = serde_saphyr::from_str(&text).expect("example parses");
        let c = ServeConfig::from_file(file, Path::new("/etc/kuma-sync")).expect("example validates");
        assert_eq!(c.zones.len(), 2);
        assert!(c.kds.is_some());
    }

    #[test]
    fn secrets_are_read_when_sources_start_not_at_load() {
        // A Secret that is not mounted yet must not stop kuma-sync from starting.
        let c = parse("global: {api: {url: \"http://g\", tokenFile: /no/such/file, caFile: /no/ca.pem}}\n")
            .unwrap();
        assert!(matches!(
            c.global.source,
            SourceConfig::Api {
                token_file: Some(_),
                ca_file: Some(_),
                ..
            }
        ));
    }

    #[test]
    fn an_empty_password_file_is_refused_at_start() {
        let dir = tempfile::tempdir().unwrap();
        for content in ["", "  \n\t\n"] {
            std::fs::write(dir.path().join("pw"), content).unwrap();
            let file: FileConfig = serde_saphyr::from_str(
                "global: {api: {url: \"http://g\"}}\nmetrics: {basicAuth: {username: u, passwordFile: pw}}\n",
            )
            .unwrap();
            let err = ServeConfig::from_file(file, dir.path()).unwrap_err().to_string();
            assert!(err.contains("password is empty"), "{content:?}: {err}");
        }
    }

    #[test]
    fn durations_at_the_edges_of_their_range_are_accepted() {
        for (poll, expected) in [("1s", 1), ("1h", 3600), ("59m60s", 3600)] {
            let c = parse(&format!(
                "global: {{api: {{url: \"http://g\"}}}}\nintervals: {{poll: {poll}}}\n"
            ))
            .unwrap();
            assert_eq!(c.poll_interval, Duration::from_secs(expected), "{poll}");
        }
    }

    #[test]
    fn a_shard_comes_from_the_file_or_the_statefulset_ordinal() {
        let file = |total, index| ShardsFile {
            total,
            index,
            replicas: None,
        };
        assert_eq!(file(3, Some(1)).shard(None).unwrap(), Shard::new(1, 3).unwrap());
        assert_eq!(
            file(3, None).shard(Some("kuma-sync-2")).unwrap(),
            Shard::new(2, 3).unwrap()
        );
        assert!(
            file(3, None)
                .shard(Some("kuma-sync-3"))
                .unwrap_err()
                .0
                .contains("0 to 2")
        );
        assert!(
            file(3, None)
                .shard(Some("laptop"))
                .unwrap_err()
                .0
                .contains("StatefulSet ordinal")
        );
        assert!(file(0, Some(0)).shard(None).is_err());
        // Two replicas a shard: six pods, pod 4 is a replica of shard 1; pod 6 is one too many.
        let replicated = ShardsFile {
            total: 3,
            index: None,
            replicas: Some(2),
        };
        assert_eq!(
            replicated.shard(Some("kuma-sync-4")).unwrap(),
            Shard::new(1, 3).unwrap()
        );
        assert_eq!(
            replicated.shard(Some("kuma-sync-0")).unwrap(),
            Shard::new(0, 3).unwrap()
        );
        assert!(replicated.shard(Some("kuma-sync-6")).is_err());
        let c = parse("global: {api: {url: \"http://g\"}}\nshards: {total: 3}\n").unwrap();
        assert_eq!(
            c.shards.map(|s| s.total),
            Some(3),
            "the index waits for the pod's name"
        );
        for bad in ["shards: {total: 3, index: 3}\n", "shards: {total: 0}\n"] {
            let err = parse(&format!("global: {{api: {{url: \"http://g\"}}}}\n{bad}")).unwrap_err();
            assert!(err.0.contains("shard"), "{bad}: {err}");
        }
    }

    #[test]
    fn mistakes_are_one_clear_line() {
        for (yaml, expected) in [
            ("global: {api: {url: x}}\n", "must start with http://"),
            (
                "global: {api: {url: \"http://g\"}}\nzones: [{name: Zone_1}]\n",
                "not a DNS label",
            ),
            (
                "global: {api: {url: \"http://g\"}}\nzones: [{name: z}, {name: z}]\n",
                "listed twice",
            ),
            (
                "global: {api: {url: \"http://g\"}}\ntypes: [Nope]\n",
                "unknown resource type",
            ),
            (
                "global: {api: {url: \"http://g\"}}\nintervals: {poll: soon}\n",
                "not a positive duration",
            ),
            (
                "global: {api: {url: \"http://g\"}}\nlisten: nowhere\n",
                "not an address",
            ),
            ("global: {api: {url: \"http://g\"}, kubernetes: {}}\n", "not both"),
            (
                "global: {api: {url: \"http://g\", token: t, tokenFile: f}}\n",
                "not both",
            ),
            ("global: {api: {url: \"http://g\"}}\ncolour: blue\n", "colour"),
            ("global: {api: {url: \"http://[::1\"}}\n", "is not a URL"),
            // The probe's own checks, at load: not ignored, not only when it starts.
            (
                "global: {api: {url: \"http://g\"}}\nkds: {address: \"grpcs://g:5685\", skipVerify: true, clientCert: c.pem}\n",
                "kds: --client-cert and --client-key go together",
            ),
            (
                "global: {api: {url: \"http://g\"}}\nkds: {address: \"grpcs://g:5685\"}\n",
                "kds: grpcs:// needs --ca-file",
            ),
            (
                "global: {api: {url: \"http://g\"}}\nzones: [{name: zone-1, api: {url: \"http://z\"}}]\nkds: {address: \"grpc://g:5685\", zoneName: zone-1}\n",
                "kds: ",
            ),
            (
                "global: {api: {url: \"http://g\"}}\nintervals: {poll: 18446744073709551616ns}\n",
                "not a positive duration",
            ),
            (
                "global: {api: {url: \"http://g\"}}\nintervals: {poll: 1ns}\n",
                "out of range: between 1s and 1h0m0s",
            ),
            (
                "global: {api: {url: \"http://g\"}}\nintervals: {poll: 2h}\n",
                "out of range",
            ),
            (
                "global: {api: {url: \"http://g\"}}\nintervals: {stallThreshold: 100ms}\n",
                "out of range",
            ),
            (
                "global: {api: {url: \"http://g\"}}\nmetrics: {basicAuth: {username: \"\", password: p}}\n",
                "username is empty",
            ),
            (
                "global: {api: {url: \"http://g\"}}\nmetrics: {basicAuth: {username: u, password: \" \"}}\n",
                "password is empty",
            ),
        ] {
            let err = parse(yaml).unwrap_err().to_string();
            assert!(err.contains(expected), "{yaml:?}: {err}");
        }
    }
}
