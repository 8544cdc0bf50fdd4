//! `serve` as users run it: the release binary as a child process, started on a YAML
//! configuration, reading kuma-sim through its real sources. The global and the even
//! zones (universal) are read over Kuma's REST API, the odd zones (Kubernetes) through
//! kube-rs watchers on kuma-sim's Kubernetes API: the mix of issue #15.
//!
//! Measured from outside, as an operator would see it: the time from spawn to the first
//! converged verdict (`/readyz`, then every `kuma_sync_zone_converged` at 1), the child's
//! RSS once settled and its peak (`VmHWM`), `/metrics` scrape latency, and the CPU the
//! child spends per REST poll cycle of a mesh that does not change.
//!
//! With `shards` above 1, that many children share the zones as a StatefulSet's pods do
//! (`--total-shards N --shard i`, rendezvous hashing over the global's Zone list): the
//! run is converged when the children's converged zones add up to every zone, and each
//! figure is given for the largest shard and for all of them together.
//!
//! kuma-sim serves those APIs from inside the bench by default; with a kuma-sim binary
//! ([`Staging::Process`]) it runs as a process of its own ([`crate::sim_process`]), its
//! zones starting synced, so the child measured shares no process with it and kuma-sim
//! is idle once its zones have synced.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Stdio,
    sync::Arc,
    time::Duration,
};

use anyhow::{Context, bail};
use kuma_model::Environment;
use kuma_sim::{GlobalStore, k8s_api, rest::RestApi};
use tokio::time::Instant;

use crate::{
    fixtures::{self, Fixture},
    measure::{self, Samples},
    scrape_http,
    sim_process::{self, SimProcess},
};

/// Longest wait for the first converged verdict; past it the run failed.
const CONVERGE_WITHIN: Duration = Duration::from_secs(600);
/// Between two readiness checks: small against the seconds measured.
const CHECK_EVERY: Duration = Duration::from_millis(20);

/// What one size measured.
#[derive(Debug)]
pub struct SourcesFigures {
    pub zones: usize,
    pub policies: usize,
    /// Zones read over REST (the rest through Kubernetes watches).
    pub rest_zones: usize,
    /// `serve` processes sharing the zones.
    pub shards: u32,
    /// Until every shard's zones are converged.
    pub first_converged: Duration,
    /// User + system CPU the children had spent by then, together: what taking the
    /// mesh in cost.
    pub cpu_to_converged: Duration,
    /// Of the largest shard, and of all together.
    pub rss_settled_kib: u64,
    pub rss_settled_total_kib: u64,
    pub hwm_kib: u64,
    pub hwm_total_kib: u64,
    /// Scrapes of every shard in turn.
    pub scrape: Samples,
    /// The converged scrape's body, of the largest shard.
    pub body_bytes: usize,
    pub poll: Duration,
    pub cycles: u32,
    /// User + system CPU over `cycles` poll intervals, divided by `cycles`: of the
    /// busiest shard, and of all together.
    pub cpu_per_cycle: Duration,
    pub cpu_per_cycle_total: Duration,
    /// kuma-sim's own figures when it ran as a process.
    pub sim: Option<SimFigures>,
}

/// Where kuma-sim runs.
#[derive(Debug, Clone)]
pub enum Staging {
    /// Its stores and APIs inside the bench process.
    InProcess,
    /// The `kuma-sim` binary at this path, as a child of its own.
    Process(PathBuf),
}

/// What kuma-sim, run as a process, cost.
#[derive(Debug)]
pub struct SimFigures {
    /// Spawn to "ready": stores filled (zones seeded), every API listening.
    pub ready: Duration,
    /// Spawn to every zone's first full state over KDS applied.
    pub synced: Duration,
    /// Its RSS once settled (before `serve` starts), and its peak at the end.
    pub rss_settled_kib: u64,
    pub hwm_kib: u64,
}

/// Where the bench looks for `kuma-sync`: `KUMA_SYNC_BIN`, else beside its own binary
/// (`cargo build --release -p kuma-sync -p bench` puts both in `target/release`).
pub fn default_serve_binary() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("KUMA_SYNC_BIN") {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe().context("own path")?;
    Ok(exe.with_file_name("kuma-sync"))
}

