//! Spec fingerprints: a fixed-size value that is equal exactly when two specs mean the same
//! to Kuma, so millions of copies compare in constant time. The structural [`diff`] is
//! only computed when a discrepancy is reported.
//!
//! Canonical form (what "means the same" is):
//! - object keys sorted (Go prints struct order, users write any order);
//! - Go durations normalised (`1m` equals `1m0s` and `60s`);
//! - numbers compared by value (`1` equals `1.0`);
//! - `null`, `{}` and `[]` members dropped, since Go's `omitempty` drops them on one side
//!   and a user may write them on the other.

use std::fmt;

use serde_json::{Map, Value};
use xxhash_rust::xxh3::xxh3_128;

mod json;

pub use json::fingerprint_json;

/// A 128-bit digest of a spec's canonical form.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(pub u128);

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Sixteen hex digits are plenty for a human to tell two specs apart.
        write!(f, "{:016x}", (self.0 >> 64) as u64)
    }
}

/// Fingerprints a spec without building its canonical copy.
///
/// The canonical byte stream is gathered in a buffer and hashed once: a spec is a few
/// hundred bytes fed in many tiny pieces, and one-shot XXH3 over the buffer is several
/// times faster than streaming them, with the same digest.
pub fn fingerprint(spec: &Value) -> Fingerprint {
    let mut buf = Vec::with_capacity(512);
    feed(&mut buf, spec);
    Fingerprint(xxh3_128(&buf))
}

// Tags keep `"1"` apart from `1` and `[]` apart from `{}` in the hash stream.
const T_NULL: u8 = 0;
const T_FALSE: u8 = 1;
const T_TRUE: u8 = 2;
const T_INT: u8 = 3;
const T_FLOAT: u8 = 4;
const T_STR: u8 = 5;
const T_DURATION: u8 = 6;
const T_ARRAY: u8 = 7;
const T_OBJECT: u8 = 8;
const T_END: u8 = 9;

fn feed(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => out.push(T_NULL),
        Value::Bool(false) => out.push(T_FALSE),
        Value::Bool(true) => out.push(T_TRUE),
        Value::Number(n) => push_num(out, number_key(n)),
        Value::String(s) => push_str(out, s),
        Value::Array(items) => {
            out.push(T_ARRAY);
            for item in items {
                feed(out, item);
            }
            out.push(T_END);
        }
        Value::Object(map) => {
            out.push(T_OBJECT);
            // serde_json's Map is a BTreeMap here (no `preserve_order`), so keys are sorted.
            for (k, val) in map {
                if is_absent(val) {
                    continue;
                }
                out.extend_from_slice(&(k.len() as u64).to_le_bytes());
                out.extend_from_slice(k.as_bytes());
                feed(out, val);
            }
            out.push(T_END);
        }
    }
}

fn push_num(out: &mut Vec<u8>, n: Num) {
    match n {
        Num::Int(i) => {
            out.push(T_INT);
            out.extend_from_slice(&i.to_le_bytes());
        }
        Num::Float(f) => {
            out.push(T_FLOAT);
            out.extend_from_slice(&f.to_bits().to_le_bytes());
        }
    }
}

fn push_str(out: &mut Vec<u8>, s: &str) {
    match go_duration_nanos(s) {
        Some(ns) => {
            out.push(T_DURATION);
            out.extend_from_slice(&ns.to_le_bytes());
        }
        None => {
            out.push(T_STR);
            out.extend_from_slice(&(s.len() as u64).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        }
    }
}

/// A digest of a spec exactly as parsed, not canonicalised: equal (barring a 128-bit
/// collision) exactly when the two values are equal as serde_json compares them. A store
/// uses it to share one parsed spec among identical copies without comparing trees.
pub fn exact_digest(spec: &Value) -> u128 {
    let mut buf = Vec::with_capacity(512);
    feed_exact(&mut buf, spec);
    xxh3_128(&buf)
}

// serde_json keeps integers and floats apart (`1` is not `1.0`), and so does the digest.
const X_POS_INT: u8 = 10;
const X_NEG_INT: u8 = 11;

fn feed_exact(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => out.push(T_NULL),
        Value::Bool(false) => out.push(T_FALSE),
        Value::Bool(true) => out.push(T_TRUE),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                out.push(X_POS_INT);
                out.extend_from_slice(&u.to_le_bytes());
            } else if let Some(i) = n.as_i64() {
                out.push(X_NEG_INT);
                out.extend_from_slice(&i.to_le_bytes());
            } else {
                out.push(T_FLOAT);
                out.extend_from_slice(&n.as_f64().unwrap_or(f64::NAN).to_bits().to_le_bytes());
            }
        }
        Value::String(s) => {
            out.push(T_STR);
            out.extend_from_slice(&(s.len() as u64).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        Value::Array(items) => {
            out.push(T_ARRAY);
            for item in items {
                feed_exact(out, item);
            }
            out.push(T_END);
        }
        Value::Object(map) => {
            out.push(T_OBJECT);
            for (k, val) in map {
                out.extend_from_slice(&(k.len() as u64).to_le_bytes());
                out.extend_from_slice(k.as_bytes());
                feed_exact(out, val);
            }
            out.push(T_END);
        }
    }
}

