//! `kuma-sync demo`: a whole multi-zone lab (kuma-sim: a universal global, a universal
//! zone-1 and a Kubernetes zone-2 that really sync over KDS), `serve` watching it (zone-1
//! over REST, zone-2 through its Kubernetes API, the global's KDS through the probe), and
//! a live summary. `--break zone-2` silently stops zone-2 applying KDS updates, as in
//! kumahq/kuma#16428, and changes a policy on the global so the divergence shows.

use std::{future::Future, io::Write, net::SocketAddr, path::Path, time::Duration};

use kuma_model::{Environment, ResourceType};
use kuma_sim::lab::{Lab, LabError, PortPlan, Scenario};
use policy_watcher::{Report, State, ZoneState};

use crate::{
    config::{CpConfig, KdsFile, ServeConfig, SourceConfig},
    serve::{self, ServeError},
};

/// The federate guide, built in so `demo` needs no file.
pub const FEDERATE: &str = include_str!("../../../examples/federate.yaml");

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// After convergence, make this zone silently stop applying KDS updates, then change
    /// a policy on the global.
    #[arg(long = "break", value_name = "ZONE")]
    pub break_zone: Option<String>,

    /// Where kuma-sync serves /metrics and /status.
    #[arg(long, default_value = "127.0.0.1:9465", env = "KUMA_SYNC_LISTEN")]
    pub listen: SocketAddr,

    /// A kuma-sim scenario instead of the built-in federate guide.
    #[arg(long, value_name = "FILE")]
    pub scenario: Option<std::path::PathBuf>,

    /// Exit once the outcome is clear: 0 when converged, or (with --break) 1 once the
    /// divergence is detected. For scripts and CI.
    #[arg(long)]
    pub once: bool,

    /// How long convergence (and, with --break, detection) may take.
    #[arg(long, default_value = "60s", value_parser = crate::cli::parse_timeout)]
    pub timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The lab could not start (a port in use, a bad scenario).
    #[error("kuma-sim: {0}")]
    Lab(#[from] LabError),
    /// kuma-sync could not start against it.
    #[error(transparent)]
    Serve(#[from] ServeError),
    /// The scenario file or a temporary file could not be read or written.
    #[error("{0}")]
    Io(String),
    /// Nothing converged (or, with --break, nothing was detected) in time.
    #[error("{0}")]
    Timeout(String),
}

impl DemoError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, DemoError::Lab(e) if e.is_retryable())
    }
}

