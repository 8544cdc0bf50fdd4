//! The long-running probe: connect, stream, and reconnect with backoff until shut down
//! or stopped by a fatal error.

use std::{future::Future, pin::pin};

use kds_wire::Connector;
use prometheus::Registry;

use crate::{
    backoff::Backoff,
    config::ProbeConfig,
    error::{Error, Result},
    metrics::Metrics,
    session::Session,
    view::View,
};

/// A configured probe, ready to [`run`](Probe::run).
pub struct Probe {
    config: ProbeConfig,
    view: View,
    metrics: Metrics,
    connector: Connector,
    recorder: Option<crate::record::Recorder>,
}

impl Probe {
    /// Validates the configuration, loads the TLS files and registers the metrics. Every
    /// fatal setup problem surfaces here, before any connection is attempted.
    pub fn new(config: ProbeConfig, registry: &Registry) -> Result<Self> {
        config.validate()?;
        let tls = if config.address.tls {
            Some(kds_wire::tls::client_config(&config.tls)?)
        } else {
            None
        };
        let connector = Connector::new(config.address.clone(), tls)?;
        let metrics =
            Metrics::register(registry, &config.types).map_err(|e| Error::Metrics(e.to_string()))?;
        let view = View::new(&config.types);
        view.set_identity(&config.zone_name, &config.address.to_string());
        let recorder = match &config.record {
            Some(dir) => Some(crate::record::Recorder::new(dir).map_err(|error| Error::Record {
                dir: dir.clone(),
                error,
            })?),
            None => None,
        };
        Ok(Self {
            config,
            view,
            metrics,
            connector,
            recorder,
        })
    }

    /// A handle on the view the probe keeps up to date.
    pub fn view(&self) -> View {
        self.view.clone()
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    pub fn config(&self) -> &ProbeConfig {
        &self.config
    }

    /// Runs until `shutdown` completes (then `Ok`) or a fatal error occurs (then `Err`).
    /// Retryable errors are counted, logged and followed by a reconnect after backoff.
    pub async fn run(&self, shutdown: impl Future<Output = ()>) -> Result<()> {
        let mut shutdown = pin!(shutdown);
        let mut backoff = Backoff::new(self.config.backoff);
        let session = Session {
            zone_name: &self.config.zone_name,
            types: &self.config.types,
            health_check_interval: self.config.health_check_interval,
            view: &self.view,
            metrics: &self.metrics,
            recorder: self.recorder.as_ref(),
        };
        loop {
            let attempt = async {
                match self.connector.channel(self.config.connect_timeout).await {
                    Ok(channel) => session.run(channel).await,
                    Err(error) => crate::session::Ended {
                        error: error.into(),
                        got_response: false,
                    },
                }
            };
            let ended = tokio::select! {
                () = &mut shutdown => {
                    self.disconnected(None);
                    return Ok(());
                }
                ended = attempt => ended,
            };
            let error = ended.error;
            self.metrics.record_error(&error);
            self.disconnected(Some(&error));
            let delay = if error.is_retryable() {
                if ended.got_response {
                    backoff.reset();
                }
                let delay = backoff.next_delay();
                tracing::warn!(%error, class = error.metric_label(), retry_in = ?delay, "KDS stream lost");
                delay
            } else if self.config.retry_refusals {
                // Trying again at once repeats the refusal: wait as long as backoff ever does.
                let delay = self.config.backoff.max;
                tracing::error!(%error, class = error.metric_label(), retry_in = ?delay, "KDS probe refused; retrying");
                delay
            } else {
                tracing::error!(%error, class = error.metric_label(), "KDS probe stopped");
                return Err(error);
            };
            tokio::select! {
                () = &mut shutdown => return Ok(()),
                () = tokio::time::sleep(delay) => {}
            }
        }
    }

    fn disconnected(&self, error: Option<&Error>) {
        self.metrics.connected.set(0);
        // Without a connection the global cannot be called healthy.
        self.metrics.health_check_up.set(0);
        self.view.stream_ended(error.map(ToString::to_string));
    }
}
