//! The Kubernetes API as a source: a kube-rs `watcher()` per checked type on the control
//! plane's cluster, reconnecting with kube's default backoff. Watch events become single
//! changes; a (re)list becomes a snapshot once every type has listed, so nothing
//! half-listed is ever judged: the first one of the whole control plane, each later
//! relist of its type alone.
//!
//! Listed objects are held only until the monitor has them, each as its resource with
//! the spec kept as JSON text (a parsed spec takes several times its text), and handed
//! over through [`Monitor::snapshot_each`], one at a time, as the REST source hands over
//! its pages. Once handed over, the engine holds them; the source keeps nothing of them
//! but the ZoneInsights it publishes.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, HashSet},
    future::Future,
    path::Path,
    sync::Arc,
};

use futures::{StreamExt, stream};
use jiff::Timestamp;
use kube::{
    Api, Client,
    api::{ApiResource, DynamicObject},
    runtime::{WatchStreamExt, watcher},
};
use kuma_model::{
    CpRole, Resource, ResourceKey, ResourceType,
    read::{ReadOptions, read_value_each},
    types::K8sKind,
};

use super::{
    SourceError,
    first_reads::FirstReads,
    insight::{self, ZoneInsight},
};
use crate::{
    Change,
    monitor::{Monitor, key_digest},
};
use serde_json::{Map, Value};

/// A client for the cluster of a kubeconfig (and context), or the in-cluster one.
pub async fn client(kubeconfig: Option<&Path>, context: Option<&str>) -> Result<Client, SourceError> {
    let options = kube::config::KubeConfigOptions {
        context: context.map(str::to_owned),
        ..Default::default()
    };
    let config = match kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)
                .map_err(|e| SourceError::Config(format!("kubeconfig {}: {e}", path.display())))?;
            kube::Config::from_custom_kubeconfig(kc, &options)
                .await
                .map_err(|e| SourceError::Config(format!("kubeconfig {}: {e}", path.display())))?
        }
        None => kube::Config::incluster()
            .map_err(|e| SourceError::Config(format!("in-cluster configuration: {e}")))?,
    };
    Client::try_from(config).map_err(|e| SourceError::Config(format!("Kubernetes client: {e}")))
}

/// The kuma.io CRD of a type, if it has one.
pub fn api_resource(rtype: ResourceType) -> Option<ApiResource> {
    match rtype.info().k8s {
        K8sKind::Crd { plural, .. } => Some(ApiResource {
            group: "kuma.io".into(),
            version: "v1alpha1".into(),
            api_version: "kuma.io/v1alpha1".into(),
            kind: rtype.name().into(),
            plural: plural.into(),
        }),
        _ => None,
    }
}

/// The types to watch on `cp`: the checked ones, plus Zone and ZoneInsight on the global
/// (which zones exist, which are disabled, online, rejecting updates).
pub fn types_for(cp: &CpRole, checked: impl Iterator<Item = ResourceType>) -> Vec<ResourceType> {
    let mut types = super::poll::PollTarget::types_for(cp, checked);
    if *cp == CpRole::Global
        && let Some(insight) = ResourceType::from_name("ZoneInsight")
        && !types.contains(&insight)
    {
        types.push(insight);
    }
    types
}

/// One watcher event, tagged with its type.
enum Event {
    Init(ResourceType),
    InitApply(ResourceType, Resource),
    InitDone(ResourceType),
    Apply(Resource),
    Delete(ResourceKey),
    Error(SourceError),
}

/// Objects one (re)list of a type may hold before it is refused: the REST source's
/// item bound ([`super::rest::ReadLimits`]). An API server that pages without end (a
/// `continue` token that always leads on) would otherwise grow the list until memory
/// runs out, the zone `converged` on what it held before.
pub const MAX_LISTED: usize = 1_000_000;

/// Watches `types` on `client` for control plane `cp` until `shutdown`.
pub async fn watch(
    cp: CpRole,
    client: Client,
    types: Vec<ResourceType>,
    monitor: Arc<Monitor>,
    first_reads: FirstReads,
    shutdown: impl Future<Output = ()>,
) {
    watch_within(cp, client, types, monitor, MAX_LISTED, first_reads, shutdown).await;
}

