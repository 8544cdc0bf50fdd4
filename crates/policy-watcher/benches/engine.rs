//! Engine benchmarks for issue 8: a cold full compare of 100 zones x N policies, one change
//! applied incrementally at that size (median and p99), and the resident memory the engine
//! holds, over a size sweep.
//!
//! Run with `cargo bench -p policy-watcher --bench engine`. Sizes are total zone copies
//! (100 zones x policies); `ENGINE_BENCH_SIZES=1000,10000` narrows the sweep. Each size runs
//! in its own child process so the memory figures are not polluted by a previous size.
//! `--child <copies> load|apply|inputs` runs one part of one size in-process (the cold
//! load and everything after it, the cold fold with `apply`, or the inputs' memory
//! alone), which is also how to run it under `valgrind --tool=callgrind`.
//!
//! This is a measuring binary, not a test: it prints a Markdown table for
//! `docs/benchmarks.md` and asserts only that the engine saw what it was given.

// A benchmark times the real clock and runs no tokio runtime; tokio's Instant exists to
// follow a paused test clock, which would be meaningless here.
#![allow(clippy::disallowed_types)]

use std::{
    hint::black_box,
    process::Command,
    time::{Duration, Instant},
};

use kuma_model::{CpRole, Environment, Resource, ResourceType, labels, resource::expected_name_in_zone};
use policy_watcher::{Change, Engine, Report, Selection, State, Topology, ZoneSpec};
use serde_json::json;

/// The allocator the `kuma-sync` binary uses, so the figures are the product's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ZONES: usize = 100;
const MESHES: [&str; 3] = ["default", "payments", "edge"];
const DEFAULT_SIZES: &str = "1000,10000,100000,1000000";
/// Copies, per thousand, that a zone lacks, holds with another spec, or holds twice.
const MISSING_PER_MILLE: u64 = 2;
const DRIFTED_PER_MILLE: u64 = 2;
const STRAY_PER_MILLE: u64 = 1;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(pos) = args.iter().position(|a| a == "--child") {
        let copies: usize = args
            .get(pos + 1)
            .and_then(|s| s.parse().ok())
            .expect("--child takes a number of copies");
        let fold = match args.get(pos + 2).map(String::as_str) {
            Some("apply") => Fold::Apply,
            Some("inputs") => {
                println!("INPUTS {:.0} MiB |", input_mib(copies));
                return;
            }
            _ => Fold::Load,
        };
        match fold {
            Fold::Load => println!("ROW {}", run_size(copies).to_line()),
            Fold::Apply => println!("APPLY {}", fmt(cold(copies, Fold::Apply).1)),
        }
        return;
    }
    let sizes = std::env::var("ENGINE_BENCH_SIZES").unwrap_or_else(|_| DEFAULT_SIZES.to_owned());
    print_machine();
    let exe = std::env::current_exe().expect("own path");
    let mut rows = Vec::new();
    for size in sizes.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        eprintln!("engine bench: {size} copies ...");
        let row = child(&exe, size, "load", "ROW ");
        let apply = child(&exe, size, "apply", "APPLY ");
        let inputs = child(&exe, size, "inputs", "INPUTS ");
        rows.push(format!("{row} {apply} | {inputs}"));
    }
    println!();
    println!("{}", Row::HEADER);
    println!("{}", Row::RULE);
    for r in rows {
        println!("{r}");
    }
}

/// Runs one size in a fresh process and returns what it printed after `prefix`.
fn child(exe: &std::path::Path, size: &str, mode: &str, prefix: &str) -> String {
    let out = Command::new(exe)
        .args(["--child", size, mode])
        .output()
        .expect("run child");
    assert!(
        out.status.success(),
        "child failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix(prefix))
        .expect("child printed its figures")
        .to_owned()
}

/// How the cold state is folded in: `Engine::load` (no change descriptions) or one
/// `Engine::apply` per resource (each change described, as a live watch needs).
#[derive(Clone, Copy, PartialEq)]
enum Fold {
    Load,
    Apply,
}

fn print_machine() {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| s.lines().next().map(str::to_owned))
        .unwrap_or_default();
    println!("machine: {cpu}, {cores} cores, {mem}");
    println!("zones: {ZONES} (even universal, odd kubernetes), global: universal");
}

/// One size's figures.
struct Row {
    copies: usize,
    slots: usize,
    fold: Duration,
    report: Duration,
    zone_median: Duration,
    zone_p99: Duration,
    global_median: Duration,
    global_p99: Duration,
    relist: Duration,
    rss_mib: f64,
    /// The same, 2 s later: the engine frees a snapshot's parsed specs on a thread of its
    /// own, and the allocator returns freed pages after a delay.
    settled_mib: f64,
    hwm_mib: f64,
}

impl Row {
    const HEADER: &str = "| copies | slots | cold load | report | cold total | zone change p50 / p99 | global change p50 / p99 | zone re-list, unchanged | engine RSS | settled | peak RSS | cold fold with apply | the resources alone |";
    const RULE: &str = "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|";

