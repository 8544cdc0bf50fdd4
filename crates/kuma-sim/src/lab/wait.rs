//! Waits on a running lab, woken by change notifications of every store, every zone's
//! link status and the global's records, with a short re-check for state that has none.

use std::{future::Future, pin::Pin, task::Poll, time::Duration};

use tokio::sync::watch;

use super::{Lab, LabError};
use crate::zone::LinkStatus;

/// Fallback re-check period for state without change notifications (health-check times,
/// subscription stats).
const WAIT_RECHECK: Duration = Duration::from_millis(100);

impl Lab {
    /// Waits until `done` holds, re-checking on every change of any store, any zone's
    /// link status or faults, and the global's records.
    pub async fn wait_until(&self, done: impl Fn(&Lab) -> bool, timeout: Duration) -> Result<(), LabError> {
        let mut feeds: Vec<watch::Receiver<u64>> = self.global().await.change_feeds().into();
        let mut status: Vec<watch::Receiver<LinkStatus>> = Vec::new();
        for z in &self.inner.zones {
            feeds.push(z.store().subscribe());
            status.push(z.watch_status());
        }
        let wait = async {
            loop {
                if done(self) {
                    return;
                }
                any_change(&mut feeds, &mut status, WAIT_RECHECK).await;
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| LabError::Timeout(timeout))
    }

    /// Waits until every zone has both streams open and went through the first full
    /// state of every type in both directions.
    pub async fn wait_connected(&self, timeout: Duration) -> Result<(), LabError> {
        let deadline = tokio::time::Instant::now() + timeout;
        for z in &self.inner.zones {
            let name = z.name().to_owned();
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            self.wait_until(
                |lab| {
                    let Ok(zone) = lab.zone(&name) else { return false };
                    zone.status().is_synced()
                },
                left,
            )
            .await?;
        }
        Ok(())
    }
}

/// Resolves when any feed or status moves, or after `recheck`.
async fn any_change(
    feeds: &mut [watch::Receiver<u64>],
    status: &mut [watch::Receiver<LinkStatus>],
    recheck: Duration,
) {
    let mut waits: Vec<Pin<Box<dyn Future<Output = ()> + Send + '_>>> = Vec::new();
    for rx in feeds.iter_mut() {
        waits.push(Box::pin(async move {
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }));
    }
    for rx in status.iter_mut() {
        waits.push(Box::pin(async move {
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }));
    }
    let any = std::future::poll_fn(|cx| {
        for w in waits.iter_mut() {
            if w.as_mut().poll(cx).is_ready() {
                return Poll::Ready(());
            }
        }
        Poll::Pending
    });
    tokio::select! {
        () = any => {}
        () = tokio::time::sleep(recheck) => {}
    }
}
