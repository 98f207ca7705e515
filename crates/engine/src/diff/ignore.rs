//! `ignoreDifferences`: JSON pointers, jq path expressions (run with jaq as `del(expr)`, as
//! Argo CD runs them with gojq) and fields owned by listed field managers.

use crate::settings::glob_match;
use plumb_model::{ResourceIgnoreDifferences, ResourceKey};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IgnoreError {
    #[error("ignoreDifferences jqPathExpression {expression:?}: {message}")]
    Jq { expression: String, message: String },
    #[error("ignoreDifferences jsonPointer {0:?} does not start with '/'")]
    Pointer(String),
}

/// The rules of one Application plus the system-wide ones from `argocd-cm`.
#[derive(Debug, Clone, Default)]
pub struct IgnoreRules {
    rules: Vec<ResourceIgnoreDifferences>,
}

impl IgnoreRules {
    /// Checks every expression up front, so a typo is reported where it was written.
    pub fn new(
        rules: impl IntoIterator<Item = ResourceIgnoreDifferences>,
    ) -> Result<Self, IgnoreError> {
        let rules: Vec<_> = rules.into_iter().collect();
        for rule in &rules {
            for pointer in &rule.json_pointers {
                if !pointer.is_empty() && !pointer.starts_with('/') {
                    return Err(IgnoreError::Pointer(pointer.clone()));
                }
            }
            for expression in &rule.jq_path_expressions {
                compile_deletion(expression)?;
            }
        }
        Ok(Self { rules })
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    fn matching<'a>(
        &'a self,
        key: &'a ResourceKey,
    ) -> impl Iterator<Item = &'a ResourceIgnoreDifferences> + 'a {
        self.rules.iter().filter(move |rule| {
            glob_match(&rule.group, &key.group)
                && glob_match(&rule.kind, &key.kind)
                && (rule.name.is_empty() || glob_match(&rule.name, &key.name))
                && (rule.namespace.is_empty() || glob_match(&rule.namespace, &key.namespace))
        })
    }

    /// Removes ignored fields from `object`. `live` supplies `managedFields` for the
    /// managers rule (it may be the object itself).
    pub fn apply(
        &self,
        key: &ResourceKey,
        object: &mut Value,
        live: Option<&Value>,
    ) -> Result<(), IgnoreError> {
        for rule in self.matching(key) {
            for pointer in &rule.json_pointers {
                remove_pointer(object, pointer);
            }
            for expression in &rule.jq_path_expressions {
                *object = run_deletion(expression, object)?;
            }
            if !rule.managed_fields_managers.is_empty()
                && let Some(live) = live
            {
                for path in managed_paths(live, &rule.managed_fields_managers) {
                    remove_path(object, &path);
                }
            }
        }
        Ok(())
    }

    /// Copies the live values of ignored fields into `desired`, so a sync leaves them as they
    /// are (`RespectIgnoreDifferences`). JSON pointer and manager rules are honoured;
    /// jq rules remove the field from what is applied instead (the server keeps its value
    /// because plumb's apply then does not own it).
    pub fn respect(
        &self,
        key: &ResourceKey,
        desired: &mut Value,
        live: &Value,
    ) -> Result<(), IgnoreError> {
        for rule in self.matching(key) {
            for pointer in &rule.json_pointers {
                match live.pointer(pointer) {
                    Some(value) => set_pointer(desired, pointer, value.clone()),
                    None => remove_pointer(desired, pointer),
                }
            }
            for expression in &rule.jq_path_expressions {
                *desired = run_deletion(expression, desired)?;
            }
            for path in managed_paths(live, &rule.managed_fields_managers) {
                remove_path(desired, &path);
            }
        }
        Ok(())
    }
}

