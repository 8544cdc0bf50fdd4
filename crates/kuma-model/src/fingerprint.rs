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

use serde::{
    Deserializer,
    de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor},
};
use serde_json::{Map, Value};
use xxhash_rust::xxh3::xxh3_128;

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

/// Fingerprints a spec from its JSON text in one pass, without building a `Value`.
///
/// Equal to `fingerprint(&serde_json::from_slice(json)?)` for every input, and fails
/// exactly when that parse fails: the same parser reads the bytes and feeds the same
/// canonical stream as [`fingerprint`], sorting each object's members once they are all
/// read. For a KDS full state this avoids a tree per spec and dropping it again, which
/// cost more than the hash itself.
pub fn fingerprint_json(json: &[u8]) -> Result<Fingerprint, serde_json::Error> {
    CANON.with(|canon| match canon.try_borrow_mut() {
        Ok(mut canon) => canon.fingerprint(json),
        // Nothing this module calls can re-enter it; should that change, stay correct.
        Err(_) => Canon::default().fingerprint(json),
    })
}

thread_local! {
    /// Buffers reused from one call to the next: a KDS full state fingerprints thousands
    /// of specs in a row, and allocating them for each was ~5 % of its decode.
    static CANON: std::cell::RefCell<Canon> = std::cell::RefCell::default();
}

/// The state of a [`fingerprint_json`] pass.
#[derive(Default)]
struct Canon {
    /// The canonical stream so far, byte for byte what [`feed`] would produce.
    out: Vec<u8>,
    /// The members of the objects being read, innermost object last: each object pushes
    /// its members above its parent's and truncates back once it has reordered them.
    members: Vec<Member>,
    /// Scratch for reordering one object's member streams; objects are reordered one at
    /// a time, after their children, so one is enough.
    scratch: Vec<u8>,
}

// === impl Canon ===

impl Canon {
    /// Past this, buffers are given back after the call: one huge spec should not pin
    /// its size for the life of the thread.
    const KEEP: usize = 64 << 10;

    fn fingerprint(&mut self, json: &[u8]) -> Result<Fingerprint, serde_json::Error> {
        self.out.clear();
        self.members.clear();
        let mut de = serde_json::Deserializer::from_slice(json);
        let fed = DeserializeSeed::deserialize(Feed(self), &mut de)
            // As `from_slice`: trailing non-whitespace is an error.
            .and_then(|_| de.end())
            .map(|()| Fingerprint(xxh3_128(&self.out)));
        if self.out.capacity() > Self::KEEP || self.scratch.capacity() > Self::KEEP {
            *self = Self::default();
        }
        fed
    }
}

/// One member of an object as read: its key's length prefix and bytes at
/// `out[start..key_end]`, then its value's canonical stream up to `end`.
struct Member {
    start: usize,
    key_end: usize,
    end: usize,
    /// The value is one [`is_absent`] drops.
    absent: bool,
}

impl Member {
    fn key<'a>(&self, out: &'a [u8]) -> &'a [u8] {
        &out[self.start + 8..self.key_end]
    }
}

/// Feeds one JSON value into the canonical stream; yields whether the value is absent
/// (`null`, `[]`, or an object with nothing present in it).
struct Feed<'a>(&'a mut Canon);

impl<'de> DeserializeSeed<'de> for Feed<'_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_any(self)
    }
}

