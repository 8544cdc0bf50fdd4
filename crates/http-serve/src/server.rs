//! The accept loop: one task per connection, tracked, and drained on shutdown.

use std::{convert::Infallible, future::Future, net::SocketAddr, pin::pin, time::Duration};

use hyper::{Request, Response, body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{io::AsyncRead, io::AsyncWrite, task::JoinSet};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::accept::{Accept, AcceptBackoff};

/// A TLS handshake not finished in this time is dropped: an unanswered ClientHello must
/// not hold a socket for ever.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long shutdown waits for open connections to finish their request by default.
/// Kubernetes gives a pod 30 s between SIGTERM and SIGKILL; a scrape takes milliseconds.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// One HTTP/1 server, before it serves.
pub struct Server<A> {
    listener: A,
    /// Named in every log line, so two servers in one process can be told apart.
    name: &'static str,
    tls: Option<TlsAcceptor>,
    header_read_timeout: Option<Duration>,
    drain_timeout: Duration,
}

/// What shutdown found: connections open when it began, by how they ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Drained {
    /// Finished their request in flight (or were idle) and closed within the drain timeout.
    pub finished: usize,
    /// Still open at the drain timeout, and cut.
    pub cut: usize,
}

impl<A> std::fmt::Debug for Server<A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("name", &self.name)
            .field("tls", &self.tls.is_some())
            .field("header_read_timeout", &self.header_read_timeout)
            .field("drain_timeout", &self.drain_timeout)
            .finish_non_exhaustive()
    }
}

impl<A: Accept> Server<A> {
    /// A plain-text server with no header read timeout and the default drain timeout.
    pub fn new(name: &'static str, listener: A) -> Self {
        Self {
            listener,
            name,
            tls: None,
            header_read_timeout: None,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
        }
    }

    /// Serves TLS with `acceptor` (`None`: plain text).
    pub fn with_tls(mut self, acceptor: Option<TlsAcceptor>) -> Self {
        self.tls = acceptor;
        self
    }

    /// A client gets this long to send a request's headers, counted from when the server
    /// is ready for them: partial headers (slowloris) and keep-alive connections left idle
    /// are closed after it. Off by default: a server whose clients keep connections
    /// pooled (the simulator's) would race their reuse against the close.
    pub fn with_header_read_timeout(mut self, timeout: Duration) -> Self {
        self.header_read_timeout = Some(timeout);
        self
    }

    /// How long shutdown waits for open connections before cutting them.
    pub fn with_drain_timeout(mut self, timeout: Duration) -> Self {
        self.drain_timeout = timeout;
        self
    }

    /// Serves every connection with `handler` until `shutdown` completes, then stops
    /// accepting and drains: each connection finishes the request in flight (a response
    /// body that never ends, such as a watch, must end on the caller's own stop signal),
    /// and whatever is still open after the drain timeout is cut. Returns once no
    /// connection is left.
    pub async fn serve<H, F, B>(mut self, handler: H, shutdown: impl Future<Output = ()>) -> Drained
    where
        H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
        F: Future<Output = Response<B>> + Send + 'static,
        B: hyper::body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let mut http = http1::Builder::new();
        if let Some(timeout) = self.header_read_timeout {
            http.timer(TokioTimer::new()).header_read_timeout(timeout);
        }
        let stop = CancellationToken::new();
        let mut connections = JoinSet::new();
        let mut backoff = AcceptBackoff::default();
        let mut shutdown = pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
                accepted = self.listener.accept() => match accepted {
                    Ok((io, peer)) => {
                        backoff.succeeded(self.name);
                        connections.spawn(connection(Connection {
                            io,
                            peer,
                            name: self.name,
                            tls: self.tls.clone(),
                            http: http.clone(),
                            handler: handler.clone(),
                            stop: stop.clone(),
                        }));
                    }
                    Err(error) => {
                        // Out of file descriptors and the like: pause, then keep serving.
                        let pause = backoff.failed(self.name, &error);
                        tokio::select! {
                            () = &mut shutdown => break,
                            () = tokio::time::sleep(pause) => {}
                        }
                    }
                },
            }
        }
        drop(self.listener);
        stop.cancel();
        let open = connections.len();
        let drained = tokio::time::timeout(self.drain_timeout, async {
            while connections.join_next().await.is_some() {}
        })
        .await;
        let cut = if drained.is_err() { connections.len() } else { 0 };
        connections.shutdown().await;
        let drained = Drained {
            finished: open - cut,
            cut,
        };
        tracing::debug!(server = self.name, ?drained, "stopped");
        drained
    }
}

/// One accepted connection and what serving it needs.
struct Connection<C, H> {
    io: C,
    peer: SocketAddr,
    name: &'static str,
    tls: Option<TlsAcceptor>,
    http: http1::Builder,
    handler: H,
    stop: CancellationToken,
}

async fn connection<C, H, F, B>(conn: Connection<C, H>)
where
    C: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    H: Fn(Request<Incoming>) -> F + Send + Sync + 'static,
    F: Future<Output = Response<B>> + Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let Connection {
        io,
        peer,
        name,
        tls,
        http,
        handler,
        stop,
    } = conn;
    let service = service_fn(move |req| {
        let response = handler(req);
        async move { Ok::<_, Infallible>(response.await) }
    });
    let result = match tls {
        None => drive(http.serve_connection(TokioIo::new(io), service), &stop).await,
        Some(acceptor) => {
            let handshake = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(io));
            let stream = tokio::select! {
                () = stop.cancelled() => return,
                done = handshake => match done {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(error)) => {
                        tracing::debug!(server = name, %error, %peer, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(server = name, %peer, "TLS handshake not finished in time");
                        return;
                    }
                },
            };
            drive(http.serve_connection(TokioIo::new(stream), service), &stop).await
        }
    };
    if let Err(error) = result {
        tracing::debug!(server = name, %error, %peer, "connection ended with an error");
    }
}

/// Serves one connection; once `stop` is cancelled, finishes the request in flight and
/// closes instead of waiting for the next.
async fn drive<I, S, B>(connection: http1::Connection<I, S>, stop: &CancellationToken) -> hyper::Result<()>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    S: hyper::service::HttpService<Incoming, ResBody = B>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: hyper::body::Body + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut connection = pin!(connection);
    tokio::select! {
        result = connection.as_mut() => result,
        () = stop.cancelled() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    }
}

#[cfg(test)]
mod tests;
