//! A fast path for the plain block YAML most Kubernetes manifests are written in.
//!
//! serde-saphyr reads about 50 MB/s per core, which makes YAML parsing nearly all of a large
//! directory render. Most manifests use a small part of YAML: block mappings and sequences,
//! plain words, decimal integers, booleans, null, quoted one-line strings, `[]` and `{}`. This
//! module reads exactly that part, line by line, and answers `None` for anything else
//! (anchors, tags, flow collections, block and multi-line scalars, floats, signed or
//! zero-padded numbers, duplicate keys, tabs, malformed input, ...), in which case the
//! caller parses the document with serde-saphyr as before. Errors therefore always come from
//! serde-saphyr, with its messages and lines.
//!
//! **Invariant:** whenever this returns `Some(v)`, serde-saphyr (with the options
//! [`super::yaml`] uses) returns `Ok(v)` for the same text. The property tests below check
//! it against serde-saphyr on generated documents.

use serde_json::{Map, Number, Value};

/// Deepest nesting read here (serde-saphyr's budget allows 256; deeper goes to it).
const MAX_DEPTH: usize = 128;

#[derive(Clone, Copy)]
struct Line<'a> {
    indent: usize,
    /// Without indentation and trailing blanks; never empty, never a whole-line comment.
    text: &'a str,
}

/// Parses one YAML document (no `---` markers) in the supported subset, or `None`.
pub fn parse_document(doc: &str) -> Option<Value> {
    let mut lines = Vec::with_capacity(doc.len() / 24);
    for raw in doc.lines() {
        let content = raw.trim_start_matches(' ');
        let text = content.trim_end_matches([' ', '\t', '\r']);
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        if content.starts_with('\t') || text.starts_with('\u{feff}') || text.starts_with('%') {
            return None;
        }
        lines.push(Line {
            indent: raw.len() - content.len(),
            text,
        });
    }
    let first = lines.first()?;
    if first.indent != 0 {
        return None;
    }
    let mut parser = Parser {
        lines,
        pos: 0,
        depth: 0,
    };
    let value = parser.node(0)?;
    (parser.pos == parser.lines.len()).then_some(value)
}

struct Parser<'a> {
    lines: Vec<Line<'a>>,
    pos: usize,
    depth: usize,
}

fn is_sequence_item(text: &str) -> bool {
    text == "-" || text.starts_with("- ")
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<Line<'a>> {
        self.lines.get(self.pos).copied()
    }

    /// The node starting at the current line, which is at `indent`.
    fn node(&mut self, indent: usize) -> Option<Value> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return None;
        }
        let line = self.peek()?;
        let value = if line.indent != indent {
            None
        } else if is_sequence_item(line.text) {
            self.sequence(indent)
        } else {
            self.mapping(indent)
        };
        self.depth -= 1;
        value
    }

    /// The value after `key:` with nothing else on its line: a more indented node, a
    /// sequence at the key's own indentation, or null.
    fn nested_value(&mut self, indent: usize) -> Option<Value> {
        match self.peek() {
            Some(next) if next.indent > indent => self.node(next.indent),
            Some(next) if next.indent == indent && is_sequence_item(next.text) => {
                self.depth += 1;
                if self.depth > MAX_DEPTH {
                    return None;
                }
                let value = self.sequence(indent);
                self.depth -= 1;
                value
            }
            _ => Some(Value::Null),
        }
    }

    /// A scalar ends its node: a more indented line after it would continue it (a
    /// multi-line plain scalar), which is not read here.
    fn scalar_ends(&self, indent: usize) -> Option<()> {
        match self.peek() {
            Some(next) if next.indent > indent => None,
            _ => Some(()),
        }
    }

    fn mapping(&mut self, indent: usize) -> Option<Value> {
        let mut map = Map::new();
        while let Some(line) = self.peek() {
            if line.indent < indent {
                break;
            }
            if line.indent > indent || is_sequence_item(line.text) {
                return None;
            }
            let (key, rest) = split_key(line.text)?;
            self.pos += 1;
            let value = if rest.is_empty() {
                self.nested_value(indent)?
            } else {
                let value = scalar(rest)?;
                self.scalar_ends(indent)?;
                value
            };
            if map.insert(key, value).is_some() {
                return None;
            }
        }
        Some(Value::Object(map))
    }

    fn sequence(&mut self, indent: usize) -> Option<Value> {
        let mut items = Vec::new();
        while let Some(line) = self.peek() {
            if line.indent < indent || (line.indent == indent && !is_sequence_item(line.text)) {
                break;
            }
            if line.indent > indent {
                return None;
            }
            let after_dash = &line.text[1..];
            let content = after_dash.trim_start_matches(' ');
            if content.is_empty() || content.starts_with('#') {
                self.pos += 1;
                items.push(match self.peek() {
                    Some(next) if next.indent > indent => self.node(next.indent)?,
                    _ => Value::Null,
                });
                continue;
            }
            if is_sequence_item(content) {
                return None;
            }
            let column = indent + 1 + (after_dash.len() - content.len());
            if split_key(content).is_some() {
                // `- key: value` opens a mapping whose keys sit at the column after the dash.
                self.lines[self.pos] = Line {
                    indent: column,
                    text: content,
                };
                items.push(self.node(column)?);
            } else {
                self.pos += 1;
                items.push(scalar(content)?);
                self.scalar_ends(indent)?;
            }
        }
        Some(Value::Array(items))
    }
}

