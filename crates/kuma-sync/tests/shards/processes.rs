//! Sharding as it runs in a StatefulSet: `kuma-sync serve` processes, each told its shard
//! on the command line, against one simulated global with a thousand zones. What each
//! process reports (its `/status` and `/metrics`) is the evidence: every zone judged by
//! exactly one process, the global's health and the KDS probe from shard 0 alone, and a
//! shard added or taken away moving only the zones it should.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::SocketAddr,
    path::Path,
    time::Duration,
};

use kuma_sim::{KdsServerConfig, start_global_kds};
use serde_json::Value;

use crate::support::{RestLab, get, spawn_serve};

const ZONES: usize = 1000;
/// A shard's first read of its share of a thousand zones, in a debug build.
const STARTUP: Duration = Duration::from_secs(120);

fn zone_name(z: usize) -> String {
    format!("zone-{z:04}")
}

/// One `serve` process and where it listens (read from its own log: it binds port 0).
struct ShardProcess {
    index: u32,
    addr: SocketAddr,
    _child: tokio::process::Child,
}

impl ShardProcess {
    async fn start(config: &Path, index: u32, total: u32) -> Self {
        let (index_arg, total_arg) = (index.to_string(), total.to_string());
        let args = ["--total-shards", &total_arg, "--shard", &index_arg];
        let (child, addr) = spawn_serve(config, &args, &[], STARTUP).await;
        Self {
            index,
            addr,
            _child: child,
        }
    }

    async fn status(&self) -> Value {
        let (code, body) = get(self.addr, "/status?limit=10", None).await;
        assert_eq!(code, 200, "shard {}: {body}", self.index);
        serde_json::from_str(&body).expect("JSON status")
    }

    /// The zones this process judges, once it has read every control plane it reads and
    /// found them converged.
    async fn converged_zones(&self) -> BTreeSet<String> {
        let index = self.index;
        let last = std::sync::Mutex::new(Value::Null);
        let status = tokio::time::timeout(STARTUP, async {
            loop {
                let status = self.status().await;
                if status["ready"] == true && status["converged"] == true {
                    return status;
                }
                *last.lock().expect("not poisoned") = status;
                // A status is a poll of another process; its reads take this long anyway.
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        })
        .await
        .unwrap_or_else(|_| {
            let last = last.lock().expect("not poisoned");
            let failing: Vec<(&String, &Value)> = last["sources"]
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(_, s)| s["up"] != true)
                .take(5)
                .collect();
            panic!(
                "shard {index} not converged within {STARTUP:?}: ready {}, converged {}, {} zones, {} discrepancies, sources not up: {failing:?}",
                last["ready"],
                last["converged"],
                last["zones"].as_array().map_or(0, Vec::len),
                last["discrepancies_total"],
            )
        });
        assert_eq!(
            status["unmonitored_zones"],
            serde_json::json!([]),
            "shard {index}: a zone another shard owns is not unmonitored"
        );
        status["zones"]
            .as_array()
            .expect("zones")
            .iter()
            .map(|z| z["zone"].as_str().expect("zone name").to_owned())
            .collect()
    }
}

