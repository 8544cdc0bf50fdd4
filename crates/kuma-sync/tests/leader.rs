//! Leader election against kuma-sim's Kubernetes API, whose Leases refuse a stale
//! `resourceVersion` with 409 Conflict as the apiserver does: one replica of two leads,
//! the other takes over within the lease duration when the leader dies, and at once when
//! it shuts down and gives the lease up.

use std::{sync::Arc, time::Duration};

use k8s_openapi::api::coordination::v1::Lease;
use kuma_model::Environment;
use kuma_sim::{GlobalStore, k8s_api};
use kuma_sync::leader::{ElectionConfig, Elector};
use tokio::{sync::watch, task::JoinHandle};
use tokio_util::sync::CancellationToken;

const LEASE: Duration = Duration::from_secs(3);

struct Replica {
    name: &'static str,
    leading: watch::Receiver<bool>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

async fn client(api: &k8s_api::K8sApiHandle) -> kube::Client {
    let url = format!("http://{}", api.addr()).parse().expect("a URL");
    kube::Client::try_from(kube::Config::new(url)).expect("a client")
}

async fn replica(api: &k8s_api::K8sApiHandle, name: &'static str) -> Replica {
    let mut config = ElectionConfig::new("kuma-sync", "kuma-sync-leader", name);
    config.lease_duration = LEASE;
    config.renew_deadline = Duration::from_secs(2);
    config.retry_period = Duration::from_millis(200);
    config.check().expect("coherent timings");
    let (tx, leading) = watch::channel(false);
    let stop = CancellationToken::new();
    let elector = Elector::new(client(api).await, config);
    let task = tokio::spawn(elector.run(tx, stop.clone().cancelled_owned()));
    Replica {
        name,
        leading,
        stop,
        task,
    }
}

/// Waits until exactly one of `replicas` leads, and returns it.
async fn one_leader(replicas: &mut [&mut Replica], within: Duration) -> &'static str {
    tokio::time::timeout(within, async {
        loop {
            let leaders: Vec<&str> = replicas
                .iter()
                .filter(|r| *r.leading.borrow())
                .map(|r| r.name)
                .collect();
            assert!(leaders.len() <= 1, "two leaders at once: {leaders:?}");
            if let [leader] = leaders.as_slice() {
                return *leader;
            }
            // Any replica's change may make a leader.
            let changes = replicas.iter_mut().map(|r| Box::pin(r.leading.changed()));
            let _ = futures::future::select_all(changes).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no single leader within {within:?}"))
}

async fn lease(api: &k8s_api::K8sApiHandle, name: &str) -> Lease {
    kube::Api::<Lease>::namespaced(client(api).await, "kuma-sync")
        .get(name)
        .await
        .expect("the lease")
}

async fn api() -> k8s_api::K8sApiHandle {
    k8s_api::start_k8s_api(
        Arc::new(GlobalStore::new(Environment::kubernetes())),
        "127.0.0.1:0".parse().expect("an address"),
        k8s_api::K8sApiConfig::default(),
    )
    .await
    .expect("the Kubernetes API starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_leader_dies_the_other_replica_takes_over_within_the_lease() {
    let api = api().await;
    let (mut a, mut b) = (replica(&api, "replica-a").await, replica(&api, "replica-b").await);
    let first = one_leader(&mut [&mut a, &mut b], LEASE * 2).await;
    let (mut dead, mut survivor) = if first == a.name { (a, b) } else { (b, a) };
    assert_eq!(
        lease(&api, "kuma-sync-leader")
            .await
            .spec
            .unwrap()
            .holder_identity
            .as_deref(),
        Some(first)
    );

    // Killed: no release, the lease is left to expire.
    dead.task.abort();
    let _ = (&mut dead.task).await;
    let died = tokio::time::Instant::now();
    let next = one_leader(&mut [&mut survivor], LEASE * 3).await;
    let took = died.elapsed();
    assert_eq!(next, survivor.name);
    assert!(
        took <= LEASE + Duration::from_secs(1),
        "leadership moved after {took:?}, the lease is {LEASE:?}"
    );
    let spec = lease(&api, "kuma-sync-leader").await.spec.expect("spec");
    assert_eq!(spec.holder_identity.as_deref(), Some(survivor.name));
    assert_eq!(spec.lease_transitions, Some(1), "one change of holder");
    survivor.stop.cancel();
    let _ = survivor.task.await;
    drop(dead.stop);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_shuts_down_gives_the_lease_up_at_once() {
    let api = api().await;
    let (mut a, mut b) = (replica(&api, "replica-a").await, replica(&api, "replica-b").await);
    let first = one_leader(&mut [&mut a, &mut b], LEASE * 2).await;
    let (leaving, mut staying) = if first == a.name { (a, b) } else { (b, a) };
    leaving.stop.cancel();
    leaving.task.await.expect("the elector ends");
    assert!(!*leaving.leading.borrow(), "a replica that left does not lead");
    let left = tokio::time::Instant::now();
    assert_eq!(one_leader(&mut [&mut staying], LEASE * 2).await, staying.name);
    // Given up, the lease is taken on the next try, not after it expires.
    assert!(left.elapsed() < LEASE, "took {:?}", left.elapsed());
    staying.stop.cancel();
    let _ = staying.task.await;
}

#[test]
fn timings_that_could_make_two_leaders_are_refused() {
    let mut config = ElectionConfig::new("ns", "lease", "me");
    assert!(config.check().is_ok());
    config.renew_deadline = config.lease_duration;
    assert!(
        config.check().is_err(),
        "a leader must step down before its lease expires"
    );
    let no_one = ElectionConfig::new("ns", "lease", "");
    assert!(no_one.check().is_err());
}

/// Two `serve` replicas of one configuration, electing on the simulated cluster's Lease.
mod replicas {
    use std::net::SocketAddr;

    use kuma_sim::{KdsServerConfig, start_global_kds};

    use super::*;
    use crate::support::{RestLab, get, kubeconfig, sample, spawn_serve};

    struct Process {
        name: &'static str,
        addr: SocketAddr,
        child: tokio::process::Child,
    }

    /// Starts a replica named `name` (its HOSTNAME, as a pod's) and reads where it listens.
    async fn start(config: &std::path::Path, name: &'static str) -> Process {
        let (child, addr) = spawn_serve(config, &[], &[("HOSTNAME", name)], Duration::from_secs(30)).await;
        Process { name, addr, child }
    }

    async fn metrics(p: &Process) -> String {
        let (code, body) = get(p.addr, "/metrics", None).await;
        assert_eq!(code, 200, "{}", p.name);
        body
    }

    /// Waits until `p` says it leads and its probe has connected, or `within` passes.
    async fn leads(p: &Process, within: Duration) -> bool {
        tokio::time::timeout(within, async {
            loop {
                let m = metrics(p).await;
                if sample(&m, "kuma_sync_leader") == Some(1.0)
                    && sample(&m, "kuma_sync_kds_connected") == Some(1.0)
                {
                    return;
                }
                // Another process's state: asked again at the election's own pace.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await
        .is_ok()
    }

    /// `zones` REST zones holding their copies, the global's KDS, a cluster for the
    /// Lease, and a configuration electing on it (with `extra` lines) written for them.
    struct Replicated {
        _lab: RestLab,
        kds: kuma_sim::KdsHandle,
        cluster: k8s_api::K8sApiHandle,
        config: std::path::PathBuf,
        _dir: tempfile::TempDir,
    }

    async fn replicated(zones: usize, extra: &str) -> Replicated {
        let lab = RestLab::start(zones, true).await;
        let kds = start_global_kds(
            lab.global.clone(),
            "127.0.0.1:0".parse().expect("an address"),
            KdsServerConfig::default(),
        )
        .await
        .expect("the global's KDS");
        let cluster = super::api().await;
        let dir = tempfile::tempdir().expect("temp dir");
        let kc = kubeconfig(dir.path(), "cluster", cluster.addr());
        let zones: String = lab
            .zone_urls
            .iter()
            .enumerate()
            .map(|(i, url)| format!("{{name: zone-{}, api: {{url: \"{url}\"}}}}", i + 1))
            .collect::<Vec<_>>()
            .join(", ");
        let config = dir.path().join("kuma-sync.yaml");
        std::fs::write(
            &config,
            format!(
                "global: {{api: {{url: \"{}\"}}}}\nzones: [{zones}]\n\
                 types: [MeshCircuitBreaker]\nintervals: {{poll: 1s}}\nkds: {{address: \"{}\"}}\n{extra}\
                 leaderElection: {{namespace: kuma-sync, kubeconfig: \"{}\", leaseDuration: 3s, renewDeadline: 2s, retryPeriod: 200ms}}\n",
                lab.global_url,
                kds.url(),
                kc.display()
            ),
        )
        .expect("write the config");
        Replicated {
            _lab: lab,
            kds,
            cluster,
            config,
            _dir: dir,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_probe_runs_on_the_leader_only_and_moves_when_it_is_killed() {
        let setup = replicated(1, "").await;
        let (config, cluster) = (&setup.config, &setup.cluster);
        let a = start(config, "kuma-sync-a").await;
        let b = start(config, "kuma-sync-b").await;
        let (first, other) = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                if leads(&a, Duration::from_millis(300)).await {
                    return (a, b);
                }
                if leads(&b, Duration::from_millis(300)).await {
                    return (b, a);
                }
            }
        })
        .await
        .expect("a leader within 20 s");
        // The follower reads and judges too, but runs no probe and exports none of its
        // families: nothing there reads as a disconnected probe.
        let m = metrics(&other).await;
        assert_eq!(sample(&m, "kuma_sync_leader"), Some(0.0), "{}", other.name);
        assert!(
            !m.contains("kuma_sync_kds_"),
            "{}: probe families on a follower",
            other.name
        );
        assert!(
            m.contains("kuma_sync_zone_converged{zone=\"zone-1\"}"),
            "{}",
            other.name
        );
        let lease = super::lease(cluster, "kuma-sync").await;
        assert_eq!(lease.spec.unwrap().holder_identity.as_deref(), Some(first.name));

        // The leader's node dies: nothing gives the lease up.
        let mut first = first;
        first.child.kill().await.expect("kill the leader");
        let died = tokio::time::Instant::now();
        assert!(
            leads(&other, Duration::from_secs(10)).await,
            "{} did not take over",
            other.name
        );
        let took = died.elapsed();
        // The lease (3 s) expires, then the next try (200 ms) takes it; the probe connects.
        assert!(took < Duration::from_secs(6), "took over after {took:?}");
        let lease = super::lease(cluster, "kuma-sync").await;
        assert_eq!(lease.spec.unwrap().holder_identity.as_deref(), Some(other.name));
        setup.kds.shutdown().await;
    }

    /// Two shards of two replicas each: every shard elects its own leader on its own
    /// Lease, and of the four processes only shard 0's leader runs the probe.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn each_shard_elects_its_own_leader() {
        let setup = replicated(4, "shards: {total: 2, replicas: 2}\n").await;
        let (config, cluster) = (&setup.config, &setup.cluster);
        let names = ["kuma-sync-0", "kuma-sync-1", "kuma-sync-2", "kuma-sync-3"];
        let mut pods = Vec::new();
        for name in names {
            pods.push(start(config, name).await);
        }
        // Each shard's Lease gets a holder among that shard's pods (ordinal mod 2).
        let holders = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                let mut holders = Vec::new();
                for shard in 0..2 {
                    let lease = kube::Api::<Lease>::namespaced(client(cluster).await, "kuma-sync")
                        .get_opt(&format!("kuma-sync-shard-{shard}"))
                        .await
                        .expect("read the lease");
                    holders.push(lease.and_then(|l| l.spec).and_then(|s| s.holder_identity));
                }
                if holders.iter().all(Option::is_some) {
                    return holders.into_iter().flatten().collect::<Vec<String>>();
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
        .await
        .expect("every shard elects a leader");
        for (shard, holder) in holders.iter().enumerate() {
            let ordinal: usize = holder
                .rsplit('-')
                .next()
                .and_then(|o| o.parse().ok())
                .expect("an ordinal");
            assert_eq!(
                ordinal % 2,
                shard,
                "shard {shard}'s lease is held by {holder}, a pod of another shard"
            );
        }
        // Settled: the leaders say so, and the probe runs on shard 0's leader alone.
        assert!(
            leads(
                &pods[holders[0].rsplit('-').next().unwrap().parse::<usize>().unwrap()],
                Duration::from_secs(10)
            )
            .await
        );
        for pod in &pods {
            let m = metrics(pod).await;
            let leader = holders.iter().any(|h| h == pod.name);
            assert_eq!(
                sample(&m, "kuma_sync_leader"),
                Some(if leader { 1.0 } else { 0.0 }),
                "{}",
                pod.name
            );
            let probe = m.contains("kuma_sync_kds_connected");
            assert_eq!(
                probe,
                pod.name == holders[0],
                "{}: the probe only on shard 0's leader",
                pod.name
            );
        }
        setup.kds.shutdown().await;
    }
}
