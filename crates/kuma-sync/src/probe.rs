//! `kuma-sync probe`: flags, and a live per-type display of what the global sends. The
//! probe itself (session, view, metrics) is kds-probe's; this is its command line.

use std::{future::Future, io::Write, path::PathBuf, pin::pin, time::Duration};

use kuma_model::ResourceType;

use kds_probe::{
    Probe, Result,
    config::{ConfigError, DEFAULT_ZONE_NAME, ProbeConfig, client_identity, parse_duration},
    view::{Snapshot, View},
};

/// How often the display refreshes.
const REFRESH: Duration = Duration::from_secs(1);

/// Output format of `kuma-sync probe`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// A table, redrawn in place when stdout is a terminal.
    Table,
    /// One JSON object per line per refresh, for scripts.
    Json,
}

/// Flags of `kuma-sync probe`.
#[derive(Debug, Clone, clap::Args)]
pub struct ProbeArgs {
    /// KDS address of the global control plane.
    #[arg(long, env = "KUMA_SYNC_PROBE_KDS", value_name = "grpcs://HOST:5685")]
    pub kds: String,
    /// PEM file of trusted certificates; Kuma's auto-generated kuma-cp.crt works as is.
    #[arg(long, env = "KUMA_SYNC_PROBE_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// Accept any server certificate (first contact and tests only).
    #[arg(long, env = "KUMA_SYNC_PROBE_SKIP_VERIFY")]
    pub skip_verify: bool,
    /// PEM client certificate, for a global that asks for one.
    #[arg(long, env = "KUMA_SYNC_PROBE_CLIENT_CERT", requires = "client_key")]
    pub client_cert: Option<PathBuf>,
    /// PEM private key of --client-cert.
    #[arg(long, env = "KUMA_SYNC_PROBE_CLIENT_KEY", requires = "client_cert")]
    pub client_key: Option<PathBuf>,
    /// Zone name the probe connects as; the global creates a Zone of this name, which
    /// stays until `DELETE /zones/<name>`. Never a real zone's name.
    #[arg(long, env = "KUMA_SYNC_PROBE_ZONE_NAME", default_value = DEFAULT_ZONE_NAME)]
    pub zone_name: String,
    /// Resource types to subscribe to (comma-separated; default: every targetRef policy).
    #[arg(long, env = "KUMA_SYNC_PROBE_TYPES", value_delimiter = ',')]
    pub types: Vec<String>,
    /// Interval between HealthCheck calls (e.g. 30s, 5m).
    #[arg(long, env = "KUMA_SYNC_PROBE_HEALTH_CHECK_INTERVAL", default_value = "60s")]
    pub health_check_interval: String,
    /// Output format.
    #[arg(
        short = 'o',
        long,
        env = "KUMA_SYNC_PROBE_OUTPUT",
        value_enum,
        default_value = "table"
    )]
    pub output: OutputFormat,
    /// Print once every type has its first full state, then exit.
    #[arg(long, env = "KUMA_SYNC_PROBE_ONCE")]
    pub once: bool,
    /// Write every response the global sends into this directory, one file each
    /// (`NNNNNN-<Type>.binpb`, the response's protobuf bytes): what to attach to a bug
    /// report. Holds every policy sent, never a Secret (the probe subscribes to none).
    #[arg(long, env = "KUMA_SYNC_PROBE_RECORD", value_name = "DIR")]
    pub record: Option<PathBuf>,
}

impl TryFrom<ProbeArgs> for ProbeConfig {
    type Error = ConfigError;

    fn try_from(args: ProbeArgs) -> Result<Self, ConfigError> {
        let mut config = ProbeConfig::new(&args.kds)?;
        config.tls.ca_file = args.ca_file;
        config.tls.skip_verify = args.skip_verify;
        config.tls.client_identity = client_identity(args.client_cert, args.client_key)?;
        config.zone_name = args.zone_name;
        if !args.types.is_empty() {
            config.types = args
                .types
                .iter()
                .map(|s| s.trim())
                .filter(|s| !s.is_empty())
                .map(|s| ResourceType::parse(s).ok_or_else(|| ConfigError::UnknownType(s.to_owned())))
                .collect::<Result<_, _>>()?;
        }
        config.health_check_interval = parse_duration(&args.health_check_interval)?;
        config.record = args.record;
        config.validate()?;
        Ok(config)
    }
}

/// Runs the probe and prints what the global sends until `shutdown` completes, a fatal
/// error occurs, or (`--once`) every type has its first full state.
pub async fn run(args: ProbeArgs, mut out: impl Write, shutdown: impl Future<Output = ()>) -> Result<()> {
    let format = args.output;
    let once = args.once;
    let config = ProbeConfig::try_from(args)?;
    let registry = prometheus::Registry::new();
    let probe = Probe::new(config, &registry)?;
    let view = probe.view();
    let redraw = format == OutputFormat::Table && std::io::IsTerminal::is_terminal(&std::io::stdout());
    let display = display(&view, &mut out, format, once, redraw, shutdown);
    tokio::select! {
        r = probe.run(std::future::pending()) => r,
        r = display => r,
    }
}

