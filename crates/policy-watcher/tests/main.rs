//! policy-watcher's integration tests in one binary, a module per subject: a binary per file would
//! link the whole dependency graph (tonic, kube, hyper) once per file.
//! Shared fixtures are the `common` and `*support` modules.

mod common;

mod converge;
#[cfg(feature = "sources")]
mod first_reads;
mod fold;
#[cfg(feature = "sources")]
mod hostile_peer;
mod incremental;
mod monitor;
#[cfg(feature = "sources")]
mod rest_source;
#[cfg(feature = "sources")]
mod rest_unchanged;
