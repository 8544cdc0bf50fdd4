//! The REST source and its poller against a hostile control plane: paging loops, a
//! `total` without end, `next` links to another host, endless and oversized answers.
//! Each must be an error of its own class, the token must never leave the configured
//! address, and a zone served that way must never be `converged`.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use crate::common::{
    http_peer::{self, Log},
    until,
};
use kuma_model::{CpRole, Environment, ResourceType};
use policy_watcher::{
    Engine, Selection, Topology, ZoneSpec, ZoneState,
    monitor::{Monitor, MonitorConfig, NoRecorder},
    source::{
        http::{HttpClient, HttpSettings},
        poll::{PollTarget, poll},
        rest::{KumaApi, ReadLimits},
    },
};
use tokio_util::sync::CancellationToken;

/// Bounds no test should need to wait for.
const WAIT: Duration = Duration::from_secs(20);
const TOKEN: &str = "zone-token";

/// How the server answers every list request.
#[derive(Debug, Clone, PartialEq)]
enum Mode {
    /// An empty, complete list.
    Healthy,
    /// One item, and `next` back to the same URL.
    Loop,
    /// `total` of 10^12 and a new `next` on every page.
    EndlessTotal,
    /// No `total`, a new `next` on every page.
    EndlessPages,
    /// A scheme-less `next` that, appended to the base, names another authority.
    UserinfoNext(SocketAddr),
    /// An absolute `next` on another host: only its path may be used, on our address.
    AbsoluteNext(SocketAddr),
    /// Every page takes a while, and there is always another.
    SlowEndless,
    /// A body over the client's cap.
    Huge,
}

struct Peer {
    addr: SocketAddr,
    mode: Arc<Mutex<Mode>>,
    /// Every request's path+query and Authorization header.
    seen: Log,
}

