//! The live layer: readiness, unknown control planes, out-of-sync ages, propagation
//! latency and flaps, with time driven by the test.

use std::sync::{Arc, Mutex};

use crate::common::*;
use jiff::Timestamp;
use kuma_model::{CpRole, ResourceType};
use policy_watcher::{
    ZoneState,
    monitor::{Monitor, MonitorConfig, Propagation, Recorder},
    source::SourceError,
};

#[derive(Default, Clone)]
struct Events {
    propagations: Arc<Mutex<Vec<Propagation>>>,
    flaps: Arc<Mutex<Vec<(String, ResourceType)>>>,
}

impl Recorder for Events {
    fn propagation(&self, p: &Propagation) {
        self.propagations.lock().unwrap().push(p.clone());
    }
    fn flap(&self, zone: &str, rtype: ResourceType) {
        self.flaps.lock().unwrap().push((zone.to_owned(), rtype));
    }
}

fn t(s: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + s).unwrap()
}

fn monitor() -> (Monitor, Events) {
    let events = Events::default();
    (
        Monitor::new(engine(), MonitorConfig::default(), Box::new(events.clone())),
        events,
    )
}

fn source() -> kuma_model::Resource {
    let mut r = mcb("demo-app-to-redis", 2);
    r.modification_time = Some(t(0));
    r
}

fn copy_at(zone: &str, at: i64) -> kuma_model::Resource {
    let mut c = copy_in_zone(&source(), zone);
    c.modification_time = Some(t(at));
    c
}

#[test]
fn nothing_is_converged_before_every_source_has_been_read() {
    let (m, _) = monitor();
    assert!(!m.ready());
    assert_eq!(m.lock().zone_state(Z1), ZoneState::Unknown);
    m.snapshot(&CpRole::Global, vec![source()], t(1));
    m.snapshot(&zone(Z1), vec![copy_at(Z1, 1)], t(1));
    assert!(!m.ready(), "zone-2 not read yet");
    assert_eq!(m.lock().zone_state(Z1), ZoneState::Converged);
    assert_eq!(m.lock().zone_state(Z2), ZoneState::Unknown);
    assert!(!m.report().converged);
    m.snapshot(&zone(Z2), vec![copy_at(Z2, 1)], t(1));
    assert!(m.ready());
    assert!(m.report().converged);
}

#[test]
fn a_failed_read_makes_the_zone_unknown_and_counts_the_error() {
    let (m, _) = monitor();
    m.snapshot(&CpRole::Global, vec![source()], t(1));
    m.snapshot(&zone(Z1), vec![copy_at(Z1, 1)], t(1));
    let err = SourceError::Unreachable {
        url: "http://zone-1:5681".into(),
        reason: "connection refused".into(),
    };
    m.failed(&zone(Z1), &err);
    m.failed(&zone(Z1), &err);
    let st = m.lock();
    assert_eq!(st.zone_state(Z1), ZoneState::Unknown);
    let status = &st.sources[&zone(Z1)];
    assert!(!status.up);
    assert_eq!(status.errors["unreachable"], 2);
    assert!(
        status
            .last_error
            .as_deref()
            .unwrap()
            .contains("connection refused")
    );
    drop(st);
    m.snapshot(&zone(Z1), vec![copy_at(Z1, 1)], t(5));
    assert_eq!(m.lock().zone_state(Z1), ZoneState::Converged);
}

#[test]
fn out_of_sync_age_counts_from_when_the_discrepancy_opened() {
    let (m, _) = monitor();
    m.snapshot(&CpRole::Global, vec![source()], t(0));
    m.snapshot(&zone(Z1), vec![], t(10));
    m.snapshot(&zone(Z2), vec![copy_at(Z2, 5)], t(10));
    let ages = m.lock().out_of_sync_seconds(t(70));
    assert_eq!(ages.get(Z1), Some(&60.0));
    assert_eq!(ages.get(Z2), None);
    m.snapshot(&zone(Z1), vec![copy_at(Z1, 75)], t(80));
    assert!(m.lock().out_of_sync_seconds(t(90)).is_empty());
}

#[test]
fn propagation_runs_from_the_source_change_to_the_copy() {
    let (m, events) = monitor();
    m.snapshot(&CpRole::Global, vec![source()], t(1));
    m.snapshot(&zone(Z1), vec![copy_at(Z1, 3)], t(20));
    // The copy's own modification time is more precise than when we happened to read it.
    let got = events.propagations.lock().unwrap().clone();
    assert_eq!(
        got,
        vec![Propagation {
            zone: Z1.into(),
            rtype: source().rtype,
            seconds: 3.0
        }]
    );
    // A copy without times found on a first read may be months old: no latency.
    let mut bare = copy_at(Z2, 0);
    bare.modification_time = None;
    m.snapshot(&zone(Z2), vec![bare.clone()], t(12));
    assert_eq!(events.propagations.lock().unwrap().len(), 1);
    // Seen arriving later, it is bounded by when we saw it.
    m.snapshot(&zone(Z2), vec![], t(13));
    m.snapshot(&zone(Z2), vec![bare], t(14));
    assert_eq!(events.propagations.lock().unwrap()[1].seconds, 14.0);
}

#[test]
fn a_copy_that_returns_within_the_window_is_a_flap() {
    let (m, events) = monitor();
    m.snapshot(&CpRole::Global, vec![source()], t(0));
    m.snapshot(&zone(Z1), vec![copy_at(Z1, 1)], t(1));
    m.snapshot(&zone(Z1), vec![], t(10));
    m.snapshot(&zone(Z1), vec![copy_at(Z1, 1)], t(15));
    assert_eq!(
        events.flaps.lock().unwrap().clone(),
        vec![(Z1.to_owned(), source().rtype)]
    );
    // Gone for longer than the window: a repair, not a flap.
    m.snapshot(&zone(Z1), vec![], t(20));
    m.snapshot(&zone(Z1), vec![copy_at(Z1, 1)], t(200));
    assert_eq!(events.flaps.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn waiters_are_notified_of_every_change() {
    let (m, _) = monitor();
    let mut rx = m.subscribe();
    m.snapshot(&CpRole::Global, vec![source()], t(0));
    tokio::time::timeout(std::time::Duration::from_secs(5), rx.changed())
        .await
        .expect("notified")
        .unwrap();
    assert_eq!(*rx.borrow(), 1);
}
