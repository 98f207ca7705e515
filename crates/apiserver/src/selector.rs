//! Label and field selectors, as in `?labelSelector=` and `?fieldSelector=`. Pure.

use std::collections::BTreeMap;

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// `key=value` or `key==value`.
    Equals(String, String),
    /// `key!=value` (also true when the key is absent).
    NotEquals(String, String),
    /// `key in (a,b)`.
    In(String, Vec<String>),
    /// `key notin (a,b)` (also true when the key is absent).
    NotIn(String, Vec<String>),
    /// `key`.
    Exists(String),
    /// `!key`.
    DoesNotExist(String),
}

/// A parsed label selector: all requirements must hold.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LabelSelector {
    pub requirements: Vec<Requirement>,
}

/// Why a selector did not parse (the message kubectl shows).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unable to parse requirement: {0}")]
pub struct SelectorError(pub String);

fn split_top_level(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

fn check_key(key: &str, whole: &str) -> Result<String, SelectorError> {
    let errors = crate::validation::label_key_errors(key);
    if key.is_empty() || !errors.is_empty() {
        let why = if key.is_empty() {
            "name part must be non-empty".to_string()
        } else {
            errors.join("; ")
        };
        return Err(SelectorError(format!(
            "<nil>: Invalid value: {:?}: {why} (in {whole:?})",
            key
        )));
    }
    Ok(key.to_string())
}

fn check_value(value: &str, whole: &str) -> Result<String, SelectorError> {
    let errors = crate::validation::label_value_errors(value);
    if !errors.is_empty() {
        return Err(SelectorError(format!(
            "values[0]: Invalid value: {value:?}: {} (in {whole:?})",
            errors.join("; ")
        )));
    }
    Ok(value.to_string())
}

/// A value that starts with one of the lexer's symbols is not an identifier: Kubernetes
/// reports the symbol it found (`found '=', expected: identifier` for `a===b`).
fn value_token(value: &str, whole: &str) -> Result<String, SelectorError> {
    let symbol = ["==", "!=", "=", "!", "(", ")", "<", ">"]
        .into_iter()
        .find(|s| value.starts_with(s));
    match symbol {
        Some(symbol) => Err(SelectorError(format!(
            "found '{symbol}', expected: identifier"
        ))),
        None => check_value(value, whole),
    }
}

fn parse_set(rest: &str, whole: &str) -> Result<Vec<String>, SelectorError> {
    let rest = rest.trim();
    let inner = rest
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| {
            SelectorError(format!(
                "found '{rest}', expected: '(' ... ')' in {whole:?}"
            ))
        })?;
    inner
        .split(',')
        .map(|v| check_value(v.trim(), whole))
        .collect()
}

impl LabelSelector {
    /// Parses `a=b,c!=d,e in (f,g),!h`.
    pub fn parse(input: &str) -> Result<LabelSelector, SelectorError> {
        let mut requirements = Vec::new();
        if input.trim().is_empty() {
            return Ok(LabelSelector { requirements });
        }
        for raw in split_top_level(input) {
            let part = raw.trim();
            if part.is_empty() {
                return Err(SelectorError(format!(
                    "found '', expected: !, identifier, or 'end of string' in {input:?}"
                )));
            }
            if let Some(key) = part.strip_prefix('!') {
                requirements.push(Requirement::DoesNotExist(check_key(key.trim(), input)?));
                continue;
            }
            if let Some((k, v)) = part.split_once("!=") {
                requirements.push(Requirement::NotEquals(
                    check_key(k.trim(), input)?,
                    value_token(v.trim(), input)?,
                ));
                continue;
            }
            if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                requirements.push(Requirement::Equals(
                    check_key(k.trim(), input)?,
                    value_token(v.trim(), input)?,
                ));
                continue;
            }
            let words: Vec<&str> = part.splitn(2, char::is_whitespace).collect();
            if words.len() == 2 {
                let key = check_key(words[0], input)?;
                let rest = words[1].trim_start();
                if let Some(set) = rest.strip_prefix("notin") {
                    requirements.push(Requirement::NotIn(key, parse_set(set, input)?));
                    continue;
                }
                if let Some(set) = rest.strip_prefix("in") {
                    requirements.push(Requirement::In(key, parse_set(set, input)?));
                    continue;
                }
                return Err(SelectorError(format!(
                    "found '{rest}', expected: in, notin, =, ==, !=, gt, lt in {input:?}"
                )));
            }
            if part.contains(['(', ')', ' ', '<', '>']) {
                return Err(SelectorError(format!(
                    "found '{part}', expected: identifier in {input:?}"
                )));
            }
            requirements.push(Requirement::Exists(check_key(part, input)?));
        }
        Ok(LabelSelector { requirements })
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    pub fn matches<L: Labels + ?Sized>(&self, labels: &L) -> bool {
        let has =
            |k: &str, vs: &[String]| labels.label(k).is_some_and(|l| vs.iter().any(|v| v == l));
        self.requirements.iter().all(|r| match r {
            Requirement::Equals(k, v) => labels.label(k) == Some(v.as_str()),
            Requirement::NotEquals(k, v) => labels.label(k) != Some(v.as_str()),
            Requirement::In(k, vs) => has(k, vs),
            Requirement::NotIn(k, vs) => !has(k, vs),
            Requirement::Exists(k) => labels.label(k).is_some(),
            Requirement::DoesNotExist(k) => labels.label(k).is_none(),
        })
    }
}

