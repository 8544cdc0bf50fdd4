//! The Helm chart `deploy/helm/kuma-sync`, with the real `helm`: it lints, renders with
//! its defaults and every `ci/*.yaml` values file, every rendered object is valid against
//! the Kubernetes schema (`deploy_tests::k8s`, the validator of the kustomize base), the
//! pod is unprivileged, the image is deploy/image.env's, the PrometheusRule carries the
//! rule file's groups, and the configuration it renders is accepted by kuma-sync's own
//! parser in a filesystem laid out like the pod's.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use deploy_tests::k8s::{PrometheusRule, ServiceMonitor, strict, validate_object};
use deploy_tests::{helm, repo, serve_config};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, PodSpec, PodTemplateSpec, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kuma_sync::config::ServeConfig;
use serde_json::Value;

const RULES: &str = "prometheus/kuma-sync-rules.yaml";
const CHART_RULES: &str = "helm/kuma-sync/files/kuma-sync-rules.yaml";
const SECRETS_DIR: &str = "/etc/kuma-sync/secrets/";

/// One `helm template` of the chart.
struct Rendering {
    /// The values file, or "defaults".
    name: String,
    /// The values the file sets (empty for the defaults).
    values: Value,
    namespace: &'static str,
    objects: Vec<Value>,
}

impl Rendering {
    fn of_kind(&self, kind: &str) -> Vec<&Value> {
        self.objects.iter().filter(|o| o["kind"] == kind).collect()
    }

    fn one<T: serde::de::DeserializeOwned + serde::Serialize>(&self, kind: &str) -> T {
        let objects = self.of_kind(kind);
        assert_eq!(objects.len(), 1, "{}: one {kind}", self.name);
        strict(&format!("{}: {kind}", self.name), objects[0])
    }

    /// The pod template of the one workload: the Deployment, or the StatefulSet when
    /// sharded.
    fn pod_template(&self) -> PodTemplateSpec {
        match self.of_kind("StatefulSet").is_empty() {
            true => self.one::<Deployment>("Deployment").spec.expect("spec").template,
            false => {
                assert!(
                    self.of_kind("Deployment").is_empty(),
                    "{}: two workloads",
                    self.name
                );
                self.one::<StatefulSet>("StatefulSet")
                    .spec
                    .expect("spec")
                    .template
            }
        }
    }

    fn pod(&self) -> PodSpec {
        self.pod_template().spec.expect("pod spec")
    }

    fn container(&self) -> Container {
        let pod = self.pod();
        assert_eq!(pod.containers.len(), 1, "{}: one container", self.name);
        pod.containers.into_iter().next().expect("container")
    }

    /// The Service Prometheus scrapes (not the StatefulSet's headless one).
    fn service(&self) -> Service {
        let services: Vec<Service> = self
            .of_kind("Service")
            .into_iter()
            .map(|o| strict(&self.name, o))
            .filter(|s: &Service| s.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) != Some("None"))
            .collect();
        assert_eq!(services.len(), 1, "{}: one scraped Service", self.name);
        services.into_iter().next().expect("a Service")
    }

    fn config_text(&self) -> String {
        let config_map: ConfigMap = self.one("ConfigMap");
        config_map
            .data
            .and_then(|d| d.get("kuma-sync.yaml").cloned())
            .unwrap_or_else(|| panic!("{}: ConfigMap has no kuma-sync.yaml", self.name))
    }

    /// The Secrets the chart itself creates, by name.
    fn secrets(&self) -> BTreeMap<String, BTreeMap<String, String>> {
        self.of_kind("Secret")
            .into_iter()
            .map(|o| {
                let secret: Secret = strict(&self.name, o);
                (
                    secret.metadata.name.expect("secret name"),
                    secret.string_data.unwrap_or_default(),
                )
            })
            .collect()
    }
}

fn render(values: Option<&Path>, release: &'static str, namespace: &'static str) -> Rendering {
    let files: Vec<&Path> = values.into_iter().collect();
    let output = helm::template(release, namespace, &files, &[]).unwrap_or_else(|e| panic!("{e}"));
    let name = values.map_or("defaults".to_owned(), |p| p.display().to_string());
    assert!(
        output.success(),
        "helm template ({name}):\n{}",
        output.transcript()
    );
    Rendering {
        values: values.map_or(Value::Null, |p| {
            serde_saphyr::from_str(&repo::read(p)).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        }),
        objects: helm::documents(&output.stdout),
        name,
        namespace,
    }
}

