//! The global's system resources, served from its zone records: `Zone`, `ZoneInsight`
//! and `ZoneOverview` (`api/system/v1alpha1/zone*.proto`, rendered as protojson:
//! camelCase, zero values omitted, uint64 as strings), plus `PUT`/`DELETE /zones/{name}`
//! with Kuma's rule that an online zone cannot be deleted
//! (`pkg/core/managers/apis/zone/zone_validator.go`).

use std::collections::BTreeMap;

use jiff::Timestamp;
use kuma_model::{Resource, ResourceType, types::Scope};
use serde::{Serialize, Serializer, ser::SerializeMap};
use serde_json::{Map, Value, json};

use super::{
    Api, Reply, VERSION,
    errors::{ApiError, Violations},
    paging::{ListRequest, next_link},
    render::{RestItem, proto_time, serialize_meta},
    resources::{ListBody, ListPlace, go_quote, kind_of},
    validation,
};
use crate::store::{GlobalStore, Subscription, TypeStats, ZoneRecord};

/// Writes to the global's zone records, beside the reads of
/// [`ResourceStore::zone_records`](crate::ResourceStore::zone_records).
pub trait ZoneAdmin: Send + Sync + 'static {
    /// Sets `Zone.spec.enabled`, creating the zone if absent.
    fn set_zone_enabled(&self, name: &str, enabled: bool);
    /// Removes the zone and its insight; returns whether it existed.
    fn delete_zone(&self, name: &str) -> bool;
}

impl ZoneAdmin for GlobalStore {
    fn set_zone_enabled(&self, name: &str, enabled: bool) {
        GlobalStore::set_zone_enabled(self, name, enabled);
    }
    fn delete_zone(&self, name: &str) -> bool {
        GlobalStore::delete_zone(self, name)
    }
}

/// The id Kuma's global gives itself in `globalInstanceId`.
const GLOBAL_INSTANCE_ID: &str = "kuma-sim-global";

/// Creation and modification times of a zone: the records keep none, so the API keeps
/// them from the first time it sees a zone.
#[derive(Debug, Clone, Copy)]
pub(super) struct ZoneTimes {
    created: Timestamp,
    modified: Timestamp,
}

/// Which system resource a zones path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ZoneView {
    Zone,
    Insight,
    Overview,
}

impl Api {
    pub(super) fn zone_list(&self, view: ZoneView, place: &ListPlace<'_>) -> Result<Reply, ApiError> {
        let request = ListRequest::from_query(place.query)?;
        let pairs = self.zone_pairs();
        let by_name: BTreeMap<String, (Resource, Resource)> =
            pairs.into_iter().map(|p| (p.0.name.clone(), p)).collect();
        let page = request.page(by_name.values().map(|(z, i)| pick(view, z, i).clone()).collect());
        let next = page
            .next_offset
            .map(|o| next_link(place.host, place.path, place.query, o));
        match view {
            ZoneView::Overview => Reply::json(
                200,
                &ListBody {
                    total: page.total,
                    items: page
                        .items
                        .iter()
                        .filter_map(|z| by_name.get(&z.name))
                        .map(|(z, i)| Overview(z, i))
                        .collect(),
                    next,
                },
            ),
            _ => Reply::json(
                200,
                &ListBody {
                    total: page.total,
                    items: page.items.iter().map(RestItem).collect(),
                    next,
                },
            ),
        }
    }

    pub(super) fn zone_get(&self, view: ZoneView, name: &str) -> Result<Reply, ApiError> {
        let Some((zone, insight)) = self.zone_pairs().into_iter().find(|(z, _)| z.name == name) else {
            return Err(ApiError::not_found("Could not retrieve a resource"));
        };
        match view {
            ZoneView::Overview => Reply::json(200, &Overview(&zone, &insight)),
            _ => Reply::json(200, &RestItem(pick(view, &zone, &insight))),
        }
    }

