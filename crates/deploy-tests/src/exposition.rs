//! Every metric family kuma-sync exports, read from the `/metrics` body its golden test
//! pins (`crates/kuma-sync/tests/golden/metrics.txt`): a family added to the code shows
//! up there and so here, and a dashboard panel or alert rule on a family that is gone
//! fails its test.

use std::collections::BTreeSet;

/// kuma-sync's `/metrics` as its golden test renders it; compiled in, so a changed golden
/// rebuilds this crate.
const GOLDEN: &str = include_str!("../../kuma-sync/tests/golden/metrics.txt");

/// How a metric family is exposed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Gauge,
    /// Exposed with a `_total` suffix on the family name.
    Counter,
    /// Exposed as `_bucket`, `_sum` and `_count`.
    Histogram,
}

/// One metric family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Family {
    /// Without a counter's `_total`: the name the samples' suffixes are added to.
    pub name: String,
    pub kind: Kind,
    /// The labels its samples carry (a histogram's `le` aside); Prometheus adds
    /// `job`/`instance` when it scrapes.
    pub labels: BTreeSet<String>,
}

impl Family {
    /// The sample names it exposes (`x_total`, `x_bucket`/`x_sum`/`x_count`, `x`).
    pub fn sample_names(&self) -> Vec<String> {
        let name = &self.name;
        match self.kind {
            Kind::Gauge => vec![name.clone()],
            Kind::Counter => vec![format!("{name}_total")],
            Kind::Histogram => ["_bucket", "_sum", "_count"]
                .iter()
                .map(|s| format!("{name}{s}"))
                .collect(),
        }
    }
}

/// Text that is not a Prometheus exposition as kuma-sync writes it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpositionError {
    #[error("line {line}: {reason}")]
    Malformed { line: usize, reason: String },
    #[error("line {line}: {family} has type {kind:?}; kuma-sync exports gauges, counters and histograms")]
    UnknownType {
        line: usize,
        family: String,
        kind: String,
    },
    /// Prometheus' conventions, and [`Kind::Counter`]'s sample name, want the suffix.
    #[error("line {line}: counter {family} is not named `_total`")]
    CounterWithoutTotal { line: usize, family: String },
    #[error("line {line}: sample {sample} is not one of the family typed before it ({family:?})")]
    Stray {
        line: usize,
        sample: String,
        family: Option<String>,
    },
}

/// Every family in kuma-sync's golden exposition, in its order.
pub fn families() -> Vec<Family> {
    parse(GOLDEN).unwrap_or_else(|e| panic!("crates/kuma-sync/tests/golden/metrics.txt: {e}"))
}

/// Every sample name kuma-sync exposes.
pub fn sample_names() -> Vec<String> {
    families().iter().flat_map(Family::sample_names).collect()
}

/// The families of a text exposition: each `# TYPE` line opens one, the samples after it
/// give its labels.
pub fn parse(text: &str) -> Result<Vec<Family>, ExpositionError> {
    let mut families: Vec<Family> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let malformed = |reason: &str| ExpositionError::Malformed {
            line,
            reason: reason.to_owned(),
        };
        if let Some(typed) = raw.strip_prefix("# TYPE ") {
            let (name, kind) = typed
                .split_once(' ')
                .ok_or_else(|| malformed("# TYPE without a type"))?;
            families.push(typed_family(line, name, kind)?);
            continue;
        }
        if raw.is_empty() || raw.starts_with('#') {
            continue;
        }
        let (sample, labels) = parse_sample(raw).map_err(|reason| malformed(&reason))?;
        let family = families.last_mut().filter(|f| f.sample_names().contains(&sample));
        let Some(family) = family else {
            return Err(ExpositionError::Stray {
                line,
                sample,
                family: families.last().map(|f| f.name.clone()),
            });
        };
        let bucket = family.kind == Kind::Histogram && sample.ends_with("_bucket");
        family
            .labels
            .extend(labels.into_iter().filter(|l| !(bucket && l == "le")));
    }
    Ok(families)
}

