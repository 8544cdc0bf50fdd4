//! kuma-sync's integration tests in one binary, a module per subject: a binary per file would
//! link the whole dependency graph (tonic, kube, hyper) once per file.
//! Shared fixtures are the `common` and `*support` modules.

mod support;

mod alerts_e2e;
#[cfg(feature = "demo")]
mod demo;
mod exposition;
mod leader;
mod probe;
mod serve_kube;
mod serve_lab;
mod serve_process;
mod serve_rest;
mod serve_tls;
mod verify;
mod verify_live;
