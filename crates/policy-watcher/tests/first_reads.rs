//! First reads wait for a place (`source::first_reads`): with one place, a second zone is
//! not asked for anything until the first zone's read has been taken in, so the two are
//! never held at once.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use crate::common::{http_peer, rtype, until};
use kuma_model::{CpRole, Environment};
use policy_watcher::{
    Engine, Selection, Topology, ZoneSpec,
    monitor::{Monitor, MonitorConfig, NoRecorder},
    source::{
        first_reads::FirstReads,
        http::{HttpClient, HttpSettings},
        poll::{PollTarget, poll},
        rest::KumaApi,
    },
};
use tokio_util::sync::CancellationToken;

const EMPTY: &str = r#"{"total":0,"items":[],"next":null}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_first_read_waits_until_the_first_is_taken_in() {
    let order: Arc<Mutex<Vec<&'static str>>> = Arc::default();
    let (release, released) = tokio::sync::watch::channel(false);
    // Zone a answers once released; zone b at once. Each notes when it answers.
    let (a, _) = {
        let (order, released) = (order.clone(), released.clone());
        http_peer::serve(move |_| {
            move |_pq: String| {
                let (order, mut released) = (order.clone(), released.clone());
                async move {
                    let _ = released.wait_for(|r| *r).await;
                    order.lock().unwrap().push("a answered");
                    (200, EMPTY.to_owned())
                }
            }
        })
        .await
    };
    let (b, _) = {
        let order = order.clone();
        http_peer::serve(move |_| {
            move |_pq: String| {
                let order = order.clone();
                async move {
                    order.lock().unwrap().push("b asked");
                    (200, EMPTY.to_owned())
                }
            }
        })
        .await
    };
    let topology = Topology::new(
        Environment::Universal,
        vec![
            ZoneSpec::new("a", Environment::Universal),
            ZoneSpec::new("b", Environment::Universal),
        ],
    );
    let monitor = Arc::new(Monitor::new(
        Engine::new(topology, Selection::new([rtype("MeshTimeout")], None)),
        MonitorConfig::default(),
        Box::new(NoRecorder),
    ));
    let gate = FirstReads::at_most(1);
    let stop = CancellationToken::new();
    let start = |zone: &str, addr| {
        let api = KumaApi::new(
            &format!("http://{addr}"),
            HttpClient::new(HttpSettings::default()).expect("client"),
        )
        .expect("api");
        let target = PollTarget::new(
            CpRole::Zone(zone.into()),
            api,
            vec![rtype("MeshTimeout")],
            Duration::from_millis(50),
        )
        .with_first_reads(gate.clone());
        tokio::spawn(poll(target, monitor.clone(), stop.clone().cancelled_owned()));
    };
    start("a", a);
    // a holds the place once its server has been asked (it waits there, unanswered).
    let place = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            // Taken by a's poller: nothing else could hold it.
            if gate.try_enter().is_none() {
                return;
            }
            tokio::task::yield_now().await;
        }
    });
    place.await.expect("a's first read takes the place");
    start("b", b);
    // Time for b to ask, were it not waiting: a broken bound fails here, a working one
    // passes whatever the wait.
    tokio::time::sleep(Duration::from_millis(300)).await;
    release.send_replace(true);
    let b_read = |m: &Monitor| m.lock().sources[&CpRole::Zone("b".into())].synced_once;
    until(&monitor, "b's first read", b_read).await;
    let order = order.lock().unwrap().clone();
    assert_eq!(order.first(), Some(&"a answered"), "{order:?}");
    assert!(order.contains(&"b asked"), "{order:?}");
    stop.cancel();
}