fn typed_family(line: usize, name: &str, kind: &str) -> Result<Family, ExpositionError> {
    let (name, kind) = match kind {
        "gauge" => (name, Kind::Gauge),
        "histogram" => (name, Kind::Histogram),
        "counter" => {
            let base = name
                .strip_suffix("_total")
                .ok_or_else(|| ExpositionError::CounterWithoutTotal {
                    line,
                    family: name.to_owned(),
                })?;
            (base, Kind::Counter)
        }
        other => {
            return Err(ExpositionError::UnknownType {
                line,
                family: name.to_owned(),
                kind: other.to_owned(),
            });
        }
    };
    Ok(Family {
        name: name.to_owned(),
        kind,
        labels: BTreeSet::new(),
    })
}

/// A sample line's name and label names: `name{a="x",b="y"} value` or `name value`.
fn parse_sample(line: &str) -> Result<(String, Vec<String>), String> {
    let end = line
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .ok_or("a sample without a value")?;
    let (name, mut rest) = line.split_at(end);
    if name.is_empty() {
        return Err("a sample without a name".to_owned());
    }
    let mut labels = Vec::new();
    if let Some(inner) = rest.strip_prefix('{') {
        rest = inner;
        loop {
            if let Some(after) = rest.strip_prefix('}') {
                rest = after;
                break;
            }
            let (label, after) = rest
                .split_once("=\"")
                .ok_or_else(|| format!("label without a quoted value in {name}"))?;
            labels.push(label.to_owned());
            rest = skip_quoted(after).ok_or_else(|| format!("unterminated label value in {name}"))?;
            rest = rest.strip_prefix(',').unwrap_or(rest);
        }
    }
    if !rest.starts_with(' ') {
        return Err(format!("{name} has no value"));
    }
    Ok((name.to_owned(), labels))
}

/// What follows a label value's closing quote, its escapes (`\"`, `\\`, `\n`) skipped.
fn skip_quoted(value: &str) -> Option<&str> {
    let mut chars = value.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                chars.next()?;
            }
            '"' => return Some(&value[i + 1..]),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn kinds_names_and_labels_come_from_type_lines_and_samples() {
        let text = r#"# HELP a_total A counter.
# TYPE a_total counter
a_total{class="x",cp="global"} 1
a_total{class="y, \"quoted\" } {",cp="zone-1"} 2
# TYPE h histogram
h_bucket{zone="z",le="0.5"} 0
h_bucket{zone="z",le="+Inf"} 1
h_sum{zone="z"} 3
h_count{zone="z"} 1
# TYPE g gauge
g 1
"#;
        let got = parse(text).unwrap();
        assert_eq!(
            got,
            [
                Family {
                    name: "a".into(),
                    kind: Kind::Counter,
                    labels: labels(&["class", "cp"]),
                },
                Family {
                    name: "h".into(),
                    kind: Kind::Histogram,
                    labels: labels(&["zone"]),
                },
                Family {
                    name: "g".into(),
                    kind: Kind::Gauge,
                    labels: labels(&[]),
                },
            ]
        );
        assert_eq!(got[1].sample_names(), ["h_bucket", "h_sum", "h_count"]);
    }

    #[test]
    fn what_kuma_sync_does_not_write_is_refused() {
        assert!(matches!(
            parse("# TYPE c counter\nc 1\n"),
            Err(ExpositionError::CounterWithoutTotal { line: 1, .. })
        ));
        assert!(matches!(
            parse("# TYPE s summary\n"),
            Err(ExpositionError::UnknownType { line: 1, .. })
        ));
        assert!(matches!(
            parse("# TYPE g gauge\nother 1\n"),
            Err(ExpositionError::Stray { line: 2, .. })
        ));
        assert!(matches!(
            parse("# TYPE g gauge\ng{zone=\"z 1\n"),
            Err(ExpositionError::Malformed { line: 2, .. })
        ));
    }

    #[test]
    fn the_golden_exposition_has_kuma_syncs_families() {
        let families = families();
        let find = |name: &str| families.iter().find(|f| f.name == name);
        assert_eq!(
            find("kuma_sync_resources").map(|f| (f.kind, f.labels.clone())),
            Some((Kind::Gauge, labels(&["state", "type", "zone"])))
        );
        assert_eq!(find("kuma_sync_flaps").map(|f| f.kind), Some(Kind::Counter));
        assert_eq!(
            find("kuma_sync_propagation_seconds").map(|f| (f.kind, f.labels.clone())),
            Some((Kind::Histogram, labels(&["type", "zone"])))
        );
        assert!(sample_names().contains(&"kuma_sync_kds_errors_total".to_owned()));
    }
}
