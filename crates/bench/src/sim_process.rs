//! kuma-sim as a process of its own, so it does not share the measured side's CPU: the
//! fixture written as a scenario (a universal global holding the policies, zones even
//! universal and odd Kubernetes, each starting synced), the `kuma-sim` binary started on
//! it, the addresses read from what it prints, and a wait until every zone's KDS client
//! has been through its first full state, so kuma-sim is idle when `serve` starts.

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{ChildStdout, Stdio},
    time::Duration,
};

use anyhow::{Context, bail};
use kuma_model::{Environment, Resource};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::{fixtures::Fixture, scrape_http, sources::log_tail};

/// Longest wait for kuma-sim to start and for its zones to sync.
const SIM_WITHIN: Duration = Duration::from_secs(1200);
/// Between two looks at the zones' link status.
const CHECK_EVERY: Duration = Duration::from_millis(100);

/// Where the bench looks for `kuma-sim`: `KUMA_SIM_BIN`, else beside its own binary
/// (`cargo build --release -p kuma-sim -p bench` puts both in `target/release`).
pub fn default_sim_binary() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("KUMA_SIM_BIN") {
        return Ok(PathBuf::from(path));
    }
    let exe = std::env::current_exe().context("own path")?;
    Ok(exe.with_file_name("kuma-sim"))
}

/// A running kuma-sim; killed when dropped, so none outlives the bench.
pub struct SimProcess {
    child: std::process::Child,
    /// REST API per control plane (`global` and every zone).
    pub rest: BTreeMap<String, String>,
    /// Kubernetes API per Kubernetes zone.
    pub kubernetes_api: BTreeMap<String, SocketAddr>,
    /// Spawn to "ready" (every store filled, every API listening).
    pub ready: Duration,
    /// Spawn to every zone's first full state over KDS applied.
    pub synced: Duration,
}

