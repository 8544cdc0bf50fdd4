//! From a change on a control plane to the state on `/metrics`: `serve` started as in
//! production (config, sources, monitor, collectors, HTTP server) over kuma-sim's
//! control planes, with `/metrics` scraped over loopback until the change shows.
//!
//! Two changes: a fault in a zone (a copy deleted there: `missing`) and a change on the
//! global (a policy edited there while zones keep the old copy: `drifted`), then each
//! undone (the time to heal). Watch backends are kube-rs watchers against kuma-sim's
//! Kubernetes API; the REST backend polls kuma-sim's Kuma REST API.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::{Context, bail};
use kuma_model::Environment;
use kuma_sim::{GlobalStore, k8s_api, rest::RestApi};
use kuma_sync::{
    config::{CpConfig, ServeConfig, SourceConfig},
    serve,
};
use tokio::time::Instant;

use crate::{fixtures::Fixture, measure::Samples, scrape_http};

/// A sample that has not shown after this is a failure, not a figure.
const WAIT: Duration = Duration::from_secs(60);
/// Between two scrapes while waiting: small against the latencies measured, large enough
/// not to turn the bench into a scrape load test.
const SCRAPE_EVERY: Duration = Duration::from_millis(5);

#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Kubernetes,
    Rest { poll: Duration },
}

impl Backend {
    pub fn label(&self) -> String {
        match self {
            Backend::Kubernetes => "Kubernetes watch".into(),
            Backend::Rest { poll } => format!("REST, poll every {}", crate::measure::fmt(*poll)),
        }
    }
}

#[derive(Debug)]
pub struct E2eFigures {
    pub backend: Backend,
    pub zones: usize,
    pub policies: usize,
    pub startup: Duration,
    pub zone_fault: Samples,
    pub zone_heal: Samples,
    pub global_change: Samples,
    pub global_heal: Samples,
}

/// Servers kept alive for the run; dropped (stopped) at its end.
enum Servers {
    Kube(Vec<k8s_api::K8sApiHandle>, tempfile::TempDir),
    Rest(Vec<kuma_sim::rest::RestHandle>),
}