/// Control planes served for the run; stopped when dropped at its end.
enum Sim {
    InProcess {
        rest: Vec<kuma_sim::rest::RestHandle>,
        kube: Vec<k8s_api::K8sApiHandle>,
    },
    Process(SimProcess),
}

impl Sim {
    async fn shutdown(self) {
        match self {
            Sim::InProcess { rest, kube } => {
                for h in rest {
                    h.shutdown().await;
                }
                for h in kube {
                    h.shutdown().await;
                }
            }
            // Killed when dropped.
            Sim::Process(p) => drop(p),
        }
    }
}

/// `serve` (`shards` of it) over `zones` x `policies` staged as `staging` says.
pub async fn run(
    serve: &Path,
    (zones, policies): (usize, usize),
    poll: Duration,
    cycles: u32,
    scrapes: usize,
    staging: &Staging,
    shards: u32,
) -> anyhow::Result<SourcesFigures> {
    if !serve.is_file() {
        bail!(
            "no kuma-sync at {} (build it with `cargo build --release -p kuma-sync`, or set KUMA_SYNC_BIN)",
            serve.display()
        );
    }
    let shards = shards.max(1);
    let fixture = Fixture {
        zones,
        policies,
        global: Environment::Universal,
        // Even zones universal, odd ones Kubernetes.
        zone_env: None,
        faults: false,
    };
    let dir = tempfile::tempdir()?;
    let (sim, config) = match staging {
        Staging::InProcess => stage(&fixture, dir.path(), poll).await?,
        Staging::Process(bin) => {
            let sim = sim_process::start(bin, &fixture, dir.path()).await?;
            let config = config_for(&sim, &fixture, dir.path(), poll)?;
            (Sim::Process(sim), config)
        }
    };
    let sim_rss_settled_kib = match &sim {
        Sim::Process(p) => {
            let pid = p.pid();
            Some(tokio::task::spawn_blocking(move || measure::settled_rss_kib_of(pid)).await?)
        }
        Sim::InProcess { .. } => None,
    };
    let config_path = dir.path().join("kuma-sync.yaml");
    std::fs::write(&config_path, config)?;

    let started = Instant::now();
    let mut children = Vec::new();
    for shard in 0..shards {
        children.push(Child::spawn(serve, &config_path, dir.path(), (shard, shards))?);
    }
    let bodies = match tokio::time::timeout(CONVERGE_WITHIN, until_converged(&mut children, zones)).await {
        Ok(Ok(bodies)) => bodies,
        Ok(Err(e)) => return Err(e.context(log_tails(&children))),
        Err(_) => bail!(
            "serve did not converge within {CONVERGE_WITHIN:?}; {}",
            log_tails(&children)
        ),
    };
    let first_converged = started.elapsed();
    let pids: Vec<u32> = children.iter().map(|c| c.process.id()).collect();
    let ticks = measure::clock_ticks_per_second();
    let cpu_to_converged = pids
        .iter()
        .filter_map(|pid| measure::cpu_time_of(*pid, ticks))
        .sum();

    let settled = tokio::task::spawn_blocking({
        let pids = pids.clone();
        move || {
            pids.into_iter()
                .map(measure::settled_rss_kib_of)
                .collect::<Vec<_>>()
        }
    })
    .await?;

    let mut scrape = Samples::default();
    for n in 0..scrapes {
        let at = Instant::now();
        scrape_http::get(children[n % children.len()].addr, "/metrics").await?;
        scrape.push(at.elapsed());
    }

    // Nothing changes and nothing scrapes: what the children spend is their polling (and
    // the idle watches).
    let cpu = |pids: &[u32]| -> anyhow::Result<Vec<Duration>> {
        pids.iter()
            .map(|pid| measure::cpu_time_of(*pid, ticks).context("a child exited"))
            .collect()
    };
    let before = cpu(&pids)?;
    tokio::time::sleep(poll * cycles).await;
    let after = cpu(&pids)?;
    let spent: Vec<Duration> = after
        .iter()
        .zip(&before)
        .map(|(a, b)| a.saturating_sub(*b) / cycles.max(1))
        .collect();
    // The kernel updates VmHWM lazily (on unmapping, and from batched per-thread
    // counters), so it can read a little below an RSS read before: the peak is at least
    // both.
    let hwm: Vec<u64> = pids
        .iter()
        .zip(&settled)
        .map(|(pid, settled)| measure::rss_kib_of(*pid).1.max(*settled))
        .collect();
    let sim_figures = match (&sim, sim_rss_settled_kib) {
        (Sim::Process(p), Some(rss_settled_kib)) => Some(SimFigures {
            ready: p.ready,
            synced: p.synced,
            rss_settled_kib,
            hwm_kib: measure::rss_kib_of(p.pid()).1.max(rss_settled_kib),
        }),
        _ => None,
    };

    drop(children);
    sim.shutdown().await;
    Ok(SourcesFigures {
        zones,
        policies,
        rest_zones: (0..zones)
            .filter(|z| matches!(fixture.zone_environment(*z), Environment::Universal))
            .count(),
        shards,
        first_converged,
        cpu_to_converged,
        rss_settled_kib: settled.iter().copied().max().unwrap_or(0),
        rss_settled_total_kib: settled.iter().sum(),
        hwm_kib: hwm.iter().copied().max().unwrap_or(0),
        hwm_total_kib: hwm.iter().sum(),
        scrape,
        body_bytes: bodies.iter().map(String::len).max().unwrap_or(0),
        poll,
        cycles,
        cpu_per_cycle: spent.iter().copied().max().unwrap_or_default(),
        cpu_per_cycle_total: spent.iter().sum(),
        sim: sim_figures,
    })
}