/// Runs the demo until `shutdown` (or, with `--once`, until the outcome is clear);
/// returns the exit code.
pub async fn run(
    args: DemoArgs,
    mut out: impl Write,
    shutdown: impl Future<Output = ()>,
) -> Result<u8, DemoError> {
    let text = match &args.scenario {
        Some(path) => {
            std::fs::read_to_string(path).map_err(|e| DemoError::Io(format!("{}: {e}", path.display())))?
        }
        None => FEDERATE.to_owned(),
    };
    let mut scenario = Scenario::from_yaml(&text)?;
    // Free ports, printed below: a demo must not fail on a busy 5681.
    scenario.ports = Some(PortPlan::Ephemeral);
    let lab = Lab::start(scenario).await?;
    let dir = tempfile::tempdir().map_err(|e| DemoError::Io(e.to_string()))?;
    let cfg = serve_config(&lab, &args, dir.path()).await?;
    let running = serve::start(cfg).await?;
    let urls = lab.urls();
    let say = |out: &mut dyn Write, line: String| {
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    };
    say(&mut out, "kuma-sim lab:".into());
    for (cp, url) in &urls.rest {
        say(&mut out, format!("  {cp:<8} REST API        {url}"));
    }
    for (cp, url) in &urls.kubernetes_api {
        say(&mut out, format!("  {cp:<8} Kubernetes API  {url}"));
    }
    say(&mut out, format!("  global   KDS             {}", urls.kds));
    if let Some(admin) = &urls.admin {
        say(&mut out, format!("  faults   admin endpoint  {admin}/faults"));
    }
    let addr = running.local_addr.expect("serve listens");
    say(
        &mut out,
        format!("kuma-sync: http://{addr}/metrics  http://{addr}/status"),
    );

    let mut shutdown = std::pin::pin!(shutdown);
    let monitor = running.monitor.clone();
    let converged = wait_for(&monitor, args.timeout, |r| r.converged, &mut shutdown).await;
    let code = match converged {
        Outcome::Shutdown => 0,
        Outcome::TimedOut(report) => {
            say(&mut out, summary(&report));
            running.stop().await;
            lab.shutdown().await;
            return Err(DemoError::Timeout("the lab did not converge in time".into()));
        }
        Outcome::Reached(report) => {
            say(&mut out, format!("converged: {}", summary(&report)));
            match &args.break_zone {
                None if args.once => 0,
                None => follow(&monitor, &mut out, &mut shutdown).await,
                Some(zone) => {
                    lab.zone_faults(zone)?.stall(true);
                    let changed = change_a_policy(&lab)?;
                    say(
                        &mut out,
                        format!(
                            "broke {zone}: it stopped applying KDS updates (still Online); changed {changed} on the global"
                        ),
                    );
                    // The healthy zones catch up within a poll; the broken one never does.
                    let broken_only = |r: &Report| {
                        r.zones
                            .iter()
                            .all(|z| (z.zone == *zone) == (z.state == ZoneState::Diverged))
                    };
                    let detected = wait_for(&monitor, args.timeout, broken_only, &mut shutdown).await;
                    match detected {
                        Outcome::Reached(report) => {
                            say(&mut out, format!("detected: {}", summary(&report)));
                            for d in report.discrepancies.iter().take(5) {
                                say(
                                    &mut out,
                                    format!(
                                        "  {} {} {} {}: {}",
                                        d.zone,
                                        d.rtype,
                                        d.name,
                                        d.state.as_str(),
                                        d.detail
                                    ),
                                );
                            }
                            if args.once {
                                1
                            } else {
                                follow(&monitor, &mut out, &mut shutdown).await
                            }
                        }
                        Outcome::TimedOut(_) => {
                            running.stop().await;
                            lab.shutdown().await;
                            return Err(DemoError::Timeout(format!(
                                "no divergence detected after breaking {zone}"
                            )));
                        }
                        Outcome::Shutdown => 0,
                    }
                }
            }
        }
    };
    running.stop().await;
    lab.shutdown().await;
    Ok(code)
}

/// kuma-sync's view of the lab: Kubernetes-flavoured control planes through their
/// Kubernetes API (kube-rs watchers), the others over REST, and the probe on the KDS.
pub async fn serve_config(lab: &Lab, args: &DemoArgs, dir: &Path) -> Result<ServeConfig, DemoError> {
    let urls = lab.urls();
    let source = |cp: &str, env: Environment| -> Result<CpConfig, DemoError> {
        let source = match (urls.kubernetes_api.get(cp), &env) {
            (Some(api), Environment::Kubernetes { .. }) => {
                let path = dir.join(format!("{cp}.kubeconfig"));
                std::fs::write(&path, kuma_sim::k8s_api::kubeconfig(cp, api))
                    .map_err(|e| DemoError::Io(e.to_string()))?;
                SourceConfig::Kubernetes {
                    kubeconfig: Some(path),
                    context: None,
                }
            }
            _ => {
                let url = urls
                    .rest
                    .get(cp)
                    .ok_or_else(|| DemoError::Io(format!("{cp} serves no API")))?;
                SourceConfig::Api {
                    url: url.clone(),
                    token: None,
                    token_file: None,
                    ca_file: None,
                }
            }
        };
        Ok(CpConfig {
            source,
            environment: env,
        })
    };
    let scenario = lab.scenario();
    let global = source("global", scenario.global.environment.environment())?;
    let zones = scenario
        .zones
        .iter()
        .map(|z| Ok((z.name.clone(), source(&z.name, z.environment.environment())?)))
        .collect::<Result<Vec<_>, DemoError>>()?;
    let ca_file = match lab.global().await.ca_pem() {
        Some(pem) => {
            let path = dir.join("kds-ca.pem");
            std::fs::write(&path, pem).map_err(|e| DemoError::Io(e.to_string()))?;
            Some(path)
        }
        None => None,
    };
    Ok(ServeConfig {
        listen: args.listen,
        global,
        zones,
        kds: Some(KdsFile {
            address: lab.kds_url(),
            ca_file,
            skip_verify: false,
            zone_name: None,
            client_cert: None,
            client_key: None,
        }),
        types: ResourceType::default_checked(kuma_model::KumaLine::V2).collect(),
        meshes: None,
        poll_interval: Duration::from_secs(1),
        stall_threshold: Duration::from_secs(10),
        tls: None,
        basic_auth: None,
        kuma_version: Some(kuma_model::KumaLine::V2),
        shards: None,
        leader_election: None,
        canary: None,
    })
}

