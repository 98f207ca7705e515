//! Reading a YAML (or JSON) stream into Kubernetes objects, each with the file and line it
//! starts at: multi-document streams, `List` kinds flattened, empty documents skipped.

use serde_json::Value;

use super::{Manifest, RenderError};

/// Splits a YAML stream at document markers (`---` at column 0), returning each document's
/// text with the 1-based line its content starts on.
pub fn split_documents(text: &str) -> Vec<(u64, &str)> {
    let mut docs = Vec::new();
    let mut start = 0usize;
    let mut start_line = 1u64;
    let mut offset = 0usize;
    for (index, line) in text.split_inclusive('\n').enumerate() {
        let bare = line.trim_end_matches(['\n', '\r']);
        let is_marker =
            bare == "---" || bare.starts_with("--- ") || bare.starts_with("---\t") || bare == "...";
        if is_marker {
            docs.push((start_line, &text[start..offset]));
            // Content after `--- ` on the same line belongs to the next document.
            let inline = if bare.len() > 3 && bare.starts_with("---") {
                3
            } else {
                line.len()
            };
            start = offset + inline;
            start_line = index as u64 + if inline == line.len() { 2 } else { 1 };
        }
        offset += line.len();
    }
    docs.push((start_line, &text[start..]));
    docs
}

fn is_blank(doc: &str) -> bool {
    doc.lines().all(|l| {
        let t = l.trim();
        t.is_empty() || t.starts_with('#') || t.starts_with('%')
    })
}

pub(super) fn saphyr_options() -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_depth = 256;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    options.with_snippet = false;
    options
}

/// The first line of a parser message, without a location it repeats.
fn short_message(message: &str) -> String {
    message.lines().next().unwrap_or(message).trim().to_string()
}

/// Parses a YAML stream from `file` (a repository-relative path used in messages and on the
/// objects). `line_offset` shifts reported lines (for text cut out of a larger file).
pub fn parse_stream(text: &str, file: &str, out: &mut Vec<Manifest>) -> Result<(), RenderError> {
    parse_stream_with(text, file, true, out)
}

/// [`parse_stream`], with the fast path for plain block YAML ([`super::yaml_fast`]) on or
/// off (off: every document goes through serde-saphyr).
pub fn parse_stream_with(
    text: &str,
    file: &str,
    fast_path: bool,
    out: &mut Vec<Manifest>,
) -> Result<(), RenderError> {
    for (start_line, doc) in split_documents(text) {
        if is_blank(doc) {
            continue;
        }
        // Plain block YAML is read by the fast path; anything else (and every error) by
        // serde-saphyr.
        if let Some(value) = fast_path
            .then(|| super::yaml_fast::parse_document(doc))
            .flatten()
        {
            push_objects(value, file, Some(start_line), out)?;
            continue;
        }
        let value: Value = match serde_saphyr::from_str_with_options(doc, saphyr_options()) {
            Ok(v) => v,
            Err(e) => {
                let line = e
                    .location()
                    .map(|l| start_line + l.line().saturating_sub(1))
                    .unwrap_or(start_line);
                return Err(RenderError::Yaml {
                    file: file.to_string(),
                    line,
                    message: short_message(&e.to_string()),
                });
            }
        };
        push_objects(value, file, Some(start_line), out)?;
    }
    Ok(())
}

/// Parses a JSON file: one object, a `List`, or an array of objects.
pub fn parse_json(text: &str, file: &str, out: &mut Vec<Manifest>) -> Result<(), RenderError> {
    let value: Value = serde_json::from_str(text).map_err(|e| RenderError::Yaml {
        file: file.to_string(),
        line: e.line() as u64,
        message: e.to_string(),
    })?;
    push_objects(value, file, Some(1), out)
}

