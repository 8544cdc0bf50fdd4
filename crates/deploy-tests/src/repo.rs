//! Where the shipped deployment files live in the workspace.

use std::path::{Path, PathBuf};

/// The workspace root (two levels above this crate's manifest).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("invariant: crates/deploy-tests sits two levels below the workspace root")
        .to_path_buf()
}

/// `deploy/<relative>`.
pub fn deploy(relative: &str) -> PathBuf {
    root().join("deploy").join(relative)
}

/// Reads a file of the workspace, panicking with its path (test support only).
pub fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}
