//! The zone's side of `GlobalKDSService.HealthCheck`: called at once, then every interval,
//! each call bounded, the outcome handed to the caller. The probe exports it as a metric;
//! the simulated zone counts it. What a zone does with a failed check is its own policy.

use std::{convert::Infallible, time::Duration};

use tonic::{
    Request, Status,
    metadata::{MetadataMap, errors::InvalidMetadataValue},
    transport::Channel,
};

use crate::{ZoneHealthCheckRequest, global_kds_service_client::GlobalKdsServiceClient};

/// A HealthCheck not answered in this time counts as failed: a global that holds the
/// call open is not a healthy one.
pub const HEALTH_CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// Why one HealthCheck failed.
#[derive(Debug, thiserror::Error)]
pub enum HealthCheckError {
    /// The zone's identity cannot travel as gRPC metadata (its name, say).
    #[error("the HealthCheck metadata is invalid: {0}")]
    Metadata(#[from] InvalidMetadataValue),
    /// The global answered with an error status.
    #[error("HealthCheck failed: {code:?}: {message}", code = .0.code(), message = .0.message())]
    Status(Status),
    /// No answer within [`HEALTH_CHECK_TIMEOUT`].
    #[error("HealthCheck not answered within {0:?}")]
    Timeout(Duration),
}

impl HealthCheckError {
    /// Every failure but bad metadata may pass by the next check.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, HealthCheckError::Metadata(_))
    }
}

/// Calls HealthCheck on `channel` at once and then every `interval` (a slow answer delays
/// the next call rather than bunching them), with `identify` writing each call's metadata,
/// and gives every outcome to `report`. Never returns: it ends when its caller drops it.
pub async fn health_checks(
    channel: Channel,
    interval: Duration,
    identify: impl Fn(&mut MetadataMap) -> Result<(), InvalidMetadataValue>,
    mut report: impl FnMut(Result<(), HealthCheckError>),
) -> Infallible {
    let mut client = GlobalKdsServiceClient::new(channel);
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let mut request = Request::new(ZoneHealthCheckRequest {});
        let outcome = match identify(request.metadata_mut()) {
            Err(e) => Err(HealthCheckError::Metadata(e)),
            Ok(()) => match tokio::time::timeout(HEALTH_CHECK_TIMEOUT, client.health_check(request)).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(status)) => Err(HealthCheckError::Status(status)),
                Err(_) => Err(HealthCheckError::Timeout(HEALTH_CHECK_TIMEOUT)),
            },
        };
        report(outcome);
    }
}