    fn to_line(&self) -> String {
        format!(
            "| {} | {} | {} | {} | {} | {} / {} | {} / {} | {} | {:.0} MiB | {:.0} MiB | {:.0} MiB |",
            self.copies,
            self.slots,
            fmt(self.fold),
            fmt(self.report),
            fmt(self.fold + self.report),
            fmt(self.zone_median),
            fmt(self.zone_p99),
            fmt(self.global_median),
            fmt(self.global_p99),
            fmt(self.relist),
            self.rss_mib,
            self.settled_mib,
            self.hwm_mib,
        )
    }
}

fn fmt(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1000.0 {
        format!("{us:.1} µs")
    } else if us < 1e6 {
        format!("{:.1} ms", us / 1e3)
    } else {
        format!("{:.2} s", us / 1e6)
    }
}

fn topology() -> Topology {
    Topology::new(
        Environment::Universal,
        (0..ZONES)
            .map(|z| {
                let env = if z % 2 == 0 {
                    Environment::Universal
                } else {
                    Environment::kubernetes()
                };
                ZoneSpec::new(&zone_name(z), env)
            })
            .collect(),
    )
}

fn zone_name(z: usize) -> String {
    format!("zone-{z:03}")
}

/// A deterministic pseudo-random number per (zone, policy), so every run sees one state.
fn mix(a: u64, b: u64) -> u64 {
    let mut x = a.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ b.wrapping_add(0x632b_e59b_d9b4_e019);
    x ^= x >> 31;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^ (x >> 29)
}

/// The global's policy `i`: a few hundred bytes of spec, as users write them.
fn global_policy(i: usize, version: u64) -> Resource {
    let mesh = MESHES[i % MESHES.len()];
    let svc = format!("svc-{}", i / 3);
    let (rtype, spec) = match i % 3 {
        0 => (
            "MeshCircuitBreaker",
            json!({
                "targetRef": {"kind": "MeshSubset", "tags": {"kuma.io/service": svc}},
                "to": [{"targetRef": {"kind": "Mesh"}, "default": {
                    "connectionLimits": {"maxConnections": 1024 + version, "maxPendingRequests": 128,
                                         "maxRequests": 1024, "maxRetries": 3},
                    "outlierDetection": {"disabled": false, "interval": "5s", "baseEjectionTime": "30s",
                        "maxEjectionPercent": 20, "splitExternalAndLocalErrors": false,
                        "detectors": {"totalFailures": {"consecutive": 10},
                                      "gatewayFailures": {"consecutive": 10}}}}}]
            }),
        ),
        1 => (
            "MeshTimeout",
            json!({
                "targetRef": {"kind": "Mesh"},
                "to": [{"targetRef": {"kind": "MeshService", "name": svc}, "default": {
                    "idleTimeout": "1h", "connectionTimeout": "5s",
                    "http": {"requestTimeout": format!("{}s", 15 + version), "streamIdleTimeout": "30m",
                             "maxStreamDuration": "0s", "maxConnectionDuration": "0s"}}}]
            }),
        ),
        _ => (
            "MeshTrafficPermission",
            json!({
                "targetRef": {"kind": "MeshService", "name": svc},
                "from": [
                    {"targetRef": {"kind": "MeshSubset", "tags": {"kuma.io/service": format!("client-{i}"),
                                                                   "version": format!("v{}", 1 + version)}},
                     "default": {"action": "Allow"}},
                    {"targetRef": {"kind": "Mesh"}, "default": {"action": "Deny"}}]
            }),
        ),
    };
    let rtype = ResourceType::from_name(rtype).expect("known type");
    Resource::new(rtype, Some(mesh), &format!("policy-{i:05}"), spec).with_label(labels::MESH, mesh)
}

/// What KDS makes of `src` in a zone (tests/common's `copy_in_zone`): renamed, labelled
/// global-origin with the display name.
fn copy_in_zone(src: &Resource, env: &Environment) -> Resource {
    let mut copy = src.clone();
    copy.name = expected_name_in_zone(src, &Environment::Universal, env);
    copy.with_label(labels::ORIGIN, labels::ORIGIN_GLOBAL)
        .with_label(labels::DISPLAY_NAME, &src.name)
}

/// Zone `z`'s copies, with a few missing, drifted or duplicated.
fn zone_copies(topology: &Topology, z: usize, policies: usize) -> Vec<Resource> {
    let env = &topology.zones[z].environment;
    let mut out = Vec::with_capacity(policies + policies / 100);
    for i in 0..policies {
        let roll = mix(z as u64, i as u64) % 1000;
        if roll < MISSING_PER_MILLE {
            continue;
        }
        let drifted = roll < MISSING_PER_MILLE + DRIFTED_PER_MILLE;
        let copy = copy_in_zone(&global_policy(i, u64::from(drifted)), env);
        if roll >= 1000 - STRAY_PER_MILLE {
            let mut stray = copy.clone();
            stray.name.push_str("-stray");
            out.push(stray);
        }
        out.push(copy);
    }
    out
}

fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn percentile(samples: &mut [Duration], p: usize) -> Duration {
    samples.sort_unstable();
    samples[(samples.len() * p / 100).min(samples.len() - 1)]
}

