//! `kuma-sync-bench`: the live half of issue 8's benchmarks. It measures the `serve`
//! machinery as SREs run it (the monitor, the `/metrics` collectors and HTTP server, the KDS
//! probe, the watch and REST sources) against kuma-sim, over loopback, and prints Markdown
//! tables for `docs/benchmarks-live.md`. The engine's own benchmark, in process, is
//! `benches/engine.rs` (`cargo bench -p bench --bench engine`, docs/benchmarks.md), on the
//! same fixtures and figures.
//!
//! Figures are wall-clock on whatever machine runs them; nothing here asserts a target.
//! Each benchmark checks that what it measured is what it meant to measure (the state
//! converged first, the change was seen), and fails loudly otherwise.
//!
//! # Layout
//! - [`fixtures`]: the synthetic mesh: zones, realistic Mesh* policies, their KDS copies.
//! - [`measure`]: samples, percentiles, RSS, the machine description.
//! - [`state`]: memory of a monitor holding N copies, and `/metrics` scrape latency.
//! - [`kds`]: the probe applying a ~10 MiB full state and a stream of deltas.
//! - [`e2e`]: a change on a control plane to the state on `/metrics`, watch and REST.
//! - [`sources`]: the `serve` binary as a child process, through the real REST and
//!   Kubernetes sources: first verdict, RSS, scrape latency, CPU per poll cycle.
//! - [`sim_process`]: kuma-sim as a process of its own, on a scenario written from the
//!   fixture (`sources --sim-process`).
//! - [`scrape_http`]: a minimal HTTP/1.1 GET over loopback.

pub mod e2e;
pub mod fixtures;
pub mod kds;
pub mod measure;
pub mod scrape_http;
pub mod sim_process;
pub mod sources;
pub mod state;