/// [`watch`], refusing any (re)list of a type with more than `max_listed` objects. Until
/// every type has listed once, the watchers run only while holding a place among
/// `first_reads`, given up when a watch fails (the others go first while it backs off).
pub async fn watch_within(
    cp: CpRole,
    client: Client,
    types: Vec<ResourceType>,
    monitor: Arc<Monitor>,
    max_listed: usize,
    first_reads: FirstReads,
    shutdown: impl Future<Output = ()>,
) {
    let mut shutdown = std::pin::pin!(shutdown);
    let mut state = Listing::new(
        types.iter().copied().filter(|t| api_resource(*t).is_some()),
        max_listed,
    );
    // A watcher whose list was refused would go on paging it: every watcher starts
    // again, after a pause, and lists afresh.
    let mut restart_pause = RESTART_PAUSE_MIN;
    // Every type has listed once: the first read is over.
    let mut listed_once = false;
    let mut place = None;
    loop {
        let streams = types.iter().filter_map(|&t| {
            let ar = api_resource(t)?;
            let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
            let events = watcher(api, watcher::Config::default())
                .default_backoff()
                .map(move |e| convert(t, &ar, e));
            Some(events.boxed())
        });
        let mut events = stream::select_all(streams);
        loop {
            // Streams are lazy: without a place, nothing is listed.
            if !listed_once && place.is_none() {
                place = tokio::select! {
                    _ = &mut shutdown => return,
                    p = first_reads.enter() => Some(p),
                };
            }
            let event = tokio::select! {
                _ = &mut shutdown => return,
                e = events.next() => match e { Some(e) => e, None => return },
            };
            if matches!(event, Event::Error(_)) {
                place = None;
            }
            let was_complete = state.complete();
            let insights_changed = state.apply(&cp, event, &monitor, Timestamp::now());
            // ZoneInsights may list before the other types: publish them once all have. Only
            // the global's source watches them; the zones' must not publish an empty set.
            if state.watches_insights() && state.complete() && (insights_changed || !was_complete) {
                monitor.zone_insights(state.zone_insights());
            }
            if state.complete() {
                restart_pause = RESTART_PAUSE_MIN;
                listed_once = true;
                place = None;
            }
            if state.take_overflow() {
                break;
            }
        }
        drop(events);
        place = None;
        state.restart();
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tokio::time::sleep(restart_pause) => {}
        }
        restart_pause = (restart_pause * 2).min(RESTART_PAUSE_MAX);
    }
}

/// The pause before watchers start again after a refused list, doubling to the longest.
const RESTART_PAUSE_MIN: std::time::Duration = std::time::Duration::from_millis(500);
const RESTART_PAUSE_MAX: std::time::Duration = std::time::Duration::from_secs(60);

/// Per-type lists being (re)built, the objects the monitor does not have yet, and the
/// global's ZoneInsights.
struct Listing {
    types: BTreeSet<ResourceType>,
    /// Lists done whose objects the monitor does not have yet: until every type has
    /// listed, the first snapshot waits for all of them.
    unfed: BTreeMap<ResourceType, HashMap<u128, Held>>,
    /// Lists in progress after `Init`, moved to `unfed` at `InitDone`.
    pending: BTreeMap<ResourceType, HashMap<u128, Held>>,
    listed: BTreeSet<ResourceType>,
    /// Types whose list in progress passed `max_listed`: dropped, and not listed until
    /// a later list ends within the bound.
    overflowed: BTreeSet<ResourceType>,
    /// A list passed the bound since the last [`Listing::take_overflow`].
    overflow: bool,
    max_listed: usize,
    /// The global's ZoneInsights by zone, as last listed and changed; unparsable ones
    /// are logged and left out.
    insights: BTreeMap<String, ZoneInsight>,
}

/// A listed object until the monitor has it: the resource without its spec and status,
/// which are kept as JSON text. Parsed again when handed over, as the REST source
/// parses its pages: a million specs are never held parsed at once.
struct Held {
    resource: Resource,
    spec: Box<str>,
    status: Option<Box<str>>,
}