/// The defaults (as release `kuma-sync`) and every `ci/*.yaml` (as `mesh-monitor`).
fn renderings() -> Vec<Rendering> {
    let ci = helm::ci_values();
    assert!(ci.len() >= 3, "ci/ holds the values files CI renders: {ci:?}");
    let mut all = vec![render(None, "kuma-sync", "kuma-sync")];
    all.extend(
        ci.iter()
            .map(|f| render(Some(f), "mesh-monitor", "observability")),
    );
    all
}

fn ci(name: &str) -> Rendering {
    render(
        Some(&helm::chart().join("ci").join(name)),
        "mesh-monitor",
        "observability",
    )
}

/// `helm template` that must fail: its stderr.
fn refused(set: &[&str]) -> String {
    let output = helm::template("kuma-sync", "kuma-sync", &[], set).unwrap_or_else(|e| panic!("{e}"));
    assert!(!output.success(), "{set:?} rendered:\n{}", output.stdout);
    output.stderr
}

#[test]
fn helm_lint_passes_with_the_defaults_and_every_ci_values_file() {
    let mut runs: Vec<Option<PathBuf>> = vec![None];
    runs.extend(helm::ci_values().into_iter().map(Some));
    for values in runs {
        let output = helm::lint(values.as_deref()).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            output.success() && output.stdout.contains("0 chart(s) failed"),
            "helm lint {values:?}:\n{}",
            output.transcript()
        );
    }
}

#[test]
fn every_rendered_object_is_valid_against_the_kubernetes_schema() {
    for rendering in renderings() {
        let kinds: BTreeSet<&str> = rendering
            .objects
            .iter()
            .map(|o| o["kind"].as_str().unwrap_or_default())
            .collect();
        for required in ["ConfigMap", "Service"] {
            assert!(kinds.contains(required), "{}: no {required}", rendering.name);
        }
        assert!(
            kinds.contains("Deployment") != kinds.contains("StatefulSet"),
            "{}: one workload, a Deployment or (sharded) a StatefulSet",
            rendering.name
        );
        for object in &rendering.objects {
            validate_object(object).unwrap_or_else(|e| {
                panic!(
                    "{}: {} {}: {e}",
                    rendering.name, object["kind"], object["metadata"]["name"]
                )
            });
            // Cluster-scoped, or the canary's grant where the canary writes.
            let canary_grant = object["metadata"]["name"]
                .as_str()
                .is_some_and(|n| n.ends_with("-canary"));
            if !matches!(
                object["kind"].as_str(),
                Some("ClusterRole" | "ClusterRoleBinding")
            ) && !canary_grant
            {
                assert_eq!(
                    object["metadata"]["namespace"], rendering.namespace,
                    "{}: {} in the release namespace",
                    rendering.name, object["kind"]
                );
            }
        }
    }
}

/// The validator is not a formality on rendered output either.
#[test]
fn the_validator_catches_a_misplaced_field_in_rendered_output() {
    let rendering = render(None, "kuma-sync", "kuma-sync");
    let mut deployment = rendering.of_kind("Deployment")[0].clone();
    deployment["spec"]["template"]["spec"]["containers"][0]["runAsNonRoot"] = true.into();
    let error = validate_object(&deployment).expect_err("misplaced runAsNonRoot accepted");
    assert!(error.contains("runAsNonRoot"), "{error}");
}