/// One `serve` child; killed if the run fails half-way, so none outlives the bench.
struct Child {
    process: std::process::Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Child {
    /// `serve` on `config` as shard `index` of `total` (no shard flags when alone).
    fn spawn(serve: &Path, config: &Path, dir: &Path, (index, total): (u32, u32)) -> anyhow::Result<Self> {
        // `listen: 127.0.0.1:0` would bind, but the child only names its port in a log
        // line: a port the OS just handed out, released, is given to the child instead.
        let addr = free_port()?;
        let log = dir.join(format!("serve-{index}.log"));
        let file = std::fs::File::create(&log)?;
        let mut command = std::process::Command::new(serve);
        command
            .args(["serve", "--config"])
            .arg(config)
            .args(["--listen", &addr.to_string()]);
        if total > 1 {
            command.args([
                "--total-shards",
                &total.to_string(),
                "--shard",
                &index.to_string(),
            ]);
        }
        let process = command
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file)
            .spawn()
            .with_context(|| format!("start {}", serve.display()))?;
        Ok(Self { process, addr, log })
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// Fills kuma-sim's stores from the fixture, serves each, and writes the configuration
/// `serve` reads them with.
async fn stage(fixture: &Fixture, dir: &Path, poll: Duration) -> anyhow::Result<(Sim, String)> {
    let global = Arc::new(GlobalStore::new(fixture.global.clone()));
    for r in Fixture::meshes().into_iter().chain(fixture.global_policies()) {
        global.upsert(r);
    }
    let api = RestApi::global(global).start("127.0.0.1:0".parse()?).await?;
    let mut config = config_head(poll, &api.url());
    let mut rest = vec![api];
    let mut kube = Vec::new();
    for z in 0..fixture.zones {
        let env = fixture.zone_environment(z);
        let store = Arc::new(GlobalStore::new(env.clone()));
        for r in Fixture::meshes().into_iter().chain(fixture.zone_copies(z)) {
            store.upsert(r);
        }
        let name = Fixture::zone_name(z);
        match env {
            Environment::Universal => {
                let h = RestApi::new(store).start("127.0.0.1:0".parse()?).await?;
                config += &universal_zone(&name, &h.url());
                rest.push(h);
            }
            Environment::Kubernetes { .. } => {
                let h =
                    k8s_api::start_k8s_api(store, "127.0.0.1:0".parse()?, k8s_api::K8sApiConfig::default())
                        .await?;
                config += &kubernetes_zone(dir, &name, h.addr())?;
                kube.push(h);
            }
        }
    }
    Ok((Sim::InProcess { rest, kube }, config))
}

/// The configuration `serve` reads a kuma-sim process with, from the addresses it printed.
fn config_for(sim: &SimProcess, fixture: &Fixture, dir: &Path, poll: Duration) -> anyhow::Result<String> {
    let url = |cp: &str| {
        sim.rest
            .get(cp)
            .with_context(|| format!("kuma-sim printed no REST API for {cp}"))
    };
    let mut config = config_head(poll, url("global")?);
    for z in 0..fixture.zones {
        let name = Fixture::zone_name(z);
        config += &match fixture.zone_environment(z) {
            Environment::Universal => universal_zone(&name, url(&name)?),
            Environment::Kubernetes { .. } => {
                let addr = sim
                    .kubernetes_api
                    .get(&name)
                    .with_context(|| format!("kuma-sim printed no Kubernetes API for {name}"))?;
                kubernetes_zone(dir, &name, *addr)?
            }
        };
    }
    Ok(config)
}

/// The configuration up to its zones: the fixture's types, the poll interval, the global.
fn config_head(poll: Duration, global_url: &str) -> String {
    let types: Vec<String> = fixtures::types().iter().map(|t| t.name().to_owned()).collect();
    format!(
        "kumaVersion: \"2\"\ntypes: [{}]\nintervals:\n  poll: {}s\nglobal:\n  environment: universal\n  api:\n    url: {}\nzones:\n",
        types.join(", "),
        poll.as_secs(),
        global_url
    )
}

fn universal_zone(name: &str, url: &str) -> String {
    format!("  - name: {name}\n    environment: universal\n    api:\n      url: {url}\n")
}

/// A Kubernetes zone, with the kubeconfig `serve` reaches its API by.
fn kubernetes_zone(dir: &Path, name: &str, addr: SocketAddr) -> anyhow::Result<String> {
    let path = crate::e2e::kubeconfig(dir, name, addr)?;
    Ok(format!(
        "  - name: {name}\n    environment: kubernetes\n    kubernetes:\n      kubeconfig: {}\n",
        path.display()
    ))
}

/// Waits for every child's `/readyz`, then for `/metrics` where the children's converged
/// zones add up to `zones` (each exports only its own); returns those scrapes. A child
/// that exits first fails the run.
async fn until_converged(children: &mut [Child], zones: usize) -> anyhow::Result<Vec<String>> {
    let mut ready = vec![false; children.len()];
    loop {
        let mut bodies = Vec::new();
        for (child, ready) in children.iter_mut().zip(&mut ready) {
            if let Some(status) = child.process.try_wait()? {
                bail!("serve ({}) exited with {status}", child.log.display());
            }
            if !*ready {
                // Refused until the child listens, 503 until every source has been read.
                *ready = scrape_http::get(child.addr, "/readyz").await.is_ok();
            }
            if *ready {
                bodies.push(scrape_http::get(child.addr, "/metrics").await?);
            }
        }
        if bodies.len() == children.len() && bodies.iter().map(|b| converged_zones(b)).sum::<usize>() == zones
        {
            return Ok(bodies);
        }
        tokio::time::sleep(CHECK_EVERY).await;
    }
}

/// Zones whose `kuma_sync_zone_converged` is 1.
fn converged_zones(metrics: &str) -> usize {
    metrics
        .lines()
        .filter(|l| l.starts_with("kuma_sync_zone_converged{"))
        .filter(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()) == Some(1.0))
        .count()
}

fn free_port() -> anyhow::Result<SocketAddr> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?)
}

/// The end of each child's log, for an error.
fn log_tails(children: &[Child]) -> String {
    children.iter().map(|child| log_tail(&child.log)).collect()
}

/// The last lines of a child process's log (`serve`'s, kuma-sim's), for an error.
pub(crate) fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(20)..].join("\n");
    format!("{} ends:\n{tail}\n", path.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_zones_at_one_count_as_converged() {
        let m = "# HELP kuma_sync_zone_converged x\nkuma_sync_zone_converged{zone=\"zone-000\"} 1\nkuma_sync_zone_converged{zone=\"zone-001\"} 0\nkuma_sync_zone_converged_total 1\n";
        assert_eq!(converged_zones(m), 1);
    }
}
