//! kds-probe's integration tests in one binary, a module per subject: a binary per file would
//! link the whole dependency graph (tonic, kube, hyper) once per file.
//! Shared fixtures are the `common` and `*support` modules.

mod support;

mod failures;
mod sync;
