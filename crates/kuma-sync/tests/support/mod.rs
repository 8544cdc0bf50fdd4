//! Shared pieces of kuma-sync's end-to-end tests: resources shaped as on Kubernetes
//! control planes, kubeconfigs for simulated clusters, and a raw HTTP GET.

#![allow(dead_code)] // each test binary uses a part

use std::{net::SocketAddr, path::Path, sync::Arc, time::Duration};

use kuma_model::{Environment, Resource, ResourceType, labels, resource::expected_name_in_zone};
use kuma_sync::{
    config::{CpConfig, SourceConfig},
    serve,
};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const WAIT: Duration = Duration::from_secs(20);

/// The federate guide's MeshCircuitBreaker as a Kubernetes global holds it (kuma-semantics 6.6).
pub fn global_mcb(max_connections: u32) -> Resource {
    Resource::new(
        ResourceType::from_name("MeshCircuitBreaker").unwrap(),
        Some("default"),
        "demo-app-to-redis.kuma-system",
        json!({"targetRef": {"kind": "Mesh"}, "to": [{"targetRef": {"kind": "MeshService", "name": "redis"},
               "default": {"connectionLimits": {"maxConnections": max_connections}}}]}),
    )
    .with_label(labels::MESH, "default")
    .with_label(labels::NAMESPACE, "kuma-system")
    .with_label(labels::POLICY_ROLE, "system")
    .with_label(labels::DISPLAY_NAME, "demo-app-to-redis")
}

/// Its copy in a Kubernetes zone.
pub fn zone_copy(max_connections: u32) -> Resource {
    let mut r = global_mcb(max_connections).with_label(labels::ORIGIN, "global");
    r.name = "demo-app-to-redis-48bc6d6w28bw7b44.kuma-system".into();
    r
}

/// A kubeconfig for a plain-HTTP simulated API server.
pub fn kubeconfig(dir: &Path, name: &str, addr: SocketAddr) -> std::path::PathBuf {
    let path = dir.join(format!("{name}.kubeconfig"));
    let text = kuma_sim::k8s_api::kubeconfig(name, &format!("http://{addr}"));
    std::fs::write(&path, text).expect("write kubeconfig");
    path
}

/// `GET path` over a fresh connection; returns (status, body).
pub async fn get(addr: SocketAddr, path: &str, auth: Option<&str>) -> (u16, String) {
    let auth = auth
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    exchange(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: test\r\n{auth}Connection: close\r\n\r\n"),
    )
    .await
}

/// `PUT path` with a JSON `body` over a fresh connection; returns (status, body).
pub async fn put(addr: SocketAddr, path: &str, body: &str) -> (u16, String) {
    let len = body.len();
    exchange(
        addr,
        format!("PUT {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n{body}"),
    )
    .await
}

/// Sends one raw HTTP/1.1 request and reads the answer until the server closes.
async fn exchange(addr: SocketAddr, req: String) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(req.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    tokio::time::timeout(WAIT, s.read_to_end(&mut buf))
        .await
        .expect("answer in time")
        .expect("read");
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// Compares with `tests/golden/<name>`; `UPDATE_GOLDEN=1` rewrites it instead.
pub fn golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).expect("write golden");
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run with UPDATE_GOLDEN=1)", path.display()));
    assert_eq!(actual, expected, "output differs from {}", path.display());
}

/// The value of the first sample of `series` (an exact `name{labels}` prefix) in a scrape.
pub fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next().and_then(|v| v.parse().ok()))
}

