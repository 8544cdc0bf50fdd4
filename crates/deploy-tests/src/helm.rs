//! The Helm chart `deploy/helm/kuma-sync`, driven with the real `helm` (installed from
//! the Go module proxy by `.ci/test`; missing, it is an error naming the module).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::process::{HELM, ToolOutput};
use crate::{Result, repo};

/// `helm lint` and `helm template` on a local chart take well under a second.
const HELM_TIMEOUT: Duration = Duration::from_secs(120);

/// `deploy/helm/kuma-sync`.
pub fn chart() -> PathBuf {
    repo::deploy("helm/kuma-sync")
}

/// The values files CI renders the chart with, `ci/*.yaml`, sorted.
pub fn ci_values() -> Vec<PathBuf> {
    let dir = chart().join("ci");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
}

/// `helm lint --strict` with `values` (none: the chart's defaults).
pub fn lint(values: Option<&Path>) -> Result<ToolOutput> {
    let mut args = vec!["lint".to_owned(), "--strict".to_owned(), path(&chart())];
    if let Some(values) = values {
        args.extend(["--values".to_owned(), path(values)]);
    }
    HELM.run(&args, &repo::root(), HELM_TIMEOUT)
}

/// `helm template` of the chart as release `release` in `namespace`, with `values` files
/// and `--set` assignments.
pub fn template(release: &str, namespace: &str, values: &[&Path], set: &[&str]) -> Result<ToolOutput> {
    let mut args = vec![
        "template".to_owned(),
        release.to_owned(),
        path(&chart()),
        "--namespace".to_owned(),
        namespace.to_owned(),
    ];
    for file in values {
        args.extend(["--values".to_owned(), path(file)]);
    }
    for assignment in set {
        args.extend(["--set".to_owned(), (*assignment).to_owned()]);
    }
    HELM.run(&args, &repo::root(), HELM_TIMEOUT)
}

/// The objects of a multi-document YAML stream (`helm template`'s output); documents
/// holding only comments are skipped.
pub fn documents(yaml: &str) -> Vec<Value> {
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(yaml).unwrap_or_else(|e| panic!("helm output is not YAML: {e}\n{yaml}"));
    docs.into_iter().filter(|d| !d.is_null()).collect()
}

fn path(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}
