//! `coordination.k8s.io/v1` Leases, the one kind the simulated API lets clients write:
//! what a leader election needs, with the apiserver's optimistic concurrency. A `PUT`
//! must carry the object's current `metadata.resourceVersion`, or it is refused with 409
//! Conflict, as two replicas racing to take an expired lease are on a real cluster; a
//! `POST` of a name that exists is 409 AlreadyExists.

use std::{collections::BTreeMap, sync::Mutex};

use http::{Method, StatusCode};
use serde_json::{Value, json};

use super::status::Failure;

pub(crate) const GROUP: &str = "coordination.k8s.io";
pub(crate) const VERSION: &str = "v1";
const API_VERSION: &str = "coordination.k8s.io/v1";
const QUALIFIED: &str = "leases.coordination.k8s.io";

/// Every Lease, by namespace and name, with its resource version.
#[derive(Debug, Default)]
pub(crate) struct Leases {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    objects: BTreeMap<(String, String), Value>,
    /// The last resource version handed out; every write takes the next.
    version: u64,
}

impl Leases {
    /// Answers one request on `.../namespaces/{namespace}/leases[/{name}]`.
    pub(crate) fn handle(
        &self,
        method: &Method,
        namespace: &str,
        name: Option<&str>,
        body: &[u8],
    ) -> Result<(StatusCode, Value), Failure> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match (method, name) {
            (&Method::GET, Some(name)) => st
                .objects
                .get(&(namespace.to_owned(), name.to_owned()))
                .cloned()
                .map(|lease| (StatusCode::OK, lease))
                .ok_or_else(|| not_found(name)),
            (&Method::GET, None) => {
                let items: Vec<Value> = st
                    .objects
                    .iter()
                    .filter(|((ns, _), _)| ns == namespace)
                    .map(|(_, lease)| lease.clone())
                    .collect();
                let list = json!({
                    "kind": "LeaseList", "apiVersion": API_VERSION,
                    "metadata": {"resourceVersion": st.version.to_string()}, "items": items,
                });
                Ok((StatusCode::OK, list))
            }
            (&Method::POST, None) => {
                let mut lease = parse(body)?;
                let name = lease["metadata"]["name"]
                    .as_str()
                    .filter(|n| !n.is_empty())
                    .ok_or_else(|| {
                        Failure::invalid(
                            "Lease.coordination.k8s.io is invalid: metadata.name: Required value",
                        )
                    })?
                    .to_owned();
                let key = (namespace.to_owned(), name.clone());
                if st.objects.contains_key(&key) {
                    return Err(already_exists(&name));
                }
                st.version += 1;
                stamp(&mut lease, namespace, st.version, None);
                st.objects.insert(key, lease.clone());
                Ok((StatusCode::CREATED, lease))
            }
            (&Method::PUT, Some(name)) => {
                let mut lease = parse(body)?;
                let key = (namespace.to_owned(), name.to_owned());
                let Some(current) = st.objects.get(&key) else {
                    return Err(not_found(name));
                };
                let sent = lease["metadata"]["resourceVersion"].as_str().unwrap_or("");
                let held = current["metadata"]["resourceVersion"].as_str().unwrap_or("");
                // An update without a version is unconditional on a real apiserver too;
                // a stale one is the race a leader election must lose.
                if !sent.is_empty() && sent != held {
                    return Err(conflict(name));
                }
                let uid = current["metadata"]["uid"].clone();
                st.version += 1;
                stamp(&mut lease, namespace, st.version, Some(uid));
                st.objects.insert(key, lease.clone());
                Ok((StatusCode::OK, lease))
            }
            (&Method::DELETE, Some(name)) => st
                .objects
                .remove(&(namespace.to_owned(), name.to_owned()))
                .map(|lease| (StatusCode::OK, lease))
                .ok_or_else(|| not_found(name)),
            (method, _) => Err(Failure::method_not_allowed(method)),
        }
    }
}

