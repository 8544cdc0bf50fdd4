//! Where a global's KDS server listens, as a zone is given it
//! (`KUMA_MULTIZONE_ZONE_GLOBAL_ADDRESS`).

use std::fmt;

/// Where the global's KDS server listens, parsed from `grpcs://host:port` or `grpc://host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KdsAddress {
    /// `grpcs://`: TLS is on (Kuma's default, kuma-semantics 2.4).
    pub tls: bool,
    /// Host name or IP literal, without brackets; also the name the certificate must match.
    pub host: String,
    pub port: u16,
}

impl KdsAddress {
    /// Parses `grpcs://host[:port]` or `grpc://host[:port]`; the port defaults to 5685.
    pub fn parse(s: &str) -> Result<Self, AddressError> {
        let bad = |reason: &str| AddressError {
            address: s.to_owned(),
            reason: reason.to_owned(),
        };
        let (tls, rest) = if let Some(rest) = s.strip_prefix("grpcs://") {
            (true, rest)
        } else if let Some(rest) = s.strip_prefix("grpc://") {
            (false, rest)
        } else {
            return Err(bad("the scheme must be grpcs:// or grpc://"));
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains('/') || rest.contains('@') || rest.contains('?') {
            return Err(bad("expected only host and port after the scheme"));
        }
        let (host, port) = if let Some(bracketed) = rest.strip_prefix('[') {
            let (host, after) = bracketed
                .split_once(']')
                .ok_or_else(|| bad("unclosed '[' in an IPv6 address"))?;
            match after {
                "" => (host, None),
                p => (
                    host,
                    Some(p.strip_prefix(':').ok_or_else(|| bad("expected ':' after ']'"))?),
                ),
            }
        } else {
            match rest.rsplit_once(':') {
                Some((host, port)) if !host.contains(':') => (host, Some(port)),
                Some(_) => return Err(bad("an IPv6 address must be written in brackets")),
                None => (rest, None),
            }
        };
        if host.is_empty() {
            return Err(bad("the host is empty"));
        }
        let port = match port {
            None => 5685,
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| bad("the port must be 1-65535"))?,
        };
        Ok(Self {
            tls,
            host: host.to_owned(),
            port,
        })
    }

    /// `host:port` as a socket address string (brackets around IPv6).
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for KdsAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}://{}",
            if self.tls { "grpcs" } else { "grpc" },
            self.authority()
        )
    }
}

/// An address that is not `grpcs://host[:port]` or `grpc://host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid KDS address {address:?}: {reason}")]
pub struct AddressError {
    pub address: String,
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_with_default_port_and_ipv6() {
        let a = KdsAddress::parse("grpcs://kuma-global.example:5685").unwrap();
        assert_eq!(
            (a.tls, a.host.as_str(), a.port),
            (true, "kuma-global.example", 5685)
        );
        let a = KdsAddress::parse("grpc://10.0.0.1").unwrap();
        assert_eq!((a.tls, a.port), (false, 5685));
        let a = KdsAddress::parse("grpcs://[::1]:7000").unwrap();
        assert_eq!(
            (a.host.as_str(), a.port, a.authority()),
            ("::1", 7000, "[::1]:7000".to_owned())
        );
        for bad in [
            "https://x:1",
            "grpcs://",
            "grpcs://x:0",
            "grpcs://x:99999",
            "grpcs://::1:5",
            "grpcs://x/path",
        ] {
            assert!(
                matches!(KdsAddress::parse(bad), Err(AddressError { .. })),
                "{bad}"
            );
        }
    }
}