impl Held {
    fn new(mut resource: Resource) -> Self {
        let spec = std::mem::take(&mut resource.spec).to_string().into_boxed_str();
        let status = resource.status.take().map(|s| s.to_string().into_boxed_str());
        Self {
            resource,
            spec,
            status,
        }
    }

    fn into_resource(self) -> Result<Resource, SourceError> {
        let decode = |text: &str| {
            serde_json::from_str(text).map_err(|e| SourceError::Decode {
                url: format!("{}/{}", self.resource.rtype, self.resource.name),
                reason: e.to_string(),
            })
        };
        let spec = decode(&self.spec)?;
        let status = self.status.as_deref().map(decode).transpose()?;
        Ok(Resource {
            spec,
            status,
            ..self.resource
        })
    }
}

fn is_insight(t: ResourceType) -> bool {
    t.name() == "ZoneInsight"
}

impl Listing {
    fn new(types: impl Iterator<Item = ResourceType>, max_listed: usize) -> Self {
        Self {
            types: types.collect(),
            unfed: BTreeMap::new(),
            pending: BTreeMap::new(),
            listed: BTreeSet::new(),
            overflowed: BTreeSet::new(),
            overflow: false,
            max_listed,
            insights: BTreeMap::new(),
        }
    }

    /// Whether a list was refused since the last call: the watchers must start again.
    fn take_overflow(&mut self) -> bool {
        std::mem::take(&mut self.overflow)
    }

    /// Before the watchers start again: every type lists afresh, and the control plane
    /// is judged again only once all have (it is `unknown` since the refused list).
    fn restart(&mut self) {
        self.unfed.clear();
        self.pending.clear();
        self.listed.clear();
    }

    fn complete(&self) -> bool {
        self.listed == self.types
    }

    fn watches_insights(&self) -> bool {
        self.types.iter().any(|t| is_insight(*t))
    }

    fn zone_insights(&self) -> BTreeMap<String, ZoneInsight> {
        self.insights.clone()
    }

    /// Applies one event; returns whether it touched ZoneInsights.
    fn apply(&mut self, cp: &CpRole, event: Event, monitor: &Monitor, now: Timestamp) -> bool {
        let touched = match &event {
            Event::InitDone(t) => is_insight(*t),
            Event::Apply(r) => is_insight(r.rtype),
            Event::Delete(key) => is_insight(key.rtype),
            _ => false,
        };
        match event {
            Event::Init(t) => {
                self.overflowed.remove(&t);
                self.pending.insert(t, HashMap::new());
            }
            Event::InitApply(t, _) if self.overflowed.contains(&t) => {}
            Event::InitApply(t, r) => {
                let list = self.pending.entry(t).or_default();
                list.insert(key_digest(&r.key()), Held::new(r));
                if list.len() > self.max_listed {
                    self.pending.remove(&t);
                    self.overflowed.insert(t);
                    self.overflow = true;
                    // Not listed any more: what was judged of it is no longer known.
                    self.listed.remove(&t);
                    let error = SourceError::TooLarge {
                        url: t.to_string(),
                        reason: format!("a list of more than {} objects", self.max_listed),
                    };
                    tracing::warn!(%cp, %error, "Kubernetes list refused");
                    monitor.failed(cp, &error);
                }
            }
            Event::InitDone(t) if self.overflowed.contains(&t) => {}
            Event::InitDone(t) => {
                let list = self.pending.remove(&t).unwrap_or_default();
                if is_insight(t) {
                    self.insights = list.values().filter_map(parse_insight).collect();
                }
                self.unfed.insert(t, list);
                self.listed.insert(t);
                if self.complete() {
                    self.feed(cp, monitor, now);
                }
            }
            Event::Apply(r) => {
                if is_insight(r.rtype) {
                    self.insight_changed(&r);
                }
                if self.complete() {
                    monitor.change(cp, Change::Upsert(r), now);
                } else {
                    self.unfed
                        .entry(r.rtype)
                        .or_default()
                        .insert(key_digest(&r.key()), Held::new(r));
                }
            }
            Event::Delete(key) => {
                if is_insight(key.rtype) {
                    self.insights.remove(&key.name);
                }
                if self.complete() {
                    monitor.change(cp, Change::Delete(key), now);
                } else if let Some(m) = self.unfed.get_mut(&key.rtype) {
                    m.remove(&key_digest(&key));
                }
            }
            Event::Error(error) => {
                tracing::warn!(%cp, %error, "Kubernetes watch failed; retrying with backoff");
                monitor.failed(cp, &error);
            }
        }
        touched
    }