#[test]
fn the_pod_runs_unprivileged_in_every_rendering() {
    for rendering in renderings() {
        let name = &rendering.name;
        if rendering.of_kind("StatefulSet").is_empty() {
            let spec = rendering.one::<Deployment>("Deployment").spec.expect("spec");
            let replicas = rendering.values["replicaCount"].as_i64().map_or(1, |n| n as i32);
            assert_eq!(spec.replicas, Some(replicas), "{name}");
            // One replica: never two pods at once, two KDS probes under one zone name.
            // More: they elect the one that runs the probe, and roll.
            let strategy = if replicas == 1 {
                "Recreate"
            } else {
                "RollingUpdate"
            };
            assert_eq!(
                spec.strategy.and_then(|s| s.type_).as_deref(),
                Some(strategy),
                "{name}"
            );
        } else {
            let spec = rendering.one::<StatefulSet>("StatefulSet").spec.expect("spec");
            assert_eq!(
                spec.replicas,
                rendering.values["shards"].as_i64().map(|n| n as i32),
                "{name}"
            );
            // A StatefulSet replaces pod K only once the old pod K is gone.
            assert_eq!(
                spec.update_strategy.and_then(|s| s.type_).as_deref(),
                Some("RollingUpdate"),
                "{name}"
            );
        }
        let pod = rendering.pod();
        let pod_security = pod.security_context.expect("pod securityContext");
        assert_eq!(pod_security.run_as_non_root, Some(true), "{name}");
        assert!(pod_security.run_as_user.is_some_and(|u| u > 0), "{name}");
        assert_eq!(
            pod_security.seccomp_profile.map(|p| p.type_).as_deref(),
            Some("RuntimeDefault"),
            "{name}"
        );
        let container = pod.containers.into_iter().next().expect("container");
        let security = container.security_context.expect("container securityContext");
        assert_eq!(security.run_as_non_root, Some(true), "{name}");
        assert_eq!(security.read_only_root_filesystem, Some(true), "{name}");
        assert_eq!(security.allow_privilege_escalation, Some(false), "{name}");
        assert_ne!(security.privileged, Some(true), "{name}");
        let capabilities = security.capabilities.expect("capabilities");
        assert_eq!(capabilities.drop, Some(vec!["ALL".to_owned()]), "{name}");
        assert!(capabilities.add.is_none_or(|a| a.is_empty()), "{name}");
        let resources = container.resources.expect("resources");
        for (what, map) in [("requests", resources.requests), ("limits", resources.limits)] {
            let map = map.unwrap_or_else(|| panic!("{name}: no {what}"));
            assert!(
                map.contains_key("cpu") && map.contains_key("memory"),
                "{name}: {what}"
            );
        }
        // Credentials come from Secrets that may not exist yet, read-only.
        for volume in pod.volumes.into_iter().flatten() {
            if let Some(secret) = volume.secret {
                assert_eq!(secret.optional, Some(true), "{name}: volume {}", volume.name);
                assert_eq!(secret.default_mode, Some(0o440), "{name}: volume {}", volume.name);
            }
        }
        for mount in container.volume_mounts.into_iter().flatten() {
            if mount.mount_path != "/tmp" {
                assert_eq!(mount.read_only, Some(true), "{name}: {}", mount.mount_path);
            }
        }
    }
}

#[test]
fn every_rendering_runs_the_image_deploy_image_env_names() {
    let image = repo::image();
    for rendering in renderings() {
        assert_eq!(
            rendering.container().image,
            Some(image.reference()),
            "{}",
            rendering.name
        );
    }
}

