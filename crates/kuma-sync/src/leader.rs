//! Leader election on a Kubernetes Lease, with client-go's semantics
//! (`k8s.io/client-go/tools/leaderelection`, `resourcelock.LeaseLock`): every replica reads
//! and serves; the leader alone does what must happen once (the KDS probe: two streams
//! under one zone name disturb each other).
//!
//! Each replica tries every `retry_period`: it reads the Lease; one that does not exist
//! it creates holding it; one another replica holds it leaves alone until the record has
//! not changed for `lease_duration` *as this replica observed it* (a local clock, so
//! skew between nodes does not matter); one it holds, or that has expired, it writes
//! holding it, with the `resourceVersion` it read, so of two replicas racing for an
//! expired lease the apiserver lets one win (409 Conflict for the other). A leader that
//! cannot renew within `renew_deadline` steps down before its lease can expire under it.
//! On shutdown the leader gives the lease up, so another takes over at once.

use std::{future::Future, time::Duration};

use jiff::Timestamp;
use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta},
};
use kube::{Api, Client, api::PostParams};
use tokio::{sync::watch, time::Instant};

/// Where the lease is, who this replica is, and the timings (client-go's defaults).
#[derive(Debug, Clone, PartialEq)]
pub struct ElectionConfig {
    pub namespace: String,
    pub lease_name: String,
    /// This replica's name: its pod name in a Deployment.
    pub identity: String,
    /// How long a lease not renewed stays another replica's.
    pub lease_duration: Duration,
    /// How long a leader keeps trying to renew before it steps down.
    pub renew_deadline: Duration,
    /// How often a replica tries to acquire or renew.
    pub retry_period: Duration,
}

impl ElectionConfig {
    pub const DEFAULT_LEASE_DURATION: Duration = Duration::from_secs(15);
    pub const DEFAULT_RENEW_DEADLINE: Duration = Duration::from_secs(10);
    pub const DEFAULT_RETRY_PERIOD: Duration = Duration::from_secs(2);

    pub fn new(namespace: &str, lease_name: &str, identity: &str) -> Self {
        Self {
            namespace: namespace.to_owned(),
            lease_name: lease_name.to_owned(),
            identity: identity.to_owned(),
            lease_duration: Self::DEFAULT_LEASE_DURATION,
            renew_deadline: Self::DEFAULT_RENEW_DEADLINE,
            retry_period: Self::DEFAULT_RETRY_PERIOD,
        }
    }

    /// The timings are coherent: a leader must step down before its lease could be
    /// taken, and try more than once within its deadline.
    pub fn check(&self) -> Result<(), LeaderError> {
        if self.identity.is_empty() {
            return Err(LeaderError::Config(
                "leaderElection: no identity (set HOSTNAME or identity)".into(),
            ));
        }
        if !(self.retry_period < self.renew_deadline && self.renew_deadline < self.lease_duration) {
            return Err(LeaderError::Config(format!(
                "leaderElection: retryPeriod ({:?}) < renewDeadline ({:?}) < leaseDuration ({:?}) is required",
                self.retry_period, self.renew_deadline, self.lease_duration
            )));
        }
        Ok(())
    }
}

/// Why one attempt to acquire or renew failed.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// The election's settings cannot work.
    #[error("{0}")]
    Config(String),
    /// Another replica wrote the lease between our read and our write.
    #[error("the lease changed under us (409 Conflict)")]
    Conflict,
    /// The apiserver could not be asked, or refused for another reason.
    #[error("the lease could not be read or written: {0}")]
    Api(#[from] kube::Error),
}

impl LeaderError {
    /// Everything but a bad configuration may pass by the next attempt.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, LeaderError::Config(_))
    }
}

/// The lease record as last observed, and when this replica observed it change.
#[derive(Debug, Clone)]
struct Observed {
    holder: Option<String>,
    renew_time: Option<Timestamp>,
    observed_at: Instant,
}

/// One replica's side of the election.
pub struct Elector {
    api: Api<Lease>,
    config: ElectionConfig,
    observed: Option<Observed>,
}

impl Elector {
    pub fn new(client: Client, config: ElectionConfig) -> Self {
        let api = Api::namespaced(client, &config.namespace);
        Self {
            api,
            config,
            observed: None,
        }
    }

    /// Takes part until `shutdown`, saying on `leading` whether this replica leads (it
    /// starts `false`). A leader gives the lease up on shutdown.
    pub async fn run(mut self, leading: watch::Sender<bool>, shutdown: impl Future<Output = ()>) {
        let mut shutdown = std::pin::pin!(shutdown);
        let mut last_renewal: Option<Instant> = None;
        loop {
            let now = Instant::now();
            let outcome = self.try_acquire_or_renew(now).await;
            let is_leader = match outcome {
                Ok(held) => {
                    if held {
                        last_renewal = Some(now);
                    }
                    held
                }
                Err(error) => {
                    // A leader keeps leading through failed renewals until its deadline:
                    // its lease is still its own that long.
                    let within =
                        last_renewal.is_some_and(|t| now.duration_since(t) < self.config.renew_deadline);
                    if *leading.borrow() && !within {
                        tracing::warn!(%error, "cannot renew the lease within its deadline; stepping down");
                    } else if !matches!(error, LeaderError::Conflict) {
                        tracing::debug!(%error, "leader election attempt failed");
                    }
                    *leading.borrow() && within
                }
            };
            if !is_leader {
                last_renewal = None;
            }
            if *leading.borrow() != is_leader {
                tracing::info!(identity = %self.config.identity, leader = is_leader, "leadership changed");
                leading.send_replace(is_leader);
            }
            tokio::select! {
                () = &mut shutdown => break,
                () = tokio::time::sleep(self.config.retry_period) => {}
            }
        }
        if *leading.borrow() {
            if let Err(error) = self.release().await {
                tracing::warn!(%error, "could not give the lease up; it expires by itself");
            }
            leading.send_replace(false);
        }
    }

