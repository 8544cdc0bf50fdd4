//! `kuma-sync-bench`: thin wiring of the live benchmarks; see the library's docs.
//!
//! `cargo run --release -p bench -- all` prints the whole report body in Markdown.

use std::{process::Command, time::Duration};

use anyhow::{Context, bail};
use bench::{
    e2e::{self, Backend},
    kds,
    measure::{self, fmt},
    sources,
    state::{self, SizeFigures},
};
use clap::{Args, Parser, Subcommand};

/// The allocator `kuma-sync` uses, so the figures are the product's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "kuma-sync-bench",
    about = "Live benchmarks of kuma-sync serve against kuma-sim"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// RSS of the monitor holding 100 zones x N copies, and /metrics scrape latency.
    State(StateArgs),
    /// One size of `state`, in this process (run by `state`; also for callgrind).
    #[command(hide = true)]
    StateChild {
        #[arg(long)]
        copies: usize,
        #[arg(long)]
        scrapes: usize,
    },
    /// Decodes the prebuilt ~10 MiB response N times, in-process (for callgrind).
    #[command(hide = true)]
    KdsDecode {
        #[arg(long, default_value_t = 1)]
        iterations: usize,
    },
    /// The KDS probe applying a ~10 MiB full state, and deltas.
    Kds(KdsArgs),
    /// A change on a control plane to the state on /metrics, watch and REST backends.
    E2e(E2eArgs),
    /// The release `kuma-sync serve` as a child process, through the real sources (REST
    /// and Kubernetes watches): first verdict, RSS, scrape latency, CPU per poll cycle.
    Sources(SourcesArgs),
    /// Everything, with the defaults below: the report's figures.
    All {
        #[command(flatten)]
        state: StateArgs,
        #[command(flatten)]
        kds: KdsArgs,
        #[command(flatten)]
        e2e: E2eArgs,
    },
}

#[derive(Args, Clone)]
struct StateArgs {
    /// Total zone copies (100 zones x policies), one child process each.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000,100000,1000000")]
    sizes: Vec<usize>,
    /// Scrapes per size, in-process and over HTTP each.
    #[arg(long, default_value_t = 50)]
    scrapes: usize,
}

#[derive(Args, Clone)]
struct KdsArgs {
    /// Cold starts of the probe (and decodes of the prebuilt response).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Deltas sent one at a time.
    #[arg(long, default_value_t = 50)]
    deltas: usize,
    /// Length of the steady stream of deltas.
    #[arg(long, default_value_t = 5)]
    stream_seconds: u64,
    /// Changes per second in the steady stream.
    #[arg(long, default_value_t = 20.0)]
    rate: f64,
}

#[derive(Args, Clone)]
struct E2eArgs {
    /// Zones of the end-to-end runs (one simulated control plane each).
    #[arg(long, default_value_t = 10)]
    zones: usize,
    /// Policies on the global (each zone holds a copy of every one).
    #[arg(long, default_value_t = 1000)]
    policies: usize,
    /// Faults and changes per backend.
    #[arg(long, default_value_t = 10)]
    samples: usize,
    /// Extra Kubernetes runs, as ZONESxPOLICIES (e.g. 100x100: many watch sources).
    #[arg(long, value_delimiter = ',', default_value = "100x100", value_parser = parse_shape)]
    kube_shapes: Vec<(usize, usize)>,
    /// REST poll intervals to measure; long intervals get fewer samples (at least 3) so a
    /// run stays within minutes.
    #[arg(long, value_delimiter = ',', default_value = "250ms,1s,5s", value_parser = parse_duration)]
    polls: Vec<Duration>,
}

#[derive(Args, Clone)]
struct SourcesArgs {
    /// Sizes as ZONESxPOLICIES (each zone holds a copy of every policy).
    #[arg(long, value_delimiter = ',', default_value = "20x500,20x5000,100x1000,100x10000", value_parser = parse_shape)]
    shapes: Vec<(usize, usize)>,
    /// The `kuma-sync` binary (release build); default: KUMA_SYNC_BIN, else beside this one.
    #[arg(long)]
    serve: Option<std::path::PathBuf>,
    /// `intervals.poll` of the child: the REST poll cycle whose CPU is measured.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    poll: Duration,
    /// Poll cycles the CPU is measured over.
    #[arg(long, default_value_t = 10)]
    cycles: u32,
    /// `/metrics` scrapes per size.
    #[arg(long, default_value_t = 50)]
    scrapes: usize,
    /// `serve` processes sharing the zones (`--total-shards`), as a sharded StatefulSet.
    #[arg(long, default_value_t = 1)]
    shards: u32,
    /// Run kuma-sim as a process of its own (zones starting synced) instead of inside the
    /// bench, so it shares no CPU with the measured process's host.
    #[arg(long)]
    sim_process: bool,
    /// The `kuma-sim` binary for `--sim-process`; default: KUMA_SIM_BIN, else beside this one.
    #[arg(long)]
    sim: Option<std::path::PathBuf>,
}