/// The configuration the chart renders, loaded by kuma-sync's parser (the one `serve`
/// uses) in a temporary directory laid out like the pod: the ConfigMap and the chart's
/// own Secrets are written where the Deployment mounts them.
fn load_in_the_pod(rendering: &Rendering) -> ServeConfig {
    let name = &rendering.name;
    let pod = rendering.pod();
    let container = rendering.container();
    let root = tempfile::tempdir().expect("temp dir");
    let at = |path: &str| root.path().join(path.trim_start_matches('/'));
    let config_text = rendering.config_text();
    let secrets = rendering.secrets();
    let mounts = container.volume_mounts.clone().unwrap_or_default();
    let mut secret_mounts = Vec::new();
    for mount in &mounts {
        let volume = pod
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == mount.name)
            .unwrap_or_else(|| panic!("{name}: mount {} has no volume", mount.name));
        if let Some(config_map) = &volume.config_map {
            assert_eq!(
                config_map.name,
                rendering.of_kind("ConfigMap")[0]["metadata"]["name"],
                "{name}: the config volume is the rendered ConfigMap"
            );
            assert_eq!(mount.sub_path.as_deref(), Some("kuma-sync.yaml"), "{name}");
            let file = at(&mount.mount_path);
            std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
            std::fs::write(
                &file,
                config_text.replace(SECRETS_DIR, &at(SECRETS_DIR).to_string_lossy()),
            )
            .expect("write config");
        } else if let Some(secret) = &volume.secret {
            let dir = at(&mount.mount_path);
            std::fs::create_dir_all(&dir).expect("mkdir");
            let secret_name = secret.secret_name.clone().expect("secretName");
            assert_eq!(
                mount.mount_path,
                format!("{SECRETS_DIR}{secret_name}"),
                "{name}: Secret {secret_name} mounted where the config points"
            );
            for (key, value) in secrets.get(&secret_name).into_iter().flatten() {
                std::fs::write(dir.join(key), value).expect("write secret file");
            }
            secret_mounts.push((mount.mount_path.clone(), secret_name));
        } else {
            std::fs::create_dir_all(at(&mount.mount_path)).expect("mkdir");
        }
    }
    // Every file the configuration names is in a mounted Secret, and each mounted Secret
    // is one the configuration names; with the chart's own Secrets, the file exists.
    let config: Value = serde_saphyr::from_str(&config_text).unwrap_or_else(|e| panic!("{name}: {e}"));
    let paths = serve_config::file_paths(&config);
    for path in &paths {
        let (_, secret) = secret_mounts
            .iter()
            .find(|(m, _)| path.starts_with(&format!("{m}/")))
            .unwrap_or_else(|| panic!("{name}: {path} is under no Secret mount ({secret_mounts:?})"));
        if secrets.contains_key(secret) {
            assert!(
                at(path).is_file(),
                "{name}: {path} is not a key of Secret {secret}"
            );
        }
    }
    for (mount, secret) in &secret_mounts {
        assert!(
            paths.iter().any(|p| p.starts_with(&format!("{mount}/"))),
            "{name}: Secret {secret} is mounted but the config names none of its files"
        );
    }
    let args = container.args.clone().expect("args");
    let at_config = args.iter().position(|a| a == "--config").expect("--config");
    assert_eq!(args[0], "serve", "{name}");
    let config_path = at(&args[at_config + 1]);
    ServeConfig::load(&config_path).unwrap_or_else(|e| {
        panic!("{name}: kuma-sync refuses the rendered configuration: {e}\n{config_text}")
    })
}

#[test]
fn the_rendered_configuration_is_accepted_by_kuma_sync() {
    for rendering in renderings() {
        let name = &rendering.name;
        let config = load_in_the_pod(&rendering);
        let values = &rendering.values["config"];
        let zones: Vec<&str> = config.zones.iter().map(|(n, _)| n.as_str()).collect();
        let expected: Vec<&str> = values["zones"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|z| z["name"].as_str().expect("zone name"))
            .collect();
        assert_eq!(zones, expected, "{name}: zones");
        assert_eq!(
            config.kds.as_ref().map(|k| k.address.as_str()),
            values["kds"]["address"].as_str(),
            "{name}: KDS probe"
        );
        assert_eq!(config.listen.port(), 9465, "{name}");
        let port = rendering
            .container()
            .ports
            .into_iter()
            .flatten()
            .next()
            .expect("port");
        assert_eq!(
            (port.name.as_deref(), port.container_port),
            (Some("metrics"), 9465),
            "{name}"
        );
        assert_eq!(
            config.basic_auth.as_ref().map(|(user, _)| user.as_str()),
            values["metrics"]["basicAuth"]["username"].as_str(),
            "{name}: basic auth"
        );
        assert_eq!(
            config.tls.is_some(),
            values["metrics"]["tls"]["secretName"].is_string(),
            "{name}: TLS"
        );
    }
}

/// The values file the README shows renders, validates and is accepted by kuma-sync.
#[test]
fn the_readme_values_file_works() {
    let readme = repo::read(&repo::root().join("README.md"));
    let start = readme
        .find("# my-values.yaml\n")
        .expect("README.md shows my-values.yaml");
    let block = &readme[start..];
    let values = &block[..block.find("```").expect("end of the block")];
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("my-values.yaml");
    std::fs::write(&file, values).expect("write values");
    let rendering = render(Some(&file), "kuma-sync", "kuma-sync");
    for object in &rendering.objects {
        validate_object(object).unwrap_or_else(|e| panic!("README values: {}: {e}", object["kind"]));
    }
    let config = load_in_the_pod(&rendering);
    assert_eq!(config.zones.len(), 2);
    assert!(config.kds.is_some());
    assert_eq!(rendering.of_kind("PrometheusRule").len(), 1);
}

