//! A bound on control planes read for the first time at once. A first read holds the
//! whole control plane until the monitor has it (a REST read's page bodies, a Kubernetes
//! list's objects as text, ~1 KiB a resource): a hundred zones of 10,000 policies starting
//! together would hold a million resources at once, and the process's peak memory is
//! that, not what it keeps. Later reads are small (the REST source skips what did not
//! change, a watch sends changes) and are never held back.
//!
//! A source holds its place while its first read is under way and gives it up as soon as
//! the read is taken in or fails: a control plane that cannot be read goes to the back
//! of the queue rather than keeping the others waiting.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Shared by every source of one monitor; cloning shares the bound.
#[derive(Debug, Clone, Default)]
pub struct FirstReads(Option<Arc<Semaphore>>);

/// A place among the first reads under way; dropping it lets the next one start.
#[derive(Debug)]
pub struct FirstRead(#[allow(dead_code)] Option<OwnedSemaphorePermit>);

impl FirstReads {
    /// At most `n` (at least 1) first reads at once.
    pub fn at_most(n: usize) -> Self {
        Self(Some(Arc::new(Semaphore::new(n.max(1)))))
    }

    /// No bound: every source starts its first read at once.
    pub fn unbounded() -> Self {
        Self(None)
    }

    /// A place if one is free now (unbounded: always).
    pub fn try_enter(&self) -> Option<FirstRead> {
        match &self.0 {
            Some(s) => s.clone().try_acquire_owned().ok().map(|p| FirstRead(Some(p))),
            None => Some(FirstRead(None)),
        }
    }

    /// Waits for a place.
    pub async fn enter(&self) -> FirstRead {
        match &self.0 {
            // The semaphore is never closed.
            Some(s) => FirstRead(s.clone().acquire_owned().await.ok()),
            None => FirstRead(None),
        }
    }
}
