//! A real HTTP/1 server on port 0 whose answers a test scripts: what the REST source is
//! run against, from a Kuma-like API to a hostile one. It records every request.

#![allow(dead_code)] // each test binary uses a different part

use std::{
    future::Future,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, body::Incoming, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// A request's path+query and Authorization header.
pub type Seen = (String, Option<String>);

/// Every request the server received, in arrival order.
pub type Log = Arc<Mutex<Vec<Seen>>>;

/// Serves on 127.0.0.1:0 until the test ends. `answerer` is given the server's own
/// address (a hostile answer may point back at it) and returns what answers each
/// request's path+query with a status and a body.
pub async fn serve<A, F>(answerer: impl FnOnce(SocketAddr) -> A) -> (SocketAddr, Log)
where
    A: Fn(String) -> F + Send + Sync + 'static,
    F: Future<Output = (u16, String)> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let answer = Arc::new(answerer(addr));
    let seen: Log = Arc::default();
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (answer, log) = (answer.clone(), log.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    let (answer, log) = (answer.clone(), log.clone());
                    async move {
                        let pq = req
                            .uri()
                            .path_and_query()
                            .map(|p| p.to_string())
                            .unwrap_or_default();
                        let auth = req
                            .headers()
                            .get("authorization")
                            .map(|v| v.to_str().unwrap_or("").to_owned());
                        log.lock().unwrap().push((pq.clone(), auth));
                        let (status, body) = answer(pq).await;
                        Ok::<_, std::convert::Infallible>(
                            Response::builder()
                                .status(status)
                                .body(Full::new(Bytes::from(body)))
                                .expect("status and body"),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (addr, seen)
}