    /// Hands the lists the monitor does not have yet over as one snapshot: the whole
    /// control plane the first time, a relisted type alone after. The objects of a
    /// relisted type it lacks are deleted; the other types' stay as they are.
    fn feed(&mut self, cp: &CpRole, monitor: &Monitor, now: Timestamp) {
        let lists = std::mem::take(&mut self.unfed);
        // The keys apart, as digests (16 bytes an object): `fill` consumes the lists.
        let present: BTreeMap<ResourceType, HashSet<u128>> = lists
            .iter()
            .map(|(t, list)| (*t, list.keys().copied().collect()))
            .collect();
        let fed = monitor.snapshot_each(
            cp,
            |key| {
                present
                    .get(&key.rtype)
                    .is_none_or(|list| list.contains(&key_digest(key)))
            },
            |push| {
                for held in lists.into_values().flat_map(HashMap::into_values) {
                    push(held.into_resource()?);
                }
                Ok(())
            },
            now,
        );
        if let Err(error) = fed {
            tracing::error!(%cp, %error, "a listed object no longer parses");
            monitor.failed(cp, &error);
        }
    }

    fn insight_changed(&mut self, r: &Resource) {
        match insight::parse(&r.spec) {
            Ok(i) => {
                self.insights.insert(r.name.clone(), i);
            }
            Err(error) => {
                tracing::warn!(zone = %r.name, %error, "cannot read ZoneInsight");
                self.insights.remove(&r.name);
            }
        }
    }
}

/// A listed ZoneInsight, parsed; unparsable ones are logged and left out.
fn parse_insight(held: &Held) -> Option<(String, ZoneInsight)> {
    let name = &held.resource.name;
    let parsed = serde_json::from_str(&held.spec)
        .map_err(|e| e.to_string())
        .and_then(|spec| insight::parse(&spec));
    match parsed {
        Ok(i) => Some((name.clone(), i)),
        Err(error) => {
            tracing::warn!(zone = %name, %error, "cannot read ZoneInsight");
            None
        }
    }
}

fn convert(
    t: ResourceType,
    ar: &ApiResource,
    e: Result<watcher::Event<DynamicObject>, watcher::Error>,
) -> Event {
    let to_resource = |obj: DynamicObject| -> Result<Resource, SourceError> { to_resource(t, ar, obj) };
    match e {
        Ok(watcher::Event::Init) => Event::Init(t),
        Ok(watcher::Event::InitApply(obj)) => match to_resource(obj) {
            Ok(r) => Event::InitApply(t, r),
            Err(e) => Event::Error(e),
        },
        Ok(watcher::Event::InitDone) => Event::InitDone(t),
        Ok(watcher::Event::Apply(obj)) => match to_resource(obj) {
            Ok(r) => Event::Apply(r),
            Err(e) => Event::Error(e),
        },
        Ok(watcher::Event::Delete(obj)) => match to_resource(obj) {
            Ok(r) => Event::Delete(r.key()),
            Err(e) => Event::Error(e),
        },
        Err(e) => Event::Error(SourceError::Watch {
            what: ar.plural.clone(),
            reason: e.to_string(),
        }),
    }
}

