//! The fault matrix: every fault kuma-sim can make, on its universal zone (read over
//! REST) and on its Kubernetes zone (read through kube-rs watchers), judged by
//! `verify --config`'s own function ([`kuma_sync::live::verify`]).
//!
//! Two things are asserted of every verdict. It equals what the lab's control planes
//! really hold: an engine fed the lab's stores directly is the oracle, so a source that
//! reads too little, too late or the wrong thing shows as a difference. And it is the
//! state the fault makes: never `converged` unless every copy was read and matches,
//! never a discrepancy once the fault is healed.

use std::{collections::BTreeSet, time::Duration};

use kuma_model::{CpRole, Resource, ResourceType, labels};
use kuma_sim::lab::{Lab, Scenario};
use kuma_sync::{
    config::{ServeConfig, SourceConfig},
    demo::FEDERATE,
    live,
    verify::Verdict,
};
use policy_watcher::{Engine, Report, Selection, State, Topology, ZoneSpec, ZoneState};

use super::{change_policy, copy_key, mcb};
use crate::support::WAIT;

/// What identifies a finding, without its free-text detail.
type Finding = (String, String, String, String, State);

fn findings(report: &Report) -> BTreeSet<Finding> {
    report
        .discrepancies
        .iter()
        .map(|d| {
            (
                d.zone.clone(),
                format!("{:?}", d.direction),
                d.rtype.name().to_owned(),
                d.name.clone(),
                d.state,
            )
        })
        .collect()
}

/// The oracle: the lab's stores as they are, judged by an engine with the same types.
fn truth(lab: &Lab, cfg: &ServeConfig) -> Report {
    judge(lab, Selection::new(cfg.types.iter().copied(), None))
}

/// An engine fed every store of the lab (and the global's Zone records), checking
/// `selection`.
pub(crate) fn judge(lab: &Lab, selection: Selection) -> Report {
    let topology = Topology::new(
        lab.global_store().environment().clone(),
        lab.zones()
            .iter()
            .map(|z| ZoneSpec::new(z.name(), z.store().environment().clone()))
            .collect(),
    )
    .with_kuma(kuma_model::KumaLine::V2);
    let mut engine = Engine::new(topology, selection);
    let zone_type = ResourceType::from_name("Zone").expect("known");
    for (cp, store) in lab.stores() {
        let mut resources = store.list(None);
        if cp == CpRole::Global {
            for (name, record) in lab.global_store().zones() {
                resources.push(Resource::new(
                    zone_type,
                    None,
                    &name,
                    serde_json::json!({"enabled": record.enabled}),
                ));
            }
        }
        engine.replace(&cp, resources);
    }
    Report::build(&engine)
}

/// The lab settled as a fault leaves it: `zone` (every zone when `None`) holds a
/// finding of `state` and no other zone holds any.
async fn settle(lab: &Lab, cfg: &ServeConfig, zone: Option<&str>, state: State, what: &str) {
    lab.wait_until(
        |lab| {
            let report = truth(lab, cfg);
            let hit = |z: &str| {
                report
                    .discrepancies
                    .iter()
                    .any(|d| d.zone == z && d.state == state)
            };
            match zone {
                Some(zone) => hit(zone) && report.discrepancies.iter().all(|d| d.zone == zone),
                None => lab.zones().iter().all(|z| hit(z.name())),
            }
        },
        WAIT,
    )
    .await
    .unwrap_or_else(|e| panic!("{what}: the lab never showed {state:?}: {e}"));
}

/// A copy taken over is the zone's own resource, which the zone then sends to the
/// global over ZoneToGlobal: the fault is whole once the global holds it (origin zone,
/// from `zone`). Until then the lab's truth still moves, and a read proves nothing.
async fn settle_taken_over(lab: &Lab, zone: &str, what: &str) {
    let rtype = copy_key(zone).rtype;
    lab.wait_until(
        |lab| {
            lab.global_store().list(Some(rtype)).iter().any(|r| {
                r.label(labels::ORIGIN) == Some(labels::ORIGIN_ZONE) && r.label(labels::ZONE) == Some(zone)
            })
        },
        WAIT,
    )
    .await
    .unwrap_or_else(|e| panic!("{what}: the global never received the zone's copy: {e}"));
}

