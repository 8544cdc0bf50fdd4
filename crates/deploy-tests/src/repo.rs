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

/// The image of kuma-sync as `deploy/image.env` names it, the one place for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub repository: String,
    pub tag: String,
}

impl Image {
    /// `repository:tag`, as a pod's `image:` names it.
    pub fn reference(&self) -> String {
        format!("{}:{}", self.repository, self.tag)
    }
}

/// Reads `deploy/image.env` (`KEY=value` lines, `#` comments).
pub fn image() -> Image {
    let path = deploy("image.env");
    let text = read(&path);
    let value = |key: &str| {
        text.lines()
            .filter_map(|l| l.split_once('='))
            .find(|(k, _)| k.trim() == key)
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_else(|| panic!("{} has no {key}=", path.display()))
    };
    Image {
        repository: value("KUMA_SYNC_IMAGE_REPOSITORY"),
        tag: value("KUMA_SYNC_IMAGE_TAG"),
    }
}