async fn display(
    view: &View,
    out: &mut impl Write,
    format: OutputFormat,
    once: bool,
    redraw: bool,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let mut shutdown = pin!(shutdown);
    let mut version = view.watch_version();
    let mut tick = tokio::time::interval(REFRESH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if once {
            if view.all_synced() {
                return print(out, &view.snapshot(), format, false);
            }
            tokio::select! {
                // Interrupted before the full state: show how far it got.
                () = &mut shutdown => return print(out, &view.snapshot(), format, false),
                // The sender lives in the view, which outlives this loop.
                _ = version.changed() => {}
            }
            continue;
        }
        tokio::select! {
            () = &mut shutdown => return print(out, &view.snapshot(), format, false),
            _ = tick.tick() => print(out, &view.snapshot(), format, redraw)?,
        }
    }
}

fn print(out: &mut impl Write, snapshot: &Snapshot, format: OutputFormat, redraw: bool) -> Result<()> {
    let text = match format {
        OutputFormat::Table if redraw => format!("\x1b[H\x1b[2J{}", render_table(snapshot)),
        OutputFormat::Table => render_table(snapshot),
        OutputFormat::Json => render_json(snapshot) + "\n",
    };
    // A closed stdout (a pipe into `head`) is not the probe's failure; stop printing quietly.
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
    Ok(())
}

/// The table shown on a terminal: a status line, then one row per type.
pub fn render_table(s: &Snapshot) -> String {
    let yes_no = |b: Option<bool>| match b {
        Some(true) => "up",
        Some(false) => "down",
        None => "-",
    };
    let mut lines = vec![format!(
        "zone {}  global {}  stream {}  starts {}  health {}",
        s.zone_name,
        s.address,
        if s.connected { "connected" } else { "disconnected" },
        s.stream_starts,
        yes_no(s.health_check_up),
    )];
    if let Some(e) = &s.last_error {
        lines.push(format!("last error: {e}"));
    }
    let width = s
        .types
        .iter()
        .map(|t| t.rtype.name().len())
        .max()
        .unwrap_or(4)
        .max(4);
    lines.push(format!(
        "{:<width$}  {:>9}  {:>9}  {:>11}  {:>6}  {:>18}",
        "TYPE", "RESOURCES", "RESPONSES", "UNDECODABLE", "SYNCED", "LAST RESPONSE AGO"
    ));
    for t in &s.types {
        let age = t
            .last_response_age_seconds
            .map_or_else(|| "never".to_owned(), format_age);
        lines.push(format!(
            "{:<width$}  {:>9}  {:>9}  {:>11}  {:>6}  {:>18}",
            t.rtype.name(),
            t.resources,
            t.responses,
            t.undecodable,
            if t.synced { "yes" } else { "no" },
            age
        ));
    }
    let sent: Vec<_> = s.types.iter().filter(|t| !t.items.is_empty()).collect();
    if !sent.is_empty() {
        lines.push(String::new());
        lines.push(format!(
            "{:<width$}  {:<10}  {:<50}  VERSION",
            "TYPE", "MESH", "NAME"
        ));
        for t in sent {
            for item in t.items.iter().take(TABLE_ITEMS_PER_TYPE) {
                lines.push(format!(
                    "{:<width$}  {:<10}  {:<50}  {}",
                    t.rtype.name(),
                    item.mesh.as_deref().unwrap_or("-"),
                    item.name,
                    item.version.get(..12).unwrap_or(&item.version),
                ));
            }
            if t.items.len() > TABLE_ITEMS_PER_TYPE {
                lines.push(format!(
                    "{:<width$}  ... {} more (-o json lists every one)",
                    t.rtype.name(),
                    t.items.len() - TABLE_ITEMS_PER_TYPE
                ));
            }
        }
    }
    lines.join("\n") + "\n"
}

/// Rows per type in the table: a terminal shows a sample, `-o json` everything.
const TABLE_ITEMS_PER_TYPE: usize = 20;

/// One line of JSON: the snapshot as is.
pub fn render_json(s: &Snapshot) -> String {
    serde_json::to_string(s).expect("a snapshot is plain data and always serialises")
}

