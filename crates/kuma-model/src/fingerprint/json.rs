//! [`fingerprint_json`]: the canonical stream of [`super::fingerprint`], fed straight
//! from JSON text by serde_json's parser, so a KDS full state is fingerprinted without a
//! `Value` per spec.

use serde::{
    Deserializer,
    de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor},
};
use xxhash_rust::xxh3::xxh3_128;

use super::*;

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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::super::{Fingerprint, fingerprint, tests::arb_json};
    use super::*;

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
}
