//! What a slot's findings are, given the source and its copies.

use std::{borrow::Cow, sync::Arc};

use kuma_model::{
    Fingerprint, ResourceKey,
    resource::{expected_name_in_zone, expected_name_on_global},
};

use crate::sync_rules::NotSent;

use super::{
    Cause, Direction, Engine, Finding, State,
    slots::{Outcome, SlotId},
    store::Entry,
};

impl Engine {
    pub(super) fn evaluate(&self, slot: &SlotId) -> Outcome {
        match slot.direction {
            Direction::GlobalToZone => self.evaluate_global_to_zone(slot),
            Direction::ZoneToGlobal => self.evaluate_zone_to_global(slot),
            Direction::Seed => Outcome::Findings(Vec::new()),
        }
    }

    fn evaluate_global_to_zone(&self, slot: &SlotId) -> Outcome {
        let Some((index, spec, zone)) = self.zone_spec(&slot.zone) else {
            return Outcome::Findings(Vec::new());
        };
        let source = self
            .global
            .entries(&slot.identity)
            .next()
            .and_then(|(_, e)| e.stored.source());
        let copies = zone.entries(&slot.identity);
        let decision = source.map(|s| match &s.sending {
            Ok(sending) => sending.to_zone(&spec.name, &self.zones_enabled),
            Err(not_sent) => Err(not_sent.clone()),
        });
        match (source, decision) {
            (Some(source), Some(Ok(()))) => {
                let expected = match source.expected_in_zone.get(self.zone_environment[index]) {
                    Some(name) => Cow::Borrowed(name.as_str()),
                    None => Cow::Owned(expected_name_in_zone(
                        &source.meta,
                        &self.topology.global,
                        &spec.environment,
                    )),
                };
                match_copies(source.fingerprint(), &expected, copies)
            }
            (_, decision) => orphans(copies, decision),
        }
    }

    fn evaluate_zone_to_global(&self, slot: &SlotId) -> Outcome {
        let on_global = self.global.entries(&slot.identity);
        let Some((_, spec, zone)) = self.zone_spec(&slot.zone) else {
            if self.zones_enabled.contains_key(&*slot.zone) {
                // Known to the global but not monitored: nothing can be said either way.
                return Outcome::Findings(Vec::new());
            }
            return Outcome::Findings(
                on_global
                    .map(|(k, c)| finding(State::Unexpected, k, c, Cause::UnknownZone))
                    .collect(),
            );
        };
        let local = zone
            .entries(&slot.identity)
            .next()
            .and_then(|(_, l)| l.stored.source());
        // The zone's own filter: what it does not send up is never expected on the global.
        let sent = local.map(|l| crate::sync_rules::zone_sends(&l.meta));
        match (local, sent) {
            (Some(local), Some(Ok(()))) => {
                let expected = expected_name_on_global(
                    &local.meta,
                    &spec.name,
                    &spec.environment,
                    &self.topology.global,
                );
                match_copies(local.fingerprint(), &expected, on_global)
            }
            (_, sent) => orphans(on_global, sent),
        }
    }
}

/// Every copy orphaned: its source is not sent (`Some(Err)`, and why), or gone (`None`).
fn orphans<'a>(
    copies: impl Iterator<Item = (&'a Arc<ResourceKey>, &'a Entry)>,
    decision: Option<Result<(), NotSent>>,
) -> Outcome {
    let cause = match decision {
        Some(Err(not_sent)) => Cause::NotSent(not_sent),
        _ => Cause::SourceGone,
    };
    Outcome::Findings(
        copies
            .map(|(k, c)| finding(State::Orphaned, k, c, cause.clone()))
            .collect(),
    )
}

fn finding(state: State, key: &ResourceKey, copy: &Entry, cause: Cause) -> Finding {
    Finding {
        state,
        name: copy.stored.name().to_owned(),
        copy: Some(key.clone()),
        cause,
    }
}

/// The copy under the expected name is the one that counts; any other copy of the same
/// identity is unexpected.
fn match_copies<'a>(
    source: Fingerprint,
    expected: &str,
    copies: impl Iterator<Item = (&'a Arc<ResourceKey>, &'a Entry)> + Clone,
) -> Outcome {
    // The common case, answered without building a finding.
    let mut first_two = copies.clone();
    if let (Some((key, copy)), None) = (first_two.next(), first_two.next())
        && copy.stored.name() == expected
        && copy.stored.fingerprint() == source
    {
        return Outcome::Synced(key.clone());
    }
    let mut out = Vec::new();
    let mut found = false;
    for (key, copy) in copies {
        if copy.stored.name() == expected {
            found = true;
            let fingerprint = copy.stored.fingerprint();
            out.push(if fingerprint == source {
                finding(State::Synced, key, copy, Cause::None)
            } else {
                let cause = Cause::SpecDiffers {
                    source,
                    copy: fingerprint,
                };
                finding(State::Drifted, key, copy, cause)
            });
        } else {
            let cause = Cause::Duplicate {
                expected: expected.to_owned(),
            };
            out.push(finding(State::Unexpected, key, copy, cause));
        }
    }
    if !found {
        out.push(Finding {
            state: State::Missing,
            name: expected.to_owned(),
            copy: None,
            cause: Cause::Absent,
        });
    }
    out.sort_by(|a, b| (a.state, &a.name).cmp(&(b.state, &b.name)));
    Outcome::Findings(out)
}