fn parse_shape(s: &str) -> Result<(usize, usize), String> {
    let (z, p) = s.split_once('x').ok_or("expected ZONESxPOLICIES")?;
    let n = |v: &str| v.trim().parse::<usize>().map_err(|e| format!("{v}: {e}"));
    Ok((n(z)?, n(p)?))
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    kds_probe::config::parse_duration(s).map_err(|e| e.to_string())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = Cli::parse();
    match cli.command {
        Cmd::KdsDecode { iterations } => {
            let s = kds::decode_only(iterations)?;
            println!("decode p50 / p99 / max: {}", s.cell());
        }
        Cmd::StateChild { copies, scrapes } => {
            let f = state::run_size(copies, scrapes).await?;
            println!("{}", serde_json::to_string(&f)?);
        }
        Cmd::State(a) => state_table(&a)?,
        Cmd::Kds(a) => kds_table(&a).await?,
        Cmd::E2e(a) => e2e_table(&a).await?,
        Cmd::Sources(a) => sources_table(&a).await?,
        Cmd::All { state, kds, e2e } => {
            let began = tokio::time::Instant::now();
            println!("Machine: {}\n", measure::machine());
            state_table(&state)?;
            kds_table(&kds).await?;
            e2e_table(&e2e).await?;
            println!("\nWhole run: {}", fmt(began.elapsed()));
        }
    }
    Ok(())
}