/// Maps an object of `t`'s kind, as the API server sent it in a list or watch event, the
/// way Kuma's Kubernetes store does, through kuma-model's reader. `ar` is
/// [`api_resource`]`(t)`: what the object's type meta defaults to when the event omits it.
/// The object is read as decoded: its spec is moved, never printed and parsed again.
pub fn to_resource(t: ResourceType, ar: &ApiResource, obj: DynamicObject) -> Result<Resource, SourceError> {
    let name = format!("{}/{}", ar.plural, obj.metadata.name.as_deref().unwrap_or(""));
    let decode_error = |reason: String| SourceError::Decode {
        url: name.clone(),
        reason,
    };
    let mut metadata = obj.metadata;
    metadata.managed_fields = None;
    // Watch events may omit the type meta; the reader needs it.
    let types = obj.types.unwrap_or_else(|| kube::api::TypeMeta {
        api_version: ar.api_version.clone(),
        kind: ar.kind.clone(),
    });
    // What a DynamicObject serializes as: its data flattened beside the type meta.
    let mut object = match obj.data {
        Value::Object(fields) => fields,
        Value::Null => Map::new(),
        other => {
            return Err(decode_error(format!(
                "the object's fields are {other}, not a mapping"
            )));
        }
    };
    object.insert("apiVersion".into(), types.api_version.into());
    object.insert("kind".into(), types.kind.into());
    object.insert(
        "metadata".into(),
        serde_json::to_value(metadata).map_err(|e| decode_error(e.to_string()))?,
    );
    let mut found = None;
    read_value_each(&name, Value::Object(object), &ReadOptions::default(), &mut |r| {
        if r.rtype == t && found.is_none() {
            found = Some(r);
        }
    })
    .map_err(|e| decode_error(e.reason))?;
    found.ok_or_else(|| decode_error(format!("not a {t}")))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::{
        Engine, Selection, Topology, ZoneSpec,
        monitor::{MonitorConfig, NoRecorder},
    };

    fn rtype(name: &str) -> ResourceType {
        ResourceType::from_name(name).expect("a known type")
    }

    fn policy(t: &str, name: &str, version: u64) -> Resource {
        Resource::new(
            rtype(t),
            Some("default"),
            name,
            json!({"targetRef": {"kind": "Mesh"}, "version": version}),
        )
    }

    fn zone() -> CpRole {
        CpRole::Zone("zone-1".into())
    }

    fn monitor() -> Monitor {
        let topology = Topology::new(
            Environment::Universal,
            vec![ZoneSpec::new("zone-1", Environment::kubernetes())],
        );
        Monitor::new(
            Engine::new(
                topology,
                Selection::new([rtype("MeshTimeout"), rtype("MeshCircuitBreaker")], None),
            ),
            MonitorConfig::default(),
            Box::new(NoRecorder),
        )
    }

    fn list(listing: &mut Listing, monitor: &Monitor, t: &str, items: Vec<Resource>) {
        let (cp, now) = (zone(), Timestamp::now());
        listing.apply(&cp, Event::Init(rtype(t)), monitor, now);
        for r in items {
            listing.apply(&cp, Event::InitApply(rtype(t), r), monitor, now);
        }
        listing.apply(&cp, Event::InitDone(rtype(t)), monitor, now);
    }

    fn held(monitor: &Monitor, r: &Resource) -> Option<Value> {
        let st = monitor.lock();
        st.engine.resource(&zone(), &r.key()).map(|r| r.spec.clone())
    }

    use kuma_model::Environment;

    #[test]
    fn a_relist_replaces_its_type_alone_and_deletes_what_it_lacks() {
        let monitor = monitor();
        let types = [rtype("MeshTimeout"), rtype("MeshCircuitBreaker")];
        let mut listing = Listing::new(types.into_iter(), 100);
        let (a, b) = (policy("MeshTimeout", "a", 0), policy("MeshTimeout", "b", 0));
        let x = policy("MeshCircuitBreaker", "x", 0);

        list(&mut listing, &monitor, "MeshTimeout", vec![a.clone(), b.clone()]);
        // One type listed: nothing is judged, nothing handed over.
        assert!(!monitor.lock().engine.is_readable(&zone()));
        assert_eq!(held(&monitor, &a), None);
        // A change before the first snapshot is kept for it.
        let c = policy("MeshTimeout", "c", 0);
        listing.apply(&zone(), Event::Apply(c.clone()), &monitor, Timestamp::now());
        listing.apply(&zone(), Event::Delete(b.key()), &monitor, Timestamp::now());
        list(&mut listing, &monitor, "MeshCircuitBreaker", vec![x.clone()]);
        assert!(monitor.lock().engine.is_readable(&zone()));
        assert_eq!(held(&monitor, &a), Some(a.spec.clone()));
        assert_eq!(held(&monitor, &b), None, "deleted before the first snapshot");
        assert_eq!(held(&monitor, &c), Some(c.spec.clone()));
        assert_eq!(held(&monitor, &x), Some(x.spec.clone()));
        // Handed over: the source holds nothing of them any more.
        assert!(listing.unfed.is_empty() && listing.pending.is_empty());

        // A relist of MeshTimeout: a changed, c gone; MeshCircuitBreaker untouched.
        let a1 = policy("MeshTimeout", "a", 1);
        list(&mut listing, &monitor, "MeshTimeout", vec![a1.clone()]);
        assert_eq!(held(&monitor, &a), Some(a1.spec.clone()));
        assert_eq!(held(&monitor, &c), None, "missing from the relist");
        assert_eq!(held(&monitor, &x), Some(x.spec.clone()), "another type's relist");
        assert!(listing.unfed.is_empty());

        // After the first snapshot, changes go straight to the monitor.
        let y = policy("MeshCircuitBreaker", "y", 0);
        listing.apply(&zone(), Event::Apply(y.clone()), &monitor, Timestamp::now());
        assert_eq!(held(&monitor, &y), Some(y.spec.clone()));
        assert!(listing.unfed.is_empty());
    }

    #[test]
    fn a_refused_list_restarts_every_type_and_judges_once_all_have_listed() {
        let monitor = monitor();
        let types = [rtype("MeshTimeout"), rtype("MeshCircuitBreaker")];
        let mut listing = Listing::new(types.into_iter(), 2);
        let x = policy("MeshCircuitBreaker", "x", 0);
        list(&mut listing, &monitor, "MeshCircuitBreaker", vec![x.clone()]);
        let three = ["a", "b", "c"].map(|n| policy("MeshTimeout", n, 0)).to_vec();
        list(&mut listing, &monitor, "MeshTimeout", three);
        assert!(listing.take_overflow());
        assert!(!listing.complete());
        assert!(!monitor.lock().engine.is_readable(&zone()));

        listing.restart();
        let a = policy("MeshTimeout", "a", 0);
        list(&mut listing, &monitor, "MeshTimeout", vec![a.clone()]);
        // The other type has not listed again since the restart: still nothing judged.
        assert!(!monitor.lock().engine.is_readable(&zone()));
        list(&mut listing, &monitor, "MeshCircuitBreaker", vec![x.clone()]);
        assert!(monitor.lock().engine.is_readable(&zone()));
        assert_eq!(held(&monitor, &a), Some(a.spec.clone()));
        assert_eq!(held(&monitor, &x), Some(x.spec.clone()));
    }

    #[test]
    fn zone_insights_follow_lists_and_changes() {
        let monitor = monitor();
        let zi = rtype("ZoneInsight");
        let mut listing = Listing::new([zi].into_iter(), 100);
        let insight = |zone: &str| {
            Resource::new(
                zi,
                None,
                zone,
                json!({"subscriptions": [{"id": "a", "connectTime": "2026-11-02T09:00:00Z",
                    "status": {"lastUpdateTime": "2026-11-02T09:06:00Z", "stat": {}}}]}),
            )
        };
        let (cp, now) = (CpRole::Global, Timestamp::now());
        listing.apply(&cp, Event::Init(zi), &monitor, now);
        listing.apply(&cp, Event::InitApply(zi, insight("zone-1")), &monitor, now);
        listing.apply(&cp, Event::InitApply(zi, insight("zone-2")), &monitor, now);
        assert!(listing.apply(&cp, Event::InitDone(zi), &monitor, now));
        assert_eq!(listing.zone_insights().len(), 2);
        assert!(listing.apply(&cp, Event::Delete(insight("zone-2").key()), &monitor, now));
        assert_eq!(listing.zone_insights().keys().collect::<Vec<_>>(), vec!["zone-1"]);
        // A relist replaces them all.
        listing.apply(&cp, Event::Init(zi), &monitor, now);
        listing.apply(&cp, Event::InitApply(zi, insight("zone-3")), &monitor, now);
        listing.apply(&cp, Event::InitDone(zi), &monitor, now);
        assert_eq!(listing.zone_insights().keys().collect::<Vec<_>>(), vec!["zone-3"]);
    }
}
