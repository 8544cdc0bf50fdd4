//! The KDS probe under a large global: a first response of about 10 MiB (just under Kuma's
//! and the probe's message limit) and deltas after it.
//!
//! Three measurements, because the probe's apply path is crate-private (`View::apply`):
//! - client decode: the exact response kuma-sim would send, prebuilt, then decoded the way
//!   the probe's session does (`prost` decode, [`kds_probe::decode::decode_entry`] per
//!   resource, entries collected by delta key as `View::apply` stores them);
//! - live full state: from starting a probe to its view holding the whole type, over
//!   loopback against kuma-sim, minus the same run against an empty global (connection
//!   and stream set-up); kuma-sim's own generation of the response is timed apart;
//! - deltas: one changed policy at a time, and a steady stream of them, from the store
//!   write to the view's `Upserted` event;
//! - `serve`'s KDS stall check over that state, which runs every second.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
    time::Duration,
};

use anyhow::{Context, bail, ensure};
use jiff::Timestamp;
use kds_probe::{Probe, ProbeConfig, View, ViewEvent, decode::decode_entry};
use kds_wire::{DeltaDiscoveryResponse, features};
use kuma_model::{Environment, Resource, ResourceType};
use kuma_sim::{
    GlobalStore, KdsServerConfig,
    kds::generation::{ZoneView, generate, map_for_zone},
    start_global_kds,
};
use prometheus::Registry;
use prost::Message;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::{fixtures, measure::Samples};

/// Kuma's and the probe's message limit.
const LIMIT: usize = kds_wire::MAX_MESSAGE_SIZE;
/// Aim under the limit: the response also carries per-resource framing.
const TARGET: usize = LIMIT - (96 << 10);
const WAIT: Duration = Duration::from_secs(60);

/// The figures of one run.
#[derive(Debug)]
pub struct KdsFigures {
    pub resources: usize,
    pub response_bytes: usize,
    /// kuma-sim building the response (not the probe's cost).
    pub server_generate: Samples,
    pub client_decode: Samples,
    pub client_delta_decode: Samples,
    pub live_full: Samples,
    pub live_empty: Samples,
    pub delta_one_at_a_time: Samples,
    pub delta_stream: Samples,
    pub stream_rate: f64,
    /// `StallCheck::differences` (every second in `serve`) with the global and the view
    /// both holding the full state.
    pub stall_check: Samples,
    /// kuma-sim re-listing the type for one delta (part of every delta's latency).
    pub server_regenerate: Samples,
}

fn mcb() -> ResourceType {
    ResourceType::from_name("MeshCircuitBreaker").expect("a known type")
}

fn probe_zone() -> ZoneView {
    ZoneView {
        zone: kds_probe::config::DEFAULT_ZONE_NAME.to_owned(),
        features: features::ALL.iter().map(|f| (*f).to_owned()).collect(),
    }
}

/// The response kuma-sim sends the probe for `resources`.
fn response_for(resources: &[Resource]) -> DeltaDiscoveryResponse {
    let wire = generate(resources, &Environment::Universal, &probe_zone(), |_| Some(true));
    DeltaDiscoveryResponse {
        type_url: mcb().name().to_owned(),
        nonce: "1".into(),
        resources: wire.into_values().map(|e| e.resource).collect(),
        ..Default::default()
    }
}

/// As many circuit breakers as fit in one ~10 MiB response.
fn fill() -> Vec<Resource> {
    let one = response_for(&[fixtures::circuit_breaker(0, 0)]).encoded_len();
    let n = TARGET / (one + 4);
    (0..n).map(|i| fixtures::circuit_breaker(i, 0)).collect()
}

/// What the probe's session does with a response's bytes, up to its view's entries.
fn client_decode(bytes: &[u8]) -> anyhow::Result<usize> {
    let response = DeltaDiscoveryResponse::decode(bytes)?;
    let now = Timestamp::now();
    let rtype = mcb();
    let entries: BTreeMap<String, kds_probe::Entry> = response
        .resources
        .iter()
        .map(|w| (w.name.clone(), decode_entry(rtype, w, now)))
        .collect();
    ensure!(
        entries.values().all(|e| e.decode_error.is_none()),
        "every resource decodes"
    );
    Ok(entries.len())
}

