//! Zone names: one rule for every place kuma-sync takes one (the configuration, `verify`'s
//! flags, the probe's own name, kuma-sim's scenarios and its KDS server).
//!
//! Kuma stores a zone as a cluster-scoped object named after it, so a zone name is an
//! RFC 1123 label: 1 to 63 lowercase letters, digits and '-', starting and ending with a
//! letter or digit (Kuma 2.x, `pkg/core/resources/apis/system/zone_validator.go` and the
//! Kubernetes object name rules). Kuma 3 also requires the first character to be a letter
//! (an RFC 1035 label, `pkg/config/multizone` at Kuma's main branch): [`check_for_kuma_3`].

/// Why `name` is not a zone name Kuma 2.x accepts, if it is not.
pub fn check(name: &str) -> Result<(), &'static str> {
    if name.is_empty() || name.len() > 63 {
        return Err("it must be 1 to 63 characters long");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err("only lowercase letters, digits and '-' are allowed");
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Err("it must start and end with a letter or digit");
    }
    Ok(())
}

/// [`check`], and the first character a letter, as Kuma 3 requires: what a name kuma-sync
/// makes up itself (the probe's) must pass, to work on both lines.
pub fn check_for_kuma_3(name: &str) -> Result<(), &'static str> {
    check(name)?;
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err("it must start with a letter (Kuma 3 zone names are RFC 1035 labels)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_1123_labels_are_zone_names() {
        for good in ["zone-1", "a", "1zone", &"a".repeat(63)] {
            assert_eq!(check(good), Ok(()), "{good}");
        }
        for bad in ["", "Zone1", "-z", "z-", "a_b", "a.b", &"a".repeat(64)] {
            assert!(check(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn kuma_3_wants_a_letter_first() {
        assert_eq!(check_for_kuma_3("zone-1"), Ok(()));
        assert!(
            check_for_kuma_3("1zone")
                .unwrap_err()
                .contains("start with a letter")
        );
        assert!(check_for_kuma_3("Zone").unwrap_err().contains("lowercase"));
    }
}
