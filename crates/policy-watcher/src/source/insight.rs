//! ZoneInsight, as the global's REST API renders it (protojson: camelCase, uint64 as
//! strings, zero values omitted): is each zone online, when did it last confirm an update,
//! which types does it reject, and which Kuma version runs there.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde_json::Value;

#[cfg(feature = "sources")]
use super::{
    SourceError,
    rest::{Budget, KumaApi},
};

/// What kuma-sync reads of one zone's insight.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ZoneInsight {
    /// A subscription without `disconnectTime` exists (Kuma's definition of Online).
    pub online: bool,
    /// `status.lastUpdateTime` of the newest subscription: the last time the zone's
    /// counters moved, i.e. the global heard an ACK or NACK from it.
    pub last_update: Option<Timestamp>,
    /// Responses the zone rejected (NACKed), per type, on the newest subscription.
    pub rejected: BTreeMap<String, u64>,
    /// The zone CP's version and whether the global finds it compatible.
    pub version: Option<String>,
    pub compatible: Option<bool>,
}

#[cfg(feature = "sources")]
impl KumaApi {
    /// Every zone's insight, by zone name, from every page: a zone past the first page
    /// would otherwise have no insight and read as never seen.
    pub async fn zone_insights(&self) -> Result<BTreeMap<String, ZoneInsight>, SourceError> {
        let mut insights = BTreeMap::new();
        let budget = Budget::new(self.limits());
        self.walk_pages(
            "zone-insights",
            "ZoneInsight",
            &budget,
            &mut |url: &str, body: &bytes::Bytes| {
                let page: Value = serde_json::from_slice(body).map_err(|e| SourceError::Decode {
                    url: url.to_owned(),
                    reason: format!("not JSON: {e}"),
                })?;
                let parsed = parse_list(&page).map_err(|reason| SourceError::Decode {
                    url: url.to_owned(),
                    reason,
                })?;
                let items = parsed.len();
                for (zone, insight) in parsed {
                    if insights.insert(zone.clone(), insight).is_some() {
                        return Err(SourceError::Paging {
                            url: url.to_owned(),
                            reason: format!("zone {zone:?} is on two pages of ZoneInsights"),
                        });
                    }
                }
                Ok(items)
            },
        )
        .await?;
        Ok(insights)
    }
}

/// Parses a `/zone-insights` list page.
pub fn parse_list(page: &Value) -> Result<BTreeMap<String, ZoneInsight>, String> {
    let items = page
        .get("items")
        .and_then(Value::as_array)
        .ok_or("no items array")?;
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let name = item
                .get("name")
                .and_then(Value::as_str)
                .ok_or(format!("item {}: no name", i + 1))?;
            Ok((
                name.to_owned(),
                parse(item).map_err(|e| format!("item {} ({name}): {e}", i + 1))?,
            ))
        })
        .collect()
}

/// Parses one ZoneInsight item.
pub fn parse(item: &Value) -> Result<ZoneInsight, String> {
    let subs = item
        .get("subscriptions")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    let online = subs
        .iter()
        .any(|s| s.get("disconnectTime").is_none_or(Value::is_null));
    let Some(newest) = subs.last() else {
        return Ok(ZoneInsight {
            online,
            ..Default::default()
        });
    };
    let status = newest.get("status");
    let last_update = match status
        .and_then(|s| s.get("lastUpdateTime"))
        .and_then(Value::as_str)
    {
        Some(t) => Some(
            t.parse::<Timestamp>()
                .map_err(|e| format!("lastUpdateTime {t:?}: {e}"))?,
        ),
        None => None,
    };
    let mut rejected = BTreeMap::new();
    if let Some(stat) = status.and_then(|s| s.get("stat")).and_then(Value::as_object) {
        for (rtype, counters) in stat {
            let n = uint(counters.get("responsesRejected"))?;
            if n > 0 {
                rejected.insert(rtype.clone(), n);
            }
        }
    }
    let kuma_cp = newest.get("version").and_then(|v| v.get("kumaCp"));
    Ok(ZoneInsight {
        online,
        last_update,
        rejected,
        version: kuma_cp
            .and_then(|k| k.get("version"))
            .and_then(Value::as_str)
            .map(str::to_owned),
        compatible: kuma_cp
            .and_then(|k| k.get("kumaCpGlobalCompatible"))
            .and_then(Value::as_bool),
    })
}

/// protojson writes uint64 as a string; accept a number too.
fn uint(v: Option<&Value>) -> Result<u64, String> {
    match v {
        None | Some(Value::Null) => Ok(0),
        Some(Value::String(s)) => s.parse().map_err(|_| format!("{s:?} is not a count")),
        Some(Value::Number(n)) => n.as_u64().ok_or(format!("{n} is not a count")),
        Some(other) => Err(format!("{other} is not a count")),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_kuma_zone_insight_page() {
        let page = json!({"total": 2, "items": [
            {"type": "ZoneInsight", "name": "zone-1", "subscriptions": [
                {"id": "a", "connectTime": "2026-11-02T09:00:00Z", "disconnectTime": "2026-11-02T09:05:00Z"},
                {"id": "b", "connectTime": "2026-11-02T09:05:01Z",
                 "status": {"lastUpdateTime": "2026-11-02T09:06:00Z",
                            "total": {"responsesSent": "7", "responsesAcknowledged": "6", "responsesRejected": "1"},
                            "stat": {"MeshCircuitBreaker": {"responsesSent": "2", "responsesRejected": "1"},
                                     "MeshTimeout": {"responsesSent": "5", "responsesAcknowledged": "5"}}},
                 "version": {"kumaCp": {"version": "2.14.3", "kumaCpGlobalCompatible": true}}}]},
            {"type": "ZoneInsight", "name": "zone-2", "subscriptions": [
                {"id": "c", "connectTime": "2026-11-02T09:00:00Z", "disconnectTime": "2026-11-02T09:01:00Z",
                 "version": {"kumaCp": {"version": "2.9.0", "kumaCpGlobalCompatible": false}}}]}
        ], "next": null});
        let got = parse_list(&page).unwrap();
        let z1 = &got["zone-1"];
        assert!(z1.online);
        assert_eq!(z1.last_update, Some("2026-11-02T09:06:00Z".parse().unwrap()));
        assert_eq!(
            z1.rejected,
            BTreeMap::from([("MeshCircuitBreaker".to_owned(), 1)])
        );
        assert_eq!(
            (z1.version.as_deref(), z1.compatible),
            (Some("2.14.3"), Some(true))
        );
        let z2 = &got["zone-2"];
        assert!(!z2.online);
        assert_eq!(z2.compatible, Some(false));
    }

    #[test]
    fn malformed_insights_are_errors_naming_the_item() {
        let page =
            json!({"items": [{"name": "z", "subscriptions": [{"status": {"lastUpdateTime": "yesterday"}}]}]});
        assert!(
            parse_list(&page)
                .unwrap_err()
                .contains("item 1 (z): lastUpdateTime")
        );
        let page = json!({"items": [{"name": "z", "subscriptions": [{"status": {"stat": {"T": {"responsesRejected": "x"}}}}]}]});
        assert!(parse_list(&page).unwrap_err().contains("is not a count"));
        assert!(parse_list(&json!({})).is_err());
    }
}
