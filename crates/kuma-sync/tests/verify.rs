//! `kuma-sync verify` run as a real process on the federate guide's files and on broken
//! variants of them: exit codes, exact discrepancies, and golden output.

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Command, Output},
};

use crate::support::golden;

#[path = "verify_support/conformance.rs"]
mod conformance;
#[path = "verify_support/conformance_kubernetes.rs"]
mod conformance_kubernetes;
#[path = "verify_support/kuma_goldens.rs"]
mod kuma_goldens;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn example(name: &str) -> PathBuf {
    root().join("examples/federate").join(name)
}

fn kuma_sync(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kuma-sync"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("kuma-sync runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The federate guide, with zone-1's file replaced by `zone1`.
fn verify_with_zone1(zone1: &str, extra: &[&str]) -> Output {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("zone-1.yaml");
    fs::write(&file, zone1).expect("write");
    let (g, z1, z2) = (
        example("global.yaml"),
        file.display().to_string(),
        example("zone-2.yaml"),
    );
    let mut args = vec!["verify", "--global", g.to_str().unwrap()];
    let zone1_arg = format!("zone-1={z1}");
    let zone2_arg = format!("zone-2={}", z2.display());
    args.extend(["--zone", &zone1_arg, "--zone", &zone2_arg]);
    args.extend(extra);
    kuma_sync(&args)
}

fn zone1_text() -> String {
    fs::read_to_string(example("zone-1.yaml")).expect("example")
}

const FEDERATE: &[&str] = &[
    "verify",
    "--global",
    "examples/federate/global.yaml",
    "--zone",
    "zone-1=examples/federate/zone-1.yaml",
    "--zone",
    "zone-2=examples/federate/zone-2.yaml",
];

#[test]
fn the_federate_guide_is_converged() {
    let out = kuma_sync(FEDERATE);
    assert_eq!(out.status.code(), Some(0), "{}{}", stdout(&out), stderr(&out));
    golden("converged.txt", &stdout(&out));
    let json = kuma_sync(&[FEDERATE, &["-o", "json"]].concat());
    assert_eq!(json.status.code(), Some(0));
    golden("converged.json", &stdout(&json));
    let doc: serde_json::Value = serde_json::from_slice(&json.stdout).expect("valid JSON");
    assert_eq!(
        doc["zones"][1]["counts"]["synced"], 7,
        "the mesh and six policies in the Kubernetes zone"
    );
}

#[test]
fn a_copy_deleted_from_a_zone_is_reported_missing() {
    let text = zone1_text();
    // Drop the MeshTrafficPermission copy (one document of the stream).
    let docs: Vec<&str> = text
        .split("---\n")
        .filter(|d| !d.contains("kuma.io/display-name: redis\n"))
        .collect();
    assert_eq!(
        docs.len() + 1,
        text.split("---\n").count(),
        "fixture has exactly one redis copy"
    );
    let out = verify_with_zone1(&docs.join("---\n"), &["-o", "json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let d = doc["discrepancies"].as_array().expect("list");
    assert_eq!(d.len(), 1, "{d:#?}");
    assert_eq!(d[0]["zone"], "zone-1");
    assert_eq!(d[0]["state"], "missing");
    assert_eq!(d[0]["type"], "MeshTrafficPermission");
    assert_eq!(
        d[0]["name"],
        kuma_model::hash::hashed_name("default", "redis", &[])
    );
    assert_eq!(d[0]["source"], "redis");
}

#[test]
fn an_empty_zone_file_is_a_zone_with_nothing_not_an_unknown_one() {
    let out = verify_with_zone1("", &["-o", "json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let zone1 = doc["zones"]
        .as_array()
        .expect("zones")
        .iter()
        .find(|z| z["zone"] == "zone-1")
        .expect("zone-1 reported");
    assert_eq!(zone1["state"], "diverged", "{zone1:#?}");
    assert!(
        zone1["counts"]["missing"].as_u64().is_some_and(|n| n > 0),
        "{zone1:#?}"
    );
}

#[test]
fn an_edited_copy_is_reported_drifted_with_its_path() {
    let text = zone1_text().replacen("maxConnections: 2\n", "maxConnections: 20\n", 1);
    let out = verify_with_zone1(&text, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    golden("drifted.txt", &stdout(&out));
    assert!(stdout(&out).contains(".to[0].default.connectionLimits.maxConnections"));
    assert!(
        stdout(&out).contains("(the global: 2, zone-1: 20)"),
        "both values shown"
    );
    let json = verify_with_zone1(&text, &["-o", "json"]);
    let doc: serde_json::Value = serde_json::from_slice(&json.stdout).expect("json");
    assert_eq!(
        doc["discrepancies"][0]["differences"],
        serde_json::json!([{"path": ".to[0].default.connectionLimits.maxConnections", "expected": 2, "actual": 20}])
    );
}

#[test]
fn a_stray_copy_is_reported_unexpected() {
    let stray = "---\ntype: MeshRetry\nname: mesh-retry-all-default-old\nmesh: default\nlabels:\n  kuma.io/display-name: mesh-retry-all-default\n  kuma.io/mesh: default\n  kuma.io/origin: global\nspec: {}\n";
    let out = verify_with_zone1(&(zone1_text() + stray), &["-o", "json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let d = doc["discrepancies"].as_array().expect("list");
    assert_eq!(d.len(), 1, "{d:#?}");
    assert_eq!(
        (d[0]["state"].as_str(), d[0]["name"].as_str()),
        (Some("unexpected"), Some("mesh-retry-all-default-old"))
    );
}

#[test]
fn names_with_escapes_and_newlines_cannot_draw_on_the_table() {
    // A name that, printed raw, clears the screen and prints a verdict of its own.
    let stray = "---\ntype: MeshRetry\nname: \"x\\e[2J\\nCONVERGED: 2 zone(s)\"\nmesh: default\nlabels:\n  kuma.io/display-name: mesh-retry-all-default\n  kuma.io/mesh: default\n  kuma.io/origin: global\nspec: {}\n";
    let out = verify_with_zone1(&(zone1_text() + stray), &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let table = stdout(&out);
    assert!(!table.contains('\u{1b}'), "{table}");
    assert!(table.contains(r"x\u{1b}[2J\nCONVERGED: 2 zone(s)"), "{table}");
    assert!(
        !table.lines().any(|l| l.starts_with("CONVERGED")),
        "a verdict line drawn by a name: {table}"
    );
}

#[test]
fn a_broken_file_exits_2_naming_file_and_document() {
    let text = zone1_text() + "---\ntype: MeshRetry\nname: [unclosed\n";
    let out = verify_with_zone1(&text, &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("zone-1.yaml"), "{err}");
    assert!(err.contains("document"), "{err}");
    assert!(stdout(&out).is_empty(), "no half report on stdout");
}

#[test]
fn a_rest_page_with_more_after_it_exits_2_naming_the_file() {
    // `curl :5681/meshcircuitbreakers` on a busy control plane: the first 100 of 150.
    let page =
        r#"{"total": 150, "items": [], "next": "http://127.0.0.1:5681/meshcircuitbreakers?offset=100"}"#;
    let out = verify_with_zone1(page, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(err.contains("zone-1.yaml: document 1"), "{err}");
    assert!(err.contains("not the whole list"), "{err}");
    assert!(stdout(&out).is_empty(), "no verdict on part of a control plane");
}

#[test]
fn no_zone_or_nothing_on_any_side_is_not_a_proof() {
    let out = kuma_sync(&["verify", "--global", "examples/federate/global.yaml"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("NOT CONVERGED: no zone was checked"),
        "{}",
        stdout(&out)
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let empty = dir.path().join("empty.yaml");
    fs::write(&empty, "# nothing\n").expect("write");
    let (g, z) = (empty.display().to_string(), format!("zone-1={}", empty.display()));
    let out = kuma_sync(&["verify", "--global", &g, "--zone", &z, "-o", "json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(doc["converged"], false, "{doc}");
    assert!(
        doc["inconclusive"]
            .as_str()
            .unwrap()
            .starts_with("nothing was compared"),
        "{doc}"
    );
}

#[test]
fn one_resource_in_two_files_of_a_zone_with_different_specs_exits_2_naming_both() {
    let dir = tempfile::tempdir().expect("tempdir");
    let doc = |max: u32| {
        format!(
            "type: MeshRetry\nmesh: default\nname: r\nspec: {{to: [{{default: {{http: {{numRetries: {max}}}}}}}]}}\n"
        )
    };
    let (a, b, same) = (
        dir.path().join("a.yaml"),
        dir.path().join("b.yaml"),
        dir.path().join("same.yaml"),
    );
    fs::write(&a, doc(1)).expect("write");
    fs::write(&b, doc(2)).expect("write");
    fs::write(&same, doc(1)).expect("write");
    let zone = |f: &Path| format!("zone-1={}", f.display());
    let g = example("global.yaml");
    let args = |second: &Path| {
        let (za, zb) = (zone(&a), zone(second));
        kuma_sync(&[
            "verify",
            "--global",
            g.to_str().unwrap(),
            "--zone",
            &za,
            "--zone",
            &zb,
        ])
    };
    let out = args(&b);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(err.contains("b.yaml: MeshRetry default/r is also in"), "{err}");
    assert!(err.contains("a.yaml"), "{err}");
    // The same resource in two files says one thing.
    assert_eq!(args(&same).status.code(), Some(1));
}

#[test]
fn unreadable_files_and_bad_flags_exit_2() {
    let out = kuma_sync(&["verify", "--global", "no/such/file.yaml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no/such/file.yaml"), "{}", stderr(&out));
    // The reason once: "Is a directory: Is a directory" says nothing more.
    let out = kuma_sync(&["verify", "--global", "examples"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stderr(&out).matches("directory").count(), 1, "{}", stderr(&out));
    let out = kuma_sync(&[FEDERATE, &["--types", "NoSuchType"]].concat());
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("unknown resource type \"NoSuchType\""),
        "{}",
        stderr(&out)
    );
    let out = kuma_sync(&[
        "verify",
        "--global",
        "examples/federate/global.yaml",
        "--zone",
        "Zone_1=x.yaml",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("not a DNS label"), "{}", stderr(&out));
}

#[test]
fn the_seed_export_is_on_the_global() {
    let args = [FEDERATE, &["--export", "examples/seed/zone-1-export.yaml"]].concat();
    let out = kuma_sync(&args);
    assert_eq!(out.status.code(), Some(0), "{}{}", stdout(&out), stderr(&out));
    // An export the global never received fails the check.
    let dir = tempfile::tempdir().expect("tempdir");
    let export = dir.path().join("export.yaml");
    let text = fs::read_to_string(root().join("examples/seed/zone-1-export.yaml")).expect("example")
        + "---\ntype: MeshRetry\nname: only-in-zone\nmesh: default\nspec: {}\n";
    fs::write(&export, text).expect("write");
    let out = kuma_sync(&[FEDERATE, &["--export", export.to_str().unwrap(), "-o", "json"]].concat());
    assert_eq!(out.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let d = &doc["discrepancies"][0];
    assert_eq!(
        (d["direction"].as_str(), d["state"].as_str(), d["name"].as_str()),
        (Some("seed"), Some("missing"), Some("only-in-zone"))
    );
}

#[test]
fn yaml_output_parses_and_matches_json() {
    let yaml = kuma_sync(&[FEDERATE, &["-o", "yaml"]].concat());
    let json = kuma_sync(&[FEDERATE, &["-o", "json"]].concat());
    let from_yaml: serde_json::Value = serde_saphyr::from_str(&stdout(&yaml)).expect("valid YAML");
    let from_json: serde_json::Value = serde_json::from_slice(&json.stdout).expect("valid JSON");
    assert_eq!(from_yaml, from_json);
}

#[test]
fn the_probes_own_zone_is_not_an_unmonitored_zone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let global = dir.path().join("global.yaml");
    let text = fs::read_to_string(example("global.yaml")).expect("example");
    fs::write(&global, format!("{text}\n---\ntype: Zone\nname: kuma-sync-probe\nenabled: true\n---\ntype: Zone\nname: zone-3\nenabled: true\n"))
        .expect("write");
    let g = global.display().to_string();
    let z1 = format!("zone-1={}", example("zone-1.yaml").display());
    let z2 = format!("zone-2={}", example("zone-2.yaml").display());
    let out = kuma_sync(&[
        "verify", "--global", &g, "--zone", &z1, "--zone", &z2, "-o", "json",
    ]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        doc["unmonitored_zones"],
        serde_json::json!(["zone-3"]),
        "{}",
        stdout(&out)
    );
    assert_eq!(doc["probe_zones"], serde_json::json!(["kuma-sync-probe"]));
}

/// A table is for a person: past its row limit it says how many it left out, and the
/// per-zone counts stay whole; JSON still lists every one.
#[test]
fn a_table_of_many_discrepancies_is_capped_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let global = dir.path().join("global.yaml");
    let policies: String = (0..600)
        .map(|i| {
            format!("---\ntype: MeshTimeout\nname: timeout-{i:03}\nmesh: default\nspec:\n  targetRef: {{kind: Mesh}}\n")
        })
        .collect();
    std::fs::write(&global, policies).unwrap();
    let zone = dir.path().join("zone-1.yaml");
    std::fs::write(&zone, "").unwrap();
    let args = |output: &str| {
        vec![
            "verify".to_owned(),
            "--global".to_owned(),
            global.display().to_string(),
            "--zone".to_owned(),
            format!("zone-1={}", zone.display()),
            "-o".to_owned(),
            output.to_owned(),
        ]
    };
    let table_args = args("table");
    let table = kuma_sync(&table_args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(table.status.code(), Some(1), "{}", stderr(&table));
    let text = stdout(&table);
    let rows = text
        .lines()
        .filter(|l| l.starts_with("zone-1 ") && l.contains("missing"))
        .count();
    assert_eq!(rows, kuma_sync::output::TABLE_ROWS, "{text}");
    assert!(text.contains("... and 100 more discrepancies"), "{text}");
    assert!(text.contains("zone-1: diverged (600 missing"), "{text}");
    let json_args = args("json");
    let json = kuma_sync(&json_args.iter().map(String::as_str).collect::<Vec<_>>());
    let doc: serde_json::Value = serde_json::from_slice(&json.stdout).expect("json");
    assert_eq!(doc["discrepancies"].as_array().map(Vec::len), Some(600));
}