// Each method mirrors how `Value` is built from the same call (serde_json's
// `ValueVisitor`) and then fed: the two paths must agree on every input.
impl<'de> Visitor<'de> for Feed<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        self.0.out.push(T_NULL);
        Ok(true)
    }

    fn visit_none<E: de::Error>(self) -> Result<bool, E> {
        self.visit_unit()
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> Result<bool, E> {
        self.0.out.push(if b { T_TRUE } else { T_FALSE });
        Ok(false)
    }

    fn visit_i64<E: de::Error>(self, i: i64) -> Result<bool, E> {
        push_num(&mut self.0.out, Num::Int(i128::from(i)));
        Ok(false)
    }

    fn visit_u64<E: de::Error>(self, u: u64) -> Result<bool, E> {
        push_num(&mut self.0.out, Num::Int(i128::from(u)));
        Ok(false)
    }

    fn visit_f64<E: de::Error>(self, f: f64) -> Result<bool, E> {
        // A `Value` holds no NaN or infinity: it becomes `null`.
        match serde_json::Number::from_f64(f) {
            Some(n) => {
                push_num(&mut self.0.out, number_key(&n));
                Ok(false)
            }
            None => self.visit_unit(),
        }
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<bool, E> {
        push_str(&mut self.0.out, s);
        Ok(false)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        let c = self.0;
        c.out.push(T_ARRAY);
        let mut empty = true;
        // Arrays keep absent items: only an empty array is itself absent.
        while seq.next_element_seed(Feed(c))?.is_some() {
            empty = false;
        }
        c.out.push(T_END);
        Ok(empty)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        let c = self.0;
        c.out.push(T_OBJECT);
        let first = c.out.len();
        let base = c.members.len();
        loop {
            let start = c.out.len();
            c.out.extend_from_slice(&[0; 8]);
            if map.next_key_seed(Key(&mut c.out))?.is_none() {
                c.out.truncate(start);
                break;
            }
            let key_end = c.out.len();
            let key_len = (key_end - start - 8) as u64;
            c.out[start..start + 8].copy_from_slice(&key_len.to_le_bytes());
            let absent = map.next_value_seed(Feed(c))?;
            c.members.push(Member {
                start,
                key_end,
                end: c.out.len(),
                absent,
            });
        }
        let present = canonical_members(c, base, first);
        c.members.truncate(base);
        c.out.push(T_END);
        Ok(present == 0)
    }
}

/// Rewrites the members `c.members[base..]`, whose streams lie back to back in
/// `c.out[first..]`, as [`feed`] writes a `Map`: sorted by key, the last of duplicate
/// keys winning (as `Map::insert` does when serde_json builds it), absent values dropped.
/// Returns how many members remain.
fn canonical_members(c: &mut Canon, base: usize, first: usize) -> usize {
    let out = &c.out;
    let members = &mut c.members[base..];
    let in_order =
        members.iter().all(|m| !m.absent) && members.windows(2).all(|w| w[0].key(out) < w[1].key(out));
    if in_order {
        // Already canonical (sorted, no repeats, nothing absent): nothing to move.
        return members.len();
    }
    // Stable, so among equal keys the one read last stays last.
    members.sort_by(|a, b| a.key(out).cmp(b.key(out)));
    c.scratch.clear();
    let mut present = 0;
    for (i, m) in members.iter().enumerate() {
        let overridden = members.get(i + 1).is_some_and(|next| next.key(out) == m.key(out));
        if overridden || m.absent {
            continue;
        }
        c.scratch.extend_from_slice(&out[m.start..m.end]);
        present += 1;
    }
    c.out.truncate(first);
    c.out.extend_from_slice(&c.scratch);
    present
}

/// Writes an object key, length-prefix excepted, straight into the stream.
struct Key<'a>(&'a mut Vec<u8>);

impl<'de> DeserializeSeed<'de> for Key<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<(), E> {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
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
    let mut out = Vec::new();
    diff_into(
        &canonical(expected),
        &canonical(actual),
        &mut String::new(),
        &mut out,
    );
    out
}

fn diff_into(a: &Value, b: &Value, path: &mut String, out: &mut Vec<String>) {
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
        _ => out.push(if path.is_empty() {
            ".".to_owned()
        } else {
            path.clone()
        }),
    }
}