/// Starts `total` shards and returns each one's zones, checking that the processes
/// between them judge every zone exactly once, that only shard 0 exports the global's
/// health and runs the probe, and that each exports only its zones' series.
async fn judged_by(config: &Path, total: u32) -> BTreeMap<String, u32> {
    let mut shards = Vec::new();
    for index in 0..total {
        shards.push(ShardProcess::start(config, index, total).await);
    }
    let mut owner = BTreeMap::new();
    for shard in &shards {
        for zone in shard.converged_zones().await {
            if let Some(other) = owner.insert(zone.clone(), shard.index) {
                panic!("{zone} judged by shards {other} and {}", shard.index);
            }
        }
    }
    let all: BTreeSet<String> = (0..ZONES).map(zone_name).collect();
    let judged: BTreeSet<String> = owner.keys().cloned().collect();
    assert_eq!(judged, all, "{total} shards: every zone judged");
    for shard in &shards {
        let (code, m) = get(shard.addr, "/metrics", None).await;
        assert_eq!(code, 200);
        let index = shard.index;
        assert!(
            m.contains(&format!(
                "kuma_sync_shard_info{{shard=\"{index}\",total=\"{total}\"}} 1"
            )),
            "shard {index}"
        );
        assert_eq!(
            m.contains("kuma_sync_up{cp=\"global\"}"),
            index == 0,
            "shard {index}: global health"
        );
        assert_eq!(
            m.lines().any(|l| l.starts_with("kuma_sync_kds_connected")),
            index == 0,
            "shard {index}: one KDS probe"
        );
        let series: BTreeSet<&str> = m
            .lines()
            .filter_map(|l| l.strip_prefix("kuma_sync_zone_converged{zone=\""))
            .filter_map(|l| l.split('"').next())
            .collect();
        let ours: BTreeSet<&str> = owner
            .iter()
            .filter(|(_, o)| **o == index)
            .map(|(z, _)| z.as_str())
            .collect();
        assert_eq!(
            series, ours,
            "shard {index}: a zone's series come from its owner only"
        );
        assert!(!ours.is_empty(), "shard {index} judges no zone");
    }
    owner
}

/// Open files a run needs: the lab's thousand and one listeners and their connections,
/// in this process; each shard's connections to its zones, in its own.
const OPEN_FILES: u64 = 4 * ZONES as u64;

/// The soft limit on open files, from /proc (the same for the child processes).
fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_zones_over_shard_processes_and_a_shard_added_and_removed() {
    if let Some(limit) = open_files_limit() {
        assert!(
            limit >= OPEN_FILES,
            "this test needs {OPEN_FILES} open files and the limit is {limit}: raise it (`ulimit -n`; .ci/test does)"
        );
    }
    // The zones hold their copies already, as KDS would have left them: what is tested
    // is how the shards split the zones, not how a thousand zones sync.
    let lab = RestLab::start(ZONES, true).await;
    // The probe (shard 0's) needs the global's KDS.
    let kds = start_global_kds(
        lab.global.clone(),
        "127.0.0.1:0".parse().expect("an address"),
        KdsServerConfig::default(),
    )
    .await
    .expect("the global's KDS starts");

    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = format!(
        "global: {{api: {{url: \"{}\"}}}}\ntypes: [MeshCircuitBreaker]\nintervals: {{poll: 2s}}\nkds: {{address: \"{}\"}}\nzones:\n",
        lab.global_url,
        kds.url()
    );
    for (z, url) in lab.zone_urls.iter().enumerate() {
        config.push_str(&format!(
            "  - {{name: {}, api: {{url: \"{url}\"}}}}\n",
            zone_name(z)
        ));
    }
    let path = dir.path().join("kuma-sync.yaml");
    std::fs::write(&path, config).expect("write config");

    let four = judged_by(&path, 4).await;
    let five = judged_by(&path, 5).await;
    // Going from four shards to five, a zone stays where it was or goes to the new shard.
    let moved: Vec<(&String, u32, u32)> = four
        .iter()
        .map(|(zone, was)| (zone, *was, five[zone]))
        .filter(|(_, was, now)| was != now)
        .collect();
    assert!(
        moved.iter().all(|(_, _, now)| *now == 4),
        "zones moved between old shards: {:?}",
        moved.iter().filter(|(_, _, now)| *now != 4).collect::<Vec<_>>()
    );
    // About a fifth of them, as rendezvous hashing promises.
    assert!(
        (ZONES / 10..=ZONES * 3 / 10).contains(&moved.len()),
        "{} of {ZONES} zones moved",
        moved.len()
    );
    // And back to four: the new shard's zones return to where they were, no other moves.
    let again = judged_by(&path, 4).await;
    assert_eq!(again, four, "removing the fifth shard moves only its zones");
    kds.shutdown().await;
}