    /// `PUT /zones/{name}` with `{"type":"Zone","name":...,"enabled":bool}`.
    pub(super) fn zone_put(&self, name: &str, body: &[u8]) -> Result<Reply, ApiError> {
        let admin = self.zone_admin.as_ref().ok_or_else(no_zone_admin)?;
        let invalid =
            |reason: String| ApiError::bad_request(&format!("invalid Zone object: {}", go_quote(&reason)));
        let value: Value = serde_json::from_slice(body).map_err(|e| invalid(e.to_string()))?;
        let Value::Object(map) = value else {
            return Err(invalid(format!(
                "expected a JSON object, found {}",
                kind_of(&value)
            )));
        };
        let field = |key: &str| match map.get(key) {
            None | Some(Value::Null) => Ok(""),
            Some(Value::String(s)) => Ok(s.as_str()),
            Some(other) => Err(invalid(format!(
                "`{key}` must be a string, found {}",
                kind_of(other)
            ))),
        };
        let (body_type, body_name) = (field("type")?, field("name")?);
        // A null BoolValue means enabled (`Zone.IsEnabled`).
        let enabled = match map.get("enabled") {
            None | Some(Value::Null) => true,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                return Err(invalid(format!(
                    "`enabled` must be a boolean, found {}",
                    kind_of(other)
                )));
            }
        };
        let mut v = Violations::default();
        if body_name != name {
            v.add("name", "name from the URL has to be the same as in body");
        }
        if body_type != "Zone" {
            v.add("type", "type from the URL has to be the same as in body");
        }
        v.nest("", validation::meta(body_name, "", Scope::Global));
        if !v.is_empty() {
            return Err(ApiError::invalid("Could not process a resource", v));
        }
        let existed = self.zone_records().contains_key(name);
        admin.set_zone_enabled(name, enabled);
        let now = Timestamp::now();
        self.zone_times_lock()
            .entry(name.to_owned())
            .and_modify(|t| t.modified = now)
            .or_insert(ZoneTimes {
                created: now,
                modified: now,
            });
        Reply::json(if existed { 200 } else { 201 }, &json!({}))
    }

    pub(super) fn zone_delete(&self, name: &str) -> Result<Reply, ApiError> {
        const TITLE: &str = "Could not delete a resource";
        let admin = self.zone_admin.as_ref().ok_or_else(no_zone_admin)?;
        let record = self
            .zone_records()
            .remove(name)
            .ok_or_else(|| ApiError::not_found(TITLE))?;
        if record.is_online() {
            let mut v = Violations::default();
            v.add(
                "zone",
                "unable to delete Zone, Zone CP is still connected, please shut it down first",
            );
            return Err(ApiError::invalid(TITLE, v));
        }
        if !admin.delete_zone(name) {
            return Err(ApiError::not_found(TITLE));
        }
        self.zone_times_lock().remove(name);
        Reply::json(200, &json!({}))
    }

    fn zone_records(&self) -> BTreeMap<String, ZoneRecord> {
        self.store.zone_records().unwrap_or_default()
    }

    /// Every zone as a `Zone` and a `ZoneInsight` resource.
    fn zone_pairs(&self) -> Vec<(Resource, Resource)> {
        let records = self.zone_records();
        let mut times = self.zone_times_lock();
        times.retain(|name, _| records.contains_key(name));
        let zone_type = ResourceType::from_name("Zone").expect("Zone is in the type table");
        let insight_type = ResourceType::from_name("ZoneInsight").expect("ZoneInsight is in the type table");
        records
            .iter()
            .map(|(name, record)| {
                let seen = *times.entry(name.clone()).or_insert_with(|| {
                    let created = record
                        .subscriptions
                        .iter()
                        .map(|s| s.connect_time)
                        .min()
                        .unwrap_or_else(Timestamp::now);
                    ZoneTimes {
                        created,
                        modified: created,
                    }
                });
                let mut zone = Resource::new(zone_type, None, name, json!({"enabled": record.enabled}));
                zone.creation_time = Some(seen.created);
                zone.modification_time = Some(seen.modified);
                let mut insight = Resource::new(insight_type, None, name, insight_spec(record));
                insight.creation_time = Some(seen.created);
                insight.modification_time = Some(last_insight_change(record).unwrap_or(seen.created));
                (zone, insight)
            })
            .collect()
    }

    fn zone_times_lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, ZoneTimes>> {
        // Plain data; a panic elsewhere leaves it usable.
        self.zone_times.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn no_zone_admin() -> ApiError {
    ApiError::method_not_allowed("This control plane's zone records are read-only.\n")
}

fn pick<'a>(view: ZoneView, zone: &'a Resource, insight: &'a Resource) -> &'a Resource {
    match view {
        ZoneView::Insight => insight,
        ZoneView::Zone | ZoneView::Overview => zone,
    }
}

fn last_insight_change(record: &ZoneRecord) -> Option<Timestamp> {
    record
        .subscriptions
        .iter()
        .flat_map(|s| [Some(s.connect_time), s.disconnect_time])
        .chain([record.health_check_time])
        .flatten()
        .max()
}

/// `ZoneOverview`: the zone's meta, then `zone` and `zoneInsight`.
struct Overview<'a>(&'a Resource, &'a Resource);

impl Serialize for Overview<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        serialize_meta(&mut map, self.0, "ZoneOverview")?;
        map.serialize_entry("zone", &self.0.spec)?;
        map.serialize_entry("zoneInsight", &self.1.spec)?;
        map.end()
    }
}

