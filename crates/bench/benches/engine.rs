//! Engine benchmarks: a cold full compare of 100 zones x N policies, one change applied
//! incrementally at that size (median and p99), and the resident memory the engine holds,
//! over a size sweep. The engine alone, fed resources in process: no source, no monitor,
//! no HTTP (`kuma-sync-bench` measures those, docs/benchmarks-live.md).
//!
//! Run with `cargo bench -p bench --bench engine`. Sizes are total zone copies
//! (100 zones x policies); `ENGINE_BENCH_SIZES=1000,10000` narrows the sweep. Each size runs
//! in its own child process so the memory figures are not polluted by a previous size.
//! `--child <copies> load|apply|inputs` runs one part of one size in-process (the cold
//! load and everything after it, the cold fold with `apply`, or the inputs' memory
//! alone), which is also how to run it under `valgrind --tool=callgrind`.
//!
//! The mesh is the live benchmarks' ([`bench::fixtures::Fixture`], with its faults), plus
//! a few stray duplicates per zone; the figures use [`bench::measure`]'s percentiles.
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

use bench::{
    fixtures::{Fixture, mix},
    measure::{Samples, fmt, machine, mib, rss_kib, settled_rss_kib},
};
use kuma_model::{CpRole, Environment, Resource};
use policy_watcher::{Change, Engine, Report, Selection, State};

/// The allocator the `kuma-sync` binary uses, so the figures are the product's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ZONES: usize = 100;
const DEFAULT_SIZES: &str = "1000,10000,100000,1000000";
/// Copies, per thousand, that a zone holds twice (a stray under another name), besides
/// the fixture's missing and drifted ones.
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
    println!("machine: {}", machine());
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
    /// The same once it stops moving: the engine frees a snapshot's parsed specs on a
    /// thread of its own, and the allocator returns freed pages after a delay.
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

/// The fixture at `copies` zone copies (100 zones), faults on.
fn fixture(copies: usize) -> Fixture {
    Fixture {
        zones: ZONES,
        policies: (copies / ZONES).max(1),
        global: Environment::Universal,
        zone_env: None,
        faults: true,
    }
}

/// Zone `z`'s copies, with the fixture's missing and drifted ones, and a few strays: a
/// second copy of a policy under another name.
fn zone_copies(f: &Fixture, z: usize) -> Vec<Resource> {
    let mut out = f.zone_copies(z);
    for i in 0..f.policies {
        if mix(z as u64, i as u64) % 1000 >= 1000 - STRAY_PER_MILLE {
            let mut stray = f.copy(i, z, 0);
            stray.name.push_str("-stray");
            out.push(stray);
        }
    }
    out
}

/// The resident memory of the resources the engine is handed, held in plain vectors: the
/// part of the engine's memory that its input, not its design, dictates.
fn input_mib(copies: usize) -> f64 {
    let f = fixture(copies);
    let (before, _) = rss_kib();
    let globals = f.global_policies();
    let zones: Vec<Vec<Resource>> = (0..ZONES).map(|z| zone_copies(&f, z)).collect();
    let (after, _) = rss_kib();
    black_box((globals, zones));
    mib(after.saturating_sub(before))
}

/// Builds the engine for `copies` zone copies and times folding it in: the global first,
/// then each zone's snapshot (generated outside the timing).
fn cold(copies: usize, fold: Fold) -> (Engine, Duration) {
    let f = fixture(copies);
    let mut engine = Engine::new(f.topology(), Selection::default());
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
    fold_in(&mut engine, &CpRole::Global, f.global_policies());
    for z in 0..ZONES {
        let batch = zone_copies(&f, z);
        fold_in(&mut engine, &CpRole::Zone(Fixture::zone_name(z)), batch);
    }
    (engine, elapsed)
}

fn run_size(copies: usize) -> Row {
    let f = fixture(copies);
    let policies = f.policies;
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
    let rss_settled = settled_rss_kib();

    // A REST poll re-lists a zone that did not change.
    let mut relist_times = Samples::default();
    for z in 0..5 {
        let batch = zone_copies(&f, z);
        let cp = CpRole::Zone(Fixture::zone_name(z));
        let start = Instant::now();
        let changed = black_box(engine.replace(&cp, batch));
        relist_times.push(start.elapsed());
        assert!(changed.is_empty(), "nothing changed");
    }
    // One zone copy edited (drifted, then put back): one slot.
    let zone_samples = 4000.min(copies.max(200));
    let mut zone_times = Samples::default();
    for n in 0..zone_samples {
        let z = (mix(n as u64, 1) % ZONES as u64) as usize;
        let i = (mix(n as u64, 2) % policies as u64) as usize;
        let cp = CpRole::Zone(Fixture::zone_name(z));
        for version in [7, 0] {
            let copy = f.copy(i, z, version);
            let start = Instant::now();
            let changed = black_box(engine.apply(&cp, Change::Upsert(copy)));
            zone_times.push(start.elapsed());
            assert_eq!(changed.len(), 1, "a zone edit changes one slot");
        }
    }
    // One global policy edited and put back: one slot in every zone.
    let global_samples = 500;
    let mut global_times = Samples::default();
    for n in 0..global_samples {
        let i = (mix(n as u64, 3) % policies as u64) as usize;
        for version in [7, 0] {
            let r = f.global_policy(i, version);
            let start = Instant::now();
            let changed = black_box(engine.apply(&CpRole::Global, Change::Upsert(r)));
            global_times.push(start.elapsed());
            assert!(
                changed.len() >= ZONES - ZONES / 10,
                "a global edit reaches every zone"
            );
        }
    }
    Row {
        copies: policies * ZONES,
        slots,
        fold,
        report: report_time,
        zone_median: zone_times.percentile(50.0),
        zone_p99: zone_times.percentile(99.0),
        global_median: global_times.percentile(50.0),
        global_p99: global_times.percentile(99.0),
        relist: relist_times.percentile(50.0),
        rss_mib: mib(rss_after.saturating_sub(rss_before)),
        settled_mib: mib(rss_settled.saturating_sub(rss_before)),
        hwm_mib: mib(hwm),
    }
}