/// A member whose value Kuma would omit: `null`, or an object or array with nothing
/// present in it.
fn is_absent(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(items) => items.is_empty(),
        Value::Object(map) => map.values().all(is_absent),
        _ => false,
    }
}

enum Num {
    Int(i128),
    Float(f64),
}

fn number_key(n: &serde_json::Number) -> Num {
    if let Some(i) = n.as_i64() {
        return Num::Int(i128::from(i));
    }
    if let Some(u) = n.as_u64() {
        return Num::Int(i128::from(u));
    }
    let f = n.as_f64().unwrap_or(f64::NAN);
    // 2^63 bounds the integers an f64 can name exactly and i64 can hold.
    if f.fract() == 0.0 && f.abs() < 9.2e18 {
        Num::Int(f as i128)
    } else {
        Num::Float(f)
    }
}

/// A positive duration in Go's grammar (`500ms`, `30s`, `1m30s`, `1.5h`), as Kuma and
/// kubectl write them: the one grammar every duration kuma-sync is given is read in (the
/// configuration file, the probe's flags). Zero, negative, or too long for a `Duration`
/// of nanoseconds (`18446744073709551616ns` must not wrap to zero) is `None`.
pub fn parse_go_duration(s: &str) -> Option<std::time::Duration> {
    go_duration_nanos(s.trim())
        .and_then(|n| u64::try_from(n).ok())
        .filter(|n| *n > 0)
        .map(std::time::Duration::from_nanos)
}

/// Parses a Go duration (`time.ParseDuration`): `[-+]?(\d*\.?\d*(ns|us|µs|μs|ms|s|m|h))+`.
/// A bare `0` is a valid Go duration but also an ordinary string, so it is left alone.
pub fn go_duration_nanos(s: &str) -> Option<i128> {
    let (neg, mut rest) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if rest.is_empty() {
        return None;
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .bytes()
            .take_while(|b| b.is_ascii_digit() || *b == b'.')
            .count();
        if num_len == 0 {
            return None;
        }
        let number: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .chars()
            .take_while(|c| !c.is_ascii_digit() && *c != '.')
            .map(char::len_utf8)
            .sum();
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += number * scale;
    }
    let nanos = total.round() as i128;
    Some(if neg { -nanos } else { nanos })
}

/// The canonical form itself, for display and for [`diff`].
pub fn canonical(v: &Value) -> Value {
    match v {
        Value::String(s) => match go_duration_nanos(s) {
            Some(ns) => Value::String(format_go_duration(ns)),
            None => v.clone(),
        },
        Value::Number(n) => match number_key(n) {
            Num::Int(i) => i64::try_from(i).map(Value::from).unwrap_or_else(|_| v.clone()),
            Num::Float(_) => v.clone(),
        },
        Value::Array(items) => Value::Array(items.iter().map(canonical).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !is_absent(v))
                .map(|(k, v)| (k.clone(), canonical(v)))
                .collect(),
        ),
        _ => v.clone(),
    }
}