/// Runs the real `promtool check metrics` on a scrape and fails with its complaints.
pub fn promtool_check_metrics(scrape: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("metrics.txt");
    std::fs::write(&file, scrape).expect("write scrape");
    // promtool reads the scrape on stdin and returns at once; no timeout needed.
    let out = std::process::Command::new(
        deploy_tests::process::PROMTOOL
            .locate()
            .expect("promtool installed (apt-get install prometheus)"),
    )
    .args(["check", "metrics"])
    .stdin(std::fs::File::open(&file).expect("open scrape"))
    .output()
    .expect("promtool runs");
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The federate guide's MeshCircuitBreaker as a universal global holds it.
pub fn universal_mcb(max_connections: u32) -> Resource {
    Resource::new(
        ResourceType::from_name("MeshCircuitBreaker").unwrap(),
        Some("default"),
        "demo-app-to-redis",
        json!({"targetRef": {"kind": "Mesh"}, "to": [{"targetRef": {"kind": "MeshService", "name": "redis"},
               "default": {"connectionLimits": {"maxConnections": max_connections}}}]}),
    )
    .with_label(labels::MESH, "default")
}

/// Its copy in a universal zone, as KDS writes it.
pub fn universal_copy(src: &Resource) -> Resource {
    let mut c = src
        .clone()
        .with_label(labels::ORIGIN, "global")
        .with_label(labels::DISPLAY_NAME, &src.name);
    c.name = expected_name_in_zone(src, &Environment::Universal, &Environment::Universal);
    c
}

/// A universal control plane read over its REST API.
pub fn rest_cp(url: String) -> CpConfig {
    CpConfig {
        source: SourceConfig::Api {
            url,
            token: None,
            token_file: None,
            ca_file: None,
        },
        environment: Environment::Universal,
    }
}

/// Waits on the monitor's change notifications until `cond` holds.
pub async fn until(running: &serve::Running, what: &str, cond: impl Fn(&serve::Running) -> bool) {
    let mut rx = running.monitor.subscribe();
    let wait = async {
        while !cond(running) {
            rx.changed().await.expect("monitor alive");
        }
    };
    tokio::time::timeout(WAIT, wait)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"));
}

/// A universal global and universal zones on kuma-sim's REST API, with mesh `default`
/// everywhere and the federate guide's MeshCircuitBreaker on the global.
pub struct RestLab {
    pub global: Arc<kuma_sim::GlobalStore>,
    pub zones: Vec<Arc<kuma_sim::GlobalStore>>,
    pub global_url: String,
    pub zone_urls: Vec<String>,
    /// The global's API first, then each zone's; `None` once stopped.
    apis: Vec<Option<kuma_sim::rest::RestHandle>>,
}

impl RestLab {
    /// `zones` zones, each holding the policy's copy when `copies`.
    pub async fn start(zones: usize, copies: bool) -> Self {
        let mesh = Resource::new(
            ResourceType::from_name("Mesh").unwrap(),
            None,
            "default",
            json!({}),
        );
        let store = || Arc::new(kuma_sim::GlobalStore::new(Environment::Universal));
        let global = store();
        global.upsert(mesh.clone());
        global.upsert(universal_mcb(2));
        let zones: Vec<_> = (0..zones).map(|_| store()).collect();
        for z in &zones {
            z.upsert(mesh.clone());
            if copies {
                z.upsert(universal_copy(&universal_mcb(2)));
            }
        }
        let start = |api: kuma_sim::rest::RestApi| async move {
            api.start("127.0.0.1:0".parse().unwrap())
                .await
                .expect("REST API starts")
        };
        let mut apis = vec![start(kuma_sim::rest::RestApi::global(global.clone())).await];
        for z in &zones {
            apis.push(start(kuma_sim::rest::RestApi::new(z.clone())).await);
        }
        let urls: Vec<String> = apis.iter().map(|a| a.url()).collect();
        Self {
            global,
            zones,
            global_url: urls[0].clone(),
            zone_urls: urls[1..].to_vec(),
            apis: apis.into_iter().map(Some).collect(),
        }
    }

    /// Requests answered by the global's API (`None`) or zone `i`'s.
    pub fn answered(&self, zone: Option<usize>) -> tokio::sync::watch::Receiver<u64> {
        let api = self.apis[zone.map_or(0, |i| i + 1)]
            .as_ref()
            .expect("API running");
        api.answered()
    }

    /// Takes zone `i`'s API down: the zone becomes unreachable.
    pub async fn stop_zone_api(&mut self, i: usize) {
        if let Some(api) = self.apis[i + 1].take() {
            api.shutdown().await;
        }
    }
}

/// `kuma-sync serve --config <config> <args>` as a process on a port of its own choosing
/// (`--listen 127.0.0.1:0`, so no port is picked and freed for it first): where it
/// listens is read from its JSON log, which is then drained so a full pipe never stops
/// it. Killed if dropped.
pub async fn spawn_serve(
    config: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    within: Duration,
) -> (tokio::process::Child, SocketAddr) {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_kuma-sync"))
        .args(["serve", "--config", config.to_str().expect("utf-8 path")])
        .args(["--listen", "127.0.0.1:0", "--log-format", "json"])
        .args(args)
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("kuma-sync runs");
    let mut lines = tokio::io::BufReader::new(child.stderr.take().expect("piped stderr")).lines();
    let addr = tokio::time::timeout(within, async {
        while let Some(line) = lines.next_line().await.expect("read the log") {
            if let Ok(entry) = serde_json::from_str::<serde_json::Value>(&line)
                && let Some(addr) = entry["fields"]["local_addr"].as_str()
            {
                return addr.parse::<SocketAddr>().expect("an address");
            }
        }
        panic!("kuma-sync serve {args:?} exited before it listened");
    })
    .await
    .unwrap_or_else(|_| panic!("kuma-sync serve {args:?} did not listen within {within:?}"));
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, addr)
}

/// `kuma-sync <args>` as a child process with captured output, killed if dropped.
pub fn kuma_sync(args: &[&str]) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_kuma-sync"))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("kuma-sync runs")
}