/// Bumps `maxConnections` of the first MeshCircuitBreaker on the global.
fn change_a_policy(lab: &Lab) -> Result<String, DemoError> {
    let mcb = ResourceType::from_name("MeshCircuitBreaker").expect("known type");
    let mut r = lab
        .global_store()
        .list(Some(mcb))
        .into_iter()
        .find(|r| r.name == "demo-app-to-redis")
        .or_else(|| lab.global_store().list(Some(mcb)).into_iter().next())
        .ok_or_else(|| DemoError::Io("the scenario has no MeshCircuitBreaker to change".into()))?;
    let limits = &mut r.spec["to"][0]["default"]["connectionLimits"]["maxConnections"];
    *limits = serde_json::json!(limits.as_u64().unwrap_or(1) + 1);
    r.modification_time = Some(jiff::Timestamp::now());
    let name = format!("MeshCircuitBreaker {}", r.name);
    lab.create_on_global(r)?;
    Ok(name)
}

enum Outcome {
    Reached(Report),
    TimedOut(Report),
    Shutdown,
}

async fn wait_for(
    monitor: &policy_watcher::monitor::Monitor,
    timeout: Duration,
    cond: impl Fn(&Report) -> bool,
    shutdown: &mut (impl Future<Output = ()> + Unpin),
) -> Outcome {
    let mut changes = monitor.subscribe();
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let report = monitor.report();
        if monitor.ready() && cond(&report) {
            return Outcome::Reached(report);
        }
        tokio::select! {
            _ = &mut *shutdown => return Outcome::Shutdown,
            changed = tokio::time::timeout_at(deadline, changes.changed()) => {
                if changed.is_err() {
                    return Outcome::TimedOut(monitor.report());
                }
            }
        }
    }
}

/// Prints a summary line whenever it changes, until shutdown.
async fn follow(
    monitor: &policy_watcher::monitor::Monitor,
    out: &mut impl Write,
    shutdown: &mut (impl Future<Output = ()> + Unpin),
) -> u8 {
    let mut changes = monitor.subscribe();
    // The line just printed (converged/detected) already shows the current state.
    let mut last = summary(&monitor.report());
    loop {
        let line = summary(&monitor.report());
        if line != last {
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
            last = line;
        }
        tokio::select! {
            _ = &mut *shutdown => return 0,
            _ = changes.changed() => {}
        }
    }
}

/// One line: each zone's verdict and what is open.
pub fn summary(report: &Report) -> String {
    report
        .zones
        .iter()
        .map(|z| {
            let open: Vec<String> = State::ALL
                .iter()
                .filter(|s| **s != State::Synced)
                .filter_map(|s| {
                    z.counts
                        .get(s)
                        .filter(|n| **n > 0)
                        .map(|n| format!("{n} {}", s.as_str()))
                })
                .collect();
            let synced = z.counts.get(&State::Synced).copied().unwrap_or(0);
            match z.state {
                ZoneState::Converged => format!("{} converged ({synced} synced)", z.zone),
                ZoneState::Unknown => format!("{} unknown (cannot be read)", z.zone),
                ZoneState::Diverged => format!("{} diverged ({})", z.zone, open.join(", ")),
            }
        })
        .collect::<Vec<_>>()
        .join(" | ")
}