/// `key: rest` → (key, rest without a comment); `None` unless the key is a simple word or a
/// simple quoted string and a space or the end of the line follows the colon.
fn split_key(text: &str) -> Option<(String, &str)> {
    let (key, after) = match text.as_bytes().first()? {
        b'"' => {
            let end = text[1..].find('"')? + 1;
            let key = &text[1..end];
            if key.contains('\\') {
                return None;
            }
            (key, &text[end + 1..])
        }
        b'\'' => {
            let end = text[1..].find('\'')? + 1;
            if text[end + 1..].starts_with('\'') {
                return None;
            }
            (&text[1..end], &text[end + 1..])
        }
        _ => {
            let colon = text.find(':')?;
            let key = &text[..colon];
            let mut bytes = key.bytes();
            let first_ok = bytes
                .next()
                .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
            let rest_ok =
                bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'/' | b'-'));
            // Keys that would resolve to something other than a string (`null`, `on`,
            // ...) are left to serde-saphyr; all such words are short.
            if !first_ok
                || !rest_ok
                || (key.len() <= LONGEST_SPECIAL_WORD
                    && !matches!(plain_scalar(key), Some(Value::String(_))))
            {
                return None;
            }
            (key, &text[colon..])
        }
    };
    let rest = after.strip_prefix(':')?;
    if !rest.is_empty() && !rest.starts_with(' ') {
        return None;
    }
    let rest = rest.trim_start_matches(' ');
    let rest = if rest.starts_with('#') { "" } else { rest };
    Some((key.to_string(), rest))
}

/// What may follow a quoted scalar on its line: nothing, or blanks and a comment.
fn only_comment_after(rest: &str) -> bool {
    rest.is_empty() || (rest.starts_with(' ') && rest.trim_start_matches(' ').starts_with('#'))
}

/// One scalar written on one line (`text` starts with its first character).
fn scalar(text: &str) -> Option<Value> {
    match text.as_bytes().first()? {
        b'"' => {
            let body = &text[1..];
            let mut out = String::with_capacity(body.len());
            let mut i = 0;
            // Copy the runs between escapes whole.
            while let Some(offset) = body[i..].find(['"', '\\']) {
                out.push_str(&body[i..i + offset]);
                let at = i + offset;
                if body.as_bytes()[at] == b'"' {
                    return only_comment_after(&body[at + 1..]).then_some(Value::String(out));
                }
                out.push(match body.as_bytes().get(at + 1)? {
                    b'\\' => '\\',
                    b'"' => '"',
                    b'/' => '/',
                    b'n' => '\n',
                    b't' => '\t',
                    _ => return None,
                });
                i = at + 2;
            }
            None
        }
        b'\'' => {
            let mut out = String::with_capacity(text.len());
            let body = &text[1..];
            let mut i = 0;
            while let Some(offset) = body[i..].find('\'') {
                out.push_str(&body[i..i + offset]);
                let after = i + offset + 1;
                if body[after..].starts_with('\'') {
                    out.push('\'');
                    i = after + 1;
                } else {
                    return only_comment_after(&body[after..]).then_some(Value::String(out));
                }
            }
            None
        }
        _ => {
            let plain = match text.find(" #") {
                Some(comment) => text[..comment].trim_end_matches(' '),
                None => text,
            };
            match plain {
                "[]" => Some(Value::Array(Vec::new())),
                "{}" => Some(Value::Object(Map::new())),
                _ => plain_scalar(plain),
            }
        }
    }
}