fn parse(body: &[u8]) -> Result<Value, Failure> {
    let lease: Value = serde_json::from_slice(body)
        .map_err(|e| Failure::bad_request(format!("the Lease is not JSON: {e}")))?;
    if lease["kind"] != "Lease" && !lease["kind"].is_null() {
        return Err(Failure::bad_request(format!(
            "a {} is not a Lease",
            lease["kind"]
        )));
    }
    Ok(lease)
}

/// What the apiserver sets on every write: the type meta, the namespace, a uid kept for
/// the object's life, and the new resource version.
fn stamp(lease: &mut Value, namespace: &str, version: u64, uid: Option<Value>) {
    lease["kind"] = json!("Lease");
    lease["apiVersion"] = json!(API_VERSION);
    let metadata = &mut lease["metadata"];
    metadata["namespace"] = json!(namespace);
    metadata["resourceVersion"] = json!(version.to_string());
    metadata["uid"] = uid
        .filter(|u| !u.is_null())
        .unwrap_or_else(|| json!(format!("lease-{version}")));
}

fn not_found(name: &str) -> Failure {
    Failure::object_not_found(QUALIFIED, "leases", name)
}

fn already_exists(name: &str) -> Failure {
    Failure::with_details(
        StatusCode::CONFLICT,
        "AlreadyExists",
        format!("{QUALIFIED} \"{name}\" already exists"),
        json!({"name": name, "group": GROUP, "kind": "leases"}),
    )
}

fn conflict(name: &str) -> Failure {
    Failure::with_details(
        StatusCode::CONFLICT,
        "Conflict",
        format!(
            "Operation cannot be fulfilled on {QUALIFIED} \"{name}\": the object has been modified; please apply your changes to the latest version and try again"
        ),
        json!({"name": name, "group": GROUP, "kind": "leases"}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(name: &str, holder: &str, rv: Option<&str>) -> Vec<u8> {
        let mut l = json!({"apiVersion": API_VERSION, "kind": "Lease",
            "metadata": {"name": name}, "spec": {"holderIdentity": holder}});
        if let Some(rv) = rv {
            l["metadata"]["resourceVersion"] = json!(rv);
        }
        l.to_string().into_bytes()
    }

    #[test]
    fn an_update_from_a_stale_version_is_a_conflict() {
        let leases = Leases::default();
        let (code, created) = leases
            .handle(&Method::POST, "ns", None, &lease("l", "a", None))
            .unwrap();
        assert_eq!(code, StatusCode::CREATED);
        let v1 = created["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .to_owned();
        // Two replicas read v1; the first update wins, the second is refused.
        let (_, updated) = leases
            .handle(&Method::PUT, "ns", Some("l"), &lease("l", "b", Some(&v1)))
            .unwrap();
        assert_ne!(updated["metadata"]["resourceVersion"], v1.as_str());
        assert_eq!(updated["metadata"]["uid"], created["metadata"]["uid"]);
        let lost = leases
            .handle(&Method::PUT, "ns", Some("l"), &lease("l", "c", Some(&v1)))
            .unwrap_err();
        assert_eq!((lost.code, lost.reason), (StatusCode::CONFLICT, "Conflict"));
        let (_, now) = leases.handle(&Method::GET, "ns", Some("l"), b"").unwrap();
        assert_eq!(now["spec"]["holderIdentity"], "b");
    }

    #[test]
    fn creating_twice_is_already_exists_and_a_missing_lease_is_not_found() {
        let leases = Leases::default();
        leases
            .handle(&Method::POST, "ns", None, &lease("l", "a", None))
            .unwrap();
        let again = leases
            .handle(&Method::POST, "ns", None, &lease("l", "b", None))
            .unwrap_err();
        assert_eq!(
            (again.code, again.reason),
            (StatusCode::CONFLICT, "AlreadyExists")
        );
        let missing = leases.handle(&Method::GET, "other", Some("l"), b"").unwrap_err();
        assert_eq!(missing.code, StatusCode::NOT_FOUND);
        let put_missing = leases
            .handle(&Method::PUT, "ns", Some("m"), &lease("m", "a", Some("1")))
            .unwrap_err();
        assert_eq!(put_missing.code, StatusCode::NOT_FOUND);
    }
}
