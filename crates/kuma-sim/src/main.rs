//! `kuma-sim`: serves a whole multi-zone lab (a global and its zones, syncing over real
//! KDS) from a scenario file until Ctrl-C or SIGTERM.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context;
use clap::Parser;
use kuma_sim::lab::{Lab, PortPlan, Scenario};

/// Serve a simulated Kuma multi-zone deployment.
#[derive(Debug, Parser)]
#[command(name = "kuma-sim", version)]
struct Args {
    /// The scenario file (YAML): global, zones, meshes, resources, listen addresses.
    #[arg(long, env = "KUMA_SIM_SCENARIO")]
    scenario: PathBuf,
    /// Bind every listener on port 0 instead of the well-known ports (5681, 5685, 5690,
    /// 15681, ...) when the scenario does not choose.
    #[arg(long, env = "KUMA_SIM_EPHEMERAL_PORTS")]
    ephemeral_ports: bool,
    /// Log filter, as RUST_LOG.
    #[arg(long, env = "KUMA_SIM_LOG", default_value = "info")]
    log: String,
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&args.log))
        .with_writer(std::io::stderr)
        .init();
    let scenario = match load(&args) {
        Ok(s) => s,
        Err(error) => {
            eprintln!("kuma-sim: {error:#}");
            // EX_USAGE: the input is wrong, not the machine.
            return ExitCode::from(64);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(error) => {
            eprintln!("kuma-sim: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(scenario)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("kuma-sim: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn load(args: &Args) -> anyhow::Result<Scenario> {
    let text = std::fs::read_to_string(&args.scenario)
        .with_context(|| format!("cannot read {}", args.scenario.display()))?;
    let mut scenario =
        Scenario::from_yaml(&text).with_context(|| format!("in {}", args.scenario.display()))?;
    if scenario.ports.is_none() {
        scenario.ports = Some(if args.ephemeral_ports {
            PortPlan::Ephemeral
        } else {
            PortPlan::WellKnown
        });
    }
    scenario
        .validate()
        .with_context(|| format!("in {}", args.scenario.display()))?;
    Ok(scenario)
}

async fn run(scenario: Scenario) -> anyhow::Result<()> {
    // One crypto provider for every TLS user in the process (kuma-semantics 10.6 clients).
    let _ = rustls::crypto::ring::default_provider().install_default();
    // Installed before "ready" is printed, so a SIGTERM right after it stops cleanly.
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot listen for Ctrl-C")?;
    let lab = Lab::start(scenario).await.context("cannot start the lab")?;
    let urls = lab.urls();
    println!("global KDS: {}", urls.kds);
    for (cp, url) in &urls.rest {
        println!("{cp} REST API: {url}");
    }
    for (cp, url) in &urls.kubernetes_api {
        println!("{cp} Kubernetes API: {url}");
    }
    for (what, addr) in &urls.planned {
        println!("{what}: {addr} (planned, not served yet)");
    }
    if let Some(admin) = &urls.admin {
        println!("admin: {admin}/faults");
    }
    for zone in lab.zones() {
        println!("zone {}: {}", zone.name(), zone.store().environment());
    }
    println!("ready; Ctrl-C or SIGTERM stops");
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = term.recv() => {}
    }
    println!("stopping");
    lab.shutdown().await;
    Ok(())
}