    /// One round: whether this replica holds the lease after it.
    async fn try_acquire_or_renew(&mut self, now: Instant) -> Result<bool, LeaderError> {
        let wall = Timestamp::now();
        let current = match self.api.get_opt(&self.config.lease_name).await? {
            Some(lease) => lease,
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.config.lease_name.clone()),
                        namespace: Some(self.config.namespace.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(self.held_spec(wall, wall, 0)),
                };
                return match self.api.create(&PostParams::default(), &lease).await {
                    Ok(created) => {
                        self.observe(&created, now);
                        Ok(true)
                    }
                    Err(kube::Error::Api(e)) if e.code == 409 => Err(LeaderError::Conflict),
                    Err(e) => Err(e.into()),
                };
            }
        };
        self.observe(&current, now);
        let spec = current.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let ours = holder.as_deref() == Some(self.config.identity.as_str());
        let observed_at = self.observed.as_ref().map_or(now, |o| o.observed_at);
        let duration = spec
            .lease_duration_seconds
            .and_then(|s| u64::try_from(s).ok())
            .map_or(self.config.lease_duration, Duration::from_secs);
        if holder.is_some() && !ours && now.duration_since(observed_at) < duration {
            return Ok(false);
        }
        let acquire = match (ours, spec.acquire_time) {
            (true, Some(MicroTime(t))) => t,
            _ => wall,
        };
        let transitions = spec.lease_transitions.unwrap_or(0) + i32::from(!ours);
        let mut updated = current.clone();
        updated.spec = Some(self.held_spec(acquire, wall, transitions));
        match self
            .api
            .replace(&self.config.lease_name, &PostParams::default(), &updated)
            .await
        {
            Ok(written) => {
                self.observe(&written, now);
                Ok(true)
            }
            Err(kube::Error::Api(e)) if e.code == 409 => Err(LeaderError::Conflict),
            Err(e) => Err(e.into()),
        }
    }

    fn held_spec(&self, acquire: Timestamp, renew: Timestamp, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.config.identity.clone()),
            lease_duration_seconds: Some(
                i32::try_from(self.config.lease_duration.as_secs()).unwrap_or(i32::MAX),
            ),
            acquire_time: Some(MicroTime(acquire)),
            renew_time: Some(MicroTime(renew)),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    /// Notes the record; its observation time moves only when the record changed.
    fn observe(&mut self, lease: &Lease, now: Instant) {
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity;
        let renew_time = spec.renew_time.map(|MicroTime(t)| t);
        let changed = self
            .observed
            .as_ref()
            .is_none_or(|o| o.holder != holder || o.renew_time != renew_time);
        if changed {
            self.observed = Some(Observed {
                holder,
                renew_time,
                observed_at: now,
            });
        }
    }

    /// Gives the lease up (client-go's ReleaseOnCancel): no holder, so the next replica
    /// to try takes it without waiting for it to expire.
    async fn release(&mut self) -> Result<(), LeaderError> {
        let Some(mut lease) = self.api.get_opt(&self.config.lease_name).await? else {
            return Ok(());
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        // One second left: the others treat it as free at once (no holder).
        spec.lease_duration_seconds = Some(1);
        match self
            .api
            .replace(&self.config.lease_name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 409 => Err(LeaderError::Conflict),
            Err(e) => Err(e.into()),
        }
    }
}

/// A future that completes once this replica no longer leads (or the election is gone).
pub type StepDown = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// Runs `duty` while this replica leads: started when `leading` turns true, handed a
/// [`StepDown`] that completes when it turns false (the duty then returns), started
/// again on the next election. Ends with `shutdown`, or when the duty fails.
pub async fn while_leading<F, Fut, E>(
    what: &'static str,
    mut leading: watch::Receiver<bool>,
    shutdown: impl Future<Output = ()>,
    mut duty: F,
) where
    F: FnMut(StepDown) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            elected = leading.wait_for(|l| *l) => if elected.is_err() { return },
        }
        let mut lost = leading.clone();
        let step_down: StepDown = Box::pin(async move {
            let _ = lost.wait_for(|l| !*l).await;
        });
        tokio::select! {
            () = &mut shutdown => return,
            ended = duty(step_down) => if let Err(error) = ended {
                tracing::error!(%error, what, "stopped");
                return;
            },
        }
        tracing::info!(what, "no longer the leader: stopped");
    }
}
