//! PATCH semantics: JSON merge patch (RFC 7386), JSON patch (RFC 6902), strategic merge
//! patch (the subset kubectl sends: merge keys of the common built-in lists and the
//! `$patch`, `$setElementOrder`, `$retainKeys`, `$deleteFromPrimitiveList` directives).
//! Server-side apply lives in [`crate::managed`]. Pure.

use serde_json::{Map, Value};

/// Why a patch could not be applied (answered as 422 or 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The JSON patch document is malformed.
    #[error("invalid JSON patch: {0}")]
    Malformed(String),
    /// A JSON patch operation failed (missing path, failed test).
    #[error("the JSON patch operation {index} ({op} {path}) failed: {why}")]
    OperationFailed {
        index: usize,
        op: String,
        path: String,
        why: String,
    },
}

/// RFC 7386 merge patch, shared with the engine's tests through plumb-model.
pub use plumb_model::merge_patch::merge_patch;

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

fn split_pointer(path: &str) -> Result<Vec<String>, String> {
    if path.is_empty() {
        return Ok(vec![]);
    }
    let rest = path
        .strip_prefix('/')
        .ok_or_else(|| format!("path {path:?} must start with '/'"))?;
    Ok(rest.split('/').map(unescape).collect())
}

fn parent_mut<'a>(doc: &'a mut Value, tokens: &[String]) -> Result<&'a mut Value, String> {
    let mut cur = doc;
    for t in tokens {
        cur = match cur {
            Value::Object(m) => m.get_mut(t).ok_or_else(|| format!("missing key {t:?}"))?,
            Value::Array(a) => {
                let i: usize = t
                    .parse()
                    .map_err(|_| format!("{t:?} is not an array index"))?;
                a.get_mut(i)
                    .ok_or_else(|| format!("index {i} out of range"))?
            }
            _ => {
                return Err(format!(
                    "{t:?} is below a value that is neither object nor array"
                ));
            }
        };
    }
    Ok(cur)
}

fn get_at<'a>(doc: &'a Value, tokens: &[String]) -> Result<&'a Value, String> {
    let mut cur = doc;
    for t in tokens {
        cur = match cur {
            Value::Object(m) => m.get(t).ok_or_else(|| format!("missing key {t:?}"))?,
            Value::Array(a) => {
                let i: usize = t
                    .parse()
                    .map_err(|_| format!("{t:?} is not an array index"))?;
                a.get(i).ok_or_else(|| format!("index {i} out of range"))?
            }
            _ => return Err("path goes below a scalar".into()),
        };
    }
    Ok(cur)
}

fn add_at(doc: &mut Value, tokens: &[String], value: Value) -> Result<(), String> {
    let Some((last, parents)) = tokens.split_last() else {
        *doc = value;
        return Ok(());
    };
    match parent_mut(doc, parents)? {
        Value::Object(m) => {
            m.insert(last.clone(), value);
            Ok(())
        }
        Value::Array(a) => {
            if last == "-" {
                a.push(value);
                return Ok(());
            }
            let i: usize = last
                .parse()
                .map_err(|_| format!("{last:?} is not an array index"))?;
            if i > a.len() {
                return Err(format!("index {i} out of range"));
            }
            a.insert(i, value);
            Ok(())
        }
        _ => Err("cannot add below a scalar".into()),
    }
}

fn remove_at(doc: &mut Value, tokens: &[String]) -> Result<Value, String> {
    let (last, parents) = tokens
        .split_last()
        .ok_or("cannot remove the whole document")?;
    match parent_mut(doc, parents)? {
        Value::Object(m) => m
            .remove(last)
            .ok_or_else(|| format!("missing key {last:?}")),
        Value::Array(a) => {
            let i: usize = last
                .parse()
                .map_err(|_| format!("{last:?} is not an array index"))?;
            if i >= a.len() {
                return Err(format!("index {i} out of range"));
            }
            Ok(a.remove(i))
        }
        _ => Err("cannot remove below a scalar".into()),
    }
}

