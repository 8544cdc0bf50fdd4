//! `kuma-sync serve`: every source, the monitor, the KDS probe and the HTTP server, wired
//! together and stopped together.

use std::{future::Future, net::SocketAddr, sync::Arc};

use kds_probe::Probe;
use kuma_model::{CpRole, Environment, KumaLine, ResourceType};
use policy_watcher::{
    Engine, Selection, Topology, ZoneSpec,
    monitor::{Monitor, MonitorConfig},
    source::{
        SourceError,
        first_reads::FirstReads,
        http::{HttpClient, HttpSettings},
        kube as kube_source,
        poll::{PollTarget, poll},
        rest::KumaApi,
    },
};
use prometheus::Registry;
use tokio::{net::TcpListener, task::JoinSet};
use tokio_util::sync::CancellationToken;

use crate::{
    collectors::{Exposition, events::EventMetrics},
    config::{ServeConfig, SourceConfig},
    server::{self, App},
    stall::StallCheck,
};

/// Why `serve` could not start. Everything after start is logged and retried instead.
/// Causes are part of each message rather than a `source`, so that a message printed
/// with its chain does not say its reason twice.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The listen address is taken or not ours.
    #[error("cannot listen on {addr}: {error}")]
    Listen { addr: SocketAddr, error: std::io::Error },
    /// The metrics TLS certificate or key cannot be used.
    #[error("metrics TLS: {0}")]
    Tls(std::io::Error),
    /// The KDS probe's configuration is wrong (a real zone's name, a Secret type, a bad CA).
    #[error("kds: {0}")]
    Probe(kds_probe::Error),
    /// The configuration cannot work here (a shard index the host name does not give).
    #[error("{0}")]
    Config(String),
    /// A metric could not be registered (two collectors with one name: a bug).
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

impl ServeError {
    /// Only a taken port may free itself; everything else is configuration.
    pub fn is_retryable(&self) -> bool {
        matches!(self, ServeError::Listen { error, .. } if error.kind() == std::io::ErrorKind::AddrInUse)
    }
}

/// A running `serve` (or the watching part of it, for `verify --config`).
pub struct Running {
    /// Where the HTTP server listens; `None` when only watching.
    pub local_addr: Option<SocketAddr>,
    pub monitor: Arc<Monitor>,
    pub registry: Registry,
    /// The Kuma whose sync rules are applied, configured or learnt from the global.
    pub kuma: KumaLine,
    stop: CancellationToken,
    tasks: JoinSet<()>,
}

