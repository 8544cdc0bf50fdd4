//! The tonic service implementations: `KDSSyncService` and `GlobalKDSService`.

use std::{
    convert::Infallible,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use kds_wire::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, ZoneHealthCheckRequest, ZoneHealthCheckResponse,
    global_kds_service_server::{GlobalKdsService, GlobalKdsServiceServer},
    kds_sync_service_server::{KdsSyncService, KdsSyncServiceServer},
};
use kuma_model::Environment;
use tokio::sync::mpsc;
use tokio_stream::{Stream, wrappers::ReceiverStream};
use tokio_util::sync::CancellationToken;
use tonic::codegen::{BoxFuture, Service, http};
use tonic::{Request, Response, Status, Streaming, metadata::MetadataMap};

use super::{Shared, stream};

/// Responses buffered per stream before the stream task waits for the client to read.
const STREAM_BUFFER: usize = 16;

type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

pub(crate) struct SyncService {
    shared: Arc<Shared>,
    /// Cancelled when this server instance stops; every stream ends with Unavailable.
    stop: CancellationToken,
}

impl SyncService {
    pub(crate) fn new(shared: Arc<Shared>, stop: CancellationToken) -> Self {
        Self { shared, stop }
    }
}

/// `client-id`, required on every KDS call (`pkg/kds/util/client_id.go`).
fn client_id(metadata: &MetadataMap) -> Result<String, Status> {
    metadata
        .get("client-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .ok_or_else(|| Status::invalid_argument("\"client-id\" is not present in metadata"))
}

/// RFC 1123 label: what Kubernetes accepts as a cluster-scoped object name here.
fn is_dns_label(name: &str) -> bool {
    kuma_model::zone_name::check(name).is_ok()
}

#[tonic::async_trait]
impl KdsSyncService for SyncService {
    type GlobalToZoneSyncStream = ResponseStream<DeltaDiscoveryResponse>;
    type ZoneToGlobalSyncStream = ResponseStream<DeltaDiscoveryRequest>;

    async fn global_to_zone_sync(
        &self,
        request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::GlobalToZoneSyncStream>, Status> {
        let metadata = request.metadata();
        let client_id = client_id(metadata)?;
        let text = |key: &str| metadata.get(key).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let header_features: Vec<String> = metadata
            .get_all("features")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_owned)
            .collect();
        let version_header = text("version");
        let auth_token_provided = metadata.get_all("authorization").iter().count() == 1;

        if matches!(self.shared.store.environment(), Environment::Kubernetes { .. })
            && !is_dns_label(&client_id)
        {
            // A Kubernetes global stores the Zone as a cluster-scoped CR; creating it fails
            // and Kuma ends the stream with this status (kuma-semantics 5).
            tracing::warn!(%client_id, "zone name is not a DNS label; the Zone cannot be created");
            return Err(Status::internal("stream failed"));
        }
        let subscription =
            self.shared
                .store
                .open_subscription(&client_id, version_header.clone(), auth_token_provided);
        let ctx = stream::StreamContext {
            id: self.shared.records.next_stream_id(),
            client_id,
            version_header,
            header_features,
            subscription,
        };
        tracing::info!(stream = ctx.id, client_id = %ctx.client_id, "GlobalToZoneSync stream opened");
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        self.shared.open_streams.send_modify(|n| *n += 1);
        tokio::spawn(stream::run(
            self.shared.clone(),
            ctx,
            request.into_inner(),
            tx,
            self.stop.clone(),
        ));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    /// Reversed roles: the global requests, the zone responds (kuma-semantics 3.2).
    async fn zone_to_global_sync(
        &self,
        request: Request<Streaming<DeltaDiscoveryResponse>>,
    ) -> Result<Response<Self::ZoneToGlobalSyncStream>, Status> {
        let client_id = client_id(request.metadata())?;
        if matches!(self.shared.store.environment(), Environment::Kubernetes { .. })
            && !is_dns_label(&client_id)
        {
            tracing::warn!(%client_id, "zone name is not a DNS label; the Zone cannot be created");
            return Err(Status::internal("stream failed"));
        }
        tracing::info!(%client_id, "ZoneToGlobalSync stream opened");
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        tokio::spawn(super::zone_to_global::run(
            self.shared.clone(),
            client_id,
            request.into_inner(),
            tx,
            self.stop.clone(),
        ));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

pub(crate) struct HealthService {
    shared: Arc<Shared>,
}

impl HealthService {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }
}

#[tonic::async_trait]
impl GlobalKdsService for HealthService {
    async fn health_check(
        &self,
        request: Request<ZoneHealthCheckRequest>,
    ) -> Result<Response<ZoneHealthCheckResponse>, Status> {
        let zone = client_id(request.metadata())?;
        let recorded = self.shared.store.record_health_check(&zone);
        tracing::debug!(%zone, recorded, "HealthCheck");
        let interval = self.shared.health_check_interval;
        let interval = prost_types::Duration {
            seconds: i64::try_from(interval.as_secs()).unwrap_or(i64::MAX),
            // Below one billion, so it fits.
            nanos: interval.subsec_nanos() as i32,
        };
        Ok(Response::new(ZoneHealthCheckResponse {
            interval: Some(interval),
        }))
    }
}

/// Routes a request to one of the two services by its path. Two services do not justify
/// tonic's axum-based router.
#[derive(Clone)]
pub(crate) struct Routes {
    pub sync: KdsSyncServiceServer<SyncService>,
    pub health: GlobalKdsServiceServer<HealthService>,
}

const HEALTH_PATH_PREFIX: &str = "/kuma.mesh.v1alpha1.GlobalKDSService/";

impl Service<http::Request<tonic::body::Body>> for Routes {
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Both generated servers are always ready.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        // Unknown paths reach the sync server, which answers Unimplemented.
        if request.uri().path().starts_with(HEALTH_PATH_PREFIX) {
            self.health.call(request)
        } else {
            self.sync.call(request)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_dns_label;

    #[test]
    fn dns_labels() {
        for ok in ["zone-1", "a", "z9"] {
            assert!(is_dns_label(ok), "{ok}");
        }
        for bad in [
            "",
            "Zone-1",
            "-zone",
            "zone-",
            "zone_1",
            "zone.1",
            &"a".repeat(64),
        ] {
            assert!(!is_dns_label(bad), "{bad}");
        }
    }
}
