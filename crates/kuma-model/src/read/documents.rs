//! Splitting a stream into documents and parsing each one, keeping line numbers.
//!
//! Documents are split at `---` and `...` markers here rather than by the YAML parser so
//! that an error names the document it is in, a syntax error gives a line of the whole
//! input, and a stream of thousands of documents stays within the parser's budget
//! (which counts documents per parse).

use serde_json::Value;

/// One piece of the stream between document markers.
pub(super) struct Piece<'a> {
    /// The text, starting with its `---` marker line when it has one.
    pub text: &'a str,
    /// 1-based line of the input where `text` starts.
    pub first_line: usize,
    /// 1-based line of the first line carrying content (neither blank nor comment).
    pub content_line: usize,
    /// Content begins on the marker line itself (`--- {a: 1}`).
    marker_content: bool,
}

impl Piece<'_> {
    /// Only blank lines, comments and the marker: an empty document, skipped.
    pub fn is_empty(&self) -> bool {
        self.content_line == 0
    }
}

/// Cuts `text` at document markers. Lines of a block scalar or a quoted string cannot
/// start with `---` or `...` at column 0 (YAML 1.2, 9.1.4), so a marker is never content.
pub(super) fn split(text: &str) -> Vec<Piece<'_>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut start_line = 1;
    let mut offset = 0;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let line_no = i + 1;
        let bare = line.trim_end_matches(['\n', '\r']);
        if is_marker(bare, "---") && offset > start {
            pieces.push(piece(&text[start..offset], start_line));
            start = offset;
            start_line = line_no;
        }
        offset += line.len();
        if is_marker(bare, "...") {
            pieces.push(piece(&text[start..offset], start_line));
            start = offset;
            start_line = line_no + 1;
        }
    }
    if offset > start {
        pieces.push(piece(&text[start..], start_line));
    }
    pieces
}

fn is_marker(line: &str, marker: &str) -> bool {
    line.strip_prefix(marker)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t']))
}

fn piece(text: &str, first_line: usize) -> Piece<'_> {
    let mut content_line = 0;
    let mut marker_content = false;
    for (i, line) in text.lines().enumerate() {
        let body = if i == 0 && is_marker(line, "---") {
            let rest = line[3..].trim();
            marker_content = !rest.is_empty() && !rest.starts_with('#');
            rest
        } else if is_marker(line, "...") || line.starts_with('%') {
            // `%` cannot start content at column 0: it is a directive (`%YAML 1.2`).
            ""
        } else {
            line.trim()
        };
        if body.is_empty() || body.starts_with('#') {
            continue;
        }
        content_line = first_line + i;
        break;
    }
    Piece {
        text,
        first_line,
        content_line,
        marker_content,
    }
}

/// Parses one piece into its documents (null documents dropped). JSON goes to serde_json
/// first, for its speed on large REST pages and its exact error positions; YAML is a
/// superset of JSON, so anything serde_json refuses is tried as YAML.
pub(super) fn parse(piece: &Piece<'_>) -> Result<Vec<Value>, String> {
    let content = content_text(piece);
    let looks_like_json = !piece.marker_content && content.starts_with(['{', '[']);
    let json_error = if looks_like_json {
        match serde_json::Deserializer::from_str(content)
            .into_iter::<Strict>()
            .collect::<Result<Vec<_>, _>>()
        {
            Ok(values) => {
                return Ok(values
                    .into_iter()
                    .map(|Strict(v)| v)
                    .filter(|v| !v.is_null())
                    .collect());
            }
            Err(e) => Some(e),
        }
    } else {
        None
    };
    match (
        serde_saphyr::from_multiple_with_options::<Value>(piece.text, yaml_options()),
        json_error,
    ) {
        (Ok(values), _) => Ok(values.into_iter().filter(|v| !v.is_null()).collect()),
        // Flow-style YAML also starts with `{`; only JSON-looking text gets JSON's error.
        (Err(_), Some(e)) if looks_like_json_object_or_array(content) => {
            let line = piece.content_line + e.line().saturating_sub(1);
            // A repeated key is well-formed JSON, but not a syntax a reader may guess at.
            let what = match e.classify() {
                serde_json::error::Category::Data => "JSON error",
                _ => "JSON syntax error",
            };
            Err(format!(
                "{what} at line {line}, column {}: {}",
                e.column(),
                json_message(&e)
            ))
        }
        (Err(e), _) => Err(yaml_reason(&e, piece.first_line)),
    }
}

/// A JSON value whose objects never repeat a key. serde_json keeps the last of two
/// silently, while YAML refuses them: a document must not mean one thing to kuma-sync and
/// another to the tool that wrote it, so JSON is held to YAML's rule.
struct Strict(Value);