/// Where a selector looks labels up: a map, or the compact list the store keeps.
pub trait Labels {
    fn label(&self, key: &str) -> Option<&str>;
}

impl Labels for BTreeMap<String, String> {
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
}

/// A compact label set: a few pairs, searched linearly (objects carry a handful).
impl Labels for [(Box<str>, Box<str>)] {
    fn label(&self, key: &str) -> Option<&str> {
        self.iter().find(|(k, _)| &**k == key).map(|(_, v)| &**v)
    }
}

/// A field selector over `metadata.name`, `metadata.namespace` and the per-kind fields a
/// resource allows (e.g. an Event's `involvedObject.uid`, which `kubectl describe` uses).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldSelector {
    /// (field, value, equal?)
    pub terms: Vec<(Field, String, bool)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    Name,
    Namespace,
    /// A dotted path into the object (`involvedObject.kind`, `spec.nodeName`).
    Path(String),
}

/// A field selector that did not parse or names an unsupported field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldSelectorError {
    #[error("invalid selector: '{0}'; can't understand '{1}'")]
    Syntax(String, String),
    #[error(
        "\"{0}\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\""
    )]
    Unsupported(String),
}

impl FieldSelector {
    /// Parses a selector over `metadata.name` and `metadata.namespace` only.
    pub fn parse(input: &str) -> Result<FieldSelector, FieldSelectorError> {
        Self::parse_with(input, &[])
    }

