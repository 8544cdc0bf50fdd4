//! A Kubernetes-style API over a control plane's store, for the `kuma.io/v1alpha1`
//! custom resources, so that kube-rs `Api::<DynamicObject>` and `watcher()` run against
//! the simulator unchanged (issue 5).
//!
//! Served, read-only, over plaintext HTTP/1.1:
//! - discovery: `/api`, `/api/v1`, `/apis`, `/apis/kuma.io`, `/apis/kuma.io/v1alpha1`, `/version`;
//! - lists and watches at `/apis/kuma.io/v1alpha1/{plural}` (all namespaces, and every
//!   cluster-scoped type) and `/apis/kuma.io/v1alpha1/namespaces/{ns}/{plural}`, plus
//!   `.../{name}` to get one object;
//! - list parameters `limit`, `continue`, `resourceVersion`, `resourceVersionMatch`,
//!   `labelSelector`, `fieldSelector` (`metadata.name`, `metadata.namespace`);
//! - watch parameters `watch`, `resourceVersion`, `timeoutSeconds`, `allowWatchBookmarks`,
//!   `sendInitialEvents` (streaming lists, with the `k8s.io/initial-events-end` bookmark).
//!
//! Objects are mapped as Kuma's Kubernetes store keeps them ([`object`], kuma-semantics 9).
//! The store has no resource versions, so a [`journal`] diffs it on every change and
//! numbers the changes; versions older than its history answer `410 Gone` (`Expired`):
//! an HTTP 410 for lists, an in-stream `ERROR` event for watches, as the apiserver does.
//!
//! # Layout
//! - [`object`]: core resource to Kubernetes object, and the served types.
//! - [`journal`]: resource versions, change history and past snapshots.
//! - [`selector`]: label and field selectors.
//! - `status`: `metav1.Status` failures.
//! - `lease`: the Leases clients write.
//! - `routes`: paths, discovery, get and list; `query`: parameters and continue tokens;
//!   `watch`: the event stream.
//!
//! Written, with the apiserver's optimistic concurrency (a `PUT` from a stale
//! `resourceVersion` is `409 Conflict`, a `POST` of an existing name `409 AlreadyExists`):
//! `coordination.k8s.io/v1` Leases at `/apis/coordination.k8s.io/v1/namespaces/{ns}/leases[/{name}]`
//! (`GET`, `POST`, `PUT`, `DELETE`), for leader election; and namespaced kuma.io objects
//! (`POST` to a collection, `PUT` of one), read as Kuma's Kubernetes store reads them, for
//! kuma-sync's canary.
//!
//! # Deviations from a real apiserver
//! - `PATCH` and `DELETE` of kuma.io objects answer `405 MethodNotAllowed`, as does any
//!   write of a cluster-scoped one; a Lease cannot be patched.
//! - Core `v1` Secrets are not served; neither are Table or protobuf encodings.
//! - Lists honour `limit` even with `resourceVersion=0` (the apiserver's watch cache
//!   ignores it there); pages of one list are consistent, served from one snapshot.
//! - A watch from a version newer than the journal waits for it instead of failing.

pub mod journal;
mod lease;
pub mod object;
mod query;
mod routes;
pub mod selector;
mod status;
mod watch;

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use http_serve::Server;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::ResourceStore;
use journal::Journal;

/// How the simulated apiserver behaves where a real one is configured.
#[derive(Debug, Clone)]
pub struct K8sApiConfig {
    /// Changes kept for resuming watches and continuing lists (the watch cache's
    /// capacity; etcd compaction in a real cluster). Older versions get 410.
    pub history_limit: usize,
    /// How often a watch that asked for bookmarks gets one.
    pub bookmark_interval: Duration,
    /// A watch without `timeoutSeconds` ends after this (the apiserver picks
    /// `--min-request-timeout` to twice that, at random).
    pub default_watch_timeout: Duration,
    /// How long a list for a version the journal has not reached waits before a 504.
    pub resource_version_wait: Duration,
}