async fn verdict(cfg: &ServeConfig) -> Verdict {
    verdict_within(cfg, WAIT).await
}

/// `verify --config --timeout limit`: a control plane still unread by then is unknown.
async fn verdict_within(cfg: &ServeConfig, limit: Duration) -> Verdict {
    tokio::time::timeout(WAIT * 2, live::verify(cfg.clone(), false, limit))
        .await
        .expect("verify ends within its timeout")
        .expect("verify runs")
}

/// The verdict matches the lab exactly, is not converged, and puts `zone` in `state`.
/// The lab must hold still for one whole read: a fault's later consequences (a copy taken
/// over on a zone reaching the global over ZoneToGlobal) can land while verify reads, and
/// then the lab's truth before and after differ. Such a read proves nothing either way and
/// is taken again, a bounded number of times.
async fn judged(lab: &Lab, cfg: &ServeConfig, zone: Option<&str>, state: ZoneState, what: &str) {
    const READS: usize = 5;
    let mut moved = Vec::new();
    let (verdict, after) = loop {
        let before = findings(&truth(lab, cfg));
        let verdict = verdict(cfg).await;
        let after = findings(&truth(lab, cfg));
        if before == after {
            break (verdict, after);
        }
        moved.push((before, after));
        assert!(
            moved.len() < READS,
            "{what}: the lab moved during each of {READS} reads: {moved:#?}"
        );
    };
    assert!(
        !verdict.converged(),
        "{what}: a false converged: {:#?}",
        verdict.report
    );
    assert!(verdict.unreadable.is_empty(), "{what}: {:?}", verdict.unreadable);
    assert_eq!(
        findings(&verdict.report),
        after,
        "{what}: verify disagrees with the lab"
    );
    let zones: Vec<&str> = match zone {
        Some(zone) => vec![zone],
        None => lab.zones().iter().map(|z| z.name()).collect(),
    };
    for z in lab.zones() {
        let got = verdict
            .report
            .zones
            .iter()
            .find(|r| r.zone == z.name())
            .expect("zone judged");
        let want = if zones.contains(&z.name()) {
            state
        } else {
            ZoneState::Converged
        };
        assert_eq!(got.state, want, "{what}: {}", z.name());
    }
}

/// Heals everything, waits for the lab to be whole again, and asserts a converged
/// verdict: no false discrepancy once the fault is gone.
async fn healed(lab: &Lab, cfg: &ServeConfig, what: &str) {
    lab.heal_all().await;
    lab.wait_until(|lab| truth(lab, cfg).converged, WAIT)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "{what}: the lab did not heal: {e}: {:#?}",
                truth(lab, cfg).discrepancies
            )
        });
    lab.wait_connected(WAIT).await.expect("zones reconnect");
    let verdict = verdict(cfg).await;
    assert!(
        verdict.converged(),
        "{what}, healed: a false discrepancy: {:#?} {:?}",
        verdict.report.discrepancies,
        verdict.unreadable
    );
}

/// A port nothing listens on.
fn closed_port() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr")
}

/// A server that answers every request with `body`, status 200: a list whose `next`
/// leads back to itself for the REST source, bytes that are no object for kube-rs.
async fn hostile_server(body: &'static str) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    addr
}

/// `cfg` with `zone` read from an address that refuses connections.
fn unreachable_zone(cfg: &ServeConfig, zone: &str, dir: &std::path::Path) -> ServeConfig {
    zone_at(cfg, zone, closed_port(), dir)
}

