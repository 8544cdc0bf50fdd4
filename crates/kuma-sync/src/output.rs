//! Rendering a verdict: a kubectl-style table for people, JSON and YAML for scripts.

use std::fmt::Write as _;

use policy_watcher::{Discrepancy, State, ZoneState, report::ZoneReport};
use serde::Serialize;

use crate::{
    error::Error,
    verify::{Unreadable, Verdict},
};

/// The machine-readable form. Field names and meanings are part of the CLI's contract.
#[derive(Debug, Serialize)]
pub struct Document<'a> {
    pub converged: bool,
    /// The Kuma line whose sync rules were applied: `2.x` or `3.x`.
    pub kuma_version: kuma_model::KumaLine,
    /// Why the comparison proves nothing (no zone, nothing on any side); `converged` is
    /// then false.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inconclusive: Option<&'static str>,
    pub zones: &'a [ZoneReport],
    pub unmonitored_zones: &'a [String],
    /// Zones on the global that are kuma-sync's own KDS probe.
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub probe_zones: &'a [String],
    /// Seed-check problems first, then every copy that is not synced, sorted by zone,
    /// direction, type, mesh and name.
    pub discrepancies: Vec<&'a Discrepancy>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    pub warnings: &'a [String],
    /// Live control planes that could not be read (only with `--config`).
    #[serde(skip_serializing_if = "<[Unreadable]>::is_empty")]
    pub unreadable: &'a [Unreadable],
}

impl<'a> Document<'a> {
    pub fn of(v: &'a Verdict) -> Self {
        Self {
            converged: v.converged(),
            kuma_version: v.kuma,
            inconclusive: v.inconclusive(),
            zones: &v.report.zones,
            unmonitored_zones: &v.report.unmonitored_zones,
            probe_zones: &v.report.probe_zones,
            discrepancies: v.seed.iter().chain(&v.report.discrepancies).collect(),
            warnings: &v.warnings,
            unreadable: &v.unreadable,
        }
    }
}

pub fn json(v: &Verdict) -> Result<String, Error> {
    let mut out = Vec::new();
    write_json(v, &mut out)?;
    String::from_utf8(out).map_err(|e| Error::Output(e.to_string()))
}

/// [`json`], written as it is rendered: a million discrepancies are a few hundred MB of
/// JSON that need not be held as one string first.
pub fn write_json(v: &Verdict, out: &mut impl std::io::Write) -> Result<(), Error> {
    use std::io::Write as _;
    let mut out = std::io::BufWriter::new(out);
    serde_json::to_writer_pretty(&mut out, &Document::of(v)).map_err(|e| Error::Output(e.to_string()))?;
    out.write_all(b"\n")
        .and_then(|()| out.flush())
        .map_err(|e| Error::Output(e.to_string()))
}

pub fn yaml(v: &Verdict) -> Result<String, Error> {
    serde_saphyr::to_string(&Document::of(v)).map_err(|e| Error::Output(e.to_string()))
}

/// Rows the table shows before it summarises: a person reads a few hundred lines, not a
/// million (the per-zone counts below the rows stay whole; JSON and YAML list every one).
pub const TABLE_ROWS: usize = 500;

/// `ZONE TYPE MESH NAME STATE DETAIL`, one row per discrepancy (at most [`TABLE_ROWS`]),
/// then one line per zone.
pub fn table(v: &Verdict) -> String {
    let doc = Document::of(v);
    let mut out = String::new();
    for w in doc.warnings {
        let _ = writeln!(out, "warning: {}", shown(w));
    }
    if doc.discrepancies.is_empty() {
        out.push_str("No discrepancies.\n");
    } else {
        let header = ["ZONE", "TYPE", "MESH", "NAME", "STATE", "DETAIL"].map(str::to_owned);
        let rows: Vec<[String; 6]> = doc
            .discrepancies
            .iter()
            .take(TABLE_ROWS)
            .map(|d| {
                [
                    shown(&d.zone),
                    d.rtype.to_string(),
                    d.mesh.as_deref().map_or_else(|| "-".into(), shown),
                    shown(&d.name),
                    d.state.as_str().to_owned(),
                    shown(&d.detail),
                ]
            })
            .collect();
        let mut widths = header.clone().map(|h| h.len());
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        for row in std::iter::once(&header).chain(&rows) {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i + 1 == row.len() {
                    line.push_str(cell);
                } else {
                    let _ = write!(line, "{cell:<w$}   ", w = widths[i]);
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        if let Some(more) = doc.discrepancies.len().checked_sub(TABLE_ROWS).filter(|n| *n > 0) {
            let _ = writeln!(
                out,
                "... and {more} more discrepancies, counted per zone below (-o json lists every one)"
            );
        }
    }
    out.push('\n');
    for z in doc.zones {
        let detail = match z.state {
            ZoneState::Unknown => "the zone or the global could not be read".to_owned(),
            _ => counts(z),
        };
        let _ = writeln!(out, "{}: {} ({detail})", shown(&z.zone), z.state.as_str());
    }
    for u in doc.unreadable {
        let _ = writeln!(out, "cannot read {}: {}", shown(&u.cp), shown(&u.error));
    }
    if !doc.unmonitored_zones.is_empty() {
        let _ = writeln!(
            out,
            "unmonitored zones known to the global: {}",
            shown(&doc.unmonitored_zones.join(", "))
        );
    }
    if !v.seed.is_empty() {
        let _ = writeln!(
            out,
            "export: {} resource(s) not on the global as exported",
            v.seed.len()
        );
    }
    let diverged = doc
        .zones
        .iter()
        .filter(|z| z.state != ZoneState::Converged)
        .count();
    let _ = writeln!(
        out,
        "{}",
        if doc.converged {
            format!("CONVERGED: {} zone(s)", doc.zones.len())
        } else if let Some(why) = doc.inconclusive {
            format!("NOT CONVERGED: {why}")
        } else {
            format!(
                "NOT CONVERGED: {} discrepancy(ies), {} of {} zone(s) not converged",
                doc.discrepancies.len(),
                diverged,
                doc.zones.len()
            )
        }
    );
    out
}

/// `s` as a terminal shows it safely: names and messages come from control planes and
/// files, and a raw escape sequence or newline in one could redraw the table or print a
/// verdict line of its own. Control and bidirectional-formatting characters are written
/// as Rust escapes (`\u{1b}`, `\n`); everything else as it is.
pub fn shown(s: &str) -> String {
    let unsafe_char = |c: char| {
        c.is_control()
            || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !s.chars().any(unsafe_char) {
        return s.to_owned();
    }
    s.chars()
        .map(|c| {
            if unsafe_char(c) {
                c.escape_debug().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn counts(z: &ZoneReport) -> String {
    let parts: Vec<String> = State::ALL
        .iter()
        .filter_map(|s| {
            z.counts
                .get(s)
                .filter(|n| **n > 0)
                .map(|n| format!("{n} {}", s.as_str()))
        })
        .collect();
    if parts.is_empty() {
        "nothing to sync".to_owned()
    } else {
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::shown;

    #[test]
    fn control_and_bidi_characters_are_escaped_and_the_rest_kept() {
        assert_eq!(shown("demo-app.kuma-system"), "demo-app.kuma-system");
        assert_eq!(shown("a\u{1b}[31mb\nc\rd"), r"a\u{1b}[31mb\nc\rd");
        assert_eq!(shown("x\u{202e}y"), r"x\u{202e}y");
        assert_eq!(shown("zoné-ü"), "zoné-ü");
    }
}
