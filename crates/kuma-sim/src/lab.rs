//! A whole multi-zone lab in one process: a global (KDS server, store, default policies),
//! zone control planes that sync with it over real KDS, their APIs, the admin endpoint,
//! waits built on change notifications, and every fault knob in one place.
//!
//! # Layout
//! - [`scenario`]: [`Scenario`], the YAML file a lab starts from.
//! - [`defaults`]: what a new mesh gets.
//! - `faults`: the global's fault knobs and the report of every active fault.
//! - `wait`: waits built on change notifications.

pub mod defaults;
mod faults;
pub mod scenario;
mod wait;

use std::{
    collections::{BTreeMap, BTreeSet},
    future::Future,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use kuma_model::{CpRole, Environment, KumaLine, Resource, ResourceType, labels};
use serde::Serialize;
use tokio::{
    sync::{RwLock, RwLockReadGuard},
    task::JoinHandle,
};
use tokio_util::sync::CancellationToken;

pub use faults::{FaultsReport, GlobalFaults};
pub use scenario::{EnvironmentSpec, GlobalSpec, MeshSpec, PortPlan, Scenario, ZoneSpec};

use crate::{
    GlobalStore, KdsHandle, KdsServerConfig, ResourceStore,
    kds::UpstreamTypeStats,
    start_global_kds,
    zone::{GlobalCopies, ZoneConfig, ZoneControlPlane, ZoneFaults, ZoneStore, created_on_zone},
};

/// Base ports of the well-known plan (kuma-semantics 7.2); zone N adds N*10000.
const REST_PORT: u16 = 5681;
const KDS_PORT: u16 = 5685;
const KUBERNETES_API_PORT: u16 = 6443;
const ADMIN_PORT: u16 = 5690;

/// Why a lab could not start, or a lab operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// The scenario is not valid (bad YAML, unknown field, bad name or document).
    #[error("invalid scenario: {0}")]
    Scenario(String),
    /// The global's KDS server could not start or restart.
    #[error("the global control plane failed")]
    Global(#[source] crate::Error),
    /// A zone control plane could not start.
    #[error("zone {zone} could not start")]
    Zone {
        zone: String,
        #[source]
        source: crate::zone::Error,
    },
    /// A listener (admin, REST, Kubernetes API) could not bind.
    #[error("failed to bind {what} on {addr}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// No zone of that name in the lab.
    #[error("no zone named {0:?} in the lab")]
    UnknownZone(String),
    /// A resource given to the lab does not fit where it was created.
    #[error("invalid resource: {0}")]
    Resource(String),
    /// A wait ran out of time.
    #[error("condition not met within {0:?}")]
    Timeout(Duration),
}

impl LabError {
    /// Only a bind on a port still held by a previous process is worth retrying.
    pub fn is_retryable(&self) -> bool {
        match self {
            LabError::Bind { source, .. } => source.kind() == std::io::ErrorKind::AddrInUse,
            LabError::Global(e) => e.is_retryable(),
            _ => false,
        }
    }
}

/// Where everything of a running lab is reachable.
#[derive(Debug, Clone, Serialize)]
pub struct LabUrls {
    /// `grpcs://127.0.0.1:5685` (or `grpc://`).
    pub kds: String,
    pub admin: Option<String>,
    /// REST API per control plane (`global` and each zone), once served.
    pub rest: BTreeMap<String, String>,
    /// Kubernetes API per Kubernetes-flavoured control plane, once served.
    pub kubernetes_api: BTreeMap<String, String>,
    /// Addresses the port plan reserved for APIs (`<cp>/rest`, `<cp>/kubernetes-api`)
    /// that are not served; empty once the lab has started.
    pub planned: BTreeMap<String, SocketAddr>,
}

/// A running lab; cheap to clone (all clones drive the same lab).
#[derive(Clone)]
pub struct Lab {
    inner: Arc<Inner>,
}

struct Inner {
    scenario: Scenario,
    global_store: Arc<GlobalStore>,
    /// Write-locked only by a restart.
    global: RwLock<KdsHandle>,
    zones: Vec<ZoneControlPlane>,
    urls: Mutex<LabUrls>,
    /// Cancelled to stop the admin endpoint, the APIs and the defaults task (on
    /// shutdown, or when the last handle to the lab goes).
    stop: CancellationToken,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    global_faults: Mutex<GlobalFaults>,
}

impl Drop for Inner {
    /// A lab dropped without [`Lab::shutdown`] still stops its servers.
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Lab {
    /// Starts the global, creates the scenario's meshes (with Kuma's defaults) and
    /// resources, then starts each zone with its own resources (and, if it starts synced,
    /// the copies KDS would have left it: [`GlobalCopies`]); zones connect in the
    /// background (use [`wait_until`](Self::wait_until) or
    /// [`wait_connected`](Self::wait_connected)). Ports default to ephemeral.
    pub async fn start(scenario: Scenario) -> Result<Lab, LabError> {
        scenario.validate()?;
        let global_env = scenario.global.environment.environment();
        let line = scenario.line()?;
        let global_store = Arc::new(GlobalStore::new(global_env.clone()).with_line(line));
        let skip_all = scenario.skip_creating_initial_policies.clone();
        for mesh in &scenario.meshes {
            let r = Resource::new(
                mesh_type(),
                None,
                &mesh.name,
                serde_json::json!({"skipCreatingInitialPolicies": mesh.skip_creating_initial_policies}),
            );
            global_store.upsert(r);
        }
        for r in scenario::read_documents("global", &scenario.global.resources)? {
            global_store.upsert(created_on_global(r, &global_env, line)?);
        }
        let mut processed = BTreeSet::new();
        ensure_mesh_defaults(&global_store, &skip_all, &mut processed);

        let kds_cfg = match scenario.global.tls {
            true => KdsServerConfig::with_generated_tls().map_err(LabError::Global)?,
            false => KdsServerConfig::default(),
        };
        let kds_addr = scenario.address(scenario.global.listen.kds, KDS_PORT, 0);
        let global = start_global_kds(global_store.clone(), kds_addr, kds_cfg)
            .await
            .map_err(LabError::Global)?;
        let kds_url = global.url();

        let mut zones = Vec::new();
        let mut planned = BTreeMap::new();
        planned.insert(
            "global/rest".to_owned(),
            scenario.address(scenario.global.listen.rest, REST_PORT, 0),
        );
        if matches!(global_env, Environment::Kubernetes { .. }) {
            planned.insert(
                "global/kubernetes-api".to_owned(),
                scenario.address(scenario.global.listen.kubernetes_api, KUBERNETES_API_PORT, 0),
            );
        }
        // Read once for every zone that starts synced: encoding a million copies zone by
        // zone would cost what syncing them does.
        let mut global_copies = scenario
            .zones
            .iter()
            .any(|z| scenario.starts_synced(z))
            .then(|| GlobalCopies::of(&global_store));
        for (i, spec) in scenario.zones.iter().enumerate() {
            let index = u16::try_from(i + 1).unwrap_or(u16::MAX);
            let env = spec.environment.environment();
            let store = Arc::new(ZoneStore::new(&spec.name, env.clone()).with_line(line));
            for r in scenario::read_documents(&format!("zone {}", spec.name), &spec.resources)? {
                store.upsert(created_on_zone(r, &spec.name, &env, line));
            }
            // After the zone's own resources: a copy clashing with one of them stays out,
            // as KDS would leave it.
            if let Some(copies) = global_copies.as_mut().filter(|_| scenario.starts_synced(spec)) {
                copies.seed(&store);
            }
            planned.insert(
                format!("{}/rest", spec.name),
                scenario.address(spec.listen.rest, REST_PORT, index),
            );
            if matches!(env, Environment::Kubernetes { .. }) {
                planned.insert(
                    format!("{}/kubernetes-api", spec.name),
                    scenario.address(spec.listen.kubernetes_api, KUBERNETES_API_PORT, index),
                );
            }
            let config = ZoneConfig::new(&spec.name, env, &kds_url);
            let zone = ZoneControlPlane::start(config, store).map_err(|source| LabError::Zone {
                zone: spec.name.clone(),
                source,
            })?;
            zones.push(zone);
        }

        let stop = CancellationToken::new();
        let lab = Lab {
            inner: Arc::new(Inner {
                global_store: global_store.clone(),
                global: RwLock::new(global),
                zones,
                urls: Mutex::new(LabUrls {
                    kds: kds_url,
                    admin: None,
                    rest: BTreeMap::new(),
                    kubernetes_api: BTreeMap::new(),
                    planned,
                }),
                stop,
                tasks: Mutex::new(Vec::new()),
                global_faults: Mutex::new(GlobalFaults {
                    restarts: 0,
                    deleted_zones: Vec::new(),
                    resurrected: Vec::new(),
                }),
                scenario,
            }),
        };
        lab.spawn_defaults_task(skip_all, processed);
        lab.serve_apis().await?;
        let admin_addr = lab
            .inner
            .scenario
            .address(lab.inner.scenario.global.listen.admin, ADMIN_PORT, 0);
        let admin = crate::admin::bind(admin_addr).await?;
        let admin_url = format!(
            "http://{}",
            admin.local_addr().map_err(|source| LabError::Bind {
                what: "the admin endpoint",
                addr: admin_addr,
                source,
            })?
        );
        lab.lock_urls().admin = Some(admin_url);
        let task = tokio::spawn(crate::admin::serve(lab.clone(), admin, lab.stopped()));
        lab.push_task(task);
        Ok(lab)
    }

    /// Starts from a scenario file's text.
    pub async fn start_yaml(text: &str) -> Result<Lab, LabError> {
        Self::start(Scenario::from_yaml(text)?).await
    }

    pub fn scenario(&self) -> &Scenario {
        &self.inner.scenario
    }

    pub fn urls(&self) -> LabUrls {
        self.lock_urls().clone()
    }

    pub fn kds_url(&self) -> String {
        self.lock_urls().kds.clone()
    }

    pub fn admin_url(&self) -> Option<String> {
        self.lock_urls().admin.clone()
    }

    pub fn global_store(&self) -> &Arc<GlobalStore> {
        &self.inner.global_store
    }

    /// The global's KDS server: records, zone-to-global stats, its own fault knobs.
    pub async fn global(&self) -> RwLockReadGuard<'_, KdsHandle> {
        self.inner.global.read().await
    }

    pub fn zones(&self) -> &[ZoneControlPlane] {
        &self.inner.zones
    }

    pub fn zone(&self, name: &str) -> Result<&ZoneControlPlane, LabError> {
        self.inner
            .zones
            .iter()
            .find(|z| z.name() == name)
            .ok_or_else(|| LabError::UnknownZone(name.to_owned()))
    }

    pub fn zone_store(&self, name: &str) -> Result<&Arc<ZoneStore>, LabError> {
        Ok(self.zone(name)?.store())
    }

    pub fn zone_faults(&self, name: &str) -> Result<&Arc<ZoneFaults>, LabError> {
        Ok(self.zone(name)?.faults())
    }

    /// Every control plane's store, the global first, for APIs and verification.
    pub fn stores(&self) -> Vec<(CpRole, Arc<dyn ResourceStore>)> {
        let mut out: Vec<(CpRole, Arc<dyn ResourceStore>)> =
            vec![(CpRole::Global, self.inner.global_store.clone())];
        for z in &self.inner.zones {
            out.push((CpRole::Zone(z.name().to_owned()), z.store().clone()));
        }
        out
    }

    /// Creates `r` on the global as Kuma does on creation (a new Mesh also gets its
    /// default policies).
    pub fn create_on_global(&self, r: Resource) -> Result<(), LabError> {
        let store = &self.inner.global_store;
        let r = created_on_global(r, store.environment(), store.line())?;
        self.inner.global_store.upsert(r);
        Ok(())
    }

    /// Creates `r` as the zone's own resource (origin, zone, namespace and role labels).
    pub fn create_on_zone(&self, zone: &str, r: Resource) -> Result<(), LabError> {
        let z = self.zone(zone)?;
        let r = created_on_zone(r, zone, z.store().environment(), z.store().line());
        z.store().upsert(r);
        Ok(())
    }

    /// Per zone and type: what the global received over `ZoneToGlobalSync`. Usable in
    /// [`wait_until`](Self::wait_until) conditions; empty while a restart is under way.
    pub fn zone_to_global_stats(&self, zone: &str) -> BTreeMap<String, UpstreamTypeStats> {
        self.inner
            .global
            .try_read()
            .map(|g| g.zone_to_global_stats(zone))
            .unwrap_or_default()
    }

    /// Stops zones, the admin endpoint, the APIs and the global, in that order.
    pub async fn shutdown(self) {
        self.inner.stop.cancel();
        for z in &self.inner.zones {
            z.shutdown().await;
        }
        let tasks: Vec<_> = std::mem::take(&mut *self.inner.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        for t in tasks {
            if tokio::time::timeout(Duration::from_secs(5), t).await.is_err() {
                tracing::warn!("a lab task did not stop in time");
            }
        }
        let _ = tokio::time::timeout(Duration::from_secs(6), async {
            self.inner.global.write().await.stop_serving().await;
        })
        .await;
    }

    /// Resolves once the lab is shutting down.
    pub fn stopped(&self) -> impl Future<Output = ()> + Send + 'static {
        self.inner.stop.clone().cancelled_owned()
    }

    /// Serves each control plane's REST API, and the Kubernetes API of the
    /// Kubernetes-flavoured ones, on the planned addresses.
    async fn serve_apis(&self) -> Result<(), LabError> {
        let planned = std::mem::take(&mut self.lock_urls().planned);
        let stores: BTreeMap<String, Arc<dyn ResourceStore>> = self
            .stores()
            .into_iter()
            .map(|(cp, store)| (cp.to_string(), store))
            .collect();
        for (what, addr) in planned {
            let Some((cp, api)) = what.split_once('/') else {
                continue;
            };
            let Some(store) = stores.get(cp).cloned() else {
                continue;
            };
            let kubernetes = api == "kubernetes-api";
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| LabError::Bind {
                    what: if kubernetes {
                        "a Kubernetes API"
                    } else {
                        "a REST API"
                    },
                    addr,
                    source,
                })?;
            let local = listener.local_addr().map_err(|source| LabError::Bind {
                what: "an API",
                addr,
                source,
            })?;
            let url = format!("http://{local}");
            let stopped = self.stopped();
            let task = if kubernetes {
                self.lock_urls().kubernetes_api.insert(cp.to_owned(), url);
                tokio::spawn(crate::k8s_api::serve_k8s_api(store, listener, stopped))
            } else {
                self.lock_urls().rest.insert(cp.to_owned(), url);
                let cp = cp.to_owned();
                tokio::spawn(async move {
                    if let Err(error) = crate::rest::serve_rest(store, listener, stopped).await {
                        tracing::error!(%error, control_plane = %cp, "REST API stopped");
                    }
                })
            };
            self.push_task(task);
        }
        Ok(())
    }

    fn spawn_defaults_task(&self, skip: Vec<String>, mut processed: BTreeSet<String>) {
        let store = self.inner.global_store.clone();
        let mut changes = store.subscribe();
        let stopped = self.stopped();
        let task = tokio::spawn(async move {
            tokio::pin!(stopped);
            loop {
                tokio::select! {
                    () = &mut stopped => return,
                    changed = changes.changed() => if changed.is_err() { return },
                }
                ensure_mesh_defaults(&store, &skip, &mut processed);
            }
        });
        self.push_task(task);
    }

    fn push_task(&self, task: JoinHandle<()>) {
        self.inner
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(task);
    }

    fn lock_urls(&self) -> std::sync::MutexGuard<'_, LabUrls> {
        self.inner.urls.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_global_faults(&self) -> std::sync::MutexGuard<'_, GlobalFaults> {
        self.inner.global_faults.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl std::fmt::Debug for Lab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lab")
            .field("urls", &self.urls())
            .finish_non_exhaustive()
    }
}

