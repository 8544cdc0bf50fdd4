//! The simulated global's KDS gRPC server.
//!
//! One [`KdsHandle`] owns a server on one address. The store, the fault knobs, the records
//! and the configuration outlive the server itself, so [`KdsHandle::restart`] brings the
//! same global back on the same address, as a restarted kuma-cp with a persistent store.

pub mod codec;
pub(crate) mod delta;
pub mod faults;
pub mod generation;
pub mod record;
mod service;
mod stream;
pub mod zone_to_global;

use std::{net::SocketAddr, sync::Arc, time::Duration};

use kds_wire::{
    MAX_MESSAGE_SIZE, global_kds_service_server::GlobalKdsServiceServer,
    kds_sync_service_server::KdsSyncServiceServer,
};
use tokio::{net::TcpListener, sync::watch, task::JoinHandle};
use tokio_util::sync::CancellationToken;
use tonic::{
    codec::CompressionEncoding,
    transport::{Identity, Server, ServerTlsConfig, server::TcpIncoming},
};

pub use faults::{Faults, Undecodable};
pub use record::{RecordedRequest, RecordedResponse};
pub use zone_to_global::UpstreamTypeStats;

use kuma_model::{Environment, Resource};

use crate::{Error, Result, store::GlobalStore, tls::SelfSigned};

/// Kuma's keepalive time and timeout (`pkg/kds/mux/server.go`).
pub const KEEPALIVE: Duration = Duration::from_secs(15);
/// How long a stopping server waits for clients to leave before dropping them.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// How the simulated global serves.
#[derive(Debug, Clone)]
pub struct KdsServerConfig {
    /// `Some` serves gRPC over TLS (ALPN h2) with this identity; `None` serves plaintext.
    pub tls: Option<SelfSigned>,
    /// Returned by `HealthCheck` (`..._ZONE_HEALTH_CHECK_POLL_INTERVAL`, Kuma's default 0).
    pub health_check_interval: Duration,
    /// Largest message received or sent; larger outgoing ones end the stream.
    pub max_message_size: usize,
    /// HTTP/2 keepalive ping interval and timeout.
    pub keepalive: Duration,
}

impl Default for KdsServerConfig {
    fn default() -> Self {
        Self {
            tls: None,
            health_check_interval: Duration::ZERO,
            max_message_size: MAX_MESSAGE_SIZE,
            keepalive: KEEPALIVE,
        }
    }
}

impl KdsServerConfig {
    /// TLS with a fresh certificate for `localhost` and `127.0.0.1`, as Kuma's default.
    pub fn with_generated_tls() -> Result<Self> {
        Ok(Self {
            tls: Some(crate::tls::generate(&["localhost", "127.0.0.1"])?),
            ..Self::default()
        })
    }
}

/// State every server instance of one handle shares.
pub(crate) struct Shared {
    pub store: Arc<GlobalStore>,
    pub faults: Faults,
    pub records: record::Records,
    pub max_message_size: usize,
    pub health_check_interval: Duration,
    /// `GlobalToZoneSync` streams whose session is running; tests wait on it.
    pub open_streams: watch::Sender<usize>,
    /// What `ZoneToGlobalSync` streams received, per zone.
    pub upstream: zone_to_global::Upstream,
}

/// A running simulated global. Dropping it stops the server without waiting.
pub struct KdsHandle {
    addr: SocketAddr,
    cfg: KdsServerConfig,
    shared: Arc<Shared>,
    running: Option<Running>,
}

struct Running {
    /// Cancelled to stop the accept loop and every stream.
    stop: CancellationToken,
    task: JoinHandle<Result<(), tonic::transport::Error>>,
}

/// Starts the global's KDS server on `listen` (use `127.0.0.1:0` in tests).
pub async fn start_global_kds(
    store: Arc<GlobalStore>,
    listen: SocketAddr,
    cfg: KdsServerConfig,
) -> Result<KdsHandle> {
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|source| Error::Bind { addr: listen, source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| Error::Bind { addr: listen, source })?;
    let shared = Arc::new(Shared {
        store,
        faults: Faults::new(),
        records: record::Records::new(),
        max_message_size: cfg.max_message_size,
        health_check_interval: cfg.health_check_interval,
        open_streams: watch::Sender::new(0),
        upstream: zone_to_global::Upstream::new(),
    });
    let running = serve(listener, &shared, &cfg)?;
    tracing::info!(%addr, tls = cfg.tls.is_some(), "simulated global KDS server started");
    Ok(KdsHandle {
        addr,
        cfg,
        shared,
        running: Some(running),
    })
}

