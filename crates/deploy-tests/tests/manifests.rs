//! The Kubernetes manifests, validated offline: every object must round-trip through its
//! type unchanged (`deploy_tests::k8s`: an unknown or misplaced field is dropped by the
//! typed decode and shows up as a difference; a wrong type fails the decode), and the
//! security and RBAC promises of deploy/README.md are asserted.

use std::collections::BTreeSet;

use deploy_tests::k8s::{strict, validate, validate_object};
use deploy_tests::{repo, serve_config};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Service};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kuma_model::types::{K8sKind, TYPES};
use serde_json::Value;

fn yaml(relative: &str) -> Value {
    let path = repo::deploy(relative);
    serde_saphyr::from_str(&repo::read(&path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn kustomization() -> Value {
    yaml("kubernetes/kustomization.yaml")
}

#[test]
fn strict_validation_rejects_typos_and_wrong_types() {
    let mut typo = yaml("kubernetes/deployment.yaml");
    typo["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFS"] = true.into();
    let error = validate::<Deployment>(&typo).expect_err("unknown field accepted");
    assert!(error.contains("readOnlyRootFS"), "{error}");

    let mut wrong_type = yaml("kubernetes/service.yaml");
    wrong_type["spec"]["ports"][0]["port"] = "nine".into();
    assert!(validate::<Service>(&wrong_type).is_err());

    let mut misplaced = yaml("kubernetes/deployment.yaml");
    misplaced["spec"]["template"]["spec"]["readOnlyRootFilesystem"] = true.into();
    assert!(validate::<Deployment>(&misplaced).is_err());
}

fn deployment() -> Deployment {
    strict("deployment.yaml", &yaml("kubernetes/deployment.yaml"))
}

fn container() -> Container {
    let spec = deployment().spec.expect("spec").template.spec.expect("pod spec");
    assert_eq!(spec.containers.len(), 1, "one container");
    spec.containers.into_iter().next().expect("one container")
}

#[test]
fn kustomization_lists_every_manifest_and_each_is_a_valid_object() {
    let kustomization = kustomization();
    let listed: BTreeSet<String> = kustomization["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .map(|r| r.as_str().expect("resource path").to_owned())
        .collect();
    let dir = repo::deploy("kubernetes");
    let on_disk: BTreeSet<String> = std::fs::read_dir(&dir)
        .expect("deploy/kubernetes")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml") && n != "kustomization.yaml" && n != "kuma-sync.yaml")
        .collect();
    assert_eq!(
        listed, on_disk,
        "kustomization.yaml resources vs files in deploy/kubernetes"
    );

    for file in &listed {
        let object = yaml(&format!("kubernetes/{file}"));
        let kind = object["kind"].as_str().unwrap_or_default();
        validate_object(&object).unwrap_or_else(|e| panic!("{file}: {e}"));
        if kind != "ClusterRole" && kind != "ClusterRoleBinding" && kind != "Namespace" {
            assert_eq!(object["metadata"]["namespace"], "kuma-sync", "{file}");
        }
    }
}

#[test]
fn generated_config_map_is_mounted_where_serve_reads_it() {
    let kustomization = kustomization();
    let generator = &kustomization["configMapGenerator"][0];
    let name = generator["name"].as_str().expect("generator name");
    let files = generator["files"].as_array().expect("generator files");
    assert_eq!(files.len(), 1);
    let file = files[0].as_str().expect("file");
    let config_text = repo::read(&repo::deploy(&format!("kubernetes/{file}")));
    let config_map: ConfigMap = strict(
        "generated ConfigMap",
        &serde_json::json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": { "name": name, "namespace": "kuma-sync" },
            "data": { file: config_text },
        }),
    );
    assert!(config_map.data.is_some());

    let pod = deployment().spec.expect("spec").template.spec.expect("pod spec");
    let volume = pod
        .volumes
        .iter()
        .flatten()
        .find(|v| v.config_map.as_ref().is_some_and(|c| c.name == name))
        .unwrap_or_else(|| panic!("no volume from ConfigMap {name}"));
    let mount = container()
        .volume_mounts
        .into_iter()
        .flatten()
        .find(|m| m.name == volume.name)
        .expect("config volume mounted");
    assert_eq!(mount.sub_path.as_deref(), Some(file));
    let args = container().args.expect("args");
    assert_eq!(args, ["serve", "--config", mount.mount_path.as_str()]);
    assert_eq!(mount.mount_path, "/etc/kuma-sync/kuma-sync.yaml");
}

#[test]
fn example_config_has_the_documented_shape_and_its_files_are_mounted() {
    let config = yaml("kubernetes/kuma-sync.yaml");
    let keys: BTreeSet<&str> = config
        .as_object()
        .expect("mapping")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from(["listen", "global", "zones", "kds", "types", "meshes", "intervals"])
    );
    assert_eq!(config["listen"], ":9465");
    assert!(config["zones"].as_array().is_some_and(|z| z.len() == 2));
    let mounts: Vec<String> = container()
        .volume_mounts
        .into_iter()
        .flatten()
        .map(|m| m.mount_path)
        .collect();
    let paths = serve_config::file_paths(&config);
    assert!(!paths.is_empty());
    for path in paths {
        assert!(
            mounts.iter().any(|m| path.starts_with(&format!("{m}/"))),
            "{path} from the example config is not under any volume mount ({mounts:?})"
        );
    }
}

#[test]
fn deployment_runs_unprivileged_with_limits_and_probes() {
    let deployment = deployment();
    let spec = deployment.spec.expect("spec");
    assert_eq!(spec.replicas, Some(1), "one probe per zone name");
    assert_eq!(spec.strategy.and_then(|s| s.type_).as_deref(), Some("Recreate"));
    let pod = spec.template.spec.expect("pod spec");
    let pod_security = pod.security_context.expect("pod securityContext");
    assert_eq!(pod_security.run_as_non_root, Some(true));
    assert!(pod_security.run_as_user.is_some_and(|u| u > 0));
    assert_eq!(
        pod_security.seccomp_profile.map(|p| p.type_).as_deref(),
        Some("RuntimeDefault")
    );
    assert_eq!(pod.service_account_name.as_deref(), Some("kuma-sync"));

    let container = pod.containers.into_iter().next().expect("container");
    assert_eq!(
        container.image,
        Some(repo::image().reference()),
        "the image deploy/image.env names"
    );
    let security = container.security_context.expect("container securityContext");
    assert_eq!(security.read_only_root_filesystem, Some(true));
    assert_eq!(security.allow_privilege_escalation, Some(false));
    assert_eq!(security.run_as_non_root, Some(true));
    assert_ne!(security.privileged, Some(true));
    let capabilities = security.capabilities.expect("capabilities");
    assert_eq!(capabilities.drop, Some(vec!["ALL".to_owned()]));
    assert!(capabilities.add.is_none_or(|a| a.is_empty()));

    let resources = container.resources.expect("resources");
    for (what, map) in [("requests", resources.requests), ("limits", resources.limits)] {
        let map = map.unwrap_or_else(|| panic!("no {what}"));
        assert!(
            map.contains_key("cpu") && map.contains_key("memory"),
            "{what}: {map:?}"
        );
    }
    let port = container.ports.into_iter().flatten().next().expect("a port");
    assert_eq!(
        (port.name.as_deref(), port.container_port),
        (Some("metrics"), 9465)
    );
    let path = |probe: Option<k8s_openapi::api::core::v1::Probe>| {
        probe.and_then(|p| p.http_get).and_then(|h| h.path)
    };
    assert_eq!(path(container.liveness_probe).as_deref(), Some("/healthz"));
    assert_eq!(path(container.readiness_probe).as_deref(), Some("/readyz"));

    // Remote-zone credentials come from Secrets that may not exist yet.
    for volume in pod.volumes.into_iter().flatten() {
        if let Some(secret) = volume.secret {
            assert_eq!(secret.optional, Some(true), "volume {}", volume.name);
        }
    }
}

#[test]
fn cluster_role_is_read_only_on_kuma_resources_and_never_secrets() {
    let role: ClusterRole = strict("clusterrole.yaml", &yaml("kubernetes/clusterrole.yaml"));
    let mut granted = BTreeSet::new();
    for rule in role.rules.into_iter().flatten() {
        assert_eq!(rule.api_groups.as_deref(), Some(&["kuma.io".to_owned()][..]));
        let verbs: BTreeSet<&str> = rule.verbs.iter().map(String::as_str).collect();
        assert_eq!(verbs, BTreeSet::from(["get", "list", "watch"]));
        assert!(rule.non_resource_urls.is_none() && rule.resource_names.is_none());
        for resource in rule.resources.into_iter().flatten() {
            assert!(
                !resource.contains('*') && !resource.contains("secret") && !resource.contains('/'),
                "{resource} must not be granted"
            );
            assert!(granted.insert(resource.clone()), "{resource} listed twice");
        }
    }
    let crds: BTreeSet<String> = TYPES
        .iter()
        .filter_map(|t| match t.k8s {
            K8sKind::Crd { plural, .. } => Some(plural.to_owned()),
            _ => None,
        })
        .collect();
    let missing: Vec<_> = crds.difference(&granted).collect();
    assert!(missing.is_empty(), "kuma-model types not readable: {missing:?}");
    let unknown: Vec<_> = granted.difference(&crds).collect();
    assert!(unknown.is_empty(), "not kuma-model CRDs (typo?): {unknown:?}");

    let binding: ClusterRoleBinding = strict(
        "clusterrolebinding.yaml",
        &yaml("kubernetes/clusterrolebinding.yaml"),
    );
    assert_eq!(binding.role_ref.kind, "ClusterRole");
    assert_eq!(Some(binding.role_ref.name), role.metadata.name);
    let subject = &binding.subjects.expect("subjects")[0];
    assert_eq!(
        (
            subject.kind.as_str(),
            subject.name.as_str(),
            subject.namespace.as_deref()
        ),
        ("ServiceAccount", "kuma-sync", Some("kuma-sync"))
    );
}

#[test]
fn service_and_service_monitor_reach_the_metrics_port() {
    let service: Service = strict("service.yaml", &yaml("kubernetes/service.yaml"));
    let spec = service.spec.expect("service spec");
    let pod_labels = deployment()
        .spec
        .expect("spec")
        .template
        .metadata
        .and_then(|m| m.labels)
        .expect("pod labels");
    for (key, value) in spec.selector.expect("selector") {
        assert_eq!(pod_labels.get(&key), Some(&value), "service selector {key}");
    }
    let port = spec.ports.expect("ports").into_iter().next().expect("port");
    assert_eq!((port.name.as_deref(), port.port), (Some("metrics"), 9465));

    let monitor = yaml("kubernetes/servicemonitor.yaml");
    assert_eq!(monitor["kind"], "ServiceMonitor");
    let service_labels = service.metadata.labels.expect("service labels");
    for (key, value) in monitor["spec"]["selector"]["matchLabels"]
        .as_object()
        .expect("matchLabels")
    {
        assert_eq!(
            service_labels.get(key).map(String::as_str),
            value.as_str(),
            "{key}"
        );
    }
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "metrics");
    assert_eq!(monitor["spec"]["endpoints"][0]["path"], "/metrics");
    // The alert rules select job="kuma-sync": the operator names the job after the Service.
    assert_eq!(service.metadata.name.as_deref(), Some("kuma-sync"));
}
