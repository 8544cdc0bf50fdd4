//! Each benchmark at a tiny size: the wiring works and what it measures is really seen
//! (the bench fails loudly when a change does not show), so `all` cannot rot unnoticed.

use std::time::Duration;

use bench::{
    e2e::{self, Backend},
    state,
};

const LIMIT: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_at_a_tiny_size_reports_memory_and_scrapes() {
    let f = tokio::time::timeout(LIMIT, state::run_size(1000, 2))
        .await
        .expect("in time")
        .expect("runs");
    assert_eq!(f.copies, 1000);
    assert_eq!((f.gather.len(), f.http.len()), (2, 2));
    assert!(f.rss_after_mib >= f.rss_before_mib);
    assert!(
        f.series > 100 * 5,
        "a series per zone, type and state: {}",
        f.series
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_to_end_sees_each_change_on_metrics() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    for backend in [
        Backend::Kubernetes,
        Backend::Rest {
            poll: Duration::from_millis(100),
        },
    ] {
        let f = tokio::time::timeout(LIMIT, e2e::run(backend, 2, 6, 1))
            .await
            .expect("in time")
            .expect("runs");
        for s in [&f.zone_fault, &f.zone_heal, &f.global_change, &f.global_heal] {
            assert_eq!(s.len(), 1);
        }
    }
}