/// A universal global holding `seed`, its KDS on a free loopback port, with a generated
/// certificate when `tls` (its CA is [`KdsHandle::ca_pem`]): the global a probe test needs.
pub async fn start_seeded_global(
    tls: bool,
    seed: impl IntoIterator<Item = Resource>,
) -> Result<(Arc<GlobalStore>, KdsHandle)> {
    let store = Arc::new(GlobalStore::new(Environment::Universal));
    for resource in seed {
        store.upsert(resource);
    }
    let cfg = match tls {
        true => KdsServerConfig::with_generated_tls()?,
        false => KdsServerConfig::default(),
    };
    let loopback = SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, 0));
    let handle = start_global_kds(store.clone(), loopback, cfg).await?;
    Ok((store, handle))
}

fn serve(listener: TcpListener, shared: &Arc<Shared>, cfg: &KdsServerConfig) -> Result<Running> {
    let stop = CancellationToken::new();
    let sync = KdsSyncServiceServer::new(service::SyncService::new(shared.clone(), stop.clone()))
        .max_decoding_message_size(cfg.max_message_size)
        // The stream enforces the send limit itself, so the oversize fault can break it.
        .max_encoding_message_size(usize::MAX)
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip);
    let health = GlobalKdsServiceServer::new(service::HealthService::new(shared.clone()))
        .max_decoding_message_size(cfg.max_message_size)
        .max_encoding_message_size(cfg.max_message_size)
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip);
    let mut builder = Server::builder()
        .http2_keepalive_interval(Some(cfg.keepalive))
        .http2_keepalive_timeout(Some(cfg.keepalive));
    if let Some(tls) = &cfg.tls {
        let identity = Identity::from_pem(&tls.cert_pem, &tls.key_pem);
        builder = builder
            .tls_config(ServerTlsConfig::new().identity(identity))
            .map_err(Error::Tls)?;
    }
    let routes = service::Routes { sync, health };
    let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
    let task =
        tokio::spawn(builder.serve_with_incoming_shutdown(routes, incoming, stop.clone().cancelled_owned()));
    Ok(Running { stop, task })
}

impl KdsHandle {
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `grpcs://127.0.0.1:PORT` with TLS, `grpc://...` without: what a zone is given as
    /// `KUMA_MULTIZONE_ZONE_GLOBAL_ADDRESS`.
    pub fn url(&self) -> String {
        let scheme = if self.cfg.tls.is_some() { "grpcs" } else { "grpc" };
        format!("{scheme}://{}", self.addr)
    }

    /// The server certificate, which is also its CA, when serving TLS.
    pub fn ca_pem(&self) -> Option<&str> {
        self.cfg.tls.as_ref().map(|t| t.cert_pem.as_str())
    }

    pub fn store(&self) -> &Arc<GlobalStore> {
        &self.shared.store
    }

    pub fn faults(&self) -> &Faults {
        &self.shared.faults
    }

    /// Every request received on `GlobalToZoneSync`, oldest first, across restarts.
    pub fn recorded_requests(&self) -> Vec<RecordedRequest> {
        self.shared.records.requests()
    }

    /// Every response sent on `GlobalToZoneSync`, oldest first, across restarts.
    pub fn recorded_responses(&self) -> Vec<RecordedResponse> {
        self.shared.records.responses()
    }

    pub fn clear_records(&self) {
        self.shared.records.clear();
    }

    /// Waits until `done` holds for the recorded requests and responses; returns the
    /// requests. Never times out: wrap it in `tokio::time::timeout`.
    pub async fn wait_for_records(
        &self,
        done: impl Fn(&[RecordedRequest], &[RecordedResponse]) -> bool,
    ) -> Vec<RecordedRequest> {
        let mut changes = self.shared.records.subscribe();
        loop {
            let (requests, responses) = (self.recorded_requests(), self.recorded_responses());
            if done(&requests, &responses) {
                return requests;
            }
            if changes.changed().await.is_err() {
                // The sender lives in `self`; it cannot be dropped while we borrow it.
                return requests;
            }
        }
    }