    /// Parses a selector that may also use the `extra` field paths.
    pub fn parse_with(input: &str, extra: &[&str]) -> Result<FieldSelector, FieldSelectorError> {
        let mut terms = Vec::new();
        if input.trim().is_empty() {
            return Ok(FieldSelector { terms });
        }
        for raw in input.split(',') {
            let part = raw.trim();
            let (field, value, equal) = if let Some((f, v)) = part.split_once("!=") {
                (f, v, false)
            } else if let Some((f, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                (f, v, true)
            } else {
                return Err(FieldSelectorError::Syntax(
                    input.to_string(),
                    part.to_string(),
                ));
            };
            let field = match field.trim() {
                "metadata.name" => Field::Name,
                "metadata.namespace" => Field::Namespace,
                other if extra.contains(&other) => Field::Path(other.to_string()),
                other => return Err(FieldSelectorError::Unsupported(other.to_string())),
            };
            terms.push((field, value.trim().to_string(), equal));
        }
        Ok(FieldSelector { terms })
    }

    /// Whether matching needs the object's content (not just its namespace and name).
    pub fn needs_object(&self) -> bool {
        self.terms
            .iter()
            .any(|(f, _, _)| matches!(f, Field::Path(_)))
    }

    /// Matches on namespace and name; path terms never match without the object.
    pub fn matches(&self, namespace: &str, name: &str) -> bool {
        self.matches_object(namespace, name, None)
    }

    /// Matches with the object at hand for path terms (a missing field reads as "").
    pub fn matches_object(
        &self,
        namespace: &str,
        name: &str,
        object: Option<&serde_json::Value>,
    ) -> bool {
        self.terms.iter().all(|(field, value, equal)| {
            let actual: String = match field {
                Field::Name => name.to_string(),
                Field::Namespace => namespace.to_string(),
                Field::Path(path) => {
                    let Some(object) = object else { return false };
                    let mut cur = Some(object);
                    for part in path.split('.') {
                        cur = cur.and_then(|c| c.get(part));
                    }
                    match cur {
                        Some(serde_json::Value::String(s)) => s.clone(),
                        Some(serde_json::Value::Null) | None => String::new(),
                        Some(other) => other.to_string(),
                    }
                }
            };
            (actual == *value) == *equal
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn golden_selectors() {
        let l = labels(&[("app", "web"), ("tier", "front"), ("example.com/team", "a")]);
        for (sel, want) in [
            ("app=web", true),
            ("app==web", true),
            ("app!=web", false),
            ("app!=db", true),
            ("missing!=x", true),
            ("app in (web,db)", true),
            ("app in (db)", false),
            ("app notin (db)", true),
            ("missing notin (db)", true),
            ("app", true),
            ("!app", false),
            ("!missing", true),
            ("app=web,tier=front", true),
            ("app=web,tier=back", false),
            ("example.com/team=a", true),
            ("app in (web, db),!missing,tier", true),
            ("", true),
        ] {
            let parsed = LabelSelector::parse(sel).unwrap_or_else(|e| panic!("{sel}: {e}"));
            assert_eq!(parsed.matches(&l), want, "{sel}");
        }
    }

    #[test]
    fn bad_selectors_are_errors() {
        for sel in [
            "app=web,",
            "a b c",
            "app in web",
            "x=(",
            "Bad Key=1",
            "app=va lue",
            "-x=1",
            "=v",
        ] {
            assert!(LabelSelector::parse(sel).is_err(), "{sel} should not parse");
        }
        // kube-apiserver's words, recorded: the lexer's symbol where a value must be.
        assert_eq!(
            LabelSelector::parse("app===web").unwrap_err().to_string(),
            "unable to parse requirement: found '=', expected: identifier"
        );
        assert_eq!(
            LabelSelector::parse("app!=!web").unwrap_err().to_string(),
            "unable to parse requirement: found '!', expected: identifier"
        );
    }

    #[test]
    fn field_selectors() {
        let s = FieldSelector::parse("metadata.name=a,metadata.namespace!=kube-system").unwrap();
        assert!(s.matches("default", "a"));
        assert!(!s.matches("kube-system", "a"));
        assert!(!s.matches("default", "b"));
        assert_eq!(
            FieldSelector::parse("spec.foo=1"),
            Err(FieldSelectorError::Unsupported("spec.foo".into()))
        );
        assert!(FieldSelector::parse("metadata.name").is_err());
        let ev = FieldSelector::parse_with(
            "involvedObject.kind=ConfigMap,type!=Warning",
            &["involvedObject.kind", "type"],
        )
        .unwrap();
        assert!(ev.needs_object());
        let event = serde_json::json!({"involvedObject": {"kind": "ConfigMap"}, "type": "Normal"});
        assert!(ev.matches_object("ns", "e", Some(&event)));
        assert!(!ev.matches_object(
            "ns",
            "e",
            Some(&serde_json::json!({"involvedObject": {"kind": "Pod"}}))
        ));
        assert!(!ev.matches("ns", "e"));
    }

    proptest! {
        #[test]
        fn equality_selector_matches_exactly_its_label(k in "[a-z][a-z0-9]{0,10}", v in "[a-z0-9]{1,10}", other in "[a-z0-9]{1,10}") {
            let sel = LabelSelector::parse(&format!("{k}={v}")).unwrap();
            prop_assert!(sel.matches(&labels(&[(&k, &v)])));
            prop_assert_eq!(sel.matches(&labels(&[(&k, &other)])), v == other);
            let neg = LabelSelector::parse(&format!("{k}!={v}")).unwrap();
            prop_assert_eq!(neg.matches(&labels(&[(&k, &other)])), v != other);
        }
    }
}