/// Go's `Duration.String()`: `1m0s`, `1h30m0s`, `500ms`.
pub fn format_go_duration(nanos: i128) -> String {
    if nanos == 0 {
        return "0s".to_owned();
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let n = nanos.unsigned_abs();
    if n < 1_000_000_000 {
        let (unit, div) = if n < 1_000 {
            ("ns", 1)
        } else if n < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        return format!("{sign}{}{unit}", trim_fraction(n, div));
    }
    let h = n / 3_600_000_000_000;
    let m = (n / 60_000_000_000) % 60;
    let s = trim_fraction(n % 60_000_000_000, 1_000_000_000);
    match (h, m) {
        (0, 0) => format!("{sign}{s}s"),
        (0, m) => format!("{sign}{m}m{s}s"),
        (h, m) => format!("{sign}{h}h{m}m{s}s"),
    }
}

fn trim_fraction(n: u128, div: u128) -> String {
    let whole = n / div;
    let frac = n % div;
    if frac == 0 {
        return whole.to_string();
    }
    let width = div.ilog10() as usize;
    let digits = format!("{frac:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// The JSON paths at which two specs differ in canonical form (`.to[0].default.x`),
/// sorted. Empty exactly when the fingerprints are equal (barring a hash collision).
pub fn diff(expected: &Value, actual: &Value) -> Vec<String> {
    differences(expected, actual)
        .into_iter()
        .map(|d| d.path)
        .collect()
}

/// One place where two specs differ: its path, and the value on each side in canonical
/// form (`None` where that side lacks the key).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Difference {
    pub path: String,
    pub expected: Option<Value>,
    pub actual: Option<Value>,
}

/// By path, then by the values' JSON text: reports sort their rows, and JSON values have
/// no order of their own.
impl Ord for Difference {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let text = |v: &Option<Value>| v.as_ref().map(Value::to_string);
        (&self.path, text(&self.expected), text(&self.actual)).cmp(&(
            &other.path,
            text(&other.expected),
            text(&other.actual),
        ))
    }
}

impl PartialOrd for Difference {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// [`diff`] with the values: what a person needs to see what changed, not only where.
pub fn differences(expected: &Value, actual: &Value) -> Vec<Difference> {
    let mut out = Vec::new();
    diff_into(
        &canonical(expected),
        &canonical(actual),
        &mut String::new(),
        &mut out,
    );
    out
}

fn diff_into(a: &Value, b: &Value, path: &mut String, out: &mut Vec<Difference>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => diff_maps(x, y, path, out),
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (xa, yb)) in x.iter().zip(y).enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                diff_into(xa, yb, path, out);
                path.truncate(len);
            }
        }
        _ if a == b => {}
        _ => out.push(Difference {
            path: if path.is_empty() {
                ".".to_owned()
            } else {
                path.clone()
            },
            expected: Some(a.clone()),
            actual: Some(b.clone()),
        }),
    }
}