fn unescape_token(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

/// Removes the value at a JSON pointer, if present.
pub fn remove_pointer(object: &mut Value, pointer: &str) {
    let Some((parent, last)) = pointer.rsplit_once('/') else {
        return;
    };
    let last = unescape_token(last);
    let Some(container) = (if parent.is_empty() {
        Some(object)
    } else {
        object.pointer_mut(parent)
    }) else {
        return;
    };
    match container {
        Value::Object(map) => {
            map.remove(&last);
        }
        Value::Array(items) => {
            if let Ok(index) = last.parse::<usize>()
                && index < items.len()
            {
                items.remove(index);
            }
        }
        _ => {}
    }
}

/// Sets the value at a JSON pointer, creating missing objects along the way.
fn set_pointer(object: &mut Value, pointer: &str, value: Value) {
    let tokens: Vec<String> = pointer.split('/').skip(1).map(unescape_token).collect();
    let mut current = object;
    for (index, token) in tokens.iter().enumerate() {
        let last = index + 1 == tokens.len();
        current = match current {
            Value::Object(map) => {
                if last {
                    map.insert(token.clone(), value);
                    return;
                }
                map.entry(token.clone())
                    .or_insert_with(|| Value::Object(Default::default()))
            }
            Value::Array(items) => match token.parse::<usize>() {
                Ok(i) if i < items.len() => {
                    if last {
                        items[i] = value;
                        return;
                    }
                    &mut items[i]
                }
                _ => return,
            },
            _ => return,
        };
    }
}

type JqFilter = jaq_core::Filter<jaq_core::data::JustLut<jaq_json::Val>>;

fn compile_deletion(expression: &str) -> Result<JqFilter, IgnoreError> {
    use jaq_core::load::{Arena, File, Loader};
    let code = format!("del({expression})");
    let jq_error = |message: String| IgnoreError::Jq {
        expression: expression.to_string(),
        message,
    };
    let defs = jaq_core::defs()
        .chain(jaq_std::defs())
        .chain(jaq_json::defs());
    let funs = jaq_core::funs()
        .chain(jaq_std::funs())
        .chain(jaq_json::funs());
    let loader = Loader::new(defs);
    let arena = Arena::default();
    let modules = loader
        .load(
            &arena,
            File {
                code: code.as_str(),
                path: (),
            },
        )
        .map_err(|errors| jq_error(format!("does not parse ({} error(s))", errors.len())))?;
    jaq_core::Compiler::default()
        .with_funs(funs)
        .compile(modules)
        .map_err(|errors| jq_error(format!("does not compile ({} error(s))", errors.len())))
}

/// Runs `del(expression)` on a copy of `object`.
fn run_deletion(expression: &str, object: &Value) -> Result<Value, IgnoreError> {
    use jaq_core::{Ctx, Vars, data, unwrap_valr};
    let jq_error = |message: String| IgnoreError::Jq {
        expression: expression.to_string(),
        message,
    };
    let filter = compile_deletion(expression)?;
    let text = serde_json::to_string(object).map_err(|e| jq_error(e.to_string()))?;
    let input = jaq_json::read::parse_single(text.as_bytes())
        .map_err(|e| jq_error(format!("input: {e:?}")))?;
    let ctx = Ctx::<data::JustLut<jaq_json::Val>>::new(&filter.lut, Vars::new([]));
    let mut outputs = filter.id.run((ctx, input)).map(unwrap_valr);
    match outputs.next() {
        Some(Ok(value)) => {
            serde_json::from_str(&value.to_string()).map_err(|e| jq_error(e.to_string()))
        }
        Some(Err(error)) => Err(jq_error(error.to_string())),
        None => Ok(object.clone()),
    }
}

/// One step into an object along a managed-fields path.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldStep {
    Field(String),
    /// A list element identified by its key fields (`k:{"name":"web"}`).
    Key(serde_json::Map<String, Value>),
    /// A set element identified by its value (`v:"x"`).
    Item(Value),
    Index(usize),
}

/// Leaf paths owned by any of `managers` in the object's `metadata.managedFields`.
pub fn managed_paths(live: &Value, managers: &[String]) -> Vec<Vec<FieldStep>> {
    let mut paths = Vec::new();
    if managers.is_empty() {
        return paths;
    }
    for entry in crate::json::array_at(live, &["metadata", "managedFields"]) {
        let manager = crate::json::str_at(entry, &["manager"]);
        if !managers.iter().any(|m| m == manager) {
            continue;
        }
        if let Some(fields) = entry.get("fieldsV1") {
            collect_paths(fields, &mut Vec::new(), &mut paths);
        }
    }
    paths
}

fn collect_paths(fields: &Value, prefix: &mut Vec<FieldStep>, out: &mut Vec<Vec<FieldStep>>) {
    let Value::Object(map) = fields else {
        return;
    };
    for (key, child) in map {
        let step = if let Some(name) = key.strip_prefix("f:") {
            FieldStep::Field(name.to_string())
        } else if let Some(keys) = key.strip_prefix("k:") {
            match serde_json::from_str(keys) {
                Ok(Value::Object(keys)) => FieldStep::Key(keys),
                _ => continue,
            }
        } else if let Some(value) = key.strip_prefix("v:") {
            match serde_json::from_str(value) {
                Ok(value) => FieldStep::Item(value),
                Err(_) => continue,
            }
        } else if let Some(index) = key.strip_prefix("i:") {
            match index.parse() {
                Ok(index) => FieldStep::Index(index),
                Err(_) => continue,
            }
        } else {
            continue;
        };
        prefix.push(step);
        let has_children = child
            .as_object()
            .is_some_and(|m| m.keys().any(|k| k != "."));
        if has_children {
            collect_paths(child, prefix, out);
        } else {
            out.push(prefix.clone());
        }
        prefix.pop();
    }
}