fn format_age(secs: f64) -> String {
    let whole = secs as u64;
    match whole {
        0..=59 => format!("{whole}s"),
        60..=3599 => format!("{}m{:02}s", whole / 60, whole % 60),
        _ => format!("{}h{:02}m", whole / 3600, (whole % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use kds_probe::view::{SentResource, TypeSnapshot};

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: ProbeArgs,
    }

    fn parse(argv: &[&str]) -> ProbeArgs {
        Cli::try_parse_from(std::iter::once("probe").chain(argv.iter().copied()))
            .unwrap()
            .args
    }

    fn snapshot() -> Snapshot {
        let mtp = ResourceType::from_name("MeshTrafficPermission").unwrap();
        let mcb = ResourceType::from_name("MeshCircuitBreaker").unwrap();
        Snapshot {
            zone_name: "kuma-sync-probe".into(),
            address: "grpcs://127.0.0.1:5685".into(),
            connected: true,
            stream_starts: 2,
            health_check_up: Some(true),
            last_error: Some("the global closed the GlobalToZoneSync stream".into()),
            types: vec![
                TypeSnapshot {
                    rtype: mcb,
                    resources: 3,
                    synced: true,
                    responses: 4,
                    response_bytes: 900,
                    undecodable: 0,
                    last_response_age_seconds: Some(75.4),
                    items: (0..25)
                        .map(|i| SentResource {
                            mesh: Some("default".into()),
                            name: format!("cb-{i:02}-65xb45x2xfd5bf7f"),
                            version: format!("{i:02}0123456789abcdef"),
                        })
                        .collect(),
                },
                TypeSnapshot {
                    rtype: mtp,
                    resources: 0,
                    synced: false,
                    responses: 0,
                    response_bytes: 0,
                    undecodable: 1,
                    last_response_age_seconds: None,
                    items: Vec::new(),
                },
            ],
        }
    }

    #[test]
    fn args_convert_to_a_config() {
        let args = parse(&[
            "--kds",
            "grpcs://127.0.0.1:5685",
            "--ca-file",
            "/ca.pem",
            "--types",
            "mtp,MeshTimeout",
        ]);
        let config = ProbeConfig::try_from(args).unwrap();
        assert_eq!(
            config.tls.ca_file.as_deref(),
            Some(std::path::Path::new("/ca.pem"))
        );
        let names: Vec<_> = config.types.iter().map(|t| t.name()).collect();
        assert_eq!(names, ["MeshTrafficPermission", "MeshTimeout"]);
        assert_eq!(config.zone_name, DEFAULT_ZONE_NAME);
        assert_eq!(config.health_check_interval, Duration::from_secs(60));
    }

    #[test]
    fn bad_args_are_config_errors() {
        let secret = parse(&["--kds", "grpc://h:1", "--types", "secrets"]);
        assert_eq!(
            ProbeConfig::try_from(secret).unwrap_err(),
            ConfigError::SecretType("Secret")
        );
        let unknown = parse(&["--kds", "grpc://h:1", "--types", "nope"]);
        assert_eq!(
            ProbeConfig::try_from(unknown).unwrap_err(),
            ConfigError::UnknownType("nope".into())
        );
        let interval = parse(&["--kds", "grpc://h:1", "--health-check-interval", "soon"]);
        assert!(matches!(
            ProbeConfig::try_from(interval),
            Err(ConfigError::Duration(_))
        ));
        let half = Cli::try_parse_from(["probe", "--kds", "grpcs://h", "--client-cert", "c.pem"]);
        assert!(half.is_err(), "clap requires the key with the certificate");
    }

    #[test]
    fn the_table_shows_each_type_and_the_status() {
        let table = render_table(&snapshot());
        let lines: Vec<_> = table.lines().collect();
        assert!(
            lines[0].contains("connected") && lines[0].contains("health up") && lines[0].contains("starts 2")
        );
        assert!(lines[1].starts_with("last error: the global closed"));
        assert!(lines[2].starts_with("TYPE") && lines[2].contains("LAST RESPONSE AGO"));
        let mcb: Vec<_> = lines[3].split_whitespace().collect();
        assert_eq!(mcb, ["MeshCircuitBreaker", "3", "4", "0", "yes", "1m15s"]);
        let mtp: Vec<_> = lines[4].split_whitespace().collect();
        assert_eq!(mtp, ["MeshTrafficPermission", "0", "0", "1", "no", "never"]);
        // Then what the global sent: a sample per type, every one with -o json.
        assert!(lines[6].starts_with("TYPE") && lines[6].contains("VERSION"));
        let first: Vec<_> = lines[7].split_whitespace().collect();
        assert_eq!(
            first,
            [
                "MeshCircuitBreaker",
                "default",
                "cb-00-65xb45x2xfd5bf7f",
                "000123456789"
            ]
        );
        assert_eq!(lines.len(), 7 + TABLE_ITEMS_PER_TYPE + 1);
        assert!(lines.last().unwrap().contains("5 more (-o json lists every one)"));
    }

    #[test]
    fn json_output_is_one_parseable_line() {
        let line = render_json(&snapshot());
        assert!(!line.contains('\n'));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["types"][0]["type"], "MeshCircuitBreaker");
        assert_eq!(v["types"][0]["resources"], 3);
        assert_eq!(v["types"][0]["items"].as_array().map(Vec::len), Some(25));
        assert_eq!(v["types"][0]["items"][0]["name"], "cb-00-65xb45x2xfd5bf7f");
        assert_eq!(v["types"][0]["items"][0]["mesh"], "default");
        assert_eq!(
            v["types"][1]["last_response_age_seconds"],
            serde_json::Value::Null
        );
        assert_eq!(v["connected"], true);
    }

    #[test]
    fn ages_read_naturally() {
        assert_eq!(format_age(0.2), "0s");
        assert_eq!(format_age(59.9), "59s");
        assert_eq!(format_age(61.0), "1m01s");
        assert_eq!(format_age(7322.0), "2h02m");
    }
}
