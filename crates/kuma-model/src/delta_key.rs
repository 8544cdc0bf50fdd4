//! The KDS delta key `<name>.<mesh>` (kuma-semantics section 4): how a resource is named
//! in a delta-xDS stream, a global-scoped one with an empty mesh (`<name>.`). Names may
//! hold dots themselves; meshes never do, so a key splits at its last dot.

/// The delta key of `name` in `mesh` (`""` for global-scoped types).
pub fn join(name: &str, mesh: &str) -> String {
    format!("{name}.{mesh}")
}

/// Splits a delta key at the last dot. A trailing dot means a global-scoped resource
/// (`mesh = None`). A key without a dot is returned as a name with no mesh, since Kuma
/// never sends one.
pub fn split(key: &str) -> (&str, Option<&str>) {
    match key.rsplit_once('.') {
        Some((name, "")) => (name, None),
        Some((name, mesh)) => (name, Some(mesh)),
        None => (key, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delta_keys_split_at_the_last_dot() {
        assert_eq!(split("allow-all-x7.default"), ("allow-all-x7", Some("default")));
        assert_eq!(split("default."), ("default", None));
        assert_eq!(split("a.b.mesh-1"), ("a.b", Some("mesh-1")));
        assert_eq!(split("hg.kuma-system."), ("hg.kuma-system", None));
        assert_eq!(split("nodot"), ("nodot", None));
        assert_eq!(split(&join("a.b", "mesh-1")), ("a.b", Some("mesh-1")));
    }
}