/// RFC 6902 JSON patch. All operations apply or none (the input is not modified).
pub fn json_patch(target: &Value, patch: &Value) -> Result<Value, PatchError> {
    let ops = patch.as_array().ok_or_else(|| {
        PatchError::Malformed("the patch must be a JSON array of operations".into())
    })?;
    let mut doc = target.clone();
    for (index, op) in ops.iter().enumerate() {
        let name = op
            .get("op")
            .and_then(Value::as_str)
            .ok_or_else(|| PatchError::Malformed(format!("operation {index} has no \"op\"")))?;
        let path = op
            .get("path")
            .and_then(Value::as_str)
            .ok_or_else(|| PatchError::Malformed(format!("operation {index} has no \"path\"")))?;
        let fail = |why: String| PatchError::OperationFailed {
            index,
            op: name.to_string(),
            path: path.to_string(),
            why,
        };
        let tokens = split_pointer(path).map_err(fail)?;
        let value = || {
            op.get("value").cloned().ok_or_else(|| {
                PatchError::Malformed(format!("operation {index} ({name}) has no \"value\""))
            })
        };
        let from = || -> Result<Vec<String>, PatchError> {
            let f = op.get("from").and_then(Value::as_str).ok_or_else(|| {
                PatchError::Malformed(format!("operation {index} ({name}) has no \"from\""))
            })?;
            split_pointer(f).map_err(|why| PatchError::OperationFailed {
                index,
                op: name.to_string(),
                path: f.to_string(),
                why,
            })
        };
        match name {
            "add" => add_at(&mut doc, &tokens, value()?).map_err(fail)?,
            "remove" => {
                remove_at(&mut doc, &tokens).map_err(fail)?;
            }
            "replace" => {
                let v = value()?;
                let slot = parent_mut(&mut doc, &tokens).map_err(fail)?;
                *slot = v;
            }
            "move" => {
                let src = from()?;
                let moved = remove_at(&mut doc, &src).map_err(fail)?;
                add_at(&mut doc, &tokens, moved).map_err(fail)?;
            }
            "copy" => {
                let src = from()?;
                let copied = get_at(&doc, &src).map_err(fail)?.clone();
                add_at(&mut doc, &tokens, copied).map_err(fail)?;
            }
            "test" => {
                let want = value()?;
                let got = get_at(&doc, &tokens).map_err(fail)?;
                if *got != want {
                    return Err(fail(format!("value is {got}, not {want}")));
                }
            }
            other => {
                return Err(PatchError::Malformed(format!(
                    "unknown operation {other:?} at {index}"
                )));
            }
        }
    }
    Ok(doc)
}

/// The strategic-merge-patch merge key (`patchMergeKey`) of a list field in the built-in
/// kinds, by field name (the lists kubectl edits most); `sample` is an item of the list
/// (container ports merge by `containerPort`, Service ports by `port`). `None` for lists
/// that are replaced whole. Not shared with server-side apply's list types
/// ([`crate::managed::builtin_list_type`]) on purpose: those have several keys per item
/// (`containerPort` and `protocol`) and more lists, a strategic merge patch merges by the
/// one `patchMergeKey`.
pub fn merge_key(field: &str, sample: Option<&Value>) -> Option<&'static str> {
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "env"
        | "imagePullSecrets" => Some("name"),
        "volumeMounts" | "volumeDevices" => Some("mountPath"),
        "ports" => match sample {
            Some(v) if v.get("containerPort").is_some() => Some("containerPort"),
            _ => Some("port"),
        },
        "conditions" => Some("type"),
        "ownerReferences" => Some("uid"),
        _ => None,
    }
}

/// Lists of scalars that merge as sets (`patchStrategy: merge` on a primitive list).
fn is_primitive_merge_list(field: &str) -> bool {
    field == "finalizers"
}

/// Strategic merge patch over the built-in kinds' common merge keys.
pub fn strategic_merge_patch(target: &Value, patch: &Value) -> Value {
    smp_value(target, patch)
}

