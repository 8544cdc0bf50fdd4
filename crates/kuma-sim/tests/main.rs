//! kuma-sim's integration tests in one binary, a module per subject: a binary per file would
//! link the whole dependency graph (tonic, kube, hyper) once per file.
//! Shared fixtures are the `common` and `*support` modules.

mod common;
mod k8s_api_support;
mod lab_support;
mod rest_support;

mod faults;
mod filter;
mod k8s_api;
mod lab_admin;
mod lab_binary;
mod lab_faults;
mod lab_federate;
mod lab_start_synced;
mod rest;
mod sync;
mod tls;
