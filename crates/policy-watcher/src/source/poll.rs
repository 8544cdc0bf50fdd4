//! Polling a control plane's REST API into the monitor: a full read every interval, each
//! one replacing the last, so deletions are seen too. A type whose pages come back byte
//! for byte as the last read the monitor took in is not parsed or fed again
//! ([`ReadDigests`]); a read that fails, or that the monitor could not take in, forgets
//! the last read, so the next is taken in whole.

use std::{collections::BTreeMap, future::Future, sync::Arc, time::Duration};

use jiff::Timestamp;
use kuma_model::{CpRole, ResourceType};

use super::{
    SourceError,
    first_reads::FirstReads,
    insight::ZoneInsight,
    rest::{KumaApi, Pages, ReadDigests},
};
use crate::monitor::Monitor;

/// A read still unfinished after this many poll intervals is abandoned and its control
/// plane turns `unknown`: its last complete read is never shown as current for longer
/// than an interval plus this deadline.
pub const READ_DEADLINE_INTERVALS: u32 = 3;
/// The least time a read is given, so that a large control plane polled often can still
/// be read at all.
pub const MIN_READ_DEADLINE: Duration = Duration::from_secs(30);

/// What to read from one control plane, and how often.
#[derive(Debug, Clone)]
pub struct PollTarget {
    pub cp: CpRole,
    pub api: KumaApi,
    pub types: Vec<ResourceType>,
    pub interval: Duration,
    /// Time for one whole read (every page of every type, and the insights).
    pub read_deadline: Duration,
    /// The bound this target's first read waits within (none by default).
    pub first_reads: FirstReads,
}

impl PollTarget {
    /// A target whose reads get [`READ_DEADLINE_INTERVALS`] intervals, at least
    /// [`MIN_READ_DEADLINE`].
    pub fn new(cp: CpRole, api: KumaApi, types: Vec<ResourceType>, interval: Duration) -> Self {
        Self {
            cp,
            api,
            types,
            interval,
            read_deadline: interval
                .saturating_mul(READ_DEADLINE_INTERVALS)
                .max(MIN_READ_DEADLINE),
            first_reads: FirstReads::unbounded(),
        }
    }

    /// The target, its first read waiting within `first_reads`.
    pub fn with_first_reads(mut self, first_reads: FirstReads) -> Self {
        self.first_reads = first_reads;
        self
    }

    /// The types to read on `cp`: the checked ones, plus Zone on the global (to know
    /// which zones exist and which are disabled).
    pub fn types_for(cp: &CpRole, checked: impl Iterator<Item = ResourceType>) -> Vec<ResourceType> {
        let mut types: Vec<ResourceType> = checked.collect();
        if *cp == CpRole::Global
            && let Some(zone) = ResourceType::from_name("Zone")
            && !types.contains(&zone)
        {
            types.push(zone);
        }
        types
    }
}

/// Reads `target` until `shutdown` completes. The first read starts at once.
pub async fn poll(target: PollTarget, monitor: Arc<Monitor>, shutdown: impl Future<Output = ()>) {
    let mut shutdown = std::pin::pin!(shutdown);
    let mut ticker = tokio::time::interval(target.interval);
    // A slow control plane delays the next read rather than piling reads up.
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The pages of the last read the monitor holds.
    let mut last: Option<ReadDigests> = None;
    // A read has been taken in: later ones are not first reads.
    let mut taken_in = false;
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            _ = ticker.tick() => {}
        }
        // Until a read has been taken in, each attempt waits for its place (given up at
        // the end of the attempt, taken in or failed).
        let _place = match !taken_in {
            true => tokio::select! {
                _ = &mut shutdown => return,
                place = target.first_reads.enter() => Some(place),
            },
            false => None,
        };
        let started = Timestamp::now();
        let read = tokio::select! {
            _ = &mut shutdown => return,
            read = tokio::time::timeout(target.read_deadline, read(&target, last.as_ref(), !taken_in && monitor.holds_nothing(&target.cp))) => {
                read.unwrap_or_else(|_| Err(SourceError::ReadDeadline {
                    url: target.api.base().to_owned(),
                    deadline: target.read_deadline,
                }))
            }
        };
        match read {
            Ok((pages, insights)) => {
                tracing::debug!(cp = %target.cp, changed = pages.len(), unchanged = pages.unchanged(), "read control plane");
                let digests = pages.digests();
                // Only against a read the engine took in: a first read of no type at all
                // would otherwise count as one.
                let fed = if last.is_some() && pages.unchanged() {
                    monitor.read_unchanged(&target.cp, started);
                    Ok(())
                } else {
                    // Parsed into the engine one resource at a time, under the monitor's
                    // lock; unchanged types are held as they are.
                    monitor.snapshot_each(
                        &target.cp,
                        |key| pages.holds(key),
                        |push| pages.feed(push),
                        started,
                    )
                };
                drop(pages);
                match fed {
                    Ok(()) => {
                        last = Some(digests);
                        taken_in = true;
                        if let Some(insights) = insights {
                            monitor.zone_insights(insights);
                        }
                    }
                    Err(error) => {
                        last = None;
                        tracing::warn!(cp = %target.cp, %error, "cannot take the read in");
                        monitor.failed(&target.cp, &error);
                    }
                }
            }
            Err(error) => {
                last = None;
                tracing::warn!(cp = %target.cp, %error, retryable = error.is_retryable(), "cannot read control plane");
                monitor.failed(&target.cp, &error);
            }
        }
    }
}

/// One full read, parsing only what differs from `last`; on the global, the zones'
/// insights too. A `first` read (the engine holds nothing of the control plane) skips
/// the check parse ([`KumaApi::read_first`]).
async fn read(
    target: &PollTarget,
    last: Option<&ReadDigests>,
    first: bool,
) -> Result<(Pages, Option<BTreeMap<String, ZoneInsight>>), SourceError> {
    let resources = match first {
        true => target.api.read_first(&target.types).await?,
        false => target.api.read_all(&target.types, last).await?,
    };
    let insights = match target.cp {
        CpRole::Global => Some(target.api.zone_insights().await?),
        CpRole::Zone(_) => None,
    };
    Ok((resources, insights))
}