/// The longest word that resolves to something other than a string, or that is left to
/// serde-saphyr (`infinity`).
const LONGEST_SPECIAL_WORD: usize = 8;

/// A plain scalar: a decimal integer without sign or leading zero, a boolean or null as
/// serde-saphyr resolves them (YAML 1.1 booleans, any case), or a word-led string.
fn plain_scalar(text: &str) -> Option<Value> {
    let bytes = text.as_bytes();
    let first = *bytes.first()?;
    if text.contains(": ") || text.ends_with(':') || text.contains('\t') {
        return None;
    }
    if first.is_ascii_digit() {
        let decimal = bytes.iter().all(u8::is_ascii_digit)
            && (first != b'0' || bytes.len() == 1)
            && bytes.len() <= 18;
        return decimal
            .then(|| {
                text.parse::<u64>()
                    .ok()
                    .map(|n| Value::Number(Number::from(n)))
            })
            .flatten();
    }
    if text == "~" {
        return Some(Value::Null);
    }
    if !(first.is_ascii_alphabetic() || first == b'/') {
        return None;
    }
    if text.len() > LONGEST_SPECIAL_WORD {
        return Some(Value::String(text.to_string()));
    }
    const TRUE: [&str; 4] = ["true", "yes", "y", "on"];
    const FALSE: [&str; 4] = ["false", "no", "n", "off"];
    if TRUE.iter().any(|w| text.eq_ignore_ascii_case(w)) {
        return Some(Value::Bool(true));
    }
    if FALSE.iter().any(|w| text.eq_ignore_ascii_case(w)) {
        return Some(Value::Bool(false));
    }
    if matches!(text, "null" | "Null" | "NULL") {
        return Some(Value::Null);
    }
    // Other spellings of null and the words Rust's float parser knows are left to
    // serde-saphyr rather than reasoned about here.
    const UNSURE: [&str; 4] = ["null", "inf", "infinity", "nan"];
    if UNSURE.iter().any(|w| text.eq_ignore_ascii_case(w)) {
        return None;
    }
    Some(Value::String(text.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn saphyr(text: &str) -> Option<Value> {
        serde_saphyr::from_str_with_options(text, super::super::yaml::saphyr_options()).ok()
    }

    /// The invariant: the fast path agrees with serde-saphyr or stays out.
    fn agree(text: &str) -> Option<Value> {
        let fast = parse_document(text);
        if let Some(value) = &fast {
            assert_eq!(
                Some(value),
                saphyr(text).as_ref(),
                "fast path disagrees with serde-saphyr on:\n{text}"
            );
        }
        fast
    }

    #[test]
    fn golden_manifests_take_the_fast_path() {
        let text = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web   # trailing comment
  labels:
    app.kubernetes.io/name: web
  annotations:
    "quoted key": 'it''s'
    note: "a \"quoted\" value"
spec:
  replicas: 3
  paused: false
  selector:
    matchLabels: {}
  template:
    spec:
      containers:
      - name: web
        image: nginx:1.27
        args: []
        env:
        -   name: A
            value: "1"
        - name: EMPTY
          value:
      volumes:
        - name: data
          emptyDir: {}
      nothing: ~
"#;
        let value = agree(text).expect("fast path");
        assert_eq!(value["spec"]["replicas"], 3);
        assert_eq!(
            value["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"],
            "1"
        );
        assert_eq!(value["metadata"]["annotations"]["quoted key"], "it's");
        assert!(value["spec"]["template"]["spec"]["nothing"].is_null());
    }

    #[test]
    fn everything_else_is_left_to_serde_saphyr() {
        for text in [
            "a: &x 1\nb: *x\n",
            "a: !!str 1\n",
            "a: |\n  text\n",
            "a: >\n  text\n",
            "a: [1, 2]\n",
            "a: {b: 1}\n",
            "a: 1.5\n",
            "a: -1\n",
            "a: 0123\n",
            "a: 0x1f\n",
            "a: .inf\n",
            "a: nan\n",
            "a: nUll\n",
            "a: 2024-01-02\n",
            "a: b\n  continued\n",
            "a: 1\na: 2\n",
            "a:\tb\n",
            "\ta: 1\n",
            "a: \"multi\n  line\"\n",
            "a: \"\\x41\"\n",
            "- - nested\n",
            "? complex\n: key\n",
            "<<: {a: 1}\n",
            "a: b: c\n",
            "  indented: root\n",
            "a: 'unterminated\n",
            "just a scalar\n",
            "a:\n  - 1\n - 2\n",
        ] {
            assert_eq!(agree(text), None, "{text:?}");
        }
    }

    #[test]
    fn scalars_resolve_like_serde_saphyr() {
        for word in [
            "true",
            "True",
            "TRUE",
            "yes",
            "Yes",
            "y",
            "Y",
            "on",
            "On",
            "false",
            "no",
            "N",
            "off",
            "OFF",
            "null",
            "Null",
            "NULL",
            "~",
            "0",
            "7",
            "42",
            "123456789012345678",
            "word",
            "/path/to",
            "nginx:1.0",
            "http://x.example/a?b=c#frag",
            "a #comment",
            "a#b",
            "Infinite",
            "yesterday",
            "onion",
            "\"\"",
            "''",
            "'a''b'",
            "\"tab\\there\"",
        ] {
            let text = format!("k: {word}\n");
            assert!(agree(&text).is_some(), "{text:?} should take the fast path");
        }
    }

    /// YAML text for a generated tree, in randomly chosen but valid layouts.
    #[derive(Debug, Clone)]
    enum Node {
        Scalar(String),
        Map(Vec<(String, Node)>),
        Seq(Vec<Node>),
    }

    fn scalar_text() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::sample::select(vec![
                "true",
                "False",
                "yes",
                "NO",
                "on",
                "Off",
                "y",
                "n",
                "null",
                "Null",
                "~",
                "0",
                "1",
                "00",
                "01",
                "-1",
                "+1",
                "1.5",
                "1e3",
                ".inf",
                "-.inf",
                ".nan",
                "nan",
                "inf",
                "Infinity",
                "0x10",
                "0o7",
                "1_000",
                "2024-01-02",
                "12:30",
                "word",
                "two words",
                "nginx:1.27",
                "a:b",
                "a: b",
                "a #c",
                "a#c",
                "/abs",
                "[]",
                "{}",
                "[a]",
                "{a: 1}",
                "''",
                "\"\"",
                "'x''y'",
                "\"q\\\"q\"",
                "\"\\n\"",
                "\"\\u0041\"",
                "&a x",
                "*a",
                "!!str 1",
                "| x",
                "> x",
                "@x",
                "`x`",
                "%x",
                "-",
                "- x",
                "?",
                "?x",
                ":x",
                "x:",
                "é",
                "日本",
                "Yes please",
                "NULL!",
                "nUll",
            ])
            .prop_map(str::to_string),
            "[a-zA-Z][a-zA-Z0-9 ._/:#-]{0,12}",
            "[0-9]{1,20}",
        ]
    }

    fn key_text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z][a-zA-Z0-9._/-]{0,10}",
            prop::sample::select(vec![
                "\"quoted key\"",
                "'single key'",
                "1",
                "-x",
                "<<",
                "a b",
                "\"k\\\"\"",
                "on",
                "null",
            ])
            .prop_map(str::to_string),
        ]
    }

    fn node() -> impl Strategy<Value = Node> {
        let leaf = scalar_text().prop_map(Node::Scalar);
        leaf.prop_recursive(5, 40, 5, |inner| {
            prop_oneof![
                prop::collection::vec((key_text(), inner.clone()), 0..5).prop_map(Node::Map),
                prop::collection::vec(inner, 0..5).prop_map(Node::Seq),
            ]
        })
    }

    /// Writes `node` as the value of something at `indent`; `style` bits pick layouts
    /// (sequence under a key at the key's indentation or deeper, extra spaces after `-`,
    /// comments).
    fn write(node: &Node, indent: usize, style: u32, out: &mut String) {
        let pad = " ".repeat(indent);
        match node {
            Node::Scalar(s) => {
                out.push(' ');
                out.push_str(s);
                if style & 8 != 0 {
                    out.push_str("  # note");
                }
                out.push('\n');
            }
            Node::Map(entries) if entries.is_empty() => out.push_str(" {}\n"),
            Node::Seq(items) if items.is_empty() => out.push_str(" []\n"),
            Node::Map(entries) => {
                out.push('\n');
                for (key, value) in entries {
                    out.push_str(&pad);
                    out.push_str(key);
                    out.push(':');
                    write(value, indent + 2, style.rotate_left(3), out);
                }
            }
            Node::Seq(items) => {
                out.push('\n');
                let dash_pad = if style & 1 != 0 && indent >= 2 {
                    " ".repeat(indent - 2)
                } else {
                    pad.clone()
                };
                let gap = if style & 2 != 0 { "   " } else { " " };
                for item in items {
                    out.push_str(&dash_pad);
                    out.push('-');
                    match item {
                        Node::Map(entries) if !entries.is_empty() && style & 4 != 0 => {
                            // compact `- key: value`
                            let column = dash_pad.len() + 1 + gap.len();
                            for (i, (key, value)) in entries.iter().enumerate() {
                                if i == 0 {
                                    out.push_str(gap);
                                } else {
                                    out.push_str(&" ".repeat(column));
                                }
                                out.push_str(key);
                                out.push(':');
                                write(value, column + 2, style.rotate_left(5), out);
                            }
                        }
                        other => write(other, dash_pad.len() + 2, style.rotate_left(7), out),
                    }
                }
            }
        }
    }

    /// Trees inside the supported subset: unique word keys, scalars the fast path reads.
    fn safe_node() -> impl Strategy<Value = Node> {
        let leaf = prop::sample::select(vec![
            "true",
            "no",
            "Off",
            "~",
            "null",
            "0",
            "42",
            "word",
            "two words",
            "nginx:1.27",
            "/abs",
            "[]",
            "{}",
            "''",
            "'x''y'",
            "\"q\\\"q\"",
            "a #c",
            "http://x/y#z",
        ])
        .prop_map(|s| Node::Scalar(s.to_string()));
        leaf.prop_recursive(5, 40, 5, |inner| {
            prop_oneof![
                prop::collection::vec(("[a-z][a-z0-9._/-]{1,8}", inner.clone()), 1..5).prop_map(
                    |entries| Node::Map(
                        entries
                            .into_iter()
                            .enumerate()
                            .map(|(i, (k, v))| (format!("{k}{i}"), v))
                            .collect()
                    )
                ),
                prop::collection::vec(inner, 1..5).prop_map(Node::Seq),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Documents inside the subset do take the fast path (and agree).
        #[test]
        fn the_subset_takes_the_fast_path(
            entries in prop::collection::vec(("[a-z][a-z0-9._/-]{1,8}", safe_node()), 1..6),
            style in any::<u32>(),
        ) {
            let mut text = String::new();
            for (i, (key, value)) in entries.iter().enumerate() {
                text.push_str(&format!("{key}{i}:"));
                write(value, 2, style, &mut text);
            }
            prop_assert!(agree(&text).is_some(), "fast path refused:\n{}", text);
        }

        /// Generated documents: whenever the fast path answers, serde-saphyr gives the same
        /// value.
        #[test]
        fn fast_path_agrees_with_serde_saphyr(
            entries in prop::collection::vec((key_text(), node()), 1..6),
            style in any::<u32>(),
        ) {
            let mut text = String::new();
            for (key, value) in &entries {
                text.push_str(key);
                text.push(':');
                write(value, 2, style, &mut text);
            }
            agree(&text);
        }

        /// Arbitrary lines of YAML-ish text: never a disagreement.
        #[test]
        fn fast_path_agrees_on_noise(
            lines in prop::collection::vec(
                ("[ ]{0,6}", prop::sample::select(vec!["a:", "b: 1", "- ", "-", "c: x y", "d: 'q'", "e: \"w\"", "# c", "f: []", "- g: h", "  ", "i: yes", "j:  k  # l", "m: n:o", "\t", "p: ~"])),
                1..12,
            ),
        ) {
            let text: String = lines.iter().map(|(pad, t)| format!("{pad}{t}\n")).collect();
            agree(&text);
        }
    }
}