fn diff_maps(x: &Map<String, Value>, y: &Map<String, Value>, path: &mut String, out: &mut Vec<String>) {
    let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
    keys.sort_unstable();
    keys.dedup();
    for k in keys {
        let len = path.len();
        path.push('.');
        path.push_str(k);
        match (x.get(k), y.get(k)) {
            (Some(a), Some(b)) => diff_into(a, b, path, out),
            _ => out.push(path.clone()),
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

    fn arb_json() -> impl Strategy<Value = Value> {
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

    /// The two paths, on one text: the same fingerprint, or both failing.
    fn same_as_value_path(text: &str) -> Result<Fingerprint, String> {
        let streamed = fingerprint_json(text.as_bytes());
        let via_value = serde_json::from_str::<Value>(text).map(|v| fingerprint(&v));
        match (streamed, via_value) {
            (Ok(a), Ok(b)) if a == b => Ok(a),
            (Err(_), Err(e)) => Err(e.to_string()),
            (a, b) => panic!("{text:?}: streamed {a:?}, via Value {b:?}"),
        }
    }

    #[test]
    fn json_bytes_fingerprint_as_their_value() {
        for text in [
            "{}",
            "  {}\n",
            "null",
            "[]",
            r#"{"b": 1, "a": 2}"#,
            r#"{"a": {"z": "1m", "y": ["60s", "1m0s", null, {}, []]}, "": 0}"#,
            // Absent members at any depth, sorted or not.
            r#"{"x": null, "a": {"b": {"c": null, "d": []}}, "e": {}}"#,
            r#"{"a": 1, "b": null}"#,
            r#"{"a": [{"b": null}], "c": [[]]}"#,
            // Escapes: a key and a duration spelled with \u escapes.
            r#"{"k\u00e9y": "\u0031m", "t\"ab\\": "a\tb\n\u0000", "\ud83d\ude00": "\u00b5s"}"#,
            // Numbers: spelling, sign, range.
            r#"[2, 2.0, 2e0, 20E-1, -0, -0.0, 0.5, 1e2, 1.5e300, -1e-300]"#,
            "[9223372036854775807, 9223372036854775808, 18446744073709551615, 18446744073709551616]",
            "[-9223372036854775808, -9223372036854775809, 9.2e18, 9.3e18, 123456789012345678901234567890]",
            // Unsorted nested keys in Go's struct order.
            r#"{"to": [{"targetRef": {"name": "redis", "kind": "MeshService"}, "default": {"outlierDetection": {"interval": "1m"}}}], "targetRef": {"kind": "Mesh"}}"#,
        ] {
            same_as_value_path(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        }
    }

    #[test]
    fn duplicate_keys_keep_the_last_as_a_value_does() {
        let fp = |t: &str| same_as_value_path(t).expect("valid JSON");
        assert_eq!(fp(r#"{"a": 1, "a": 2}"#), fingerprint(&json!({"a": 2})));
        assert_eq!(fp(r#"{"a": null, "a": 1}"#), fingerprint(&json!({"a": 1})));
        // The later absent value wins, and the member is dropped.
        assert_eq!(
            fp(r#"{"a": {"x": 1}, "b": 0, "a": null}"#),
            fingerprint(&json!({"b": 0}))
        );
        assert_eq!(
            fp(r#"{"b": 1, "a": 1, "b": 2, "a": 3}"#),
            fingerprint(&json!({"a": 3, "b": 2}))
        );
    }

    #[test]
    fn pinned_digests_hold_from_bytes() {
        let text = r#"{"targetRef": null, "from": [], "to": [{"default": {"outlierDetection":
            {"baseEjectionTime": "30s", "interval": "1m"}, "connectionLimits": {"maxConnections": 2}},
            "targetRef": {"name": "redis", "kind": "MeshService"}}]}"#;
        assert_eq!(
            fingerprint_json(text.as_bytes()).unwrap(),
            Fingerprint(0x6f0457f9de96ffc1c3652fb17420fcb3)
        );
        let text =
            r#"{"d": 18446744073709551615, "c": -7, "a": [1, 2.5, "x", true, false, null, {"b": "-250ms"}]}"#;
        assert_eq!(
            fingerprint_json(text.as_bytes()).unwrap(),
            Fingerprint(0x663d7076c3f2d0570ee203f782843046)
        );
    }

    #[test]
    fn malformed_json_fails_as_from_slice_does() {
        let deep_ok = format!("{}{}", "[".repeat(100), "]".repeat(100));
        let too_deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        for text in [
            "",
            "   ",
            "{not json",
            "{} x",
            "{}{}",
            r#"{"a":}"#,
            r#"{"a" 1}"#,
            r#"{"a":1,}"#,
            "[1,]",
            r#"{1: 2}"#,
            r#""\ud800""#,
            r#""\x""#,
            "\"a\u{1}b\"",
            "1e400",
            "-",
            "01",
            "NaN",
            too_deep.as_str(),
        ] {
            assert!(same_as_value_path(text).is_err(), "{text:?} parsed");
        }
        assert!(same_as_value_path(&deep_ok).is_ok());
        assert!(fingerprint_json(b"\xff").is_err());
    }

    /// JSON as text, so that the things a `Value` forgets are exercised: member order,
    /// duplicate keys, number spellings, escapes and whitespace.
    #[derive(Debug, Clone)]
    enum Doc {
        Null,
        Bool(bool),
        /// A number exactly as written.
        Num(String),
        Str(String),
        Arr(Vec<Doc>),
        Obj(Vec<(String, Doc)>),
    }

    fn arb_number() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<i64>().prop_map(|i| i.to_string()),
            any::<u64>().prop_map(|u| u.to_string()),
            (-1000i64..1000).prop_map(|i| i.to_string()),
            (-1000i64..1000).prop_map(|i| format!("{i}.0")),
            (-1000i64..1000).prop_map(|i| format!("{i}e0")),
            any::<f64>()
                .prop_filter("JSON has no NaN or infinity", |f| f.is_finite())
                .prop_map(|f| format!("{f:e}")),
            (-1e6f64..1e6).prop_map(|f| f.to_string()),
            prop::sample::select(vec![
                "-0",
                "-0.0",
                "0.0",
                "1E2",
                "1e-2",
                "18446744073709551616",
                "-9223372036854775809",
                "9.2e18",
                "9.3e18",
                "1e308",
                "5e-324",
                "123456789012345678901234567890",
            ])
            .prop_map(str::to_owned),
        ]
    }

    fn arb_string() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::sample::select(vec![
                "1m", "60s", "1m0s", "1h30m", "1.5h", "-250ms", "+5s", "10µs", "10us", "10μs", ".5s", "1.s",
                "0", "0s", "5", "1x", "m", "", "-", "redis", "Mesh",
            ])
            .prop_map(str::to_owned),
            "\\PC{0,8}",
            "[\\x00-\\x1f\"\\\\/\u{7f}-\u{a0}\u{2028}\u{fffd}\u{10ffff}]{0,4}",
        ]
    }

    fn arb_key() -> impl Strategy<Value = String> {
        // Few distinct keys, so objects often repeat one.
        prop_oneof![
            4 => "[a-c]{0,2}",
            1 => prop::sample::select(vec!["é", "e\u{301}", "\u{1F600}", "A", "a\"b", "\\", "\n"])
                .prop_map(str::to_owned),
        ]
    }

    fn arb_doc() -> impl Strategy<Value = Doc> {
        let leaf = prop_oneof![
            Just(Doc::Null),
            any::<bool>().prop_map(Doc::Bool),
            arb_number().prop_map(Doc::Num),
            arb_string().prop_map(Doc::Str),
        ];
        leaf.prop_recursive(4, 64, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Doc::Arr),
                prop::collection::vec((arb_key(), inner), 0..6).prop_map(Doc::Obj),
            ]
        })
    }

    /// How a [`Doc`] is written: `\u` escapes for non-ASCII, and whitespace between tokens.
    #[derive(Debug, Clone, Copy)]
    struct Style {
        escape_unicode: bool,
        spaced: bool,
    }

    fn render(doc: &Doc, style: Style, out: &mut String) {
        let sep = if style.spaced { " \n\t" } else { "" };
        match doc {
            Doc::Null => out.push_str("null"),
            Doc::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Doc::Num(n) => out.push_str(n),
            Doc::Str(s) => render_str(s, style, out),
            Doc::Arr(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(sep);
                    render(item, style, out);
                }
                out.push_str(sep);
                out.push(']');
            }
            Doc::Obj(members) => {
                out.push('{');
                for (i, (k, v)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(sep);
                    render_str(k, style, out);
                    out.push_str(sep);
                    out.push(':');
                    render(v, style, out);
                }
                out.push('}');
            }
        }
    }

    fn render_str(s: &str, style: Style, out: &mut String) {
        if !style.escape_unicode {
            out.push_str(&serde_json::to_string(s).expect("a string serialises"));
            return;
        }
        out.push('"');
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                ' '..='~' => out.push(c),
                _ => {
                    let mut units = [0u16; 2];
                    for u in c.encode_utf16(&mut units) {
                        out.push_str(&format!("\\u{u:04X}"));
                    }
                }
            }
        }
        out.push('"');
    }

    fn arb_text() -> impl Strategy<Value = String> {
        (arb_doc(), any::<bool>(), any::<bool>()).prop_map(|(doc, escape_unicode, spaced)| {
            let mut out = String::new();
            render(
                &doc,
                Style {
                    escape_unicode,
                    spaced,
                },
                &mut out,
            );
            out
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn json_text_fingerprints_as_its_value(text in arb_text()) {
            prop_assert!(same_as_value_path(&text).is_ok(), "{text:?} did not parse");
        }

        #[test]
        fn serialised_values_fingerprint_as_themselves(v in arb_json()) {
            let text = serde_json::to_vec(&v).expect("a Value serialises");
            prop_assert_eq!(fingerprint_json(&text).expect("valid JSON"), fingerprint(&v));
        }

        #[test]
        fn damaged_json_fails_or_agrees(
            text in arb_text(),
            at in any::<prop::sample::Index>(),
            byte in prop::sample::select(b"{}[]\",:0-e.\\ nt\x01\xc3".to_vec()),
            delete in any::<bool>(),
        ) {
            let mut bytes = text.into_bytes();
            if !bytes.is_empty() {
                let i = at.index(bytes.len());
                if delete { bytes.remove(i); } else { bytes[i] = byte; }
            }
            let streamed = fingerprint_json(&bytes).ok();
            let via_value = serde_json::from_slice::<Value>(&bytes).ok().map(|v| fingerprint(&v));
            prop_assert_eq!(streamed, via_value);
        }
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
