//! The REST poller's shortcut: a type whose pages come back byte for byte as in the last
//! read the engine took in is neither parsed nor fed again. What must hold: nothing the
//! engine holds is lost by the skip (no false "missing"), a change on any page of a type
//! is read (no false "converged"), and a page that turns malformed is still refused.
//! A first read, of a control plane the engine holds nothing of, is kept without the
//! check parse and parsed once as it is fed: a page that does not parse then leaves the
//! control plane `unknown`, as a refused read does.

use std::{
    collections::{BTreeSet, HashMap},
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use crate::common::{Z1, copy_in_zone, http_peer, policy, rtype, until};
use kuma_model::{CpRole, Environment, Resource, ResourceType};
use policy_watcher::{
    Engine, Selection, State, Topology, ZoneSpec,
    monitor::{Monitor, MonitorConfig, NoRecorder},
    source::{
        SourceError,
        http::{HttpClient, HttpSettings},
        poll::{PollTarget, poll},
        rest::{KumaApi, Pages},
    },
};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(20);
const EMPTY: &str = r#"{"total":0,"items":[],"next":null}"#;

/// path+query -> body, changed by the test while the server runs; any other path is an
/// empty list.
type Routes = Arc<Mutex<HashMap<String, String>>>;

async fn serve(routes: &Routes) -> SocketAddr {
    let routes = routes.clone();
    let (addr, _) = http_peer::serve(move |_| {
        move |pq: String| {
            let body = routes.lock().unwrap().get(&pq).cloned();
            async move { (200, body.unwrap_or_else(|| EMPTY.to_owned())) }
        }
    })
    .await;
    addr
}

fn set(routes: &Routes, path: &str, body: String) {
    routes.lock().unwrap().insert(path.to_owned(), body);
}

/// `r` as Kuma's REST API lists it.
fn doc(r: &Resource) -> Value {
    json!({"type": r.rtype.name(), "mesh": r.mesh, "name": r.name, "labels": r.labels, "spec": r.spec})
}

fn page(items: &[&Resource], next: Option<&str>) -> String {
    json!({
        "total": items.len(),
        "items": items.iter().map(|r| doc(r)).collect::<Vec<_>>(),
        "next": next,
    })
    .to_string()
}

fn mt() -> ResourceType {
    rtype("MeshTimeout")
}

fn mr() -> ResourceType {
    rtype("MeshRetry")
}

fn timeout(name: &str, seconds: u32) -> Resource {
    policy(
        "MeshTimeout",
        name,
        json!({"targetRef": {"kind": "Mesh"}, "to": [{"targetRef": {"kind": "Mesh"},
               "default": {"connectionTimeout": format!("{seconds}s")}}]}),
    )
}

fn retry(name: &str, attempts: u32) -> Resource {
    policy(
        "MeshRetry",
        name,
        json!({"targetRef": {"kind": "Mesh"}, "to": [{"targetRef": {"kind": "Mesh"},
               "default": {"http": {"numRetries": attempts}}}]}),
    )
}

fn api(addr: SocketAddr) -> KumaApi {
    KumaApi::new(
        &format!("http://{addr}"),
        HttpClient::new(HttpSettings::default()).expect("client"),
    )
    .expect("api")
}

/// What the read hands the engine: (type, name, spec).
fn fed(pages: &Pages) -> BTreeSet<(String, String, String)> {
    let mut out = BTreeSet::new();
    pages
        .feed(&mut |r| {
            out.insert((r.rtype.name().to_owned(), r.name, r.spec.to_string()));
        })
        .expect("checked pages parse");
    out
}

fn entry(r: &Resource) -> (String, String, String) {
    (r.rtype.name().to_owned(), r.name.clone(), r.spec.to_string())
}

async fn read(api: &KumaApi, previous: Option<&Pages>) -> Result<Pages, SourceError> {
    let digests = previous.map(Pages::digests);
    tokio::time::timeout(WAIT, api.read_all(&[mt(), mr()], digests.as_ref()))
        .await
        .expect("no hang")
}

const MT_1: &str = "/meshtimeouts?size=1000";
const MT_2: &str = "/meshtimeouts?offset=1&size=1000";
const MR_1: &str = "/meshretries?size=1000";

/// MeshTimeouts `a` and `b` on two pages, MeshRetry `r` on one, served.
async fn two_types_on_three_pages() -> (Routes, KumaApi, [Resource; 3]) {
    let routes = Routes::default();
    let (a, b, r) = (timeout("a", 1), timeout("b", 2), retry("r", 3));
    set(&routes, MT_1, page(&[&a], Some(MT_2)));
    set(&routes, MT_2, page(&[&b], None));
    set(&routes, MR_1, page(&[&r], None));
    let api = api(serve(&routes).await);
    (routes, api, [a, b, r])
}

#[tokio::test]
async fn a_type_read_as_before_is_neither_parsed_nor_fed() {
    let (routes, api, [a, b, r]) = two_types_on_three_pages().await;

    let first = read(&api, None).await.expect("first read");
    assert!(!first.unchanged());
    assert_eq!(fed(&first), [entry(&a), entry(&b), entry(&r)].into());

    // Byte for byte as before: nothing handed over, and the engine keeps what it holds.
    let second = read(&api, Some(&first)).await.expect("second read");
    assert!(second.unchanged());
    assert!(fed(&second).is_empty());
    assert!(second.holds(&a.key()) && second.holds(&r.key()));

    // The last page of one type changes: that type is read whole again (its first page,
    // held unparsed while it matched, included), the other is not.
    let b2 = timeout("b", 20);
    set(&routes, MT_2, page(&[&b2], None));
    let third = read(&api, Some(&second)).await.expect("third read");
    assert!(!third.unchanged());
    assert!(third.type_unchanged(mr()) && !third.type_unchanged(mt()));
    assert_eq!(fed(&third), [entry(&a), entry(&b2)].into());
    assert!(third.holds(&a.key()) && third.holds(&b2.key()) && third.holds(&r.key()));

    // Compared with the read before, not the first one.
    let fourth = read(&api, Some(&third)).await.expect("fourth read");
    assert!(fourth.unchanged());

    // A deletion: the type's first page changes, and what is gone is no longer held.
    set(&routes, MT_1, page(&[&b2], None));
    let fifth = read(&api, Some(&fourth)).await.expect("fifth read");
    assert_eq!(fed(&fifth), [entry(&b2)].into());
    assert!(!fifth.holds(&a.key()), "a deleted policy must not be kept");
}

#[tokio::test]
async fn a_page_that_turns_malformed_behind_an_unchanged_one_is_refused() {
    let routes = Routes::default();
    let (a, b) = (timeout("a", 1), timeout("b", 2));
    set(&routes, MT_1, page(&[&a], Some(MT_2)));
    set(&routes, MT_2, page(&[&b], None));
    let api = api(serve(&routes).await);
    let first = read(&api, None).await.expect("first read");

    set(
        &routes,
        MT_2,
        r#"{"total":1,"items":[{"type":"MeshTimeout","mesh":7,"name":"b"}],"next":null}"#.into(),
    );
    let err = read(&api, Some(&first)).await.unwrap_err();
    assert!(matches!(err, SourceError::Decode { .. }), "{err}");
    assert!(err.to_string().contains(MT_2), "{err}");
}

/// Counts of `state` for `rtype` in zone-1.
fn count(monitor: &Monitor, rtype: ResourceType, state: State) -> usize {
    let st = monitor.lock();
    st.engine
        .counts()
        .filter(|(z, t, s, _)| *z == Z1 && *t == rtype && *s == state)
        .map(|(.., n)| n)
        .sum()
}

/// Waits for `cp` to be read again twice after now: reads that found nothing new.
async fn two_more_reads(monitor: &Monitor, cp: &CpRole) {
    for n in 1..=2 {
        let before = monitor.lock().sources[cp].last_success;
        until(monitor, &format!("read {n} more of {cp}"), |m| {
            m.lock().sources[cp].last_success > before
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poller_keeps_unchanged_types_and_reads_each_change() {
    let (global, zone) = (Routes::default(), Routes::default());
    let (a, r) = (timeout("a", 1), retry("r", 3));
    set(&global, MT_1, page(&[&a], None));
    set(&global, MR_1, page(&[&r], None));
    // Zone is a proto-based type: its spec's fields sit at the top level.
    set(
        &global,
        "/zones?size=1000",
        json!({"total": 1, "items": [{"type": "Zone", "name": Z1, "enabled": true}], "next": null})
            .to_string(),
    );
    let (a_copy, r_copy) = (copy_in_zone(&a, Z1), copy_in_zone(&r, Z1));
    set(&zone, MT_1, page(&[&a_copy], None));
    set(&zone, MR_1, page(&[&r_copy], None));

    let topology = Topology::new(
        Environment::Universal,
        vec![ZoneSpec::new(Z1, Environment::Universal)],
    );
    let monitor = Arc::new(Monitor::new(
        Engine::new(topology, Selection::new([mt(), mr()], None)),
        MonitorConfig::default(),
        Box::new(NoRecorder),
    ));
    let stop = CancellationToken::new();
    let z1 = CpRole::Zone(Z1.into());
    for (cp, routes) in [(CpRole::Global, &global), (z1.clone(), &zone)] {
        let types = PollTarget::types_for(&cp, [mt(), mr()].into_iter());
        let target = PollTarget::new(cp, api(serve(routes).await), types, Duration::from_millis(50));
        tokio::spawn(poll(target, monitor.clone(), stop.clone().cancelled_owned()));
    }
    until(&monitor, "a first converged read", |m| m.report().converged).await;

    // Reads that find every page as before keep every copy synced.
    two_more_reads(&monitor, &CpRole::Global).await;
    two_more_reads(&monitor, &z1).await;
    assert!(monitor.report().converged);
    assert_eq!(count(&monitor, mt(), State::Synced), 1);
    assert_eq!(count(&monitor, mr(), State::Synced), 1);

    // One type changes on the global: its copy drifts, the other type's stays synced
    // though its pages were not fed again.
    set(&global, MR_1, page(&[&retry("r", 5)], None));
    until(&monitor, "the retry drifted", |m| {
        count(m, mr(), State::Drifted) == 1
    })
    .await;
    assert_eq!(count(&monitor, mt(), State::Synced), 1);

    // KDS catches up in the zone.
    set(&zone, MR_1, page(&[&copy_in_zone(&retry("r", 5), Z1)], None));
    until(&monitor, "converged again", |m| m.report().converged).await;

    // The zone loses a copy of the unchanged type.
    set(&zone, MT_1, EMPTY.to_owned());
    until(&monitor, "the timeout missing", |m| {
        count(m, mt(), State::Missing) == 1
    })
    .await;
    assert_eq!(count(&monitor, mr(), State::Synced), 1);
    stop.cancel();
}

#[tokio::test]
async fn a_first_read_is_kept_unchecked_and_its_digests_serve_the_next() {
    let (routes, api, [a, b, r]) = two_types_on_three_pages().await;
    let first = tokio::time::timeout(WAIT, api.read_first(&[mt(), mr()]))
        .await
        .expect("no hang")
        .expect("first read");
    // No keys learnt: fed to an engine holding anything, it would replace it all.
    assert!(!first.holds(&a.key()));
    assert_eq!(fed(&first), [entry(&a), entry(&b), entry(&r)].into());
    let second = read(&api, Some(&first)).await.expect("second read");
    assert!(second.unchanged(), "the unchecked read's digests are the pages'");

    // A malformed item is not seen until fed.
    set(
        &routes,
        MT_2,
        r#"{"total":1,"items":[{"type":"MeshTimeout","mesh":7,"name":"b"}],"next":null}"#.into(),
    );
    let broken = tokio::time::timeout(WAIT, api.read_first(&[mt()]))
        .await
        .expect("no hang")
        .expect("kept unchecked");
    let err = broken.feed(&mut drop).unwrap_err();
    assert!(matches!(err, SourceError::Decode { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_read_that_does_not_parse_leaves_the_zone_unknown() {
    let (global, zone) = (Routes::default(), Routes::default());
    let (a, b) = (timeout("a", 1), timeout("b", 2));
    set(&global, MT_1, page(&[&a, &b], None));
    set(
        &global,
        "/zones?size=1000",
        json!({"total": 1, "items": [{"type": "Zone", "name": Z1, "enabled": true}], "next": null})
            .to_string(),
    );
    // The copy, and an item that is not a resource.
    let copy = doc(&copy_in_zone(&a, Z1));
    set(
        &zone,
        MT_1,
        json!({"total": 2, "items": [copy, {"type": "MeshTimeout", "mesh": 7, "name": "x"}], "next": null})
            .to_string(),
    );
    let topology = Topology::new(
        Environment::Universal,
        vec![ZoneSpec::new(Z1, Environment::Universal)],
    );
    let monitor = Arc::new(Monitor::new(
        Engine::new(topology, Selection::new([mt()], None)),
        MonitorConfig::default(),
        Box::new(NoRecorder),
    ));
    let stop = CancellationToken::new();
    let z1 = CpRole::Zone(Z1.into());
    // The global first: the zone's refused read then opens the zone alone.
    for (cp, routes) in [(CpRole::Global, &global), (z1.clone(), &zone)] {
        let types = PollTarget::types_for(&cp, [mt()].into_iter());
        let target = PollTarget::new(
            cp.clone(),
            api(serve(routes).await),
            types,
            Duration::from_millis(50),
        );
        tokio::spawn(poll(target, monitor.clone(), stop.clone().cancelled_owned()));
        until(&monitor, &format!("a read of {cp}"), |m| {
            let st = m.lock();
            st.sources[&cp].synced_once || !st.sources[&cp].errors.is_empty()
        })
        .await;
    }
    let decode_errors = |m: &Monitor| m.lock().sources[&z1].errors.get("decode").copied().unwrap_or(0);
    until(&monitor, "two refused reads of the zone", |m| {
        decode_errors(m) >= 2
    })
    .await;
    assert!(!monitor.report().converged);
    assert_eq!(monitor.lock().zone_state(Z1), policy_watcher::ZoneState::Unknown);

    // Read whole at last, without b's copy: b is missing, though the refused read never
    // held it either (what the refused read opened is judged too).
    set(&zone, MT_1, page(&[&copy_in_zone(&a, Z1)], None));
    until(&monitor, "the zone read", |m| {
        m.lock().zone_state(Z1) != policy_watcher::ZoneState::Unknown
    })
    .await;
    assert_eq!(count(&monitor, mt(), State::Synced), 1);
    assert_eq!(count(&monitor, mt(), State::Missing), 1);
    assert!(!monitor.report().converged);

    set(
        &zone,
        MT_1,
        page(&[&copy_in_zone(&a, Z1), &copy_in_zone(&b, Z1)], None),
    );
    until(&monitor, "converged once the zone holds both", |m| {
        m.report().converged
    })
    .await;
    assert_eq!(count(&monitor, mt(), State::Synced), 2);
    stop.cancel();
}