/// `cfg` with `zone` read from `addr`, by the same backend.
fn zone_at(cfg: &ServeConfig, zone: &str, addr: std::net::SocketAddr, dir: &std::path::Path) -> ServeConfig {
    let mut cfg = cfg.clone();
    let (_, cp) = cfg.zones.iter_mut().find(|(name, _)| name == zone).expect("zone");
    cp.source = match &cp.source {
        SourceConfig::Api { .. } => SourceConfig::Api {
            url: format!("http://{addr}"),
            token: None,
            token_file: None,
            ca_file: None,
        },
        SourceConfig::Kubernetes { .. } => SourceConfig::Kubernetes {
            kubeconfig: Some(crate::support::kubeconfig(
                dir,
                &format!("{zone}-{}", addr.port()),
                addr,
            )),
            context: None,
        },
    };
    cfg
}

/// The demo-app-to-redis policy on the global.
fn source_policy(lab: &Lab) -> Resource {
    lab.global_store()
        .list(Some(mcb()))
        .into_iter()
        .find(|r| r.name == "demo-app-to-redis")
        .expect("scenario policy")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_on_both_backends_gets_exactly_its_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let (lab, mut cfg) =
        super::lab_and_config(Scenario::from_yaml(FEDERATE).expect("scenario"), dir.path()).await;
    // The probe's own stream is not what is judged here.
    cfg.kds = None;
    lab.wait_connected(WAIT).await.expect("zones connect");
    healed(&lab, &cfg, "the lab as it starts").await;

    let mut max_connections = 100;
    // zone-1 is universal (REST), zone-2 Kubernetes (watch).
    for zone in ["zone-1", "zone-2"] {
        let faults = lab.zone_faults(zone).unwrap();
        let what = |fault: &str| format!("{fault} on {zone}");

        assert!(lab.zone(zone).unwrap().drop_copy(&copy_key(zone)));
        settle(&lab, &cfg, Some(zone), State::Missing, &what("a dropped copy")).await;
        judged(
            &lab,
            &cfg,
            Some(zone),
            ZoneState::Diverged,
            &what("a dropped copy"),
        )
        .await;
        healed(&lab, &cfg, &what("a dropped copy")).await;

        let edited = serde_json::json!({"targetRef": {"kind": "Mesh"}});
        assert!(lab.zone(zone).unwrap().edit_copy(&copy_key(zone), edited));
        settle(&lab, &cfg, Some(zone), State::Drifted, &what("an edited copy")).await;
        judged(
            &lab,
            &cfg,
            Some(zone),
            ZoneState::Diverged,
            &what("an edited copy"),
        )
        .await;
        healed(&lab, &cfg, &what("an edited copy")).await;

        // The copy taken over as the zone's own (kumahq/kuma #18208): once the global
        // changes the policy, the zone's sync fails on it and restarts, again and again.
        assert!(lab.zone(zone).unwrap().take_over_copy(&copy_key(zone)));
        max_connections += 1;
        change_policy(&lab, max_connections);
        settle(&lab, &cfg, Some(zone), State::Missing, &what("a copy taken over")).await;
        settle_taken_over(&lab, zone, &what("a copy taken over")).await;
        judged(
            &lab,
            &cfg,
            Some(zone),
            ZoneState::Diverged,
            &what("a copy taken over"),
        )
        .await;
        let report = verdict(&cfg).await.report;
        assert!(
            report.discrepancies.iter().any(|d| d.zone == zone
                && d.state == State::Missing
                && d.detail.contains("holds its own resource under this name")),
            "{}: {:#?}",
            what("a copy taken over"),
            report.discrepancies
        );
        lab.zone(zone).unwrap().store().delete(&copy_key(zone));
        healed(&lab, &cfg, &what("a copy taken over")).await;

        faults.stall(true);
        let source = source_policy(&lab);
        lab.global_store().delete(&source.key());
        settle(
            &lab,
            &cfg,
            Some(zone),
            State::Orphaned,
            &what("a stalled zone and a delete"),
        )
        .await;
        judged(
            &lab,
            &cfg,
            Some(zone),
            ZoneState::Diverged,
            &what("a stalled zone and a delete"),
        )
        .await;
        lab.create_on_global(source).unwrap();
        healed(&lab, &cfg, &what("a stalled zone and a delete")).await;

        // Faults that keep a change on the global from a zone. A zone that stops
        // acknowledging still applies the response it has not acknowledged: the global
        // holds back only the ones after it, so it takes two changes.
        for (fault, inject, changes) in [
            (
                "a NACKing zone",
                &(|on| faults.nack(mcb(), on)) as &dyn Fn(bool),
                1,
            ),
            (
                "a zone that stops acknowledging",
                &|on| faults.stop_ack(mcb(), on),
                2,
            ),
            (
                "an offline zone",
                &|on| {
                    if on {
                        faults.disconnect()
                    }
                },
                1,
            ),
        ] {
            inject(true);
            for change in 1..=changes {
                max_connections += 1;
                change_policy(&lab, max_connections);
                if change < changes {
                    lab.wait_until(|lab| truth(lab, &cfg).converged, WAIT)
                        .await
                        .unwrap_or_else(|e| panic!("{}: the unacknowledged change: {e}", what(fault)));
                }
            }
            settle(&lab, &cfg, Some(zone), State::Drifted, &what(fault)).await;
            judged(&lab, &cfg, Some(zone), ZoneState::Diverged, &what(fault)).await;
            healed(&lab, &cfg, &what(fault)).await;
        }

        // A zone that cannot be read is unknown, however the rest looks: refused
        // connections, and a peer whose answers are a paging loop or no object at all.
        let looping =
            hostile_server(r#"{"total": 1, "items": [], "next": "/meshcircuitbreakers?size=1000"}"#).await;
        let garbage = hostile_server("{ not an object").await;
        for (fault, unreadable) in [
            (
                "an unreachable zone API",
                unreachable_zone(&cfg, zone, dir.path()),
            ),
            (
                "a zone API whose pages loop",
                zone_at(&cfg, zone, looping, dir.path()),
            ),
            (
                "a zone API answering garbage",
                zone_at(&cfg, zone, garbage, dir.path()),
            ),
        ] {
            // It never becomes readable: a short --timeout ends the wait.
            let verdict = verdict_within(&unreadable, Duration::from_secs(3)).await;
            assert!(!verdict.converged(), "{}: {:#?}", what(fault), verdict.report);
            assert_eq!(
                verdict
                    .unreadable
                    .iter()
                    .map(|u| u.cp.as_str())
                    .collect::<Vec<_>>(),
                [zone],
                "{}",
                what(fault)
            );
            for z in &verdict.report.zones {
                let want = if z.zone == zone {
                    ZoneState::Unknown
                } else {
                    ZoneState::Converged
                };
                assert_eq!(z.state, want, "{}: {}", what(fault), z.zone);
            }
        }
    }

    // The global's KDS goes silent: every zone misses the change.
    lab.global().await.faults().stall(true);
    max_connections += 1;
    change_policy(&lab, max_connections);
    settle(&lab, &cfg, None, State::Drifted, "a silent global").await;
    judged(&lab, &cfg, None, ZoneState::Diverged, "a silent global").await;
    healed(&lab, &cfg, "a silent global").await;

    // A restarted global: every zone reconnects and resyncs; nothing is reported.
    lab.restart_global().await.expect("restart");
    max_connections += 1;
    change_policy(&lab, max_connections);
    healed(&lab, &cfg, "a restarted global").await;

    // An unreadable global: nothing can be judged.
    let mut blind = cfg.clone();
    blind.global.source = SourceConfig::Api {
        url: format!("http://{}", closed_port()),
        token: None,
        token_file: None,
        ca_file: None,
    };
    let verdict = verdict_within(&blind, Duration::from_secs(3)).await;
    assert!(
        !verdict.converged(),
        "an unreadable global: {:#?}",
        verdict.report
    );
    assert!(
        verdict.unreadable.iter().any(|u| u.cp == "global"),
        "{:?}",
        verdict.unreadable
    );
    assert!(
        verdict.report.zones.iter().all(|z| z.state == ZoneState::Unknown),
        "{:#?}",
        verdict.report.zones
    );

    lab.shutdown().await;
}
