use std::{io::Write, process::ExitCode};

use clap::Parser;
use exporter::{
    cli::{Cli, Command, OutputFormat},
    exit, output, verify,
};

fn main() -> ExitCode {
    let cli = Cli::parse();
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
            let verdict = verify::run(&args)?;
            let text = match args.output {
                OutputFormat::Table => output::table(&verdict),
                OutputFormat::Json => output::json(&verdict)?,
                OutputFormat::Yaml => output::yaml(&verdict)?,
            };
            std::io::stdout().lock().write_all(text.as_bytes())?;
            Ok(if verdict.converged() {
                exit::CONVERGED
            } else {
                exit::NOT_CONVERGED
            })
        }
    }
}
