//! `kuma-sync verify --config`: read the live control planes once (or until they
//! converge, with `--wait`) and report like the offline mode.

use std::{io::IsTerminal, io::Write, time::Duration};

use policy_watcher::{Report, ZoneState};
use tokio::time::Instant;

use crate::{
    config::ServeConfig,
    serve::{ServeError, start_watching},
    verify::{Unreadable, Verdict},
};

/// Waits for the first full read of every control plane (and with `wait`, for every zone
/// to converge), at most `timeout`. A control plane still unread at the deadline is
/// reported `unknown`, so the verdict is "not converged", never a false "converged".
pub async fn verify(cfg: ServeConfig, wait: bool, timeout: Duration) -> Result<Verdict, ServeError> {
    let probe_zone = cfg
        .kds
        .as_ref()
        .and_then(|k| k.zone_name.clone())
        .unwrap_or_else(|| kds_probe::config::DEFAULT_ZONE_NAME.to_owned());
    let running = start_watching(cfg).await?;
    let monitor = running.monitor.clone();
    let kuma = running.kuma;
    let mut changes = monitor.subscribe();
    let deadline = Instant::now() + timeout;
    let progress = std::io::stderr().is_terminal();
    loop {
        let report = monitor.report();
        let ready = monitor.ready();
        if ready && (!wait || report.converged) {
            break;
        }
        if progress {
            let _ = write!(
                std::io::stderr(),
                "\r\x1b[K{}",
                progress_line(&report, ready, deadline)
            );
        }
        if tokio::time::timeout_at(deadline, changes.changed())
            .await
            .is_err()
        {
            break;
        }
    }
    if progress {
        let _ = write!(std::io::stderr(), "\r\x1b[K");
    }
    let report = monitor.report().with_probe_zone(&probe_zone);
    let unreadable = monitor
        .lock()
        .sources
        .iter()
        .filter(|(_, s)| !s.up)
        .map(|(cp, s)| Unreadable {
            cp: cp.to_string(),
            error: s
                .last_error
                .clone()
                .unwrap_or_else(|| "not read before the timeout".into()),
        })
        .collect();
    running.stop().await;
    Ok(Verdict {
        report,
        seed: Vec::new(),
        warnings: Vec::new(),
        unreadable,
        kuma,
    })
}

fn progress_line(report: &Report, ready: bool, deadline: Instant) -> String {
    let left = deadline.saturating_duration_since(Instant::now()).as_secs();
    let zones: Vec<String> = report
        .zones
        .iter()
        .map(|z| match z.state {
            ZoneState::Converged => format!("{} converged", z.zone),
            ZoneState::Unknown => format!("{} unknown", z.zone),
            ZoneState::Diverged => {
                let open: usize = z
                    .counts
                    .iter()
                    .filter(|(s, _)| s.as_str() != "synced")
                    .map(|(_, n)| n)
                    .sum();
                format!("{} diverged ({open} open)", z.zone)
            }
        })
        .collect();
    let phase = if ready {
        "waiting for convergence"
    } else {
        "reading control planes"
    };
    format!("{phase}: {} ({left}s left)", zones.join(", "))
}