fn diff_maps(x: &Map<String, Value>, y: &Map<String, Value>, path: &mut String, out: &mut Vec<Difference>) {
    let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
    keys.sort_unstable();
    keys.dedup();
    for k in keys {
        let len = path.len();
        path.push('.');
        path.push_str(k);
        match (x.get(k), y.get(k)) {
            (Some(a), Some(b)) => diff_into(a, b, path, out),
            (a, b) => out.push(Difference {
                path: path.clone(),
                expected: a.cloned(),
                actual: b.cloned(),
            }),
        }
        path.truncate(len);
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    #[test]
    fn go_json_and_user_yaml_agree() {
        // What a user applied, and what the zone holds after Go re-encoded it.
        let user = json!({"to": [{"targetRef": {"name": "redis", "kind": "MeshService"},
            "default": {"outlierDetection": {"interval": "1m", "baseEjectionTime": "30s"},
                        "connectionLimits": {"maxConnections": 2.0}}}],
            "from": [], "targetRef": null});
        let go = json!({"to": [{"targetRef": {"kind": "MeshService", "name": "redis"},
            "default": {"connectionLimits": {"maxConnections": 2},
                        "outlierDetection": {"baseEjectionTime": "30s", "interval": "1m0s"}}}]});
        assert_eq!(fingerprint(&user), fingerprint(&go));
        assert!(diff(&user, &go).is_empty());
    }

    #[test]
    fn differences_carry_both_values() {
        let a = json!({"to": [{"default": {"connectionLimits": {"maxConnections": 2}}}], "x": "1m"});
        let b = json!({"to": [{"default": {"connectionLimits": {"maxConnections": 5}}}]});
        assert_eq!(
            differences(&a, &b),
            vec![
                Difference {
                    path: ".to[0].default.connectionLimits.maxConnections".into(),
                    expected: Some(json!(2)),
                    actual: Some(json!(5)),
                },
                Difference {
                    path: ".x".into(),
                    expected: Some(json!("1m0s")),
                    actual: None,
                },
            ]
        );
    }

    #[test]
    fn a_changed_value_changes_the_fingerprint_and_names_its_path() {
        let a = json!({"to": [{"default": {"connectionLimits": {"maxConnections": 2}}}]});
        let b = json!({"to": [{"default": {"connectionLimits": {"maxConnections": 3}}}]});
        assert_ne!(fingerprint(&a), fingerprint(&b));
        assert_eq!(
            diff(&a, &b),
            vec![".to[0].default.connectionLimits.maxConnections"]
        );
        let c = json!({"to": [{"default": {}}], "targetRef": {"kind": "Mesh"}});
        assert_eq!(diff(&a, &c), vec![".targetRef", ".to[0].default"]);
    }

    #[test]
    fn types_are_not_confused() {
        assert_ne!(fingerprint(&json!({"a": "1"})), fingerprint(&json!({"a": 1})));
        assert_ne!(
            fingerprint(&json!({"a": [1]})),
            fingerprint(&json!({"a": {"0": 1}}))
        );
        assert_ne!(fingerprint(&json!({"a": false})), fingerprint(&json!({})));
        assert_ne!(fingerprint(&json!({"a": "1m"})), fingerprint(&json!({"a": "2m"})));
        assert_ne!(fingerprint(&json!([[1], []])), fingerprint(&json!([[], [1]])));
    }

    #[test]
    fn digests_are_stable() {
        // Pinned values: fingerprints appear in reports, so a faster implementation must
        // give the same digests (these were computed by the original streaming hasher).
        let cases = [
            (json!({}), 0xdee3346d6365ddcdeee8b49154870c20_u128),
            (
                json!({"to": [{"targetRef": {"kind": "MeshService", "name": "redis"},
                    "default": {"connectionLimits": {"maxConnections": 2},
                                "outlierDetection": {"interval": "1m", "baseEjectionTime": "30s"}}}],
                    "from": [], "targetRef": null}),
                0x6f0457f9de96ffc1c3652fb17420fcb3,
            ),
            (
                json!({"a": [1, 2.5, "x", true, false, null, {"b": "-250ms"}], "c": -7,
                       "d": 18446744073709551615u64}),
                0x663d7076c3f2d0570ee203f782843046,
            ),
        ];
        for (spec, expected) in cases {
            assert_eq!(fingerprint(&spec), Fingerprint(expected), "{spec}");
        }
    }

    #[test]
    fn exact_digests_tell_spellings_apart() {
        let a = json!({"interval": "1m", "n": 1, "x": null});
        assert_eq!(exact_digest(&a), exact_digest(&a.clone()));
        for other in [
            json!({"interval": "60s", "n": 1, "x": null}),
            json!({"interval": "1m", "n": 1.0, "x": null}),
            json!({"interval": "1m", "n": 1}),
            json!({"interval": "1m", "n": -1, "x": null}),
        ] {
            assert_eq!(fingerprint(&a) == fingerprint(&other), other["n"] != json!(-1));
            assert_ne!(exact_digest(&a), exact_digest(&other), "{other}");
        }
    }

    #[test]
    fn go_durations() {
        assert_eq!(go_duration_nanos("1m"), Some(60_000_000_000));
        assert_eq!(go_duration_nanos("1m0s"), go_duration_nanos("60s"));
        assert_eq!(go_duration_nanos("1.5h"), go_duration_nanos("1h30m"));
        assert_eq!(go_duration_nanos("-250ms"), Some(-250_000_000));
        assert_eq!(go_duration_nanos("10µs"), go_duration_nanos("10us"));
        for not_a_duration in ["0", "redis", "5", "1x", "m", "", "-", "1m s"] {
            assert_eq!(go_duration_nanos(not_a_duration), None, "{not_a_duration}");
        }
        assert_eq!(format_go_duration(60_000_000_000), "1m0s");
        assert_eq!(format_go_duration(5_400_000_000_000), "1h30m0s");
        assert_eq!(format_go_duration(1_500_000_000), "1.5s");
        assert_eq!(format_go_duration(250_000_000), "250ms");
        assert_eq!(format_go_duration(0), "0s");
    }

    pub(super) fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (-1000i64..1000).prop_map(Value::from),
            prop::sample::select(vec!["1m", "60s", "1m0s", "redis", "Mesh", "30s", ""]).prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-d]", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn fingerprint_equality_matches_diff(a in arb_json(), b in arb_json()) {
            prop_assert_eq!(fingerprint(&a) == fingerprint(&b), diff(&a, &b).is_empty());
        }

        #[test]
        fn exact_digest_equality_is_value_equality(a in arb_json(), b in arb_json()) {
            prop_assert_eq!(exact_digest(&a) == exact_digest(&b), a == b);
        }

        #[test]
        fn canonical_form_has_the_same_fingerprint(a in arb_json()) {
            prop_assert_eq!(fingerprint(&a), fingerprint(&canonical(&a)));
        }
    }
}