pub async fn run(
    backend: Backend,
    zones: usize,
    policies: usize,
    samples: usize,
) -> anyhow::Result<E2eFigures> {
    let env = match backend {
        Backend::Kubernetes => Environment::kubernetes(),
        Backend::Rest { .. } => Environment::Universal,
    };
    let fixture = Fixture {
        zones,
        policies,
        global: env.clone(),
        zone_env: Some(env.clone()),
        faults: false,
    };
    let global = Arc::new(GlobalStore::new(env.clone()));
    for r in Fixture::meshes().into_iter().chain(fixture.global_policies()) {
        global.upsert(r);
    }
    let zone_stores: Vec<Arc<GlobalStore>> = (0..zones)
        .map(|z| {
            let s = Arc::new(GlobalStore::new(env.clone()));
            for r in Fixture::meshes().into_iter().chain(fixture.zone_copies(z)) {
                s.upsert(r);
            }
            s
        })
        .collect();
    let all: Vec<Arc<GlobalStore>> = std::iter::once(global.clone())
        .chain(zone_stores.iter().cloned())
        .collect();

    let (servers, cps) = match backend {
        Backend::Kubernetes => {
            let dir = tempfile::tempdir()?;
            let mut handles = Vec::new();
            let mut cps = Vec::new();
            for (n, store) in all.iter().enumerate() {
                let h = k8s_api::start_k8s_api(
                    store.clone(),
                    "127.0.0.1:0".parse()?,
                    k8s_api::K8sApiConfig::default(),
                )
                .await?;
                let path = kubeconfig(dir.path(), &format!("cp-{n}"), h.addr())?;
                cps.push(CpConfig {
                    source: SourceConfig::Kubernetes {
                        kubeconfig: Some(path),
                        context: None,
                    },
                    environment: env.clone(),
                });
                handles.push(h);
            }
            (Servers::Kube(handles, dir), cps)
        }
        Backend::Rest { .. } => {
            let mut handles = Vec::new();
            let mut cps = Vec::new();
            for (n, store) in all.iter().enumerate() {
                let api = if n == 0 {
                    RestApi::global(store.clone())
                } else {
                    RestApi::new(store.clone())
                };
                let h = api.start("127.0.0.1:0".parse()?).await?;
                cps.push(CpConfig {
                    source: SourceConfig::Api {
                        url: h.url(),
                        token: None,
                        token_file: None,
                        ca_file: None,
                    },
                    environment: env.clone(),
                });
                handles.push(h);
            }
            (Servers::Rest(handles), cps)
        }
    };
    let mut cps = cps.into_iter();
    let global_cp = cps.next().context("the global's source")?;
    let cfg = ServeConfig {
        listen: "127.0.0.1:0".parse()?,
        global: global_cp,
        zones: cps.enumerate().map(|(z, c)| (Fixture::zone_name(z), c)).collect(),
        kds: None,
        types: crate::fixtures::types(),
        meshes: None,
        poll_interval: match backend {
            Backend::Rest { poll } => poll,
            // Only used to retry a source that failed to start.
            Backend::Kubernetes => Duration::from_secs(1),
        },
        stall_threshold: Duration::from_secs(60),
        tls: None,
        basic_auth: None,
        kuma_version: Some(kuma_model::KumaLine::V2),
        shards: None,
        leader_election: None,
        canary: None,
    };
    let started = Instant::now();
    let running = serve::start(cfg).await?;
    let addr = running.local_addr.context("serving HTTP")?;
    let converged = async {
        let mut rx = running.monitor.subscribe();
        while !(running.monitor.ready() && running.monitor.report().converged) {
            rx.changed().await?;
        }
        Ok::<_, anyhow::Error>(())
    };
    tokio::time::timeout(Duration::from_secs(180), converged)
        .await
        .context("serve did not see the fixture converge")??;
    let startup = started.elapsed();

    let mut f = E2eFigures {
        backend,
        zones,
        policies,
        startup,
        zone_fault: Samples::default(),
        zone_heal: Samples::default(),
        global_change: Samples::default(),
        global_heal: Samples::default(),
    };
    for k in 0..samples {
        let z = (crate::fixtures::mix(k as u64, 21) % zones as u64) as usize;
        let i = (crate::fixtures::mix(k as u64, 22) % policies as u64) as usize;
        let copy = fixture.copy(i, z, 0);
        let series = |state: &str| {
            format!(
                "kuma_sync_resources{{state=\"{state}\",type=\"{}\",zone=\"{}\"}}",
                copy.rtype.name(),
                Fixture::zone_name(z)
            )
        };
        // Changes land at a random phase of the poll cycle, as real ones do; without this
        // each would follow the last heal by one poll and wait a whole interval.
        let phase = match backend {
            Backend::Rest { poll } => poll,
            Backend::Kubernetes => Duration::from_millis(20),
        };
        let jitter = |salt: u64| phase.mul_f64((crate::fixtures::mix(k as u64, salt) % 1000) as f64 / 1000.0);
        let missing = series("missing");
        let drifted = series("drifted");

        tokio::time::sleep(jitter(23)).await;
        let at = Instant::now();
        zone_stores[z].delete(&copy.key());
        f.zone_fault
            .push(until_sample(addr, &missing, |v| v >= 1.0, at).await?);
        let at = Instant::now();
        zone_stores[z].upsert(copy.clone());
        f.zone_heal
            .push(until_sample(addr, &missing, |v| v == 0.0, at).await?);

        tokio::time::sleep(jitter(24)).await;
        let at = Instant::now();
        global.upsert(fixture.global_policy(i, 1));
        f.global_change
            .push(until_sample(addr, &drifted, |v| v >= 1.0, at).await?);
        let at = Instant::now();
        global.upsert(fixture.global_policy(i, 0));
        f.global_heal
            .push(until_sample(addr, &drifted, |v| v == 0.0, at).await?);
    }
    running.stop().await;
    match servers {
        Servers::Kube(handles, _dir) => {
            for h in handles {
                h.shutdown().await;
            }
        }
        Servers::Rest(handles) => {
            for h in handles {
                h.shutdown().await;
            }
        }
    }
    Ok(f)
}

/// Scrapes until `series` satisfies `ok`; returns the time since `since`.
async fn until_sample(
    addr: SocketAddr,
    series: &str,
    ok: impl Fn(f64) -> bool,
    since: Instant,
) -> anyhow::Result<Duration> {
    loop {
        let body = scrape_http::get(addr, "/metrics").await?;
        if scrape_http::sample(&body, series).is_some_and(&ok) {
            return Ok(since.elapsed());
        }
        if since.elapsed() > WAIT {
            bail!("{series} did not change within {WAIT:?}");
        }
        tokio::time::sleep(SCRAPE_EVERY).await;
    }
}

/// A kubeconfig for kuma-sim's Kubernetes API at `addr` (plain HTTP, no credentials), written
/// into `dir` as `name.kubeconfig`.
pub fn kubeconfig(dir: &std::path::Path, name: &str, addr: SocketAddr) -> anyhow::Result<std::path::PathBuf> {
    let path = dir.join(format!("{name}.kubeconfig"));
    std::fs::write(&path, k8s_api::kubeconfig(name, &format!("http://{addr}")))?;
    Ok(path)
}