/// The chart's password Secret really is what the daemon reads at start-up.
#[test]
fn basic_auth_reads_the_password_from_the_mounted_secret() {
    let rendering = ci("metrics-tls-auth.yaml");
    let config = load_in_the_pod(&rendering);
    let password = rendering.values["secrets"]["kuma-sync-metrics-auth"]["password"]
        .as_str()
        .expect("password in the values");
    assert_eq!(
        config.basic_auth,
        Some(("prometheus".to_owned(), password.to_owned()))
    );
}

/// More than one replica: they elect a leader on a Lease in the release namespace, named
/// after the release; the chart grants that Lease and nothing more in the namespace.
#[test]
fn replicas_elect_a_leader_on_a_lease_the_chart_grants() {
    let replicas = ci("replicas.yaml");
    let deployment: Deployment = replicas.one("Deployment");
    let name = deployment.metadata.name.clone().expect("name");
    let spec = deployment.spec.expect("spec");
    assert_eq!(spec.replicas, Some(2));
    let config = load_in_the_pod(&replicas);
    let election = config
        .leader_election
        .expect("leaderElection in the configuration");
    assert_eq!(election.election.namespace, replicas.namespace);
    assert_eq!(election.election.lease_name, name);
    assert!(election.election.identity.is_empty(), "each pod is its HOSTNAME");
    assert!(election.kubeconfig.is_none(), "in-cluster");
    let role: Role = replicas.one("Role");
    let rules = role.rules.expect("rules");
    assert_eq!(rules.len(), 1, "{rules:?}");
    assert_eq!(
        rules[0].api_groups.as_deref(),
        Some(&["coordination.k8s.io".to_owned()][..])
    );
    assert_eq!(rules[0].resources.as_deref(), Some(&["leases".to_owned()][..]));
    assert_eq!(rules[0].verbs, ["get", "create", "update"]);
    let binding: RoleBinding = replicas.one("RoleBinding");
    assert_eq!(binding.role_ref.name, role.metadata.name.expect("role name"));
    let account: ServiceAccount = replicas.one("ServiceAccount");
    assert_eq!(
        binding.subjects.expect("subjects")[0].name,
        account.metadata.name.expect("account name")
    );
    // One replica elects nothing and is granted nothing in its namespace.
    let one = render(None, "kuma-sync", "kuma-sync");
    assert!(one.of_kind("Role").is_empty() && one.of_kind("RoleBinding").is_empty());
    assert!(load_in_the_pod(&one).leader_election.is_none());
    // Sharded too: replicas of each shard, pod N a replica of shard N mod shards.
    let both = helm::template("kuma-sync", "kuma-sync", &[], &["replicaCount=2", "shards=3"])
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(both.success(), "{}", both.transcript());
    let both = Rendering {
        name: "replicaCount=2,shards=3".into(),
        values: Value::Null,
        namespace: "kuma-sync",
        objects: helm::documents(&both.stdout),
    };
    let sts: StatefulSet = both.one("StatefulSet");
    assert_eq!(sts.spec.expect("spec").replicas, Some(6));
    let config = load_in_the_pod(&both);
    let shards = config.shards.expect("sharded");
    assert_eq!((shards.total, shards.replicas), (3, Some(2)));
    let name = sts.metadata.name.expect("name");
    assert_eq!(
        shards
            .shard(Some(&format!("{name}-4")))
            .unwrap_or_else(|e| panic!("{e}"))
            .index,
        1
    );
    assert!(
        config.leader_election.is_some(),
        "each shard's replicas elect a leader"
    );
    assert!(refused(&["replicaCount=0"]).contains("replicaCount"));
}

