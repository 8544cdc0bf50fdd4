//! Kuma's own KDS full-sync states (`pkg/kds/context/testdata/full_sync` in kumahq/kuma,
//! read from the workspace's `../shared/kuma-testdata` where it sits beside the
//! repository; never copied into it): what each control plane holds once real Kuma has
//! synced. Every case must verify as converged with the default selection, and breaking
//! any copy (removing it, editing its spec, adding a stray one) must give exit 1 naming
//! exactly that copy.

use std::{
    fs,
    path::{Path, PathBuf},
};

use serde_json::{Value, json};

use super::{kuma_sync, root, stderr, stdout};

const CONTROL_PLANES: [&str; 3] = ["global", "zone-1", "zone-2"];

/// The folder of Kuma's full-sync cases, or `None` (with a note) where the workspace does
/// not have it. CI always has it: there its absence fails.
fn full_sync() -> Option<PathBuf> {
    let dir = root().join("../shared/kuma-testdata/full-sync");
    if dir.is_dir() {
        return Some(dir);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{} is missing on CI",
        dir.display()
    );
    eprintln!(
        "note: {} not found; Kuma's golden states not checked",
        dir.display()
    );
    None
}

fn cases(dir: &Path) -> Vec<PathBuf> {
    let mut cases: Vec<PathBuf> = fs::read_dir(dir)
        .expect("full-sync folder")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.join("global.golden.yaml").is_file())
        .collect();
    cases.sort();
    assert!(cases.len() >= 4, "Kuma's four full-sync cases, found {cases:?}");
    cases
}

/// A golden file's documents (Kuma writes `# Type` comments and `---` separators).
fn documents(path: &Path) -> Vec<Value> {
    let text = fs::read_to_string(path).expect("golden");
    text.split("\n---")
        .filter_map(|chunk| {
            let body: String = chunk
                .lines()
                .filter(|l| !l.trim_start().starts_with('#'))
                .collect::<Vec<_>>()
                .join("\n");
            if body.trim().is_empty() || body.trim() == "---" {
                return None;
            }
            Some(serde_saphyr::from_str::<Value>(&body).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        })
        .collect()
}

/// Documents back into a file `verify` reads (JSON is YAML).
fn write(dir: &Path, cp: &str, docs: &[Value]) -> PathBuf {
    let path = dir.join(format!("{cp}.yaml"));
    let text: Vec<String> = docs.iter().map(|d| d.to_string()).collect();
    fs::write(&path, text.join("\n---\n")).expect("write");
    path
}

fn verify(files: &[(&str, PathBuf)]) -> (Option<i32>, Value, String) {
    let mut args = vec!["verify".to_owned(), "-o".into(), "json".into()];
    for (cp, path) in files {
        if *cp == "global" {
            args.extend(["--global".into(), path.display().to_string()]);
        } else {
            args.extend(["--zone".into(), format!("{cp}={}", path.display())]);
        }
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = kuma_sync(&args);
    let text = format!("{}{}", stdout(&out), stderr(&out));
    let doc = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {text}"));
    (out.status.code(), doc, text)
}

/// A copy: what the other side's KDS wrote. On a zone, a document labelled
/// `kuma.io/origin: global`; on the global, one labelled `kuma.io/origin: zone`.
fn is_copy(cp: &str, doc: &Value) -> bool {
    let origin = doc.pointer("/labels/kuma.io~1origin").and_then(Value::as_str);
    let judged = !matches!(doc["type"].as_str(), Some("Zone" | "ZoneInsight"));
    judged
        && match cp {
            "global" => origin == Some("zone"),
            _ => origin == Some("global"),
        }
}

#[test]
fn kumas_own_golden_states_verify_as_converged() {
    let Some(dir) = full_sync() else { return };
    for case in cases(&dir) {
        let files: Vec<(&str, PathBuf)> = CONTROL_PLANES
            .iter()
            .map(|cp| (*cp, case.join(format!("{cp}.golden.yaml"))))
            .collect();
        let (code, doc, text) = verify(&files);
        assert_eq!(code, Some(0), "{}: {text}", case.display());
        assert_eq!(doc["converged"], true, "{}", case.display());
        let synced: u64 = doc["zones"]
            .as_array()
            .expect("zones")
            .iter()
            .map(|z| z["counts"]["synced"].as_u64().expect("count"))
            .sum();
        assert!(synced > 0, "{}: something was compared: {text}", case.display());
    }
}

#[test]
fn breaking_any_copy_of_a_golden_state_names_exactly_that_copy() {
    let Some(dir) = full_sync() else { return };
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut broken = 0;
    for case in cases(&dir) {
        let all: Vec<(&str, Vec<Value>)> = CONTROL_PLANES
            .iter()
            .map(|cp| (*cp, documents(&case.join(format!("{cp}.golden.yaml")))))
            .collect();
        for (target, docs) in &all {
            for (i, doc) in docs.iter().enumerate().filter(|(_, d)| is_copy(target, d)) {
                let name = doc["name"].as_str().expect("name").to_owned();
                let mut edited = doc.clone();
                match edited.get_mut("spec") {
                    Some(spec) => spec["kumaSyncTestEdit"] = json!(1),
                    // Proto types (Mesh) carry their spec inline.
                    None => edited["skipCreatingInitialPolicies"] = json!(["*"]),
                }
                let mut stray = doc.clone();
                stray["name"] = json!(format!("{name}-stray"));
                let mutations: [(&str, Vec<Value>, String); 3] = [
                    (
                        "missing",
                        docs.iter()
                            .enumerate()
                            .filter(|(j, _)| *j != i)
                            .map(|(_, d)| d.clone())
                            .collect(),
                        name.clone(),
                    ),
                    (
                        "drifted",
                        docs.iter()
                            .enumerate()
                            .map(|(j, d)| if j == i { edited.clone() } else { d.clone() })
                            .collect(),
                        name.clone(),
                    ),
                    (
                        "unexpected",
                        docs.iter().cloned().chain([stray]).collect(),
                        format!("{name}-stray"),
                    ),
                ];
                for (state, mutated, expected_name) in mutations {
                    let files: Vec<(&str, PathBuf)> = all
                        .iter()
                        .map(|(cp, docs)| {
                            let docs = if cp == target { &mutated } else { docs };
                            (*cp, write(tmp.path(), cp, docs))
                        })
                        .collect();
                    let (code, out, text) = verify(&files);
                    let what = format!("{}: {state} {} on {target}", case.display(), name);
                    assert_eq!(code, Some(1), "{what}: {text}");
                    let rows = out["discrepancies"].as_array().expect("discrepancies");
                    // Every row names that copy; a copy the global relays to the other
                    // zone (a MeshService) also shows there, under the same name.
                    assert!(!rows.is_empty(), "{what}: {text}");
                    for row in rows {
                        assert_eq!(row["name"], expected_name.as_str(), "{what}: {text}");
                        assert_eq!(row["type"], doc["type"], "{what}: {text}");
                    }
                    // A stray copy under a hashed name shares its source's identity (a
                    // duplicate: unexpected); under a plain one (Mesh keeps its name) it is a
                    // copy of nothing the global has (orphaned).
                    let states: &[&str] = match state {
                        "unexpected" => &["unexpected", "orphaned"],
                        _ => &[state],
                    };
                    assert!(
                        rows.iter()
                            .any(|r| states.contains(&r["state"].as_str().unwrap_or_default())),
                        "{what}: {text}"
                    );
                    broken += 1;
                }
            }
        }
    }
    // Mesh in two zones in four cases, plus the cross-zone copies: many more than one each.
    assert!(broken >= 30, "only {broken} mutations tried");
}