fn state_table(a: &StateArgs) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("own path")?;
    let mut rows = Vec::new();
    for copies in &a.sizes {
        eprintln!("state: {copies} copies ...");
        let out = Command::new(&exe)
            .args([
                "state-child",
                "--copies",
                &copies.to_string(),
                "--scrapes",
                &a.scrapes.to_string(),
            ])
            .output()
            .context("run a state child")?;
        if !out.status.success() {
            bail!(
                "state child for {copies} copies failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let line = String::from_utf8_lossy(&out.stdout);
        let f: SizeFigures = serde_json::from_str(line.trim()).context("the child's figures")?;
        rows.push(f);
    }
    println!("### Memory and scrape (100 zones, monitor as `serve` builds it)\n");
    println!(
        "| copies | policies | load (all snapshots) | RSS before | RSS after | held | held, settled | peak (VmHWM) | series | body | render p50 / p99 / max | GET /metrics p50 / p99 / max | GET after a change p50 / p99 / max |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for f in rows {
        println!(
            "| {} | {} | {} | {:.0} MiB | {:.0} MiB | {:.0} MiB | {:.0} MiB | {:.0} MiB | {} | {:.0} KiB | {} | {} | {} |",
            f.copies,
            f.policies,
            fmt(Duration::from_secs_f64(f.load_seconds)),
            f.rss_before_mib,
            f.rss_after_mib,
            f.rss_after_mib - f.rss_before_mib,
            f.rss_settled_mib - f.rss_before_mib,
            f.hwm_mib,
            f.series,
            f.body_bytes as f64 / 1024.0,
            f.gather_samples().cell(),
            f.http_samples().cell(),
            f.http_after_change_samples().cell(),
        );
    }
    println!();
    Ok(())
}

async fn kds_table(a: &KdsArgs) -> anyhow::Result<()> {
    eprintln!("kds ...");
    let f = kds::run(a.runs, a.deltas, a.stream_seconds, a.rate).await?;
    println!("### KDS probe\n");
    println!(
        "Full state: {} MeshCircuitBreakers, one response of {:.2} MiB (limit 10 MiB).\n",
        f.resources,
        f.response_bytes as f64 / (1 << 20) as f64
    );
    println!("| measurement | samples | p50 / p99 / max |");
    println!("|---|---:|---:|");
    let row = |what: &str, s: &measure::Samples| println!("| {what} | {} | {} |", s.len(), s.cell());
    row(
        "client: decode the 10 MiB response into view entries (in-process)",
        &f.client_decode,
    );
    row(
        "client: decode a one-resource delta (in-process)",
        &f.client_delta_decode,
    );
    row("live: probe start to view synced, 10 MiB global", &f.live_full);
    row("live: probe start to view synced, empty global", &f.live_empty);
    row(
        "kuma-sim: build and encode the 10 MiB response (server side)",
        &f.server_generate,
    );
    row(
        "live: one delta, store write to view event",
        &f.delta_one_at_a_time,
    );
    row(
        &format!(
            "live: steady stream at {:.0}/s ({:.1}/s achieved)",
            a.rate, f.stream_rate
        ),
        &f.delta_stream,
    );
    row(
        "kuma-sim: regenerate the type for one delta (server side)",
        &f.server_regenerate,
    );
    row(
        "serve: one KDS stall check (`StallCheck::differences`, every second) at this size",
        &f.stall_check,
    );
    println!();
    Ok(())
}

async fn e2e_table(a: &E2eArgs) -> anyhow::Result<()> {
    let mut runs = vec![(Backend::Kubernetes, a.zones, a.policies, a.samples)];
    runs.extend(
        a.kube_shapes
            .iter()
            .map(|(z, p)| (Backend::Kubernetes, *z, *p, a.samples)),
    );
    for poll in &a.polls {
        let fit = (Duration::from_secs(1).as_secs_f64() / poll.as_secs_f64() * a.samples as f64) as usize;
        runs.push((
            Backend::Rest { poll: *poll },
            a.zones,
            a.policies,
            fit.clamp(3.min(a.samples), a.samples),
        ));
    }
    println!("### End to end: change to `/metrics`\n");
    println!(
        "| backend | zones x policies | samples | start to converged | zone fault (missing) | healed | global change (drifted) | healed |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for (b, zones, policies, samples) in runs {
        eprintln!("e2e: {} at {zones} x {policies} ...", b.label());
        let f = e2e::run(b, zones, policies, samples).await?;
        println!(
            "| {} | {} x {} | {samples} | {} | {} | {} | {} | {} |",
            f.backend.label(),
            f.zones,
            f.policies,
            fmt(f.startup),
            f.zone_fault.cell(),
            f.zone_heal.cell(),
            f.global_change.cell(),
            f.global_heal.cell(),
        );
    }
    println!("\nCells are p50 / p99 / max.");
    Ok(())
}

async fn sources_table(a: &SourcesArgs) -> anyhow::Result<()> {
    let serve = match &a.serve {
        Some(path) => path.clone(),
        None => sources::default_serve_binary()?,
    };
    if a.poll.subsec_nanos() != 0 || a.poll < Duration::from_secs(1) {
        bail!("--poll must be whole seconds, at least 1s (serve's intervals.poll)");
    }
    let staging = match (a.sim_process, &a.sim) {
        (false, None) => sources::Staging::InProcess,
        (_, Some(path)) => sources::Staging::Process(path.clone()),
        (true, None) => sources::Staging::Process(bench::sim_process::default_sim_binary()?),
    };
    println!("### Through the real sources, `serve` as a child process\n");
    println!(
        "Global and even zones over REST (poll {}), odd zones through Kubernetes watches; `{}`; kuma-sim {}.\n",
        fmt(a.poll),
        serve.display(),
        match &staging {
            sources::Staging::InProcess => "inside the bench".to_owned(),
            sources::Staging::Process(p) =>
                format!("as its own process (`{}`, zones starting synced)", p.display()),
        }
    );
    if a.shards > 1 {
        println!(
            "{} `serve` processes share the zones; each figure is the largest shard's, then all shards' together.\n",
            a.shards
        );
    }
    let sim_columns = matches!(staging, sources::Staging::Process(_));
    println!(
        "| zones x policies | copies | REST / watched zones | shards | spawn to converged (CPU by then) | RSS settled | peak (VmHWM) | GET /metrics p50 / p99 / max | body | CPU per poll cycle (over {} cycles) |{}",
        a.cycles,
        if sim_columns {
            " kuma-sim ready / zones synced | kuma-sim RSS settled / peak |"
        } else {
            ""
        }
    );
    println!(
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|{}",
        if sim_columns { "---:|---:|" } else { "" }
    );
    for &(zones, policies) in &a.shapes {
        eprintln!("sources: {zones} x {policies} over {} shard(s) ...", a.shards);
        let f = sources::run(
            &serve,
            (zones, policies),
            a.poll,
            a.cycles,
            a.scrapes,
            &staging,
            a.shards,
        )
        .await?;
        let both = |one: String, all: String| match f.shards {
            1 => one,
            _ => format!("{one} ({all})"),
        };
        let sim_cells = f.sim.as_ref().map_or(String::new(), |s| {
            format!(
                " {} / {} | {:.0} MiB / {:.0} MiB |",
                fmt(s.ready),
                fmt(s.synced),
                measure::mib(s.rss_settled_kib),
                measure::mib(s.hwm_kib)
            )
        });
        println!(
            "| {} x {} | {} | {} / {} | {} | {} ({}) | {} | {} | {} | {:.0} KiB | {} |{sim_cells}",
            f.zones,
            f.policies,
            f.zones * f.policies,
            f.rest_zones,
            f.zones - f.rest_zones,
            f.shards,
            fmt(f.first_converged),
            fmt(f.cpu_to_converged),
            both(
                format!("{:.0} MiB", measure::mib(f.rss_settled_kib)),
                format!("{:.0} MiB", measure::mib(f.rss_settled_total_kib))
            ),
            both(
                format!("{:.0} MiB", measure::mib(f.hwm_kib)),
                format!("{:.0} MiB", measure::mib(f.hwm_total_kib))
            ),
            f.scrape.cell(),
            f.body_bytes as f64 / 1024.0,
            both(fmt(f.cpu_per_cycle), fmt(f.cpu_per_cycle_total)),
        );
    }
    println!();
    Ok(())
}