/// `shards: N` runs N pods of a StatefulSet, pod K being shard K of N by its name alone,
/// with the pod the Deployment would run; one shard stays a Deployment.
#[test]
fn shards_run_as_a_statefulset_whose_ordinals_are_the_shard_indexes() {
    let sharded = ci("sharded.yaml");
    let sts: StatefulSet = sharded.one("StatefulSet");
    let spec = sts.spec.clone().expect("spec");
    assert_eq!(spec.replicas, Some(3));
    assert_eq!(spec.pod_management_policy.as_deref(), Some("Parallel"));
    // The governing Service exists and is headless.
    let governing = spec.service_name.clone().expect("serviceName");
    let services: Vec<Service> = sharded
        .of_kind("Service")
        .into_iter()
        .map(|o| strict("sharded: Service", o))
        .collect();
    let headless = services
        .iter()
        .find(|s| s.metadata.name.as_deref() == Some(governing.as_str()))
        .unwrap_or_else(|| panic!("no Service {governing}"));
    assert_eq!(
        headless.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()),
        Some("None")
    );
    // Every pod finds its shard in its own name, as the StatefulSet names pods.
    let config = load_in_the_pod(&sharded);
    let shards = config.shards.as_ref().expect("the config is sharded");
    assert_eq!((shards.total, shards.index), (3, None));
    let name = sts.metadata.name.clone().expect("name");
    for ordinal in 0..3 {
        let shard = shards
            .shard(Some(&format!("{name}-{ordinal}")))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((shard.index, shard.total), (ordinal, 3));
    }
    // The same pod as unsharded: only the configuration differs.
    let one = helm::template(
        "mesh-monitor",
        "observability",
        &[&helm::chart().join("ci").join("sharded.yaml")],
        &["shards=1"],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(one.success(), "{}", one.transcript());
    let one = Rendering {
        name: "shards=1".into(),
        values: Value::Null,
        namespace: "observability",
        objects: helm::documents(&one.stdout),
    };
    assert!(one.of_kind("StatefulSet").is_empty());
    assert_eq!(one.container(), sharded.container());
    assert!(load_in_the_pod(&one).shards.is_none());
    assert!(refused(&["shards=0"]).contains("shards"));
}

/// `config.canary.mesh` turns the canary on: the configuration says so, and on the
/// in-cluster Kubernetes global the chart grants its one write (its MeshTimeout in Kuma's
/// system namespace) and nothing else; off, nothing is granted.
#[test]
fn the_canary_is_granted_its_one_write_and_only_when_on() {
    let on = ci("canary.yaml");
    let config = load_in_the_pod(&on);
    let canary = config.canary.expect("the canary is on");
    assert_eq!(canary.mesh, "default");
    assert_eq!(canary.interval, std::time::Duration::from_secs(120));
    let role: Role = on.one("Role");
    assert_eq!(role.metadata.namespace.as_deref(), Some("kuma-system"));
    let rules = role.rules.expect("rules");
    assert_eq!(rules.len(), 1, "{rules:?}");
    assert_eq!(rules[0].api_groups.as_deref(), Some(&["kuma.io".to_owned()][..]));
    assert_eq!(
        rules[0].resources.as_deref(),
        Some(&["meshtimeouts".to_owned()][..])
    );
    assert_eq!(rules[0].verbs, ["get", "create", "update"]);
    let binding: RoleBinding = on.one("RoleBinding");
    assert_eq!(binding.metadata.namespace.as_deref(), Some("kuma-system"));
    assert_eq!(binding.role_ref.name, role.metadata.name.expect("name"));
    let off = render(None, "kuma-sync", "kuma-sync");
    assert!(load_in_the_pod(&off).canary.is_none());
    assert!(off.of_kind("Role").is_empty(), "read-only when the canary is off");
}

#[test]
fn values_kuma_sync_does_not_support_are_refused() {
    // Not implemented yet: a documented place in values.yaml, refused by the schema.
    for (set, key) in [
        ("canary.enabled=true", "'canary'"),
        ("config.leaderElection=true", "'leaderElection'"),
    ] {
        let stderr = refused(&[set]);
        assert!(stderr.contains(key), "{set}: {stderr}");
    }
    // Inline tokens would land in the ConfigMap: only Secrets.
    let stderr = refused(&[
        "config.zones[0].name=zone-1",
        "config.zones[0].api.url=http://zone-1:5681",
        "config.zones[0].api.token=secret",
    ]);
    assert!(stderr.contains("token"), "{stderr}");
}