struct Running {
    view: View,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

async fn start_probe(url: &str) -> anyhow::Result<Running> {
    let mut pc = ProbeConfig::new(url)?;
    pc.types = vec![mcb()];
    let probe = Probe::new(pc, &Registry::new())?;
    let view = probe.view();
    let stop = CancellationToken::new();
    let shutdown = stop.clone().cancelled_owned();
    let task = tokio::spawn(async move {
        if let Err(error) = probe.run(shutdown).await {
            // The bench's wait for the view then fails with its own message.
            eprintln!("kds bench: probe stopped: {error}");
        }
    });
    Ok(Running { view, stop, task })
}

async fn until_synced(view: &View, expect: usize) -> anyhow::Result<()> {
    let mut rx = view.watch_version();
    let wait = async {
        loop {
            let done = view.read(|s| {
                s.types
                    .get(&mcb())
                    .is_some_and(|t| t.synced && t.entries.len() == expect)
            });
            if done {
                return Ok(());
            }
            if rx.changed().await.is_err() {
                bail!("the probe's view is gone");
            }
        }
    };
    tokio::time::timeout(WAIT, wait)
        .await
        .context("the probe did not sync in time")?
}

async fn stop_probe(p: Running) {
    p.stop.cancel();
    let _ = p.task.await;
}

/// One live cold start: probe started to view synced.
async fn live_sync(url: &str, expect: usize) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let p = start_probe(url).await?;
    until_synced(&p.view, expect).await?;
    let took = start.elapsed();
    stop_probe(p).await;
    Ok(took)
}

/// Builds the full-state response and decodes it `iterations` times, nothing else.
pub fn decode_only(iterations: usize) -> anyhow::Result<Samples> {
    let resources = fill();
    let bytes = response_for(&resources).encode_to_vec();
    let mut s = Samples::default();
    for _ in 0..iterations {
        let start = Instant::now();
        let n = client_decode(&bytes)?;
        s.push(start.elapsed());
        ensure!(n == resources.len(), "decoded {n} of {}", resources.len());
    }
    Ok(s)
}

/// Decoding a one-resource delta, in-process: the probe's share of a delta's latency.
fn delta_decode(samples: usize) -> anyhow::Result<Samples> {
    let mut s = Samples::default();
    for k in 0..samples {
        let bytes = response_for(&[fixtures::circuit_breaker(k, 7)]).encode_to_vec();
        let start = Instant::now();
        let n = client_decode(&bytes)?;
        s.push(start.elapsed());
        ensure!(n == 1, "one resource");
    }
    Ok(s)
}