impl<'de> serde::Deserialize<'de> for Strict {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> serde::de::Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(Strict(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            // Before its value, so the error points at the key.
            if out.contains_key(&key) {
                return Err(serde::de::Error::custom(format_args!("duplicate key `{key}`")));
            }
            let Strict(value) = map.next_value()?;
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

/// `{"`, `{}` or `[`, whitespace allowed: JSON rather than flow-style YAML (`{a: 1}`).
fn looks_like_json_object_or_array(content: &str) -> bool {
    match content.strip_prefix('{') {
        Some(rest) => rest.trim_start().starts_with(['"', '}']),
        None => content.starts_with('['),
    }
}

/// The piece's text from its first content line on (comments before JSON are not JSON).
fn content_text<'a>(piece: &Piece<'a>) -> &'a str {
    let skip = piece.content_line.saturating_sub(piece.first_line);
    let mut rest = piece.text;
    for _ in 0..skip {
        rest = rest.split_once('\n').map_or("", |(_, r)| r);
    }
    rest.trim_start()
}

/// Limits for inputs of a whole cluster: one `kubectl get -A -o yaml` list of thousands
/// of resources is a single document with far more nodes than the default budget allows.
fn yaml_options() -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_nodes = 20_000_000;
    budget.max_events = 80_000_000;
    budget.max_total_scalar_bytes = 1 << 30;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    options
}

/// serde_json's message without its own (piece-relative) position.
fn json_message(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

/// The parser's message with the position moved from the piece to the whole input.
fn yaml_reason(e: &serde_saphyr::Error, first_line: usize) -> String {
    let mut message = e.without_snippet().to_string();
    if let Some(i) = message.rfind(" at line ") {
        message.truncate(i);
    }
    // Advice to the programmer, not to the user.
    let message = message.replace(", set DuplicateKeyPolicy in Options if acceptable", "");
    match e.location() {
        Some(loc) => {
            let line = first_line + usize::try_from(loc.line()).unwrap_or(1).saturating_sub(1);
            format!(
                "YAML syntax error at line {line}, column {}: {message}",
                loc.column()
            )
        }
        None => format!("YAML syntax error: {message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<(usize, usize)> {
        split(text)
            .iter()
            .map(|p| (p.first_line, p.content_line))
            .collect()
    }

    #[test]
    fn markers_split_and_comments_are_not_content() {
        let text = "# Product: Kuma\n%YAML 1.2\n---\na: 1\n---\n\n# c\nb: 2\n...\n---\n";
        assert_eq!(lines(text), vec![(1, 0), (3, 4), (5, 8), (10, 0)]);
        let pieces = split(text);
        assert!(pieces[0].is_empty() && !pieces[1].is_empty() && pieces[3].is_empty());
    }

    #[test]
    fn a_marker_needs_a_separator_after_it() {
        // `----` and `---x` are content, not markers.
        assert_eq!(split("a: |\n  x\n----x: 1\n").len(), 1);
        assert_eq!(lines("--- {a: 1}\n--- \t\nb: 1\n"), vec![(1, 1), (2, 3)]);
    }

    #[test]
    fn yaml_errors_carry_the_line_of_the_whole_input() {
        let pieces = split("a: 1\n---\nb: [1,\nc: 2\n");
        let err = parse(&pieces[1]).unwrap_err();
        assert_eq!(err, "YAML syntax error at line 3, column 4: unclosed bracket '['");
    }

    #[test]
    fn json_errors_carry_the_line_of_the_whole_input() {
        let pieces = split("# comment\n{\"a\": 1,\n \"b\" 2}\n");
        let err = parse(&pieces[0]).unwrap_err();
        assert_eq!(err, "JSON syntax error at line 3, column 6: expected `:`");
    }

    #[test]
    fn a_repeated_json_key_is_an_error_like_a_repeated_yaml_key() {
        let err = parse(&split("{\"spec\": {\"a\": 1,\n \"a\": 2}}\n")[0]).unwrap_err();
        assert_eq!(err, "JSON error at line 2, column 4: duplicate key `a`");
        assert!(
            parse(&split("a: 1\na: 2\n")[0])
                .unwrap_err()
                .contains("duplicate")
        );
        // The same key in two objects is no repeat.
        assert_eq!(parse(&split("[{\"a\": 1}, {\"a\": 2}]")[0]).unwrap().len(), 1);
    }

    #[test]
    fn concatenated_json_values_are_documents() {
        let pieces = split("{\"a\": 1}\n{\"b\": 2}\n");
        assert_eq!(parse(&pieces[0]).unwrap().len(), 2);
        // Flow YAML that JSON refuses still parses.
        assert_eq!(parse(&split("{a: 1}\n")[0]).unwrap()[0]["a"], 1);
    }
}