#[test]
fn configurations_kuma_sync_would_refuse_fail_at_install() {
    for (set, expected) in [
        (
            &[
                "config.zones[0].name=zone-1",
                "config.zones[0].api.url=http://z:5681",
                "config.zones[0].kubernetes.context=c",
            ][..],
            "not both",
        ),
        (&["config.zones[0].name=Zone_1"][..], "not a DNS label"),
        (
            &["config.zones[0].name=zone-1", "config.zones[1].name=zone-1"][..],
            "listed twice",
        ),
        (
            &[
                "config.zones[0].name=zone-1",
                "config.kds.address=grpcs://g:5685",
                "config.kds.zoneName=zone-1",
            ][..],
            "real zone",
        ),
        (&["config.global.api.url=global:5681"][..], "global:5681"),
        (
            &[
                "config.global.api.url=http://g:5681",
                "config.global.api.tokenSecret.name=t",
            ][..],
            "tokenSecret.key",
        ),
        (
            &["config.metrics.basicAuth.username=prometheus"][..],
            "passwordSecret",
        ),
        (&["config.global.environment=hybrid"][..], "environment"),
    ] {
        let stderr = refused(set);
        assert!(stderr.contains(expected), "{set:?}: {stderr}");
    }
}

#[test]
fn the_chart_copy_of_the_rules_is_the_rule_file() {
    let plain = repo::read(&repo::deploy(RULES));
    let copy = repo::deploy(CHART_RULES);
    if std::env::var_os("KUMA_SYNC_REGENERATE").is_some() {
        std::fs::write(&copy, &plain).expect("write the chart's copy");
    }
    assert!(
        repo::read(&copy) == plain,
        "deploy/{CHART_RULES} differs from deploy/{RULES}; regenerate with \
         KUMA_SYNC_REGENERATE=1 cargo test -p deploy-tests --test helm"
    );
}

#[test]
fn the_prometheus_rule_holds_the_rule_file_groups() {
    let plain: Value = serde_saphyr::from_str(&repo::read(&repo::deploy(RULES))).expect("rules");
    let mut rendered = 0;
    for rendering in renderings() {
        let enabled = rendering.values["prometheusRule"]["enabled"] == true;
        let rules = rendering.of_kind("PrometheusRule");
        assert_eq!(rules.len(), usize::from(enabled), "{}", rendering.name);
        for rule in rules {
            let typed: PrometheusRule = strict(&rendering.name, rule);
            assert_eq!(
                serde_json::to_value(&typed.spec.groups).expect("groups"),
                plain["groups"],
                "{}: the PrometheusRule's groups differ from deploy/{RULES}",
                rendering.name
            );
            // Prometheus' own templates reach the operator untouched by Helm's.
            assert!(rule.to_string().contains("{{ $labels.zone }}"));
            rendered += 1;
        }
    }
    assert!(rendered > 0, "no ci values file enables the PrometheusRule");
}

#[test]
fn the_chart_grants_what_the_kustomize_base_grants() {
    let base: ClusterRole = strict(
        "clusterrole.yaml",
        &serde_saphyr::from_str(&repo::read(&repo::deploy("kubernetes/clusterrole.yaml"))).expect("yaml"),
    );
    let rendering = render(None, "kuma-sync", "kuma-sync");
    let role: ClusterRole = rendering.one("ClusterRole");
    assert_eq!(role.rules, base.rules, "ClusterRole rules");
    let binding: ClusterRoleBinding = rendering.one("ClusterRoleBinding");
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
    assert_eq!(rendering.pod().service_account_name.as_deref(), Some("kuma-sync"));
    // Without rbac, no cluster-wide objects at all.
    let rest_only = ci("metrics-tls-auth.yaml");
    assert!(rest_only.of_kind("ClusterRole").is_empty());
    assert!(rest_only.of_kind("ClusterRoleBinding").is_empty());
    assert!(rest_only.of_kind("ServiceAccount").is_empty());
    assert_eq!(
        rest_only.pod().service_account_name.as_deref(),
        Some("monitoring")
    );
}

