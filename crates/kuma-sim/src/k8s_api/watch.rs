//! Watches: a chunked stream of `{"type": ..., "object": ...}` lines, one per event,
//! ending when `timeoutSeconds` elapses, the client leaves or the server stops.

use std::{convert::Infallible, sync::Arc, time::Duration};

use bytes::Bytes;
use http::{Response, StatusCode, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::{
    Shared,
    journal::{Change, ChangeKind, Journal},
    object::{API_VERSION, Crd},
    query::{Query, parse_rv},
    routes::Body,
    selector::Filter,
    status::Failure,
};

/// The annotation of the bookmark that closes a streaming list's initial events.
const INITIAL_EVENTS_END: &str = "k8s.io/initial-events-end";

/// Where a watch starts.
struct Start {
    /// Send the state as ADDED events first (`resourceVersion` unset or 0, or `sendInitialEvents`).
    initial_events: bool,
    /// End the initial events with the `k8s.io/initial-events-end` bookmark.
    initial_end_bookmark: bool,
    /// Changes after this version follow; `None` means "from the state sent".
    after: Option<u64>,
}

pub(crate) fn watch(
    shared: &Shared,
    crd: Crd,
    filter: Filter,
    query: &Query,
) -> Result<Response<Body>, Failure> {
    let bookmarks = query.flag("allowWatchBookmarks")?;
    let send_initial_events = query.optional_flag("sendInitialEvents")?;
    let rv_match = query.get("resourceVersionMatch").filter(|v| !v.is_empty());
    match (send_initial_events, rv_match) {
        (Some(_), Some("NotOlderThan")) | (None, None) => {}
        (Some(_), _) => {
            return Err(Failure::invalid(
                "sendInitialEvents: Forbidden: sendInitialEvents is forbidden for watch unless resourceVersionMatch is set to NotOlderThan",
            ));
        }
        (None, Some(_)) => {
            return Err(Failure::invalid(
                "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
            ));
        }
    }
    if send_initial_events == Some(true) && !bookmarks {
        return Err(Failure::invalid(
            "allowWatchBookmarks: Forbidden: sendInitialEvents requires setting allowWatchBookmarks to true",
        ));
    }
    let start = match query
        .get("resourceVersion")
        .filter(|v| !v.is_empty() && *v != "0")
    {
        None => Start {
            initial_events: send_initial_events.unwrap_or(true),
            initial_end_bookmark: send_initial_events == Some(true),
            after: None,
        },
        Some(rv) => {
            let rv = parse_rv(rv)?;
            match send_initial_events {
                Some(true) => Start {
                    initial_events: true,
                    initial_end_bookmark: true,
                    after: None,
                },
                _ => Start {
                    initial_events: false,
                    initial_end_bookmark: false,
                    after: Some(rv),
                },
            }
        }
    };
    // As in the apiserver, 0 means "the server's choice".
    let timeout = match query.number("timeoutSeconds")? {
        Some(seconds) if seconds > 0 => Duration::from_secs(seconds),
        _ => shared.config.default_watch_timeout,
    };
    shared.journal.sync();
    let (tx, rx) = mpsc::channel(64);
    let stream = Stream {
        journal: shared.journal.clone(),
        crd,
        filter,
        bookmark_interval: bookmarks.then_some(shared.config.bookmark_interval),
        tx,
    };
    tokio::spawn(stream.run(start, timeout, shared.stop.clone()));
    let body = StreamBody::new(ReceiverStream::new(rx)).boxed_unsync();
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::OK;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

struct Stream {
    journal: Arc<Journal>,
    crd: Crd,
    filter: Filter,
    bookmark_interval: Option<Duration>,
    tx: mpsc::Sender<Result<Frame<Bytes>, Infallible>>,
}

/// The client went away; stop producing.
struct Gone;

impl Stream {
    async fn run(self, start: Start, timeout: Duration, stop: tokio_util::sync::CancellationToken) {
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let _ = tokio::select! {
            result = self.events(start) => result,
            () = &mut deadline => Ok(()),
            () = stop.cancelled() => Ok(()),
            () = self.tx.closed() => Err(Gone),
        };
    }

    async fn events(&self, start: Start) -> Result<(), Gone> {
        // Subscribe before reading, so no change slips between the read and the wait.
        let mut latest = self.journal.subscribe();
        let mut at = match start.after {
            Some(rv) => rv,
            None => {
                let (rv, snapshot) = self.journal.current();
                if start.initial_events {
                    for (key, object) in &snapshot {
                        if key.rtype == self.crd.rtype && self.filter.matches(object) {
                            self.send("ADDED", object).await?;
                        }
                    }
                }
                if start.initial_end_bookmark {
                    self.send("BOOKMARK", &self.bookmark(rv, true)).await?;
                }
                rv
            }
        };
        let mut ticker = self.bookmark_interval.map(|every| {
            let mut t = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            t
        });
        loop {
            match self.journal.changes_since(at) {
                Ok((changes, upto)) => {
                    for change in &changes {
                        if let Some((event_type, object)) = self.visible(change) {
                            self.send(event_type, object).await?;
                        }
                    }
                    at = upto;
                }
                Err(expired) => {
                    let failure = Failure::expired(format!(
                        "too old resource version: {} ({})",
                        expired.requested, expired.oldest
                    ));
                    return self.send("ERROR", &failure.to_status()).await;
                }
            }
            tokio::select! {
                changed = latest.changed() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                }
                _ = async {
                    match ticker.as_mut() {
                        Some(t) => t.tick().await,
                        None => std::future::pending().await,
                    }
                } => {
                    self.send("BOOKMARK", &self.bookmark(at, false)).await?;
                }
            }
        }
    }

    /// What this watch sees of a change: objects entering the selection are ADDED and
    /// those leaving it DELETED, as the apiserver's watch cache reports them.
    fn visible<'c>(&self, change: &'c Change) -> Option<(&'static str, &'c Value)> {
        if change.key.rtype != self.crd.rtype {
            return None;
        }
        let now = self.filter.matches(&change.object);
        let before = change.previous.as_deref().is_some_and(|p| self.filter.matches(p));
        let event_type = match (change.kind, before, now) {
            (ChangeKind::Deleted, _, true) => ChangeKind::Deleted,
            (ChangeKind::Deleted, _, false) => return None,
            (_, false, true) => ChangeKind::Added,
            (_, true, true) => ChangeKind::Modified,
            (_, true, false) => ChangeKind::Deleted,
            (_, false, false) => return None,
        };
        Some((event_type.event_type(), &change.object))
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Value {
        let mut metadata = json!({"resourceVersion": rv.to_string(), "creationTimestamp": null});
        if initial_end {
            metadata["annotations"] = json!({ INITIAL_EVENTS_END: "true" });
        }
        json!({"kind": self.crd.kind(), "apiVersion": API_VERSION, "metadata": metadata})
    }

    async fn send(&self, event_type: &str, object: &Value) -> Result<(), Gone> {
        let mut line = json!({"type": event_type, "object": object}).to_string();
        line.push('\n');
        self.tx
            .send(Ok(Frame::data(Bytes::from(line))))
            .await
            .map_err(|_| Gone)
    }
}