/// Adds `value` as objects: `null` skipped, arrays and `*List` kinds flattened, anything
/// that is not an object with a `kind` refused with its location.
pub fn push_objects(
    value: Value,
    file: &str,
    line: Option<u64>,
    out: &mut Vec<Manifest>,
) -> Result<(), RenderError> {
    match value {
        Value::Null => Ok(()),
        Value::Array(items) => {
            for item in items {
                push_objects(item, file, line, out)?;
            }
            Ok(())
        }
        Value::Object(mut map) => {
            let kind = map.get("kind").and_then(Value::as_str).unwrap_or_default();
            if kind.is_empty() {
                return Err(RenderError::NotAnObject {
                    file: file.to_string(),
                    line,
                    message: "object has no 'kind'".to_string(),
                });
            }
            if kind.ends_with("List") && map.get("items").is_some_and(Value::is_array) {
                if let Some(Value::Array(items)) = map.remove("items") {
                    for item in items {
                        push_objects(item, file, line, out)?;
                    }
                }
                return Ok(());
            }
            if map
                .get("apiVersion")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                return Err(RenderError::NotAnObject {
                    file: file.to_string(),
                    line,
                    message: format!("{kind} has no 'apiVersion'"),
                });
            }
            out.push(Manifest {
                object: Value::Object(map),
                file: file.to_string(),
                line,
            });
            Ok(())
        }
        other => Err(RenderError::NotAnObject {
            file: file.to_string(),
            line,
            message: format!(
                "document is a {}, not a Kubernetes object",
                type_name(&other)
            ),
        }),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "mapping",
        Value::Null => "null",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<Manifest>, RenderError> {
        let mut out = Vec::new();
        parse_stream(text, "f.yaml", &mut out).map(|_| out)
    }

    #[test]
    fn documents_keep_their_lines() {
        let text = "# header\napiVersion: v1\nkind: A\nmetadata: {name: a}\n---\n---\n# only a comment\n---\napiVersion: v1\nkind: B\n--- \n...\n";
        let docs = parse(text).expect("parse");
        let kinds: Vec<_> = docs
            .iter()
            .map(|m| (m.object["kind"].clone(), m.line))
            .collect();
        assert_eq!(
            kinds,
            [(Value::from("A"), Some(1)), (Value::from("B"), Some(9))]
        );
    }

    #[test]
    fn lists_are_flattened() {
        let text = "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: a}}\n- apiVersion: v1\n  kind: ConfigMapList\n  items: [{apiVersion: v1, kind: Secret}]\n";
        let docs = parse(text).expect("parse");
        let kinds: Vec<_> = docs
            .iter()
            .map(|m| m.object["kind"].as_str().unwrap_or(""))
            .collect();
        assert_eq!(kinds, ["ConfigMap", "Secret"]);
    }

    #[test]
    fn malformed_yaml_names_file_and_line() {
        let text =
            "apiVersion: v1\nkind: A\n---\napiVersion: v1\nkind: B\nmetadata:\n  name: [unclosed\n";
        let err = parse(text).expect_err("malformed");
        match &err {
            RenderError::Yaml { file, line, .. } => {
                assert_eq!(file, "f.yaml");
                assert!((4..=8).contains(line), "line {line}: {err}");
            }
            other => panic!("{other}"),
        }
        assert!(err.to_string().starts_with("f.yaml:"), "{err}");
    }

    #[test]
    fn non_objects_are_refused() {
        assert!(matches!(
            parse("just a string\n"),
            Err(RenderError::NotAnObject { .. })
        ));
        assert!(matches!(
            parse("metadata: {}\n"),
            Err(RenderError::NotAnObject { .. })
        ));
        assert!(matches!(
            parse("kind: X\n"),
            Err(RenderError::NotAnObject { .. })
        ));
    }

    proptest::proptest! {
        /// Any number of documents separated by markers come back in order, one object each,
        /// each starting on the line it was written on.
        #[test]
        fn split_round_trip(names in proptest::collection::vec("obj-[a-z]{1,8}", 1..20), blank in proptest::collection::vec(0usize..3, 20)) {
            let mut text = String::new();
            let mut want = Vec::new();
            let mut line = 1u64;
            for (i, name) in names.iter().enumerate() {
                for _ in 0..blank[i] { text.push_str("---\n"); line += 1; }
                want.push((name.clone(), line));
                text.push_str(&format!("apiVersion: v1\nkind: K\nmetadata:\n  name: {name}\n---\n"));
                line += 5;
            }
            let docs = parse(&text).expect("parse");
            let got: Vec<_> = docs.iter().map(|m| (m.object["metadata"]["name"].as_str().unwrap_or("").to_string(), m.line.unwrap_or(0))).collect();
            proptest::prop_assert_eq!(got, want);
        }
    }
}
