//! deploy-tests's integration tests in one binary, a module per subject: a binary per file would
//! link the whole dependency graph (tonic, kube, hyper) once per file.
//! The process guards and validators they share are the crate's library.

mod alert_pipeline;
mod alertmanager;
mod crate_graph;
mod dashboard;
mod helm;
mod image;
mod manifests;
mod rules;
