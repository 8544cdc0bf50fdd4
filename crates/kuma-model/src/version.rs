//! Which Kuma a control plane runs, and so which sync rules apply.
//!
//! Kuma 2.x (newest release v2.14.3) and Kuma 3 (the main branch) speak the same KDS
//! protocol and hash names the same way, but differ in what they sync and how
//! (`docs/kuma-semantics.md`, "Kuma 3"): Kuma 3 removed nineteen resource types (the
//! legacy policies, ExternalService, MeshGateway, MeshGatewayRoute, ZoneIngress,
//! ZoneEgress and their insights), computes a zone policy's producer role from the
//! labels of its `to` targetRefs instead of their `name`, and dropped the rule that
//! sends a zone policy whose top-level MeshSubset names a `kuma.io/zone` only to that
//! zone.

use std::{fmt, str::FromStr};

/// The release line whose sync rules kuma-sync applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, serde::Serialize)]
pub enum KumaLine {
    /// Kuma 2.x, the rules of v2.14.3 (`pkg/kds/context/context.go` at that tag). The
    /// default: the newest release.
    #[default]
    #[serde(rename = "2.x")]
    V2,
    /// Kuma 3 (main branch, module `github.com/kumahq/kuma/v3`).
    #[serde(rename = "3.x")]
    V3,
}

/// What a version string said, once read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detected {
    pub line: KumaLine,
    /// `None` when the version is one kuma-sync knows; otherwise a sentence naming the
    /// version and the rules it falls back to, for a warning.
    pub warning: Option<String>,
}

impl KumaLine {
    /// Reads a version as Kuma reports it: `GET /` on the REST API (`"version"`),
    /// ZoneInsight's `kumaCp.version`, or `kumactl export`'s first line. Kong Mesh reports
    /// its own version beside `basedOnKuma`; pass the latter when there is one.
    ///
    /// A development build of Kuma's main branch reports a `0.0.0-…` or `dev` version:
    /// that is Kuma 3. A line kuma-sync does not know (1.x, 4.x) falls back to the 2.x
    /// rules with a warning that says so.
    pub fn detect(version: &str) -> Detected {
        let v = version.trim().trim_start_matches('v');
        let major = v
            .split(['.', '-', '+'])
            .next()
            .and_then(|m| m.parse::<u64>().ok());
        let fallback = |why: &str| Detected {
            line: KumaLine::V2,
            warning: Some(format!(
                "Kuma version {version:?} {why}: applying the Kuma 2.x sync rules (v2.14.3); \
                 set --kuma-version (or kumaVersion:) to choose"
            )),
        };
        match major {
            Some(2) => Detected {
                line: KumaLine::V2,
                warning: None,
            },
            Some(3) => Detected {
                line: KumaLine::V3,
                warning: None,
            },
            // Kuma's build stamps untagged main-branch builds 0.0.0 (`pkg/version`).
            Some(0) => Detected {
                line: KumaLine::V3,
                warning: None,
            },
            None if v.starts_with("dev") => Detected {
                line: KumaLine::V3,
                warning: None,
            },
            Some(_) => fallback("is not a release line kuma-sync knows (2.x, 3.x)"),
            None => fallback("cannot be read"),
        }
    }

    /// Kuma 3 removed the type (`docs/kuma-semantics.md`, "Kuma 3").
    pub fn has_type(self, name: &str) -> bool {
        match self {
            KumaLine::V2 => true,
            KumaLine::V3 => !REMOVED_IN_KUMA_3.contains(&name),
        }
    }
}

/// The types Kuma 3 removed: no descriptor, CRD, REST path or KDS sync at main
/// (`pkg/plugins/policies`, `pkg/core/resources/apis/mesh` there against v2.14.3).
pub const REMOVED_IN_KUMA_3: [&str; 19] = [
    "CircuitBreaker",
    "FaultInjection",
    "HealthCheck",
    "ProxyTemplate",
    "RateLimit",
    "Retry",
    "Timeout",
    "TrafficLog",
    "TrafficPermission",
    "TrafficRoute",
    "TrafficTrace",
    "VirtualOutbound",
    "ExternalService",
    "MeshGateway",
    "MeshGatewayRoute",
    "ZoneIngress",
    "ZoneEgress",
    "ZoneIngressInsight",
    "ZoneEgressInsight",
];

impl fmt::Display for KumaLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KumaLine::V2 => "2.x",
            KumaLine::V3 => "3.x",
        })
    }
}

/// `--kuma-version`: a line (`2`, `3`, `2.x`) or a full version (`2.14.3`); unlike
/// [`KumaLine::detect`], a value kuma-sync does not know is an error, not a warning.
impl FromStr for KumaLine {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let trimmed = s.trim().trim_end_matches(".x");
        let detected = KumaLine::detect(trimmed);
        match detected.warning {
            None if !trimmed.is_empty() => Ok(detected.line),
            _ => Err(format!(
                "unknown Kuma version {s:?}: expected 2, 3, 2.x, 3.x or a version such as 2.14.3"
            )),
        }
    }
}

/// The version `kumactl export` writes on its first line
/// (`# Product: Kuma, Version: 2.14.3, Hostname: …`), if `text` starts with one.
pub fn export_header_version(text: &str) -> Option<&str> {
    let first = text.lines().next()?.trim();
    let rest = first.strip_prefix('#')?.trim();
    rest.split(',')
        .map(str::trim)
        .find_map(|field| field.strip_prefix("Version:"))
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_map_to_their_line() {
        for (v, line) in [
            ("2.14.3", KumaLine::V2),
            ("v2.9.0", KumaLine::V2),
            ("3.0.0", KumaLine::V3),
            ("3.1.0-rc1", KumaLine::V3),
            ("0.0.0-preview.v348b6528b", KumaLine::V3),
            ("dev-348b6528b", KumaLine::V3),
        ] {
            let d = KumaLine::detect(v);
            assert_eq!((d.line, d.warning), (line, None), "{v}");
        }
        for unknown in ["1.8.1", "4.0.0", "", "banana"] {
            let d = KumaLine::detect(unknown);
            assert_eq!(d.line, KumaLine::V2, "{unknown}");
            let warning = d.warning.expect("a warning");
            assert!(warning.contains("2.x sync rules"), "{warning}");
        }
    }

    #[test]
    fn the_flag_accepts_lines_and_versions_and_refuses_the_rest() {
        assert_eq!("3".parse(), Ok(KumaLine::V3));
        assert_eq!("2.x".parse(), Ok(KumaLine::V2));
        assert_eq!("2.14.3".parse(), Ok(KumaLine::V2));
        assert!("4".parse::<KumaLine>().is_err());
        assert!("".parse::<KumaLine>().is_err());
    }

    #[test]
    fn kuma_3_lacks_the_legacy_types() {
        assert!(KumaLine::V2.has_type("TrafficPermission"));
        assert!(!KumaLine::V3.has_type("TrafficPermission"));
        assert!(!KumaLine::V3.has_type("ZoneIngress"));
        assert!(KumaLine::V3.has_type("MeshZoneAddress"));
        for t in REMOVED_IN_KUMA_3 {
            assert!(
                crate::ResourceType::from_name(t).is_some(),
                "{t} is in the type table"
            );
        }
    }

    #[test]
    fn export_header() {
        let text = "# Product: Kuma, Version: 2.14.3, Hostname: cp, ClusterId: x, InstanceId: y\n---\n";
        assert_eq!(export_header_version(text), Some("2.14.3"));
        assert_eq!(export_header_version("type: Mesh\n"), None);
        assert_eq!(export_header_version("# Mesh\n---\n"), None);
    }
}