impl SimProcess {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The fixture as a kuma-sim scenario: meshes without Kuma's default policies (the
/// fixture's policies are the only ones of their types), every zone starting synced,
/// ephemeral ports, TLS on KDS as Kuma's default.
pub fn scenario(fixture: &Fixture) -> anyhow::Result<Value> {
    if fixture.global != Environment::Universal {
        // The global's policies are written as universal documents.
        bail!("kuma-sim's scenario is written for a universal global only");
    }
    let zones: Vec<Value> = (0..fixture.zones)
        .map(|z| {
            let environment = match fixture.zone_environment(z) {
                Environment::Universal => json!({"type": "universal"}),
                Environment::Kubernetes { system_namespace } => {
                    json!({"type": "kubernetes", "systemNamespace": system_namespace})
                }
            };
            json!({"name": Fixture::zone_name(z), "environment": environment})
        })
        .collect();
    Ok(json!({
        "global": {
            "environment": {"type": "universal"},
            "tls": true,
            "resources": fixture.global_policies().iter().map(document).collect::<Vec<_>>(),
        },
        "meshes": crate::fixtures::MESHES.iter().map(|m| json!({"name": m})).collect::<Vec<_>>(),
        "skipCreatingInitialPolicies": ["*"],
        "ports": "ephemeral",
        "startSynced": true,
        "zones": zones,
    }))
}

/// A resource as `kumactl get -o yaml` prints it.
fn document(r: &Resource) -> Value {
    let mut doc = json!({"type": r.rtype.name(), "name": r.name, "spec": r.spec});
    if let Some(mesh) = &r.mesh {
        doc["mesh"] = json!(mesh);
    }
    if !r.labels.is_empty() {
        doc["labels"] = json!(r.labels);
    }
    doc
}

/// Writes the scenario into `dir`, starts `kuma-sim` on it and waits until every zone is
/// synced.
pub async fn start(bin: &Path, fixture: &Fixture, dir: &Path) -> anyhow::Result<SimProcess> {
    if !bin.is_file() {
        bail!(
            "no kuma-sim at {} (build it with `cargo build --release -p kuma-sim`, or set KUMA_SIM_BIN)",
            bin.display()
        );
    }
    let path = dir.join("scenario.json");
    // JSON is YAML: the scenario file as serde_json writes it.
    std::fs::write(&path, serde_json::to_vec(&scenario(fixture)?)?)?;
    let log_path = dir.join("kuma-sim.log");
    let log = std::fs::File::create(&log_path)?;
    let started = Instant::now();
    let mut child = std::process::Command::new(bin)
        .arg("--scenario")
        .arg(&path)
        .args(["--log", "warn"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .with_context(|| format!("start {}", bin.display()))?;
    let stdout = child.stdout.take().context("kuma-sim's stdout")?;
    let mut sim = SimProcess {
        child,
        rest: BTreeMap::new(),
        kubernetes_api: BTreeMap::new(),
        ready: Duration::ZERO,
        synced: Duration::ZERO,
    };
    let read = tokio::task::spawn_blocking(move || read_addresses(stdout));
    let (addresses, lines) = match tokio::time::timeout(SIM_WITHIN, read).await {
        Ok(joined) => joined?.with_context(|| log_tail(&log_path))?,
        Err(_) => bail!(
            "kuma-sim not ready within {SIM_WITHIN:?}; {}",
            log_tail(&log_path)
        ),
    };
    sim.ready = started.elapsed();
    sim.rest = addresses.rest;
    sim.kubernetes_api = addresses.kubernetes_api;
    let admin = addresses.admin.context("kuma-sim printed no admin address")?;
    // Its stdout is kept draining so that it never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    let synced = until_synced(admin, fixture.zones, &mut sim.child);
    match tokio::time::timeout(SIM_WITHIN, synced).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(e.context(log_tail(&log_path))),
        Err(_) => bail!(
            "kuma-sim's zones not synced within {SIM_WITHIN:?}; {}",
            log_tail(&log_path)
        ),
    }
    sim.synced = started.elapsed();
    Ok(sim)
}

#[derive(Default)]
struct Addresses {
    rest: BTreeMap<String, String>,
    kubernetes_api: BTreeMap<String, SocketAddr>,
    admin: Option<SocketAddr>,
}

type Lines = std::io::Lines<BufReader<ChildStdout>>;

/// Reads kuma-sim's stdout up to its "ready" line (`<cp> REST API: <url>`,
/// `<cp> Kubernetes API: <url>`, `admin: <url>/faults`); returns the rest of it too.
fn read_addresses(stdout: ChildStdout) -> anyhow::Result<(Addresses, Lines)> {
    let mut lines = BufReader::new(stdout).lines();
    let mut out = Addresses::default();
    loop {
        let line = lines
            .next()
            .context("kuma-sim exited before it was ready")?
            .context("kuma-sim's stdout")?;
        if line.starts_with("ready;") {
            return Ok((out, lines));
        }
        if let Some((cp, url)) = line.split_once(" REST API: ") {
            out.rest.insert(cp.to_owned(), url.to_owned());
        } else if let Some((cp, url)) = line.split_once(" Kubernetes API: ") {
            out.kubernetes_api.insert(cp.to_owned(), socket_addr(url)?);
        } else if let Some(url) = line.strip_prefix("admin: ") {
            out.admin = Some(socket_addr(url.trim_end_matches("/faults"))?);
        }
    }
}

/// The address of an `http://host:port` URL kuma-sim printed.
fn socket_addr(url: &str) -> anyhow::Result<SocketAddr> {
    let rest = url.strip_prefix("http://").unwrap_or(url);
    rest.trim_end_matches('/')
        .parse()
        .with_context(|| format!("not an address: {url}"))
}

/// Waits until the admin endpoint's `GET /status` shows every zone connected, with the
/// first full state of every subscribed type applied.
async fn until_synced(
    admin: SocketAddr,
    zones: usize,
    child: &mut std::process::Child,
) -> anyhow::Result<()> {
    loop {
        if let Some(status) = child.try_wait()? {
            bail!("kuma-sim exited with {status}");
        }
        let body = scrape_http::get(admin, "/status").await?;
        if synced_zones(&serde_json::from_str(&body).context("GET /status is not JSON")?) == zones {
            return Ok(());
        }
        tokio::time::sleep(CHECK_EVERY).await;
    }
}

/// Zones of a `GET /status` answer whose link is up and through its first full states.
fn synced_zones(status: &Value) -> usize {
    let Some(zones) = status.as_object() else {
        return 0;
    };
    zones
        .values()
        .filter(|s| {
            let n = |k: &str| s.get(k).and_then(Value::as_u64).unwrap_or(0);
            s.get("connected") == Some(&Value::Bool(true))
                && n("types_subscribed") > 0
                && n("types_synced") == n("types_subscribed")
        })
        .count()
}

#[cfg(test)]
mod tests {
    use kuma_model::ResourceType;
    use kuma_sim::{
        GlobalStore, ResourceStore,
        lab::{Lab, Scenario},
    };

    use super::*;
    use crate::fixtures;

    /// A copy as compared: name, spec, labels.
    type Copy = (String, Value, Vec<(String, String)>);

    fn fixture() -> Fixture {
        Fixture {
            zones: 4,
            policies: 30,
            global: Environment::Universal,
            zone_env: None,
            faults: false,
        }
    }

    /// The scenario kuma-sim is given starts its zones with exactly the fixture's copies
    /// (names, labels, specs): what `serve` is measured converging on.
    #[tokio::test(flavor = "current_thread")]
    async fn kuma_sims_seeded_zones_hold_the_fixtures_copies() {
        let f = fixture();
        let text = serde_json::to_string(&scenario(&f).expect("universal")).expect("serialisable");
        let scenario = Scenario::from_yaml(&text).expect("kuma-sim reads it");
        let lab = Lab::start(scenario).await.expect("lab starts");
        let types = fixtures::types();
        let of_fixture_types = |store: &dyn ResourceStore| -> Vec<Copy> {
            let mut out: Vec<_> = store
                .list(None)
                .into_iter()
                .filter(|r| types.contains(&r.rtype))
                .map(|r| (r.name, r.spec, r.labels.into_iter().collect()))
                .collect();
            out.sort_by(|a, b| a.0.cmp(&b.0));
            out
        };
        for z in 0..f.zones {
            let store = lab.zone_store(&Fixture::zone_name(z)).expect("zone").clone();
            let mut expected: Vec<_> = f
                .zone_copies(z)
                .into_iter()
                .map(|r| (r.name, r.spec, r.labels.into_iter().collect()))
                .collect();
            expected.sort_by(|a, b| a.0.cmp(&b.0));
            assert_eq!(of_fixture_types(store.as_ref()), expected, "zone {z}");
        }
        let global: &GlobalStore = lab.global_store();
        let on_global = global.list(Some(ResourceType::from_name(fixtures::TYPES[0]).expect("known")));
        assert_eq!(on_global.len(), f.policies / 3);
        lab.shutdown().await;
    }

    #[test]
    fn zones_count_as_synced_once_every_type_went_through_its_full_state() {
        let status = json!({
            "zone-000": {"connected": true, "types_subscribed": 3, "types_synced": 3},
            "zone-001": {"connected": true, "types_subscribed": 3, "types_synced": 2},
            "zone-002": {"connected": false, "types_subscribed": 3, "types_synced": 3},
        });
        assert_eq!(synced_zones(&status), 1);
    }
}
