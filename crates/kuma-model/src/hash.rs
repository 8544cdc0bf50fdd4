//! Kuma's hash-suffixed names (`pkg/kds/hash/hash.go`).
//!
//! Synced copies are renamed `HashedName(mesh, displayName, values…)` so that copies from
//! different origins and namespaces cannot collide in a zone.

/// Kubernetes' `rand.SafeEncodeString` alphabet: no vowels, no look-alike digits.
const SAFE_ALPHABET: &[u8; 27] = b"bcdfghjklmnpqrstvwxz2456789";

/// 253 (Kubernetes name limit) minus a dash and the 16 hash characters.
const MAX_PREFIX: usize = 253 - 17;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// `hash.HashedName(mesh, name, values…)`: `name[:236] + "-" + code`, where `code` is the
/// FNV-1a-64 of `mesh + name + values…` (no separators), hex-encoded and passed through
/// `SafeEncodeString`.
pub fn hashed_name(mesh: &str, name: &str, values: &[&str]) -> String {
    let mut h = FNV_OFFSET;
    for part in [mesh, name].iter().chain(values) {
        for &b in part.as_bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(FNV_PRIME);
        }
    }
    let prefix = truncate_bytes(name, MAX_PREFIX);
    let mut out = String::with_capacity(prefix.len() + 17);
    out.push_str(prefix);
    out.push('-');
    for byte in h.to_be_bytes() {
        for nibble in [byte >> 4, byte & 0xf] {
            let hex = b"0123456789abcdef"[nibble as usize];
            out.push(SAFE_ALPHABET[(hex % 27) as usize] as char);
        }
    }
    out
}

/// Go slices strings by byte; names are DNS-like so this never splits a character, but a
/// malformed name must not panic.
fn truncate_bytes(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kuma_golden_vector() {
        // pkg/kds/context/testdata/full_sync/policy-simple/zone-1.golden.yaml
        assert_eq!(
            hashed_name("default", "default-timeout-global", &[]),
            "default-timeout-global-54dbd4c66zwbcf9c"
        );
    }

    #[test]
    fn federate_guide_names() {
        // kuma-semantics 6.6: a Kubernetes global adds the namespace label to the hash input.
        assert_eq!(
            hashed_name("default", "demo-app-to-redis", &["kuma-system"]),
            "demo-app-to-redis-48bc6d6w28bw7b44"
        );
        // A universal global has no namespace label.
        assert_eq!(
            hashed_name("default", "demo-app-to-redis", &[]),
            "demo-app-to-redis-65xb45x2xfd5bf7f"
        );
    }

    #[test]
    fn long_names_are_cut_to_fit_kubernetes() {
        let long = "a".repeat(300);
        let hashed = hashed_name("default", &long, &[]);
        assert_eq!(hashed.len(), 253);
        assert!(hashed.starts_with(&"a".repeat(236)));
        assert_ne!(
            hashed_name("default", &long, &[]),
            hashed_name("other", &long, &[])
        );
    }

    #[test]
    fn every_value_changes_the_hash() {
        let base = hashed_name("default", "p", &["zone-1"]);
        assert_ne!(base, hashed_name("default", "p", &["zone-2"]));
        assert_ne!(base, hashed_name("default", "p", &["zone-1", "kuma-demo"]));
        assert!(base.starts_with("p-") && base.len() == 18);
    }
}