    /// The zone records (Kuma's Zone and ZoneInsight), by name.
    pub fn zones(&self) -> std::collections::BTreeMap<String, crate::store::ZoneRecord> {
        self.shared.store.zones()
    }

    /// `ZoneToGlobalSync` streams of `zone` currently open.
    pub fn zone_to_global_streams(&self, zone: &str) -> usize {
        self.shared.upstream.open_streams(zone)
    }

    /// Per type URL: responses `zone` sent on `ZoneToGlobalSync` and how they were answered.
    pub fn zone_to_global_stats(&self, zone: &str) -> std::collections::BTreeMap<String, UpstreamTypeStats> {
        self.shared.upstream.stats(zone)
    }

    /// Zone-origin resources the global deleted because their zone stopped sending them.
    pub fn deleted_zone_resources(&self) -> Vec<kuma_model::Resource> {
        self.shared.upstream.buried()
    }

    /// The resurrect fault: stores a deleted zone-origin resource again, as a stale
    /// global instance writing it back would. The zone no longer has it, so nothing
    /// deletes it until that zone's next full state. Returns it if it was known.
    pub fn resurrect(&self, key: &kuma_model::ResourceKey) -> Option<kuma_model::Resource> {
        let r = self.shared.upstream.exhume(key)?;
        self.shared.store.upsert(r.clone());
        Some(r)
    }

    /// Moves whenever records, zone-to-global stats or the store change (for waits).
    pub(crate) fn change_feeds(&self) -> [watch::Receiver<u64>; 3] {
        [
            self.shared.records.subscribe(),
            self.shared.upstream.subscribe(),
            self.shared.store.subscribe(),
        ]
    }

    /// `GlobalToZoneSync` streams currently open.
    pub fn open_streams(&self) -> usize {
        *self.shared.open_streams.borrow()
    }

    /// Waits until the number of open streams satisfies `done`. Never times out: wrap it
    /// in `tokio::time::timeout`.
    pub async fn wait_for_open_streams(&self, done: impl Fn(usize) -> bool) {
        let mut open = self.shared.open_streams.subscribe();
        // The sender lives in `self`, so the channel cannot close while we wait.
        let _ = open.wait_for(|n| done(*n)).await;
    }

    /// Stops the server (open streams end with `Unavailable`, connections get GOAWAY) and
    /// serves again on the same address with the same store, faults and records.
    pub async fn restart(&mut self) -> Result<()> {
        self.stop().await;
        // The old listener is closed once the accept loop ends; retry briefly in case the
        // kernel has not released the port yet.
        let mut attempt = 0;
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(source) if attempt < 50 && source.kind() == std::io::ErrorKind::AddrInUse => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(source) => {
                    return Err(Error::Bind {
                        addr: self.addr,
                        source,
                    });
                }
            }
        };
        self.running = Some(serve(listener, &self.shared, &self.cfg)?);
        tracing::info!(addr = %self.addr, "simulated global KDS server restarted");
        Ok(())
    }

    /// Stops the server in place, for owners that cannot give the handle up;
    /// [`restart`](Self::restart) serves again.
    pub async fn stop_serving(&mut self) {
        self.stop().await;
    }

    /// Stops the server and waits (bounded) for its connections to close.
    pub async fn shutdown(mut self) {
        self.stop().await;
    }

    async fn stop(&mut self) {
        let Some(Running { stop, mut task }) = self.running.take() else {
            return;
        };
        stop.cancel();
        if tokio::time::timeout(DRAIN_TIMEOUT, &mut task).await.is_err() {
            tracing::warn!("KDS server did not drain in time; dropping its connections");
            task.abort();
        }
    }
}

impl Drop for KdsHandle {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            running.stop.cancel();
            running.task.abort();
        }
    }
}

impl std::fmt::Debug for KdsHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KdsHandle")
            .field("url", &self.url())
            .finish_non_exhaustive()
    }
}