fn mesh_type() -> ResourceType {
    ResourceType::from_name("Mesh").expect("Mesh is in the type table")
}
/// A resource as the global stores it on creation: the mesh label on mesh-scoped types;
/// on a Kubernetes global, namespaced types live in the system namespace; Kuma 3 labels
/// as [`crate::kuma_3`] says.
fn created_on_global(mut r: Resource, env: &Environment, line: KumaLine) -> Result<Resource, LabError> {
    if let Some(origin) = r.label(labels::ORIGIN)
        && origin != labels::ORIGIN_GLOBAL
    {
        return Err(LabError::Resource(format!(
            "{} {}: the global only accepts origin `global` (got {origin:?})",
            r.rtype, r.name
        )));
    }
    if let Some(mesh) = r.mesh.clone() {
        r.labels.entry(labels::MESH.to_owned()).or_insert(mesh);
    }
    if let Environment::Kubernetes { system_namespace } = env
        && r.rtype.info().k8s_namespaced()
    {
        let suffix = format!(".{system_namespace}");
        let plain = r.name.strip_suffix(&suffix).unwrap_or(&r.name).to_owned();
        r.name = format!("{plain}{suffix}");
        r.labels
            .entry(labels::NAMESPACE.to_owned())
            .or_insert_with(|| system_namespace.clone());
        r.labels.entry(labels::DISPLAY_NAME.to_owned()).or_insert(plain);
        if r.rtype.info().is_targetref_policy() {
            r.labels
                .entry(labels::POLICY_ROLE.to_owned())
                .or_insert_with(|| "system".to_owned());
        }
    }
    if line == KumaLine::V3 {
        // Kuma 3 overwrites any display name with the resource's own (its plain name on
        // Kubernetes, set above).
        let display = match env {
            Environment::Universal => r.name.clone(),
            Environment::Kubernetes { .. } => r.label(labels::DISPLAY_NAME).unwrap_or(&r.name).to_owned(),
        };
        let mesh = r.mesh.clone();
        crate::kuma_3::compute_labels(
            &mut r.labels,
            r.rtype,
            mesh.as_deref(),
            &display,
            &CpRole::Global,
            env,
        );
    }
    // Kuma's store stamps every write; kuma-sync measures propagation from these.
    let now = jiff::Timestamp::now();
    r.creation_time.get_or_insert(now);
    r.modification_time = Some(now);
    Ok(r)
}

/// Creates the defaults of every mesh not seen before (Kuma's mesh manager does it once,
/// on creation; deleted defaults are not recreated).
fn ensure_mesh_defaults(store: &GlobalStore, skip_all: &[String], processed: &mut BTreeSet<String>) {
    for mesh in store.list(Some(mesh_type())) {
        if !processed.insert(mesh.name.clone()) {
            continue;
        }
        let mut skip: Vec<String> = skip_all.to_vec();
        if let Some(list) = mesh
            .spec
            .get("skipCreatingInitialPolicies")
            .and_then(|v| v.as_array())
        {
            skip.extend(list.iter().filter_map(|v| v.as_str()).map(str::to_owned));
        }
        for r in defaults::mesh_defaults(&mesh.name, store.environment(), store.line(), &skip) {
            if store.get(&r.key()).is_none() {
                store.upsert(r);
            }
        }
    }
}