fn element_matches(step: &FieldStep, index: usize, element: &Value) -> bool {
    match step {
        FieldStep::Key(keys) => keys.iter().all(|(k, v)| element.get(k) == Some(v)),
        FieldStep::Item(value) => element == value,
        FieldStep::Index(i) => *i == index,
        FieldStep::Field(_) => false,
    }
}

/// Removes the node at a managed-fields path, if present.
pub fn remove_path(object: &mut Value, path: &[FieldStep]) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    match (object, first) {
        (Value::Object(map), FieldStep::Field(name)) => {
            if rest.is_empty() {
                map.remove(name);
            } else if let Some(child) = map.get_mut(name) {
                remove_path(child, rest);
            }
        }
        (Value::Array(items), step) => {
            let Some(position) = items
                .iter()
                .enumerate()
                .position(|(i, element)| element_matches(step, i, element))
            else {
                return;
            };
            if rest.is_empty() {
                items.remove(position);
            } else {
                remove_path(&mut items[position], rest);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment_key() -> ResourceKey {
        ResourceKey::new("apps", "Deployment", "default", "web")
    }

    #[test]
    fn pointers_jq_and_managers_remove_fields() {
        let rules = IgnoreRules::new([
            ResourceIgnoreDifferences {
                group: "apps".into(),
                kind: "Deployment".into(),
                json_pointers: vec!["/spec/replicas".into()],
                jq_path_expressions: vec![
                    ".spec.template.spec.containers[] | select(.name == \"sidecar\")".into(),
                ],
                ..Default::default()
            },
            ResourceIgnoreDifferences {
                group: "*".into(),
                kind: "*".into(),
                managed_fields_managers: vec!["hpa-controller".into()],
                ..Default::default()
            },
        ])
        .expect("rules");
        let live = json!({
            "metadata": {"managedFields": [{
                "manager": "hpa-controller",
                "fieldsV1": {"f:metadata": {"f:annotations": {"f:scaled": {}}}}
            }], "annotations": {"scaled": "yes", "keep": "1"}},
            "spec": {"replicas": 3, "template": {"spec": {"containers": [
                {"name": "web", "image": "a"}, {"name": "sidecar", "image": "b"}
            ]}}}
        });
        let mut object = live.clone();
        rules
            .apply(&deployment_key(), &mut object, Some(&live))
            .expect("apply");
        assert_eq!(object["spec"].get("replicas"), None);
        assert_eq!(
            object["spec"]["template"]["spec"]["containers"],
            json!([{"name": "web", "image": "a"}])
        );
        assert_eq!(object["metadata"]["annotations"], json!({"keep": "1"}));
        // Rules for other kinds leave a ConfigMap alone (apart from the `*` rule).
        let mut config_map = json!({"spec": {"replicas": 3}});
        rules
            .apply(
                &ResourceKey::new("", "ConfigMap", "default", "c"),
                &mut config_map,
                None,
            )
            .expect("apply");
        assert_eq!(config_map, json!({"spec": {"replicas": 3}}));
    }

    #[test]
    fn bad_jq_is_reported_with_the_expression() {
        let error = IgnoreRules::new([ResourceIgnoreDifferences {
            kind: "Deployment".into(),
            jq_path_expressions: vec![".spec[".into()],
            ..Default::default()
        }])
        .expect_err("bad jq");
        assert!(error.to_string().contains(".spec["), "{error}");
        let error = IgnoreRules::new([ResourceIgnoreDifferences {
            kind: "Deployment".into(),
            json_pointers: vec!["spec/replicas".into()],
            ..Default::default()
        }])
        .expect_err("bad pointer");
        assert!(error.to_string().contains("spec/replicas"), "{error}");
    }

    #[test]
    fn respect_keeps_live_values() {
        let rules = IgnoreRules::new([ResourceIgnoreDifferences {
            group: "apps".into(),
            kind: "Deployment".into(),
            json_pointers: vec!["/spec/replicas".into()],
            ..Default::default()
        }])
        .expect("rules");
        let live = json!({"spec": {"replicas": 7}});
        let mut desired = json!({"spec": {"replicas": 1, "paused": false}});
        rules
            .respect(&deployment_key(), &mut desired, &live)
            .expect("respect");
        assert_eq!(desired, json!({"spec": {"replicas": 7, "paused": false}}));
    }

    #[test]
    fn list_elements_by_key() {
        let mut object = json!({"spec": {"containers": [
            {"name": "a", "image": "x"}, {"name": "b", "image": "y"}
        ]}});
        let path = vec![
            FieldStep::Field("spec".into()),
            FieldStep::Field("containers".into()),
            FieldStep::Key(
                json!({"name": "b"})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            ),
            FieldStep::Field("image".into()),
        ];
        remove_path(&mut object, &path);
        assert_eq!(object["spec"]["containers"][1], json!({"name": "b"}));
    }
}
