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
//! - `routes`: paths, discovery, get and list; `query`: parameters and continue tokens;
//!   `watch`: the event stream.
//!
//! # Deviations from a real apiserver
//! - Writes (`POST`, `PUT`, `PATCH`, `DELETE`) answer `405 MethodNotAllowed`.
//! - Core `v1` Secrets are not served; neither are Table or protobuf encodings.
//! - Lists honour `limit` even with `resourceVersion=0` (the apiserver's watch cache
//!   ignores it there); pages of one list are consistent, served from one snapshot.
//! - A watch from a version newer than the journal waits for it instead of failing.

pub mod journal;
pub mod object;
mod query;
mod routes;
pub mod selector;
mod status;
mod watch;

use std::{convert::Infallible, future::Future, net::SocketAddr, pin::pin, sync::Arc, time::Duration};

use hyper::{server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::{net::TcpListener, sync::watch as signal, task::JoinSet};

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
    /// Turns true when the server stops; open watches end.
    stop: signal::Receiver<bool>,
    local_addr: Option<SocketAddr>,
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
/// connections close (after at most 5 seconds).
pub async fn serve_k8s_api_with(
    store: Arc<dyn ResourceStore>,
    listener: TcpListener,
    config: K8sApiConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let (stop_tx, stop) = signal::channel(false);
    let journal = Arc::new(Journal::new(store, config.history_limit));
    journal.sync();
    let shared = Arc::new(Shared {
        journal: journal.clone(),
        config,
        stop: stop.clone(),
        local_addr: listener.local_addr().ok(),
    });
    let mut tasks = JoinSet::new();
    tasks.spawn(follow_store(journal, stop.clone()));
    let mut shutdown = pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    tasks.spawn(serve_connection(shared.clone(), stream, stop.clone()));
                }
                Err(error) => {
                    // Usually out of file descriptors: wait for some to free up.
                    tracing::warn!(%error, "Kubernetes API accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(Duration::from_secs(5), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tasks.abort_all();
    }
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
async fn follow_store(journal: Arc<Journal>, mut stop: signal::Receiver<bool>) {
    let mut changes = journal.store().subscribe();
    loop {
        tokio::select! {
            changed = changes.changed() => {
                if changed.is_err() {
                    return;
                }
                journal.sync();
            }
            () = until_stopped(&mut stop) => return,
        }
    }
}

async fn serve_connection(
    shared: Arc<Shared>,
    stream: tokio::net::TcpStream,
    mut stop: signal::Receiver<bool>,
) {
    let service = service_fn(move |request| {
        let shared = shared.clone();
        async move { Ok::<_, Infallible>(routes::handle(&shared, request).await) }
    });
    let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    let mut connection = pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(error) = result {
                tracing::debug!(%error, "Kubernetes API connection ended with an error");
            }
        }
        () = until_stopped(&mut stop) => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}

/// Resolves once the server stops (or its stop signal is gone). Returns nothing so that
/// no `watch::Ref` guard lives in a `select!` that must stay `Send`.
pub(crate) async fn until_stopped(stop: &mut signal::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}
