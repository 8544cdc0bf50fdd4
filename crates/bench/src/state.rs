//! Memory and scrape at one size: a [`Monitor`] built as `serve` builds it, fed whole
//! snapshots (the global's policies, then each zone's copies) as its sources feed it; then
//! the `/metrics` collectors timed in-process and through the real HTTP server.
//!
//! Run one size per process ([`run_size`] from a child), so a size's RSS is not inflated by
//! what an earlier size left in the allocator.

use std::{sync::Arc, time::Duration};

use anyhow::{Context, ensure};
use jiff::Timestamp;
use kuma_model::{CpRole, Environment};
use kuma_sync::{
    collectors::{Exposition, events::EventMetrics},
    server::{self, App},
};
use policy_watcher::{
    Engine, Selection,
    monitor::{Monitor, MonitorConfig},
};
use prometheus::Registry;
use serde::{Deserialize, Serialize};
use tokio::{net::TcpListener, time::Instant};
use tokio_util::sync::CancellationToken;

use crate::{
    fixtures::Fixture,
    measure::{Samples, mib, rss_kib, settled_rss_kib},
    scrape_http,
};

pub const ZONES: usize = 100;

/// One size's figures, passed from the child process as one JSON line.
#[derive(Debug, Serialize, Deserialize)]
pub struct SizeFigures {
    pub copies: usize,
    pub policies: usize,
    pub load_seconds: f64,
    pub rss_before_mib: f64,
    pub rss_after_mib: f64,
    /// RSS 2 s after the last snapshot.
    pub rss_settled_mib: f64,
    pub hwm_mib: f64,
    pub series: usize,
    pub body_bytes: usize,
    /// In-process `gather()` + text encoding, seconds.
    pub gather: Vec<f64>,
    /// GET /metrics over loopback, seconds.
    pub http: Vec<f64>,
    /// GET /metrics right after a zone's copy changed (the settled families are encoded
    /// again), seconds.
    pub http_after_change: Vec<f64>,
}

impl SizeFigures {
    pub fn gather_samples(&self) -> Samples {
        to_samples(&self.gather)
    }

    pub fn http_samples(&self) -> Samples {
        to_samples(&self.http)
    }

    pub fn http_after_change_samples(&self) -> Samples {
        to_samples(&self.http_after_change)
    }
}

fn to_samples(secs: &[f64]) -> Samples {
    let mut s = Samples::default();
    for x in secs {
        s.push(Duration::from_secs_f64(*x));
    }
    s
}

/// Builds the monitor for `copies` zone copies over 100 zones and measures it.
/// The in-process scrapes run on a runtime worker too, where the HTTP handler runs.
pub async fn run_size(copies: usize, scrapes: usize) -> anyhow::Result<SizeFigures> {
    let policies = (copies / ZONES).max(1);
    let fixture = Fixture {
        zones: ZONES,
        policies,
        global: Environment::Universal,
        zone_env: None,
        faults: true,
    };
    let (rss_before, _) = rss_kib();

    // What `serve::start` builds, minus the sources: they only call `snapshot`.
    let registry = Registry::new();
    let events = EventMetrics::register(&registry)?;
    // serve's default selection: every targetRef policy type, so every zone has a zero
    // series per type and state, as in production.
    let engine = Engine::new(fixture.topology(), Selection::default());
    let monitor = Arc::new(Monitor::new(engine, MonitorConfig::default(), Box::new(events)));
    let exposition = Arc::new(Exposition::new(
        registry.clone(),
        monitor.clone(),
        Some(kds_probe::config::DEFAULT_ZONE_NAME.to_owned()),
    )?);

    // Each source is a task on a runtime worker in `serve`: it parses its read there and
    // calls `snapshot` there, so the engine's memory comes from the workers' allocator
    // arenas, the ones the HTTP handler then allocates the scrape from.
    let fixture = Arc::new(fixture);
    let mut load = Duration::ZERO;
    let cps = std::iter::once(None).chain((0..ZONES).map(Some));
    for zone in cps {
        let (monitor, fixture) = (monitor.clone(), fixture.clone());
        load += tokio::spawn(async move {
            let (cp, batch) = match zone {
                None => (CpRole::Global, fixture.global_policies()),
                Some(z) => (CpRole::Zone(Fixture::zone_name(z)), fixture.zone_copies(z)),
            };
            // Timed from the handover: generating the batch stands for the source's read.
            let start = Instant::now();
            monitor.snapshot(&cp, batch, Timestamp::now());
            start.elapsed()
        })
        .await
        .context("a snapshot task panicked")?;
    }
    ensure!(monitor.ready(), "every source has been read");
    let (rss_after, hwm) = rss_kib();
    // Steady state: the engine frees each snapshot's parsed specs on a thread of its own,
    // and the allocator gives freed pages back after a delay.
    let rss_settled = tokio::task::spawn_blocking(settled_rss_kib)
        .await
        .context("the RSS reader panicked")?;

    let timed = {
        let exposition = exposition.clone();
        move || -> anyhow::Result<(Samples, usize, usize)> {
            let mut gather = Samples::default();
            let (mut body_bytes, mut series) = (0, 0);
            for _ in 0..scrapes {
                let start = Instant::now();
                let buf = exposition.render()?;
                gather.push(start.elapsed());
                body_bytes = buf.len();
                series = buf
                    .split(|b| *b == b'\n')
                    .filter(|l| !l.is_empty() && l[0] != b'#')
                    .count();
            }
            Ok((gather, body_bytes, series))
        }
    };
    let (gather, body_bytes, series) = tokio::spawn(async move { timed() })
        .await
        .context("the scrape task panicked")??;

    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = Arc::new(App {
        monitor: monitor.clone(),
        exposition: exposition.clone(),
        basic_auth: None,
    });
    let stop = CancellationToken::new();
    let server = tokio::spawn(server::run(listener, None, app, stop.clone().cancelled_owned()));
    let mut http = Samples::default();
    for _ in 0..scrapes {
        let start = Instant::now();
        let body = scrape_http::get(addr, "/metrics").await?;
        http.push(start.elapsed());
        ensure!(
            body.contains("kuma_sync_resources{state=\"missing\""),
            "the scrape shows the injected faults"
        );
    }
    // A watch backend reports changes as they come: each scrape then follows a change.
    let mut http_after_change = Samples::default();
    let zone = CpRole::Zone(Fixture::zone_name(0));
    for i in 0..scrapes {
        let copy = fixture.copy(i % policies, 0, 1 + (i % 2) as u64);
        monitor.change(&zone, policy_watcher::Change::Upsert(copy), Timestamp::now());
        let start = Instant::now();
        let body = scrape_http::get(addr, "/metrics").await?;
        http_after_change.push(start.elapsed());
        ensure!(
            body.contains("kuma_sync_resources{state=\"drifted\""),
            "the change is on /metrics"
        );
    }
    stop.cancel();
    server.await.context("the metrics server panicked")?;

    Ok(SizeFigures {
        copies: policies * ZONES,
        policies,
        load_seconds: load.as_secs_f64(),
        rss_before_mib: mib(rss_before),
        rss_after_mib: mib(rss_after),
        rss_settled_mib: mib(rss_settled),
        hwm_mib: mib(hwm),
        series,
        body_bytes,
        gather: raw(&gather),
        http: raw(&http),
        http_after_change: raw(&http_after_change),
    })
}

fn raw(s: &Samples) -> Vec<f64> {
    s.as_slice().iter().map(Duration::as_secs_f64).collect()
}
