use std::{io::Write, process::ExitCode};

use clap::Parser;
use kuma_sync::{
    cli::{Cli, Command, OutputFormat},
    config, exit, live, output, probe, serve, shutdown, telemetry, verify,
};

/// mimalloc rather than glibc's malloc: the engine makes and frees millions of small
/// blocks on a cold start, and glibc's arenas both slowed that down 2x and kept the
/// freed memory (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // One crypto provider for the whole process (kube, tonic and hyper-rustls all use ring);
    // installing it up front avoids a panic if a dependency ever pulls in a second one.
    let _ = rustls::crypto::ring::default_provider().install_default();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("kuma-sync: {e:#}");
            ExitCode::from(exit::ERROR)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Command::Verify(args) => {
            let verdict = match &args.config {
                None => verify::run(&args)?,
                Some(path) => {
                    telemetry::init(telemetry::Format::Compact);
                    let mut cfg = config::ServeConfig::load(path)?;
                    cfg.kuma_version = args.kuma_version.or(cfg.kuma_version);
                    tokio::runtime::Runtime::new()?.block_on(live::verify(cfg, args.wait, args.timeout))?
                }
            };
            let mut stdout = std::io::stdout().lock();
            match args.output {
                OutputFormat::Table => stdout.write_all(output::table(&verdict).as_bytes())?,
                OutputFormat::Json => output::write_json(&verdict, &mut stdout)?,
                OutputFormat::Yaml => stdout.write_all(output::yaml(&verdict)?.as_bytes())?,
            }
            Ok(if verdict.converged() {
                exit::CONVERGED
            } else {
                exit::NOT_CONVERGED
            })
        }
        Command::Serve(args) => {
            telemetry::init(args.log_format);
            let mut cfg = match config::ServeConfig::load(&args.config) {
                Ok(cfg) => cfg,
                Err(e) => {
                    eprintln!("kuma-sync: bad configuration: {e}");
                    return Ok(exit::BAD_CONFIG);
                }
            };
            cfg.kuma_version = args.kuma_version.or(cfg.kuma_version);
            if let Some(total) = args.total_shards {
                cfg.shards = Some(config::ShardsFile {
                    total,
                    index: args.shard,
                    replicas: cfg.shards.as_ref().and_then(|s| s.replicas),
                });
            }
            if let Some(listen) = &args.listen {
                match config::parse_listen(listen) {
                    Ok(addr) => cfg.listen = addr,
                    Err(e) => {
                        eprintln!("kuma-sync: bad configuration: {e}");
                        return Ok(exit::BAD_CONFIG);
                    }
                }
            }
            let rt = tokio::runtime::Runtime::new()?;
            match rt.block_on(serve::run(cfg, shutdown::signal())) {
                Ok(()) => Ok(exit::CONVERGED),
                // A taken port too: what `serve` was told to do cannot be done as told.
                // One line and 64, as the README and the runbook say.
                Err(e) => {
                    eprintln!("kuma-sync: {e}");
                    Ok(exit::BAD_CONFIG)
                }
            }
        }
        #[cfg(feature = "demo")]
        Command::Demo(args) => {
            telemetry::init_at(telemetry::Format::Compact, "warn");
            let rt = tokio::runtime::Runtime::new()?;
            Ok(rt.block_on(kuma_sync::demo::run(args, std::io::stdout(), shutdown::signal()))?)
        }
        Command::Probe(args) => {
            telemetry::init(telemetry::Format::Compact);
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(probe::run(args, std::io::stdout(), shutdown::signal()))?;
            Ok(exit::CONVERGED)
        }
    }
}