pub async fn run(runs: usize, deltas: usize, stream_seconds: u64, rate: f64) -> anyhow::Result<KdsFigures> {
    let resources = fill();
    let n = resources.len();

    let mut server_generate = Samples::default();
    let mut bytes = Vec::new();
    for _ in 0..runs {
        let start = Instant::now();
        let response = response_for(&resources);
        bytes = response.encode_to_vec();
        server_generate.push(start.elapsed());
    }
    ensure!(
        bytes.len() <= LIMIT,
        "the response fits Kuma's limit: {}",
        bytes.len()
    );
    let mut client = Samples::default();
    for _ in 0..runs {
        let start = Instant::now();
        let decoded = client_decode(&bytes)?;
        client.push(start.elapsed());
        ensure!(decoded == n, "decoded {decoded} of {n}");
    }

    // An empty global: what connecting and opening the stream cost.
    let empty = start_global_kds(
        Arc::new(GlobalStore::new(Environment::Universal)),
        "127.0.0.1:0".parse()?,
        KdsServerConfig::default(),
    )
    .await?;
    let mut live_empty = Samples::default();
    for _ in 0..runs {
        live_empty.push(live_sync(&empty.url(), 0).await?);
    }
    empty.shutdown().await;

    let store = Arc::new(GlobalStore::new(Environment::Universal));
    for r in &resources {
        store.upsert(r.clone());
    }
    let kds = start_global_kds(store.clone(), "127.0.0.1:0".parse()?, KdsServerConfig::default()).await?;
    let mut live_full = Samples::default();
    for _ in 0..runs {
        live_full.push(live_sync(&kds.url(), n).await?);
    }
    let sent = kds
        .recorded_responses()
        .iter()
        .map(|r| r.encoded_len)
        .max()
        .unwrap_or_default();
    kds.clear_records();

    // Deltas on a synced probe.
    let p = start_probe(&kds.url()).await?;
    until_synced(&p.view, n).await?;
    let stall_check = stall_check(&resources, &p.view, runs)?;
    let mut events = p.view.subscribe();
    let zone = probe_zone();
    let key_of = |r: &Resource| map_for_zone(r, &Environment::Universal, &zone).delta_key();
    let mut one = Samples::default();
    let mut server_regenerate = Samples::default();
    for k in 0..deltas {
        let i = (fixtures::mix(k as u64, 11) % n as u64) as usize;
        let changed = fixtures::circuit_breaker(i, 1 + k as u64);
        let key = key_of(&changed);
        let start = Instant::now();
        store.upsert(changed);
        wait_upserted(&mut events, &[key].into_iter().collect(), 1).await?;
        one.push(start.elapsed());
        if k < 5 {
            // What kuma-sim does per change: list the type and regenerate its state.
            let listed = store.list(Some(mcb()));
            let start = Instant::now();
            let _ = generate(&listed, &Environment::Universal, &zone, |_| Some(true));
            server_regenerate.push(start.elapsed());
        }
    }

    // A steady stream: `rate` changes per second, each to a different policy.
    let total = (rate * stream_seconds as f64) as usize;
    let period = Duration::from_secs_f64(1.0 / rate);
    let mut written: HashMap<String, Instant> = HashMap::new();
    let mut stream = Samples::default();
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let began = Instant::now();
    let mut seen = 0;
    let mut sent_n = 0;
    while seen < total {
        tokio::select! {
            _ = tick.tick(), if sent_n < total => {
                let i = (sent_n * 7919) % n;
                let changed = fixtures::circuit_breaker(i, 1_000_000 + sent_n as u64);
                written.insert(key_of(&changed), Instant::now());
                store.upsert(changed);
                sent_n += 1;
            }
            ev = tokio::time::timeout(WAIT, events.recv()) => {
                match ev.context("no delta within a minute")? {
                    Ok(ViewEvent::Upserted { key, .. }) => {
                        if let Some(at) = written.remove(&key) {
                            stream.push(at.elapsed());
                            seen += 1;
                        }
                    }
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => bail!("the bench fell behind the view's events"),
                    Err(e) => bail!("view events: {e}"),
                }
            }
        }
    }
    let stream_rate = total as f64 / began.elapsed().as_secs_f64();
    stop_probe(p).await;
    kds.shutdown().await;

    Ok(KdsFigures {
        resources: n,
        response_bytes: sent.max(bytes.len()),
        server_generate,
        client_decode: client,
        client_delta_decode: delta_decode(1000)?,
        live_full,
        live_empty,
        delta_one_at_a_time: one,
        delta_stream: stream,
        stream_rate,
        server_regenerate,
        stall_check,
    })
}

/// The stall check `serve` runs every second, over a monitor whose global holds
/// `resources` and the probe's synced `view`; it must find nothing behind.
fn stall_check(resources: &[Resource], view: &View, runs: usize) -> anyhow::Result<Samples> {
    use policy_watcher::{
        Engine, Selection, Topology,
        monitor::{Monitor, MonitorConfig, NoRecorder},
    };
    let topology = Topology::new(Environment::Universal, Vec::new());
    let monitor = Arc::new(Monitor::new(
        Engine::new(topology, Selection::default()),
        MonitorConfig::default(),
        Box::new(NoRecorder),
    ));
    monitor.snapshot(&kuma_model::CpRole::Global, resources.to_vec(), Timestamp::now());
    let mut pc = ProbeConfig::new("grpc://127.0.0.1:1")?;
    pc.types = vec![mcb()];
    let check = kuma_sync::stall::StallCheck::register(
        &Registry::new(),
        monitor,
        view.clone(),
        &pc,
        Environment::Universal,
        Duration::from_secs(60),
    )?;
    let mut s = Samples::default();
    for _ in 0..runs {
        let start = Instant::now();
        let behind = check.differences();
        s.push(start.elapsed());
        ensure!(
            behind.is_empty(),
            "the synced probe is behind on {} keys",
            behind.len()
        );
    }
    Ok(s)
}

async fn wait_upserted(
    events: &mut tokio::sync::broadcast::Receiver<ViewEvent>,
    keys: &std::collections::HashSet<String>,
    mut want: usize,
) -> anyhow::Result<()> {
    let wait = async {
        while want > 0 {
            match events.recv().await {
                Ok(ViewEvent::Upserted { key, .. }) if keys.contains(&key) => want -= 1,
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => bail!("view events: {e}"),
            }
        }
        Ok(())
    };
    tokio::time::timeout(WAIT, wait)
        .await
        .context("no delta within a minute")?
}