/// `ZoneInsight` as protojson.
fn insight_spec(record: &ZoneRecord) -> Value {
    let mut spec = Map::new();
    if !record.subscriptions.is_empty() {
        spec.insert(
            "subscriptions".into(),
            record.subscriptions.iter().map(subscription).collect(),
        );
    }
    if let Some(t) = record.health_check_time {
        spec.insert("healthCheck".into(), json!({"time": proto_time(t)}));
    }
    Value::Object(spec)
}

fn subscription(s: &Subscription) -> Value {
    let mut out = Map::new();
    out.insert("id".into(), s.id.clone().into());
    out.insert("globalInstanceId".into(), GLOBAL_INSTANCE_ID.into());
    out.insert("connectTime".into(), proto_time(s.connect_time).into());
    if let Some(t) = s.disconnect_time {
        out.insert("disconnectTime".into(), proto_time(t).into());
    }
    let mut total = TypeStats::default();
    for st in s.stats.values() {
        total.responses_sent += st.responses_sent;
        total.responses_acknowledged += st.responses_acknowledged;
        total.responses_rejected += st.responses_rejected;
    }
    // The store keeps no stat update time; the connect time is the last one it knows.
    out.insert(
        "status".into(),
        json!({
            "lastUpdateTime": proto_time(s.disconnect_time.unwrap_or(s.connect_time)),
            "total": stats(&total),
            "stat": s.stats.iter().map(|(t, st)| (t.clone(), stats(st))).collect::<Map<_, _>>(),
        }),
    );
    if let Some(version) = s.version.as_deref().filter(|v| !v.is_empty()) {
        out.insert(
            "version".into(),
            json!({"kumaCp": {"version": version, "kumaCpGlobalCompatible": compatible(version)}}),
        );
    }
    if s.auth_token_provided {
        out.insert("authTokenProvided".into(), true.into());
    }
    Value::Object(out)
}

/// `KDSServiceStats`: zero counters omitted, uint64 as strings.
fn stats(st: &TypeStats) -> Value {
    let mut out = Map::new();
    for (key, n) in [
        ("responsesSent", st.responses_sent),
        ("responsesAcknowledged", st.responses_acknowledged),
        ("responsesRejected", st.responses_rejected),
    ] {
        if n != 0 {
            out.insert(key.into(), n.to_string().into());
        }
    }
    Value::Object(out)
}

/// Kuma accepts zones of the same major version up to the global's minor (approximation
/// of `version.DeploymentVersionCompatible`).
fn compatible(zone_version: &str) -> bool {
    let parse = |v: &str| -> Option<(u64, u64)> {
        let mut parts = v.trim_start_matches('v').split('.');
        Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
    };
    match (parse(zone_version), parse(VERSION)) {
        (Some((zmaj, zmin)), Some((gmaj, gmin))) => zmaj == gmaj && zmin <= gmin,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insight_stats_follow_protojson() {
        let mut sub = Subscription {
            id: "s1".into(),
            version: Some("2.14.3".into()),
            auth_token_provided: false,
            connect_time: "2024-01-08T17:25:45Z".parse().unwrap(),
            disconnect_time: None,
            stats: BTreeMap::new(),
        };
        sub.stats.insert(
            "MeshCircuitBreaker".into(),
            TypeStats {
                responses_sent: 3,
                responses_acknowledged: 2,
                responses_rejected: 0,
            },
        );
        let v = subscription(&sub);
        assert_eq!(
            v["status"]["stat"]["MeshCircuitBreaker"],
            json!({"responsesSent": "3", "responsesAcknowledged": "2"})
        );
        assert_eq!(v["status"]["total"]["responsesSent"], "3");
        assert_eq!(v["version"]["kumaCp"]["kumaCpGlobalCompatible"], true);
        assert!(v.get("disconnectTime").is_none() && v.get("authTokenProvided").is_none());
        assert!(!compatible("3.0.0") && !compatible("garbage") && compatible("2.13.1"));
    }
}
