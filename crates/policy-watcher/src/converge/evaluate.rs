//! What a slot's findings are, given the source and its copies.

use kuma_model::resource::{expected_name_in_zone, expected_name_on_global};

use super::{Cause, Direction, Engine, Finding, State, slots::SlotId, store::Entry};
use crate::sync_rules::global_sends;

impl Engine {
    pub(super) fn evaluate(&self, slot: &SlotId) -> Vec<Finding> {
        match slot.direction {
            Direction::GlobalToZone => self.evaluate_global_to_zone(slot),
            Direction::ZoneToGlobal => self.evaluate_zone_to_global(slot),
            Direction::Seed => Vec::new(),
        }
    }

    fn evaluate_global_to_zone(&self, slot: &SlotId) -> Vec<Finding> {
        let Some((index, spec, zone)) = self.zone_spec(&slot.zone) else {
            return Vec::new();
        };
        let source = self.global.entries(&slot.identity).next();
        let copies: Vec<&Entry> = zone.entries(&slot.identity).collect();
        let decision = source.map(|s| global_sends(s.stored.resource(), &spec.name, &self.zones_enabled));
        match (source, decision) {
            (Some(source), Some(Ok(()))) => {
                let expected = match source.expected_in_zone.get(self.zone_environment[index]) {
                    Some(name) => name.clone(),
                    None => expected_name_in_zone(
                        source.stored.resource(),
                        &self.topology.global,
                        &spec.environment,
                    ),
                };
                match_copies(source, expected, &copies)
            }
            (_, decision) => {
                let cause = match decision {
                    Some(Err(not_sent)) => Cause::NotSent(not_sent),
                    _ => Cause::SourceGone,
                };
                copies
                    .iter()
                    .map(|c| finding(State::Orphaned, c, cause.clone()))
                    .collect()
            }
        }
    }

    fn evaluate_zone_to_global(&self, slot: &SlotId) -> Vec<Finding> {
        let on_global: Vec<&Entry> = self.global.entries(&slot.identity).collect();
        let Some((_, spec, zone)) = self.zone_spec(&slot.zone) else {
            if self.zones_enabled.contains_key(&*slot.zone) {
                // Known to the global but not monitored: nothing can be said either way.
                return Vec::new();
            }
            return on_global
                .iter()
                .map(|c| finding(State::Unexpected, c, Cause::UnknownZone))
                .collect();
        };
        let local = zone
            .entries(&slot.identity)
            .next()
            .filter(|l| l.stored.resource().rtype.info().flows_zone_to_global());
        match local {
            Some(local) => {
                let expected = expected_name_on_global(
                    local.stored.resource(),
                    &spec.name,
                    &spec.environment,
                    &self.topology.global,
                );
                match_copies(local, expected, &on_global)
            }
            None => on_global
                .iter()
                .map(|c| finding(State::Orphaned, c, Cause::SourceGone))
                .collect(),
        }
    }
}

fn finding(state: State, copy: &Entry, cause: Cause) -> Finding {
    Finding {
        state,
        name: copy.stored.name().to_owned(),
        copy: Some(copy.stored.resource_key()),
        cause,
    }
}

/// The copy under the expected name is the one that counts; any other copy of the same
/// identity is unexpected.
fn match_copies(source: &Entry, expected: String, copies: &[&Entry]) -> Vec<Finding> {
    let mut out = Vec::with_capacity(copies.len().max(1));
    let mut found = false;
    for copy in copies {
        if copy.stored.name() == expected {
            found = true;
            out.push(if copy.fingerprint == source.fingerprint {
                finding(State::Synced, copy, Cause::None)
            } else {
                let cause = Cause::SpecDiffers {
                    source: source.fingerprint,
                    copy: copy.fingerprint,
                };
                finding(State::Drifted, copy, cause)
            });
        } else {
            out.push(finding(
                State::Unexpected,
                copy,
                Cause::Duplicate {
                    expected: expected.clone(),
                },
            ));
        }
    }
    if !found {
        out.push(Finding {
            state: State::Missing,
            name: expected,
            copy: None,
            cause: Cause::Absent,
        });
    }
    out.sort_by(|a, b| (a.state, &a.name).cmp(&(b.state, &b.name)));
    out
}