#[test]
fn the_service_monitor_scrapes_what_the_daemon_serves() {
    let mut checked = 0;
    for rendering in renderings() {
        let name = &rendering.name;
        let service = rendering.service();
        let spec = service.spec.clone().expect("service spec");
        let pod_labels = rendering
            .pod_template()
            .metadata
            .and_then(|m| m.labels)
            .expect("pod labels");
        for (key, value) in spec.selector.clone().expect("selector") {
            assert_eq!(
                pod_labels.get(&key),
                Some(&value),
                "{name}: service selector {key}"
            );
        }
        let enabled = rendering.values["serviceMonitor"]["enabled"] == true;
        let monitors = rendering.of_kind("ServiceMonitor");
        assert_eq!(monitors.len(), usize::from(enabled), "{name}");
        for monitor in monitors {
            let monitor: ServiceMonitor = strict(name, monitor);
            let labels = service.metadata.labels.clone().expect("service labels");
            for (key, value) in monitor.spec.selector.match_labels.clone().expect("matchLabels") {
                assert_eq!(labels.get(&key), Some(&value), "{name}: {key}");
            }
            // The alert rules select job="kuma-sync", whatever the release is called.
            let job_label = monitor.spec.job_label.clone().expect("jobLabel");
            assert_eq!(
                labels.get(&job_label).map(String::as_str),
                Some("kuma-sync"),
                "{name}"
            );
            let endpoint = &monitor.spec.endpoints[0];
            assert_eq!(endpoint.port.as_deref(), Some("metrics"), "{name}");
            assert_eq!(endpoint.path.as_deref(), Some("/metrics"), "{name}");
            let config = &rendering.values["config"]["metrics"];
            let tls = config["tls"]["secretName"].as_str();
            assert_eq!(endpoint.scheme.as_deref(), tls.map(|_| "https"), "{name}: scheme");
            if let Some(tls_secret) = tls {
                let ca = endpoint
                    .tls_config
                    .as_ref()
                    .and_then(|t| t.ca.as_ref())
                    .and_then(|c| c.secret.as_ref())
                    .expect("tlsConfig.ca.secret");
                assert_eq!((ca.name.as_str(), ca.key.as_str()), (tls_secret, "ca.crt"));
                assert_eq!(
                    endpoint.tls_config.as_ref().and_then(|t| t.server_name.clone()),
                    Some(format!(
                        "{}.{}.svc",
                        service.metadata.name.clone().expect("name"),
                        rendering.namespace
                    ))
                );
            }
            match config["basicAuth"]["username"].as_str() {
                None => assert!(endpoint.basic_auth.is_none(), "{name}"),
                Some(username) => {
                    let auth = endpoint.basic_auth.as_ref().expect("basicAuth");
                    let secrets = rendering.secrets();
                    let user = secrets
                        .get(&auth.username.name)
                        .and_then(|d| d.get(&auth.username.key))
                        .expect("the username Secret is rendered");
                    assert_eq!(user, username, "{name}");
                    let password = &config["basicAuth"]["passwordSecret"];
                    assert_eq!(
                        (auth.password.name.as_str(), auth.password.key.as_str()),
                        (
                            password["name"].as_str().expect("name"),
                            password["key"].as_str().expect("key")
                        ),
                        "{name}: the password the daemon checks"
                    );
                }
            }
            checked += 1;
        }
        // Probes use the scheme /metrics is served with.
        let scheme = if rendering.values["config"]["metrics"]["tls"]["secretName"].is_string() {
            "HTTPS"
        } else {
            "HTTP"
        };
        let container = rendering.container();
        for probe in [
            container.liveness_probe,
            container.readiness_probe,
            container.startup_probe,
        ] {
            let get = probe.and_then(|p| p.http_get).expect("httpGet probe");
            assert_eq!(get.scheme.as_deref(), Some(scheme), "{name}");
        }
    }
    assert!(
        checked >= 2,
        "ci values files render ServiceMonitors with and without TLS"
    );
}

#[test]
fn the_helm_version_is_the_one_ci_installs() {
    let deploy_tests::process::Install::Go(module) = deploy_tests::process::HELM.install else {
        panic!("helm comes from the Go module proxy");
    };
    let script = repo::read(&repo::root().join(".ci/test"));
    assert!(
        script.contains(&format!("HELM_MODULE=\"{module}\"")),
        ".ci/test installs another helm than {module}"
    );
}
