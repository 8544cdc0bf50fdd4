//! Shared fixtures: a simulated global on loopback, a probe running against it, and waits
//! that end on the awaited state (or fail after a bound) instead of sleeping.

#![allow(dead_code)] // each test binary uses a different subset

use std::{
    path::PathBuf,
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use kds_probe::{Probe, ProbeConfig, View, config::BackoffSettings, metrics::Metrics};
pub use kuma_model::fixtures::{mcb, mtp, rtype, timeout};
use kuma_model::{Environment, Resource, resource::wire_name_global_to_zone};
use kuma_sim::KdsHandle;
use tokio::{sync::oneshot, task::JoinHandle};

/// Upper bound on any wait in these tests; loopback traffic takes milliseconds.
pub const WAIT: Duration = Duration::from_secs(10);

/// The delta key a zone sees for a resource created on a universal global.
pub fn wire_key(r: &Resource) -> String {
    format!(
        "{}.{}",
        wire_name_global_to_zone(r, &Environment::Universal),
        r.mesh_or_empty()
    )
}

pub async fn sim(tls: bool, seed: &[Resource]) -> KdsHandle {
    let (_, handle) = kuma_sim::start_seeded_global(tls, seed.iter().cloned())
        .await
        .expect("sim starts");
    handle
}

/// A file removed when dropped.
pub struct TempFile(pub PathBuf);

impl TempFile {
    pub fn with(contents: &str) -> Self {
        static N: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "kds-probe-test-{}-{}.pem",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, contents).expect("temp file");
        Self(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A config for `sim` with fast backoff; `ca` is the CA file for TLS sims (else skip-verify).
pub fn config(sim: &KdsHandle, types: &[&str], ca: Option<&TempFile>) -> ProbeConfig {
    let mut c = ProbeConfig::new(&sim.url()).expect("sim url parses");
    if sim.ca_pem().is_some() {
        match ca {
            Some(f) => c.tls.ca_file = Some(f.0.clone()),
            None => c.tls.skip_verify = true,
        }
    }
    c.types = types.iter().map(|t| rtype(t)).collect();
    c.backoff = BackoffSettings {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(200),
    };
    c.connect_timeout = Duration::from_secs(5);
    c
}

/// A probe running in a task.
pub struct Running {
    pub view: View,
    pub metrics: Metrics,
    pub registry: prometheus::Registry,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<kds_probe::Result<()>>,
}

pub fn spawn(config: ProbeConfig) -> Running {
    let registry = prometheus::Registry::new();
    let probe = Probe::new(config, &registry).expect("valid probe config");
    let view = probe.view();
    let metrics = probe.metrics().clone();
    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(async move {
        probe
            .run(async {
                let _ = stopped.await;
            })
            .await
    });
    Running {
        view,
        metrics,
        registry,
        stop: Some(stop),
        task,
    }
}

impl Running {
    /// Waits until `cond` holds on the view.
    pub async fn until(&self, what: &str, cond: impl Fn(&View) -> bool) {
        let mut version = self.view.watch_version();
        let wait = async {
            while !cond(&self.view) {
                version.changed().await.expect("the view outlives the wait");
            }
        };
        if tokio::time::timeout(WAIT, wait).await.is_err() {
            panic!("timed out waiting for {what}; view: {:#?}", self.view.snapshot());
        }
    }

    pub fn keys(&self, t: &str) -> Vec<String> {
        self.view.entries(rtype(t)).into_keys().collect()
    }

    /// The probe's own end: a fatal error, within the wait bound.
    pub async fn finished(self) -> kds_probe::Result<()> {
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("probe stops by itself")
            .expect("probe task")
    }

    pub async fn stop(mut self) -> kds_probe::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.finished().await
    }
}