/// The resident memory of the resources the engine is handed, held in plain vectors: the
/// part of the engine's memory that its input, not its design, dictates.
fn input_mib(copies: usize) -> f64 {
    let policies = (copies / ZONES).max(1);
    let topology = topology();
    let (before, _) = rss_kib();
    let globals: Vec<Resource> = (0..policies).map(|i| global_policy(i, 0)).collect();
    let zones: Vec<Vec<Resource>> = (0..ZONES).map(|z| zone_copies(&topology, z, policies)).collect();
    let (after, _) = rss_kib();
    black_box((globals, zones));
    after.saturating_sub(before) as f64 / 1024.0
}

/// Builds the engine for `copies` zone copies and times folding it in: the global first,
/// then each zone's snapshot (generated outside the timing).
fn cold(copies: usize, fold: Fold) -> (Engine, Duration) {
    let policies = (copies / ZONES).max(1);
    let topology = topology();
    let mut engine = Engine::new(topology.clone(), Selection::default());
    let mut elapsed = Duration::ZERO;
    let mut fold_in = |engine: &mut Engine, cp: &CpRole, batch: Vec<Resource>| {
        let start = Instant::now();
        match fold {
            Fold::Load => {
                black_box(engine.load(cp, batch));
            }
            Fold::Apply => {
                for r in batch {
                    black_box(engine.apply(cp, Change::Upsert(r)));
                }
            }
        }
        elapsed += start.elapsed();
    };
    let globals: Vec<Resource> = (0..policies).map(|i| global_policy(i, 0)).collect();
    fold_in(&mut engine, &CpRole::Global, globals);
    for z in 0..ZONES {
        let batch = zone_copies(&topology, z, policies);
        fold_in(&mut engine, &CpRole::Zone(zone_name(z)), batch);
    }
    (engine, elapsed)
}

fn run_size(copies: usize) -> Row {
    let policies = (copies / ZONES).max(1);
    let topology = topology();
    let (rss_before, _) = rss_kib();
    let (mut engine, fold) = cold(copies, Fold::Load);
    let start = Instant::now();
    let report = black_box(Report::build(&engine));
    let report_time = start.elapsed();
    // Synced slots are counted, not kept: the findings' total is the slot count.
    let slots: usize = engine.counts().map(|(_, _, _, n)| n).sum();
    assert!(slots >= ZONES * policies, "every (zone, policy) has a finding");
    assert!(!report.converged, "the injected faults are found");
    assert!(
        report.discrepancies.iter().any(|d| d.state == State::Drifted),
        "drift is reported"
    );
    drop(report);
    let (rss_after, hwm) = rss_kib();
    std::thread::sleep(Duration::from_secs(2));
    let (rss_settled, _) = rss_kib();

    // A REST poll re-lists a zone that did not change.
    let mut relist_times = Vec::new();
    for z in 0..5 {
        let batch = zone_copies(&topology, z, policies);
        let cp = CpRole::Zone(zone_name(z));
        let start = Instant::now();
        let changed = black_box(engine.replace(&cp, batch));
        relist_times.push(start.elapsed());
        assert!(changed.is_empty(), "nothing changed");
    }
    // One zone copy edited (drifted, then put back): one slot.
    let zone_samples = 4000.min(copies.max(200));
    let mut zone_times = Vec::with_capacity(zone_samples);
    for n in 0..zone_samples {
        let z = (mix(n as u64, 1) % ZONES as u64) as usize;
        let i = (mix(n as u64, 2) % policies as u64) as usize;
        let env = &topology.zones[z].environment;
        let cp = CpRole::Zone(topology.zones[z].name.clone());
        for version in [7, 0] {
            let copy = copy_in_zone(&global_policy(i, version), env);
            let start = Instant::now();
            let changed = black_box(engine.apply(&cp, Change::Upsert(copy)));
            zone_times.push(start.elapsed());
            assert_eq!(changed.len(), 1, "a zone edit changes one slot");
        }
    }
    // One global policy edited and put back: one slot in every zone.
    let global_samples = 500;
    let mut global_times = Vec::with_capacity(global_samples * 2);
    for n in 0..global_samples {
        let i = (mix(n as u64, 3) % policies as u64) as usize;
        for version in [7, 0] {
            let r = global_policy(i, version);
            let start = Instant::now();
            let changed = black_box(engine.apply(&CpRole::Global, Change::Upsert(r)));
            global_times.push(start.elapsed());
            assert!(
                changed.len() >= ZONES - ZONES / 10,
                "a global edit reaches every zone"
            );
        }
    }
    let mib = |kib: u64| kib as f64 / 1024.0;
    Row {
        copies: policies * ZONES,
        slots,
        fold,
        report: report_time,
        zone_median: percentile(&mut zone_times, 50),
        zone_p99: percentile(&mut zone_times, 99),
        global_median: percentile(&mut global_times, 50),
        global_p99: percentile(&mut global_times, 99),
        relist: percentile(&mut relist_times, 50),
        rss_mib: mib(rss_after.saturating_sub(rss_before)),
        settled_mib: mib(rss_settled.saturating_sub(rss_before)),
        hwm_mib: mib(hwm),
    }
}
