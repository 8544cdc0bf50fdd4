//! The one HTTP/1 accept loop of the workspace, used by `kuma-sync serve` (`/metrics`) and
//! by every HTTP server of the simulator (its REST API, its Kubernetes API and its admin
//! endpoint). Each of them once had its own loop, and each got a different part wrong:
//! one spun on a failed accept, one left connections running after shutdown, one never
//! timed out a half-sent request. Here the loop is written once:
//!
//! - a failed accept (out of file descriptors, say) pauses, doubling up to a cap, and is
//!   logged once per step rather than once per error;
//! - every connection is a task the server tracks; on shutdown the server stops accepting,
//!   asks each connection to finish the request in flight, waits up to a drain timeout and
//!   then cuts what is left, so `serve` returning means no connection is still served;
//! - optional TLS, with a handshake timeout, and an optional header read timeout.
//!
//! What a server answers is its handler's business, not this crate's.
//!
//! # Layout
//! - [`accept`]: [`Accept`], where connections come from (a `TcpListener`, or a test's
//!   scripted source), and the backoff after a failed accept.
//! - [`server`]: [`Server`], the loop, its timeouts and its drain; [`Drained`], what
//!   shutdown found.

pub mod accept;
pub mod server;

pub use accept::Accept;
pub use server::{Drained, Server};
