//! Command-line definitions. Every flag has a `KUMA_SYNC_*` environment variable.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "kuma-sync",
    version,
    about = "Verify multi-zone synchronisation in Kuma and Kong Mesh."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Compare a global control plane's resources with its zones' and report what has not
    /// converged. Exit 0: converged; 1: not converged; 2: error.
    Verify(VerifyArgs),
    /// Connect to a global control plane's KDS as a synthetic zone and show, live, what it
    /// sends. Side effect: a Zone named after the probe appears on the global.
    Probe(crate::probe::ProbeArgs),
    /// Watch the global and every zone, and serve /metrics, /status, /healthz and /readyz.
    Serve(ServeArgs),
    /// Start a simulated global and two zones that really sync (kuma-sim), serve against
    /// them, and show the verdict live; `--break zone-2` makes zone-2 silently stall.
    #[cfg(feature = "demo")]
    Demo(crate::demo::DemoArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The configuration file (see deploy/kubernetes for an example).
    #[arg(long, short = 'c', value_name = "FILE", env = "KUMA_SYNC_CONFIG")]
    pub config: PathBuf,

    /// Listen address, overriding the file's `listen` (e.g. 127.0.0.1:9465).
    #[arg(long, env = "KUMA_SYNC_LISTEN")]
    pub listen: Option<String>,

    /// Log format: compact for terminals, json in clusters.
    #[arg(long, value_enum, default_value = "compact", env = "KUMA_SYNC_LOG_FORMAT")]
    pub log_format: crate::telemetry::Format,

    /// The Kuma whose sync rules apply (2, 3, or a version such as 2.14.3), overriding
    /// the file's `kumaVersion`. Default: what the global's API reports.
    #[arg(long, value_name = "VERSION", env = "KUMA_SYNC_KUMA_VERSION")]
    pub kuma_version: Option<kuma_model::KumaLine>,

    /// Run as one of several shards: how many there are, overriding the file's
    /// `shards.total`. Each zone is judged by exactly one shard (rendezvous hashing).
    #[arg(long, value_name = "N", env = "KUMA_SYNC_TOTAL_SHARDS")]
    pub total_shards: Option<u32>,

    /// This process's shard, 0 to N-1 (default with --total-shards: the ordinal at the
    /// end of the host name, as a StatefulSet names its pods).
    #[arg(
        long,
        value_name = "INDEX",
        env = "KUMA_SYNC_SHARD",
        requires = "total_shards"
    )]
    pub shard: Option<u32>,
}

/// How a control plane stores resources; it changes the names synced copies carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EnvArg {
    Universal,
    Kubernetes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
    Yaml,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The global's resources: `kumactl export`/`get -o yaml` output, a REST list page, or
    /// `kubectl get -o yaml`. Repeat to read several files.
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present = "config",
        env = "KUMA_SYNC_GLOBAL",
        value_delimiter = ','
    )]
    pub global: Vec<PathBuf>,

    /// Read the live control planes of this `serve` configuration file instead of files.
    #[arg(long, short = 'c', value_name = "FILE", conflicts_with_all = ["global", "zones", "export"])]
    pub config: Option<PathBuf>,

    /// With --config: keep reading until every zone converges or --timeout passes.
    #[arg(long, requires = "config")]
    pub wait: bool,

    /// With --config: how long to wait for the first read (and, with --wait, convergence).
    #[arg(long, default_value = "60s", value_parser = parse_timeout)]
    pub timeout: std::time::Duration,

    /// A zone's resources, as NAME=FILE. Repeat for each zone (and to give one zone several files).
    #[arg(
        long = "zone",
        value_name = "NAME=FILE",
        env = "KUMA_SYNC_ZONES",
        value_delimiter = ','
    )]
    pub zones: Vec<String>,

    /// A zone's environment, as NAME=universal|kubernetes. Defaults to kubernetes when its
    /// files are Kubernetes manifests, universal otherwise.
    #[arg(
        long = "zone-env",
        value_name = "NAME=ENV",
        env = "KUMA_SYNC_ZONE_ENVS",
        value_delimiter = ','
    )]
    pub zone_envs: Vec<String>,

    /// The global's environment. Defaults like --zone-env.
    #[arg(long, value_enum, env = "KUMA_SYNC_GLOBAL_ENV")]
    pub global_env: Option<EnvArg>,

    /// Kuma's system namespace on Kubernetes control planes.
    #[arg(long, default_value = "kuma-system", env = "KUMA_SYNC_SYSTEM_NAMESPACE")]
    pub system_namespace: String,

    /// The Kuma whose sync rules apply (2, 3, or a version such as 2.14.3). Default: the
    /// version a `kumactl export` file names on its first line, else what the global's
    /// API reports (`--config`), else Kuma 2.x.
    #[arg(long, value_name = "VERSION", env = "KUMA_SYNC_KUMA_VERSION")]
    pub kuma_version: Option<kuma_model::KumaLine>,

    /// Resource types to check (Kuma names, REST paths or Kubernetes plurals/short names).
    /// Default: every type KDS copies (Mesh, the Mesh* policies, MeshService, ...), except
    /// Secret and GlobalSecret.
    #[arg(long, value_name = "TYPE", env = "KUMA_SYNC_TYPES", value_delimiter = ',')]
    pub types: Vec<String>,

    /// Meshes to check. Default: all.
    #[arg(
        long = "mesh",
        value_name = "MESH",
        env = "KUMA_SYNC_MESHES",
        value_delimiter = ','
    )]
    pub meshes: Vec<String>,

    /// A zone's pre-federation `kumactl export --profile=federation` file: everything in it
    /// must be on the global.
    #[arg(long, value_name = "FILE", env = "KUMA_SYNC_EXPORT")]
    pub export: Option<PathBuf>,

    /// Skip documents of unknown types with a warning instead of failing.
    #[arg(long, env = "KUMA_SYNC_SKIP_UNKNOWN_TYPES")]
    pub skip_unknown_types: bool,

    #[arg(
        short = 'o',
        long,
        value_enum,
        default_value = "table",
        env = "KUMA_SYNC_OUTPUT"
    )]
    pub output: OutputFormat,
}

pub fn parse_timeout(s: &str) -> Result<std::time::Duration, String> {
    match kuma_model::fingerprint::go_duration_nanos(s) {
        Some(n) if n > 0 => Ok(std::time::Duration::from_nanos(n as u64)),
        _ => Err(format!("{s:?} is not a duration like 90s or 5m")),
    }
}
