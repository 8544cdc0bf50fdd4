//! Lists of the universal form: a REST list page `{"total", "items", "next"}`
//! (`pkg/core/resources/model/rest/list.go`), which `kumactl get <types> -o yaml|json`
//! prints as it is.

use serde_json::{Map, Value};

use super::{Entry, fields, universal};

/// Reads every item of a list page. Unless `caller_follows_pages`, the page must be the
/// whole list: no `next`, and no `total` above the items it holds.
pub(super) fn read(mut map: Map<String, Value>, caller_follows_pages: bool) -> Result<Vec<Entry>, String> {
    let items = match map.remove("items") {
        Some(Value::Array(items)) => items,
        None | Some(Value::Null) => Vec::new(),
        Some(other) => {
            return Err(format!(
                "`items` must be a sequence, found {}",
                fields::kind_of(&other)
            ));
        }
    };
    if !caller_follows_pages {
        whole_list(&map, items.len())?;
    }
    Ok(items
        .into_iter()
        .enumerate()
        .map(|(i, item)| Entry {
            item: Some(i + 1),
            outcome: match item {
                Value::Object(m) => universal::read(m),
                other => Err(format!("not a mapping (found {})", fields::kind_of(&other))),
            },
        })
        .collect())
}

/// Refuses a page that says more follows: Kuma's default page is 100 items, so `curl
/// :5681/meshcircuitbreakers` on a busy control plane is a first page, not the whole.
fn whole_list(map: &Map<String, Value>, held: usize) -> Result<(), String> {
    const ADVICE: &str = "it is one page, not the whole list; ask for `?size=1000` \
        (Kuma's largest page) or use `kumactl export`, which reads every page";
    match map.get("next") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if s.is_empty() => {}
        Some(Value::String(next)) => {
            return Err(format!(
                "a REST list page with a `next` link ({next:?}): {ADVICE}"
            ));
        }
        Some(other) => {
            return Err(format!(
                "`next` must be a string or null, found {}",
                fields::kind_of(other)
            ));
        }
    }
    match map.get("total") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(total) if total <= held as u64 => Ok(()),
            Some(total) => Err(format!(
                "a REST list page of {held} item(s) out of a `total` of {total}: {ADVICE}"
            )),
            None => Err(format!("`total` must be a whole number, found {n}")),
        },
        Some(other) => Err(format!(
            "`total` must be a number, found {}",
            fields::kind_of(other)
        )),
    }
}