impl Default for K8sApiConfig {
    fn default() -> Self {
        Self {
            history_limit: 1000,
            bookmark_interval: Duration::from_secs(60),
            default_watch_timeout: Duration::from_secs(1800),
            resource_version_wait: Duration::from_secs(3),
        }
    }
}

/// Why the API could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The listen address could not be bound (in use, or not local).
    #[error("failed to bind the Kubernetes API listener on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// The previous listener's socket may still be closing.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Bind { source, .. } if source.kind() == std::io::ErrorKind::AddrInUse)
    }
}

/// What every request handler shares.
pub(crate) struct Shared {
    journal: Arc<Journal>,
    config: K8sApiConfig,
    /// Cancelled when the server stops; open watches end.
    stop: CancellationToken,
    local_addr: Option<SocketAddr>,
    /// The only objects clients may write: a leader election's.
    leases: lease::Leases,
}

/// Serves the API on `listener` with default settings until `shutdown` completes.
pub async fn serve_k8s_api(
    store: Arc<dyn ResourceStore>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    serve_k8s_api_with(store, listener, K8sApiConfig::default(), shutdown).await
}

/// Serves the API on `listener` until `shutdown` completes; open watches then end and
/// connections close (after at most the server's drain timeout).
pub async fn serve_k8s_api_with(
    store: Arc<dyn ResourceStore>,
    listener: TcpListener,
    config: K8sApiConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    // One signal for the watches and the server: a watch is a response that never ends
    // by itself, so the server's drain would otherwise wait it out.
    let stop = CancellationToken::new();
    let journal = Arc::new(Journal::new(store, config.history_limit));
    journal.sync();
    let shared = Arc::new(Shared {
        journal: journal.clone(),
        config,
        stop: stop.clone(),
        local_addr: listener.local_addr().ok(),
        leases: lease::Leases::default(),
    });
    let follower = tokio::spawn(follow_store(journal, stop.clone()));
    let handler = move |request| {
        let shared = shared.clone();
        async move { routes::handle(&shared, request).await }
    };
    let stopping = async {
        shutdown.await;
        stop.cancel();
    };
    Server::new("Kubernetes API", listener)
        .serve(handler, stopping)
        .await;
    let _ = follower.await;
}

/// A running API on its own task.
#[derive(Debug)]
pub struct K8sApiHandle {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl K8sApiHandle {
    /// Where the API listens; `http://{addr}` is a kube `Config` cluster URL.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops serving and waits for open connections to close.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for K8sApiHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A kubeconfig for the simulated API at `server` (`http://host:port`): plain HTTP and no
/// credentials, as the simulator asks for none. kube-rs reads it like any other.
pub fn kubeconfig(name: &str, server: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: {name}\n  cluster:\n    server: {server}\nusers:\n- name: {name}\n  user: {{}}\ncontexts:\n- name: {name}\n  context:\n    cluster: {name}\n    user: {name}\ncurrent-context: {name}\n"
    )
}

/// Binds `addr` (port 0 picks one) and serves the API on a new task.
pub async fn start_k8s_api(
    store: Arc<dyn ResourceStore>,
    addr: SocketAddr,
    config: K8sApiConfig,
) -> Result<K8sApiHandle, Error> {
    let bind_error = |source| Error::Bind { addr, source };
    let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
    let addr = listener.local_addr().map_err(bind_error)?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(serve_k8s_api_with(store, listener, config, async {
        let _ = stop_rx.await;
    }));
    Ok(K8sApiHandle {
        addr,
        stop: Some(stop_tx),
        task: Some(task),
    })
}

/// Keeps the journal, and so every open watch, up with the store.
async fn follow_store(journal: Arc<Journal>, stop: CancellationToken) {
    let mut changes = journal.store().subscribe();
    loop {
        tokio::select! {
            changed = changes.changed() => {
                if changed.is_err() {
                    return;
                }
                journal.sync();
            }
            () = stop.cancelled() => return,
        }
    }
}
