//! The Kubernetes API as a source: a kube-rs `watcher()` per checked type on the control
//! plane's cluster, reconnecting with kube's default backoff. Watch events become single
//! changes; a (re)list becomes a snapshot of the whole control plane once every type has
//! listed, so nothing half-listed is ever judged.

use std::{
    collections::{BTreeMap, BTreeSet},
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
    read::{ReadOptions, read_str},
    types::K8sKind,
};

use super::{
    SourceError,
    insight::{self, ZoneInsight},
};
use crate::{Change, monitor::Monitor};

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
    shutdown: impl Future<Output = ()>,
) {
    watch_within(cp, client, types, monitor, MAX_LISTED, shutdown).await;
}

/// [`watch`], refusing any (re)list of a type with more than `max_listed` objects.
pub async fn watch_within(
    cp: CpRole,
    client: Client,
    types: Vec<ResourceType>,
    monitor: Arc<Monitor>,
    max_listed: usize,
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
            let event = tokio::select! {
                _ = &mut shutdown => return,
                e = events.next() => match e { Some(e) => e, None => return },
            };
            let was_complete = state.complete();
            let insights_changed = state.apply(&cp, event, &monitor, Timestamp::now());
            // ZoneInsights may list before the other types: publish them once all have. Only
            // the global's source watches them; the zones' must not publish an empty set.
            if state.watches_insights() && state.complete() && (insights_changed || !was_complete) {
                monitor.zone_insights(state.zone_insights());
            }
            if state.complete() {
                restart_pause = RESTART_PAUSE_MIN;
            }
            if state.take_overflow() {
                break;
            }
        }
        drop(events);
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

/// Per-type lists being (re)built, and whether the control plane has been judged yet.
struct Listing {
    types: BTreeSet<ResourceType>,
    current: BTreeMap<ResourceType, BTreeMap<ResourceKey, Resource>>,
    /// Lists in progress after `Init`, swapped in at `InitDone`.
    pending: BTreeMap<ResourceType, BTreeMap<ResourceKey, Resource>>,
    listed: BTreeSet<ResourceType>,
    /// Types whose list in progress passed `max_listed`: dropped, and not listed until
    /// a later list ends within the bound.
    overflowed: BTreeSet<ResourceType>,
    /// A list passed the bound since the last [`Listing::take_overflow`].
    overflow: bool,
    max_listed: usize,
}

impl Listing {
    fn new(types: impl Iterator<Item = ResourceType>, max_listed: usize) -> Self {
        Self {
            types: types.collect(),
            current: BTreeMap::new(),
            pending: BTreeMap::new(),
            listed: BTreeSet::new(),
            overflowed: BTreeSet::new(),
            overflow: false,
            max_listed,
        }
    }

    /// Whether a list was refused since the last call: the watchers must start again.
    fn take_overflow(&mut self) -> bool {
        std::mem::take(&mut self.overflow)
    }

    fn complete(&self) -> bool {
        self.listed == self.types
    }

    fn watches_insights(&self) -> bool {
        self.types.iter().any(|t| t.name() == "ZoneInsight")
    }

    /// The global's ZoneInsight objects, parsed; unparsable ones are logged and left out.
    fn zone_insights(&self) -> BTreeMap<String, ZoneInsight> {
        let Some(t) = ResourceType::from_name("ZoneInsight") else {
            return BTreeMap::new();
        };
        self.current
            .get(&t)
            .into_iter()
            .flat_map(|m| m.values())
            .filter_map(|r| match insight::parse(&r.spec) {
                Ok(i) => Some((r.name.clone(), i)),
                Err(error) => {
                    tracing::warn!(zone = %r.name, %error, "cannot read ZoneInsight");
                    None
                }
            })
            .collect()
    }

    /// Applies one event; returns whether it touched ZoneInsights.
    fn apply(&mut self, cp: &CpRole, event: Event, monitor: &Monitor, now: Timestamp) -> bool {
        let is_insight = |t: ResourceType| t.name() == "ZoneInsight";
        let touched = match &event {
            Event::InitDone(t) => is_insight(*t),
            Event::Apply(r) => is_insight(r.rtype),
            Event::Delete(key) => is_insight(key.rtype),
            _ => false,
        };
        match event {
            Event::Init(t) => {
                self.overflowed.remove(&t);
                self.pending.insert(t, BTreeMap::new());
            }
            Event::InitApply(t, _) if self.overflowed.contains(&t) => {}
            Event::InitApply(t, r) => {
                let list = self.pending.entry(t).or_default();
                list.insert(r.key(), r);
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
                self.current.insert(t, list);
                self.listed.insert(t);
                if self.complete() {
                    let all = self.current.values().flat_map(|m| m.values().cloned()).collect();
                    monitor.snapshot(cp, all, now);
                }
            }
            Event::Apply(r) => {
                self.current
                    .entry(r.rtype)
                    .or_default()
                    .insert(r.key(), r.clone());
                if self.complete() {
                    monitor.change(cp, Change::Upsert(r), now);
                }
            }
            Event::Delete(key) => {
                if let Some(m) = self.current.get_mut(&key.rtype) {
                    m.remove(&key);
                }
                if self.complete() {
                    monitor.change(cp, Change::Delete(key), now);
                }
            }
            Event::Error(error) => {
                tracing::warn!(%cp, %error, "Kubernetes watch failed; retrying with backoff");
                monitor.failed(cp, &error);
            }
        }
        touched
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
pub fn to_resource(
    t: ResourceType,
    ar: &ApiResource,
    mut obj: DynamicObject,
) -> Result<Resource, SourceError> {
    // Watch events may omit the type meta; the reader needs it.
    obj.types.get_or_insert_with(|| kube::api::TypeMeta {
        api_version: ar.api_version.clone(),
        kind: ar.kind.clone(),
    });
    obj.metadata.managed_fields = None;
    let name = format!("{}/{}", ar.plural, obj.metadata.name.as_deref().unwrap_or(""));
    let json = serde_json::to_string(&obj).map_err(|e| SourceError::Decode {
        url: name.clone(),
        reason: e.to_string(),
    })?;
    let loaded = read_str(&name, &json, &ReadOptions::default()).map_err(|e| SourceError::Decode {
        url: name.clone(),
        reason: e.reason,
    })?;
    loaded
        .resources
        .into_iter()
        .find(|r| r.rtype == t)
        .ok_or_else(|| SourceError::Decode {
            url: name,
            reason: format!("not a {t}"),
        })
}