fn item(name: &str) -> String {
    format!(r#"{{"type":"MeshTimeout","mesh":"default","name":"{name}","spec":{{}}}}"#)
}

fn page(total: Option<u64>, items: &[String], next: Option<String>) -> String {
    let total = total.map_or("null".to_owned(), |t| t.to_string());
    let next = next.map_or("null".to_owned(), |n| format!("{n:?}"));
    format!(
        r#"{{"total":{total},"items":[{}],"next":{next}}}"#,
        items.join(",")
    )
}

/// The offset a `next` link of ours carries, 0 on a first page.
fn offset(pq: &str) -> u64 {
    pq.split(['?', '&'])
        .find_map(|kv| kv.strip_prefix("offset="))
        .and_then(|o| o.parse().ok())
        .unwrap_or(0)
}

fn answer(mode: &Mode, addr: SocketAddr, pq: &str) -> String {
    let path = pq.split('?').next().unwrap_or("/");
    let at = offset(pq);
    let further = |at: u64| Some(format!("http://{addr}{path}?size=1000&offset={}", at + 1));
    match mode {
        Mode::Healthy => page(Some(0), &[], None),
        Mode::Loop => page(Some(1), &[item("a")], Some(format!("http://{addr}{pq}"))),
        Mode::EndlessTotal => page(Some(1_000_000_000_000), &[item(&format!("a{at}"))], further(at)),
        Mode::EndlessPages | Mode::SlowEndless => page(None, &[item(&format!("a{at}"))], further(at)),
        Mode::UserinfoNext(other) if at == 0 => page(
            Some(2),
            &[item("a")],
            Some(format!("@{other}{path}?size=1000&offset=1")),
        ),
        Mode::AbsoluteNext(other) if at == 0 => page(
            Some(2),
            &[item("a")],
            Some(format!("http://{other}{path}?size=1000&offset=1")),
        ),
        Mode::UserinfoNext(_) | Mode::AbsoluteNext(_) => page(Some(2), &[item("b")], None),
        Mode::Huge => format!("{}{}", " ".repeat(4096), page(Some(0), &[], None)),
    }
}

async fn peer(mode: Mode) -> Peer {
    let mode = Arc::new(Mutex::new(mode));
    let m = mode.clone();
    let (addr, seen) = http_peer::serve(move |addr| {
        move |pq: String| {
            let mode = m.lock().unwrap().clone();
            async move {
                if mode == Mode::SlowEndless {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                (200, answer(&mode, addr, &pq))
            }
        }
    })
    .await;
    Peer { addr, mode, seen }
}

fn mt() -> ResourceType {
    ResourceType::from_name("MeshTimeout").unwrap()
}

/// Limits small enough for a test to reach, far above what a healthy answer here needs.
const LIMITS: ReadLimits = ReadLimits {
    max_pages: 50,
    max_items: 200,
    max_bytes: 1 << 20,
};

fn api(addr: SocketAddr) -> KumaApi {
    let http = HttpClient::new(HttpSettings {
        token: Some(TOKEN.into()),
        max_body_bytes: Some(1024),
        ..Default::default()
    })
    .expect("client");
    KumaApi::new(&format!("http://{addr}"), http)
        .expect("api")
        .with_limits(LIMITS)
}

#[tokio::test]
async fn every_hostile_answer_is_an_error_of_its_own_class() {
    let other = peer(Mode::Healthy).await;
    let cases = [
        (Mode::Loop, "paging", "the pages loop"),
        (Mode::EndlessTotal, "too_large", "`total` is 1000000000000"),
        (Mode::EndlessPages, "too_large", "more than 50 pages"),
        (
            Mode::UserinfoNext(other.addr),
            "paging",
            "neither an absolute URL nor a path",
        ),
        (Mode::Huge, "too_large", "over 1024 bytes"),
    ];
    for (mode, class, says) in cases {
        let hostile = peer(mode.clone()).await;
        let err = tokio::time::timeout(WAIT, api(hostile.addr).list(mt()))
            .await
            .expect("a hostile read ends")
            .expect_err("a hostile read fails");
        assert_eq!(err.metric_label(), class, "{mode:?}: {err}");
        assert!(err.to_string().contains(says), "{mode:?}: {err}");
        assert!(!err.is_retryable(), "{mode:?}: the same read meets it again");
    }
    // Nothing, and no token, ever went to the other host.
    assert!(
        other.seen.lock().unwrap().is_empty(),
        "{:?}",
        other.seen.lock().unwrap()
    );
}

#[tokio::test]
async fn an_absolute_next_on_another_host_is_read_on_ours() {
    let other = peer(Mode::Healthy).await;
    let ours = peer(Mode::AbsoluteNext(other.addr)).await;
    let read = tokio::time::timeout(WAIT, api(ours.addr).list(mt()))
        .await
        .expect("ends")
        .expect("read");
    assert_eq!(read.len(), 2);
    assert!(other.seen.lock().unwrap().is_empty());
    let seen = ours.seen.lock().unwrap();
    assert_eq!(seen[1].0, "/meshtimeouts?size=1000&offset=1");
    assert_eq!(seen[1].1.as_deref(), Some("Bearer zone-token"));
}

fn insight(zone: &str) -> String {
    format!(
        r#"{{"type":"ZoneInsight","name":"{zone}","subscriptions":[{{"id":"s","connectTime":"2026-11-02T09:00:00Z"}}]}}"#
    )
}

/// More zones than Kuma puts on a page: every one has its insight (a zone left on a
/// second page would read as never connected), and the insights' paging is held to
/// the same bounds as any list.
#[tokio::test]
async fn zone_insights_come_from_every_page_within_the_read_bounds() {
    let (addr, seen) = http_peer::serve(|addr| {
        move |pq: String| {
            let at = offset(&pq);
            let (zones, next) = if at == 0 {
                (
                    0..1000,
                    Some(format!("http://{addr}/zone-insights?size=1000&offset=1000")),
                )
            } else {
                (1000..1500, None)
            };
            let items: Vec<String> = zones.map(|i| insight(&format!("zone-{i}"))).collect();
            async move { (200, page(Some(1500), &items, next)) }
        }
    })
    .await;
    let http = HttpClient::new(HttpSettings {
        token: Some(TOKEN.into()),
        ..Default::default()
    })
    .expect("client");
    let insights = tokio::time::timeout(
        WAIT,
        KumaApi::new(&format!("http://{addr}"), http)
            .expect("api")
            .zone_insights(),
    )
    .await
    .expect("ends")
    .expect("read");
    assert_eq!(insights.len(), 1500);
    assert!(insights["zone-1499"].online);
    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert_eq!(seen[1].0, "/zone-insights?size=1000&offset=1000");
    }

    for (mode, says) in [
        (Mode::Loop, "the pages loop"),
        (Mode::EndlessPages, "more than 50 pages"),
    ] {
        let hostile = peer(mode.clone()).await;
        let err = tokio::time::timeout(WAIT, api(hostile.addr).zone_insights())
            .await
            .expect("a hostile read ends")
            .expect_err("a hostile read fails");
        assert!(err.to_string().contains(says), "{mode:?}: {err}");
    }
}

/// Waits until `check` holds of the monitor, looking at every change.
fn zone_errors(monitor: &Monitor, class: &str) -> u64 {
    let st = monitor.lock();
    st.sources[&CpRole::Zone("zone-1".into())]
        .errors
        .get(class)
        .copied()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zone_served_by_a_hostile_peer_is_never_converged() {
    let global = peer(Mode::Healthy).await;
    let zone = peer(Mode::Healthy).await;
    let other = peer(Mode::Healthy).await;
    let topology = Topology::new(
        Environment::Universal,
        vec![ZoneSpec::new("zone-1", Environment::Universal)],
    );
    let monitor = Arc::new(Monitor::new(
        Engine::new(topology, Selection::new([mt()], None)),
        MonitorConfig::default(),
        Box::new(NoRecorder),
    ));
    let stop = CancellationToken::new();
    for (cp, addr) in [
        (CpRole::Global, global.addr),
        (CpRole::Zone("zone-1".into()), zone.addr),
    ] {
        let types = PollTarget::types_for(&cp, [mt()].into_iter());
        let mut target = PollTarget::new(cp, api(addr), types, Duration::from_millis(100));
        target.read_deadline = Duration::from_secs(1);
        tokio::spawn(poll(target, monitor.clone(), stop.clone().cancelled_owned()));
    }
    let converged = |m: &Monitor| m.report().converged;
    until(&monitor, "a first converged read", converged).await;

    let cases = [
        (Mode::Loop, "paging"),
        (Mode::EndlessTotal, "too_large"),
        (Mode::EndlessPages, "too_large"),
        (Mode::UserinfoNext(other.addr), "paging"),
        (Mode::Huge, "too_large"),
        (Mode::SlowEndless, "timeout"),
    ];
    for (mode, class) in cases {
        let before = zone_errors(&monitor, class);
        *zone.mode.lock().unwrap() = mode.clone();
        // Two failures in a row: the zone stays unknown read after read, not once.
        for n in 1..=2 {
            until(&monitor, &format!("{mode:?} failure {n}"), |m| {
                zone_errors(m, class) >= before + n
            })
            .await;
            let report = monitor.report();
            assert!(!report.converged, "{mode:?}: {report:?}");
            assert_eq!(
                monitor.lock().zone_state("zone-1"),
                ZoneState::Unknown,
                "{mode:?}"
            );
        }
        *zone.mode.lock().unwrap() = Mode::Healthy;
        until(&monitor, &format!("recovery from {mode:?}"), converged).await;
    }
    assert!(other.seen.lock().unwrap().is_empty());
    stop.cancel();
}

/// A Kubernetes list page as an API server writes it, with a `continue` token when
/// `next` is given.
fn kube_list(items: &[String], next: Option<u64>) -> String {
    let more = next.map_or(String::new(), |n| format!(r#","continue":"c{n}""#));
    format!(
        r#"{{"apiVersion":"kuma.io/v1alpha1","kind":"MeshTimeoutList","metadata":{{"resourceVersion":"1"{more}}},"items":[{}]}}"#,
        items.join(",")
    )
}

fn kube_item(name: &str) -> String {
    format!(
        r#"{{"apiVersion":"kuma.io/v1alpha1","kind":"MeshTimeout","metadata":{{"name":"{name}","namespace":"kuma-system","resourceVersion":"1","labels":{{"kuma.io/mesh":"default"}}}},"spec":{{"targetRef":{{"kind":"Mesh"}}}}}}"#
    )
}

/// A Kubernetes API whose lists never end (every page's `continue` leads to another):
/// the watch source refuses the list past its bound instead of growing without end,
/// the zone is `unknown` meanwhile (never `converged` on what it held), the watchers
/// start again and list afresh, and a whole list brings the zone back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kubernetes_zone_whose_lists_never_end_is_unknown_until_they_end() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let global = peer(Mode::Healthy).await;
    let endless = Arc::new(AtomicBool::new(true));
    let pages = endless.clone();
    let (zone_addr, seen) = http_peer::serve(move |_| {
        move |pq: String| {
            let endless = pages.load(Ordering::SeqCst);
            async move {
                let (path, query) = pq.split_once('?').unwrap_or((&pq, ""));
                if path != "/apis/kuma.io/v1alpha1/meshtimeouts" {
                    return (404, r#"{"kind":"Status","code":404}"#.to_owned());
                }
                if query.contains("watch=true") || query.contains("watch=1") {
                    // A watch that reports nothing, for a while.
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    return (200, String::new());
                }
                let at: u64 = query
                    .split('&')
                    .find_map(|kv| kv.strip_prefix("continue=c"))
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                if endless {
                    (200, kube_list(&[kube_item(&format!("a{at}"))], Some(at + 1)))
                } else {
                    (200, kube_list(&[], None))
                }
            }
        }
    })
    .await;
    let kubeconfig = std::env::temp_dir().join(format!("hostile-kube-{}.kubeconfig", std::process::id()));
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: z\n  cluster:\n    server: http://{zone_addr}\nusers:\n- name: z\n  user: {{}}\ncontexts:\n- name: z\n  context:\n    cluster: z\n    user: z\ncurrent-context: z\n"
        ),
    )
    .unwrap();
    let client = policy_watcher::source::kube::client(Some(&kubeconfig), None)
        .await
        .expect("client");
    let _ = std::fs::remove_file(&kubeconfig);

    let topology = Topology::new(
        Environment::Universal,
        vec![ZoneSpec::new(
            "zone-1",
            Environment::Kubernetes {
                system_namespace: "kuma-system".into(),
            },
        )],
    );
    let monitor = Arc::new(Monitor::new(
        Engine::new(topology, Selection::new([mt()], None)),
        MonitorConfig::default(),
        Box::new(NoRecorder),
    ));
    let stop = CancellationToken::new();
    let types = PollTarget::types_for(&CpRole::Global, [mt()].into_iter());
    let target = PollTarget::new(
        CpRole::Global,
        api(global.addr),
        types,
        Duration::from_millis(100),
    );
    tokio::spawn(poll(target, monitor.clone(), stop.clone().cancelled_owned()));
    tokio::spawn(policy_watcher::source::kube::watch_within(
        CpRole::Zone("zone-1".into()),
        client,
        vec![mt()],
        monitor.clone(),
        20,
        policy_watcher::source::first_reads::FirstReads::at_most(1),
        stop.clone().cancelled_owned(),
    ));

    // Refused twice: the watchers did start again, and the zone stayed unknown.
    until(&monitor, "the endless list refused twice", |m| {
        zone_errors(m, "too_large") >= 2
    })
    .await;
    assert!(!monitor.report().converged);
    assert_eq!(monitor.lock().zone_state("zone-1"), ZoneState::Unknown);
    let pages_read = seen.lock().unwrap().len();
    assert!(pages_read > 40, "two lists of over 20 pages each: {pages_read}");

    endless.store(false, Ordering::SeqCst);
    until(&monitor, "a whole list read", |m| m.report().converged).await;
    stop.cancel();
}
