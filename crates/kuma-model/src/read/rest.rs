//! Lists of the universal form: a REST list page `{"total", "items", "next"}`
//! (`pkg/core/resources/model/rest/list.go`), which `kumactl get <types> -o yaml|json`
//! prints as it is.

use serde_json::{Map, Value};

use super::{Entry, fields, universal};

/// Reads every item of a list page; `total` and `next` describe paging and are ignored.
pub(super) fn read(mut map: Map<String, Value>) -> Result<Vec<Entry>, String> {
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