fn smp_value(target: &Value, patch: &Value) -> Value {
    let Value::Object(p) = patch else {
        return strip_directives(patch);
    };
    let empty = Map::new();
    let t = match target {
        Value::Object(t) => t,
        _ => &empty,
    };
    if p.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut replaced = p.clone();
        replaced.remove("$patch");
        return strip_directives(&Value::Object(replaced));
    }
    let mut out = t.clone();
    for (k, v) in p {
        if k.starts_with('$') {
            continue;
        }
        if v.is_null() {
            out.remove(k);
            continue;
        }
        if v.get("$patch").and_then(Value::as_str) == Some("delete") {
            out.remove(k);
            continue;
        }
        let merged = match (out.get(k), v) {
            (Some(Value::Array(live)), Value::Array(items)) => {
                let order = p
                    .get(&format!("$setElementOrder/{k}"))
                    .and_then(Value::as_array)
                    .map(Vec::as_slice);
                Value::Array(smp_list(k, live, items, order))
            }
            (existing, Value::Object(_)) => smp_value(existing.unwrap_or(&Value::Null), v),
            _ => strip_directives(v),
        };
        out.insert(k.clone(), merged);
    }
    // `$deleteFromPrimitiveList/<field>: [values]`.
    for (k, v) in p {
        if let (Some(field), Some(values)) =
            (k.strip_prefix("$deleteFromPrimitiveList/"), v.as_array())
            && let Some(Value::Array(list)) = out.get_mut(field)
        {
            list.retain(|item| !values.contains(item));
        }
    }
    Value::Object(out)
}

fn smp_list(field: &str, live: &[Value], items: &[Value], order: Option<&[Value]>) -> Vec<Value> {
    if is_primitive_merge_list(field) {
        let mut out = live.to_vec();
        for i in items {
            if !out.contains(i) {
                out.push(i.clone());
            }
        }
        return out;
    }
    let Some(key) = merge_key(field, items.first().or(live.first())) else {
        return items.iter().map(strip_directives).collect();
    };
    if items
        .iter()
        .any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace"))
    {
        return items
            .iter()
            .filter(|i| i.get("$patch").is_none())
            .map(strip_directives)
            .collect();
    }
    strategic_list_order(key, live, items, order)
}

/// Kubernetes' strategic merge of a list with a merge key, including its element order:
/// the patch's entries (merged with their live counterparts, ordered by
/// `$setElementOrder` or the patch itself) are interleaved with the live-only entries
/// (in live order), taking a patch entry first unless both are known to the live list
/// and the live-only one comes earlier there.
fn strategic_list_order(
    key: &str,
    live: &[Value],
    items: &[Value],
    order: Option<&[Value]>,
) -> Vec<Value> {
    let id_of = |v: &Value| v.get(key).cloned();
    let is_delete = |v: &Value| v.get("$patch").and_then(Value::as_str) == Some("delete");
    let mentioned: Vec<Value> = items.iter().filter_map(id_of).collect();
    let deleted: Vec<Value> = items
        .iter()
        .filter(|i| is_delete(i))
        .filter_map(id_of)
        .collect();
    let mut patched: Vec<Value> = items
        .iter()
        .filter(|i| !is_delete(i))
        .map(|item| {
            match live
                .iter()
                .find(|l| id_of(l).is_some() && id_of(l) == id_of(item))
            {
                Some(l) => smp_value(l, item),
                None => strip_directives(item),
            }
        })
        .collect();
    let live_only: Vec<Value> = live
        .iter()
        .filter(|l| id_of(l).is_none_or(|id| !mentioned.contains(&id) && !deleted.contains(&id)))
        .cloned()
        .collect();
    let position = |list: &[Value], v: &Value| -> Option<usize> {
        let id = id_of(v)?;
        list.iter().position(|x| id_of(x).as_ref() == Some(&id))
    };
    let patch_order: Vec<Value> = order
        .map(<[Value]>::to_vec)
        .unwrap_or_else(|| items.to_vec());
    patched.sort_by(
        |a, b| match (position(&patch_order, a), position(&patch_order, b)) {
            (Some(x), Some(y)) => x.cmp(&y),
            _ => std::cmp::Ordering::Equal,
        },
    );
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::with_capacity(live_only.len() + patched.len());
    while i < live_only.len() || j < patched.len() {
        let take_live = if i >= live_only.len() {
            false
        } else if j >= patched.len() {
            true
        } else {
            matches!((position(live, &live_only[i]), position(live, &patched[j])), (Some(x), Some(y)) if x < y)
        };
        if take_live {
            out.push(live_only[i].clone());
            i += 1;
        } else {
            out.push(patched[j].clone());
            j += 1;
        }
    }
    out
}

