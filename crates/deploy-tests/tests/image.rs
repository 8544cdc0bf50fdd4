//! The container image: deploy/image.env is the one place for its name and tag, and
//! everything that names the image agrees with it; the Dockerfile builds what the
//! manifests expect (non-root, no shell needed, the pinned toolchain). `.ci/image` builds
//! and runs the image itself.

use crate::crate_graph::linked_crates;
use deploy_tests::{helm, repo};
use serde_json::Value;

fn yaml(path: &std::path::Path) -> Value {
    serde_saphyr::from_str(&repo::read(path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_tag_is_the_workspace_version() {
    let manifest = repo::read(&repo::root().join("Cargo.toml"));
    let version = manifest
        .lines()
        .skip_while(|l| l.trim() != "[workspace.package]")
        .find_map(|l| l.strip_prefix("version = "))
        .map(|v| v.trim_matches('"'))
        .expect("workspace version");
    assert_eq!(
        repo::image().tag,
        version,
        "deploy/image.env's tag is the kuma-sync version"
    );
}

#[test]
fn the_chart_and_the_kustomize_base_name_the_same_image() {
    let image = repo::image();
    let chart = yaml(&helm::chart().join("Chart.yaml"));
    assert_eq!(chart["appVersion"], image.tag.as_str(), "Chart.yaml appVersion");
    let values = yaml(&helm::chart().join("values.yaml"));
    assert_eq!(
        values["image"]["repository"],
        image.repository.as_str(),
        "values.yaml image.repository"
    );
    assert_eq!(
        values["image"]["tag"], "",
        "values.yaml image.tag defaults to appVersion"
    );
    let deployment = yaml(&repo::deploy("kubernetes/deployment.yaml"));
    assert_eq!(
        deployment["spec"]["template"]["spec"]["containers"][0]["image"],
        image.reference().as_str(),
        "deploy/kubernetes/deployment.yaml"
    );
    let script = repo::read(&repo::root().join(".ci/image"));
    assert!(
        script.contains(". deploy/image.env"),
        ".ci/image reads deploy/image.env"
    );
}

/// Every file that spells the image out names deploy/image.env's tag.
#[test]
fn every_mention_of_the_image_has_the_documented_tag() {
    let image = repo::image();
    let prefix = format!("{}:", image.repository);
    let mut files = vec![
        repo::root().join("README.md"),
        repo::root().join("Dockerfile"),
        repo::deploy("README.md"),
    ];
    for dir in [
        repo::deploy("kubernetes"),
        helm::chart(),
        helm::chart().join("templates"),
    ] {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("dir entry").path();
            if path.is_file() {
                files.push(path);
            }
        }
    }
    let mut mentions = 0;
    for file in files {
        let text = repo::read(&file);
        for (at, _) in text.match_indices(&prefix) {
            let tag: String = text[at + prefix.len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
                .collect();
            if tag.is_empty() {
                continue;
            }
            assert_eq!(tag, image.tag, "{} names {prefix}{tag}", file.display());
            mentions += 1;
        }
    }
    assert!(mentions > 0, "the manifests name the image");
}

/// The instructions of the Dockerfile's last stage, `(instruction, arguments)`.
fn final_stage() -> Vec<(String, String)> {
    let text = repo::read(&repo::root().join("Dockerfile"));
    let mut stages: Vec<Vec<(String, String)>> = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (instruction, args) = line.split_once(' ').unwrap_or((line, ""));
        let instruction = instruction.to_ascii_uppercase();
        if instruction == "FROM" {
            stages.push(Vec::new());
        }
        if let Some(stage) = stages.last_mut() {
            stage.push((instruction, args.trim().to_owned()));
        }
    }
    assert!(stages.len() >= 2, "a build stage and a runtime stage");
    stages.pop().expect("a stage")
}

#[test]
fn the_dockerfile_runs_kuma_sync_as_non_root_without_a_shell() {
    let stage = final_stage();
    let get = |instruction: &str| {
        stage
            .iter()
            .rfind(|(i, _)| i == instruction)
            .map(|(_, a)| a.as_str())
            .unwrap_or_else(|| panic!("no {instruction} in the runtime stage"))
    };
    assert!(
        get("FROM").contains(":nonroot"),
        "a non-root base: {}",
        get("FROM")
    );
    assert_eq!(get("USER"), "65532:65532", "the UID the manifests run as");
    assert!(
        stage.iter().all(|(i, _)| i != "RUN"),
        "the runtime stage runs nothing, so it needs no shell"
    );
    // Exec form: no /bin/sh -c.
    assert_eq!(get("ENTRYPOINT"), r#"["/usr/local/bin/kuma-sync"]"#);
    let cmd: Vec<String> = serde_json::from_str(get("CMD")).expect("CMD in exec form");
    let base = yaml(&repo::deploy("kubernetes/deployment.yaml"));
    let args: Vec<String> =
        serde_json::from_value(base["spec"]["template"]["spec"]["containers"][0]["args"].clone())
            .expect("args");
    assert_eq!(cmd, args, "the image's default command is the Deployment's");
    assert_eq!(get("EXPOSE"), "9465");
}

#[test]
fn the_dockerfile_builds_with_the_pinned_toolchain() {
    let toolchain = repo::read(&repo::root().join("rust-toolchain.toml"));
    let channel = toolchain
        .lines()
        .find_map(|l| l.trim().strip_prefix("channel = "))
        .map(|c| c.trim_matches('"'))
        .expect("channel");
    let dockerfile = repo::read(&repo::root().join("Dockerfile"));
    assert!(
        dockerfile.contains(&format!("FROM docker.io/library/rust:{channel}-")),
        "the build stage uses Rust {channel}, as rust-toolchain.toml pins"
    );
    assert!(dockerfile.contains(DAEMON_BUILD));
}

/// How the Dockerfile and `.ci/image` build the daemon.
const DAEMON_BUILD: &str =
    "cargo build --release --locked -p kuma-sync --bin kuma-sync --no-default-features";

/// The image's daemon does not carry the simulator: kuma-sim is linked only with the
/// `demo` feature, which the default build has and the Dockerfile's build turns off.
#[test]
fn the_daemon_build_does_not_link_the_simulator() {
    for script in ["Dockerfile", ".ci/image"] {
        let text = repo::read(&repo::root().join(script));
        assert!(
            text.contains(DAEMON_BUILD),
            "{script} builds the daemon as {DAEMON_BUILD:?}"
        );
    }
    let default = linked_crates("kuma-sync", &["-e", "normal"]);
    assert!(
        default.contains("kuma-sim"),
        "the default build has the demo: {default:?}"
    );
    let daemon = linked_crates("kuma-sync", &["-e", "normal", "--no-default-features"]);
    assert!(!daemon.contains("kuma-sim"), "{daemon:?}");
    assert!(daemon.contains("kds-probe") && daemon.contains("policy-watcher"));
}