impl Running {
    /// Stops every task and waits for them.
    pub async fn stop(mut self) {
        self.stop.cancel();
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Binds, starts every source, the probe and the server, and returns at once.
pub async fn start(cfg: ServeConfig) -> Result<Running, ServeError> {
    start_inner(cfg, true).await
}

/// Starts only the sources and the monitor: what `verify --config` needs.
pub async fn start_watching(cfg: ServeConfig) -> Result<Running, ServeError> {
    start_inner(cfg, false).await
}

async fn start_inner(mut cfg: ServeConfig, serve_http: bool) -> Result<Running, ServeError> {
    let kuma = kuma_line(&cfg).await;
    // Types the control planes' Kuma does not have are not read: a Kuma 3 API answers
    // 404 for them, and a Kuma 3 zone has no CRD to watch.
    let (kept, absent): (Vec<ResourceType>, Vec<ResourceType>) =
        cfg.types.iter().partition(|t| kuma.has_type(t.name()));
    if !absent.is_empty() {
        tracing::info!(?absent, rules = %kuma, "types this Kuma does not have are not read");
    }
    cfg.types = kept;
    // `verify --config` judges every zone; only the daemon is sharded.
    let shard = match cfg.shards.as_ref().filter(|_| serve_http) {
        Some(shards) => Some(
            shards
                .shard(std::env::var("HOSTNAME").ok().as_deref())
                .map_err(|e| ServeError::Config(e.to_string()))?,
        ),
        None => None,
    };
    if let Some(shard) = shard {
        // Another shard reads the rest: rendezvous hashing gives each zone one owner.
        let (ours, theirs): (Vec<_>, Vec<_>) = cfg.zones.drain(..).partition(|(name, _)| shard.owns(name));
        tracing::info!(
            shard = shard.index,
            total = shard.total,
            zones = ours.len(),
            others = theirs.len(),
            "judging this shard's zones"
        );
        cfg.zones = ours;
    }
    let server = if serve_http {
        let listener = TcpListener::bind(cfg.listen)
            .await
            .map_err(|error| ServeError::Listen {
                addr: cfg.listen,
                error,
            })?;
        let local_addr = listener.local_addr().map_err(|error| ServeError::Listen {
            addr: cfg.listen,
            error,
        })?;
        let tls = match &cfg.tls {
            Some(t) => Some(server::tls_acceptor(&t.cert_file, &t.key_file).map_err(ServeError::Tls)?),
            None => None,
        };
        Some((listener, local_addr, tls))
    } else {
        None
    };

    let registry = Registry::new();
    let events = EventMetrics::register(&registry)?;
    if let Some(shard) = shard {
        crate::collectors::shard::register(&registry, shard)?;
    }
    let topology = Topology {
        global: cfg.global.environment.clone(),
        zones: cfg
            .zones
            .iter()
            .map(|(name, c)| ZoneSpec::new(name, c.environment.clone()))
            .collect(),
        kuma,
        shard,
    };
    let selection = Selection::new(cfg.types.iter().copied(), cfg.meshes.clone());
    let monitor = Arc::new(Monitor::new(
        Engine::new(topology, selection),
        MonitorConfig::default(),
        Box::new(events),
    ));
    let probe_zone = cfg.kds.as_ref().map(|k| {
        k.zone_name
            .clone()
            .unwrap_or_else(|| kds_probe::config::DEFAULT_ZONE_NAME.to_owned())
    });
    let stop = CancellationToken::new();
    let until_stopped = {
        let stop = stop.clone();
        move || stop.clone().cancelled_owned()
    };
    let mut tasks = JoinSet::new();

    // Who leads: the Lease's elected replica, or this process when there is no election.
    let leader_gauge = crate::collectors::leader::register(&registry)?;
    let (leading_tx, leading) = tokio::sync::watch::channel(cfg.leader_election.is_none());
    if let Some(election) = cfg.leader_election.as_ref().filter(|_| serve_http) {
        let mut config = election.election.clone();
        if config.identity.is_empty() {
            config.identity = std::env::var("HOSTNAME").unwrap_or_default();
        }
        // Each shard's replicas elect their own leader: one probe (shard 0's leader) and
        // one canary writer in all, a leader per shard for the rest.
        if let Some(shard) = shard {
            config.lease_name = format!("{}-shard-{}", config.lease_name, shard.index);
        }
        config.check().map_err(|e| ServeError::Config(e.to_string()))?;
        let client =
            policy_watcher::source::kube::client(election.kubeconfig.as_deref(), election.context.as_deref())
                .await
                .map_err(|e| ServeError::Config(format!("leaderElection: {e}")))?;
        tracing::info!(identity = %config.identity, lease = %config.lease_name, namespace = %config.namespace, "taking part in leader election");
        tasks.spawn(crate::leader::Elector::new(client, config).run(leading_tx, until_stopped()));
    } else {
        // Held for the process's life: a closed channel would read as a lost election.
        tasks.spawn(async move {
            leading_tx.closed().await;
        });
    }
    {
        let mut leading = leading.clone();
        let stopped = until_stopped();
        tasks.spawn(async move {
            let mut stopped = std::pin::pin!(stopped);
            loop {
                leader_gauge.set(i64::from(*leading.borrow_and_update()));
                tokio::select! {
                    () = &mut stopped => return,
                    changed = leading.changed() => if changed.is_err() { return },
                }
            }
        });
    }
    let leader_registry = Registry::new();
    let exposition = Arc::new(
        Exposition::new(registry.clone(), monitor.clone(), probe_zone)?
            .with_leader_only(leader_registry.clone(), leading.clone()),
    );
    let mut sources = vec![(CpRole::Global, cfg.global.clone())];
    sources.extend(
        cfg.zones
            .iter()
            .map(|(n, c)| (CpRole::Zone(n.clone()), c.clone())),
    );
    let zones_first_reads = FirstReads::at_most(FIRST_READS_AT_ONCE);
    for (cp, c) in sources {
        let types = PollTarget::types_for(&cp, cfg.types.iter().copied());
        let (monitor, interval) = (monitor.clone(), cfg.poll_interval);
        // Every verdict waits for the global: it never queues behind the zones.
        let first_reads = match cp {
            CpRole::Global => FirstReads::unbounded(),
            CpRole::Zone(_) => zones_first_reads.clone(),
        };
        let until_stopped = until_stopped.clone();
        tasks.spawn(async move {
            let mut stopped = std::pin::pin!(until_stopped());
            // The source runs in a task of its own so that a panic in it is seen: its
            // control plane turns `unknown` with class `internal`, and it starts again,
            // rather than leaving its last read on show for ever.
            loop {
                let source = tokio::spawn(run_source(
                    cp.clone(),
                    c.source.clone(),
                    types.clone(),
                    first_reads.clone(),
                    interval,
                    monitor.clone(),
                    until_stopped(),
                ));
                match source.await {
                    Err(e) if e.is_panic() => {
                        let error = SourceError::Stopped(panic_message(e.into_panic()));
                        tracing::error!(%cp, %error, "source stopped; starting it again");
                        monitor.failed(&cp, &error);
                    }
                    // Stopped, or cancelled with the rest.
                    _ => return,
                }
                tokio::select! {
                    _ = &mut stopped => return,
                    _ = tokio::time::sleep(interval.max(SOURCE_RESTART_PAUSE)) => {}
                }
            }
        });
    }

    // One probe, on shard 0: never two streams under one zone name.
    let probes = serve_http && shard.is_none_or(|s| s.reports_global());
    if let Some(kds) = cfg.kds.as_ref().filter(|_| probes) {
        let zone_names: Vec<String> = cfg.zones.iter().map(|(n, _)| n.clone()).collect();
        let pc = kds
            .probe_config(&cfg.types, &zone_names)
            .map_err(|e| ServeError::Probe(e.into()))?;
        let probe = Probe::new(pc.clone(), &leader_registry).map_err(ServeError::Probe)?;
        let stall = StallCheck::register(
            &leader_registry,
            monitor.clone(),
            probe.view(),
            &pc,
            cfg.global.environment.clone(),
            cfg.stall_threshold,
        )?;
        tasks.spawn(stall.run(until_stopped()));
        // The probe runs while this replica leads: one stream under the probe's name.
        let probe = Arc::new(probe);
        tasks.spawn(crate::leader::while_leading(
            "KDS probe",
            leading.clone(),
            until_stopped(),
            move |step_down| {
                let probe = probe.clone();
                async move { probe.run(step_down).await }
            },
        ));
    }

    // The canary: written by the leader of the shard that reports the global, credited
    // by every shard for its own zones.
    if let Some(canary) = cfg.canary.clone().filter(|_| serve_http) {
        let writes = shard.is_none_or(|s| s.reports_global());
        let metrics = Arc::new(crate::canary::CanaryMetrics::register(&leader_registry, writes)?);
        let zones: Vec<String> = cfg.zones.iter().map(|(n, _)| n.clone()).collect();
        tasks.spawn(crate::canary::watch_arrivals(
            monitor.clone(),
            zones,
            metrics.clone(),
            until_stopped(),
        ));
        if writes {
            let target = match (&cfg.global.source, &cfg.global.environment) {
                (
                    SourceConfig::Kubernetes { kubeconfig, context },
                    Environment::Kubernetes { system_namespace },
                ) => {
                    let client =
                        policy_watcher::source::kube::client(kubeconfig.as_deref(), context.as_deref())
                            .await
                            .map_err(|e| ServeError::Config(format!("canary: {e}")))?;
                    crate::canary::Target::kubernetes(client, canary.rtype, system_namespace).ok_or_else(
                        || ServeError::Config(format!("canary: {} has no Kubernetes kind", canary.rtype)),
                    )?
                }
                (SourceConfig::Kubernetes { .. }, Environment::Universal) => {
                    return Err(ServeError::Config(
                        "canary: a global read through Kubernetes must be a Kubernetes global".into(),
                    ));
                }
                (source, _) => crate::canary::Target::Rest(Box::new(
                    kuma_api(source).map_err(|e| ServeError::Config(format!("canary: {e}")))?,
                )),
            };
            tracing::info!(mesh = %canary.mesh, name = %canary.name, interval = ?canary.interval, "the canary is on: writing it on the global while leading");
            tasks.spawn(crate::leader::while_leading(
                "canary",
                leading.clone(),
                until_stopped(),
                move |step_down| {
                    let (target, canary, metrics) = (target.clone(), canary.clone(), metrics.clone());
                    async move {
                        crate::canary::write(target, canary, metrics, step_down).await;
                        Ok::<(), std::convert::Infallible>(())
                    }
                },
            ));
        }
    }

    let local_addr = match server {
        Some((listener, local_addr, tls)) => {
            let app = Arc::new(App {
                monitor: monitor.clone(),
                exposition: exposition.clone(),
                basic_auth: cfg.basic_auth.clone(),
            });
            tasks.spawn(server::run(listener, tls, app, until_stopped()));
            tracing::info!(%local_addr, zones = cfg.zones.len(), "serving /metrics, /status, /healthz, /readyz");
            Some(local_addr)
        }
        None => None,
    };
    Ok(Running {
        local_addr,
        monitor,
        registry,
        kuma,
        stop,
        tasks,
    })
}

/// The Kuma line whose rules apply: the configured one, else the one the global's API
/// index reports (`GET /`). A Kubernetes global is Kuma 2.x (Kuma 3 has none). When the
/// global cannot tell, the 2.x rules apply and a warning says so.
async fn kuma_line(cfg: &ServeConfig) -> KumaLine {
    if let Some(line) = cfg.kuma_version {
        return line;
    }
    let api = match start_source(&CpRole::Global, &cfg.global.source, Vec::new(), cfg.poll_interval).await {
        Ok(Source::Poll(target)) => target.api,
        Ok(Source::Kube(_)) => return KumaLine::V2,
        Err(error) => {
            tracing::warn!(%error, "cannot learn the global's Kuma version; applying the Kuma 2.x sync rules (set kumaVersion to choose)");
            return KumaLine::V2;
        }
    };
    match api.kuma_version().await {
        Ok(version) => {
            let detected = KumaLine::detect(&version);
            match &detected.warning {
                Some(warning) => tracing::warn!("{warning}"),
                None => tracing::info!(%version, rules = %detected.line, "the global's Kuma version"),
            }
            detected.line
        }
        Err(error) => {
            tracing::warn!(%error, "cannot learn the global's Kuma version; applying the Kuma 2.x sync rules (set kumaVersion to choose)");
            KumaLine::V2
        }
    }
}

/// Runs until `shutdown`, then stops everything.
pub async fn run(cfg: ServeConfig, shutdown: impl Future<Output = ()>) -> Result<(), ServeError> {
    let running = start(cfg).await?;
    shutdown.await;
    tracing::info!("shutting down");
    running.stop().await;
    Ok(())
}

/// Zones read for the first time at once (`policy_watcher::source::first_reads`): enough
/// to keep both cores and the network busy, few enough that their reads, held until the
/// monitor has them, do not set the process's peak memory. A zone far away (each page a
/// round trip) delays the zones queued behind it by its first read.
const FIRST_READS_AT_ONCE: usize = 16;

/// The least pause before a source that panicked starts again.
const SOURCE_RESTART_PAUSE: std::time::Duration = std::time::Duration::from_secs(1);

/// Reads `cp` until `stopped`. A source that cannot start (a kubeconfig or CA Secret
/// not mounted yet) leaves its control plane `unknown` and is retried; it never takes
/// the others down.
async fn run_source(
    cp: CpRole,
    source: SourceConfig,
    types: Vec<ResourceType>,
    first_reads: FirstReads,
    interval: std::time::Duration,
    monitor: Arc<Monitor>,
    stopped: impl Future<Output = ()>,
) {
    let mut stopped = std::pin::pin!(stopped);
    loop {
        match start_source(&cp, &source, types.clone(), interval).await {
            Ok(Source::Poll(target)) => {
                return poll(target.with_first_reads(first_reads), monitor, stopped).await;
            }
            Ok(Source::Kube(client)) => {
                let types = kube_source::types_for(&cp, types.into_iter());
                return kube_source::watch(cp, client, types, monitor, first_reads, stopped).await;
            }
            Err(error) => {
                tracing::warn!(%cp, %error, "cannot start source; retrying");
                monitor.failed(&cp, &error);
            }
        }
        tokio::select! {
            _ = &mut stopped => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

/// What a panic said, when it said it with a string.
fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(s) => *s,
        Err(payload) => payload
            .downcast_ref::<&str>()
            .map_or_else(|| "a panic".to_owned(), |s| (*s).to_owned()),
    }
}

enum Source {
    Poll(Box<PollTarget>),
    Kube(kube::Client),
}

/// The REST client of a control plane read over `api:`, its token and CA read now (so a
/// Secret mounted late or rotated is picked up on the next start).
fn kuma_api(source: &SourceConfig) -> Result<KumaApi, SourceError> {
    let SourceConfig::Api {
        url,
        token,
        token_file,
        ca_file,
    } = source
    else {
        return Err(SourceError::Config("not a REST API source".into()));
    };
    let read = |path: &std::path::Path, what: &str| {
        std::fs::read(path).map_err(|e| SourceError::Config(format!("{what} {}: {e}", path.display())))
    };
    let token = match (token, token_file) {
        (Some(t), _) => Some(t.clone()),
        (None, Some(f)) => Some(String::from_utf8_lossy(&read(f, "token file")?).trim().to_owned()),
        (None, None) => None,
    };
    let ca_pem = ca_file.as_deref().map(|f| read(f, "CA file")).transpose()?;
    let http = HttpClient::new(HttpSettings {
        ca_pem,
        token,
        ..Default::default()
    })?;
    KumaApi::new(url, http)
}

async fn start_source(
    cp: &CpRole,
    source: &SourceConfig,
    types: Vec<ResourceType>,
    interval: std::time::Duration,
) -> Result<Source, SourceError> {
    match source {
        SourceConfig::Api { .. } => {
            let api = kuma_api(source)?;
            Ok(Source::Poll(Box::new(PollTarget::new(
                cp.clone(),
                api,
                types,
                interval,
            ))))
        }
        SourceConfig::Kubernetes { kubeconfig, context } => Ok(Source::Kube(
            kube_source::client(kubeconfig.as_deref(), context.as_deref()).await?,
        )),
    }
}