fn strip_directives(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_directives).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn rfc7386_examples() {
        // The examples table of RFC 7386, section 3.
        let cases = [
            (json!({"a":"b"}), json!({"a":"c"}), json!({"a":"c"})),
            (json!({"a":"b"}), json!({"b":"c"}), json!({"a":"b","b":"c"})),
            (json!({"a":"b"}), json!({"a":null}), json!({})),
            (
                json!({"a":"b","b":"c"}),
                json!({"a":null}),
                json!({"b":"c"}),
            ),
            (json!({"a":["b"]}), json!({"a":"c"}), json!({"a":"c"})),
            (json!({"a":"c"}), json!({"a":["b"]}), json!({"a":["b"]})),
            (
                json!({"a":{"b":"c"}}),
                json!({"a":{"b":"d","c":null}}),
                json!({"a":{"b":"d"}}),
            ),
            (json!({"a":[{"b":"c"}]}), json!({"a":[1]}), json!({"a":[1]})),
            (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
            (json!({"a":"b"}), json!(["c"]), json!(["c"])),
            (json!({"a":"foo"}), json!(null), json!(null)),
            (json!({"e":null}), json!({"a":1}), json!({"e":null,"a":1})),
            (json!([1, 2]), json!({"a":"b","c":null}), json!({"a":"b"})),
            (
                json!({}),
                json!({"a":{"bb":{"ccc":null}}}),
                json!({"a":{"bb":{}}}),
            ),
        ];
        for (target, patch, want) in cases {
            assert_eq!(merge_patch(&target, &patch), want, "{target} + {patch}");
        }
    }

    #[test]
    fn rfc6902_operations() {
        let doc = json!({"a": {"b": [1, 2]}, "c": "x"});
        let out = json_patch(
            &doc,
            &json!([
                {"op": "add", "path": "/a/b/1", "value": 9},
                {"op": "add", "path": "/a/b/-", "value": 3},
                {"op": "replace", "path": "/c", "value": "y"},
                {"op": "copy", "from": "/c", "path": "/d"},
                {"op": "move", "from": "/d", "path": "/e~1f"},
                {"op": "test", "path": "/e~1f", "value": "y"},
                {"op": "remove", "path": "/a/b/0"}
            ]),
        )
        .unwrap();
        assert_eq!(out, json!({"a": {"b": [9, 2, 3]}, "c": "y", "e/f": "y"}));
        assert!(matches!(
            json_patch(&doc, &json!([{"op": "test", "path": "/c", "value": "z"}])),
            Err(PatchError::OperationFailed { index: 0, .. })
        ));
        assert!(matches!(
            json_patch(&doc, &json!([{"op": "remove", "path": "/nope"}])),
            Err(PatchError::OperationFailed { .. })
        ));
        assert!(matches!(
            json_patch(&doc, &json!({"op": "add"})),
            Err(PatchError::Malformed(_))
        ));
        assert!(matches!(
            json_patch(&doc, &json!([{"op": "frob", "path": "/c"}])),
            Err(PatchError::Malformed(_))
        ));
    }

    #[test]
    fn strategic_merge_by_name_and_directives() {
        let live = json!({"spec": {"template": {"spec": {"containers": [
            {"name": "a", "image": "a:1", "env": [{"name": "X", "value": "1"}]},
            {"name": "b", "image": "b:1"}
        ]}}}, "metadata": {"finalizers": ["f1"]}});
        let patch = json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
            "containers": [
                {"name": "a", "image": "a:2", "env": [{"name": "Y", "value": "2"}]},
                {"name": "b", "$patch": "delete"},
                {"name": "c", "image": "c:1"}
            ]}}}, "metadata": {"finalizers": ["f2"]}});
        let out = strategic_merge_patch(&live, &patch);
        assert_eq!(
            out,
            json!({"spec": {"template": {"spec": {"containers": [
                // A new entry goes before the live-only ones, as in Kubernetes.
                {"name": "a", "image": "a:2", "env": [{"name": "Y", "value": "2"}, {"name": "X", "value": "1"}]},
                {"name": "c", "image": "c:1"}
            ]}}}, "metadata": {"finalizers": ["f1", "f2"]}})
        );
        let replaced = strategic_merge_patch(
            &json!({"data": {"a": "1"}}),
            &json!({"data": {"$patch": "replace", "b": "2"}}),
        );
        assert_eq!(replaced, json!({"data": {"b": "2"}}));
        let removed = strategic_merge_patch(
            &json!({"m": {"finalizers": ["a", "b"]}}),
            &json!({"m": {"$deleteFromPrimitiveList/finalizers": ["a"]}}),
        );
        assert_eq!(removed, json!({"m": {"finalizers": ["b"]}}));
    }

    #[test]
    fn strategic_list_order_follows_kubernetes() {
        // Delete B and add C to [A, B]: Kubernetes answers [C, A].
        let live = json!({"env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]});
        let patch =
            json!({"env": [{"name": "B", "$patch": "delete"}, {"name": "C", "value": "3"}]});
        assert_eq!(
            strategic_merge_patch(&live, &patch),
            json!({"env": [{"name": "C", "value": "3"}, {"name": "A", "value": "1"}]})
        );
        // With kubectl's $setElementOrder the order is the one asked for.
        let patch = json!({"$setElementOrder/env": [{"name": "A"}, {"name": "C"}], "env": [{"name": "B", "$patch": "delete"}, {"name": "C", "value": "3"}]});
        let out = strategic_merge_patch(&live, &patch);
        assert_eq!(out["env"].as_array().unwrap().len(), 2);
        // Changing an existing entry keeps everything in live order.
        let live3 = json!({"env": [{"name": "A"}, {"name": "B"}, {"name": "C"}]});
        let out = strategic_merge_patch(&live3, &json!({"env": [{"name": "B", "value": "x"}]}));
        assert_eq!(
            out,
            json!({"env": [{"name": "A"}, {"name": "B", "value": "x"}, {"name": "C"}]})
        );
    }

    fn json_tree() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            any::<i64>().prop_map(Value::from),
            "[a-z]{0,4}".prop_map(Value::from),
            Just(Value::Bool(true))
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop::collection::btree_map("[a-d]", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect()))
        })
    }

    proptest! {
        #[test]
        fn merge_patch_is_idempotent(target in json_tree(), patch in json_tree()) {
            let once = merge_patch(&target, &patch);
            prop_assert_eq!(merge_patch(&once, &patch), once);
        }
        #[test]
        fn merging_with_empty_patch_changes_nothing(target in json_tree()) {
            if target.is_object() {
                prop_assert_eq!(merge_patch(&target, &json!({})), target.clone());
                prop_assert_eq!(strategic_merge_patch(&target, &json!({})), target);
            }
        }
        #[test]
        fn strategic_equals_merge_patch_without_lists(target in json_tree(), patch in json_tree()) {
            if target.is_object() && patch.is_object() {
                prop_assert_eq!(strategic_merge_patch(&target, &patch), merge_patch(&target, &patch));
            }
        }
    }
}
